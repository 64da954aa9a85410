/**
 * `memcpy`: the copy floor for large messages, no transport at all: one thread copies each message
 * from one buffer into another (TypedArray.set, which is memmove underneath), destination buffers
 * taken in turn from a pool larger than the last-level cache so the copy is not served from it.
 * A one-copy send() can at best approach this; claim/commit, which builds the payload in place,
 * can beat it. Streams only.
 */
import type { Peer, StreamHandle, Transport } from '../transport.js';

/**
 * Destination bytes cycled through: as large as ringwire-thread-large's ring, so both write the
 * same footprint (past a 32 MiB last-level cache). Touched once before timing: first-touch page
 * faults on this VM cost more than the copies and belong to neither.
 */
const POOL_BYTES = 64 << 20;

export const memcpy: Transport = {
  name: 'memcpy',
  distance: 'thread',
  description: 'the copy floor: Uint8Array.set of each message into a pool of destinations in one thread (no transport)',
  async open(): Promise<Peer> {
    return {
      streams: {
        stream: async (size, count): Promise<StreamHandle> => {
          const src = new Uint8Array(size).fill(0x5a);
          const slots = Math.max(2, Math.floor(POOL_BYTES / size));
          const pool = new Uint8Array(slots * size).fill(1);
          let next = 0;
          return {
            messagesPerBurst: count,
            burst: async () => {
              for (let i = 0; i < count; i++) {
                pool.set(src, next * size);
                next = next + 1 === slots ? 0 : next + 1;
              }
            },
            close: async () => undefined,
          };
        },
      },
      close: async () => undefined,
    };
  },
};
