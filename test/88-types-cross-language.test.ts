/**
 * Property tests across languages (fast-check): values written with TypeScript's generated
 * accessors are read and answered by C (another process) and by WebAssembly (another thread),
 * whose replies TypeScript reads back; and differential fuzzing: valid messages with random bytes
 * changed are read safely by all three, and C and WebAssembly accept exactly the messages the
 * TypeScript reader accepts (same validation rules, docs/types.md).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { isRingwireError } from '../lib/errors.js';
import { OrderView, measureOrder, writeOrder, type Order } from '../bench/codec-order.js';
import { buildOrderEcho, startWasmPeer } from '../bench/peers/ringwire-wasm.js';
import { scratch, testSeed, withTimeout } from './helpers/index.js';
import { compileC, haveCc, startScratchEcho } from './types/c-peer.js';
import * as K from './types/kitchen.js';
import { echoed } from './types/sample.js';
import type { SpscConsumer, SpscProducer } from '../lib/ring/spsc.js';

const seed = testSeed();

const str = fc.string({ unit: 'grapheme', maxLength: 12 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const request: fc.Arbitrary<K.Request> = fc.record({
  id: fc.bigInt({ min: 0n, max: (1n << 64n) - 2n }),
  name: str,
  tags: fc.array(str, { maxLength: 4 }),
  values: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 5 }),
  items: fc.array(fc.record({ key: str, weight: fc.integer({ min: 0, max: 65535 }) }), { maxLength: 3 }),
  shape: fc.oneof(
    fc.record({ tag: fc.constant('circle' as const), val: fc.float({ noNaN: true }) }),
    fc.record({ tag: fc.constant('rect' as const), val: fc.record({ x: fc.double({ noNaN: true }), y: fc.double({ noNaN: true }) }) }),
    fc.constant({ tag: 'empty' as const }),
  ),
  color: fc.integer({ min: 0, max: 2 }),
  perms: fc.integer({ min: 0, max: 7 }),
  nick: fc.option(str, { nil: undefined }),
  ok: fc.boolean(),
  ch: fc.integer({ min: 0, max: 0x10ffff }).filter((c) => c < 0xd800 || c >= 0xe000),
  small: fc.integer({ min: -128, max: 127 }),
  ratio: fc.float({ noNaN: true }),
  status: fc.oneof(fc.record({ tag: fc.constant('ok' as const), val: u32 }), fc.record({ tag: fc.constant('err' as const), val: str })),
  pair: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: -32768, max: 32767 })),
  raw: fc.uint8Array({ maxLength: 16 }),
});

const order: fc.Arbitrary<Order> = fc.record({
  id: fc.integer({ min: 0, max: 2 ** 52 }), ts: fc.integer({ min: 0, max: 2 ** 52 }), account: u32, price: fc.double({ noNaN: true }),
  qty: fc.double({ noNaN: true }), side: fc.integer({ min: 0, max: 1 }), flags: fc.integer({ min: 0, max: 15 }), venue: fc.integer({ min: 0, max: 65535 }),
  active: fc.boolean(), symbol: str, fills: fc.array(u32, { maxLength: 6 }),
});

/** Float fields come back as the f32 the layout stores. */
function f32(v: K.Request): K.Request {
  return { ...v, ratio: Math.fround(v.ratio), shape: v.shape.tag === 'circle' ? { tag: 'circle', val: Math.fround(v.shape.val) } : v.shape };
}

/** Sends `bytes` (written by `write` at the claimed offset) and waits for the peer's reply type. */
async function exchange(requests: SpscProducer, replies: SpscConsumer, n: number, write: (data: Uint8Array, off: number) => void): Promise<number> {
  const off = requests.claim(n, 1);
  assert.ok(off >= 0);
  write(requests.data, off);
  requests.commit();
  assert.ok(await replies.waitForData({ timeoutMs: 10_000 }), 'a reply in time');
  assert.ok(replies.read() >= 0);
  return replies.type;
}

/** Changes 1..4 random bytes of a valid message, biased toward its fixed part (pointers, tags). */
const mutation = fc.array(fc.record({ at: fc.nat(), fixed: fc.boolean(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 });
function mutate(data: Uint8Array, off: number, n: number, fixedSize: number, muts: Array<{ at: number; fixed: boolean; value: number }>): void {
  for (const m of muts) data[off + (m.fixed ? m.at % fixedSize : m.at % n)] = m.value;
}

/** Whether TypeScript's reader accepts the message (toValue reads every field); anything else thrown fails the test. */
function tsAccepts(read: () => unknown): boolean {
  try {
    read();
    return true;
  } catch (err) {
    if (!isRingwireError(err, 'ERR_MESSAGE_CORRUPT')) throw err;
    return false;
  }
}

test('TypeScript writes, C reads and answers, TypeScript reads the answer (fast-check)', async () => {
  if (!haveCc()) return;
  await scratch('c property', 120_000, async (s) => {
    const c = await startScratchEcho(s, compileC(s.dir, 'echo'), 1 << 16);
    const view = new K.RequestView();
    await fc.assert(fc.asyncProperty(request, async (generated) => {
      const v = structuredClone(generated); // fast-check builds null-prototype objects
      const type = await exchange(c.requests, c.replies, K.measureRequest(v), (data, off) => K.writeRequest(v, data, off));
      assert.is(type, 1);
      assert.equal(view.wrap(c.replies.data, c.replies.offset, c.replies.length).toValue(), echoed(f32(v)));
      c.replies.release();
    }), { seed, numRuns: 200 });
  });
});

test('fuzzed kitchen messages: C accepts exactly what TypeScript accepts, and survives the rest', async () => {
  if (!haveCc()) return;
  await scratch('c fuzz', 120_000, async (s) => {
    const c = await startScratchEcho(s, compileC(s.dir, 'echo'), 1 << 16);
    const view = new K.RequestView();
    const seen = { accepted: 0, refused: 0 };
    await fc.assert(fc.asyncProperty(request, mutation, async (v, muts) => {
      const n = K.measureRequest(v);
      let ts = false;
      const type = await exchange(c.requests, c.replies, n, (data, off) => {
        K.writeRequest(v, data, off, n);
        mutate(data, off, n, K.RequestView.SIZE, muts);
        ts = tsAccepts(() => new K.RequestView().wrap(data, off, n).toValue());
      });
      assert.is(type, ts ? 1 : 3, `C ${type === 1 ? 'accepted' : 'refused'} what TypeScript ${ts ? 'accepts' : 'refuses'}`);
      if (type === 1) view.wrap(c.replies.data, c.replies.offset, c.replies.length).toValue();
      seen[ts ? 'accepted' : 'refused']++;
      c.replies.release();
    }), { seed, numRuns: 400 });
    console.log(`  C fuzz: ${seen.accepted} mutated messages valid, ${seen.refused} refused by both`);
    assert.ok(seen.refused > 20 && seen.accepted > 20, 'the fuzzer reaches both outcomes');
  });
});

test('TypeScript writes, WebAssembly reads and answers in place; fuzzed orders: wasm accepts exactly what TypeScript accepts', async () => {
  const peer = await startWasmPeer(buildOrderEcho());
  try {
    await withTimeout('wasm property', 120_000, async () => {
      const view = new OrderView();
      await fc.assert(fc.asyncProperty(order, async (generated) => {
        const o = structuredClone(generated);
        assert.is(await exchange(peer.requests, peer.replies, measureOrder(o), (data, off) => writeOrder(o, data, off)), 1);
        assert.equal(view.wrap(peer.replies.data, peer.replies.offset, peer.replies.length).toValue(),
          { ...o, id: BigInt(o.id as number) + 1n, ts: BigInt(o.ts as number), price: o.price * 2, fills: [...o.fills].reverse() });
        peer.replies.release();
      }), { seed, numRuns: 200 });
      const seen = { accepted: 0, refused: 0 };
      await fc.assert(fc.asyncProperty(order, mutation, async (o, muts) => {
        const n = measureOrder(o);
        let ts = false;
        const type = await exchange(peer.requests, peer.replies, n, (data, off) => {
          writeOrder(o, data, off, n);
          mutate(data, off, n, OrderView.SIZE, muts);
          ts = tsAccepts(() => new OrderView().wrap(data, off, n).toValue());
        });
        assert.is(type, ts ? 1 : 3, `wasm ${type === 1 ? 'accepted' : 'refused'} what TypeScript ${ts ? 'accepts' : 'refuses'}`);
        seen[ts ? 'accepted' : 'refused']++;
        peer.replies.release();
      }), { seed, numRuns: 400 });
      console.log(`  wasm fuzz: ${seen.accepted} mutated orders valid, ${seen.refused} refused by both`);
      assert.ok(seen.refused > 20 && seen.accepted > 20, 'the fuzzer reaches both outcomes');
    });
  } finally {
    await peer.close();
  }
});

test.run();
