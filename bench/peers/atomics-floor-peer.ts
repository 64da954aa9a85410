/** The far side of `atomics-floor`: echoes each ping word into the pong word, parking when idle. */
import { isMainThread, workerData } from 'node:worker_threads';
import { pinCurrentThread } from '../pin.js';

/** Int32 word indices, each on its own cache line. */
export const FLOOR_PING = 0;
export const FLOOR_PONG = 16;
export const FLOOR_PARKED = 32;
export const FLOOR_WORDS = 48;
/** Polls before parking: never parks inside a measurement, sleeps between them. */
const SPIN = 2_000_000;

function serve(words: Int32Array): never {
  let last = 0;
  for (;;) {
    let seq = Atomics.load(words, FLOOR_PING);
    for (let i = 0; seq === last && i < SPIN; i++) seq = Atomics.load(words, FLOOR_PING);
    if (seq === last) {
      Atomics.store(words, FLOOR_PARKED, 1);
      Atomics.wait(words, FLOOR_PING, last, 1000);
      Atomics.store(words, FLOOR_PARKED, 0);
      continue;
    }
    Atomics.store(words, FLOOR_PONG, seq);
    last = seq;
  }
}

if (!isMainThread && workerData?.words instanceof Int32Array) {
  const { words, peerCore } = workerData as { words: Int32Array; peerCore?: number };
  if (peerCore !== undefined) pinCurrentThread(peerCore);
  serve(words);
}
