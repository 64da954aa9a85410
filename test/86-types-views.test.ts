/**
 * Generated TypeScript views and writers over real rings: values round-trip through SPSC and MPSC
 * rings, writers claim exactly the bytes they need, every kind of corruption a peer can write is
 * ERR_MESSAGE_CORRUPT (never an out-of-bounds read or a wrong value), the accessor and builder
 * paths allocate nothing per message (as test/07 proves for the ring), and the generated files in
 * the repository are what the generator emits today.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { isRingwireError } from '../lib/errors.js';
import { createThreadRing, openConsumer, openProducer } from '../lib/ring/thread-ring.js';
import { generate } from '../lib/types/index.js';
import * as K from './types/kitchen.js';
import * as B from '../bench/codec-order.js';
import { sample } from './types/sample.js';

const src = (p: string): string => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');


/** The value as toValue() returns it (bigints stay bigints, lists become arrays). */
function normal(v: K.Request): unknown {
  return { ...v, id: BigInt(v.id), raw: Array.from(v.raw) };
}

test('generated files in the repository are up to date', () => {
  assert.fixture(src('test/types/kitchen.ts'), generate(src('test/types/kitchen.wit'), { lang: 'ts', runtime: '../../lib/types/index.js' }));
  assert.fixture(src('test/types/kitchen.h'), generate(src('test/types/kitchen.wit'), { lang: 'c' }));
  assert.fixture(src('bench/codec-order.ts'), generate(src('bench/codec-order.wit'), { lang: 'ts', runtime: '../lib/types/index.js' }));
});

for (const kind of ['spsc', 'mpsc'] as const) {
  test(`${kind}: values round-trip through a ring, claimed to the exact byte`, () => {
    const d = createThreadRing(1 << 12, kind);
    const p = openProducer(d);
    const c = openConsumer(d);
    const view = new K.RequestView();
    const variants: K.Request[] = [
      sample,
      { ...sample, shape: { tag: 'circle', val: 2.5 }, nick: undefined, status: { tag: 'ok', val: 42 }, tags: [], items: [], raw: new Uint8Array(0), values: [] },
      { ...sample, shape: { tag: 'empty' }, name: '', id: 0n },
    ];
    for (let round = 0; round < 200; round++) {
      const v = variants[round % variants.length]!;
      assert.ok(K.sendRequest(p, v, 9));
      assert.ok(c.read() >= 0);
      assert.is(c.length, K.measureRequest(v), 'the record is exactly the measured size');
      assert.is(c.type, 9);
      view.wrap(c.data, c.offset, c.length);
      assert.equal(view.toValue(), normal(v));
      assert.is(view.name, v.name);
      assert.is(view.tags.length, v.tags.length);
      assert.is(view.items.length, v.items.length);
      c.release();
    }
  });
}

test('views read fields in place; variant accessors check the case', () => {
  const area = new Uint8Array(512);
  const n = K.writeRequest(sample, area, 64);
  const v = new K.RequestView().wrap(area, 64, n);
  assert.is(v.id, sample.id);
  assert.is(v.idAsNumber(), Number(sample.id));
  assert.is(v.items.get(1).key, 'ключ');
  assert.is(v.items.get(1).weight, 65535);
  assert.is(v.tags.get(3), '😀');
  assert.is(v.values.get(3), -2147483648);
  assert.is(v.shape.tag, K.ShapeView.rect);
  assert.is(v.shape.rect.y, -2.25);
  assert.is(v.status.err, 'bad thing');
  assert.is(v.nick.some, 'nicky');
  assert.is(v.pair.f0, 255);
  assert.is(v.ch, 0x1f600);
  assert.equal(Array.from(v.raw.bytes()), [0, 1, 254, 255]);
  assert.throws(() => v.shape.circle, (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
  assert.throws(() => v.tags.get(4), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'));
  assert.throws(() => new K.RequestView().wrap(area, 64, K.RequestView.SIZE - 1), (e: unknown) => isRingwireError(e, 'ERR_MESSAGE_CORRUPT'));
  assert.throws(() => new K.RequestView().wrap(area, 60, 100), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'), 'misaligned message');
  assert.throws(() => K.writeRequest({ ...sample, color: 3 }, area, 0), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
  assert.throws(() => K.writeRequest({ ...sample, ch: 0xd800 }, area, 0), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
});

/** Offsets of request fields (from the generated comment), for the corruption cases. */
const OFF = { name: 8, tags: 16, values: 24, items: 32, shape: 40, color: 64, nick: 68, ch: 84, status: 96, raw: 112 };

test('corruption a peer can write is ERR_MESSAGE_CORRUPT on the read that meets it', () => {
  const comment = /fields at ([^.]+)\./.exec(src('test/types/kitchen.ts').split('export class RequestView')[0]!.split('\n').reverse().find((l) => l.includes('Request:'))!)![1]!;
  for (const [k, o] of Object.entries(OFF)) assert.ok(comment.includes(`${k}@${o}`), `${k}@${o} in ${comment}`);
  const cases: Array<[string, (a: Uint8Array, dv: DataView, n: number) => void, (v: K.RequestView) => unknown]> = [
    ['string pointer past the end', (_a, dv, n) => dv.setUint32(OFF.name, n - 2, true), (v) => v.name],
    ['string length past the end', (_a, dv) => dv.setUint32(OFF.name + 4, 0xffffffff, true), (v) => v.name],
    ['bad UTF-8 (lone continuation byte)', (a, dv) => { a[dv.getUint32(OFF.name, true)] = 0x80; }, (v) => v.name],
    ['bad UTF-8 (overlong)', (a, dv) => { const p = dv.getUint32(OFF.name, true); a[p] = 0xc0; a[p + 1] = 0x80; }, (v) => v.name],
    ['bad UTF-8 (surrogate)', (a, dv) => { const p = dv.getUint32(OFF.name, true); a[p] = 0xed; a[p + 1] = 0xa0; a[p + 2] = 0x80; }, (v) => v.name],
    ['bad UTF-8 (truncated at the end)', (a, dv) => { const p = dv.getUint32(OFF.name, true) + dv.getUint32(OFF.name + 4, true) - 1; a[p] = 0xe2; }, (v) => v.name],
    ['list count overflowing the message', (_a, dv) => dv.setUint32(OFF.values + 4, 0x40000000, true), (v) => v.values],
    ['misaligned list', (_a, dv) => dv.setUint32(OFF.values, dv.getUint32(OFF.values, true) + 1, true), (v) => v.values],
    ['list of strings: an element out of bounds', (a, dv) => { const p = dv.getUint32(OFF.tags, true); new DataView(a.buffer).setUint32(p, 1 << 30, true); }, (v) => v.tags.get(0)],
    ['nested record string out of bounds', (a, dv) => { const p = dv.getUint32(OFF.items, true); new DataView(a.buffer).setUint32(p + 4, 1 << 20, true); }, (v) => v.items.get(0).key],
    ['variant discriminant', (a) => { a[OFF.shape] = 3; }, (v) => v.shape.tag],
    ['enum discriminant', (a) => { a[OFF.color] = 3; }, (v) => v.color],
    ['option discriminant', (a) => { a[OFF.nick] = 2; }, (v) => v.nick.tag],
    ['result discriminant', (a) => { a[OFF.status] = 0xff; }, (v) => v.toValue()],
    ['char is a surrogate', (_a, dv) => dv.setUint32(OFF.ch, 0xdfff, true), (v) => v.ch],
    ['char above U+10FFFF', (_a, dv) => dv.setUint32(OFF.ch, 0x110000, true), (v) => v.ch],
    ['list<u8> out of bounds', (_a, dv) => dv.setUint32(OFF.raw, 0xfffffff0, true), (v) => v.raw.bytes()],
  ];
  for (const [what, corrupt, read] of cases) {
    const area = new Uint8Array(1024);
    const n = K.writeRequest(sample, area, 0);
    const view = new K.RequestView().wrap(area, 0, n);
    read(view); // fine before
    corrupt(area, new DataView(area.buffer), n);
    try {
      read(view);
      assert.unreachable(what);
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_MESSAGE_CORRUPT'), `${what}: ${String(err)}`);
    }
    try {
      view.toValue();
      assert.unreachable(`${what} (toValue)`);
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_MESSAGE_CORRUPT'), `${what} (toValue): ${String(err)}`);
    }
  }
});

test('a message that is all garbage is read safely: a value or ERR_MESSAGE_CORRUPT', () => {
  let seed = 12345;
  const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  let ok = 0;
  for (let i = 0; i < 5000; i++) {
    const n = K.RequestView.SIZE + (rnd() % 200);
    const area = new Uint8Array(512);
    for (let j = 0; j < n; j++) area[j] = rnd() & (rnd() & 1 ? 0x03 : 0xff);
    try {
      new K.RequestView().wrap(area, 0, n).toValue();
      ok++;
    } catch (err) {
      if (!isRingwireError(err, 'ERR_MESSAGE_CORRUPT')) throw err;
    }
  }
  assert.ok(ok < 5000);
});

function collections(kind: number, fn: () => void): Promise<number> {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === kind) n++;
  });
  obs.observe({ entryTypes: ['gc'] });
  fn();
  return new Promise((resolve) => setImmediate(() => setImmediate(() => { obs.disconnect(); resolve(n); })));
}

test('no allocation per message: 3 M orders built in place and read field by field', async () => {
  const d = createThreadRing(1 << 16);
  const p = openProducer(d);
  const c = openConsumer(d);
  const order: B.Order = { id: 1, ts: 2, account: 3, price: 1.25, qty: 10, side: B.Side.sell, flags: B.OrderFlags.ioc, venue: 4, active: true, symbol: 'ACME', fills: [1, 2, 3, 4] };
  const view = new B.OrderView();
  let sum = 0;
  const loop = (count: number): void => {
    for (let i = 0; i < count; i++) {
      order.id = i;
      if (!B.sendOrder(p, order)) {
        while (c.read() >= 0) {
          const v = view.wrap(c.data, c.offset, c.length);
          const fills = v.fills;
          for (let j = 0; j < fills.length; j++) sum = (sum + fills.get(j)) | 0;
          // Every field but the string (a string is the one thing a read must allocate).
          sum = (sum + v.idAsNumber() + v.tsAsNumber() + v.account + v.price + v.qty + v.side + v.flags + v.venue + (v.active ? 1 : 0)) | 0;
        }
        c.release();
        i--;
      }
    }
  };
  loop(100_000);
  (globalThis as { gc?: () => void }).gc?.();
  const minor = await collections(constants.NODE_PERFORMANCE_GC_MINOR, () => loop(3_000_000));
  console.log(`  ${minor} minor GCs over 3 M typed messages`);
  assert.ok(sum !== 0);
  assert.ok(minor <= 1, `${minor} young-generation collections: the typed path allocates`);
});

test('control: decoding the string each message allocates, and the test sees it', async () => {
  const area = new Uint8Array(256);
  const order: B.Order = { id: 1, ts: 2, account: 3, price: 1.25, qty: 10, side: 0, flags: 0, venue: 4, active: true, symbol: 'ACME-' + 'x'.repeat(40), fills: [] };
  const n = B.writeOrder(order, area, 0);
  const view = new B.OrderView();
  let len = 0;
  const minor = await collections(constants.NODE_PERFORMANCE_GC_MINOR, () => {
    for (let i = 0; i < 2_000_000; i++) len += view.wrap(area, 0, n).symbol.length;
  });
  assert.ok(len > 0);
  assert.ok(minor > 1, `only ${minor} collections while decoding 2 M strings`);
});

test.run();
