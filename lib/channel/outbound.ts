/**
 * The sending side of a channel: a record goes into the outbound ring at once when it fits and
 * nothing is queued ahead of it, else through the SendQueue, which waits for space (back-pressure)
 * without reordering. Responses the channel sends on its handlers' behalf are counted while they
 * wait, so reading can stop when a peer sends requests but never reads the answers.
 */
import { ringwireError, type RingwireError } from '../errors.js';
import type { SendOptions } from './options.js';
import type { LinkProducer } from './link.js';
import { Kind, recordType } from './records.js';
import type { SendQueue } from './send-queue.js';
import type { ChannelState } from './state.js';

/**
 * Responses waiting for ring space, in bytes, beyond which the channel stops reading requests
 * (the larger of this and the outbound ring's message size): a peer that sends requests but never
 * reads the answers then meets back-pressure instead of growing our memory.
 */
const RESPONSE_QUEUE_HIGH_WATER = 1 << 20;

export interface OutboundHooks {
  /** The ring is corrupt: the channel must be destroyed with this error. */
  destroy(err: RingwireError): void;
  /** A started request could not be written: it fails with this error. */
  failRequest(id: number, err: Error): void;
  /** The bytes of waiting responses changed: the channel decides again whether to read. */
  throttle(): void;
}

export class Outbound {
  #producer: LinkProducer;
  #queue: SendQueue;
  #state: Readonly<ChannelState>;
  #hooks: OutboundHooks;
  #commitScheduled = false;
  #queuedResponseBytes = 0;
  #responseHighWater: number;

  constructor(producer: LinkProducer, queue: SendQueue, state: Readonly<ChannelState>, hooks: OutboundHooks) {
    this.#producer = producer;
    this.#queue = queue;
    this.#state = state;
    this.#hooks = hooks;
    this.#responseHighWater = Math.max(RESPONSE_QUEUE_HIGH_WATER, producer.maxMessageSize);
  }

  get maxMessageSize(): number {
    return this.#producer.maxMessageSize;
  }

  /** True while responses waiting for space exceed their bound: reading must stop. */
  get backedUp(): boolean {
    return this.#queuedResponseBytes > this.#responseHighWater;
  }

  checkMessage(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw ringwireError('ERR_INVALID_ARG', 'message must be a Uint8Array');
    if (data.length > this.maxMessageSize) throw ringwireError('ERR_RING_TOO_LARGE', `message of ${data.length} bytes exceeds this channel's maximum of ${this.maxMessageSize}`);
  }

  checkWritable(kind: number): void {
    const s = this.#state;
    if (s.closed) throw ringwireError('ERR_RING_CLOSED', 'channel is closed');
    if (s.gone && kind !== Kind.Response && kind !== Kind.ErrorResponse) throw s.goneError();
    if (s.endQueued && kind !== Kind.Response && kind !== Kind.ErrorResponse) throw ringwireError('ERR_RING_CLOSED', 'channel was ended: no more messages or requests');
  }

  /**
   * Writes one record now if it fits and nothing is queued ahead of it. A ring the peer corrupted
   * throws here: the channel is destroyed (a started request fails with the error) and the error rethrown.
   */
  tryWrite(kind: number, id: number, data: Uint8Array): boolean {
    if (this.#queue.length > 0) return false;
    const p = this.#producer;
    let off: number;
    try {
      off = p.claim(data.length, recordType(kind, id));
    } catch (err) {
      if (kind === Kind.Request) this.#hooks.failRequest(id, err as Error);
      this.#hooks.destroy(err as RingwireError);
      throw err;
    }
    if (off < 0) return false;
    p.data.set(data, off);
    if (kind === Kind.Data) this.#commitSoon();
    else p.commit();
    return true;
  }

  /**
   * Data messages sent in one synchronous run are published together at the end of it (one
   * publishing store, at most one doorbell) instead of one by one; anything else commits at once and
   * publishes them with it, so order never changes.
   */
  #commitSoon(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    queueMicrotask(() => {
      this.#commitScheduled = false;
      if (!this.#state.closed) this.#producer.commit();
    });
  }

  trySend(data: Uint8Array): boolean {
    this.checkMessage(data);
    this.checkWritable(Kind.Data);
    return this.tryWrite(Kind.Data, 0, data);
  }

  send(data: Uint8Array, opts: SendOptions): Promise<void> {
    try {
      this.checkMessage(data);
      this.checkWritable(Kind.Data);
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      if (this.tryWrite(Kind.Data, 0, data)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.push(Kind.Data, 0, data, opts);
  }

  /**
   * A message of any size: one record when it fits, else a LargeStart record with the total length
   * and LargePart records of at most a quarter of the ring each (so several are in flight), written
   * in order from views of `data` (one copy, into the ring). Resolves once the last piece is in the ring.
   */
  async sendLarge(data: Uint8Array, opts: SendOptions): Promise<void> {
    if (!(data instanceof Uint8Array)) throw ringwireError('ERR_INVALID_ARG', 'message must be a Uint8Array');
    if (data.length <= this.maxMessageSize) return this.send(data, opts);
    if (data.length > 0xffffffff) throw ringwireError('ERR_RING_TOO_LARGE', `message of ${data.length} bytes exceeds sendLarge's maximum of 4 GiB - 1`);
    this.checkWritable(Kind.Data);
    const piece = Math.max(8, Math.floor(this.maxMessageSize / 4) & ~7);
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, data.length, true);
    const writes = [this.#write(Kind.LargeStart, head, opts)];
    for (let off = 0; off < data.length; off += piece) writes.push(this.#write(Kind.LargePart, data.subarray(off, Math.min(data.length, off + piece)), opts));
    await Promise.all(writes);
  }

  /** One record of `kind` (id 0) now if it fits and nothing is queued, else queued behind the rest. */
  #write(kind: number, data: Uint8Array, opts: SendOptions): Promise<void> {
    try {
      if (this.tryWrite(kind, 0, data)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#queue.push(kind, 0, data, opts);
  }

  claim(length: number): Uint8Array | null {
    this.checkWritable(Kind.Data);
    if (this.#queue.length > 0) return null;
    const p = this.#producer;
    let off: number;
    try {
      off = p.claim(length, recordType(Kind.Data, 0));
    } catch (err) {
      this.#hooks.destroy(err as RingwireError);
      throw err;
    }
    return off < 0 ? null : p.data.subarray(off, off + length);
  }

  async claimAsync(length: number, opts: SendOptions): Promise<Uint8Array> {
    for (;;) {
      if (this.#queue.length > 0) await this.#queue.barrier(opts);
      const view = this.claim(length);
      if (view) return view;
      await this.#waitForSpace(length, opts);
    }
  }

  commit(): void {
    this.#producer.commit();
  }

  async #waitForSpace(length: number, opts: SendOptions): Promise<void> {
    const ok = await this.#producer.waitForSpace(length, { ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
    if (!ok) throw ringwireError('ERR_TIMEOUT', `no space in the outbound ring within ${opts.timeoutMs} ms`);
    if (this.#state.closed) throw ringwireError('ERR_RING_CLOSED', 'channel is closed');
  }

  /** Sends a response from inside the channel: now if possible, else queued (counted toward the throttle). */
  respond(kind: number, id: number, data: Uint8Array): void {
    if (this.#state.closed || this.#state.gone) return;
    if (data.length > this.maxMessageSize) {
      kind = Kind.ErrorResponse;
      data = Buffer.from(`response of ${data.length} bytes exceeds the channel's maximum of ${this.maxMessageSize}`);
    }
    try {
      if (this.tryWrite(kind, id, data)) return;
    } catch {
      return; // the channel was destroyed with the error
    }
    this.#queuedResponseBytes += data.length;
    this.#hooks.throttle();
    this.#queue.push(kind, id, data, {}).catch(() => {}).finally(() => {
      this.#queuedResponseBytes -= data.length;
      this.#hooks.throttle();
    });
  }
}
