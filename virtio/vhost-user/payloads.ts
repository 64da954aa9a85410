/**
 * Typed views of vhost-user message payloads (QEMU docs/interop/vhost-user.rst, "Message
 * Specification" > "Payload"): https://www.qemu.org/docs/master/interop/vhost-user.html
 *
 * Each view wraps the payload bytes without copying. `check()` / `isValid()` validate syntax only
 * (size, reserved bits, u64 overflow); what a value means for the device (is this vring index in
 * range, is this the right moment for SET_MEM_TABLE) is the state layer's business. Read fields
 * only from a view that passed isValid(); getters on a short payload throw RangeError from DataView.
 *
 * "All numbers are in the machine native byte order": vhost-user peers share one host, and these
 * views read little-endian, so like the virtqueues they need a little-endian host (x86-64, arm64).
 * Every `encode` returns a fresh payload, ready for encodeMessage()/encodeReply() in protocol.ts.
 */

const U64_LIMIT = 1n << 64n;

abstract class PayloadView {
  protected readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  /** Why the payload is malformed, or null when it is well formed. */
  abstract check(): string | null;
  isValid(): boolean {
    return this.check() === null;
  }
  protected u32(off: number): number {
    return this.view.getUint32(off, true);
  }
  protected u64(off: number): bigint {
    return this.view.getBigUint64(off, true);
  }
}

function sizeIs(p: PayloadView, n: number, what: string): string | null {
  return p.bytes.byteLength === n ? null : `${what} payload is ${p.bytes.byteLength} bytes, expected ${n}`;
}

/** "A single 64-bit integer": features, protocol features, queue counts, REPLY_ACK status. */
export class U64Payload extends PayloadView {
  static readonly SIZE = 8;
  check(): string | null {
    return sizeIs(this, U64Payload.SIZE, 'u64');
  }
  get value(): bigint {
    return this.u64(0);
  }
  static encode(value: bigint): Uint8Array {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    return out;
  }
}

/** Bit 8 of the SET_VRING_KICK/CALL/ERR u64: no fd in the ancillary data (poll instead). */
export const VHOST_USER_VRING_NOFD_MASK = 0x100;
/** Bits 0-7 of the SET_VRING_KICK/CALL/ERR u64: the vring index. */
export const VHOST_USER_VRING_INDEX_MASK = 0xff;

/**
 * The u64 of SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR: "Bits (0-7) of the payload contain
 * the vring index. Bit 8 is the invalid FD flag." Other bits are reserved and must be zero.
 */
export class VringFdPayload extends PayloadView {
  static readonly SIZE = 8;
  check(): string | null {
    const size = sizeIs(this, VringFdPayload.SIZE, 'vring fd');
    if (size) return size;
    const v = this.u64(0);
    return (v & ~BigInt(VHOST_USER_VRING_INDEX_MASK | VHOST_USER_VRING_NOFD_MASK)) === 0n ? null : `vring fd payload 0x${v.toString(16)} sets reserved bits`;
  }
  get index(): number {
    return this.u32(0) & VHOST_USER_VRING_INDEX_MASK;
  }
  /** True when the front-end sent no fd and wants the back-end to poll. */
  get noFd(): boolean {
    return (this.u32(0) & VHOST_USER_VRING_NOFD_MASK) !== 0;
  }
  static encode(index: number, noFd = false): Uint8Array {
    return U64Payload.encode(BigInt((index & VHOST_USER_VRING_INDEX_MASK) | (noFd ? VHOST_USER_VRING_NOFD_MASK : 0)));
  }
}

/** "A vring state description": {u32 index, u32 num} (SET_VRING_NUM/BASE, GET_VRING_BASE, SET_VRING_ENABLE). */
export class VringStatePayload extends PayloadView {
  static readonly SIZE = 8;
  check(): string | null {
    return sizeIs(this, VringStatePayload.SIZE, 'vring state');
  }
  get index(): number {
    return this.u32(0);
  }
  get num(): number {
    return this.u32(4);
  }
  static encode(index: number, num: number): Uint8Array {
    const out = new Uint8Array(8);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, index >>> 0, true);
    dv.setUint32(4, num >>> 0, true);
    return out;
  }
}

/** VHOST_VRING_F_LOG: the only defined vring address flag (log used-ring writes). */
export const VHOST_VRING_F_LOG = 0x1;

/**
 * "A vring address description" (SET_VRING_ADDR): u32 index, u32 flags, then u64 descriptor,
 * used, available and log addresses (the rst's table shows a stray "size" column; the C struct
 * vhost_vring_addr it mirrors has none, and QEMU sends 40 bytes). Ring addresses are front-end
 * user addresses; log is a guest-physical address.
 */
export class VringAddressPayload extends PayloadView {
  static readonly SIZE = 40;
  check(): string | null {
    const size = sizeIs(this, VringAddressPayload.SIZE, 'vring address');
    if (size) return size;
    return (this.flags & ~VHOST_VRING_F_LOG) === 0 ? null : `vring address flags 0x${this.flags.toString(16)} set undefined bits`;
  }
  get index(): number {
    return this.u32(0);
  }
  get flags(): number {
    return this.u32(4);
  }
  get desc(): bigint {
    return this.u64(8);
  }
  get used(): bigint {
    return this.u64(16);
  }
  get avail(): bigint {
    return this.u64(24);
  }
  get log(): bigint {
    return this.u64(32);
  }
  static encode(a: { index: number; flags?: number; desc: bigint; used: bigint; avail: bigint; log?: bigint }): Uint8Array {
    const out = new Uint8Array(VringAddressPayload.SIZE);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, a.index >>> 0, true);
    dv.setUint32(4, (a.flags ?? 0) >>> 0, true);
    dv.setBigUint64(8, a.desc, true);
    dv.setBigUint64(16, a.used, true);
    dv.setBigUint64(24, a.avail, true);
    dv.setBigUint64(32, a.log ?? 0n, true);
    return out;
  }
}

/** One region: {u64 guest_phys_addr, u64 memory_size, u64 userspace_addr, u64 mmap_offset}. */
export interface MemoryRegionDescription {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  mmapOffset: bigint;
}

export const MEMORY_REGION_SIZE = 32;
/** VHOST_MEMORY_BASELINE_NREGIONS: a SET_MEM_TABLE carries at most 8 regions (and 8 fds). */
export const VHOST_MEMORY_MAX_NREGIONS = 8;

function readRegion(dv: DataView, off: number): MemoryRegionDescription {
  return {
    guestPhysAddr: dv.getBigUint64(off, true),
    memorySize: dv.getBigUint64(off + 8, true),
    userspaceAddr: dv.getBigUint64(off + 16, true),
    mmapOffset: dv.getBigUint64(off + 24, true),
  };
}

function writeRegion(dv: DataView, off: number, r: MemoryRegionDescription): void {
  dv.setBigUint64(off, r.guestPhysAddr, true);
  dv.setBigUint64(off + 8, r.memorySize, true);
  dv.setBigUint64(off + 16, r.userspaceAddr, true);
  dv.setBigUint64(off + 24, r.mmapOffset, true);
}

function checkRegion(r: MemoryRegionDescription, what: string): string | null {
  if (r.memorySize === 0n) return `${what} is empty`;
  if (r.guestPhysAddr + r.memorySize > U64_LIMIT) return `${what} wraps the guest-physical space`;
  if (r.userspaceAddr + r.memorySize > U64_LIMIT) return `${what} wraps the user address space`;
  if (r.mmapOffset + r.memorySize > U64_LIMIT) return `${what} mmap offset + size overflows`;
  return null;
}

/**
 * "Memory regions description" (SET_MEM_TABLE): u32 nregions, u32 padding, region[nregions].
 * QEMU sends 8 + 32 * nregions bytes; a front-end that sends the whole 8-slot struct is accepted too.
 */
export class MemoryTablePayload extends PayloadView {
  static readonly HEADER_SIZE = 8;
  static readonly MAX_SIZE = 8 + MEMORY_REGION_SIZE * VHOST_MEMORY_MAX_NREGIONS;
  check(): string | null {
    const len = this.bytes.byteLength;
    if (len < MemoryTablePayload.HEADER_SIZE) return `memory table payload is ${len} bytes, shorter than its 8-byte header`;
    const n = this.nregions;
    if (n > VHOST_MEMORY_MAX_NREGIONS) return `memory table has ${n} regions, at most ${VHOST_MEMORY_MAX_NREGIONS} allowed`;
    if (len !== 8 + MEMORY_REGION_SIZE * n && len !== MemoryTablePayload.MAX_SIZE) {
      return `memory table payload is ${len} bytes, ${n} regions need ${8 + MEMORY_REGION_SIZE * n}`;
    }
    for (let i = 0; i < n; i++) {
      const bad = checkRegion(this.region(i), `memory table region ${i}`);
      if (bad) return bad;
    }
    return null;
  }
  get nregions(): number {
    return this.u32(0);
  }
  region(i: number): MemoryRegionDescription {
    return readRegion(this.view, 8 + MEMORY_REGION_SIZE * i);
  }
  regions(): MemoryRegionDescription[] {
    return Array.from({ length: this.nregions }, (_, i) => this.region(i));
  }
  static encode(regions: readonly MemoryRegionDescription[]): Uint8Array {
    const out = new Uint8Array(8 + MEMORY_REGION_SIZE * regions.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, regions.length, true);
    regions.forEach((r, i) => writeRegion(dv, 8 + MEMORY_REGION_SIZE * i, r));
    return out;
  }
}

/** "Single memory region description" (ADD_MEM_REG / REM_MEM_REG): u64 padding, then one region. */
export class MemoryRegionPayload extends PayloadView {
  static readonly SIZE = 8 + MEMORY_REGION_SIZE;
  check(): string | null {
    return sizeIs(this, MemoryRegionPayload.SIZE, 'memory region') ?? checkRegion(this.region, 'memory region');
  }
  get region(): MemoryRegionDescription {
    return readRegion(this.view, 8);
  }
  static encode(r: MemoryRegionDescription): Uint8Array {
    const out = new Uint8Array(MemoryRegionPayload.SIZE);
    writeRegion(new DataView(out.buffer), 8, r);
    return out;
  }
}

/** VHOST_USER_MAX_CONFIG_SIZE: the virtio config space a GET/SET_CONFIG may carry. */
export const VHOST_USER_MAX_CONFIG_SIZE = 256;
/** Config flags: 0 for writable fields, 1 for live migration. */
export const VHOST_SET_CONFIG_TYPE_FRONTEND = 0;
export const VHOST_SET_CONFIG_TYPE_MIGRATION = 1;

/** "Virtio device config space" (GET_CONFIG / SET_CONFIG): u32 offset, u32 size, u32 flags, u8 payload[size]. */
export class ConfigPayload extends PayloadView {
  static readonly HEADER_SIZE = 12;
  check(): string | null {
    const len = this.bytes.byteLength;
    if (len < ConfigPayload.HEADER_SIZE) return `config payload is ${len} bytes, shorter than its 12-byte header`;
    if (this.size > VHOST_USER_MAX_CONFIG_SIZE) return `config size ${this.size} exceeds ${VHOST_USER_MAX_CONFIG_SIZE}`;
    if (len !== ConfigPayload.HEADER_SIZE + this.size) return `config payload is ${len} bytes, header says ${ConfigPayload.HEADER_SIZE + this.size}`;
    if (this.offset + this.size > VHOST_USER_MAX_CONFIG_SIZE) return `config range ${this.offset}+${this.size} is past the ${VHOST_USER_MAX_CONFIG_SIZE}-byte config space`;
    if (this.flags > VHOST_SET_CONFIG_TYPE_MIGRATION) return `config flags ${this.flags} are undefined`;
    return null;
  }
  get offset(): number {
    return this.u32(0);
  }
  get size(): number {
    return this.u32(4);
  }
  get flags(): number {
    return this.u32(8);
  }
  /** The config bytes (a view, not a copy). */
  get data(): Uint8Array {
    return this.bytes.subarray(ConfigPayload.HEADER_SIZE, ConfigPayload.HEADER_SIZE + this.size);
  }
  static encode(offset: number, flags: number, data: Uint8Array): Uint8Array {
    const out = new Uint8Array(ConfigPayload.HEADER_SIZE + data.byteLength);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, offset >>> 0, true);
    dv.setUint32(4, data.byteLength, true);
    dv.setUint32(8, flags >>> 0, true);
    out.set(data, ConfigPayload.HEADER_SIZE);
    return out;
  }
}
