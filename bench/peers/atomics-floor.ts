/**
 * `atomics-floor`: what this machine's two cores allow JavaScript in this run, with no ring at all.
 * Ping-pong is one int32 each way (the design's "SharedArrayBuffer, busy-poll between threads");
 * the streams move fixed 64-byte slots through a SharedArrayBuffer, published by one counter per
 * message (`stream`) or per 64 (`stream-batch64`), the consumer touching each slot once. Busy-poll
 * figures on this VM move between runs with the host's placement of the two vCPUs, so ringwire's
 * rows are meant to be read against these from the same run.
 */
import type { Peer, StreamHandle, Transport } from '../transport.js';
import {
  FLOOR_BELL, FLOOR_BYTES, FLOOR_CONSUMED, FLOOR_DATA_BYTES, FLOOR_PARKED, FLOOR_PING, FLOOR_PONG,
  FLOOR_PRODUCED, FLOOR_SLOT, FLOOR_SLOTS,
} from './atomics-floor-peer.js';
import { startWorker } from './start-worker.js';

function floorPeer(words: Int32Array, close: () => Promise<void>): Peer {
  const data = new Uint8Array(words.buffer);
  const ring = (): void => {
    if (Atomics.load(words, FLOOR_PARKED) === 0) return;
    Atomics.add(words, FLOOR_BELL, 1);
    Atomics.notify(words, FLOOR_BELL);
  };
  let seq = 0;
  let produced = 0;
  let consumed = 0;
  const stream = (every: number) => async (size: number, count: number): Promise<StreamHandle> => {
    const msg = new Uint8Array(size).fill(0x5a);
    const rounds = Math.max(1, Math.ceil(count / every));
    return {
      messagesPerBurst: rounds * every,
      burst: async () => {
        for (let r = 0; r < rounds; r++) {
          for (let i = 0; i < every; i++) {
            // The consumer's count is re-read only when the cached one says the slots are full.
            while (((produced - consumed) | 0) >= FLOOR_SLOTS) consumed = Atomics.load(words, FLOOR_CONSUMED);
            data.set(msg, FLOOR_DATA_BYTES + (produced & (FLOOR_SLOTS - 1)) * FLOOR_SLOT);
            produced = (produced + 1) | 0;
          }
          Atomics.store(words, FLOOR_PRODUCED, produced);
          ring();
        }
        while (consumed !== produced) consumed = Atomics.load(words, FLOOR_CONSUMED);
      },
      close: async () => undefined,
    };
  };
  return {
    paced: true,
    pingpong: async (_size, run) => {
      for (;;) {
        const w = run.wait();
        if (w) await w;
        seq = (seq + 1) | 0;
        const t0 = process.hrtime.bigint();
        Atomics.store(words, FLOOR_PING, seq);
        ring();
        while (Atomics.load(words, FLOOR_PONG) !== seq);
        if (!run.record(t0, process.hrtime.bigint())) return;
      }
    },
    streams: { stream: stream(1), 'stream-batch64': stream(64) },
    close,
  };
}

export const atomicsFloor: Transport = {
  name: 'atomics-floor',
  distance: 'thread',
  description: 'the floor: Atomics between the main thread and a busy-polling worker, no ring (one int32 each way; fixed 64 B slots for streams)',
  maxSize: FLOOR_SLOT,
  busyPoll: true,
  async open(ctx) {
    const words = new Int32Array(new SharedArrayBuffer(FLOOR_BYTES));
    const worker = await startWorker(new URL('./atomics-floor-peer.js', import.meta.url), { words, peerCore: ctx.peerCore }, 'floor');
    return floorPeer(words, async () => {
      await worker.terminate();
    });
  },
};
