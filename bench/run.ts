/**
 * Runs the chosen transports through every pattern and size. Repeats are interleaved (all
 * transports, then all again) so slow drift of the machine hits every transport alike.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Options } from './cli.js';
import { cpuAccountingAvailable, CpuProbe, type CpuDelta } from './cpu.js';
import { burstCount, measureBursts, PingPongRecorder, type PingPongBudget } from './measure.js';
import { Pacer } from './pacer.js';
import { formatSize } from './table.js';
import { PACED, type Measurement } from './results.js';
import { PACED_SIZE } from './cli.js';
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

/** A busy-polling row whose threads waited for a core this much of the window did not measure the transport. */
const MAX_BUSY_POLL_RUN_DELAY = 0.05;
/** Attempts at a busy-polling ping-pong before its row is reported invalid. */
const BUSY_POLL_ATTEMPTS = 3;

/** CPU figures of a window: per message, the run-queue share, and the verdict for busy-polling rows. */
function cpuFields(t: Transport, cpu: CpuDelta | undefined, messages: number): Pick<Measurement, 'cpuUsPerMsg' | 'runDelayPct' | 'invalid'> {
  if (!cpu || messages <= 0 || cpu.wallUs <= 0) return {};
  const delay = cpu.runDelayUs / cpu.wallUs;
  return {
    cpuUsPerMsg: cpu.cpuUs / messages,
    runDelayPct: Math.round(delay * 1000) / 10,
    ...(t.busyPoll && delay > MAX_BUSY_POLL_RUN_DELAY
      ? { invalid: `its polling threads waited for a core ${(delay * 100).toFixed(0)}% of the window (other work on the machine)` }
      : {}),
  };
}

interface Tools {
  /** Null where /proc has no per-thread schedstat: rows then carry cpuUsPerMsg null. */
  probe(): CpuProbe | undefined;
  pacer: Pacer | undefined;
}

async function pingpongOnce(t: Transport, peer: Peer, size: number, budget: PingPongBudget, tools: Tools, rate?: number): Promise<Measurement> {
  const probe = tools.probe();
  const pacer = rate === undefined ? undefined : tools.pacer;
  const rec = new PingPongRecorder(budget, { ...(probe ? { probe } : {}), ...(pacer ? { pacer } : {}) });
  if (rate !== undefined) pacer!.start(rate);
  try {
    await watchdog(`${t.name} ${rate === undefined ? 'pingpong' : `paced ${rate}/s`} ${formatSize(size)}`, budget.maxMs + SLACK_MS, peer.pingpong!(size, rec));
  } finally {
    if (rate !== undefined) pacer!.stop();
  }
  const cpu = rec.finish();
  const latency = rec.summary();
  const base = { transport: t.name, size, latency, ...cpuFields(t, cpu, latency.samples) };
  if (rate === undefined) return { ...base, pattern: 'pingpong' };
  return { ...base, pattern: PACED, ratePerSec: rate, ...(cpu ? { achievedPerSec: latency.samples / (cpu.wallUs / 1e6) } : {}) };
}

function logLine(m: Measurement): string {
  const cpu = m.cpuUsPerMsg === undefined ? '' : `, cpu ${m.cpuUsPerMsg.toFixed(2)} µs/msg`;
  const bad = m.invalid ? ` INVALID: ${m.invalid}` : '';
  const what = m.pattern === PACED ? `paced ${m.ratePerSec}/s` : m.pattern;
  if (m.latency) return `  ${m.transport} ${what} ${formatSize(m.size)}: p50 ${m.latency.p50Us.toFixed(2)} µs (${m.latency.samples} samples${cpu})${bad}`;
  return `  ${m.transport} ${what} ${formatSize(m.size)}: ${(m.rate!.msgsPerSec / 1e6).toFixed(3)} M msgs/s ±${m.rate!.rmePct.toFixed(1)}%${cpu}${bad}`;
}

async function measurePeer(t: Transport, peer: Peer, opts: Options, log: Log, out: Measurement[], tools: Tools): Promise<void> {
  const sizes = opts.sizes.filter((s) => t.maxSize === undefined || s <= t.maxSize);
  if (peer.pingpong) {
    for (const size of sizes) {
      // A busy-polling row measured while its poller waited for a core is measured again.
      for (let attempt = 1; ; attempt++) {
        const m = await pingpongOnce(t, peer, size, opts.pingpong, tools);
        if (!m.invalid || attempt >= (t.busyPoll ? BUSY_POLL_ATTEMPTS : 1)) {
          out.push(m);
          log(logLine(m));
          break;
        }
        log(`  ${t.name} pingpong ${formatSize(size)}: measuring again, ${m.invalid}`);
      }
    }
    const pacedSize = sizes.includes(PACED_SIZE) ? PACED_SIZE : Math.min(...sizes);
    if (peer.paced && tools.pacer && Number.isFinite(pacedSize)) {
      for (const rate of opts.paced.rates) {
        const samples = Math.max(100, Math.round(rate * opts.paced.seconds));
        // Warm up at the same rate, so adaptive waits have learned the traffic before sampling.
        const budget = { warmup: Math.max(50, Math.round(samples / 10)), samples, maxMs: opts.paced.seconds * 1000 * 1.5 + 200 };
        const m = await pingpongOnce(t, peer, pacedSize, budget, tools, rate);
        out.push(m);
        log(logLine(m));
      }
    }
  }
  for (const [pattern, prepare] of Object.entries(peer.streams ?? {})) {
    for (const size of sizes) {
      const what = `${t.name} ${pattern} ${formatSize(size)}`;
      const handle = await watchdog(what, SLACK_MS, prepare(size, burstCount(size)));
      if (!handle) continue;
      try {
        let bursts = 0;
        const counted = (): Promise<void> => {
          bursts++;
          return handle.burst();
        };
        const probe = tools.probe();
        probe?.start();
        const r = await watchdog(what, opts.bursts.maxTime * 10_000 + SLACK_MS, measureBursts(what, counted, opts.bursts));
        const cpu = probe?.stop();
        const msgsPerSec = r.burstsPerSec * handle.messagesPerBurst;
        const m: Measurement = { transport: t.name, pattern, size, rate: { msgsPerSec, rmePct: r.rmePct }, ...cpuFields(t, cpu, bursts * handle.messagesPerBurst) };
        out.push(m);
        log(logLine(m));
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
  let pacer: Pacer | undefined;
  if (opts.paced.rates.length) {
    try {
      pacer = await Pacer.create();
    } catch (err) {
      log(`no paced rows: the pacing thread did not start (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  const accounting = cpuAccountingAvailable();
  const tools: Tools = { pacer, probe: () => (accounting ? new CpuProbe(pacer ? [pacer.tid] : []) : undefined) };
  try {
    for (let run = 1; run <= opts.repeat; run++) {
      if (opts.repeat > 1) log(`run ${run} of ${opts.repeat}`);
      for (const t of transports) {
        if (broken.has(t.name)) continue;
        const tempDir = mkdtempSync(join(tmpdir(), `ringwire-bench-${t.name}-`));
        let peer: Peer | undefined;
        const started = Date.now();
        try {
          peer = await watchdog(`${t.name} open`, SLACK_MS, t.open({ peerCore, tempDir }));
          await measurePeer(t, peer, opts, log, measurements, tools);
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
  } finally {
    await pacer?.close();
  }
  return { measurements, failures };
}
