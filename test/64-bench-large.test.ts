// Messages larger than the ring: Channel.sendLarge() in pieces and the reader that puts them back
// together (order, interleaving with requests and small messages, the receiver's limit, a piece
// nobody announced). And the large-message rows of the benchmark: a --quick run of memcpy and ringwire-thread-large at
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
import { requireOrSkip, scratch, prng, testSeed } from './helpers/index.js';
import { channelPair } from './helpers/channel-pair.js';
import { isRingwireError } from '../lib/errors.js';

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
  test('sendLarge: messages up to 16 ring sizes arrive whole and in order, between small messages and requests', () => scratch('send-large', 60_000, async (s) => {
    const { a, b, done } = await channelPair({ sendRingBytes: 1 << 16, receiveRingBytes: 1 << 16 });
    s.defer(done);
    const rnd = prng(testSeed());
    a.handle((req) => req);
    const sizes = [0, 1, 1000, b.maxMessageSize, b.maxMessageSize + 1, 1 << 17, 1 << 20, (1 << 20) + 12345];
    const got: Buffer[] = [];
    const all = new Promise<void>((resolve) => a.on('message', (m) => { got.push(Buffer.from(m)); if (got.length === sizes.length * 2) resolve(); }));
    const sent: Buffer[] = [];
    for (const size of sizes) {
      const big = Buffer.alloc(size);
      for (let i = 0; i < size; i += 997) big[i] = rnd.int(0, 255);
      const small = Buffer.from(`after ${size}`);
      sent.push(big, small);
      const p = b.sendLarge(big);
      const reply = b.request(Buffer.from(`req ${size}`)); // a request between the pieces is answered
      await b.send(small);
      await p;
      assert.equal((await reply).toString(), `req ${size}`);
    }
    await all;
    assert.is(got.length, sent.length);
    got.forEach((m, i) => assert.ok(m.equals(sent[i]!), `message ${i} (${sent[i]!.length} bytes) arrived whole`));
  }));

  test('sendLarge: an announcement above the receiver\'s maxLargeMessageBytes closes the channel with ERR_RING_TOO_LARGE', () => scratch('send-large-limit', 30_000, async (s) => {
    const { a, b, done } = await channelPair({ sendRingBytes: 1 << 16, receiveRingBytes: 1 << 16, maxLargeMessageBytes: 1 << 18 });
    s.defer(done);
    const closed = a.whenClosed();
    b.sendLarge(Buffer.alloc((1 << 18) + 1)).catch(() => {});
    const err = await closed;
    assert.ok(isRingwireError(err) && err.code === 'ERR_RING_TOO_LARGE', String(err));
  }));

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
