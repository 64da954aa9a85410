/**
 * `atomics-floor`: the practical floor of a busy-poll round trip in JavaScript (the design's
 * "SharedArrayBuffer, busy-poll between threads"): one int32 each way, no payload, no ring. It runs
 * in every report so ringwire-thread can be read against what this machine's cores allow in that
 * run; busy-poll figures here move between runs with the host's placement of the two vCPUs.
 */
import { Worker } from 'node:worker_threads';
import type { Transport } from '../transport.js';
import { FLOOR_PARKED, FLOOR_PING, FLOOR_PONG, FLOOR_WORDS } from './atomics-floor-peer.js';

export const atomicsFloor: Transport = {
  name: 'atomics-floor',
  distance: 'thread',
  description: 'the floor: one Atomics.store each way between the main thread and a busy-polling worker, no payload',
  maxSize: 64,
  async open(ctx) {
    const words = new Int32Array(new SharedArrayBuffer(FLOOR_WORDS * 4));
    const worker = new Worker(new URL('./atomics-floor-peer.js', import.meta.url), {
      workerData: { words, peerCore: ctx.peerCore },
    });
    const failed = new Promise<never>((_, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`bench: floor worker exited with ${code}`)));
    });
    failed.catch(() => {});
    await Promise.race([new Promise((r) => worker.once('online', r)), failed]);
    let seq = 0;
    return {
      pingpong: async (_size, run) => {
        for (;;) {
          seq = (seq + 1) | 0;
          const t0 = process.hrtime.bigint();
          Atomics.store(words, FLOOR_PING, seq);
          if (Atomics.load(words, FLOOR_PARKED) !== 0) Atomics.notify(words, FLOOR_PING);
          while (Atomics.load(words, FLOOR_PONG) !== seq);
          if (!run.record(t0, process.hrtime.bigint())) return;
        }
      },
      close: async () => {
        await worker.terminate();
      },
    };
  },
};
