/**
 * `eventfd-floor`: the floor of a round trip in which both sides sleep, with no ring and no payload.
 * The main thread and a worker, each pinned to its core, take turns: write the other's eventfd,
 * then block in poll(2) on their own. Every round trip is two wake-ups of a sleeping thread on the
 * other core, which is what uds and ringwire-channel-doorbell pay too; on this VM that wake-up,
 * not the transport, is most of their round trip. Ping-pong only.
 */
import type { Worker } from 'node:worker_threads';
import { EventFd } from '../../lib/native/eventfd.js';
import type { Transport } from '../transport.js';
import { startWorker } from './start-worker.js';

/** A sleeper that hears nothing for this long re-checks; nothing here depends on it. */
const PARK_MS = 1000;

export const eventfdFloor: Transport = {
  name: 'eventfd-floor',
  distance: 'thread',
  description: 'the sleeping floor: two threads on two cores waking each other through eventfds, no ring, no payload',
  maxSize: 64,
  async open(ctx) {
    const toPeer = EventFd.create();
    const fromPeer = EventFd.create();
    let worker: Worker;
    try {
      worker = await startWorker(new URL('./eventfd-floor-peer.js', import.meta.url), { inbound: toPeer.fd, outbound: fromPeer.fd, peerCore: ctx.peerCore }, 'eventfd');
    } catch (err) {
      toPeer.close();
      fromPeer.close();
      throw err;
    }
    return {
      paced: true,
      pingpong: async (_size, run) => {
        for (;;) {
          const w = run.wait();
          if (w) await w;
          const t0 = process.hrtime.bigint();
          toPeer.signal();
          while (!fromPeer.waitSync(PARK_MS));
          fromPeer.drain();
          if (!run.record(t0, process.hrtime.bigint())) return;
        }
      },
      close: async () => {
        await worker.terminate();
        toPeer.close();
        fromPeer.close();
      },
    };
  },
};
