// The large-message rows of the benchmark: a --quick run of memcpy and ringwire-thread-large at
// 64 KiB writes stream rows for both and a claim/commit row for the ring, each with bytes/s and
// CPU per message; ringwire-thread-large leaves small sizes to ringwire-thread. And the
// ringwire-channel-adaptive row runs paced at 10 k/s in --quick. No figure is judged here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonAvailable } from '../lib/native/native.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const mainJs = fileURLToPath(new URL('../bench/main.js', import.meta.url));

function bench(args: string[], children: { add<T extends import('node:child_process').ChildProcess>(c: T): T }): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = children.add(spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

interface Row { transport: string; pattern: string; size: number; bytesPerSec: number | null; cpuUsPerMsg: number | null; ratePerSec?: number; rttP50Us: number | null }

test('large messages: memcpy and ringwire-thread-large rows, send() and claim/commit', () => scratch('bench-large', 120_000, async (s) => {
  const json = join(s.dir, 'large.json');
  const r = await bench(['--quick', '--only', 'memcpy,ringwire-thread-large', '--sizes', '4096,65536', '--rates', '0', '--json', json], s.children);
  assert.is(r.code, 0, r.stderr);
  const rows = (JSON.parse(readFileSync(json, 'utf8')) as { results: Row[] }).results;
  const find = (t: string, p: string, size: number): Row | undefined => rows.find((x) => x.transport === t && x.pattern === p && x.size === size);
  for (const [t, p] of [['memcpy', 'stream'], ['ringwire-thread-large', 'stream'], ['ringwire-thread-large', 'stream-claim']] as const) {
    const row = find(t, p, 65536);
    assert.ok(row, `${t} ${p} 64 KiB`);
    assert.ok(row.bytesPerSec! > 0, `${t} ${p} bytes/s`);
    assert.ok('cpuUsPerMsg' in row);
  }
  assert.is(find('ringwire-thread-large', 'stream', 4096), undefined, 'small sizes are ringwire-thread\'s');
  assert.ok(find('memcpy', 'stream', 4096), 'memcpy measures every size');
}));

const run = requireOrSkip('native addon', addonAvailable());
if (run) {
  test('the default channel row runs paced at 10 k/s in --quick, with CPU per request', () => scratch('bench-adaptive', 120_000, async (s) => {
    const json = join(s.dir, 'adaptive.json');
    const r = await bench(['--quick', '--only', 'ringwire-channel-adaptive', '--sizes', '64', '--json', json], s.children);
    assert.is(r.code, 0, r.stderr);
    const rows = (JSON.parse(readFileSync(json, 'utf8')) as { results: Row[] }).results;
    for (const t of ['uds', 'ringwire-channel-adaptive']) {
      const paced = rows.find((x) => x.transport === t && x.pattern === 'paced');
      assert.ok(paced, `${t} paced row`);
      assert.is(paced.ratePerSec, 10_000);
      assert.ok(paced.rttP50Us! > 0);
      assert.ok(paced.cpuUsPerMsg === null || paced.cpuUsPerMsg > 0);
    }
  }));
}

test.run();
