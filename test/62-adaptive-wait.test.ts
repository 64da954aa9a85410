// The adaptive wait policy (lib/ring/adaptive-spin.ts) and the default channel that uses it: what it
// learns from made-up gaps, and, between this process and a child over eventfd doorbells, that no
// wake-up is lost while traffic switches between back-to-back, short gaps around the spin budget,
// and long sleeps (a lost wake-up hangs a request, which the hard timeout turns into a failure).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AdaptiveSpin } from '../lib/ring/adaptive-spin.js';
import { addonAvailable } from '../lib/native/native.js';
import { connect } from '../lib/index.js';
import { prng, requireOrSkip, scratch, testSeed } from './helpers/index.js';

const CHILD = fileURLToPath(new URL('./62-adaptive-child.js', import.meta.url));

test('AdaptiveSpin: spins a few typical gaps while gaps are short, within its bounds', () => {
  const a = new AdaptiveSpin({ maxUs: 50, minUs: 8 });
  for (let i = 0; i < 50; i++) a.observe(3);
  const b = a.budgetUs();
  assert.ok(b >= 8 && b <= 50, `budget ${b}`);
  assert.ok(Math.abs(b - 12) < 1, `about four 3 µs gaps, got ${b}`);
  for (let i = 0; i < 50; i++) a.observe(40);
  assert.is(a.budgetUs(), 50, 'never above the ceiling');
});

test('AdaptiveSpin: parks at once when gaps thin out, and spins again when they shrink', () => {
  const a = new AdaptiveSpin({ maxUs: 50 });
  for (let i = 0; i < 40; i++) a.observe(100); // a paced 10 k/s client
  assert.is(a.budgetUs(), 0);
  assert.ok(a.state.hitShare < 0.1);
  for (let i = 0; i < 40; i++) a.observe(15); // dense again (15 µs: a gap plus a wake-up)
  assert.ok(a.budgetUs() > 0);
});

test('AdaptiveSpin: spins that keep losing stop spinning for a while, doubling, then try again', () => {
  const a = new AdaptiveSpin();
  for (let i = 0; i < 20; i++) a.observe(5);
  let parkedInARow = 0;
  let longest = 0;
  let tries = 0;
  for (let i = 0; i < 400; i++) {
    const b = a.budgetUs();
    if (b === 0) {
      longest = Math.max(longest, ++parkedInARow);
      continue;
    }
    parkedInARow = 0;
    tries++;
    a.spun(false); // every spin loses: an oversubscribed machine
  }
  assert.is(longest, 64, 'back-off grows to its ceiling');
  assert.ok(tries > 5 && tries < 60, `it keeps trying now and then (${tries} tries)`);
  a.spun(true);
  a.spun(true);
  assert.is(a.state.backoff, 0, 'a win ends the back-off');
});

const run = requireOrSkip('native addon', addonAvailable());

if (run) {
  test('default channel to a child: no lost wake-up while traffic moves between dense, short gaps and sleeps', () => scratch('adaptive', 120_000, async (s) => {
    const address = `@ringwire-test-62-${process.pid}`;
    const child = s.children.add(spawn(process.execPath, [CHILD, address], { stdio: ['pipe', 'pipe', 'inherit'] }));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
    });
    const ch = await connect(address);
    s.defer(() => ch.destroy());
    const rnd = prng(testSeed());
    const busyWait = (us: number): void => {
      const until = performance.now() + us / 1000;
      while (performance.now() < until);
    };
    let sent = 0;
    for (let phase = 0; phase < 60; phase++) {
      const kind = rnd.int(0, 3);
      const n = rnd.int(20, 200);
      for (let i = 0; i < n; i++) {
        const msg = Buffer.alloc(rnd.int(1, 300), (phase * 7 + i) & 0xff);
        msg.writeUInt8(0, 0); // never the one-byte 0xff count request
        if (kind === 0) {
          // back to back: both sides should end up polling
        } else if (kind === 1) {
          busyWait(rnd.int(1, 80)); // around the spin budget: wins and losses both
        } else if (kind === 2) {
          await new Promise((r) => setTimeout(r, rnd.int(0, 2))); // long enough that both sides park
        } else {
          await new Promise((r) => setImmediate(r));
        }
        if (i % 3 === 0) {
          await ch.send(msg);
          sent++;
        } else {
          const reply = await ch.request(msg);
          assert.ok(reply.equals(msg), `phase ${phase} request ${i} echoed`);
        }
      }
    }
    const count = (await ch.request(Buffer.from([0xff]))).readUInt32LE(0);
    assert.is(count, sent, 'every message arrived');
    const st = ch.stats();
    assert.ok(st.adaptive, 'the default channel over an eventfd is adaptive');
    assert.ok(st.adaptive.idle.budgetUs >= 0 && st.adaptive.idle.budgetUs <= 50);
    assert.is(st.requests.answered, st.requests.sent);
  }));

  test('pipelined requests from the default channel are all answered (no request polls inside another)', () => scratch('adaptive-pipelined', 60_000, async (s) => {
    const address = `@ringwire-test-62b-${process.pid}`;
    const child = s.children.add(spawn(process.execPath, [CHILD, address], { stdio: ['pipe', 'pipe', 'inherit'] }));
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const ch = await connect(address);
    s.defer(() => ch.destroy());
    for (let round = 0; round < 50; round++) {
      const msgs = Array.from({ length: 64 }, (_, i) => Buffer.from(`r${round}m${i}`));
      const replies = await Promise.all(msgs.map((m) => ch.request(m)));
      replies.forEach((r, i) => assert.ok(r.equals(msgs[i]!), `round ${round} reply ${i}`));
    }
  }));
}

test.run();
