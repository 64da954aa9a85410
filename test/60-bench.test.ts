import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, QUICK_SIZES, UsageError } from '../bench/cli.js';
import { PingPongRecorder } from '../bench/measure.js';
import { busyCores, setUpPinning } from '../bench/pin.js';
import { aggregate, ratioToBaseline, type Measurement } from '../bench/results.js';
import { runAll } from '../bench/run.js';
import type { Peer, Transport } from '../bench/transport.js';
import { Children, makeTempDir, withTimeout } from './helpers/index.js';

const mainJs = fileURLToPath(new URL('../bench/main.js', import.meta.url));
const CONTRACT_ROW = ['transport', 'pattern', 'size', 'rttP50Us', 'rttP99Us', 'rttP999Us', 'msgsPerSec', 'bytesPerSec'];

function lat(p50Us: number): Measurement['latency'] {
  return { samples: 10, p50Us, p90Us: p50Us * 2, p99Us: p50Us * 3, p999Us: p50Us * 4, maxUs: p50Us * 5 };
}

test('parseArgs: quick defaults, repeat, only, and typed usage errors', () => {
  const q = parseArgs(['--quick', '--repeat', '3', '--only', 'tcp,uds', '--json', 'x.json']);
  assert.equal(q.sizes, QUICK_SIZES);
  assert.is(q.repeat, 3);
  assert.equal(q.only, ['tcp', 'uds']);
  assert.is(q.json, 'x.json');
  assert.ok(q.pingpong.samples < parseArgs([]).pingpong.samples);
  assert.ok(parseArgs([]).pingpong.samples >= 100_000, 'full mode needs enough samples for p99.9');
  assert.throws(() => parseArgs(['--repeat', '0']), (e: unknown) => e instanceof UsageError);
  assert.throws(() => parseArgs(['--json']), (e: unknown) => e instanceof UsageError);
  assert.throws(() => parseArgs(['--sizes', '64,x']), (e: unknown) => e instanceof UsageError);
  assert.throws(() => parseArgs(['--fast']), (e: unknown) => e instanceof UsageError);
  assert.is(parseArgs([]).pin, 'auto');
  assert.is(parseArgs(['--pin']).pin, 'on');
  assert.is(parseArgs(['--no-pin']).pin, 'off');
});

test('pinning: off when asked, and auto declines on busy cores with the reason recorded', async () => {
  assert.equal(setUpPinning('off', 0), { used: false, reason: 'disabled with --no-pin' });
  const busy = setUpPinning('auto', 1.5);
  assert.is(busy.used, false);
  assert.match(busy.reason ?? '', cpus().length < 2 ? /fewer than 2 cores/ : /1.5 cores busy/);
  const measured = await busyCores(50);
  assert.ok(measured >= 0 && measured <= 64, `busyCores ${measured}`);
});

test('PingPongRecorder: warm-up is discarded, sampling stops at the count, percentiles and max hold', () => {
  const rec = new PingPongRecorder({ warmup: 5, samples: 1000, maxMs: 60_000 });
  for (let i = 0; i < 5; i++) assert.ok(rec.record(0n, 1_000_000_000n), 'warm-up keeps going');
  let more = true;
  for (let i = 1; more; i++) more = rec.record(1000n, 1000n + BigInt(i * 1000)); // i µs
  assert.is(rec.count, 1000);
  const s = rec.summary();
  assert.is(s.samples, 1000);
  assert.ok(Math.abs(s.p50Us - 500) <= 1, `p50 ${s.p50Us}`);
  assert.ok(Math.abs(s.p99Us - 990) <= 1, `p99 ${s.p99Us}`);
  assert.is(s.maxUs, 1000, 'the warm-up second is not in the max');
  assert.ok(s.p999Us <= s.maxUs);
});

test('PingPongRecorder: the time budget ends sampling early', () => {
  const rec = new PingPongRecorder({ warmup: 0, samples: 1000, maxMs: 1 });
  assert.ok(rec.record(0n, 10n));
  assert.not.ok(rec.record(10n, 2_000_000n), 'past 1 ms the run stops');
  assert.is(rec.summary().samples, 2);
});

test('aggregate: medians over runs, spread of the main figure, nulls where a pattern has no such figure', () => {
  const ms: Measurement[] = [
    { transport: 'uds', pattern: 'pingpong', size: 64, latency: lat(10) },
    { transport: 'uds', pattern: 'pingpong', size: 64, latency: lat(30) },
    { transport: 'uds', pattern: 'pingpong', size: 64, latency: lat(20) },
    { transport: 'fast', pattern: 'pingpong', size: 64, latency: lat(2) },
    { transport: 'uds', pattern: 'stream', size: 64, rate: { msgsPerSec: 100, rmePct: 1 } },
    { transport: 'fast', pattern: 'stream', size: 64, rate: { msgsPerSec: 900, rmePct: 9 } },
    { transport: 'fast', pattern: 'stream', size: 64, rate: { msgsPerSec: 500, rmePct: 5 } },
    { transport: 'fast', pattern: 'stream', size: 4096, rate: { msgsPerSec: 7, rmePct: 1 } },
  ];
  const rows = aggregate(ms);
  assert.is(rows.length, 5);
  const udsPing = rows[0]!;
  assert.is(udsPing.rttP50Us, 20);
  assert.is(udsPing.rttP999Us, 80);
  assert.equal(udsPing.runs, { min: 10, median: 20, max: 30, n: 3 });
  assert.is(udsPing.msgsPerSec, null);
  const fastStream = rows.find((r) => r.transport === 'fast' && r.pattern === 'stream' && r.size === 64)!;
  assert.is(fastStream.msgsPerSec, 700);
  assert.is(fastStream.bytesPerSec, 700 * 64);
  assert.is(fastStream.rttP50Us, null);
  assert.is(fastStream.rmePct, 5, 'the lower-median run for an even count');
  assert.is(ratioToBaseline(rows, rows.find((r) => r.transport === 'fast' && r.pattern === 'pingpong')!, 'rttP50Us'), 0.1);
  assert.is(ratioToBaseline(rows, fastStream, 'msgsPerSec'), 7);
  assert.is(ratioToBaseline(rows, rows.find((r) => r.size === 4096)!, 'msgsPerSec'), null, 'no baseline at that size');
});

/** An in-process peer that answers on the next turn of the event loop: exercises the plug-in contract only. */
function immediatePeer(): Peer {
  return {
    async pingpong(_size, run) {
      for (;;) {
        const t0 = process.hrtime.bigint();
        await new Promise((r) => setImmediate(r));
        if (!run.record(t0, process.hrtime.bigint())) return;
      }
    },
    streams: {
      stream: async (_size, count) => ({ messagesPerBurst: count, burst: () => new Promise((r) => setImmediate(r)), close: async () => undefined }),
      'stream-never': async () => null,
    },
    close: async () => undefined,
  };
}

test('runAll: plug-in transports are measured per size and pattern, repeated, and a failing one is reported', async () => {
  let closes = 0;
  const uds: Transport = { name: 'uds', distance: 'thread', description: 'fake baseline', open: async () => immediatePeer() };
  const broken: Transport = {
    name: 'broken', distance: 'thread', description: 'fails', open: async () => ({
      pingpong: async () => { throw new Error('peer fell over'); },
      close: async () => { closes++; },
    }),
  };
  const opts = { ...parseArgs(['--quick', '--sizes', '8,64', '--repeat', '2']), pingpong: { warmup: 2, samples: 50, maxMs: 500 }, bursts: { maxTime: 0.05, minSamples: 2 } };
  const { measurements, failures } = await withTimeout('runAll', 30_000, () => runAll([uds, broken], opts, undefined, () => undefined));
  assert.equal(failures, [{ transport: 'broken', message: 'peer fell over' }]);
  assert.is(closes, 1, 'a failed transport is closed once and not retried in later runs');
  const rows = aggregate(measurements);
  assert.equal(rows.map((r) => `${r.pattern}/${r.size}/${r.runs.n}`), ['pingpong/8/2', 'pingpong/64/2', 'stream/8/2', 'stream/64/2']);
  assert.ok(rows.every((r) => r.transport === 'uds'));
  assert.is(rows[0]!.samples, 50);
});

function runBench(args: string[], children: Children): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = children.add(spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('a --quick run of one peer writes the contract JSON, an SVG, and table ratios that match the JSON', async () => {
  const { dir, cleanup } = makeTempDir();
  const children = new Children();
  try {
    const json = join(dir, 'bench.json');
    const svg = join(dir, 'bench.svg');
    const r = await withTimeout('bench --quick', 60_000, () =>
      runBench(['--quick', '--only', 'message-channel', '--sizes', '64', '--json', json, '--svg', svg], children));
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    for (const k of ['node', 'cpu', 'cores', 'kernel', 'date']) assert.ok(k in report.env, `env.${k}`);
    assert.is(report.env.node, process.version);
    assert.ok(!Number.isNaN(Date.parse(report.env.date)));
    assert.type(report.env.pinning.used, 'boolean');
    const names = new Set(report.results.map((x: { transport: string }) => x.transport));
    assert.equal([...names], ['uds', 'message-channel'], 'uds is kept as the baseline');
    for (const row of report.results) {
      for (const k of CONTRACT_ROW) assert.ok(k in row, `${row.transport} ${row.pattern} lacks ${k}`);
      assert.is(row.size, 64);
      assert.ok('cpuUsPerMsg' in row, `${row.transport} ${row.pattern} lacks cpuUsPerMsg`);
      if (row.pattern === 'paced') assert.is(row.ratePerSec, 10_000, 'quick runs pace at 10 k/s');
      if (row.pattern === 'pingpong' || row.pattern === 'paced') {
        assert.ok(row.rttP50Us > 0 && row.rttP50Us <= row.rttP99Us && row.rttP99Us <= row.rttP999Us, JSON.stringify(row));
        assert.is(row.msgsPerSec, null);
      } else {
        assert.ok(row.msgsPerSec > 0, JSON.stringify(row));
        assert.is(row.bytesPerSec, row.msgsPerSec * 64);
        assert.is(row.rttP50Us, null);
      }
    }
    const ping = (t: string) => report.results.find((x: { transport: string; pattern: string }) => x.transport === t && x.pattern === 'pingpong');
    const expected = `${(ping('message-channel').rttP50Us / ping('uds').rttP50Us).toFixed(2)}×`;
    const line = r.stdout.split('\n').find((l) => l.startsWith('message-channel'));
    assert.ok(line?.includes(expected), `table line ${line} should carry ${expected}`);
    const picture = readFileSync(svg, 'utf8');
    assert.ok(picture.startsWith('<?xml') && picture.includes('<svg') && picture.trimEnd().endsWith('</svg>'));
    assert.ok(picture.includes('message-channel'));
  } finally {
    await children.killAll();
    cleanup();
  }
});

test('an unknown transport in --only is a usage error, not a crash', async () => {
  const children = new Children();
  try {
    const r = await withTimeout('bench --only', 20_000, () => runBench(['--only', 'carrier-pigeon'], children));
    assert.is(r.code, 2);
    assert.match(r.stderr, /unknown transport carrier-pigeon/);
  } finally {
    await children.killAll();
  }
});

test.run();
