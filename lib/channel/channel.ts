/**
 * Channel: messages and requests between two endpoints over a Link (two rings and a liveness
 * signal). Every record's ring type carries a frame kind in bits 0-3 and, for requests and
 * responses, a correlation id in bits 4-30 (records.ts).
 *
 * Concurrency contract: a Channel belongs to the thread that created it. Receiving runs on the
 * event loop: the pump drains the inbound ring, then parks on the doorbell (poll: 'doorbell') or
 * polls between event-loop turns (poll: 'busy', for latency at the price of a core).
 *
 * Lifecycle: open -> ending (end() sent, peer may still send) -> closed. The channel closes when
 * both sides have ended and nothing is in flight, when destroy() is called, or when the peer goes
 * away; 'close' fires once with the error when it was not clean (ERR_PEER_GONE and friends).
 */
import { EventEmitter } from 'node:events';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { ringwireError, type RingwireError } from '../errors.js';
import type { ConsumerStats, ProducerStats } from '../ring-types.js';
import { DisconnectCode } from './protocol.js';
import type { Link, PeerIdentity } from './link.js';
import { Kind, MAX_REQUEST_ID, kindOf, idOf, recordType } from './records.js';
import { Requests, type RequestOptions } from './requests.js';
import { SendQueue } from './send-queue.js';

export interface ChannelOptions {
  /** 'doorbell' (default) sleeps on the eventfd; 'busy' polls the ring between event-loop turns. */
  poll?: 'doorbell' | 'busy';
  /**
   * 'doorbell': ring polls after a drain before re-arming the doorbell (default 0: spinning there
   * delays the callbacks the drain just resolved). 'busy': polls per event-loop turn (default 20000).
   */
  spin?: number;
  /** Keep the channel writable after the peer ended (default false: end in reply, like net). */
  allowHalfOpen?: boolean;
  /**
   * 'doorbell' mode: after sending a request, poll for its response this many microseconds before
   * sleeping (hybrid polling: the peer still sleeps; this side burns at most this much CPU per
   * request). Default 0.
   */
  responseSpinUs?: number;
  /** Default timeout of request(); Infinity waits for ever. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long close() waits for the peer's end before destroying. Default 5 s. */
  closeTimeoutMs?: number;
}

export interface SendOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ChannelStats {
  sent: ProducerStats;
  received: ConsumerStats;
  requests: { sent: number; answered: number; timedOut: number; aborted: number; served: number };
}

/** Serves one request: return (or resolve) the response bytes; a throw is sent back as the request's rejection. */
export type RequestHandler = (request: Buffer, channel: Channel) => Uint8Array | Promise<Uint8Array>;

const DEFAULT_BUSY_SPIN = 20000;
/** Records handled per wake-up before the pump yields to other work. */
const DRAIN_BUDGET = 256;
/** Unread copies held (for the iterator, or before a 'message' listener exists) before draining stops. */
const ITERATOR_HIGH_WATER = 64;
/**
 * Requests received but not started (no handler yet, or MAX_HANDLERS_IN_FLIGHT running), by count
 * and by bytes (at least one is always held). Beyond either, without a handler they are answered
 * with an error; with one, reading stops until handlers catch up. A peer cannot park ring-sized
 * copies here either way.
 */
const UNHANDLED_LIMIT = 1024;
const UNHANDLED_BYTES = 1 << 20;
/**
 * Responses waiting for ring space, in bytes, beyond which the channel stops reading requests
 * (the larger of this and the outbound ring's message size): a peer that sends requests but never
 * reads the answers then meets back-pressure instead of growing our memory.
 */
const RESPONSE_QUEUE_HIGH_WATER = 1 << 20;
/**
 * Async handlers running at once; later requests wait in the held queue. Reading goes on meanwhile
 * (responses to this side's own requests, which a handler may be awaiting, arrive in the same ring).
 */
const MAX_HANDLERS_IN_FLIGHT = 64;

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
  #busy: boolean;
  #responseSpinMs: number;
  #spin: number;
  #allowHalfOpen: boolean;
  #closeTimeoutMs: number;
  #requests: Requests;
  #handler: RequestHandler | undefined;
  #sendQueue: SendQueue;
  #commitScheduled = false;
  #endQueued = false;
  #endSent = false;
  #peerEnded = false;
  /** Why the peer's side of the link went away; the channel still delivers what it left in the ring. */
  #gone: { code: number | undefined; reason: string } | undefined;
  #closed = false;
  #paused = false;
  /** Reading stopped by the channel itself (responses pile up), independent of pause(). */
  #throttled = false;
  #queuedResponseBytes = 0;
  #responseHighWater: number;
  #resume: (() => void) | undefined;
  #pumpAbort = new AbortController();
  #inFlightHandlers = 0;
  #served = 0;
  /** Data that arrived while nobody listened: kept (copied) rather than dropped; reading then pauses. */
  #unclaimed: Buffer[] = [];
  #iterators = 0;
  #unhandled: Array<[number, Buffer]> = [];
  #unhandledBytes = 0;
  #wakeIterator: (() => void) | undefined;
  #closedPromise: Promise<RingwireError | undefined>;
  #resolveClosed!: (err: RingwireError | undefined) => void;

  constructor(link: Link, opts: ChannelOptions = {}) {
    super();
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'channel options must be an object');
    if (opts.poll !== undefined && opts.poll !== 'doorbell' && opts.poll !== 'busy') throw ringwireError('ERR_INVALID_ARG', `poll must be 'doorbell' or 'busy', got ${String(opts.poll)}`);
    if (opts.spin !== undefined && (!Number.isInteger(opts.spin) || opts.spin < 0)) throw ringwireError('ERR_OUT_OF_RANGE', `spin must be a non-negative integer, got ${opts.spin}`);
    this.#link = link;
    this.peer = link.peer;
    this.transport = link.transport;
    this.localAddress = link.localAddress;
    this.remoteAddress = link.remoteAddress;
    this.localPort = link.localPort;
    this.remotePort = link.remotePort;
    this.#busy = opts.poll === 'busy';
    if (opts.responseSpinUs !== undefined && !(opts.responseSpinUs >= 0 && opts.responseSpinUs <= 1e6)) throw ringwireError('ERR_OUT_OF_RANGE', `responseSpinUs must be 0..1e6, got ${opts.responseSpinUs}`);
    this.#responseSpinMs = (opts.responseSpinUs ?? 0) / 1000;
    this.#spin = opts.spin ?? (this.#busy ? DEFAULT_BUSY_SPIN : 0);
    this.#allowHalfOpen = opts.allowHalfOpen ?? false;
    this.#closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
    this.#responseHighWater = Math.max(RESPONSE_QUEUE_HIGH_WATER, link.producer.maxMessageSize);
    this.#sendQueue = new SendQueue(link.producer, this.#pumpAbort.signal, {
      written: (kind) => { if (kind === Kind.End) this.#endSent = true; },
      idle: () => { if (this.#endSent) this.#maybeFinish(); },
      failed: (err) => { if (!this.#closed) this.destroy(err); },
    });
    this.#requests = new Requests(opts.requestTimeoutMs ?? 30_000, () => this.#endQueued && this.#maybeFinish());
    this.#closedPromise = new Promise((resolve) => { this.#resolveClosed = resolve; });
    link.onGone((why) => this.#onGone(why.code, why.reason));
    this.addListener('newListener', (event: string | symbol) => {
      if (event === 'message') queueMicrotask(() => this.#deliverUnclaimed());
    });
    // Started after the current tick, so the code that receives this channel (a 'connection'
    // listener, the continuation of `await connect()`) can attach handlers first.
    setImmediate(() => void this.#pump());
  }

  /** Largest payload one send() or request() can carry. */
  get maxMessageSize(): number {
    return this.#link.producer.maxMessageSize;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves when the channel has closed, with the error if the close was not clean. */
  whenClosed(): Promise<RingwireError | undefined> {
    return this.#closedPromise;
  }

  // ---- sending ----

  #checkWritable(kind: number): void {
    if (this.#closed) throw ringwireError('ERR_RING_CLOSED', 'channel is closed');
    if (this.#gone && kind !== Kind.Response && kind !== Kind.ErrorResponse) throw this.#goneError();
    if (this.#endQueued && kind !== Kind.Response && kind !== Kind.ErrorResponse) throw ringwireError('ERR_RING_CLOSED', 'channel was ended: no more messages or requests');
  }

  /**
   * Writes one record now if it fits and nothing is queued ahead of it. A ring the peer corrupted
   * throws here: the channel is destroyed (a started request fails with the error) and the error rethrown.
   */
  #tryWrite(kind: number, id: number, data: Uint8Array): boolean {
    if (this.#sendQueue.length > 0) return false;
    const p = this.#link.producer;
    let off: number;
    try {
      off = p.claim(data.length, recordType(kind, id));
    } catch (err) {
      if (kind === Kind.Request) this.#requests.fail(id, err as Error);
      this.destroy(err as RingwireError);
      throw err;
    }
    if (off < 0) return false;
    p.data.set(data, off);
    if (kind === Kind.Data) this.#commitSoon();
    else p.commit();
    return true;
  }

  /**
   * Data messages sent in one synchronous run are published together at the end of it (one tail
   * store, at most one doorbell) instead of one by one; anything else commits at once and
   * publishes them with it, so order never changes.
   */
  #commitSoon(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    queueMicrotask(() => {
      this.#commitScheduled = false;
      if (!this.#closed) this.#link.producer.commit();
    });
  }

  /** Sends one message if it fits now; false (nothing sent) when the ring is full. */
  trySend(data: Uint8Array): boolean {
    this.#checkMessage(data);
    this.#checkWritable(Kind.Data);
    return this.#tryWrite(Kind.Data, 0, data);
  }

  /** Sends one message, waiting for space while the ring is full (back-pressure). Order is preserved. */
  send(data: Uint8Array, opts: SendOptions = {}): Promise<void> {
    try {
      this.#checkMessage(data);
      this.#checkWritable(Kind.Data);
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      if (this.#tryWrite(Kind.Data, 0, data)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#sendQueue.push(Kind.Data, 0, data, opts);
  }

  /**
   * Zero-copy send: reserves `length` bytes in the outbound ring and returns them to fill in place;
   * commit() publishes every claimed message. Null when the ring is full or sends are queued
   * (wait with claimAsync). Claims must not be held across an await.
   */
  claim(length: number): Uint8Array | null {
    this.#checkWritable(Kind.Data);
    if (this.#sendQueue.length > 0) return null;
    const p = this.#link.producer;
    let off: number;
    try {
      off = p.claim(length, recordType(Kind.Data, 0));
    } catch (err) {
      this.destroy(err as RingwireError);
      throw err;
    }
    return off < 0 ? null : p.data.subarray(off, off + length);
  }

  /** claim() that waits for space. */
  async claimAsync(length: number, opts: SendOptions = {}): Promise<Uint8Array> {
    for (;;) {
      if (this.#sendQueue.length > 0) await this.#sendQueue.barrier(opts);
      const view = this.claim(length);
      if (view) return view;
      await this.#waitForSpace(length, opts);
    }
  }

  /** Publishes claimed messages and rings the peer's doorbell if it sleeps. */
  commit(): void {
    this.#link.producer.commit();
  }

  #checkMessage(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw ringwireError('ERR_INVALID_ARG', 'message must be a Uint8Array');
    if (data.length > this.maxMessageSize) throw ringwireError('ERR_RING_TOO_LARGE', `message of ${data.length} bytes exceeds this channel's maximum of ${this.maxMessageSize}`);
  }

  async #waitForSpace(length: number, opts: SendOptions): Promise<void> {
    const ok = await this.#link.producer.waitForSpace(length, { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
    if (!ok) throw ringwireError('ERR_TIMEOUT', `no space in the outbound ring within ${opts.timeoutMs} ms`);
    if (this.#closed) throw ringwireError('ERR_RING_CLOSED', 'channel is closed');
  }

  /** Sends a response from inside the channel: now if possible, else queued (counted toward the throttle). */
  #sendInternal(kind: number, id: number, data: Uint8Array): void {
    if (this.#closed || this.#gone) return;
    if (data.length > this.maxMessageSize) {
      kind = Kind.ErrorResponse;
      data = Buffer.from(`response of ${data.length} bytes exceeds the channel's maximum of ${this.maxMessageSize}`);
    }
    try {
      if (this.#tryWrite(kind, id, data)) return;
    } catch {
      return; // the channel was destroyed with the error
    }
    this.#queuedResponseBytes += data.length;
    this.#updateThrottle();
    this.#sendQueue.push(kind, id, data, {}).catch(() => {}).finally(() => {
      this.#queuedResponseBytes -= data.length;
      this.#updateThrottle();
    });
  }

  /** Stops reading while answers cannot leave or held requests exceed their bound; restarts once they drain. */
  #updateThrottle(): void {
    const heldTooMuch = this.#handler !== undefined && (this.#unhandledBytes > UNHANDLED_BYTES || this.#unhandled.length >= UNHANDLED_LIMIT);
    const over = this.#queuedResponseBytes > this.#responseHighWater || heldTooMuch;
    if (over === this.#throttled) return;
    this.#throttled = over;
    if (!over) this.#restartReading();
  }

  // ---- requests ----

  /** Sends a request and resolves with the peer handler's response (a copy). */
  request(data: Uint8Array, opts: RequestOptions = {}): Promise<Buffer> {
    let started: { id: number; promise: Promise<Buffer> };
    try {
      this.#checkMessage(data);
      this.#checkWritable(Kind.Request);
      if (this.#peerEnded) throw ringwireError('ERR_RING_CLOSED', 'the peer has ended; it takes no more requests');
      started = this.#requests.start(opts);
    } catch (err) {
      return Promise.reject(err);
    }
    const { id, promise } = started;
    let written: boolean;
    try {
      written = this.#tryWrite(Kind.Request, id, data);
    } catch {
      return promise; // failed with the error by #tryWrite
    }
    if (!written) {
      this.#sendQueue.push(Kind.Request, id, data, { ...(opts.signal ? { signal: opts.signal } : {}) }).catch((err) => this.#requests.fail(id, err));
    } else if (this.#busy) {
      this.#pollForResponse(id);
    } else if (this.#responseSpinMs > 0 && this.#link.wake) {
      this.#spinForResponse(id);
    }
    return promise;
  }

  /** Busy mode: a request's answer usually arrives within microseconds, so look for it before yielding. */
  #pollForResponse(id: number): void {
    const c = this.#link.consumer;
    for (let i = 0; i < this.#spin && this.#requests.pending(id); i++) {
      if (c.available()) this.#drain();
    }
  }

  /**
   * Doorbell mode with responseSpinUs: poll for this request's answer for a bounded time with the
   * waiting flag withdrawn (so the peer need not ring us), then re-arm the doorbell as #onWake does.
   */
  #spinForResponse(id: number): void {
    const wake = this.#link.wake!;
    const c = this.#link.consumer;
    const deadline = performance.now() + this.#responseSpinMs;
    wake.setWaiting(false);
    try {
      while (this.#requests.pending(id) && !this.#closed && !this.#halted()) {
        if (c.available()) this.#drain();
        else if (performance.now() > deadline) break;
      }
    } catch (err) {
      if (!this.#closed) this.destroy(err as RingwireError);
    }
    if (this.#closed || this.#halted()) return;
    wake.setWaiting(true);
    if (c.available()) queueMicrotask(() => this.#onWake());
  }

  /** Serves requests from the peer with `fn`; one handler per channel (null removes it). */
  handle(fn: RequestHandler | null): this {
    if (fn !== null && typeof fn !== 'function') throw ringwireError('ERR_INVALID_ARG', 'handler must be a function or null');
    this.#handler = fn ?? undefined;
    this.#startHeld();
    return this;
  }

  #serve(id: number, request: Buffer): void {
    if (this.#handler && this.#inFlightHandlers < MAX_HANDLERS_IN_FLIGHT && this.#unhandled.length === 0) {
      this.#run(this.#handler, id, request);
      return;
    }
    // Held until a handler is set or a running one settles, so one attached a little late loses nothing.
    const fits = this.#unhandled.length === 0 || (this.#unhandled.length < UNHANDLED_LIMIT && this.#unhandledBytes + request.length <= UNHANDLED_BYTES);
    if (fits || this.#handler) {
      this.#unhandled.push([id, request]);
      this.#unhandledBytes += request.length;
      this.#updateThrottle();
    } else {
      this.#sendInternal(Kind.ErrorResponse, id, Buffer.from('the peer serves no requests on this channel'));
    }
  }

  /** Starts held requests while a handler is set and slots are free. */
  #startHeld(): void {
    while (this.#handler && !this.#closed && this.#inFlightHandlers < MAX_HANDLERS_IN_FLIGHT && this.#unhandled.length > 0) {
      const [id, request] = this.#unhandled.shift()!;
      this.#unhandledBytes -= request.length;
      this.#run(this.#handler, id, request);
    }
    this.#updateThrottle();
  }

  #run(handler: RequestHandler, id: number, request: Buffer): void {
    this.#served++;
    let result: Uint8Array | Promise<Uint8Array>;
    try {
      result = handler(request, this);
    } catch (err) {
      this.#sendInternal(Kind.ErrorResponse, id, Buffer.from(String((err as Error)?.message ?? err)));
      return;
    }
    if (result instanceof Uint8Array) {
      this.#sendInternal(Kind.Response, id, result);
      return;
    }
    this.#inFlightHandlers++;
    Promise.resolve(result).then(
      (value) => {
        if (value instanceof Uint8Array) this.#sendInternal(Kind.Response, id, value);
        else this.#sendInternal(Kind.ErrorResponse, id, Buffer.from('the handler returned something other than a Uint8Array'));
      },
      (err) => this.#sendInternal(Kind.ErrorResponse, id, Buffer.from(String((err as Error)?.message ?? err))),
    ).finally(() => {
      this.#inFlightHandlers--;
      this.#startHeld();
      this.#maybeFinish();
    });
  }

  // ---- receiving ----

  /** Stops draining the inbound ring; the peer sees back-pressure once it fills. */
  pause(): this {
    this.#paused = true;
    return this;
  }

  resume(): this {
    if (!this.#paused) return this;
    this.#paused = false;
    this.#restartReading();
    return this;
  }

  get isPaused(): boolean {
    return this.#paused;
  }

  /** True while the inbound ring must not be drained: paused by the user or throttled by the channel. */
  #halted(): boolean {
    return this.#paused || this.#throttled;
  }

  #restartReading(): void {
    if (this.#halted() && !this.#closed) return;
    const r = this.#resume;
    this.#resume = undefined;
    r?.();
    if (this.#link.wake && !this.#busy && !this.#closed) queueMicrotask(() => this.#halted() || this.#closed || this.#onWake());
  }

  /** Doorbell mode over an eventfd: runs on each ring, drains, then re-arms the waiting flag. */
  #onWake(): void {
    const wake = this.#link.wake!;
    const c = this.#link.consumer;
    try {
      wake.clear();
      for (;;) {
        wake.setWaiting(false);
        this.#drain();
        if (this.#closed || this.#halted()) return;
        for (let i = 0; i < this.#spin; i++) if (c.available()) break;
        // Publish the flag, then look once more: a commit that raced with us either shows up in
        // this re-check or sees the flag and rings (the same pairing as lib/wait.ts).
        wake.setWaiting(true);
        if (!c.available()) return;
      }
    } catch (err) {
      if (!this.#closed) this.destroy(err as RingwireError);
    }
  }

  async #pump(): Promise<void> {
    const c = this.#link.consumer;
    if (this.#closed) return;
    if (!this.#busy && this.#link.wake) {
      this.#link.wake.start(() => this.#onWake());
      this.#onWake();
      return;
    }
    const signal = this.#pumpAbort.signal;
    try {
      while (!this.#closed) {
        if (this.#halted()) {
          await new Promise<void>((r) => { this.#resume = r; });
          continue;
        }
        this.#drain();
        if (this.#closed || this.#halted()) continue;
        if (this.#busy) {
          let found = false;
          for (let i = 0; i < this.#spin && !found; i++) found = c.available();
          if (!found) await yieldToLoop();
          continue;
        }
        await c.waitForData({ spin: this.#spin, signal });
      }
    } catch (err) {
      if (!this.#closed) this.destroy(err as RingwireError);
    }
  }

  /** Dispatches up to DRAIN_BUDGET records in place, then releases their space in one go. */
  #drain(): void {
    const c = this.#link.consumer;
    let n = 0;
    try {
      while (n < DRAIN_BUDGET && !this.#halted() && !this.#closed && c.read() >= 0) {
        n++;
        this.#dispatch(c.data, c.offset, c.length, c.type);
      }
    } catch (err) {
      this.destroy(err as RingwireError);
      return;
    }
    if (!this.#closed) c.release();
    this.#finishIfDrained();
  }

  #dispatch(data: Uint8Array, offset: number, length: number, type: number): void {
    const kind = kindOf(type);
    switch (kind) {
      case Kind.Data:
        if (this.#iterators === 0 && this.#unclaimed.length === 0 && this.listenerCount('message') > 0) {
          this.emit('message', data.subarray(offset, offset + length));
          return;
        }
        // Nobody reads yet, or the iterator is behind: keep a copy, and stop draining once the
        // copies pile up so the peer feels back-pressure. The slack lets responses queued behind
        // a few unread messages still arrive.
        this.#unclaimed.push(Buffer.from(data.subarray(offset, offset + length)));
        this.#wakeIterator?.();
        if (this.#unclaimed.length >= ITERATOR_HIGH_WATER) this.pause();
        return;
      case Kind.Request:
        this.#serve(idOf(type), Buffer.from(data.subarray(offset, offset + length)));
        return;
      case Kind.Response:
        this.#requests.answer(idOf(type), Buffer.from(data.subarray(offset, offset + length)));
        return;
      case Kind.ErrorResponse:
        this.#requests.fail(idOf(type), ringwireError('ERR_REMOTE', `the peer's handler failed: ${Buffer.from(data.subarray(offset, offset + length)).toString()}`));
        return;
      case Kind.End:
        this.#onPeerEnd();
        return;
      default:
        throw ringwireError('ERR_HANDSHAKE', `the peer sent a record of unknown kind ${kind}`);
    }
  }

  /** Hands held copies to a late 'message' listener; they were received, so this runs even after close. */
  #deliverUnclaimed(): void {
    if (this.#iterators > 0) return;
    while (this.#unclaimed.length > 0 && this.listenerCount('message') > 0) {
      this.emit('message', this.#unclaimed.shift()!);
    }
    if (this.#unclaimed.length === 0 && this.#paused && this.listenerCount('message') > 0) this.resume();
    this.#finishIfDrained();
  }

  #onPeerEnd(): void {
    if (this.#peerEnded) return;
    this.#peerEnded = true;
    this.#wakeIterator?.();
    queueMicrotask(() => this.emit('end'));
    if (!this.#allowHalfOpen) this.end().catch(() => {});
    this.#maybeFinish();
  }

  /**
   * Copies of incoming messages, in order; ends when the peer ends or the channel closes. While
   * unread copies pile up the ring is not drained, so the sender waits instead of memory growing.
   * One iterator at a time.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.#iterators > 0) throw ringwireError('ERR_INVALID_ARG', 'a channel has one async iterator at a time');
    this.#iterators++;
    try {
      for (;;) {
        const next = this.#unclaimed.shift();
        if (next) {
          if (this.#paused && this.#unclaimed.length < ITERATOR_HIGH_WATER / 2) this.resume();
          this.#finishIfDrained();
          yield next;
          continue;
        }
        if (this.#peerEnded || this.#closed) return;
        if (this.#paused) this.resume();
        await new Promise<void>((r) => { this.#wakeIterator = r; });
        this.#wakeIterator = undefined;
      }
    } finally {
      this.#iterators--;
      this.#wakeIterator = undefined;
    }
  }

  // ---- closing ----

  /** Half-close: the peer receives everything sent so far, then 'end'. Requests from the peer are still answered. */
  end(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#endQueued) return Promise.resolve();
    this.#endQueued = true;
    let written: boolean;
    try {
      written = this.#tryWrite(Kind.End, 0, new Uint8Array(0));
    } catch (err) {
      return Promise.reject(err);
    }
    if (written) {
      this.#endSent = true;
      this.#maybeFinish();
      return Promise.resolve();
    }
    return this.#sendQueue.push(Kind.End, 0, new Uint8Array(0), {}).then(() => this.#maybeFinish(), () => {});
  }

  /** Graceful close: ends, lets the peer drain and answer, and resolves once closed (destroying after closeTimeoutMs). */
  async close(): Promise<void> {
    if (this.#closed) return;
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
    this.#finish(err, err ? DisconnectCode.Internal : DisconnectCode.Normal, err?.message ?? 'destroyed');
  }

  #maybeFinish(): void {
    if (this.#closed || !this.#endSent || !this.#peerEnded) return;
    if (this.#inFlightHandlers > 0 || this.#requests.size > 0 || this.#sendQueue.length > 0) return;
    if (this.#handler && this.#unhandled.length > 0) return;
    this.#finish(undefined, DisconnectCode.Normal, 'closed');
  }

  /**
   * The peer's end of the link closed. What it published before is still in the ring (the mappings
   * stay until #finish), so reading continues through the usual pause/resume path and the channel
   * finishes only once the ring is empty and held copies were taken (#finishIfDrained). Nothing can
   * reach the peer any more: queued sends fail now.
   */
  #onGone(code: number | undefined, reason: string): void {
    if (this.#closed || this.#gone) return;
    this.#gone = { code, reason };
    this.#sendQueue.failAll(this.#goneError());
    this.#wakeIterator?.();
    if (this.#halted()) return;
    if (this.#link.wake && !this.#busy) this.#onWake();
    else this.#drain();
  }

  #goneError(): RingwireError {
    const g = this.#gone!;
    return ringwireError('ERR_PEER_GONE', `the peer went away: ${g.reason}${g.code !== undefined ? ` (disconnect code ${g.code})` : ''}`);
  }

  /** After the peer left: closes once everything it sent was read and handed over; cleanly if it had ended. */
  #finishIfDrained(): void {
    if (!this.#gone || this.#closed) return;
    if (this.#unclaimed.length > 0 || this.#link.consumer.available()) return;
    if (this.#peerEnded && this.#endSent && this.#requests.size === 0) this.#finish(undefined, DisconnectCode.Normal, 'closed');
    else this.#finish(this.#goneError(), DisconnectCode.Normal, this.#gone.reason);
  }

  #finish(err: RingwireError | undefined, code: DisconnectCode, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pumpAbort.abort();
    const failure = err ?? ringwireError('ERR_RING_CLOSED', 'channel closed');
    this.#requests.failAll(err?.code === 'ERR_PEER_GONE' ? err : ringwireError('ERR_PEER_GONE', `channel closed before the response arrived (${reason})`));
    this.#sendQueue.failAll(failure);
    this.#link.close(code, reason);
    this.#restartReading();
    this.#wakeIterator?.();
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
      requests: { ...r, served: this.#served },
    };
  }

  /** The largest correlation id before ids wrap (2^27 - 1). */
  static readonly maxRequestId = MAX_REQUEST_ID;
}
