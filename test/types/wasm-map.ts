/**
 * Maps memfd pages over a WebAssembly.Memory's own pages (MAP_FIXED), so a wasm module's linear
 * memory holds rings another process shares. Test-only, through ffi-rs (as test/20 does): the
 * addon has no call for it yet, and finding the memory's address needs the V8 API
 * (SharedArrayBuffer::GetBackingStore()->Data()), which Node-API does not expose for shared
 * buffers. Here the address comes from /proc/self/maps and a marker read back through
 * /proc/self/mem. docs/native.md ("WebAssembly memory backed by a memfd") says what is safe.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { DataType, define, open } from 'ffi-rs';
import { native } from '../../lib/native/native.js';

const LIB = 'ringwire-test-libc-wasm';
open({ library: LIB, path: '' });
const libc = define({
  mmap: { library: LIB, retType: DataType.I64, paramsType: [DataType.I64, DataType.I64, DataType.I32, DataType.I32, DataType.I32, DataType.I64], errno: true },
});

const PAGE = 4096;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FIXED = 0x10;
const F_SEAL_SHRINK = 2;

/** The address of byte 0 of `memory`, found by a marker written at `probeAt`. */
export function memoryAddress(memory: { buffer: ArrayBuffer }, probeAt: number): number {
  const u8 = new Uint8Array(memory.buffer);
  const marker = Buffer.from(`ringwire-wasm-map-${process.pid}-${Math.random()}`);
  u8.set(marker, probeAt);
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const seen = Buffer.alloc(marker.length);
    for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw/.exec(line);
      if (!m) continue;
      const lo = parseInt(m[1]!, 16);
      const hi = parseInt(m[2]!, 16);
      if (hi - lo < u8.length) continue;
      try {
        readSync(fd, seen, 0, seen.length, lo + probeAt);
      } catch {
        continue;
      }
      if (seen.equals(marker)) {
        u8.fill(0, probeAt, probeAt + marker.length);
        return lo;
      }
    }
  } finally {
    closeSync(fd);
  }
  throw new Error('the WebAssembly memory is not in /proc/self/maps');
}

/**
 * Maps `length` bytes of memfd `fd` over the memory's pages at `offset` (page-aligned, inside its
 * current size, never its guard region). Read-only unless `writable`. Refuses an fd whose size can
 * still shrink (a truncate would fault the module). Returns nothing: the mapping lives as long as
 * the memory's reservation (V8 unmaps it with the memory).
 */
export function mapOver(memory: { buffer: ArrayBuffer }, base: number, offset: number, fd: number, length: number, writable: boolean): void {
  if (offset % PAGE !== 0 || offset + length > memory.buffer.byteLength) throw new RangeError(`bad placement ${offset}+${length}`);
  const seals = native().getSeals(fd);
  if (seals < 0 || (seals & F_SEAL_SHRINK) === 0) throw new Error(`fd ${fd} is not sealed against shrinking`);
  const size = Math.ceil(length / PAGE) * PAGE;
  const r = libc.mmap([base + offset, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED, fd, 0]);
  if (r.value !== base + offset) throw new Error(`mmap(MAP_FIXED) failed: errno ${r.errnoCode}`);
}
