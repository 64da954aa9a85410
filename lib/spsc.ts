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
import { CW, PW, RECORD_HEADER, RingKind, TYPE_PADDING, MAX_USER_TYPE, recordBytes } from './layout.js';
import { attachConsumerBlock, attachProducerBlock, type RingMemory } from './ring-memory.js';
import type { RingOptions } from './ring-types.js';
import { ConsumerBase, ProducerBase, checkMessage } from './ring-base.js';


export class SpscProducer extends ProducerBase {
  /** Claimed position: records between the published tail and here are claimed, not yet visible. */
  #tail: number;
  #published: number;
  /** Last consumer head seen: space is re-read only when this one says the ring is full. */
  #head: number;
  #pending = 0;
  #pendingBytes = 0;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    const p = attachProducerBlock(memory.producer, RingKind.Spsc);
    super(p, attachConsumerBlock(memory.consumer, RingKind.Spsc, p.capacity), opts);
    this.#tail = this.#published = Atomics.load(this.ctl, PW.tail);
    this.#head = Atomics.load(this.peerCtl, CW.head);
    this.#checkHead(this.#head, this.#head);
  }

  #checkHead(head: number, previous: number): void {
    const used = (this.#published - head) | 0;
    if ((head & 7) !== 0 || used < 0 || used > this.capacity || ((head - previous) | 0) < 0) {
      this.broken = ringwireError('ERR_RING_CORRUPT', `producer: consumer head ${head >>> 0} is impossible (tail ${this.#published >>> 0}, last head ${previous >>> 0})`);
      throw this.broken;
    }
  }

  /** True when `bytes` more fit; re-reads the consumer's head only when the cached one says no. */
  #fits(bytes: number): boolean {
    if (((this.#tail - this.#head) | 0) + bytes <= this.capacity) return true;
    const head = Atomics.load(this.peerCtl, CW.head);
    this.#checkHead(head, this.#head);
    this.#head = head;
    return ((this.#tail - head) | 0) + bytes <= this.capacity;
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
    this.words[off >> 2] = length;
    this.words[(off >> 2) + 1] = type;
    this.#tail = (this.#tail + rec) | 0;
    this.#pending++;
    this.#pendingBytes += length;
    return off + RECORD_HEADER;
  }

  /** Records never straddle the end: pad to it, so the reader always sees contiguous payloads. */
  #padToEnd(off: number): boolean {
    const pad = this.capacity - off;
    if (!this.#fits(pad)) return false;
    this.words[off >> 2] = pad - RECORD_HEADER;
    this.words[(off >> 2) + 1] = TYPE_PADDING;
    this.#tail = (this.#tail + pad) | 0;
    return true;
  }

  #full(): number {
    this.commit();
    return -1;
  }

  commit(): void {
    if (this.#tail === this.#published) return;
    // Release: the consumer must see the records before the tail that covers them.
    Atomics.store(this.ctl, PW.tail, this.#tail);
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
  /** Last producer tail seen. */
  #tail: number;

  constructor(memory: RingMemory, opts: RingOptions = {}) {
    const p = attachProducerBlock(memory.producer, RingKind.Spsc);
    super(p, attachConsumerBlock(memory.consumer, RingKind.Spsc, p.capacity), opts);
    this.#head = this.#pos = this.#tail = Atomics.load(this.ctl, CW.head);
  }

  /** Re-reads the producer's tail; true when there is more to read. */
  #refresh(): boolean {
    const tail = Atomics.load(this.peerCtl, PW.tail);
    this.checkTail(tail, this.#head, this.#tail, 'producer tail');
    this.#tail = tail;
    return tail !== this.#pos;
  }

  /** True when a record (or padding) is waiting. Stale by at most one producer commit. */
  available(): boolean {
    if (this.broken) throw this.broken;
    return this.#pos !== this.#tail || this.#refresh();
  }

  read(): number {
    if (this.broken) throw this.broken;
    for (;;) {
      if (this.#pos === this.#tail && !this.#refresh()) return -1;
      const off = this.#pos & this.mask;
      const len = this.words[off >> 2]! >>> 0;
      const type = this.words[(off >> 2) + 1]! >>> 0;
      if (type > MAX_USER_TYPE) {
        this.#skipPadding(off, len, type);
        continue;
      }
      const rec = recordBytes(len);
      if (len > this.capacity || off + rec > this.capacity || rec > ((this.#tail - this.#pos) | 0)) {
        this.fail(`record of ${len} bytes at ${off} runs past the ${(this.#tail - this.#pos) | 0} bytes published`);
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

  /** Off the hot path: skip a padding record, which must end the area. */
  #skipPadding(off: number, len: number, type: number): void {
    if (type !== TYPE_PADDING) this.fail(`record at ${off} has reserved type bits 0x${type.toString(16)}`);
    const pad = len + RECORD_HEADER;
    if (len > this.capacity || off + pad !== this.capacity || pad > ((this.#tail - this.#pos) | 0)) {
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
