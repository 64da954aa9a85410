/**
 * The far side of `atomics-floor`: echoes each ping word into the pong word, and consumes the
 * fixed-size records of the floor stream, parking when both are idle.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { pinCurrentThread } from '../pin.js';

/** Int32 word indices, each on its own cache line; the record area starts at FLOOR_DATA. */
export const FLOOR_PING = 0;
export const FLOOR_PONG = 16;
export const FLOOR_PARKED = 32;
/** Records published by the main thread, and consumed by the worker (free-running counts). */
export const FLOOR_PRODUCED = 48;
export const FLOOR_CONSUMED = 64;
/** Bumped (and notified) by the main thread when it finds the worker parked. */
export const FLOOR_BELL = 72;
/** Bytes of one record slot; the stream carries at most this much (the transport's maxSize). */
export const FLOOR_SLOT = 64;
export const FLOOR_SLOTS = 1 << 14;
export const FLOOR_DATA_BYTES = 80 * 4;
export const FLOOR_BYTES = FLOOR_DATA_BYTES + FLOOR_SLOT * FLOOR_SLOTS;
/** Polls before parking: never parks inside a measurement, sleeps between them. */
const SPIN = 2_000_000;

function serve(words: Int32Array): never {
  let lastPing = 0;
  let consumed = 0;
  let sink = 0;
  for (;;) {
    let idle = 0;
    for (;;) {
      const ping = Atomics.load(words, FLOOR_PING);
      if (ping !== lastPing) {
        Atomics.store(words, FLOOR_PONG, ping);
        lastPing = ping;
        idle = 0;
      }
      const produced = Atomics.load(words, FLOOR_PRODUCED);
      if (produced !== consumed) {
        // Touch each record once, as a ring consumer reads its header, then hand the slots back.
        for (; consumed !== produced; consumed = (consumed + 1) | 0) {
          sink ^= words[(FLOOR_DATA_BYTES + (consumed & (FLOOR_SLOTS - 1)) * FLOOR_SLOT) >> 2]!;
        }
        Atomics.store(words, FLOOR_CONSUMED, consumed);
        idle = 0;
      }
      if (++idle > SPIN) break;
    }
    // Publish the flag, then look once more (the ring's own lost-wake-up pairing): a ping or records
    // published after this look find the flag set, and their bell changes the word we wait on.
    Atomics.store(words, FLOOR_PARKED, 1);
    const bell = Atomics.load(words, FLOOR_BELL);
    if (Atomics.load(words, FLOOR_PRODUCED) === consumed && Atomics.load(words, FLOOR_PING) === lastPing) {
      Atomics.wait(words, FLOOR_BELL, bell, 1000);
    }
    Atomics.store(words, FLOOR_PARKED, 0);
    if (sink === 0x7fffffff) words[FLOOR_PARKED + 1] = sink;
  }
}

if (!isMainThread && workerData?.words instanceof Int32Array) {
  const { words, peerCore } = workerData as { words: Int32Array; peerCore?: number };
  if (peerCore !== undefined) pinCurrentThread(peerCore);
  serve(words);
}
