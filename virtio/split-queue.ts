/**
 * Device side of a split virtqueue (virtio 1.x, 2.7 "Split Virtqueues"): takes descriptor chains
 * the driver made available, hands their buffers to device code as views into guest memory, and
 * returns them through the used ring.
 *
 * Concurrency contract: one SplitQueueDevice per queue, used from one thread. The driver (a guest
 * kernel, QEMU, or SplitQueueDriver) runs concurrently on the other side of the shared memory and
 * is untrusted: every index, descriptor and address read from the rings is checked against the
 * driver requirements of 2.7.4-2.7.6, and any broken invariant marks the queue broken with
 * ERR_VIRTQUEUE_BROKEN rather than guessing. Once broken, every method throws the same error; only
 * a reset (a new SplitQueueDevice) recovers.
 *
 * Section numbers are those of virtio 1.2,
 * https://docs.oasis-open.org/virtio/virtio/v1.2/virtio-v1.2.html (the same text is 2.6.x in 1.1).
 *
 * Memory ordering: index fields are read and written with Atomics (sequentially consistent), the
 * rest with plain accesses. A plain write followed by an Atomics.store is a release; an
 * Atomics.load followed by plain reads is an acquire; an Atomics.store followed by an Atomics.load
 * is also a store-load fence (on x64 V8 emits a locked xchg), which the notification checks need.
 */
import { ringwireError, type RingwireError } from '../lib/errors.js';
import type { AddressSpace, GuestMemory } from './memory.js';
import {
  DESC_ADDR, DESC_FLAGS, DESC_LEN, DESC_NEXT, DESC_SIZE, RING_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_USED_F_NO_NOTIFY, mapRings, vringNeedEvent,
  type RingViews, type SplitQueueAddresses,
} from './split-layout.js';

export interface DescriptorChain {
  /** The head descriptor index: the id to hand back to pushUsed(). */
  readonly head: number;
  /** Device-readable buffers, in chain order. Views into guest memory: read them, do not keep them past pushUsed(). */
  readonly readable: Uint8Array[];
  /** Device-writable buffers, in chain order (they all follow the readable ones: 2.7.4 driver requirements). */
  readonly writable: Uint8Array[];
  readonly readableBytes: number;
  readonly writableBytes: number;
}

export interface SplitQueueDeviceOptions {
  memory: GuestMemory;
  /** Queue size n: a power of two ≤ 32768 (vhost-user SET_VRING_NUM). */
  size: number;
  /** Ring addresses (vhost-user SET_VRING_ADDR). */
  addresses: SplitQueueAddresses;
  /** How to translate the ring addresses: vhost-user sends front-end user addresses. Default guest-physical. */
  ringAddressSpace?: AddressSpace;
  /**
   * VIRTIO_F_EVENT_IDX as the driver ACCEPTED it (vhost-user SET_FEATURES), not as offered: QEMU 7.2
   * may set it for a backend that never offered it. Decides how used-buffer notifications are
   * suppressed. Kick suppression publishes both avail_event and the NO_NOTIFY flag regardless.
   */
  eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated; without it an INDIRECT descriptor breaks the queue. Default true. */
  indirect?: boolean;
  /** Index of the next available-ring entry to read (vhost-user SET_VRING_BASE). Default 0. */
  base?: number;
  /** Current used idx; default: read from the used ring, where a previous backend left it. */
  usedIndex?: number;
  /**
   * Most buffers accepted in one chain. Default: the larger of the queue size and 1024.
   * 2.7.5.3.1 says "A driver MUST NOT create a descriptor chain longer than the Queue Size of the
   * device", but QEMU's own device side bounds an indirect table only by its length and a chain by
   * 1024 buffers (VIRTQUEUE_MAX_SIZE), so the strict cap could refuse chains real guests send.
   * Independently of this, a walk that visits more descriptors than its table holds is a loop.
   */
  maxChainLength?: number;
}

const TWO_POW_32 = 2 ** 32;

export class SplitQueueDevice {
  readonly size: number;
  readonly eventIdx: boolean;
  readonly #memory: GuestMemory;
  readonly #rings: RingViews;
  readonly #mask: number;
  readonly #indirect: boolean;
  readonly #maxChain: number;
  /** Index of used_event in the avail u16 view and of avail_event in the used u16 view. */
  readonly #usedEventAt: number;
  readonly #availEventAt: number;
  #lastAvail: number;
  #usedIdx: number;
  #signalledUsed = 0;
  #signalledValid = false;
  #kickNotify = true;
  #usedFlags = 0;
  #broken: RingwireError | undefined;
  /** Per head: 1 while the device holds the chain, so a head made available twice is caught. */
  readonly #inFlight: Uint8Array;
  /** Per head: the chain's writable byte count, the most pushUsed() may report. */
  readonly #writableBytes: Float64Array;
  #inFlightCount = 0;

  constructor(options: SplitQueueDeviceOptions) {
    const { memory, size, addresses } = options;
    this.#rings = mapRings(memory, options.ringAddressSpace ?? 'guest-physical', size, addresses, 'ERR_VIRTQUEUE_BROKEN');
    this.size = size;
    this.#memory = memory;
    this.#mask = size - 1;
    this.eventIdx = options.eventIdx ?? false;
    this.#indirect = options.indirect ?? true;
    this.#maxChain = options.maxChainLength ?? Math.max(size, 1024);
    if (!Number.isInteger(this.#maxChain) || this.#maxChain < 1) {
      throw ringwireError('ERR_OUT_OF_RANGE', `maxChainLength must be a positive integer, got ${this.#maxChain}`);
    }
    this.#usedEventAt = 2 + size;
    this.#availEventAt = 2 + 4 * size;
    this.#lastAvail = u16Option(options.base, 'base') ?? 0;
    this.#usedIdx = u16Option(options.usedIndex, 'usedIndex') ?? Atomics.load(this.#rings.usedU16, RING_IDX / 2);
    this.#inFlight = new Uint8Array(size);
    this.#writableBytes = new Float64Array(size);
    this.#publishKickState();
  }

  /** The error that broke the queue, if any. */
  get broken(): RingwireError | undefined {
    return this.#broken;
  }

  /** Next available-ring index the device will read: the vhost-user GET_VRING_BASE answer. */
  get lastAvailIndex(): number {
    return this.#lastAvail;
  }

  /** The device's used idx (the value last published to the used ring). */
  get usedIndex(): number {
    return this.#usedIdx;
  }

  /** Chains popped and not yet pushed back. */
  get inFlight(): number {
    return this.#inFlightCount;
  }

  /** How many chains the driver has made available that pop() has not taken; stale as soon as it returns. */
  pending(): number {
    this.#throwIfBroken();
    return this.#pendingChecked(Atomics.load(this.#rings.avail, RING_IDX / 2));
  }

  /**
   * Takes the next available chain, or null when the driver has made none available.
   * 2.7.13 "Supplying Buffers to The Device" (the driver's side of this) and 2.7.5 / 2.7.5.3 for
   * the chain rules enforced here. Throws ERR_VIRTQUEUE_BROKEN (and marks the queue broken) on a
   * malformed ring or chain.
   */
  pop(): DescriptorChain | null {
    this.#throwIfBroken();
    const avail = this.#rings.avail;
    // Acquire: pairs with the driver's barrier before it updates idx (2.7.13.3), so the ring entry
    // and descriptors it wrote before are visible to the reads below.
    const availIdx = Atomics.load(avail, RING_IDX / 2);
    if (this.#pendingChecked(availIdx) === 0) return null;
    const head = avail[2 + (this.#lastAvail & this.#mask)]!;
    if (head >= this.size) this.#fail(`available ring entry ${this.#lastAvail} names head ${head}, queue size is ${this.size}`);
    if (this.#inFlight[head]) this.#fail(`head ${head} was made available again while the device still holds it`);
    const chain = this.#walk(head);
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    this.#inFlight[head] = 1;
    this.#writableBytes[head] = chain.writableBytes;
    this.#inFlightCount++;
    if (this.#kickNotify) {
      // 2.7.10: with EVENT_IDX the driver kicks only when its idx passes avail_event. Keeping it at
      // the next entry we will read asks for a kick for the first buffer we have not seen.
      Atomics.store(this.#rings.usedU16, this.#availEventAt, this.#lastAvail);
    }
    return chain;
  }

  /**
   * Returns a chain to the driver with the number of bytes written into its writable buffers
   * (2.7.8 "The Virtqueue Used Ring"). Publishes immediately; call shouldNotify() after a batch.
   */
  pushUsed(head: number, len: number): void {
    this.#throwIfBroken();
    if (!Number.isInteger(head) || head < 0 || head >= this.size || !this.#inFlight[head]) {
      throw ringwireError('ERR_INVALID_ARG', `head ${head} is not a chain this device popped`);
    }
    if (!Number.isInteger(len) || len < 0 || len > this.#writableBytes[head]!) {
      throw ringwireError('ERR_OUT_OF_RANGE', `used length ${len} exceeds the chain's ${this.#writableBytes[head]} writable bytes`);
    }
    const slot = this.#usedIdx & this.#mask;
    this.#rings.usedElems[2 * slot] = head;
    this.#rings.usedElems[2 * slot + 1] = len;
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    // Release: the element written above must be visible before the driver sees the new idx
    // (2.7.8.1: "The device MUST set len prior to updating the used idx.").
    Atomics.store(this.#rings.usedU16, RING_IDX / 2, this.#usedIdx);
    this.#inFlight[head] = 0;
    this.#inFlightCount--;
  }

  /**
   * Whether to send a used-buffer notification (vhost-user: signal the call eventfd) for the
   * entries pushed since the last call (2.7.7 "Used Buffer Notification Suppression").
   * With EVENT_IDX: notify iff used_event lies in [used idx at the last decision, used idx now).
   * Without: notify unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT.
   */
  shouldNotify(): boolean {
    this.#throwIfBroken();
    // The used idx store in pushUsed() is sequentially consistent, so this load cannot move before
    // it: a driver that published used_event and then re-checked the used idx either sees our
    // entries or is seen here, never neither (the lost-interrupt race).
    if (!this.eventIdx) return (Atomics.load(this.#rings.avail, 0) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    const usedEvent = Atomics.load(this.#rings.avail, this.#usedEventAt);
    const old = this.#signalledUsed;
    const valid = this.#signalledValid;
    this.#signalledUsed = this.#usedIdx;
    this.#signalledValid = true;
    return !valid || vringNeedEvent(usedEvent, this.#usedIdx, old);
  }

  /**
   * Asks the driver to kick again (2.7.10 "Available Buffer Notification Suppression") and
   * re-checks the ring. Returns true when buffers are already available: the caller must keep
   * processing instead of waiting for a kick that a driver which looked before our write never sends.
   */
  enableKickNotifications(): boolean {
    this.#throwIfBroken();
    this.#kickNotify = true;
    this.#publishKickState();
    // Store-load order: the stores in #publishKickState are sequentially consistent, so this load
    // sees any idx the driver published before it could have read our flag / avail_event.
    return this.#pendingChecked(Atomics.load(this.#rings.avail, RING_IDX / 2)) !== 0;
  }

  /** Tells the driver not to kick while the device is polling anyway. Advisory: kicks may still arrive. */
  disableKickNotifications(): void {
    this.#throwIfBroken();
    this.#kickNotify = false;
    this.#publishKickState();
  }

  /**
   * Publishes kick suppression both ways (flag and avail_event) whatever EVENT_IDX says: the driver
   * ignores the mechanism it did not negotiate, and QEMU 7.2 can negotiate EVENT_IDX behind a
   * backend's back (design doc), which would otherwise leave avail_event at 0 and the guest silent.
   */
  #publishKickState(): void {
    this.#usedFlags = this.#kickNotify ? this.#usedFlags & ~VIRTQ_USED_F_NO_NOTIFY : this.#usedFlags | VIRTQ_USED_F_NO_NOTIFY;
    Atomics.store(this.#rings.usedU16, 0, this.#usedFlags);
    if (this.#kickNotify) Atomics.store(this.#rings.usedU16, this.#availEventAt, this.#lastAvail);
  }

  #pendingChecked(availIdx: number): number {
    const pending = (availIdx - this.#lastAvail) & 0xffff;
    // 2.7.6: the driver cannot have more than n entries outstanding; an idx further ahead is corrupt.
    if (pending > this.size) this.#fail(`available idx ${availIdx} is ${pending} entries ahead of ${this.#lastAvail}, queue size ${this.size}`);
    return pending;
  }

  /**
   * Walks one chain: direct descriptors linked by NEXT, optionally ending in one INDIRECT
   * descriptor whose table is walked from entry 0 (2.7.5.3). 2.7.5.2 forbids loops; a walk that
   * takes more steps in a table than the table has entries must have revisited one, so the number
   * of steps, and with it the work done on hostile input, is bounded by the table sizes.
   */
  #walk(head: number): DescriptorChain {
    const readable: Uint8Array[] = [];
    const writable: Uint8Array[] = [];
    let readableBytes = 0;
    let writableBytes = 0;
    let table = this.#rings.desc;
    let tableLen = this.size;
    let inIndirect = false;
    let idx = head;
    for (let steps = 1; ; steps++) {
      if (idx >= tableLen) this.#fail(`chain at head ${head} links to descriptor ${idx}, table has ${tableLen}`);
      if (steps > tableLen) this.#fail(`chain at head ${head} visits more than the ${tableLen} descriptors of its ${inIndirect ? 'indirect' : 'ring'} table (a loop)`);
      const off = idx * DESC_SIZE;
      const lo = table.getUint32(off + DESC_ADDR, true);
      const hi = table.getUint32(off + DESC_ADDR + 4, true);
      const len = table.getUint32(off + DESC_LEN, true);
      const flags = table.getUint16(off + DESC_FLAGS, true);
      const next = table.getUint16(off + DESC_NEXT, true);
      // Addresses below 2^53 stay numbers (the fast path); above, bigint keeps them exact.
      const addr = hi < 0x200000 ? hi * TWO_POW_32 + lo : (BigInt(hi) << 32n) | BigInt(lo);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // 2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC; never inside an indirect table; never with
        // NEXT; the table is len / 16 descriptors. The WRITE flag here is ignored (2.7.5.3.2).
        if (!this.#indirect) this.#fail(`head ${head}: INDIRECT descriptor but VIRTIO_F_INDIRECT_DESC was not negotiated`);
        if (inIndirect) this.#fail(`head ${head}: INDIRECT descriptor inside an indirect table`);
        if (flags & VIRTQ_DESC_F_NEXT) this.#fail(`head ${head}: descriptor has both INDIRECT and NEXT`);
        if (len === 0 || len % DESC_SIZE !== 0) this.#fail(`head ${head}: indirect table length ${len} is not a non-zero multiple of 16`);
        const view = this.#memory.lookup('guest-physical', addr, len);
        if (!view) this.#fail(`head ${head}: indirect table 0x${addr.toString(16)}+${len} is outside guest memory`);
        table = new DataView(view.buffer, view.byteOffset, view.byteLength);
        tableLen = len / DESC_SIZE;
        inIndirect = true;
        idx = 0;
        steps = 0;
        continue;
      }
      const view = this.#memory.lookup('guest-physical', addr, len);
      if (!view) this.#fail(`head ${head}: buffer 0x${addr.toString(16)}+${len} is outside guest memory`);
      if (flags & VIRTQ_DESC_F_WRITE) {
        writable.push(view);
        writableBytes += len;
      } else {
        // 2.7.4: the driver places device-writable descriptors after device-readable ones.
        if (writable.length > 0) this.#fail(`head ${head}: readable descriptor after a writable one`);
        readable.push(view);
        readableBytes += len;
      }
      // 2.7.5.2: a chain is at most 2^32 bytes in total.
      if (readableBytes + writableBytes > TWO_POW_32) this.#fail(`head ${head}: chain is longer than 2^32 bytes`);
      if (readable.length + writable.length > this.#maxChain) this.#fail(`head ${head}: chain has more than ${this.#maxChain} buffers`);
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      idx = next;
    }
    return { head, readable, writable, readableBytes, writableBytes };
  }

  #throwIfBroken(): void {
    if (this.#broken) throw this.#broken;
  }

  #fail(reason: string): never {
    this.#broken = ringwireError('ERR_VIRTQUEUE_BROKEN', reason);
    throw this.#broken;
  }
}

function u16Option(value: number | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw ringwireError('ERR_OUT_OF_RANGE', `${what} must be a u16, got ${value}`);
  return value;
}
