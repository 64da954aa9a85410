/**
 * SET_MEM_TABLE, the state side: maps each region's fd at its mmap_offset and builds the
 * GuestMemory the queues translate through (vhost-user.rst, "Memory regions description" and
 * "VHOST_USER_SET_MEM_TABLE": "the back-end ... must map the regions ... and close the old ones").
 *
 * Unmapping: the addon exposes a mapping as an external SharedArrayBuffer that V8 unmaps when it is
 * garbage-collected, which may be never soon. So a replaced or dropped table is released at once
 * (Region.release(): the file's pages are swapped for private zero pages, so a stale view cannot
 * fault), after the queues over it are stopped; the fds are closed right after mmap (an fd left
 * open per region would keep a dead guest's RAM too).
 *
 * Seals: a front-end that shrinks a region's file after we mapped it makes our next access to the
 * lost pages a SIGBUS, which kills the whole back-end process (every other port of a switch with
 * it). So each fd must carry F_SEAL_SHRINK, checked before mapping (QEMU's memory-backend-memfd
 * seals by default). Front-ends that pass unsealed memory (DPDK's --no-huge memfds, file-backed
 * memory) are only served with `allowUnsealedMemory`, which trusts them not to shrink it.
 */
import { isRingwireError, ringwireError } from '../../lib/errors.js';
import { closeFd } from '../../lib/native/native.js';
import { Region } from '../../lib/native/region.js';
import { GuestMemory } from '../memory.js';
import type { MemoryRegionDescription } from './payloads.js';

const PAGE = 4096n;

export interface MemoryTableOptions {
  /** Map regions whose fds lack F_SEAL_SHRINK: the front-end is trusted not to shrink them (it could SIGBUS us). Default false. */
  allowUnsealedMemory?: boolean;
}

/** A mapped table: the guest memory to translate through, and the way to unmap it when replaced. */
export interface MappedMemoryTable {
  readonly memory: GuestMemory;
  /** Unmaps every region now (see above). Idempotent. */
  release(): void;
}

/**
 * Maps `regions` (one fd each, same order) and returns the new guest memory. Takes ownership of
 * every fd: on success and on failure alike all of them are closed before returning (and, on
 * failure, whatever was mapped is released). Throws ERR_VHOST_PROTOCOL (drop the connection) on an
 * unmappable or inconsistent table.
 */
export function mapMemoryTable(regions: readonly MemoryRegionDescription[], fds: readonly number[], options: MemoryTableOptions = {}): MappedMemoryTable {
  const requireSeals = options.allowUnsealedMemory ? {} : { shrink: true };
  const mapped: Region[] = [];
  let done = false;
  try {
    if (regions.length === 0) throw ringwireError('ERR_VHOST_PROTOCOL', 'SET_MEM_TABLE with no regions');
    if (fds.length !== regions.length) {
      throw ringwireError('ERR_VHOST_PROTOCOL', `SET_MEM_TABLE has ${regions.length} regions but ${fds.length} fds`);
    }
    const init = regions.map((r, i) => {
      if (r.mmapOffset % PAGE !== 0n) throw ringwireError('ERR_VHOST_PROTOCOL', `region ${i}: mmap_offset 0x${r.mmapOffset.toString(16)} is not page-aligned`);
      if (r.mmapOffset + r.memorySize > BigInt(Number.MAX_SAFE_INTEGER)) throw ringwireError('ERR_VHOST_PROTOCOL', `region ${i}: too large to map`);
      let region: Region;
      try {
        region = Region.fromFd(fds[i]!, { writable: true, offset: Number(r.mmapOffset), size: Number(r.memorySize), requireSeals });
      } catch (err) {
        throw ringwireError('ERR_VHOST_PROTOCOL', `region ${i}: cannot map ${r.memorySize} bytes at offset ${r.mmapOffset} of its fd: ${(err as Error).message}`, { cause: err });
      }
      mapped.push(region);
      return { guestPhysAddr: r.guestPhysAddr, userspaceAddr: r.userspaceAddr, size: r.memorySize, buffer: region.buffer };
    });
    let memory: GuestMemory;
    try {
      memory = new GuestMemory(init);
    } catch (err) {
      throw isRingwireError(err) ? ringwireError('ERR_VHOST_PROTOCOL', `memory table refused: ${err.message}`, { cause: err }) : err;
    }
    done = true;
    return { memory, release: () => { for (const r of mapped) r.release(); } };
  } finally {
    // Regions own the fds they mapped (a refused table's mappings go too); the rest are still ours.
    for (const r of mapped) if (done) r.closeFd(); else r.release();
    for (const fd of fds.slice(mapped.length)) closeQuietly(fd);
  }
}

/** Closes a received fd we are refusing; an already-invalid fd is not worth an error. */
export function closeQuietly(fd: number): void {
  try {
    closeFd(fd);
  } catch {
    // EBADF: nothing left to release.
  }
}
