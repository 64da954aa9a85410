/**
 * Channel: messages and requests between two endpoints over a Link (two rings and a liveness
 * signal). Every record's ring type carries a frame kind in bits 0-3 and, for requests and
 * responses, a correlation id in bits 4-30 (records.ts).
 *
 * Concurrency contract: a Channel belongs to the thread that created it. Receiving runs on the
 * event loop: the pump drains the inbound ring, then parks on the doorbell (poll: 'doorbell'),
 * polls between event-loop turns (poll: 'busy', for latency at the price of a core), or, by
 * default (poll: 'adaptive'), polls for as long as the gaps it has seen say pays, then parks.
 *
 * Lifecycle: open -> ending (end() sent, peer may still send) -> closed. The channel closes when
 * both sides have ended and nothing is in flight, when destroy() is called, or when the peer goes
 * away; 'close' fires once with the error when it was not clean (ERR_PEER_GONE and friends).
 *
 * This file holds the public class and the lifecycle; the parts it wires together each keep their
 * own state: outbound.ts (sending, back-pressure), reader.ts (draining the inbound ring: doorbell
 * wake, busy pump, response spin), inbox.ts (message delivery and the iterator), serving.ts
 * (request handlers), requests.ts (this side's requests awaiting answers), state.ts (the shared
 * lifecycle flags, which only this class changes).
 */
import { EventEmitter } from 'node:events';
import { ringwireError, type RingwireError } from '../errors.js';
import type { ConsumerStats, ProducerStats } from '../ring/ring-types.js';
import type { AdaptiveSpin } from '../ring/adaptive-spin.js';
import { Inbox } from './inbox.js';
import type { Link, PeerIdentity } from './link.js';
import { Outbound } from './outbound.js';
import { DisconnectCode } from './protocol.js';
import { Reader } from './reader.js';
import { Kind, MAX_REQUEST_ID } from './records.js';
import { Requests, type RequestOptions } from './requests.js';
import { SendQueue } from './send-queue.js';
import { Serving, type Handler } from './serving.js';
import { ChannelState } from './state.js';
import type { ChannelOptions, SendOptions } from './options.js';

export type { ChannelOptions, SendOptions } from './options.js';

export interface ChannelStats {
  sent: ProducerStats;
  received: ConsumerStats;
  requests: { sent: number; answered: number; timedOut: number; aborted: number; served: number };
  /**
   * poll 'adaptive' over an eventfd: what it has learned. `idle`: gaps between going idle and the
   * next record; `responses`: times from a lone request to its answer. budgetUs is how long it
   * polls now (0: it parks at once).
   */
  adaptive?: {
    idle: AdaptiveSpin['state'];
    responses: AdaptiveSpin['state'];
  };
}

/** Serves one request: return (or resolve) the response bytes; a throw is sent back as the request's rejection. */
export type RequestHandler = Handler<Channel>;

const DEFAULT_BUSY_SPIN = 20000;

export interface Channel {
  on(event: 'message', listener: (data: Uint8Array) => void): this;
  on(event: 'end', listener: () => void): this;
  on(event: 'close', listener: (err?: RingwireError) => void): this;
  once(event: 'message', listener: (data: Uint8Array) => void): this;
  once(event: 'end', listener: () => void): this;
  once(event: 'close', listener: (err?: RingwireError) => void): this;
}

export class Channel extends EventEmitter {
  readonly peer: PeerIdentity;
  readonly transport: Link['transport'];
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly localPort: number | undefined;
  readonly remotePort: number | undefined;
  #link: Link;
  #allowHalfOpen: boolean;
  #closeTimeoutMs: number;
  #state = new ChannelState();
  #requests: Requests;
  #sendQueue: SendQueue;
  #outbound: Outbound;
  #reader: Reader;
  #inbox: Inbox;
  #serving: Serving<Channel>;
  #pumpAbort = new AbortController();
  #closedPromise: Promise<RingwireError | undefined>;
  #resolveClosed!: (err: RingwireError | undefined) => void;

  constructor(link: Link, opts: ChannelOptions = {}) {
    super();
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'channel options must be an object');
    if (opts.poll !== undefined && opts.poll !== 'adaptive' && opts.poll !== 'doorbell' && opts.poll !== 'busy') throw ringwireError('ERR_INVALID_ARG', `poll must be 'adaptive', 'doorbell' or 'busy', got ${String(opts.poll)}`);
    if (opts.maxLargeMessageBytes !== undefined && !(Number.isSafeInteger(opts.maxLargeMessageBytes) && opts.maxLargeMessageBytes >= 0 && opts.maxLargeMessageBytes <= 0xffffffff)) throw ringwireError('ERR_OUT_OF_RANGE', `maxLargeMessageBytes must be an integer 0..2^32-1, got ${opts.maxLargeMessageBytes}`);
    if (opts.spin !== undefined && (!Number.isInteger(opts.spin) || opts.spin < 0)) throw ringwireError('ERR_OUT_OF_RANGE', `spin must be a non-negative integer, got ${opts.spin}`);
    this.#link = link;
    this.peer = link.peer;
    this.transport = link.transport;
    this.localAddress = link.localAddress;
    this.remoteAddress = link.remoteAddress;
    this.localPort = link.localPort;
    this.remotePort = link.remotePort;
    const busy = opts.poll === 'busy';
    if (opts.responseSpinUs !== undefined && !(opts.responseSpinUs >= 0 && opts.responseSpinUs <= 1e6)) throw ringwireError('ERR_OUT_OF_RANGE', `responseSpinUs must be 0..1e6, got ${opts.responseSpinUs}`);
    const responseSpinMs = (opts.responseSpinUs ?? 0) / 1000;
    const spin = opts.spin ?? (busy ? DEFAULT_BUSY_SPIN : 0);
    this.#allowHalfOpen = opts.allowHalfOpen ?? false;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    const state = this.#state;
    this.#sendQueue = new SendQueue(link.producer, this.#pumpAbort.signal, {
      written: (kind) => { if (kind === Kind.End) state.endSent = true; },
      idle: () => { if (state.endSent) this.#maybeFinish(); },
      failed: (err) => { if (!state.closed) this.destroy(err); },
    });
    this.#requests = new Requests(opts.requestTimeoutMs ?? 30_000, () => state.endQueued && this.#maybeFinish());
    const destroy = (err: RingwireError): void => this.destroy(err);
    const throttle = (): void => this.#updateThrottle();
    const finishIfDrained = (): void => this.#finishIfDrained();
    this.#outbound = new Outbound(link.producer, this.#sendQueue, state, {
      destroy,
      failRequest: (id, err) => this.#requests.fail(id, err),
      throttle,
    });
    this.#reader = new Reader(link, state, this.#requests, this.#pumpAbort.signal, { busy, adaptive: (opts.poll ?? 'adaptive') === 'adaptive', spin, responseSpinMs, ...(opts.maxLargeMessageBytes === undefined ? {} : { maxLargeMessageBytes: opts.maxLargeMessageBytes }) }, {
      message: (view) => this.#inbox.deliver(view),
      request: (id, request) => this.#serving.serve(id, request),
      peerEnd: () => this.#onPeerEnd(),
      destroy,
      drained: finishIfDrained,
    });
    this.#inbox = new Inbox(this, this.#reader, state, finishIfDrained);
    this.#serving = new Serving<Channel>(this, state, {
      respond: (kind, id, data) => this.#outbound.respond(kind, id, data),
      throttle,
      settled: () => this.#maybeFinish(),
    });
    this.#closedPromise = new Promise((resolve) => { this.#resolveClosed = resolve; });
    link.onGone((why) => this.#onGone(why.code, why.reason));
    this.addListener('newListener', (event: string | symbol) => {
      if (event === 'message') queueMicrotask(() => this.#inbox.deliverUnclaimed());
    });
    // Started after the current tick, so the code that receives this channel (a 'connection'
    // listener, the continuation of `await connect()`) can attach handlers first.
    setImmediate(() => this.#reader.start());
  }

  /** Largest payload one send() or request() can carry. */
  get maxMessageSize(): number {
    return this.#outbound.maxMessageSize;
  }

  get closed(): boolean {
    return this.#state.closed;
  }

  /** Resolves when the channel has closed, with the error if the close was not clean. */
  whenClosed(): Promise<RingwireError | undefined> {
    return this.#closedPromise;
  }

  // ---- sending ----

  /** Sends one message if it fits now; false (nothing sent) when the ring is full. */
  trySend(data: Uint8Array): boolean {
    return this.#outbound.trySend(data);
  }

  /** Sends one message, waiting for space while the ring is full (back-pressure). Order is preserved. */
  send(data: Uint8Array, opts: SendOptions = {}): Promise<void> {
    return this.#outbound.send(data, opts);
  }

  /**
   * Sends a message of any size: one record when it fits the ring (as send()), else in pieces that
   * the peer's channel puts back together (one copy on each side: into the ring, out of it into
   * the whole message). The peer accepts up to its maxLargeMessageBytes (default 64 MiB).
   */
  sendLarge(data: Uint8Array, opts: SendOptions = {}): Promise<void> {
    return this.#outbound.sendLarge(data, opts);
  }

  /**
   * Zero-copy send: reserves `length` bytes in the outbound ring and returns them to fill in place;
   * commit() publishes every claimed message. Null when the ring is full or sends are queued
   * (wait with claimAsync). Claims must not be held across an await.
   */
  claim(length: number): Uint8Array | null {
    return this.#outbound.claim(length);
  }

  /** claim() that waits for space. */
  claimAsync(length: number, opts: SendOptions = {}): Promise<Uint8Array> {
    return this.#outbound.claimAsync(length, opts);
  }

  /** Publishes claimed messages and rings the peer's doorbell if it sleeps. */
  commit(): void {
    this.#outbound.commit();
  }

  /** Stops reading while answers cannot leave or held requests exceed their bound; restarts once they drain. */
  #updateThrottle(): void {
    this.#reader.throttle(this.#serving.backedUp || this.#outbound.backedUp);
  }

  // ---- requests ----

  /** Sends a request and resolves with the peer handler's response (a copy). */
  request(data: Uint8Array, opts: RequestOptions = {}): Promise<Buffer> {
    let started: { id: number; promise: Promise<Buffer> };
    try {
      this.#outbound.checkMessage(data);
      this.#outbound.checkWritable(Kind.Request);
      if (this.#state.peerEnded) throw ringwireError('ERR_RING_CLOSED', 'the peer has ended; it takes no more requests');
      started = this.#requests.start(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    const { id, promise } = started;
    let written: boolean;
    try {
      written = this.#outbound.tryWrite(Kind.Request, id, data);
    } catch {
      return promise; // failed with the error by tryWrite
    }
    if (!written) {
      this.#sendQueue.push(Kind.Request, id, data, { ...(opts.signal ? { signal: opts.signal } : {}) }).catch((err) => this.#requests.fail(id, err));
    } else {
      this.#reader.lookForResponse(id);
    }
    return promise;
  }

  /** Serves requests from the peer with `fn`; one handler per channel (null removes it). */
  handle(fn: RequestHandler | null): this {
    this.#serving.setHandler(fn);
    return this;
  }

  // ---- receiving ----

  /** Stops draining the inbound ring; the peer sees back-pressure once it fills. */
  pause(): this {
    this.#reader.pause();
    return this;
  }

  resume(): this {
    this.#reader.resume();
    return this;
  }

  get isPaused(): boolean {
    return this.#reader.paused;
  }

  /**
   * Copies of incoming messages, in order; ends when the peer ends or the channel closes. While
   * unread copies pile up the ring is not drained, so the sender waits instead of memory growing.
   * One iterator at a time.
   */
  [Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    return this.#inbox.iterate();
  }

  #onPeerEnd(): void {
    if (this.#state.peerEnded) return;
    this.#state.peerEnded = true;
    this.#inbox.wake();
    queueMicrotask(() => this.emit('end'));
    if (!this.#allowHalfOpen) this.end().catch(() => {});
    this.#maybeFinish();
  }

  // ---- closing ----

  /** Half-close: the peer receives everything sent so far, then 'end'. Requests from the peer are still answered. */
  end(): Promise<void> {
    const s = this.#state;
    if (s.closed) return Promise.resolve();
    if (s.endQueued) return Promise.resolve();
    s.endQueued = true;
    let written: boolean;
    try {
      written = this.#outbound.tryWrite(Kind.End, 0, new Uint8Array(0));
    } catch (err) {
      return Promise.reject(err);
    }
    if (written) {
      s.endSent = true;
      this.#maybeFinish();
      return Promise.resolve();
    }
    return this.#sendQueue.push(Kind.End, 0, new Uint8Array(0), {}).then(() => this.#maybeFinish(), () => {});
  }

  /** Graceful close: ends, lets the peer drain and answer, and resolves once closed (destroying after closeTimeoutMs). */
  async close(): Promise<void> {
    if (this.#state.closed) return;
    this.end().catch(() => {});
    const timer = setTimeout(() => this.destroy(ringwireError('ERR_TIMEOUT', `the peer did not end within ${this.#closeTimeoutMs} ms of close()`)), this.#closeTimeoutMs);
    try {
      await this.#closedPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes at once: pending requests and sends fail, the link is released. */
  destroy(err?: RingwireError): void {
    // A revocation travels as Disconnect(Policy), so the peer closes with ERR_POLICY_REVOKED too.
    const code = !err ? DisconnectCode.Normal : err.code === 'ERR_POLICY_REVOKED' ? DisconnectCode.Policy : DisconnectCode.Internal;
    this.#finish(err, code, err?.message ?? 'destroyed');
  }

  #maybeFinish(): void {
    const s = this.#state;
    if (s.closed || !s.endSent || !s.peerEnded) return;
    if (this.#serving.busy || this.#requests.size > 0 || this.#sendQueue.length > 0) return;
    this.#finish(undefined, DisconnectCode.Normal, 'closed');
  }

  /**
   * The peer's end of the link closed. What it published before is still in the ring (the mappings
   * stay until #finish), so reading continues through the usual pause/resume path and the channel
   * finishes only once the ring is empty and held copies were taken (#finishIfDrained). Nothing can
   * reach the peer any more: queued sends fail now.
   */
  #onGone(code: number | undefined, reason: string): void {
    const s = this.#state;
    if (s.closed || s.gone) return;
    s.gone = { code, reason };
    this.#sendQueue.failAll(s.goneError());
    this.#inbox.wake();
    this.#reader.readRemaining();
  }

  /** After the peer left: closes once everything it sent was read and handed over; cleanly if it had ended. */
  #finishIfDrained(): void {
    const s = this.#state;
    if (!s.gone || s.closed) return;
    if (this.#inbox.held > 0 || this.#link.consumer.available()) return;
    if (s.peerEnded && s.endSent && this.#requests.size === 0) this.#finish(undefined, DisconnectCode.Normal, 'closed');
    else this.#finish(s.goneError(), DisconnectCode.Normal, s.gone.reason);
  }

  #finish(err: RingwireError | undefined, code: DisconnectCode, reason: string): void {
    if (this.#state.closed) return;
    this.#state.closed = true;
    this.#pumpAbort.abort();
    const failure = err ?? ringwireError('ERR_RING_CLOSED', 'channel closed');
    this.#requests.failAll(err?.code === 'ERR_PEER_GONE' ? err : ringwireError('ERR_PEER_GONE', `channel closed before the response arrived (${reason})`));
    this.#sendQueue.failAll(failure);
    this.#link.close(code, reason);
    this.#reader.restart();
    this.#inbox.wake();
    process.nextTick(() => {
      this.emit('close', err);
      this.#resolveClosed(err);
    });
  }

  stats(): ChannelStats {
    const r = this.#requests.stats();
    return {
      sent: this.#link.producer.stats(),
      received: this.#link.consumer.stats(),
      requests: { ...r, served: this.#serving.served },
      ...(this.#reader.adaptiveState ? { adaptive: this.#reader.adaptiveState } : {}),
    };
  }

  /** The largest correlation id before ids wrap (2^27 - 1). */
  static readonly maxRequestId = MAX_REQUEST_ID;
}

/** A Channel over a link that just completed its handshake; if the channel cannot be made, the link is closed with the reason. */
export function channelOnLink(link: Link, opts: ChannelOptions): Channel {
  try {
    return new Channel(link, opts);
  } catch (err) {
    link.close(DisconnectCode.Internal, (err as Error).message);
    throw err;
  }
}
