/**
 * Multi-producer single-consumer ring of variable-length records.
 *
 * Concurrency contract: any number of MpscProducers (threads or processes) and one MpscConsumer.
 * Each producer object is used from one thread. The producer block (header, reservation tail,
 * records) is created by the consumer and mapped read-write by every producer; the consumer block
 * (head, waiting count) is the consumer's and read-only to producers.
 *
 * Reservation is lock-free: a producer advances the shared tail by compare-and-swap, marks its
 * record "reserved" with its size and lap tag, writes the payload, and commits by a CAS from that
 * mark to "committed" (layout.ts, MPSC_STATE_*). The consumer reads records strictly in reservation
 * order and zeroes them before releasing, so an unwritten state word holds 0 or a word of an
 * earlier lap (the lap tag tells them apart).
 *
 * A producer that dies between reserving and committing would wedge the ring. The consumer waits
 * `abandonTimeoutMs` for a record at the head (once for all the reservations made before that wait
 * began, however many producers died), then skips it: by its size if the producer got as
 * far as marking it, otherwise slot by slot up to the next marked record, below the tail it saw
 * when the timer started. Each slot it crosses gets a SKIPPED word by compare-and-swap, and the
 * producer marks by compare-and-swap too, so a producer that stalled between its tail CAS and its
 * mark finds SKIPPED and reserves again instead of writing into space the consumer has passed.
 * Skipping is only safe for producers that are really gone. A live producer stalled longer than
 * the timeout between claim and commit finds its commit refused (ERR_TIMEOUT, counted as
 * `revoked`), and its late writes are never read as records (the lap tag); but payload bytes it
 * writes after the skip may land in space that another producer has reserved since. Choose the
 * timeout well above any pause a live producer can take between claim() and commit().
 */
import { ringwireError } from '../errors.js';
import {
  CW, MPSC_STATE_COMMITTED, MPSC_STATE_TAG_SHIFT, MPSC_STATE_VALUE_MASK, PW, RECORD_HEADER, RingKind,
  TYPE_PADDING, MAX_USER_TYPE, recordBytes,
} from './layout.js';
import type { RingMemory } from './ring-memory.js';
import type { RingOptions } from './ring-types.js';
import { ConsumerBase, ProducerBase, checkMessage } from './ring-base.js';
import { waitUntil, waitUntilSync, type WaitOptions, type WaitingSide } from './wait.js';

export const DEFAULT_ABANDON_TIMEOUT_MS = 1000;

/** The lap tag of a position, already shifted into place in a state word. */
function lapTag(position: number, capShift: number): number {
  return ((position >>> capShift) & 63) << MPSC_STATE_TAG_SHIFT;
}

/**
 * The consumer's word in a slot it skipped without a mark: committed with value 0, which no record
 * has (a committed value is payload length + 1). With the slot's lap tag.
 */
const SKIPPED = MPSC_STATE_COMMITTED;

/** True when `word` is a mark, a committed state or SKIPPED of the lap whose tag is `tag`. */
function isMarked(word: number, tag: number): boolean {
  return (word ^ tag) >>> MPSC_STATE_TAG_SHIFT === 0 && (word & (MPSC_STATE_VALUE_MASK | MPSC_STATE_COMMITTED)) !== 0;
}

export class MpscProducer extends ProducerBase {
  /** Last consumer head seen by this producer. */
  #head: number;
  #capShift: number;
  /** Index of the claimed record's state word, or -1. */
  #claimWord = -1;
  /** The reserved mark we stored there; commit swaps it for the committed state. */
  #claimMark = 0;
  #claimLen = 0;
  #revoked = 0;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    super(memory, RingKind.Mpsc, opts);
    this.#head = Atomics.load(this.peerCtl, CW.head);
    this.#capShift = 31 - Math.clz32(this.capacity);
  }

  /**
   * True when `bytes` more fit after reservation position `tail` (which may already be stale: then
   * the caller's CAS fails and it retries). Refreshes the cached head only when it says no; the
   * unsigned compare also refreshes a cached head that other producers have left 2 GiB behind.
   */
  #fits(tail: number, bytes: number): boolean {
    if (((tail - this.#head) >>> 0) + bytes <= this.capacity) return true;
    const head = Atomics.load(this.peerCtl, CW.head);
    // The head never passes the reservation tail, so a tail loaded after it bounds it from above.
    const now = Atomics.load(this.ctl, PW.tail);
    if ((head & 7) !== 0 || ((now - head) | 0) < 0) {
      this.broken = ringwireError('ERR_RING_CORRUPT', `producer: consumer head ${head >>> 0} is impossible (reservation tail ${now >>> 0})`);
      throw this.broken;
    }
    this.#head = head;
    // Negative when `tail` is stale: report room, and the caller's CAS fails and reloads it.
    return ((tail - head) | 0) + bytes <= this.capacity;
  }

  protected hasSpaceFor(length: number): boolean {
    const tail = Atomics.load(this.ctl, PW.tail);
    const off = tail & this.mask;
    const rec = recordBytes(length);
    return off + rec > this.capacity ? this.#fits(tail, this.capacity - off) : this.#fits(tail, rec);
  }

  /** One claim may be outstanding per producer: claiming again commits the previous one. */
  claim(length: number, type = 0): number {
    if (this.broken) throw this.broken;
    checkMessage(length, type, this.maxMessageSize);
    if (this.#claimWord >= 0) this.commit();
    const rec = recordBytes(length);
    for (;;) {
      const tail = Atomics.load(this.ctl, PW.tail);
      const off = tail & this.mask;
      if (off + rec > this.capacity) {
        // Reserve the rest of the area as padding on its own, then reserve the record from 0.
        const pad = this.capacity - off;
        if (!this.#fits(tail, pad)) return -1;
        if (Atomics.compareExchange(this.ctl, PW.tail, tail, (tail + pad) | 0) !== tail) continue;
        this.words[(off >> 2) + 1] = TYPE_PADDING;
        // Publishes the padding's type with its committed state; the consumer may be asleep
        // waiting for exactly this, since it frees the space the record needs. Skipped already:
        // the consumer went past the end anyway.
        if (this.#mark(off >> 2, lapTag(tail, this.#capShift) | MPSC_STATE_COMMITTED | (pad - RECORD_HEADER + 1))) this.notifyConsumer();
        continue;
      }
      if (!this.#fits(tail, rec)) return -1;
      if (Atomics.compareExchange(this.ctl, PW.tail, tail, (tail + rec) | 0) !== tail) continue;
      // Marks the reservation with its size at once, so a consumer can skip it if we die now.
      const mark = lapTag(tail, this.#capShift) | rec;
      if (!this.#mark(off >> 2, mark)) continue;
      this.words[(off >> 2) + 1] = type;
      this.#claimMark = mark;
      this.#claimWord = off >> 2;
      this.#claimLen = length;
      return off + RECORD_HEADER;
    }
  }

  /**
   * Stores `state` in the state word of a reservation of ours; false when the consumer has already
   * skipped it (SKIPPED of our lap there), and it is no longer ours. A compare-and-swap from what
   * we saw, never a store: a store could land after the consumer's SKIPPED, in space it has passed.
   * Anything else there (0, a word of an earlier lap) is ours to replace.
   */
  #mark(word: number, state: number): boolean {
    const tag = (state >>> MPSC_STATE_TAG_SHIFT) << MPSC_STATE_TAG_SHIFT;
    for (;;) {
      const seen = Atomics.load(this.words, word);
      if (isMarked(seen, tag)) return false;
      if (Atomics.compareExchange(this.words, word, seen, state) === seen) return true;
    }
  }

  /**
   * Publishes the claimed record and rings the data bell if the consumer sleeps. ERR_TIMEOUT when
   * the consumer had already given the record up as abandoned: it was not delivered.
   */
  commit(): void {
    const word = this.#claimWord;
    if (word < 0) return;
    this.#claimWord = -1;
    const mark = this.#claimMark;
    const committed = (mark & ~MPSC_STATE_VALUE_MASK) | MPSC_STATE_COMMITTED | (this.#claimLen + 1);
    // Release: the payload before the committed state that makes it readable. The CAS fails only
    // if the consumer skipped this record after abandonTimeoutMs and the space moved on.
    if (Atomics.compareExchange(this.words, word, mark, committed) !== mark) {
      this.#revoked++;
      throw ringwireError('ERR_TIMEOUT', `record revoked: the consumer skipped it as abandoned before it was committed (abandonTimeoutMs); it was not delivered`);
    }
    this.counters.messages++;
    this.counters.bytes += this.#claimLen;
    this.notifyConsumer();
  }

  /** Records this producer committed too late, after the consumer had skipped them. */
  get revoked(): number {
    return this.#revoked;
  }
}

export interface MpscConsumerOptions extends RingOptions {
  /** How long a reserved record may stay uncommitted at the head before it is skipped. */
  abandonTimeoutMs?: number;
}

export class MpscConsumer extends ConsumerBase {
  #head: number;
  #pos: number;
  #capShift: number;
  /** Last reservation tail seen; records must lie below it. */
  #reserved: number;
  #abandonTimeoutMs: number;
  #blockedPos = 0;
  #blockedSince = -1;
  /** The reservation tail when the abandon timer started: space below it has been held that long. */
  #blockedTail = 0;
  /**
   * After a skip: every reservation below this tail was made before a timer that has run out
   * started, so it has waited a whole timeout already and is skipped without a timer of its own
   * (many dead producers cost one timeout, not one each). Cleared once the read position passes it.
   */
  #overdueTail = 0;
  #overdue = false;
  /**
   * [from, to) position pairs of skipped slots read since the last release: release() leaves
   * their SKIPPED words in place, since a stalled producer's mark would land on a zero there.
   */
  readonly #keep: number[] = [];
  /**
   * What the waits re-check on every wake: a record to read, or a head reservation whose time is
   * up (skipped there and then). Plain available() would never start the abandon timer.
   */
  readonly #recovering: WaitingSide = {
    ready: () => this.#readyOrRecovered(),
    setWaiting: (on) => this.waitingSide.setWaiting(on),
  };

  constructor(memory: RingMemory, opts: MpscConsumerOptions = {}) {
    super(memory, RingKind.Mpsc, opts);
    this.#head = this.#pos = this.#reserved = Atomics.load(this.ctl, CW.head);
    this.#capShift = 31 - Math.clz32(this.capacity);
    const abandon = opts.abandonTimeoutMs ?? DEFAULT_ABANDON_TIMEOUT_MS;
    if (typeof abandon !== 'number' || !(abandon >= 0)) {
      throw ringwireError('ERR_INVALID_ARG', `abandonTimeoutMs must be a non-negative number, got ${String(abandon)}`);
    }
    this.#abandonTimeoutMs = abandon;
  }

  /** Re-reads the reservation tail; returns bytes reserved beyond the read position. */
  #refreshReserved(): number {
    const tail = Atomics.load(this.peerCtl, PW.tail);
    this.checkTail(tail, this.#head, this.#reserved, 'reservation tail');
    this.#reserved = tail;
    return (tail - this.#pos) | 0;
  }

  /**
   * The state word at the read position, as u32, or 0 when it belongs to another lap (a late
   * writer's store; never a record of ours).
   */
  #state(off: number): number {
    const state = Atomics.load(this.words, off >> 2) >>> 0;
    return (state & ~(MPSC_STATE_VALUE_MASK | MPSC_STATE_COMMITTED)) >>> 0 === lapTag(this.#pos, this.#capShift) >>> 0 ? state : 0;
  }

  /** True when the record at the read position is committed (or padding to skip). */
  available(): boolean {
    if (this.broken) throw this.broken;
    if (this.#pos === this.#reserved && this.#refreshReserved() === 0) return false;
    return (this.#state(this.#pos & this.mask) & MPSC_STATE_COMMITTED) !== 0;
  }

  read(): number {
    if (this.broken) throw this.broken;
    for (;;) {
      // Only reserved space holds this lap's records; past the reservation tail lie records we
      // read but have not released yet, from a whole lap ago.
      if (this.#pos === this.#reserved && this.#refreshReserved() === 0) return -1;
      const off = this.#pos & this.mask;
      // Acquire: a committed state publishes the record's type and payload.
      const state = this.#state(off);
      if ((state & MPSC_STATE_COMMITTED) === 0) {
        if (!this.#blocked(off)) return -1;
        continue;
      }
      const len = (state & MPSC_STATE_VALUE_MASK) - 1;
      const type = this.words[(off >> 2) + 1]! >>> 0;
      if (((this.#reserved - this.#pos) | 0) < RECORD_HEADER + len) this.#refreshReserved();
      const ahead = (this.#reserved - this.#pos) | 0;
      if (type === TYPE_PADDING) {
        const pad = len + RECORD_HEADER;
        if (off + pad !== this.capacity || pad > ahead) this.fail(`padding record of ${len} bytes at ${off} does not end the ring`);
        this.#skip(pad);
        continue;
      }
      const rec = recordBytes(len);
      if (type > MAX_USER_TYPE) this.fail(`record at ${off} has reserved type bits 0x${type.toString(16)}`);
      if (len < 0 || off + rec > this.capacity || rec > ahead) {
        this.fail(`record of ${len} bytes at ${off} runs past the ${ahead} bytes reserved`);
      }
      this.#blockedSince = -1;
      this.offset = off + RECORD_HEADER;
      this.length = len;
      this.type = type;
      this.#pos = (this.#pos + rec) | 0;
      this.counters.messages++;
      this.counters.bytes += len;
      return len;
    }
  }

  /**
   * The record at the read position is not committed. Returns false when the ring is simply empty
   * or the writer may still be alive; true after skipping an abandoned reservation (or when the
   * record got committed meanwhile).
   */
  #blocked(off: number): boolean {
    const ahead = this.#refreshReserved();
    // Nothing reserved: the ring is empty (a non-zero word here belongs to an unreleased record a lap back).
    if (ahead === 0) return false;
    const now = performance.now();
    if (this.#blockedSince < 0 || this.#blockedPos !== this.#pos) {
      this.#blockedPos = this.#pos;
      if (this.#overdue && ((this.#overdueTail - this.#pos) | 0) > 0) {
        this.#blockedSince = now - this.#abandonTimeoutMs;
        this.#blockedTail = this.#overdueTail;
      } else {
        this.#overdue = false;
        this.#blockedSince = now;
        this.#blockedTail = this.#reserved;
        return false;
      }
    }
    if (now - this.#blockedSince < this.#abandonTimeoutMs) return false;
    // Decide on a fresh look: the writer may have committed since read() loaded the word.
    const state = this.#state(off);
    if ((state & MPSC_STATE_COMMITTED) !== 0) return true;
    const toEnd = this.capacity - off;
    const size = state & MPSC_STATE_VALUE_MASK;
    if (size !== 0) {
      if ((size & 7) !== 0 || size > toEnd || size > ahead) this.fail(`reserved record of ${size} bytes at ${off} is impossible`);
      // Seq-cst, paired with the producer's committing CAS: exactly one of the two lands, so the
      // record is either read or revoked, never committed into space we have passed.
      const skipped = ((state & ~(MPSC_STATE_VALUE_MASK | MPSC_STATE_COMMITTED)) | SKIPPED) >>> 0;
      if (Atomics.compareExchange(this.words, off >> 2, state | 0, skipped | 0) !== (state | 0)) return true;
      this.#blockedSince = -1;
      this.#overdueSkip();
      this.counters.abandoned++;
      this.#skip(size);
      return true;
    }
    // The writer died before marking its size: every slot up to the next marked record is its,
    // but only below the tail seen when the timer started. A producer that reserved since then
    // is not late yet, and may not have stored its mark either: its record must not be skipped.
    const limit = Math.min((this.#blockedTail - this.#pos) | 0, toEnd);
    const tag = lapTag(this.#pos, this.#capShift);
    let skipped = 0;
    while (skipped < limit) {
      const word = (off + skipped) >> 2;
      const seen = Atomics.load(this.words, word);
      if (isMarked(seen, tag)) break;
      // Seq-cst, paired with the producer's marking CAS: exactly one of the two lands, so a
      // producer late to mark this slot learns that it lost the reservation.
      if (Atomics.compareExchange(this.words, word, seen, tag | SKIPPED) === seen) skipped += RECORD_HEADER;
    }
    // Its writer marked the head just now, after the timeout: skip it by its size on the next look.
    if (skipped === 0) return true;
    this.#blockedSince = -1;
    this.#overdueSkip();
    this.counters.abandoned++;
    this.#keep.push(this.#pos, (this.#pos + skipped) | 0);
    this.#skip(skipped);
    return true;
  }

  /** A reservation was skipped: the others below the same timer's tail are overdue too. */
  #overdueSkip(): void {
    this.#overdue = true;
    this.#overdueTail = this.#blockedTail;
  }

  #skip(bytes: number): void {
    const releaseNow = this.#pos === this.#head;
    this.#pos = (this.#pos + bytes) | 0;
    if (releaseNow) this.release();
  }

  /** Zeroes and releases every record read so far. */
  release(): void {
    if (this.#pos === this.#head) return;
    // Zeroing keeps old payload from passing for a marked state word in a later lap.
    let from = this.#head;
    for (let i = 0; i < this.#keep.length; i += 2) {
      this.#zero(from, this.#keep[i]!);
      from = this.#keep[i + 1]!;
    }
    this.#zero(from, this.#pos);
    this.#keep.length = 0;
    // Release: the zeroes (and our reads) before the head that hands the space back.
    Atomics.store(this.ctl, CW.head, this.#pos);
    this.#head = this.#pos;
    this.notifyProducers();
  }

  /** Zeroes the record area from position `from` up to position `to`, wrapping at the end. */
  #zero(from: number, to: number): void {
    const start = from & this.mask;
    const bytes = (to - from) | 0;
    if (start + bytes <= this.capacity) {
      this.data.fill(0, start, start + bytes);
    } else {
      this.data.fill(0, start, this.capacity);
      this.data.fill(0, 0, start + bytes - this.capacity);
    }
  }

  /**
   * Resolves true when a record can be read, false on timeout. While a reservation blocks the head
   * the park is cut into slices, so that the abandon timeout can fire without a producer's help.
   */
  override async waitForData(opts: WaitOptions = {}): Promise<boolean> {
    const deadline = opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs;
    for (;;) {
      if (this.#readyOrRecovered()) return true;
      const slice = this.#parkSlice(deadline);
      if (slice <= 0) return false;
      if (await waitUntil(this.#recovering, this.dataBell, { spin: this.spin, ...opts, timeoutMs: slice === Infinity ? undefined : slice })) return true;
    }
  }

  override waitForDataSync(timeoutMs = Infinity): boolean {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.#readyOrRecovered()) return true;
      const slice = this.#parkSlice(deadline);
      if (slice <= 0) return false;
      if (waitUntilSync(this.#recovering, this.dataBell, slice, this.spin)) return true;
    }
  }

  /**
   * Parks are cut into slices even on an empty ring: a producer may reserve the head and die while
   * we sleep, and nobody rings for a record that is never committed, so only a slice's end starts
   * (and later fires) the abandon timer. At least 1 ms, so a zero timeout does not busy-wait.
   */
  #parkSlice(deadline: number): number {
    return Math.min(deadline - performance.now(), Math.max(1, this.#abandonTimeoutMs / 4));
  }

  /** available(), after skipping an abandoned reservation at the head if its time is up. */
  #readyOrRecovered(): boolean {
    if (this.available()) return true;
    return this.#blocked(this.#pos & this.mask) && this.available();
  }
}
