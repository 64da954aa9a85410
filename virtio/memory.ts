/**
 * Guest memory as seen by a virtio device: a set of regions, each a host mapping of part of the
 * guest's RAM, with two address spaces to translate from.
 *
 * - Guest physical addresses (GPA): what descriptors carry (virtio 1.x, 2.7.5 "The Virtqueue
 *   Descriptor Table": `addr` is a guest-physical address).
 * - Front-end user addresses (UVA): what vhost-user ring addresses carry (vhost-user.rst, "Memory
 *   access": "User addresses map to the vhost memory region containing that user address").
 *
 * Both are u64. JavaScript numbers are exact only below 2^53, so every bound is kept as a bigint and
 * also as a number when it is safe; lookups take the number path when they can and fall back to
 * bigint arithmetic otherwise. A range must lie inside ONE region: a range that touches two adjacent
 * regions is rejected, not stitched, because the two host mappings are not contiguous.
 *
 * Size: a region may be as large as the kernel lets us map (VMs have 8-64 GiB, often above the 4 GiB
 * hole), but one typed array cannot span more than 2^32 bytes on Node 20. So a region keeps its
 * whole mapping as the (Shared)ArrayBuffer, which can, and a translated range is a window into it:
 * a descriptor's buffer is at most 4 GiB (its len is a u32), so its window always fits.
 *
 * Concurrency contract: immutable after construction; any thread holding the same buffers may use
 * its own GuestMemory over them. Replacing the map (vhost-user SET_MEM_TABLE) means building a new one.
 */
import { ringwireError } from '../lib/errors.js';

/** A u64 address: a number (must be a safe integer) or a bigint in [0, 2^64). */
export type GuestAddress = bigint | number;

export interface GuestMemoryRegionInit {
  /** First guest-physical address of the region. */
  guestPhysAddr: GuestAddress;
  /** Region length in bytes; at least 1. */
  size: GuestAddress;
  /** The front-end's virtual address of the region's first byte (vhost-user ring addresses). Defaults to guestPhysAddr. */
  userspaceAddr?: GuestAddress;
  /** Offset of the region's first byte inside the mapping (vhost-user mmap_offset). Defaults to 0. */
  mmapOffset?: GuestAddress;
  /**
   * The host mapping, holding at least mmapOffset + size bytes: a view of a (Shared)ArrayBuffer, or
   * the buffer itself (needed past 4 GiB, where no single view reaches). Exactly one of the two.
   */
  bytes?: Uint8Array;
  buffer?: ArrayBuffer | SharedArrayBuffer;
}

/** A validated region. Bounds are half-open: [start, start + size). */
export interface GuestMemoryRegion {
  readonly guestPhysAddr: bigint;
  readonly userspaceAddr: bigint;
  readonly size: number;
  readonly mmapOffset: number;
  /** The mapping; the region's byte i (guest-physical address guestPhysAddr + i) is its byte byteOffset + i. */
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly byteOffset: number;
}

/** The window [offset, offset + len) of a region (bounds already checked). */
export function regionView(r: GuestMemoryRegion, offset: number, len: number): Uint8Array {
  return new Uint8Array(r.buffer, r.byteOffset + offset, len);
}

export type AddressSpace = 'guest-physical' | 'user-virtual';

const U64_LIMIT = 1n << 64n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

interface Bounds {
  readonly start: bigint;
  readonly end: bigint;
  /** start and end as numbers, or NaN when end is past 2^53 (then only the bigint path is exact). */
  readonly startN: number;
  readonly endN: number;
}

function bounds(start: bigint, size: number): Bounds {
  const end = start + BigInt(size);
  const safe = end <= MAX_SAFE;
  return { start, end, startN: safe ? Number(start) : NaN, endN: safe ? Number(end) : NaN };
}

/** Parses a caller-supplied u64; throws ERR_INVALID_ARG/ERR_OUT_OF_RANGE on anything else. */
export function toU64(value: GuestAddress, what: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value >= U64_LIMIT) throw ringwireError('ERR_OUT_OF_RANGE', `${what} ${value} is not a u64`);
    return value;
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw ringwireError('ERR_INVALID_ARG', `${what} must be a non-negative safe integer or a bigint, got ${String(value)}`);
  }
  return BigInt(value);
}

export class GuestMemory {
  readonly regions: readonly GuestMemoryRegion[];
  readonly #gpa: readonly Bounds[];
  readonly #uva: readonly Bounds[];

  constructor(regions: readonly GuestMemoryRegionInit[]) {
    const out: GuestMemoryRegion[] = [];
    for (const [i, r] of regions.entries()) {
      const gpa = toU64(r.guestPhysAddr, `region ${i} guestPhysAddr`);
      const size64 = toU64(r.size, `region ${i} size`);
      const uva = r.userspaceAddr === undefined ? gpa : toU64(r.userspaceAddr, `region ${i} userspaceAddr`);
      const off64 = r.mmapOffset === undefined ? 0n : toU64(r.mmapOffset, `region ${i} mmapOffset`);
      const { buffer, byteOffset, byteLength } = mapping(r, i);
      if (size64 === 0n) throw ringwireError('ERR_OUT_OF_RANGE', `region ${i} is empty`);
      if (gpa + size64 > U64_LIMIT || uva + size64 > U64_LIMIT) {
        throw ringwireError('ERR_OUT_OF_RANGE', `region ${i} wraps past 2^64`);
      }
      if (off64 + size64 > BigInt(byteLength)) {
        throw ringwireError('ERR_OUT_OF_RANGE', `region ${i} needs mmapOffset + size = ${off64 + size64} bytes, mapping has ${byteLength}`);
      }
      const size = Number(size64);
      const mmapOffset = Number(off64);
      out.push({ guestPhysAddr: gpa, userspaceAddr: uva, size, mmapOffset, buffer, byteOffset: byteOffset + mmapOffset });
    }
    const gpaBounds = out.map((r) => bounds(r.guestPhysAddr, r.size));
    const uvaBounds = out.map((r) => bounds(r.userspaceAddr, r.size));
    rejectOverlap(gpaBounds, 'guest-physical');
    rejectOverlap(uvaBounds, 'user-virtual');
    this.regions = out;
    this.#gpa = gpaBounds;
    this.#uva = uvaBounds;
  }

  /**
   * The bytes [addr, addr + len) of one region as a view, or undefined when the range is not
   * inside a single region (including u64 wrap-around). Never throws on hostile values: this is
   * the path descriptor walking takes. `addr` must already be a u64 (number ≤ 2^53 or bigint).
   */
  lookup(space: AddressSpace, addr: GuestAddress, len: number): Uint8Array | undefined {
    const table = space === 'guest-physical' ? this.#gpa : this.#uva;
    const i = findRegion(table, addr, len);
    if (i < 0) return undefined;
    const b = table[i]!;
    const offset = typeof addr === 'number' && !Number.isNaN(b.startN) ? addr - b.startN : Number(BigInt(addr) - b.start);
    return regionView(this.regions[i]!, offset, len);
  }

  /** Like lookup() for guest-physical addresses, but throws ERR_GUEST_MEMORY on a miss. */
  translateGpa(gpa: GuestAddress, len: number): Uint8Array {
    return this.#translate('guest-physical', gpa, len);
  }

  /** Like lookup() for front-end user addresses, but throws ERR_GUEST_MEMORY on a miss. */
  translateUva(uva: GuestAddress, len: number): Uint8Array {
    return this.#translate('user-virtual', uva, len);
  }

  /** Converts a front-end user address to the guest-physical address of the same byte, or undefined. */
  uvaToGpa(uva: GuestAddress): bigint | undefined {
    const i = findRegion(this.#uva, uva, 1);
    if (i < 0) return undefined;
    const r = this.regions[i]!;
    return r.guestPhysAddr + (BigInt(uva) - r.userspaceAddr);
  }

  #translate(space: AddressSpace, addr: GuestAddress, len: number): Uint8Array {
    const a = toU64(addr, `${space} address`);
    if (!Number.isSafeInteger(len) || len < 0) throw ringwireError('ERR_INVALID_ARG', `length must be a non-negative safe integer, got ${len}`);
    const view = this.lookup(space, a <= MAX_SAFE ? Number(a) : a, len);
    if (view) return view;
    const inSome = this.lookup(space, a <= MAX_SAFE ? Number(a) : a, 0) !== undefined;
    throw ringwireError(
      'ERR_GUEST_MEMORY',
      `${space} range 0x${a.toString(16)}+${len} ${inSome ? 'runs past the end of its region (ranges spanning two regions are not supported)' : 'is not in any region'}`,
    );
  }
}

/** The buffer behind a region's init, where the region's mapping starts in it, and its length. */
function mapping(r: GuestMemoryRegionInit, i: number): { buffer: ArrayBuffer | SharedArrayBuffer; byteOffset: number; byteLength: number } {
  if (r.bytes !== undefined && r.buffer !== undefined) throw ringwireError('ERR_INVALID_ARG', `region ${i}: give bytes or buffer, not both`);
  if (r.bytes !== undefined) {
    if (!(r.bytes instanceof Uint8Array)) throw ringwireError('ERR_INVALID_ARG', `region ${i} bytes must be a Uint8Array`);
    return { buffer: r.bytes.buffer, byteOffset: r.bytes.byteOffset, byteLength: r.bytes.byteLength };
  }
  if (r.buffer instanceof ArrayBuffer || r.buffer instanceof SharedArrayBuffer) return { buffer: r.buffer, byteOffset: 0, byteLength: r.buffer.byteLength };
  throw ringwireError('ERR_INVALID_ARG', `region ${i} needs bytes (a Uint8Array) or buffer (an ArrayBuffer or SharedArrayBuffer)`);
}

/** Index of the region holding all of [addr, addr + len), or -1. A zero-length range may sit at a region's end. */
function findRegion(table: readonly Bounds[], addr: GuestAddress, len: number): number {
  if (typeof addr === 'number') {
    for (let i = 0; i < table.length; i++) {
      const b = table[i]!;
      if (Number.isNaN(b.startN)) {
        if (inBig(b, BigInt(addr), len)) return i;
      } else if (addr >= b.startN && addr <= b.endN && len <= b.endN - addr) {
        return i;
      }
    }
    return -1;
  }
  for (let i = 0; i < table.length; i++) if (inBig(table[i]!, addr, len)) return i;
  return -1;
}

function inBig(b: Bounds, addr: bigint, len: number): boolean {
  return addr >= b.start && addr <= b.end && BigInt(len) <= b.end - addr;
}

function rejectOverlap(table: readonly Bounds[], space: AddressSpace): void {
  const sorted = [...table].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.start < sorted[i - 1]!.end) {
      throw ringwireError('ERR_OUT_OF_RANGE', `memory regions overlap in ${space} space at 0x${sorted[i]!.start.toString(16)}`);
    }
  }
}
