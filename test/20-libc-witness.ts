/**
 * An independent witness for the addon's tests: libc called directly through ffi-rs, so what the
 * addon reports about fds, sizes and seals is checked against the kernel by a second path.
 * Test-only; lib/ never uses ffi-rs.
 */
import { DataType, define, open } from 'ffi-rs';

const LIB = 'ringwire-test-libc';
open({ library: LIB, path: '' }); // the main program's handle: node links libc dynamically

const libc = define({
  fcntl: { library: LIB, retType: DataType.I32, paramsType: [DataType.I32, DataType.I32, DataType.I32], errno: true },
  lseek: { library: LIB, retType: DataType.I64, paramsType: [DataType.I32, DataType.I64, DataType.I32], errno: true },
  getpid: { library: LIB, retType: DataType.I32, paramsType: [] },
  write: { library: LIB, retType: DataType.I64, paramsType: [DataType.I32, DataType.U8Array, DataType.I64], errno: true },
});

const F_GETFD = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const F_GET_SEALS = 1034;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;
const SEEK_END = 2;

function result(r: { value: number; errnoCode: number }): number {
  return r.value === -1 ? -r.errnoCode : r.value;
}

/** fcntl(fd, F_GET_SEALS), or -errno. */
export function witnessSeals(fd: number): number {
  return result(libc.fcntl([fd, F_GET_SEALS, 0]));
}

/** True when fd is open in this process (fcntl F_GETFD succeeds). */
export function witnessIsOpen(fd: number): boolean {
  return libc.fcntl([fd, F_GETFD, 0]).value !== -1;
}

/** True when fd has FD_CLOEXEC. */
export function witnessCloexec(fd: number): boolean {
  const r = result(libc.fcntl([fd, F_GETFD, 0]));
  if (r < 0) throw new Error(`fcntl(${fd}, F_GETFD) failed: ${-r}`);
  return (r & FD_CLOEXEC) !== 0;
}

/** True when fd's open file description is O_NONBLOCK. */
export function witnessNonblocking(fd: number): boolean {
  const r = result(libc.fcntl([fd, F_GETFL, 0]));
  if (r < 0) throw new Error(`fcntl(${fd}, F_GETFL) failed: ${-r}`);
  return (r & O_NONBLOCK) !== 0;
}

/**
 * Clears O_NONBLOCK on fd's open file description, as a peer that was sent the fd can at any time
 * (the flag is shared by every process holding that description).
 */
export function witnessClearNonblocking(fd: number): void {
  const flags = result(libc.fcntl([fd, F_GETFL, 0]));
  if (flags < 0) throw new Error(`fcntl(${fd}, F_GETFL) failed: ${-flags}`);
  const r = result(libc.fcntl([fd, F_SETFL, flags & ~O_NONBLOCK]));
  if (r < 0) throw new Error(`fcntl(${fd}, F_SETFL) failed: ${-r}`);
}

/** write(2)s one little-endian u64 (an eventfd increment of any size up to 2^64-2); bytes written or -errno. */
export function witnessWriteU64(fd: number, value: bigint): number {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(value);
  return result(libc.write([fd, buf, 8]));
}

/** The largest value an eventfd counter holds; a write that would pass it blocks or fails with EAGAIN. */
export const EVENTFD_MAX = 0xfffffffffffffffen;

/** The file size as lseek(SEEK_END) sees it (moves the file offset, which mappings do not use). */
export function witnessSize(fd: number): number {
  return result(libc.lseek([fd, 0, SEEK_END]));
}

export function witnessPid(): number {
  return libc.getpid([]);
}

/** Linux F_SEAL_* bits, spelled out independently of lib/native/region.ts. */
export const SEAL = { SEAL: 1, SHRINK: 2, GROW: 4, WRITE: 8, FUTURE_WRITE: 16 } as const;
