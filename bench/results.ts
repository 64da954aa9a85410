import type { LatencySummary } from './measure.js';
/**
 * From raw measurements to the rows of the benchmark output contract (ARCHITECTURE.md, "Benchmark
 * output contract"), plus ratios against the baseline. Pure functions, so the test can feed them
 * made-up numbers.
 */
import { BASELINE } from './transport.js';

export type PatternKind = 'pingpong' | 'stream';

/** Round trips at a fixed rate (bench/pacer.ts); rows carry ratePerSec. */
export const PACED = 'paced';

/** One transport, pattern and size, measured once. */
export interface Measurement {
  readonly transport: string;
  readonly pattern: string;
  readonly size: number;
  readonly latency?: LatencySummary;
  readonly rate?: { readonly msgsPerSec: number; readonly rmePct: number };
  /** CPU time (user + system, every thread of both sides) per message or round trip, in µs. */
  readonly cpuUsPerMsg?: number;
  /** Run-queue waits of those threads over the window, as a percentage of its wall-clock time. */
  readonly runDelayPct?: number;
  /** Paced rows: the rate asked for, and the round trips per second achieved. */
  readonly ratePerSec?: number;
  readonly achievedPerSec?: number;
  /** Why the figures do not measure the transport (a busy-polling side waited for a core). */
  readonly invalid?: string;
}

export interface Spread {
  readonly min: number;
  readonly median: number;
  readonly max: number;
  readonly n: number;
}

/** A contract row; the fields after bytesPerSec are the allowed extras. */
export interface ResultRow {
  transport: string;
  pattern: string;
  size: number;
  rttP50Us: number | null;
  rttP99Us: number | null;
  rttP999Us: number | null;
  msgsPerSec: number | null;
  bytesPerSec: number | null;
  rttP90Us?: number;
  rttMaxUs?: number;
  /** Round trips recorded per run (median over runs). */
  samples?: number;
  /** Spread over repeated runs of the row's main figure: rttP50Us for ping-pong, msgsPerSec for streams. */
  runs: Spread;
  /** Benchmark.js relative margin of error (percent) of the run that gave the median rate. */
  rmePct?: number;
  /**
   * CPU time per message (streams) or per round trip (ping-pong, paced), in µs: user + system of
   * every thread of both sides, harness included. Null where /proc could not be read.
   */
  cpuUsPerMsg: number | null;
  /** Run-queue waits of the measurement's threads, percent of the window (median over runs). */
  runDelayPct?: number;
  /** Pattern `paced`: requests per second asked for, and achieved (one in flight at a time). */
  ratePerSec?: number;
  achievedPerSec?: number;
  /** Present when no run of the row measured the transport itself; says why. */
  invalid?: string;
}

export interface Env {
  node: string;
  cpu: string;
  cores: number;
  kernel: string;
  date: string;
  [extra: string]: unknown;
}

export interface Report {
  env: Env;
  results: ResultRow[];
}

export function patternKind(pattern: string): PatternKind {
  return pattern === 'pingpong' || pattern === PACED ? 'pingpong' : 'stream';
}

/** Same pattern, size and (paced) rate: rows that compare with each other. */
export function sameCase(a: Pick<ResultRow, 'pattern' | 'size' | 'ratePerSec'>, b: Pick<ResultRow, 'pattern' | 'size' | 'ratePerSec'>): boolean {
  return a.pattern === b.pattern && a.size === b.size && a.ratePerSec === b.ratePerSec;
}

function optionalMedian<T>(items: readonly T[], pick: (t: T) => number | undefined): number | undefined {
  const v = items.flatMap((i) => { const x = pick(i); return x === undefined ? [] : [x]; });
  return v.length ? spread(v).median : undefined;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('bench: spread of no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]!, n: s.length };
}

function medianOf<T>(items: readonly T[], pick: (t: T) => number): number {
  return spread(items.map(pick)).median;
}

/** Folds repeated runs of the same transport, pattern and size into one row each, in first-seen order. */
export function aggregate(measurements: readonly Measurement[]): ResultRow[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of measurements) {
    const key = `${m.transport}\0${m.pattern}\0${m.size}\0${m.ratePerSec ?? ''}`;
    const g = groups.get(key);
    if (g) g.push(m);
    else groups.set(key, [m]);
  }
  const rows: ResultRow[] = [];
  for (const all of groups.values()) {
    // Runs that measured the transport win over runs that measured a busy machine.
    const valid = all.filter((m) => !m.invalid);
    const g = valid.length ? valid : all;
    const { transport, pattern, size } = g[0]!;
    const extra = {
      cpuUsPerMsg: optionalMedian(g, (m) => m.cpuUsPerMsg) ?? null,
      ...(g.some((m) => m.runDelayPct !== undefined) ? { runDelayPct: optionalMedian(g, (m) => m.runDelayPct)! } : {}),
      ...(g[0]!.ratePerSec !== undefined ? { ratePerSec: g[0]!.ratePerSec, achievedPerSec: optionalMedian(g, (m) => m.achievedPerSec)! } : {}),
      ...(valid.length ? {} : { invalid: g[0]!.invalid! }),
    };
    const lat = g.flatMap((m) => (m.latency ? [m.latency] : []));
    const rate = g.flatMap((m) => (m.rate ? [m.rate] : []));
    if (lat.length) {
      rows.push({
        transport, pattern, size,
        rttP50Us: medianOf(lat, (l) => l.p50Us),
        rttP99Us: medianOf(lat, (l) => l.p99Us),
        rttP999Us: medianOf(lat, (l) => l.p999Us),
        msgsPerSec: null,
        bytesPerSec: null,
        rttP90Us: medianOf(lat, (l) => l.p90Us),
        rttMaxUs: medianOf(lat, (l) => l.maxUs),
        samples: medianOf(lat, (l) => l.samples),
        runs: spread(lat.map((l) => l.p50Us)),
        ...extra,
      });
    } else if (rate.length) {
      const runs = spread(rate.map((r) => r.msgsPerSec));
      const sorted = [...rate].sort((a, b) => a.msgsPerSec - b.msgsPerSec);
      rows.push({
        transport, pattern, size,
        rttP50Us: null,
        rttP99Us: null,
        rttP999Us: null,
        msgsPerSec: runs.median,
        bytesPerSec: runs.median * size,
        runs,
        rmePct: sorted[(sorted.length - 1) >> 1]!.rmePct,
        ...extra,
      });
    }
  }
  return rows;
}

/**
 * The row's main figure divided by the baseline's at the same pattern and size: below 1 is faster
 * for round trips (a fraction of uds's time), above 1 is faster for streams (a multiple of its rate).
 */
export function ratioToBaseline(rows: readonly ResultRow[], row: ResultRow, field: 'rttP50Us' | 'rttP99Us' | 'msgsPerSec' | 'cpuUsPerMsg'): number | null {
  const base = rows.find((r) => r.transport === BASELINE && sameCase(r, row));
  const a = row[field];
  const b = base?.[field];
  if (a === null || b === null || b === undefined || b === 0) return null;
  return a / b;
}

/** The busy-poll floor, and the rows it bounds (same pattern and size, both sides polling). */
export const FLOOR = 'atomics-floor';

/**
 * A floor that reads far above the ring rows it bounds, in the same run, was not measuring the
 * floor (its polling thread waited for a core): mark it, so no ratio is read against it.
 */
export function checkFloor(rows: ResultRow[], busyPoll: ReadonlySet<string>): void {
  for (const f of rows) {
    if (f.transport !== FLOOR || f.invalid || f.pattern !== 'pingpong' || f.rttP50Us === null) continue;
    const best = Math.min(...rows.filter((r) => r !== f && busyPoll.has(r.transport) && sameCase(r, f) && !r.invalid && r.rttP50Us !== null).map((r) => r.rttP50Us!));
    if (Number.isFinite(best) && f.rttP50Us > 2 * best) {
      f.invalid = `p50 ${f.rttP50Us.toPrecision(3)} µs is above twice a busy-polling ring's ${best.toPrecision(3)} µs in the same run: its poller was descheduled`;
    }
  }
}
