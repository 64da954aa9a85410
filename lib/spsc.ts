/**
 * Single-producer single-consumer ring of variable-length records.
 *
 * Concurrency contract: exactly one SpscProducer and one SpscConsumer per ring, each used from one
 * thread (or process) at a time. The producer writes only its block (header, tail, records); the
 * consumer writes only its block (head, waiting flag). Either block may be a read-only mapping on
 * the side that does not own it.
 *
 * Indices are free-running byte positions (u32 arithmetic through `| 0`); `tail - head` is the
 * bytes in use and is never above capacity. Every value read from the peer's block is validated
 * before use; a broken invariant throws ERR_RING_CORRUPT and poisons the ring.
 */
import { ringwireError } from './errors.js';
import {
  CW, PW, RECORD_HEADER, RingKind, TYPE_PADDING, MAX_USER_TYPE, maxMessageSize, recordBytes,
} from './layout.js';
import { attachConsumerBlock, attachProducerBlock, type RingMemory } from './ring-memory.js';
import type {
  ConsumerStats, ProducerStats, RecordCallback, RingConsumer, RingOptions, RingProducer,
} from './ring-types.js';
import type { Doorbell } from './doorbell.js';
import { DEFAULT_SPIN, waitUntil, waitUntilSync, type WaitOptions, type WaitingSide } from './wait.js';

function corrupt(side: string, what: string): never {
  throw ringwireError('ERR_RING_CORRUPT', `${side}: ${what}`);
}

export function checkMessage(length: number, type: number, max: number): void {
  // Fast path for the hot loop: one comparison chain for the common valid case.
  if ((length >>> 0) === length && length <= max && (type >>> 0) === type && type <= MAX_USER_TYPE) return;
  if (!Number.isInteger(length) || length < 0) {
    throw ringwireError('ERR_INVALID_ARG', `message length must be a non-negative integer, got ${length}`);
  }
  if (length > max) {
    throw ringwireError('ERR_RING_TOO_LARGE', `message of ${length} bytes exceeds this ring's maximum of ${max} bytes`);
  }
  if (!Number.isInteger(type) || type < 0 || type > MAX_USER_TYPE) {
    throw ringwireError('ERR_INVALID_ARG', `message type must be an integer from 0 to ${MAX_USER_TYPE}, got ${type}`);
  }
}

export class SpscProducer implements RingProducer {
  /** The whole record area; claim() returns offsets into it. */
  readonly data: Uint8Array;
  readonly capacity: number;
  readonly maxMessageSize: number;
  #mask: number;
  #pctl: Int32Array;
  /** The consumer's block: read-only to us. */
  #kctl: Int32Array;
  #words: Int32Array;
  #tail: number;
  #published: number;
  #head: number;
  #dataBell: Doorbell | undefined;
  #spaceBell: Doorbell | undefined;
  #spin: number;
  #broken: Error | undefined;
  #stats: ProducerStats = { messages: 0, bytes: 0, doorbellsRung: 0, doorbellsSuppressed: 0, fullWaits: 0 };
  #pending = 0;
  #pendingBytes = 0;
  #waitingSide: WaitingSide;
  #need = 0;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    const p = attachProducerBlock(memory.producer, RingKind.Spsc);
    const c = attachConsumerBlock(memory.consumer, RingKind.Spsc, p.capacity);
    this.data = p.data;
    this.capacity = p.capacity;
    this.maxMessageSize = maxMessageSize(p.capacity);
    this.#mask = p.capacity - 1;
    this.#pctl = p.ctl;
    this.#kctl = c.ctl;
    this.#words = p.words;
    this.#tail = this.#published = Atomics.load(p.ctl, PW.tail);
    this.#head = Atomics.load(c.ctl, CW.head);
    this.#checkHead(this.#head, this.#head);
    this.#dataBell = opts.dataBell;
    this.#spaceBell = opts.spaceBell;
    this.#spin = opts.spin ?? DEFAULT_SPIN;
    this.#waitingSide = {
      ready: () => this.#hasSpaceFor(this.#need),
      // Seq-cst store; the consumer loads it after publishing its head (see waitUntil).
      setWaiting: (on) => Atomics.store(this.#pctl, PW.producerWaiting, on ? 1 : 0),
    };
  }

  #checkHead(head: number, previous: number): void {
    const used = (this.#published - head) | 0;
    if ((head & 7) !== 0 || used < 0 || used > this.capacity || ((head - previous) | 0) < 0) {
      this.#broken = ringwireError('ERR_RING_CORRUPT', `producer: consumer head ${head >>> 0} is impossible (tail ${this.#published >>> 0}, last head ${previous >>> 0})`);
      throw this.#broken;
    }
  }

  /** True when `bytes` more fit; re-reads the consumer's head only when the cached one says no. */
  #fits(bytes: number): boolean {
    if (((this.#tail - this.#head) | 0) + bytes <= this.capacity) return true;
    const head = Atomics.load(this.#kctl, CW.head);
    this.#checkHead(head, this.#head);
    this.#head = head;
    return ((this.#tail - head) | 0) + bytes <= this.capacity;
  }

  #hasSpaceFor(length: number): boolean {
    const rec = recordBytes(length);
    const off = this.#tail & this.#mask;
    return off + rec > this.capacity ? this.#fits(this.capacity - off + rec) || this.#fits(this.capacity - off) : this.#fits(rec);
  }

  /**
   * Reserves a record of `length` bytes and returns the offset of its payload in `data`, or -1
   * when the ring is full (back-pressure: wait with waitForSpace and retry). Claims accumulate
   * until commit() publishes them all; a claim that finds the ring full publishes earlier claims.
   */
  claim(length: number, type = 0): number {
    if (this.#broken) throw this.#broken;
    checkMessage(length, type, this.maxMessageSize);
    const rec = recordBytes(length);
    let off = this.#tail & this.#mask;
    if (off + rec > this.capacity) {
      if (!this.#padToEnd(off)) return this.#full();
      off = 0;
    }
    if (!this.#fits(rec)) return this.#full();
    this.#words[off >> 2] = length;
    this.#words[(off >> 2) + 1] = type;
    this.#tail = (this.#tail + rec) | 0;
    this.#pending++;
    this.#pendingBytes += length;
    return off + RECORD_HEADER;
  }

  /** Records never straddle the end: pad to it, so the reader always sees contiguous payloads. */
  #padToEnd(off: number): boolean {
    const pad = this.capacity - off;
    if (!this.#fits(pad)) return false;
    this.#words[off >> 2] = pad - RECORD_HEADER;
    this.#words[(off >> 2) + 1] = TYPE_PADDING;
    this.#tail = (this.#tail + pad) | 0;
    return true;
  }

  #full(): number {
    this.commit();
    return -1;
  }

  /** Publishes every claimed record and rings the data bell if the consumer sleeps. */
  commit(): void {
    if (this.#tail === this.#published) return;
    // Release: the consumer must see the records before the tail that covers them.
    Atomics.store(this.#pctl, PW.tail, this.#tail);
    this.#published = this.#tail;
    this.#stats.messages += this.#pending;
    this.#stats.bytes += this.#pendingBytes;
    this.#pending = this.#pendingBytes = 0;
    // The lost-wakeup check: tail stored (seq-cst) *then* the flag loaded. A consumer about to
    // sleep stores its flag *then* re-loads the tail, so one of us sees the other's store.
    if (Atomics.load(this.#kctl, CW.consumerWaiting) !== 0) {
      this.#stats.doorbellsRung++;
      this.#dataBell?.ring();
    } else {
      this.#stats.doorbellsSuppressed++;
    }
  }

  /** Copies `bytes` into one record and publishes it. False when full (nothing was written). */
  send(bytes: Uint8Array, type = 0): boolean {
    const off = this.claim(bytes.length, type);
    if (off < 0) return false;
    this.data.set(bytes, off);
    this.commit();
    return true;
  }

  /** send() that waits for space instead of returning false. */
  async sendAsync(bytes: Uint8Array, type = 0, opts: WaitOptions = {}): Promise<void> {
    while (!this.send(bytes, type)) {
      if (!(await this.waitForSpace(bytes.length, opts))) {
        throw ringwireError('ERR_TIMEOUT', `no space for a ${bytes.length}-byte message within ${opts.timeoutMs} ms`);
      }
    }
  }

  /** Resolves true once a `length`-byte message fits, false on timeout. */
  waitForSpace(length: number, opts: WaitOptions = {}): Promise<boolean> {
    if (this.#broken) return Promise.reject(this.#broken);
    checkMessage(length, 0, this.maxMessageSize);
    this.#need = length;
    if (this.#hasSpaceFor(length)) return Promise.resolve(true);
    this.#stats.fullWaits++;
    return waitUntil(this.#waitingSide, this.#spaceBell, { spin: this.#spin, ...opts });
  }

  /** Blocking waitForSpace for worker threads. */
  waitForSpaceSync(length: number, timeoutMs = Infinity): boolean {
    checkMessage(length, 0, this.maxMessageSize);
    this.#need = length;
    if (this.#hasSpaceFor(length)) return true;
    this.#stats.fullWaits++;
    return waitUntilSync(this.#waitingSide, this.#spaceBell, timeoutMs, this.#spin);
  }

  /** Counters since creation; exact for this side, read without synchronisation. */
  stats(): ProducerStats {
    return { ...this.#stats };
  }
}

export class SpscConsumer implements RingConsumer {
  readonly data: Uint8Array;
  readonly capacity: number;
  offset = 0;
  length = 0;
  type = 0;
  #mask: number;
  #cctl: Int32Array;
  /** The producer's block: read-only to us. */
  #kctl: Int32Array;
  #words: Int32Array;
  /** Released position, as published in our head. */
  #head: number;
  /** Read position: records between head and here have been read but not released. */
  #pos: number;
  #tail: number;
  #dataBell: Doorbell | undefined;
  #spaceBell: Doorbell | undefined;
  #spin: number;
  #broken: Error | undefined;
  #stats: ConsumerStats = { messages: 0, bytes: 0, doorbellsRung: 0, doorbellsSuppressed: 0, parks: 0, abandoned: 0 };
  #waitingSide: WaitingSide;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    const p = attachProducerBlock(memory.producer, RingKind.Spsc);
    const c = attachConsumerBlock(memory.consumer, RingKind.Spsc, p.capacity);
    this.data = p.data;
    this.capacity = p.capacity;
    this.#mask = p.capacity - 1;
    this.#cctl = c.ctl;
    this.#kctl = p.ctl;
    this.#words = p.words;
    this.#head = this.#pos = this.#tail = Atomics.load(c.ctl, CW.head);
    this.#dataBell = opts.dataBell;
    this.#spaceBell = opts.spaceBell;
    this.#spin = opts.spin ?? DEFAULT_SPIN;
    this.#waitingSide = {
      ready: () => this.available(),
      setWaiting: (on) => {
        if (on) this.#stats.parks++;
        // Seq-cst store; the producer loads it after publishing its tail (see commit()).
        Atomics.store(this.#cctl, CW.consumerWaiting, on ? 1 : 0);
      },
    };
  }

  #fail(what: string): never {
    try {
      corrupt('consumer', what);
    } catch (err) {
      this.#broken = err as Error;
      throw err;
    }
  }

  /** Re-reads the producer's tail; true when there is more to read. */
  #refresh(): boolean {
    const tail = Atomics.load(this.#kctl, PW.tail);
    const ahead = (tail - this.#head) | 0;
    if ((tail & 7) !== 0 || ahead < 0 || ahead > this.capacity || ((tail - this.#tail) | 0) < 0) {
      this.#fail(`producer tail ${tail >>> 0} is impossible (head ${this.#head >>> 0}, last tail ${this.#tail >>> 0})`);
    }
    this.#tail = tail;
    return tail !== this.#pos;
  }

  /** True when a record (or padding) is waiting. Stale by at most one producer commit. */
  available(): boolean {
    if (this.#broken) throw this.#broken;
    return this.#pos !== this.#tail || this.#refresh();
  }

  /**
   * Reads the next record in place: returns its payload length (and sets offset, length, type),
   * or -1 when the ring is empty. The payload stays valid until release().
   */
  read(): number {
    if (this.#broken) throw this.#broken;
    if (this.#pos === this.#tail && !this.#refresh()) return -1;
    const off = this.#pos & this.#mask;
    const len = this.#words[off >> 2]! >>> 0;
    const type = this.#words[(off >> 2) + 1]! >>> 0;
    if (type > MAX_USER_TYPE) return this.#readPadding(off, len, type);
    const rec = recordBytes(len);
    if (len > this.capacity || off + rec > this.capacity || rec > ((this.#tail - this.#pos) | 0)) {
      this.#fail(`record of ${len} bytes at ${off} runs past the ${(this.#tail - this.#pos) | 0} bytes published`);
    }
    this.offset = off + RECORD_HEADER;
    this.length = len;
    this.type = type;
    this.#pos = (this.#pos + rec) | 0;
    this.#stats.messages++;
    this.#stats.bytes += len;
    return len;
  }

  /** Off the hot path: skip a padding record (which must end the area) and read on. */
  #readPadding(off: number, len: number, type: number): number {
    if (type !== TYPE_PADDING) this.#fail(`record at ${off} has reserved type bits 0x${type.toString(16)}`);
    const pad = len + RECORD_HEADER;
    if (len > this.capacity || off + pad !== this.capacity || pad > ((this.#tail - this.#pos) | 0)) {
      this.#fail(`padding record of ${len} bytes at ${off} does not end the ring`);
    }
    this.#skip(pad);
    return this.read();
  }

  /** Skips bytes that hold no message; releases them at once when nothing unreleased precedes them. */
  #skip(bytes: number): void {
    const releaseNow = this.#pos === this.#head;
    this.#pos = (this.#pos + bytes) | 0;
    if (releaseNow) this.release();
  }

  /** A view of the current record's payload (allocates a view; use offset/length to avoid it). */
  view(): Uint8Array {
    return this.data.subarray(this.offset, this.offset + this.length);
  }

  /** Releases every record read so far, returning its space to the producer. */
  release(): void {
    if (this.#pos === this.#head) return;
    // Release: we are done reading these records before the producer may overwrite them.
    Atomics.store(this.#cctl, CW.head, this.#pos);
    this.#head = this.#pos;
    if (Atomics.load(this.#kctl, PW.producerWaiting) !== 0) {
      this.#stats.doorbellsRung++;
      this.#spaceBell?.ring();
    } else {
      this.#stats.doorbellsSuppressed++;
    }
  }

  /** Copying receive: the next payload in a fresh Uint8Array, or null when empty. */
  receive(): Uint8Array | null {
    if (this.read() < 0) return null;
    const copy = this.data.slice(this.offset, this.offset + this.length);
    this.release();
    return copy;
  }

  /** Batched receive: calls `fn` for up to `max` records, then releases them all at once. */
  drain(fn: RecordCallback, max = Infinity): number {
    let n = 0;
    try {
      while (n < max && this.read() >= 0) {
        n++;
        fn(this.data, this.offset, this.length, this.type);
      }
    } finally {
      this.release();
    }
    return n;
  }

  /** Resolves true when data is available, false on timeout; spins, then parks on the data bell. */
  waitForData(opts: WaitOptions = {}): Promise<boolean> {
    if (this.available()) return Promise.resolve(true);
    return waitUntil(this.#waitingSide, this.#dataBell, { spin: this.#spin, ...opts });
  }

  /** Blocking waitForData for worker threads. */
  waitForDataSync(timeoutMs = Infinity): boolean {
    if (this.available()) return true;
    return waitUntilSync(this.#waitingSide, this.#dataBell, timeoutMs, this.#spin);
  }

  /** Copies of every message as they arrive; ends only when iteration is abandoned. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const msg = this.receive();
      if (msg) yield msg;
      else await this.waitForData();
    }
  }

  stats(): ConsumerStats {
    return { ...this.#stats };
  }
}
