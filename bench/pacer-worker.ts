/**
 * The metronome thread behind bench/pacer.ts: writes the pacer's eventfd at a fixed rate, on an
 * absolute schedule (tick k at start + k * interval, so a late tick does not shift the rest).
 * A futex sleep overshoots by the kernel's timer slack (50 µs by default) plus a wake-up; the
 * thread learns that overshoot and asks for that much less, so ticks land near their time without
 * spinning (a spinning metronome would steal a core from the transports it paces).
 */
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { EventFd } from '../lib/native/eventfd.js';

/** Int32 word 0 of the control buffer: the run generation (0 = stopped); f64 at byte 8: the interval in ns. */
const PACER_GEN = 0;

const { bell: bellFd, ctl } = workerData as { bell: number; ctl: SharedArrayBuffer };
const words = new Int32Array(ctl, 0, 2);
const interval = new Float64Array(ctl, 8, 1);
// Owned by the main thread, which closes it after terminating us.
const bell = EventFd.fromFd(bellFd);
parentPort!.postMessage({ tid: Number(readlinkSync('/proc/thread-self').split('/').pop()) });

const now = (): number => Number(process.hrtime.bigint());
for (;;) {
  const gen = Atomics.load(words, PACER_GEN);
  if (gen === 0) {
    Atomics.wait(words, PACER_GEN, 0);
    continue;
  }
  const step = interval[0]!;
  let next = now() + step;
  let overshoot = 0;
  while (Atomics.load(words, PACER_GEN) === gen) {
    const t = now();
    const ask = next - t - overshoot;
    if (ask > 0) {
      Atomics.wait(words, PACER_GEN, gen, ask / 1e6);
      const late = now() - (t + ask);
      overshoot += (late - overshoot) / 8;
    }
    if (Atomics.load(words, PACER_GEN) !== gen) break;
    bell.signal();
    next += step;
    // Never owe more than one tick: a stalled consumer must not get a burst of catch-up ticks.
    const t2 = now();
    if (next < t2 - step) next = t2;
  }
}
