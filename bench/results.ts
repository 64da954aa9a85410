import type { LatencySummary } from './measure.js';
/**
 * From raw measurements to the rows of the benchmark output contract (ARCHITECTURE.md, "Benchmark
 * output contract"), plus ratios against the baseline. Pure functions, so the test can feed them
 * made-up numbers.
 */
import { BASELINE } from './transport.js';

export type PatternKind = 'pingpong' | 'stream';

/** One transport, pattern and size, measured once. */
export interface Measurement {
  readonly transport: string;
  readonly pattern: string;
  readonly size: number;
  readonly latency?: LatencySummary;
  readonly rate?: { readonly msgsPerSec: number; readonly rmePct: number };
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
  return pattern === 'pingpong' ? 'pingpong' : 'stream';
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
    const key = `${m.transport}\0${m.pattern}\0${m.size}`;
    const g = groups.get(key);
    if (g) g.push(m);
    else groups.set(key, [m]);
  }
  const rows: ResultRow[] = [];
  for (const g of groups.values()) {
    const { transport, pattern, size } = g[0]!;
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
      });
    }
  }
  return rows;
}

/**
 * The row's main figure divided by the baseline's at the same pattern and size: below 1 is faster
 * for round trips (a fraction of uds's time), above 1 is faster for streams (a multiple of its rate).
 */
export function ratioToBaseline(rows: readonly ResultRow[], row: ResultRow, field: 'rttP50Us' | 'rttP99Us' | 'msgsPerSec'): number | null {
  const base = rows.find((r) => r.transport === BASELINE && r.pattern === row.pattern && r.size === row.size);
  const a = row[field];
  const b = base?.[field];
  if (a === null || b === null || b === undefined || b === 0) return null;
  return a / b;
}
