/**
 * Ring blocks in sealed memfds, for rings between processes (and, through the same fds, VMs'
 * host sides). Each block lives in a memfd its writer creates (design rule 1):
 *
 *   SPSC: the producer creates the producer block, the consumer creates the consumer block; each
 *         side maps its own read-write and the peer's read-only. Both are sealed against shrink,
 *         grow and future writes, so the peer can neither truncate them (SIGBUS) nor map them writable.
 *   MPSC: the consumer creates both; producers map the producer block read-write (they all write
 *         records there) and the consumer block read-only.
 *
 * Doorbells are eventfds: the side that sleeps creates its bell and passes it to the side that rings.
 */
import { isRingwireError, ringwireError } from '../errors.js';
import { CONSUMER_BLOCK_SIZE, RingKind, producerBlockSize } from '../ring/layout.js';
import { initConsumerBlock, initProducerBlock } from '../ring/ring-memory.js';
import { native } from '../native/native.js';
import { Region } from '../native/region.js';

export type BlockSide = 'producer' | 'consumer';

/**
 * Creates and initialises one block of a ring in a fresh memfd, sealed so that a peer can map it
 * but never shrink or grow it. `peerWritable` (MPSC producer blocks only) leaves future writable
 * mappings allowed; otherwise F_SEAL_FUTURE_WRITE makes the peer's mapping read-only by force.
 */
export function createBlockRegion(kind: RingKind, capacity: number, side: BlockSide, name: string, peerWritable = false): Region {
  const size = side === 'producer' ? producerBlockSize(capacity) : CONSUMER_BLOCK_SIZE;
  const region = Region.create(name, size);
  try {
    if (side === 'producer') initProducerBlock({ buffer: region.buffer }, kind, capacity);
    else initConsumerBlock({ buffer: region.buffer }, kind, capacity);
    region.seal({ shrink: true, grow: true, futureWrite: !peerWritable, seal: true });
    return region;
  } catch (err) {
    region.close();
    throw err;
  }
}

/**
 * Maps a block fd received from a peer, refusing a memfd the peer could still shrink (a later
 * truncate would SIGBUS us). The seals are checked before the fd is inspected or mapped, so a peer
 * cannot shrink it after our mmap and seal it afterwards. Read-only maps of a memfd the peer could
 * still map writable elsewhere are fine: we never write it.
 *
 * Ownership: on success the Region owns the fd. On any failure the fd is already closed and the
 * error is ERR_HANDSHAKE (the cause attached); process-ring's attach functions rely on that.
 */
export function mapPeerBlock(fd: number, writable: boolean, what: string): Region {
  try {
    return Region.fromFd(fd, { writable, requireSeals: { shrink: true, seal: true } });
  } catch (err) {
    native().close(fd);
    if (isRingwireError(err, 'ERR_INVALID_ARG')) {
      // Region names the seals that are missing: shrink (a truncate would SIGBUS us) or seal (the
      // set we checked would not be final). Both are required (docs/layout.md).
      throw ringwireError('ERR_HANDSHAKE', `${what}: the peer's region lacks required seals (F_SEAL_SHRINK and F_SEAL_SEAL): ${(err as Error).message}`, { cause: err });
    }
    if (isRingwireError(err, 'ERR_NATIVE') && err.syscall === 'fcntl(F_GET_SEALS)') {
      throw ringwireError('ERR_HANDSHAKE', `${what}: the peer's fd cannot be sealed (not a memfd?)`, { cause: err });
    }
    throw ringwireError('ERR_HANDSHAKE', `${what}: the peer's fd cannot be mapped: ${(err as Error).message}`, { cause: err });
  }
}
