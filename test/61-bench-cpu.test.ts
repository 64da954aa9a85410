// The benchmark's CPU accounting (bench/cpu.ts) and pacing (bench/pacer.ts): a child that burns a
// known amount of its own CPU time is counted, the pacing thread is not, paced rows carry their
// rate and CPU in the report, and a busy-polling row whose threads waited for a core is marked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { cpuAccountingAvailable, CpuProbe, descendants } from '../bench/cpu.js';
import { parseArgs, QUICK_RATES } from '../bench/cli.js';
import { Pacer } from '../bench/pacer.js';
import { aggregate, checkFloor, type Measurement, type ResultRow } from '../bench/results.js';
import { runAll } from '../bench/run.js';
import type { Peer, Transport } from '../bench/transport.js';
import { addonAvailable } from '../lib/native/native.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const haveProc = requireOrSkip('per-thread schedstat in /proc', cpuAccountingAvailable());

/** Node code for a child that spins until its own CPU time reaches `ms`, then says so and waits. */
const burner = (ms: number): string =>
  `const t=${ms * 1000},b=process.cpuUsage();for(;;){const u=process.cpuUsage(b);if(u.user+u.system>=t)break;}process.stdout.write('done\\n');setInterval(()=>{},1000);`;

if (haveProc) {
  test('CpuProbe: counts a child\'s own CPU time, found as a descendant', () => scratch('cpu-child', 30_000, async (s) => {
    const probe = new CpuProbe();
    const child = s.children.add(spawn(process.execPath, ['-e', 'process.stdin.once("data",()=>{' + burner(150) + '})'], { stdio: ['pipe', 'pipe', 'inherit'] }));
    await new Promise((r) => setImmediate(r));
    assert.ok(descendants().includes(child.pid!), 'the child is listed as a descendant');
    probe.start();
    child.stdin!.write('go');
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const d = probe.stop();
    assert.ok(d.cpuUs >= 150_000, `counted ${d.cpuUs} µs, the child alone burned at least 150000`);
    assert.ok(d.wallUs > 0 && d.runDelayUs >= 0);
  }));

  test('CpuProbe: an excluded thread does not count', () => scratch('cpu-exclude', 30_000, async () => {
    if (!addonAvailable()) return;
    const pacer = await Pacer.create();
    try {
      const all = new CpuProbe();
      const without = new CpuProbe([pacer.tid]);
      all.start();
      without.start();
      pacer.start(20_000);
      for (let i = 0; i < 2000; i++) {
        const w = pacer.wait();
        if (w) await w;
      }
      pacer.stop();
      const a = all.stop();
      const b = without.stop();
      assert.ok(a.cpuUs > b.cpuUs, `with the pacing thread ${a.cpuUs} µs, without ${b.cpuUs} µs`);
    } finally {
      await pacer.close();
    }
  }));
}

test('Pacer: wait() hands out ticks, null when one is already due, and stop() releases a waiter', () => scratch('pacer', 30_000, async () => {
  if (!addonAvailable()) return;
  const pacer = await Pacer.create();
  try {
    pacer.start(1000);
    let ticks = 0;
    for (let i = 0; i < 20; i++) {
      const w = pacer.wait();
      if (w) await w;
      ticks++;
    }
    assert.is(ticks, 20);
    // A tick that arrives while nobody waits is kept, so the next round trip goes at once.
    let due = pacer.wait();
    while (due) {
      await new Promise((r) => setTimeout(r, 5));
      due = pacer.wait();
    }
    assert.is(due, null);
    const waiting = pacer.wait() ?? Promise.resolve();
    pacer.stop();
    await waiting;
  } finally {
    await pacer.close();
  }
}));

/** A fake transport that paces through run.wait(), answering on the next event-loop turn. */
function pacedPeer(): Peer {
  return {
    paced: true,
    async pingpong(_size, run) {
      for (;;) {
        const w = run.wait();
        if (w) await w;
        const t0 = process.hrtime.bigint();
        await new Promise((r) => setImmediate(r));
        if (!run.record(t0, process.hrtime.bigint())) return;
      }
    },
    close: async () => undefined,
  };
}

test('runAll: paced rows carry pattern paced, ratePerSec and cpuUsPerMsg; a peer that does not pace gets none', async () => {
  if (!addonAvailable()) return;
  const uds: Transport = { name: 'uds', distance: 'thread', description: 'fake', open: async () => pacedPeer() };
  const unpaced: Transport = { name: 'unpaced', distance: 'thread', description: 'fake', open: async () => ({ ...pacedPeer(), paced: false }) };
  const opts = { ...parseArgs(['--quick', '--sizes', '64', '--rates', '2000']), pingpong: { warmup: 5, samples: 200, maxMs: 500 }, paced: { rates: [2000], seconds: 0.05 } };
  const { measurements, failures } = await runAll([uds, unpaced], opts, undefined, () => undefined);
  assert.equal(failures, []);
  const rows = aggregate(measurements);
  const paced = rows.filter((r) => r.pattern === 'paced');
  assert.equal(paced.map((r) => r.transport), ['uds']);
  assert.is(paced[0]!.ratePerSec, 2000);
  assert.ok(paced[0]!.achievedPerSec! > 0);
  if (cpuAccountingAvailable()) for (const r of rows) assert.ok(r.cpuUsPerMsg !== null && r.cpuUsPerMsg > 0, `${r.transport} ${r.pattern} cpu`);
  assert.ok(QUICK_RATES.includes(10_000), '--quick paces at 10 k/s at least');
});

test('aggregate and checkFloor: invalid runs give way to valid ones; a floor far above the ring rows is marked', () => {
  const lat = (p50Us: number) => ({ samples: 10, p50Us, p90Us: p50Us, p99Us: p50Us, p999Us: p50Us, maxUs: p50Us });
  const ms: Measurement[] = [
    { transport: 'atomics-floor', pattern: 'pingpong', size: 64, latency: lat(8000), cpuUsPerMsg: 5 },
    { transport: 'ringwire-thread', pattern: 'pingpong', size: 64, latency: lat(0.4), cpuUsPerMsg: 1 },
    { transport: 'ringwire-thread', pattern: 'pingpong', size: 64, latency: lat(9000), cpuUsPerMsg: 9, invalid: 'descheduled' },
    { transport: 'ringwire-process', pattern: 'pingpong', size: 64, latency: lat(7000), invalid: 'descheduled' },
  ];
  const rows = aggregate(ms);
  const by = (t: string): ResultRow => rows.find((r) => r.transport === t)!;
  assert.is(by('ringwire-thread').rttP50Us, 0.4, 'the valid run is the row');
  assert.is(by('ringwire-thread').invalid, undefined);
  assert.is(by('ringwire-process').invalid, 'descheduled', 'no valid run: the row says why');
  checkFloor(rows, new Set(['atomics-floor', 'ringwire-thread', 'ringwire-process']));
  assert.match(by('atomics-floor').invalid ?? '', /above twice a busy-polling ring/);
});

test.run();
