/**
 * `ringwire-thread-large`: one-way streams of large messages (64 KiB and up) through a 64 MiB SPSC
 * ring between the main thread and a worker that reads every cache line of each payload. Two ways
 * to send: `stream` is send(), one copy from a prebuilt buffer into the ring; `stream-claim` is
 * claim(), building the payload in place (here: filling it), and commit(): no copy at all beyond
 * building it once. Compare with `memcpy` from the same run. Sizes below 64 KiB are left to
 * `ringwire-thread`.
 */
import { createThreadRing, openConsumer, openProducer } from '../../lib/ring/thread-ring.js';
import { maxMessageSize } from '../../lib/ring/layout.js';
import type { RingProducer } from '../../lib/ring/ring-types.js';
import type { Peer, StreamHandle, Transport } from '../transport.js';
import { MSG_SINK_TOUCH, PRODUCER_SPIN, ringPeer } from './ring-wire.js';
import { startWorker } from './start-worker.js';

const RING_BYTES = 64 << 20;
const MIN_SIZE = 64 << 10;
/** Polls before the sink parks: it sleeps between measurements, never inside one. */
const SINK_SPIN = 2_000_000;
/** The double whose bytes are all 0x5a, as send()'s prebuilt payload. */
const WORD = new Float64Array(new Uint8Array(8).fill(0x5a).buffer)[0]!;

function claimSpin(p: RingProducer, size: number, type: number): number {
  let off = p.claim(size, type);
  while (off < 0) {
    p.waitForSpaceSync(size);
    off = p.claim(size, type);
  }
  return off;
}

export const ringwireThreadLarge: Transport = {
  name: 'ringwire-thread-large',
  distance: 'thread',
  description: 'large messages one way through a 64 MiB SPSC ring to a worker that reads every cache line: send() (one copy) and claim/commit (built in place)',
  maxSize: maxMessageSize(RING_BYTES) >> 1,
  busyPoll: true,
  async open(ctx) {
    const ping = createThreadRing(RING_BYTES);
    const pong = createThreadRing(1 << 16);
    const worker = await startWorker(new URL('./ringwire-thread-peer.js', import.meta.url), { ping, pong, peerCore: ctx.peerCore, spin: SINK_SPIN }, 'ring');
    const out = openProducer(ping, { spin: PRODUCER_SPIN });
    const base = ringPeer(out, openConsumer(pong), async () => {
      await worker.terminate();
    });
    const mark = base.streams!['stream']!;
    const large = (claim: boolean) => async (size: number, count: number): Promise<StreamHandle | null> => {
      if (size < MIN_SIZE || size % 8 !== 0) return null;
      const msg = new Uint8Array(size).fill(0x5a);
      // The end-of-burst mark and its ack ride on ringPeer's stream (a zero-count burst is just the mark).
      const ack = await mark(0, 0);
      const burst = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          const off = claimSpin(out, size, MSG_SINK_TOUCH);
          // claim: the payload is built where it will be read, in 8-byte stores (payloads are 8-aligned;
          // V8 fills a SharedArrayBuffer's Uint8Array one relaxed byte at a time, 1.6 GB/s here, against
          // 11.5 GB/s for a Float64Array view); send(): copied in from a prebuilt buffer.
          if (claim) new Float64Array(out.data.buffer, out.data.byteOffset + off, size >> 3).fill(WORD);
          else out.data.set(msg, off);
          out.commit();
        }
        await ack!.burst();
      };
      // One lap of the ring before timing: its first-touch page faults belong to no message.
      await burst(Math.ceil(RING_BYTES / size));
      return { messagesPerBurst: count, burst: () => burst(count), close: async () => undefined };
    };
    const peer: Peer = { streams: { stream: large(false), 'stream-claim': large(true) }, close: base.close };
    return peer;
  },
};
