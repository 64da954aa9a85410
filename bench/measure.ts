/**
 * The harness's clocks: a ping-pong recorder that stores round trips into a preallocated array
 * (the histogram is filled after the loop, because recording into it costs about 130 ns a value),
 * and a Benchmark.js driver for one-way bursts.
 */
import { createRequire } from 'node:module';
import type BenchmarkClass from 'benchmark';
import type { Histogram } from 'hdr-histogram-js';
import type { CpuDelta, CpuProbe } from './cpu.js';
import type { Pacer } from './pacer.js';
import type { PingPongRun, StreamBurst } from './transport.js';

const require = createRequire(import.meta.url);
// Both are CommonJS; hdr-histogram-js stays in JS mode: its WASM mode only speeds up recording,
// which happens after the timed loop here.
const Benchmark = require('benchmark') as typeof BenchmarkClass;
const { build } = require('hdr-histogram-js') as typeof import('hdr-histogram-js');

export interface PingPongBudget {
  readonly warmup: number;
  readonly samples: number;
  /** Upper bound for warm-up plus sampling, so 1 MiB round trips cannot run for minutes. */
  readonly maxMs: number;
}

export interface LatencySummary {
  readonly samples: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly maxUs: number;
}

/**
 * Implements PingPongRun; every call after warm-up is one array store and two comparisons. With a
 * CpuProbe, the CPU window opens when warm-up ends (between two round trips, so no sample pays
 * for the /proc reads) and closes in finish(); with a Pacer, wait() hands out its ticks.
 */
export class PingPongRecorder implements PingPongRun {
  readonly #rtts: Float64Array;
  readonly #maxNs: bigint;
  readonly #probe: CpuProbe | undefined;
  readonly #pacer: Pacer | undefined;
  #warmupLeft: number;
  #count = 0;
  #deadline = 0n;
  #warmupDeadline = 0n;
  #sampling = false;
  #cpu: CpuDelta | undefined;

  constructor(budget: PingPongBudget, opts: { probe?: CpuProbe; pacer?: Pacer } = {}) {
    this.#rtts = new Float64Array(budget.samples);
    this.#warmupLeft = budget.warmup;
    this.#maxNs = BigInt(Math.round(budget.maxMs * 1e6));
    this.#probe = opts.probe;
    this.#pacer = opts.pacer;
  }

  record(startNs: bigint, endNs: bigint): boolean {
    if (this.#deadline === 0n) {
      this.#deadline = startNs + this.#maxNs;
      this.#warmupDeadline = startNs + this.#maxNs / 10n;
    }
    if (this.#warmupLeft > 0) {
      // A warm-up that eats a tenth of the budget has warmed enough; keep the time for samples.
      this.#warmupLeft = endNs > this.#warmupDeadline ? 0 : this.#warmupLeft - 1;
      if (this.#warmupLeft === 0) this.#startSampling();
      return true;
    }
    if (!this.#sampling) this.#startSampling();
    this.#rtts[this.#count++] = Number(endNs - startNs);
    return this.#count < this.#rtts.length && endNs < this.#deadline;
  }

  #startSampling(): void {
    this.#sampling = true;
    this.#probe?.start();
  }

  wait(): Promise<void> | null {
    return this.#pacer ? this.#pacer.wait() : null;
  }

  /** Closes the CPU window (call once the transport's pingpong() returned). */
  finish(): CpuDelta | undefined {
    if (this.#probe?.started) this.#cpu = this.#probe.stop();
    return this.#cpu;
  }

  get count(): number {
    return this.#count;
  }

  /** CPU over the sampled round trips, once finish() ran. */
  get cpu(): CpuDelta | undefined {
    return this.#cpu;
  }

  summary(): LatencySummary {
    if (this.#count === 0) throw new Error('bench: the transport recorded no round trip');
    const h: Histogram = build({
      useWebAssembly: false,
      lowestDiscernibleValue: 1,
      highestTrackableValue: 3_600_000_000_000,
      numberOfSignificantValueDigits: 3,
    });
    let max = 0;
    for (let i = 0; i < this.#count; i++) {
      const ns = this.#rtts[i]!;
      if (ns > max) max = ns;
      h.recordValue(Math.max(1, Math.round(ns)));
    }
    // The histogram answers with the top of a bucket (3 significant digits), which can exceed the
    // largest sample; cap it there so no percentile reads above the max.
    const at = (p: number): number => Math.min(h.getValueAtPercentile(p), max) / 1000;
    return {
      samples: this.#count,
      p50Us: at(50),
      p90Us: at(90),
      p99Us: at(99),
      p999Us: at(99.9),
      maxUs: max / 1000,
    };
  }
}

export interface BurstBudget {
  /** Benchmark.js maxTime in seconds (it overshoots by calibration time). */
  readonly maxTime: number;
  readonly minSamples: number;
}

export interface BurstRate {
  readonly burstsPerSec: number;
  /** Benchmark.js relative margin of error, in percent. */
  readonly rmePct: number;
  readonly benchmarkSamples: number;
}

/** Times repeated `burst()` calls with Benchmark.js in deferred mode. */
export function measureBursts(name: string, burst: StreamBurst, budget: BurstBudget): Promise<BurstRate> {
  return new Promise((resolve, reject) => {
    let failure: unknown;
    const bench = new Benchmark(name, {
      defer: true,
      maxTime: budget.maxTime,
      minSamples: budget.minSamples,
      fn(deferred: BenchmarkClass.Deferred) {
        burst().then(
          () => deferred.resolve(),
          (err: unknown) => {
            failure ??= err;
            bench.abort();
          },
        );
      },
    });
    bench.on('complete abort', () => {
      if (failure !== undefined || bench.error) reject(failure ?? bench.error);
      else resolve({ burstsPerSec: bench.hz, rmePct: bench.stats.rme, benchmarkSamples: bench.stats.sample.length });
    });
    bench.run({ async: true });
  });
}

/** Messages per burst: about 4 MiB of payload, at least 4 and at most 4096 messages. */
export function burstCount(size: number): number {
  return Math.min(4096, Math.max(4, Math.floor((4 << 20) / size)));
}

/** Round-trip cost of the clock itself: two hrtime.bigint() reads and a subtraction, median of 1e5. */
export function timerOverheadNs(): number {
  const n = 100_000;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    d[i] = Number(process.hrtime.bigint() - a);
  }
  d.sort();
  return d[n >> 1]!;
}
