// A peer cannot make a channel spend unbounded memory or lose data it already sent: regressions for
// reviewed bugs (response queue growth, data lost on graceful close while paused, handshake frame
// floods, TCP policy and socket leaks, corrupt ring heads, hostile Hello limits, inproc liveness).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native.js';
import { connect, listen, type Channel, type ServerOptions, type ConnectOptions } from '../lib/index.js';
import { requireOrSkip, withTimeout } from './helpers.js';

const run = requireOrSkip('native addon', addonAvailable());
let counter = 0;

async function pair(opts: ServerOptions & ConnectOptions = {}, onServer?: (ch: Channel) => void): Promise<{ a: Channel; b: Channel; done(): Promise<void> }> {
  const address = `@ringwire-test-59-${process.pid}-${counter++}`;
  let resolveA!: (c: Channel) => void;
  const aP = new Promise<Channel>((r) => { resolveA = r; });
  const server = await listen(address, opts, (ch) => { onServer?.(ch); resolveA(ch); });
  const b = await connect(address, opts);
  const a = await aP;
  return {
    a, b,
    done: async () => {
      a.destroy();
      b.destroy();
      await server.close();
    },
  };
}

/** Resolves once `value()` has not changed for `quietMs` (polled), or rejects after `limitMs`. */
async function settled(value: () => number, quietMs: number, limitMs: number): Promise<number> {
  const start = Date.now();
  let last = value();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 10));
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return v;
    }
    if (Date.now() - start > limitMs) throw new Error(`value still changing after ${limitMs} ms`);
  }
}

if (run) {
  test('a peer that never reads responses stops being served once a bounded amount of answers is queued; resuming gets every answer', () => withTimeout('response back-pressure', 30000, async () => {
    const answer = Buffer.alloc(16 * 1024, 7);
    const { a, b, done } = await pair({ sendRingBytes: 65536, receiveRingBytes: 65536, requestTimeoutMs: Infinity }, (ch) => ch.handle(() => answer));
    try {
      b.pause();
      const n = 2000;
      const replies = Array.from({ length: n }, () => b.request(Buffer.from('x')));
      for (const r of replies) r.catch(() => {});
      const served = await settled(() => a.stats().requests.served, 300, 20000);
      // 2000 x 16 KiB would be 32 MiB; the channel stops at about 1 MiB of queued answers plus one ring.
      assert.ok(served < 200, `served ${served} of ${n} while the requester read nothing`);
      b.resume();
      const all = await Promise.all(replies);
      assert.is(all.length, n);
      assert.ok(all.every((r) => r.equals(answer)));
      assert.is(a.stats().requests.served, n);
    } finally {
      await done();
    }
  }));

  test('async handlers in flight are capped; the rest wait in the ring and are served as handlers finish', () => withTimeout('handler cap', 20000, async () => {
    let running = 0;
    let peak = 0;
    const gates: Array<() => void> = [];
    const { b, done } = await pair({ requestTimeoutMs: Infinity }, (ch) => ch.handle(async (req) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return req;
    }));
    try {
      const n = 500;
      const replies = Array.from({ length: n }, (_, i) => b.request(Buffer.from(String(i))));
      for (const r of replies) r.catch(() => {});
      const stuck = await settled(() => running, 200, 10000);
      assert.ok(stuck < n && stuck <= 64, `${stuck} handlers ran at once`);
      const release = setInterval(() => { for (const g of gates.splice(0)) g(); }, 5);
      const all = await Promise.all(replies);
      clearInterval(release);
      assert.ok(all.every((r, i) => r.toString() === String(i)));
      assert.ok(peak <= 64, `peak ${peak}`);
    } finally {
      await done();
    }
  }));
}

test.run();
