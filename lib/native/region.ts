/**
 * Region: a shared-memory mapping exposed as a SharedArrayBuffer.
 *
 * Concurrency contract: the buffer may be used from any thread it is posted to and from any process
 * that maps the same fd; Atomics work across all of them. The Region object itself (fd, seals,
 * close) belongs to the thread that created it.
 *
 * Lifetime: close() only closes the fd. The mapping lives as long as the SharedArrayBuffer — in
 * this thread and every worker it was posted to — and is unmapped by V8's garbage collector when
 * the last reference dies; release() lets go of the mapped file at once instead. A read-only region is mapped PROT_READ: writing through its buffer is a
 * segmentation fault, which is the point (a peer's memory cannot be scribbled on by accident).
 *
 * SIGBUS: every mapping is bounds-checked against the file size before mmap. A memfd that is later
 * shrunk by someone else would still fault, which is why creators seal (shrink at least) and why
 * a receiver maps a peer's fd with fromFd's requireSeals, which checks before mapping.
 */
import { ringwireError } from '../errors.js';
import { assertFd, check, native } from './native.js';

export interface SealSet {
  shrink?: boolean;
  grow?: boolean;
  write?: boolean;
  futureWrite?: boolean;
  seal?: boolean;
}

export interface MapOptions {
  writable: boolean;
  /** Byte offset into the file; need not be page-aligned. Default 0. */
  offset?: number;
  /** Bytes to map; default: from offset to the end of the file (required for non-regular files). */
  size?: number;
  /**
   * Seals the fd must already carry (fromFd only). Checked before fstat and mmap: once a peer's
   * memfd has F_SEAL_SHRINK it can no longer shrink below the size we then see, so the mapping can
   * never fault. Checked after mapping, a peer could shrink and only then seal (SIGBUS).
   */
  requireSeals?: SealSet;
}

/** Linux F_SEAL_* bits (include/uapi/linux/fcntl.h). */
const SEAL_BITS = { seal: 0x1, shrink: 0x2, grow: 0x4, write: 0x8, futureWrite: 0x10 } as const;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** memfd_create's limit: 249 bytes of name after its "memfd:" prefix. */
const MAX_MEMFD_NAME = 249;

function assertSize(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw ringwireError('ERR_INVALID_ARG', `${what} must be an integer, got ${typeof value === 'number' ? value : typeof value}`);
  }
  if (value < 0 || value > Number.MAX_SAFE_INTEGER) throw ringwireError('ERR_OUT_OF_RANGE', `${what} must be between 0 and 2^53-1, got ${value}`);
}

function assertMapOptions(opts: unknown): asserts opts is MapOptions {
  if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'options must be an object { writable, offset?, size? }');
  const o = opts as Record<string, unknown>;
  if (typeof o.writable !== 'boolean') throw ringwireError('ERR_INVALID_ARG', 'options.writable must be a boolean');
  if (o.offset !== undefined) assertSize(o.offset, 'options.offset');
  if (o.size !== undefined) {
    assertSize(o.size, 'options.size');
    if (o.size === 0) throw ringwireError('ERR_OUT_OF_RANGE', 'options.size must be at least 1');
  }
  if (o.requireSeals !== undefined) sealBits(o.requireSeals, 'options.requireSeals');
}

/** The F_SEAL_* bits of a seal set, validating its shape. */
function sealBits(s: unknown, what: string): number {
  if (typeof s !== 'object' || s === null) throw ringwireError('ERR_INVALID_ARG', `${what} must be an object`);
  let bits = 0;
  for (const [key, bit] of Object.entries(SEAL_BITS)) {
    const v = (s as Record<string, unknown>)[key];
    if (v !== undefined && typeof v !== 'boolean') throw ringwireError('ERR_INVALID_ARG', `${what}.${key} must be a boolean`);
    if (v) bits |= bit;
  }
  return bits;
}

function sealNames(bits: number): string {
  return Object.entries(SEAL_BITS).filter(([, bit]) => (bits & bit) !== 0).map(([name]) => name).join(', ');
}

/** Maps [offset, offset + size) of `fd`, checking bounds against the file first so a short file is a typed error, not SIGBUS. */
function mapChecked(fd: number, opts: MapOptions, what: string): { buffer: SharedArrayBuffer; size: number } {
  const addon = native();
  const stat = new Float64Array(2);
  check('fstat', addon.fstat(fd, stat), what);
  const fileSize = stat[0]!;
  const regular = (stat[1]! & S_IFMT) === S_IFREG;
  const offset = opts.offset ?? 0;
  let size = opts.size;
  if (regular) {
    if (offset >= fileSize) {
      throw ringwireError('ERR_OUT_OF_RANGE', `${what}: offset ${offset} is not inside the file (size ${fileSize})`);
    }
    size ??= fileSize - offset;
    if (offset + size > fileSize) {
      throw ringwireError('ERR_OUT_OF_RANGE', `${what}: mapping ${size} bytes at offset ${offset} runs past the end of the file (size ${fileSize})`);
    }
  } else if (size === undefined) {
    throw ringwireError('ERR_INVALID_ARG', `${what}: not a regular file, so options.size is required`);
  }
  const buffer = addon.mmap(fd, offset, size, opts.writable);
  if (typeof buffer === 'number') check('mmap', buffer, what);
  return { buffer: buffer as SharedArrayBuffer, size };
}

export class Region {
  #fd: number;
  #released = false;
  readonly size: number;
  readonly writable: boolean;
  readonly buffer: SharedArrayBuffer;

  private constructor(fd: number, size: number, writable: boolean, buffer: SharedArrayBuffer) {
    this.#fd = fd;
    this.size = size;
    this.writable = writable;
    this.buffer = buffer;
  }

  /** Creates an anonymous memfd (close-on-exec, sealing allowed) of `size` bytes, mapped read-write. */
  static create(name: string, size: number): Region {
    if (typeof name !== 'string') throw ringwireError('ERR_INVALID_ARG', 'name must be a string');
    if (Buffer.byteLength(name) > MAX_MEMFD_NAME || name.includes('\0')) {
      throw ringwireError('ERR_OUT_OF_RANGE', `name must be at most ${MAX_MEMFD_NAME} bytes without NUL`);
    }
    assertSize(size, 'size');
    if (size === 0) throw ringwireError('ERR_OUT_OF_RANGE', 'size must be at least 1');
    const addon = native();
    const fd = check('memfd_create', addon.memfdCreate(name), name);
    try {
      check('ftruncate', addon.ftruncate(fd, size), name);
      const { buffer } = mapChecked(fd, { writable: true }, name);
      return new Region(fd, size, true, buffer);
    } catch (err) {
      addon.close(fd);
      throw err;
    }
  }

  /**
   * Maps an fd received from a peer. On success the Region owns the fd (closeFd()/close() close it);
   * on failure the caller still owns it.
   */
  static fromFd(fd: number, opts: MapOptions): Region {
    assertFd(fd);
    assertMapOptions(opts);
    if (opts.requireSeals) {
      const wanted = sealBits(opts.requireSeals, 'options.requireSeals');
      const missing = wanted & ~check('fcntl(F_GET_SEALS)', native().getSeals(fd), `fd ${fd}`);
      if (missing) throw ringwireError('ERR_INVALID_ARG', `fd ${fd} is missing required seals: ${sealNames(missing)}`);
    }
    const { buffer, size } = mapChecked(fd, opts, `fd ${fd}`);
    return new Region(fd, size, opts.writable, buffer);
  }

  /** Maps a file or device by path (/dev/shm/..., /sys/bus/pci/devices/<bdf>/resource2); the fd is closed once mapped. */
  static mapPath(path: string, opts: MapOptions): Region {
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
      throw ringwireError('ERR_INVALID_ARG', 'path must be a non-empty string without NUL');
    }
    assertMapOptions(opts);
    const addon = native();
    const fd = check('open', addon.open(path, opts.writable), path);
    try {
      const { buffer, size } = mapChecked(fd, opts, path);
      return new Region(-1, size, opts.writable, buffer);
    } finally {
      addon.close(fd);
    }
  }

  /** The memfd (or received fd); -1 once closed or for mapPath regions. */
  get fd(): number {
    return this.#fd;
  }

  /** Adds seals. Sealing `write` fails with EBUSY while any writable mapping exists; use futureWrite. */
  seal(s: SealSet): void {
    const bits = sealBits(s, 'seal');
    check('fcntl(F_ADD_SEALS)', native().addSeals(this.#liveFd(), bits));
  }

  /** The seals currently on the fd. */
  seals(): Required<SealSet> {
    const bits = check('fcntl(F_GET_SEALS)', native().getSeals(this.#liveFd()));
    return {
      shrink: (bits & SEAL_BITS.shrink) !== 0,
      grow: (bits & SEAL_BITS.grow) !== 0,
      write: (bits & SEAL_BITS.write) !== 0,
      futureWrite: (bits & SEAL_BITS.futureWrite) !== 0,
      seal: (bits & SEAL_BITS.seal) !== 0,
    };
  }

  /** Closes the fd and keeps the mapping. Idempotent. */
  closeFd(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    check('close', native().close(fd));
  }

  /** Closes the fd; the mapping goes when the buffer is garbage-collected everywhere. Idempotent. */
  close(): void {
    this.closeFd();
  }

  /**
   * Closes the fd and lets go of the mapped file now rather than at garbage collection: the buffer's
   * pages become private zero pages at the same address, so the file (a peer's memory) is no
   * longer mapped, while a view someone still holds reads zeros (or writes to a private copy) and
   * never faults. For memory a peer takes back, such as a vhost-user front-end's replaced memory
   * table. Idempotent; the buffer stays valid (zeros) until garbage-collected.
   */
  release(): void {
    this.closeFd();
    if (this.#released) return;
    this.#released = true;
    check('mmap(MAP_FIXED)', native().releaseMapping(new Uint8Array(this.buffer, 0, 1)));
  }

  /** True once release() replaced the mapping. */
  get released(): boolean {
    return this.#released;
  }

  #liveFd(): number {
    if (this.#fd < 0) throw ringwireError('ERR_RING_CLOSED', 'region fd is closed (or was never kept, for mapPath regions)');
    return this.#fd;
  }
}

/**
 * Sets the size of a file fd (ftruncate). A memfd sealed against shrinking or growing refuses with
 * ERR_NATIVE (errno EPERM) — the check a peer's attempt to truncate a region runs into.
 */
export function truncateFd(fd: number, size: number): void {
  assertFd(fd);
  assertSize(size, 'size');
  check('ftruncate', native().ftruncate(fd, size), `fd ${fd}`);
}
