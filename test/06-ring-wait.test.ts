import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { createThreadRing, openConsumer, openProducer } from '../lib/ring/thread-ring.js';
import { allocateRing } from '../lib/ring/ring-memory.js';
import { RingKind } from '../lib/ring/layout.js';
import { SpscConsumer, SpscProducer } from '../lib/ring/spsc.js';
import type { Doorbell } from '../lib/ring/doorbell.js';
import { isRingwireError } from '../lib/errors.js';
import { scratch } from './helpers/index.js';

/** A bell that counts rings and wakes a pending wait at once. */
class CountingBell implements Doorbell {
  rings = 0;
  #wake: (() => void) | undefined;
  ring(): void {
    this.rings++;
    this.#wake?.();
  }
  wait(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.#wake = () => { clearTimeout(t); this.#wake = undefined; resolve(true); };
    });
  }
  close(): void {}
}

test('the data bell rings only while the consumer sleeps', async () => {
  const mem = allocateRing(RingKind.Spsc, 1024);
  const dataBell = new CountingBell();
  const p = new SpscProducer(mem, { dataBell });
  const c = new SpscConsumer(mem, { dataBell, spin: 0 });
  for (let i = 0; i < 5; i++) p.send(new Uint8Array(4));
  assert.is(dataBell.rings, 0, 'no one sleeps: every ring suppressed');
  assert.is(p.stats().doorbellsSuppressed, 5);
  while (c.receive());
  const woke = c.waitForData({ timeoutMs: 5000 });
  p.send(new Uint8Array(4));
  assert.ok(await woke);
  assert.is(dataBell.rings, 1);
  assert.is(p.stats().doorbellsRung, 1);
  assert.is(c.stats().parks, 1);
  p.send(new Uint8Array(4));
  assert.is(dataBell.rings, 1, 'the consumer is awake again');
});

test('a full ring parks the producer until the consumer releases space', async () => {
  const mem = allocateRing(RingKind.Spsc, 256);
  const spaceBell = new CountingBell();
  const p = new SpscProducer(mem, { spaceBell, spin: 0 });
  const c = new SpscConsumer(mem, { spaceBell });
  while (p.send(new Uint8Array(56)));
  const sent = p.sendAsync(new Uint8Array(56).fill(7), 3, { timeoutMs: 5000 });
  assert.ok(c.receive());
  await sent;
  assert.is(spaceBell.rings, 1);
  assert.is(p.stats().fullWaits, 1);
  let last: Uint8Array | null = null;
  for (let m = c.receive(); m; m = c.receive()) last = m;
  assert.is(last![0], 7);
});

test('waits time out with false and abort with ERR_ABORTED', async () => {
  const d = createThreadRing(256);
  const c = openConsumer(d, { spin: 0 });
  assert.is(await c.waitForData({ timeoutMs: 20 }), false);
  const ac = new AbortController();
  const pending = c.waitForData({ signal: ac.signal });
  ac.abort(new Error('stop'));
  try {
    await pending;
    assert.unreachable();
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_ABORTED'), String(err));
  }
});

test('a worker blocked in waitForDataSync wakes for each of 2,000 ping-pongs (no lost wake-ups)', async () => {
  await scratch('ping-pong', 60_000, async ({ children }) => {
    const ping = createThreadRing(1024);
    const pong = createThreadRing(1024);
    const src = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.lib).then(({ openConsumer, openProducer }) => {
        const c = openConsumer(workerData.ping, { spin: 0 });
        const p = openProducer(workerData.pong);
        for (let i = 0; i < workerData.n; i++) {
          if (!c.waitForDataSync(10000)) throw new Error('no ping ' + i);
          const m = c.receive();
          p.send(m);
        }
        parentPort.postMessage(c.stats());
      });`;
    const n = 2000;
    const w = new Worker(src, { eval: true, workerData: { ping, pong, n, lib: new URL('../lib/ring/thread-ring.js', import.meta.url).href } });
    children.onCleanup(() => w.terminate());
    const stats = new Promise<{ parks: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    const p = openProducer(ping);
    const c = openConsumer(pong, { spin: 0 });
    for (let i = 0; i < n; i++) {
      p.send(new Uint8Array([i & 0xff]));
      assert.ok(await c.waitForData({ timeoutMs: 10_000 }), `no pong ${i}`);
      assert.is(c.receive()![0], i & 0xff);
    }
    const s = await stats;
    assert.ok(s.parks > 0, 'the worker really slept');
  });
});

test('two waits on one consumer: the first one timing out does not silence the doorbell for the other', async () => {
  const d = createThreadRing(256);
  const p = openProducer(d);
  const c = openConsumer(d, { spin: 0 });
  const long = c.waitForData({ timeoutMs: 10_000 });
  assert.is(await c.waitForData({ timeoutMs: 10 }), false);
  p.send(new Uint8Array(4));
  assert.is(p.stats().doorbellsRung, 1, 'the remaining waiter is still flagged, so the producer rang');
  assert.ok(await long);
});

test('waitForSpace rejects (never throws) for a message the ring can never hold', async () => {
  const p = openProducer(createThreadRing(256));
  let promise: Promise<boolean> | undefined;
  assert.not.throws(() => { promise = p.waitForSpace(1000); });
  try {
    await promise;
    assert.unreachable();
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_RING_TOO_LARGE'), String(err));
  }
});

test.run();
