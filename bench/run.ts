/**
 * Runs the chosen transports through every pattern and size. Repeats are interleaved (all
 * transports, then all again) so slow drift of the machine hits every transport alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Options } from './cli.js';
import { burstCount, measureBursts, PingPongRecorder } from './measure.js';
import { formatSize } from './table.js';
import type { Measurement } from './results.js';
import type { Peer, Transport } from './transport.js';

export interface Failure {
  transport: string;
  message: string;
}

type Log = (line: string) => void;

/** Fails a measurement that outlives its budget by far, so a hung peer cannot hang the whole run. */
function watchdog<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** Slack on top of a measurement's own budget: peer start-up, a slow first message, Benchmark.js calibration. */
const SLACK_MS = 30_000;

async function measurePeer(t: Transport, peer: Peer, opts: Options, log: Log, out: Measurement[]): Promise<void> {
  const sizes = opts.sizes.filter((s) => t.maxSize === undefined || s <= t.maxSize);
  if (peer.pingpong) {
    for (const size of sizes) {
      const rec = new PingPongRecorder(opts.pingpong);
      await watchdog(`${t.name} pingpong ${formatSize(size)}`, opts.pingpong.maxMs + SLACK_MS, peer.pingpong(size, rec));
      const latency = rec.summary();
      out.push({ transport: t.name, pattern: 'pingpong', size, latency });
      log(`  ${t.name} pingpong ${formatSize(size)}: p50 ${latency.p50Us.toFixed(2)} µs (${latency.samples} samples)`);
    }
  }
  for (const [pattern, prepare] of Object.entries(peer.streams ?? {})) {
    for (const size of sizes) {
      const what = `${t.name} ${pattern} ${formatSize(size)}`;
      const handle = await watchdog(what, SLACK_MS, prepare(size, burstCount(size)));
      if (!handle) continue;
      try {
        const r = await watchdog(what, opts.bursts.maxTime * 10_000 + SLACK_MS, measureBursts(what, handle.burst, opts.bursts));
        const msgsPerSec = r.burstsPerSec * handle.messagesPerBurst;
        out.push({ transport: t.name, pattern, size, rate: { msgsPerSec, rmePct: r.rmePct } });
        log(`  ${t.name} ${pattern} ${formatSize(size)}: ${(msgsPerSec / 1e6).toFixed(3)} M msgs/s ±${r.rmePct.toFixed(1)}%`);
      } finally {
        await handle.close();
      }
    }
  }
}

/** Measures every transport `repeat` times; a transport that fails is reported and skipped. */
export async function runAll(
  transports: readonly Transport[],
  opts: Options,
  peerCore: number | undefined,
  log: Log,
): Promise<{ measurements: Measurement[]; failures: Failure[] }> {
  const measurements: Measurement[] = [];
  const failures: Failure[] = [];
  const broken = new Set<string>();
  for (let run = 1; run <= opts.repeat; run++) {
    if (opts.repeat > 1) log(`run ${run} of ${opts.repeat}`);
    for (const t of transports) {
      if (broken.has(t.name)) continue;
      const tempDir = mkdtempSync(join(tmpdir(), `ringwire-bench-${t.name}-`));
      let peer: Peer | undefined;
      const started = Date.now();
      try {
        peer = await watchdog(`${t.name} open`, SLACK_MS, t.open({ peerCore, tempDir }));
        await measurePeer(t, peer, opts, log, measurements);
      } catch (err) {
        broken.add(t.name);
        failures.push({ transport: t.name, message: err instanceof Error ? err.message : String(err) });
        log(`  ${t.name} FAILED: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await watchdog(`${t.name} close`, SLACK_MS, peer?.close() ?? Promise.resolve()).catch((err: unknown) => {
          failures.push({ transport: t.name, message: `close: ${err instanceof Error ? err.message : String(err)}` });
        });
        rmSync(tempDir, { recursive: true, force: true });
      }
      log(`  ${t.name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  }
  return { measurements, failures };
}
