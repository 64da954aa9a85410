/**
 * What SPSC and MPSC rings share above their index arithmetic: the copying and batched helpers,
 * the waits, the doorbell decisions and the counters. Subclasses supply claim/commit and
 * read/release, which is where the two kinds differ.
 */
import { ringwireError } from '../errors.js';
import { CW, MAX_USER_TYPE, PW, maxMessageSize, type RingKind } from './layout.js';
import { attachRing, type RingMemory } from './ring-memory.js';
import type { ConsumerStats, ProducerStats, RecordCallback, RingConsumer, RingOptions, RingProducer } from './ring-types.js';
import type { Doorbell } from './doorbell.js';
import { DEFAULT_SPIN, waitUntil, waitUntilSync, type WaitOptions, type WaitingSide } from './wait.js';

/**
 * Rings `bell` when the peer's waiting flag at `flags[word]` is set, else counts a suppressed ring.
 * Callers load the flag only after their own publishing store (the lost-wakeup check).
 */
function ringIfWaiting(flags: Int32Array, word: number, bell: Doorbell | undefined, counters: { doorbellsRung: number; doorbellsSuppressed: number }): void {
  if (Atomics.load(flags, word) !== 0) {
    counters.doorbellsRung++;
    bell?.ring();
  } else {
    counters.doorbellsSuppressed++;
  }
}

/** Validates a message's length and type; the fast path is one comparison chain. */
export function checkMessage(length: number, type: number, max: number): void {
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

export abstract class ProducerBase implements RingProducer {
  /** The whole record area; claim() returns offsets into it. */
  readonly data: Uint8Array;
  readonly capacity: number;
  readonly maxMessageSize: number;
  /** The producer block (ours, or shared by all producers for MPSC). */
  protected readonly ctl: Int32Array;
  /** The consumer's block: read-only to us. */
  protected readonly peerCtl: Int32Array;
  protected readonly words: Int32Array;
  protected readonly mask: number;
  protected readonly counters: ProducerStats = { messages: 0, bytes: 0, doorbellsRung: 0, doorbellsSuppressed: 0, fullWaits: 0 };
  protected broken: Error | undefined;
  #dataBell: Doorbell | undefined;
  #spaceBell: Doorbell | undefined;
  #spin: number;
  #need = 0;
  #waitingSide: WaitingSide;

  /** Attaches (validates) both blocks of `memory` as a ring of `kind`. */
  constructor(memory: RingMemory, kind: RingKind, opts: RingOptions) {
    const { p, c } = attachRing(memory, kind);
    this.data = p.data;
    this.capacity = p.capacity;
    this.maxMessageSize = maxMessageSize(p.capacity, p.kind);
    this.ctl = p.ctl;
    this.peerCtl = c.ctl;
    this.words = p.words;
    this.mask = p.capacity - 1;
    this.#dataBell = opts.dataBell;
    this.#spaceBell = opts.spaceBell;
    this.#spin = opts.spin ?? DEFAULT_SPIN;
    this.#waitingSide = {
      ready: () => this.hasSpaceFor(this.#need),
      // A count, not a flag: several waits (several producers, or several awaits on one) may park
      // at once, and the first to wake must not clear it for the others. Seq-cst; the consumer
      // loads it after publishing its head (see ConsumerBase.notifyProducers).
      setWaiting: (on) => Atomics.add(this.ctl, PW.producerWaiting, on ? 1 : -1),
    };
  }

  /**
   * Reserves a record of `length` bytes and returns the offset of its payload in `data`, or -1
   * when the ring is full (back-pressure: waitForSpace, then retry).
   */
  abstract claim(length: number, type?: number): number;
  /** Publishes what was claimed and rings the data bell if the consumer sleeps. */
  abstract commit(): void;
  /** True when claim(length) can make progress now. */
  protected abstract hasSpaceFor(length: number): boolean;

  /**
   * The lost-wakeup check, called right after the store that publishes records: that store is
   * seq-cst, *then* the consumer's flag is loaded. A consumer about to sleep stores its flag *then*
   * re-loads our index, so one of us sees the other's store (docs/memory-ordering.md).
   */
  protected notifyConsumer(): void {
    ringIfWaiting(this.peerCtl, CW.consumerWaiting, this.#dataBell, this.counters);
  }

  /** Copies `bytes` into one record and publishes it. False when full (nothing was written). */
  send(bytes: Uint8Array, type = 0): boolean {
    const off = this.claim(bytes.length, type);
    if (off < 0) return false;
    this.data.set(bytes, off);
    this.commit();
    return true;
  }

  /** send() that waits for space instead of returning false; ERR_TIMEOUT after opts.timeoutMs. */
  async sendAsync(bytes: Uint8Array, type = 0, opts: WaitOptions = {}): Promise<void> {
    while (!this.send(bytes, type)) {
      if (!(await this.waitForSpace(bytes.length, opts))) {
        throw ringwireError('ERR_TIMEOUT', `no space for a ${bytes.length}-byte message within ${opts.timeoutMs} ms`);
      }
    }
  }

  /** Resolves true once a `length`-byte message fits, false on timeout. */
  waitForSpace(length: number, opts: WaitOptions = {}): Promise<boolean> {
    try {
      if (this.broken) throw this.broken;
      if (!this.#prepareWait(length)) return Promise.resolve(true);
    } catch (err) {
      return Promise.reject(err);
    }
    return waitUntil(this.#waitingSide, this.#spaceBell, { spin: this.#spin, ...opts });
  }

  /** Blocking waitForSpace, for worker threads and processes that own their thread. */
  waitForSpaceSync(length: number, timeoutMs = Infinity): boolean {
    if (this.broken) throw this.broken;
    if (!this.#prepareWait(length)) return true;
    return waitUntilSync(this.#waitingSide, this.#spaceBell, timeoutMs, this.#spin);
  }

  /** False when there is space already; otherwise counts the wait. */
  #prepareWait(length: number): boolean {
    checkMessage(length, 0, this.maxMessageSize);
    this.#need = length;
    if (this.hasSpaceFor(length)) return false;
    this.counters.fullWaits++;
    return true;
  }

  /** Counters since creation; exact for this side, read without synchronisation. */
  stats(): ProducerStats {
    return { ...this.counters };
  }
}

export abstract class ConsumerBase implements RingConsumer {
  readonly data: Uint8Array;
  readonly capacity: number;
  /** Offset, length and type of the record the last successful read() returned. */
  offset = 0;
  length = 0;
  type = 0;
  /** The consumer block: ours. */
  protected readonly ctl: Int32Array;
  /** The producer block: read-only to us for SPSC, ours and the producers' for MPSC. */
  protected readonly peerCtl: Int32Array;
  protected readonly words: Int32Array;
  protected readonly mask: number;
  protected readonly counters: ConsumerStats = { messages: 0, bytes: 0, doorbellsRung: 0, doorbellsSuppressed: 0, parks: 0, abandoned: 0 };
  protected broken: Error | undefined;
  protected readonly dataBell: Doorbell | undefined;
  protected readonly spin: number;
  protected readonly waitingSide: WaitingSide;
  #spaceBell: Doorbell | undefined;

  /** Attaches (validates) both blocks of `memory` as a ring of `kind`. */
  constructor(memory: RingMemory, kind: RingKind, opts: RingOptions) {
    const { p, c } = attachRing(memory, kind);
    this.data = p.data;
    this.capacity = p.capacity;
    this.ctl = c.ctl;
    this.peerCtl = p.ctl;
    this.words = p.words;
    this.mask = p.capacity - 1;
    this.dataBell = opts.dataBell;
    this.#spaceBell = opts.spaceBell;
    this.spin = opts.spin ?? DEFAULT_SPIN;
    this.waitingSide = {
      ready: () => this.available(),
      setWaiting: (on) => {
        if (on) this.counters.parks++;
        // A count, as for producers: concurrent waits on one consumer must not clear each other's
        // flag. Seq-cst; the producer loads it after publishing (see ProducerBase.notifyConsumer).
        Atomics.add(this.ctl, CW.consumerWaiting, on ? 1 : -1);
      },
    };
  }

  /** True when a record can be read now. */
  abstract available(): boolean;
  /**
   * Reads the next record in place: returns its payload length (and sets offset, length, type),
   * or -1 when there is none. The payload stays valid until release().
   */
  abstract read(): number;
  /** Releases every record read so far, returning its space to the producer(s). */
  abstract release(): void;

  /** Throws ERR_RING_CORRUPT and poisons the ring: every later call throws the same error. */
  protected fail(what: string): never {
    this.broken = ringwireError('ERR_RING_CORRUPT', `consumer: ${what}`);
    throw this.broken;
  }

  /**
   * Validates a tail read from the producer block: 8-aligned, at most capacity ahead of our head,
   * never behind the last one seen. Anything else is ERR_RING_CORRUPT.
   */
  protected checkTail(tail: number, head: number, last: number, what: string): void {
    const ahead = (tail - head) | 0;
    if ((tail & 7) !== 0 || ahead < 0 || ahead > this.capacity || ((tail - last) | 0) < 0) {
      this.fail(`${what} ${tail >>> 0} is impossible (head ${head >>> 0}, last seen ${last >>> 0})`);
    }
  }

  /** After the head store that frees space: ring the space bell if a producer waits for it. */
  protected notifyProducers(): void {
    ringIfWaiting(this.peerCtl, PW.producerWaiting, this.#spaceBell, this.counters);
  }

  /** A view of the current record's payload (allocates a view; use offset/length to avoid it). */
  view(): Uint8Array {
    return this.data.subarray(this.offset, this.offset + this.length);
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
    return waitUntil(this.waitingSide, this.dataBell, { spin: this.spin, ...opts });
  }

  /** Blocking waitForData, for worker threads and processes that own their thread. */
  waitForDataSync(timeoutMs = Infinity): boolean {
    if (this.available()) return true;
    return waitUntilSync(this.waitingSide, this.dataBell, timeoutMs, this.spin);
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
    return { ...this.counters };
  }
}
