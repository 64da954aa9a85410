/**
 * Driver side of a split virtqueue (virtio 1.x, 2.7.13 "Supplying Buffers to The Device" and
 * 2.7.14 "Receiving Used Buffers From The Device"): for tests and for host processes that act as
 * a virtio driver towards a device (a peer of SplitQueueDevice).
 *
 * Concurrency contract: one SplitQueueDriver per queue, used from one thread; the device runs
 * concurrently and is untrusted. The driver keeps its own copy of every chain it made available
 * (free list, chain links, writable sizes) and never follows links read back from shared memory,
 * so a device that scribbles on the descriptor table cannot corrupt the driver's bookkeeping; a
 * used ring entry that names no outstanding chain, or reports more bytes than the chain could
 * hold, breaks the queue with ERR_VIRTQUEUE_BROKEN.
 *
 * The driver owns the memory of all three parts and initialises it; it never writes the used ring
 * after that. Section numbers are virtio 1.2.
 */
import { ringwireError, type RingwireError } from '../lib/errors.js';
import { toU64, type AddressSpace, type GuestAddress, type GuestMemory } from './memory.js';
import {
  DESC_ADDR, DESC_FLAGS, DESC_LEN, DESC_NEXT, DESC_SIZE, RING_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, mapRings, vringNeedEvent,
  type RingViews, type SplitQueueAddresses,
} from './split-layout.js';

/** A guest-physical buffer to put in a chain. */
export interface GuestBuffer {
  addr: GuestAddress;
  len: number;
}

export interface SplitQueueDriverOptions {
  memory: GuestMemory;
  size: number;
  addresses: SplitQueueAddresses;
  /** How the ring addresses translate; default guest-physical. */
  ringAddressSpace?: AddressSpace;
  /** VIRTIO_F_EVENT_IDX negotiated: use used_event / avail_event instead of the flags. */
  eventIdx?: boolean;
}

export interface UsedElement {
  /** Head of the chain, as returned by add(). */
  id: number;
  /** Bytes the device wrote into the chain's writable buffers. */
  len: number;
}

const NONE = 0xffff;

export class SplitQueueDriver {
  readonly size: number;
  readonly eventIdx: boolean;
  readonly #memory: GuestMemory;
  readonly #rings: RingViews;
  readonly #mask: number;
  readonly #usedEventAt: number;
  readonly #availEventAt: number;
  /** Local chain links and free list: never read back from shared memory. */
  readonly #nextFree: Uint16Array;
  /** Per head: descriptors the chain holds in the ring's table (0 when the head is free). */
  readonly #chainLen: Uint16Array;
  readonly #writableBytes: Float64Array;
  #freeHead = 0;
  #numFree: number;
  /** avail idx as published, and entries added since. */
  #availIdx = 0;
  #added = 0;
  #lastUsed = 0;
  #availFlags = 0;
  #callbacks = true;
  #broken: RingwireError | undefined;

  constructor(options: SplitQueueDriverOptions) {
    const { memory, size, addresses } = options;
    this.#rings = mapRings(memory, options.ringAddressSpace ?? 'guest-physical', size, addresses, 'ERR_OUT_OF_RANGE');
    this.size = size;
    this.eventIdx = options.eventIdx ?? false;
    this.#memory = memory;
    this.#mask = size - 1;
    this.#usedEventAt = 2 + size;
    this.#availEventAt = 2 + 4 * size;
    this.#rings.avail.fill(0);
    this.#rings.usedU16.fill(0);
    new Uint8Array(this.#rings.desc.buffer, this.#rings.desc.byteOffset, this.#rings.desc.byteLength).fill(0);
    this.#nextFree = new Uint16Array(size);
    for (let i = 0; i < size; i++) this.#nextFree[i] = i + 1 < size ? i + 1 : NONE;
    this.#chainLen = new Uint16Array(size);
    this.#writableBytes = new Float64Array(size);
    this.#numFree = size;
  }

  get broken(): RingwireError | undefined {
    return this.#broken;
  }

  /** Free descriptors in the ring's table. A chain needs one per buffer, or one if indirect. */
  get numFree(): number {
    return this.#numFree;
  }

  /**
   * Builds a chain of `readable` then `writable` buffers and puts its head in the available ring
   * without publishing it (2.7.13.1-2.7.13.2); call publish() to make it visible. With
   * `indirectTable` the buffers go into a table written at that guest-physical address (16 bytes
   * per buffer) and the chain takes one ring descriptor (2.7.5.3; needs VIRTIO_F_INDIRECT_DESC).
   * Returns the head, or null when the table has too few free descriptors (back-pressure).
   */
  add(readable: readonly GuestBuffer[], writable: readonly GuestBuffer[], options: { indirectTable?: GuestAddress } = {}): number | null {
    this.#throwIfBroken();
    const count = readable.length + writable.length;
    if (count === 0) throw ringwireError('ERR_INVALID_ARG', 'a chain needs at least one buffer');
    if (count > this.size) throw ringwireError('ERR_OUT_OF_RANGE', `a chain of ${count} buffers is longer than the queue size ${this.size}`);
    const buffers = [...readable.map((b) => checkBuffer(b, false)), ...writable.map((b) => checkBuffer(b, true))];
    const total = buffers.reduce((sum, b) => sum + b.len, 0);
    if (total > 2 ** 32) throw ringwireError('ERR_OUT_OF_RANGE', 'a chain is at most 2^32 bytes (2.7.5.2)');
    const writableBytes = writable.reduce((sum, b) => sum + b.len, 0);
    let head: number;
    if (options.indirectTable !== undefined) {
      if (this.#numFree < 1) return null;
      const tableAddr = toU64(options.indirectTable, 'indirect table address');
      const bytes = this.#memory.translateGpa(tableAddr, count * DESC_SIZE);
      const table = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      buffers.forEach((b, i) => writeDesc(table, i, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < count ? VIRTQ_DESC_F_NEXT : 0), i + 1 < count ? i + 1 : 0));
      head = this.#takeFree();
      writeDesc(this.#rings.desc, head, tableAddr, count * DESC_SIZE, VIRTQ_DESC_F_INDIRECT, 0);
      this.#chainLen[head] = 1;
    } else {
      if (this.#numFree < count) return null;
      const ids = buffers.map(() => this.#takeFree());
      head = ids[0]!;
      buffers.forEach((b, i) => {
        const last = i + 1 === count;
        writeDesc(this.#rings.desc, ids[i]!, b.addr, b.len, (b.write ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), last ? 0 : ids[i + 1]!);
        // Keep the chain's links locally so freeing it never trusts the shared table.
        this.#nextFree[ids[i]!] = last ? NONE : ids[i + 1]!;
      });
      this.#chainLen[head] = count;
    }
    this.#writableBytes[head] = writableBytes;
    this.#rings.avail[2 + ((this.#availIdx + this.#added) & this.#mask)] = head;
    this.#added++;
    return head;
  }

  /**
   * Publishes every chain added since the last call (2.7.13.3 "Updating idx") and says whether
   * the device wants a notification for them (2.7.13.4 "Notifying The Device"): with EVENT_IDX iff
   * avail_event lies in [old idx, new idx); without, unless the device set VIRTQ_USED_F_NO_NOTIFY.
   */
  publish(): boolean {
    this.#throwIfBroken();
    if (this.#added === 0) return false;
    const old = this.#availIdx;
    this.#availIdx = (old + this.#added) & 0xffff;
    this.#added = 0;
    // Release: descriptors and ring entries written in add() become visible before the new idx.
    // Being sequentially consistent, this store also orders the loads below after it, so a device
    // that enabled notifications and re-checked idx either sees this idx or is seen here.
    Atomics.store(this.#rings.avail, RING_IDX / 2, this.#availIdx);
    if (this.eventIdx) return vringNeedEvent(Atomics.load(this.#rings.usedU16, this.#availEventAt), this.#availIdx, old);
    return (Atomics.load(this.#rings.usedU16, 0) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** Takes the next used element and frees its chain, or null when the device has returned none. */
  popUsed(): UsedElement | null {
    this.#throwIfBroken();
    // Acquire: pairs with the device's release of used idx after it wrote the element (2.7.8.1).
    const usedIdx = Atomics.load(this.#rings.usedU16, RING_IDX / 2);
    const ready = (usedIdx - this.#lastUsed) & 0xffff;
    if (ready === 0) return null;
    if (ready > this.size) this.#fail(`used idx ${usedIdx} is ${ready} entries ahead of ${this.#lastUsed}, queue size ${this.size}`);
    const slot = this.#lastUsed & this.#mask;
    const id = this.#rings.usedElems[2 * slot]!;
    const len = this.#rings.usedElems[2 * slot + 1]!;
    if (id >= this.size || this.#chainLen[id] === 0) this.#fail(`used ring entry ${this.#lastUsed} names id ${id}, which is not an outstanding chain`);
    if (len > this.#writableBytes[id]!) this.#fail(`used ring entry for id ${id} reports ${len} bytes, the chain has ${this.#writableBytes[id]} writable`);
    this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
    this.#freeChain(id);
    // 2.7.7: with EVENT_IDX, asking to be notified at the next entry we have not consumed.
    if (this.eventIdx && this.#callbacks) Atomics.store(this.#rings.avail, this.#usedEventAt, this.#lastUsed);
    return { id, len };
  }

  /**
   * Asks the device for used-buffer notifications again (2.7.7) and re-checks the used ring:
   * true means entries are already there and the caller must drain them before waiting.
   */
  enableUsedNotifications(): boolean {
    this.#throwIfBroken();
    this.#callbacks = true;
    this.#availFlags &= ~VIRTQ_AVAIL_F_NO_INTERRUPT;
    Atomics.store(this.#rings.avail, 0, this.#availFlags);
    Atomics.store(this.#rings.avail, this.#usedEventAt, this.#lastUsed);
    return Atomics.load(this.#rings.usedU16, RING_IDX / 2) !== this.#lastUsed;
  }

  /** Asks the device not to notify (advisory: with EVENT_IDX at most one more notification comes). */
  disableUsedNotifications(): void {
    this.#throwIfBroken();
    this.#callbacks = false;
    this.#availFlags |= VIRTQ_AVAIL_F_NO_INTERRUPT;
    Atomics.store(this.#rings.avail, 0, this.#availFlags);
  }

  #takeFree(): number {
    const id = this.#freeHead;
    this.#freeHead = this.#nextFree[id]!;
    this.#numFree--;
    return id;
  }

  #freeChain(head: number): void {
    let id = head;
    for (let i = 1; i < this.#chainLen[head]!; i++) id = this.#nextFree[id]!;
    this.#nextFree[id] = this.#freeHead;
    this.#freeHead = head;
    this.#numFree += this.#chainLen[head]!;
    this.#chainLen[head] = 0;
  }

  #throwIfBroken(): void {
    if (this.#broken) throw this.#broken;
  }

  #fail(reason: string): never {
    this.#broken = ringwireError('ERR_VIRTQUEUE_BROKEN', reason);
    throw this.#broken;
  }
}

function checkBuffer(b: GuestBuffer, write: boolean): { addr: bigint; len: number; write: boolean } {
  if (!Number.isInteger(b.len) || b.len < 0 || b.len > 0xffffffff) throw ringwireError('ERR_OUT_OF_RANGE', `buffer length ${b.len} is not a u32`);
  return { addr: toU64(b.addr, 'buffer address'), len: b.len, write };
}

function writeDesc(table: DataView, index: number, addr: bigint, len: number, flags: number, next: number): void {
  const off = index * DESC_SIZE;
  table.setBigUint64(off + DESC_ADDR, addr, true);
  table.setUint32(off + DESC_LEN, len, true);
  table.setUint16(off + DESC_FLAGS, flags, true);
  table.setUint16(off + DESC_NEXT, next, true);
}
