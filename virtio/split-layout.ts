/**
 * Byte layout of a split virtqueue (virtio 1.x, 2.7 "Split Virtqueues"), shared by the device side
 * (split-queue.ts) and the driver side (split-driver.ts). All fields are little-endian
 * (virtio 1.x, 1.4 "Structure Specifications").
 *
 *   descriptor table  16 * n bytes, 16-aligned   {u64 addr, u32 len, u16 flags, u16 next}[n]
 *   available ring    6 + 2n bytes, 2-aligned     u16 flags, u16 idx, u16 ring[n], u16 used_event
 *   used ring         6 + 8n bytes, 4-aligned     u16 flags, u16 idx, {u32 id, u32 len}[n], u16 avail_event
 *
 * (2.7 "Table: Virtqueue Part Alignment" gives the alignments; used_event / avail_event exist only
 * with VIRTIO_F_EVENT_IDX but the space is always part of the ring.)
 */
import { ringwireError } from '../lib/errors.js';
import { GuestMemory, toU64, type AddressSpace, type GuestAddress } from './memory.js';

export const DESC_SIZE = 16;
export const DESC_ADDR = 0;
export const DESC_LEN = 8;
export const DESC_FLAGS = 12;
export const DESC_NEXT = 14;

/** 2.7.5: "This marks a buffer as continuing via the next field." */
export const VIRTQ_DESC_F_NEXT = 1;
/** 2.7.5: "This marks a buffer as device write-only (otherwise device read-only)." */
export const VIRTQ_DESC_F_WRITE = 2;
/** 2.7.5: "This means the buffer contains a list of buffer descriptors." */
export const VIRTQ_DESC_F_INDIRECT = 4;

/** 2.7.6 / 2.7.7: driver asks for no used-buffer notifications (ignored with EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** 2.7.8 / 2.7.10: device asks for no available-buffer notifications (ignored with EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Feature bits (6 "Reserved Feature Bits"). */
export const VIRTIO_F_INDIRECT_DESC = 28;
export const VIRTIO_F_EVENT_IDX = 29;

/** 2.7: "Queue Size ... The maximum Queue Size value is 32768." */
export const MAX_QUEUE_SIZE = 32768;

// Offsets inside the available and used rings, in bytes.
export const RING_FLAGS = 0;
export const RING_IDX = 2;
export const RING_ENTRIES = 4;
export const USED_ELEM_SIZE = 8;

export const descTableBytes = (n: number): number => DESC_SIZE * n;
export const availRingBytes = (n: number): number => 6 + 2 * n;
export const usedRingBytes = (n: number): number => 6 + USED_ELEM_SIZE * n;

export interface SplitQueueAddresses {
  desc: GuestAddress;
  avail: GuestAddress;
  used: GuestAddress;
}

/**
 * Packs the three parts of an n-entry queue from `base` with the minimum alignment 2.7 allows;
 * `end` is the first byte past the used ring. For drivers that own their layout (tests, host peers).
 */
export function splitQueueLayout(n: number, base: GuestAddress = 0): { desc: bigint; avail: bigint; used: bigint; end: bigint } {
  checkQueueSize(n);
  const desc = toU64(base, 'queue base');
  if (desc % 16n !== 0n) throw ringwireError('ERR_OUT_OF_RANGE', 'the descriptor table must be 16-byte aligned');
  const avail = desc + BigInt(descTableBytes(n));
  const used = (avail + BigInt(availRingBytes(n)) + 3n) & ~3n;
  return { desc, avail, used, end: used + BigInt(usedRingBytes(n)) };
}

/** 2.7: the queue size is a power of two no larger than 32768. */
export function checkQueueSize(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_QUEUE_SIZE || (n & (n - 1)) !== 0) {
    throw ringwireError('ERR_OUT_OF_RANGE', `queue size must be a power of two in [1, ${MAX_QUEUE_SIZE}], got ${n}`);
  }
}

/**
 * virtio 1.x 2.7.10 / 2.7.7 with VIRTIO_F_EVENT_IDX: after moving an index from `old` to `next`,
 * notify the other side iff its event index lies in [old, next), all modulo 2^16:
 * (u16)(next - event - 1) < (u16)(next - old).
 */
export function vringNeedEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & 0xffff) < ((next - old) & 0xffff);
}

/** Host views of one queue's three parts, checked for guest alignment and host alignment. */
export interface RingViews {
  desc: DataView;
  /** The available ring as u16s: [flags, idx, ring[0..n-1], used_event]. */
  avail: Uint16Array;
  /** The used ring as u16s: [flags, idx, ..., avail_event at 2 + 4n]. */
  usedU16: Uint16Array;
  /** The used elements as u32 pairs: id at 2i, len at 2i + 1. */
  usedElems: Uint32Array;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Translates and checks the ring addresses (2.7 "Table: Virtqueue Part Alignment"). The rings'
 * index fields are accessed with Atomics on native-endian typed arrays, so this needs a
 * little-endian host and host offsets with the same alignment as the guest addresses.
 * Throws `code` (ERR_VIRTQUEUE_BROKEN for the device side) with the reason.
 */
export function mapRings(
  memory: GuestMemory,
  space: AddressSpace,
  n: number,
  addrs: SplitQueueAddresses,
  code: 'ERR_VIRTQUEUE_BROKEN' | 'ERR_OUT_OF_RANGE',
): RingViews {
  checkQueueSize(n);
  if (!LITTLE_ENDIAN_HOST) throw ringwireError('ERR_NATIVE', 'split virtqueues need a little-endian host');
  const part = (name: string, addr: GuestAddress, len: number, align: number): Uint8Array => {
    const a = toU64(addr, `${name} address`);
    if (a % BigInt(align) !== 0n) throw ringwireError(code, `${name} ring address 0x${a.toString(16)} is not ${align}-byte aligned`);
    const view = memory.lookup(space, a <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(a) : a, len);
    if (!view) throw ringwireError(code, `${name} ring 0x${a.toString(16)}+${len} is outside guest memory`);
    if (view.byteOffset % align !== 0) throw ringwireError(code, `${name} ring is misaligned in the host mapping`);
    return view;
  };
  const d = part('descriptor', addrs.desc, descTableBytes(n), 16);
  const a = part('available', addrs.avail, availRingBytes(n), 2);
  const u = part('used', addrs.used, usedRingBytes(n), 4);
  return {
    desc: new DataView(d.buffer, d.byteOffset, d.byteLength),
    avail: new Uint16Array(a.buffer, a.byteOffset, 3 + n),
    usedU16: new Uint16Array(u.buffer, u.byteOffset, 3 + 4 * n),
    usedElems: new Uint32Array(u.buffer, u.byteOffset + RING_ENTRIES, 2 * n),
  };
}
