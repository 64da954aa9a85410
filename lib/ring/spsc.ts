/**
 * Single-producer single-consumer ring of variable-length records.
 *
 * Concurrency contract: exactly one SpscProducer and one SpscConsumer per ring, each used from one
 * thread (or process) at a time. The producer writes only its block (header, tail, records); the
 * consumer writes only its block (head, waiting flag). Either block may be a read-only mapping on
 * the side that does not own it.
 *
 * Indices are free-running byte positions (u32 arithmetic through `| 0`); `tail - head` is the
 * bytes in use and is never above capacity - SPSC_SLACK. The consumer finds records by their
 * headers, not by the tail (layout.ts, "SPSC publication"), so a message costs the consumer the
 * cache lines it occupies and nothing more. Every value read from the peer's block is validated
 * before use; a broken invariant throws ERR_RING_CORRUPT and poisons the ring.
 */
import { ringwireError } from '../errors.js';
import { CW, PW, RECORD_HEADER, RingKind, SPSC_PRESENT, SPSC_SLACK, TYPE_PADDING, MAX_USER_TYPE, recordBytes } from './layout.js';
import type { RingMemory } from './ring-memory.js';
import type { RingOptions } from './ring-types.js';
import { ConsumerBase, ProducerBase, checkMessage } from './ring-base.js';

export class SpscProducer extends ProducerBase {
  /** Claimed position: records between the published tail and here are claimed, not yet visible. */
  #tail: number;
  #published: number;
  /** Last consumer head seen: space is re-read only when this one says the ring is full. */
  #head: number;
  /** Word index and value of word 0 of the first unpublished record: stored last, by commit(). */
  #gate = -1;
  #gateWord = 0;
  #pending = 0;
  #pendingBytes = 0;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    super(memory, RingKind.Spsc, opts);
    this.#tail = this.#published = this.#publishedEnd(Atomics.load(this.ctl, PW.tail));
    this.#head = Atomics.load(this.peerCtl, CW.head);
    this.#checkHead(this.#head, this.#head);
  }

  /**
   * Where the published records end. commit() writes the tail after the store that publishes, so a
   * producer stopped between the two (a terminated worker) left published records past the tail:
   * follow them to the zero word that ends them, where the consumer will look next. Bounded like
   * a reader: at most capacity - SPSC_SLACK bytes, and ERR_RING_CORRUPT for anything a commit
   * cannot leave.
   */
  #publishedEnd(tail: number): number {
    if ((tail & 7) !== 0) {
      this.broken = ringwireError('ERR_RING_CORRUPT', `producer: tail ${tail >>> 0} is not 8-aligned`);
      throw this.broken;
    }
    let end = tail;
    for (;;) {
      const off = end & this.mask;
      const word = Atomics.load(this.words, off >> 2);
      if (word === 0) return end;
      const len = word & ~SPSC_PRESENT;
      const rec = this.words[(off >> 2) + 1]! >>> 0 === TYPE_PADDING ? this.capacity - off : recordBytes(len);
      if (word > 0 || len > this.capacity || off + rec > this.capacity || ((end - tail) | 0) + rec > this.capacity - SPSC_SLACK) {
        this.broken = ringwireError('ERR_RING_CORRUPT', `producer: record header at ${off} past the tail ${tail >>> 0} is not one a commit leaves (0x${(word >>> 0).toString(16)})`);
        throw this.broken;
      }
      end = (end + rec) | 0;
    }
  }

  #checkHead(head: number, previous: number): void {
    const used = (this.#published - head) | 0;
    if ((head & 7) !== 0 || used < 0 || used > this.capacity - SPSC_SLACK || ((head - previous) | 0) < 0) {
      this.broken = ringwireError('ERR_RING_CORRUPT', `producer: consumer head ${head >>> 0} is impossible (tail ${this.#published >>> 0}, last head ${previous >>> 0})`);
      throw this.broken;
    }
  }

  /**
   * True when `bytes` more fit and leave SPSC_SLACK free; re-reads the consumer's head only when
   * the cached one says no.
   */
  #fits(bytes: number): boolean {
    const room = this.capacity - SPSC_SLACK - bytes;
    if (((this.#tail - this.#head) | 0) <= room) return true;
    const head = Atomics.load(this.peerCtl, CW.head);
    this.#checkHead(head, this.#head);
    this.#head = head;
    return ((this.#tail - head) | 0) <= room;
  }

  protected hasSpaceFor(length: number): boolean {
    const rec = recordBytes(length);
    const off = this.#tail & this.mask;
    return off + rec > this.capacity ? this.#fits(this.capacity - off + rec) || this.#fits(this.capacity - off) : this.#fits(rec);
  }

  /** Claims accumulate until commit() publishes them all; a claim that finds the ring full publishes earlier claims. */
  claim(length: number, type = 0): number {
    if (this.broken) throw this.broken;
    checkMessage(length, type, this.maxMessageSize);
    const rec = recordBytes(length);
    let off = this.#tail & this.mask;
    if (off + rec > this.capacity) {
      if (!this.#padToEnd(off)) return this.#full();
      off = 0;
    }
    if (!this.#fits(rec)) return this.#full();
    this.#header(off, length, type);
    this.#tail = (this.#tail + rec) | 0;
    this.#pending++;
    this.#pendingBytes += length;
    return off + RECORD_HEADER;
  }

  /** Records never straddle the end: pad to it, so the reader always sees contiguous payloads. */
  #padToEnd(off: number): boolean {
    const pad = this.capacity - off;
    if (!this.#fits(pad)) return false;
    this.#header(off, pad - RECORD_HEADER, TYPE_PADDING);
    this.#tail = (this.#tail + pad) | 0;
    return true;
  }

  /** Writes a header; the batch's first one keeps word 0 back, since storing it publishes the batch. */
  #header(off: number, length: number, type: number): void {
    this.words[(off >> 2) + 1] = type;
    if (this.#gate < 0) {
      this.#gate = off >> 2;
      this.#gateWord = length | SPSC_PRESENT;
    } else {
      this.words[off >> 2] = length | SPSC_PRESENT;
    }
  }

  #full(): number {
    this.commit();
    return -1;
  }

  commit(): void {
    if (this.#tail === this.#published) return;
    // The slot after the batch is free (SPSC_SLACK) and may hold an older lap's bytes: it must read
    // as "nothing yet" before the batch ahead of it becomes visible.
    this.words[(this.#tail & this.mask) >> 2] = 0;
    // Release (seq-cst): the batch, and the zero that ends it, are visible before its first word.
    Atomics.store(this.words, this.#gate, this.#gateWord);
    // Only now: a tail past a batch whose first word was never stored would start a new producer
    // where the consumer never looks (#publishedEnd handles the other order).
    this.ctl[PW.tail] = this.#tail;
    this.#gate = -1;
    this.#published = this.#tail;
    this.counters.messages += this.#pending;
    this.counters.bytes += this.#pendingBytes;
    this.#pending = this.#pendingBytes = 0;
    this.notifyConsumer();
  }
}

export class SpscConsumer extends ConsumerBase {
  /** Released position, as published in our head. */
  #head: number;
  /** Read position: records between head and here have been read but not released. */
  #pos: number;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    super(memory, RingKind.Spsc, opts);
    this.#head = this.#pos = Atomics.load(this.ctl, CW.head);
  }

  /** True when a record (or padding) is waiting: word 0 at the read position is published. */
  available(): boolean {
    if (this.broken) throw this.broken;
    return Atomics.load(this.words, (this.#pos & this.mask) >> 2) !== 0;
  }

  read(): number {
    if (this.broken) throw this.broken;
    for (;;) {
      const off = this.#pos & this.mask;
      // Acquire: the payload (and the headers after it) were written before this word.
      const word = Atomics.load(this.words, off >> 2);
      if (word === 0) return -1;
      if (word > 0) this.fail(`record header at ${off} lacks the present bit (0x${word.toString(16)})`);
      const len = word & ~SPSC_PRESENT;
      const type = this.words[(off >> 2) + 1]! >>> 0;
      if (type > MAX_USER_TYPE) {
        this.#skipPadding(off, len, type);
        continue;
      }
      const rec = recordBytes(len);
      if (len > this.capacity || off + rec > this.capacity || this.#unreleased() + rec > this.capacity - SPSC_SLACK) {
        this.fail(`record of ${len} bytes at ${off} runs past the data area or over unreleased records`);
      }
      this.offset = off + RECORD_HEADER;
      this.length = len;
      this.type = type;
      this.#pos = (this.#pos + rec) | 0;
      this.counters.messages++;
      this.counters.bytes += len;
      return len;
    }
  }

  /** Bytes read but not yet released: with the next record, never more than a producer may publish. */
  #unreleased(): number {
    return (this.#pos - this.#head) | 0;
  }

  /** Off the hot path: skip a padding record, which must end the area. */
  #skipPadding(off: number, len: number, type: number): void {
    if (type !== TYPE_PADDING) this.fail(`record at ${off} has reserved type bits 0x${type.toString(16)}`);
    const pad = len + RECORD_HEADER;
    if (len > this.capacity || off + pad !== this.capacity || this.#unreleased() + pad > this.capacity - SPSC_SLACK) {
      this.fail(`padding record of ${len} bytes at ${off} does not end the ring`);
    }
    // Released at once when nothing unreleased precedes it, so a waiting producer gets the space.
    const releaseNow = this.#pos === this.#head;
    this.#pos = (this.#pos + pad) | 0;
    if (releaseNow) this.release();
  }

  release(): void {
    if (this.#pos === this.#head) return;
    // Release: we are done reading these records before the producer may overwrite them.
    Atomics.store(this.ctl, CW.head, this.#pos);
    this.#head = this.#pos;
    this.notifyProducers();
  }
}
