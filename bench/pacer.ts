/**
 * Paced round trips: one request per tick at a fixed rate (1 k, 10 k, 100 k per second), one in
 * flight at a time. Node's timers have millisecond resolution, so ticks come from a metronome
 * thread (pacer-worker.ts) through an eventfd the event loop polls: between requests the harness
 * sleeps in the event loop as a service would, and a transport that polls there still gets its
 * turns. A request whose tick came while the previous one was in flight goes out at once; ticks
 * missed beyond that are dropped, so the achieved rate is reported next to the asked one.
 */
import { Worker } from 'node:worker_threads';
import { EventFd } from '../lib/native/eventfd.js';

/** Word 0 of the control buffer: the run generation (0 = stopped); f64 at byte 8: the interval in ns. */
const PACER_GEN = 0;

export class Pacer {
  readonly #bell: EventFd;
  readonly #worker: Worker;
  readonly #words: Int32Array;
  readonly #interval: Float64Array;
  /** The metronome's thread id, for CpuProbe.exclude(). */
  readonly tid: number;
  #due = false;
  #waiter: (() => void) | undefined;
  #gen = 0;

  private constructor(bell: EventFd, worker: Worker, ctl: SharedArrayBuffer, tid: number) {
    this.#bell = bell;
    this.#worker = worker;
    this.#words = new Int32Array(ctl, 0, 2);
    this.#interval = new Float64Array(ctl, 8, 1);
    this.tid = tid;
    bell.onReadable(() => {
      if (bell.drain() === 0) return;
      const w = this.#waiter;
      this.#waiter = undefined;
      if (w) w();
      else this.#due = true;
    });
  }

  static async create(): Promise<Pacer> {
    const bell = EventFd.create();
    const ctl = new SharedArrayBuffer(16);
    const worker = new Worker(new URL('./pacer-worker.js', import.meta.url), { workerData: { bell: bell.fd, ctl } });
    try {
      const { tid } = await new Promise<{ tid: number }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`bench: pacer thread exited with ${code}`)));
      });
      worker.unref();
      return new Pacer(bell, worker, ctl, tid);
    } catch (err) {
      await worker.terminate();
      bell.close();
      throw err;
    }
  }

  /** Starts ticking `perSec` times a second (a new generation: stale ticks are dropped). */
  start(perSec: number): void {
    this.#interval[0] = 1e9 / perSec;
    this.#due = false;
    this.#gen = (this.#gen % 0x7ffffffe) + 1;
    Atomics.store(this.#words, PACER_GEN, this.#gen);
    Atomics.notify(this.#words, PACER_GEN);
  }

  stop(): void {
    Atomics.store(this.#words, PACER_GEN, 0);
    Atomics.notify(this.#words, PACER_GEN);
    this.#due = false;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** Null when a tick is already due (send now); else resolves at the next tick. */
  wait(): Promise<void> | null {
    if (this.#due) {
      this.#due = false;
      return null;
    }
    return new Promise((resolve) => { this.#waiter = resolve; });
  }

  async close(): Promise<void> {
    this.stop();
    await this.#worker.terminate();
    this.#bell.close();
  }
}
