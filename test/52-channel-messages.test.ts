// Channel semantics between two endpoints over shared memory: ordered messages with back-pressure,
// zero-copy claim/commit and in-place receive, the async iterator, requests (correlation, timeout,
// abort, remote errors), graceful close that loses nothing, stats, and both polling modes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen, type Channel } from '../lib/index.js';
import { channelPair } from './helpers/channel-pair.js';
import { Children, prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';
import { startPeer } from './workers/channel-spawn.js';

const run = requireOrSkip('native addon', addonAvailable());
const seed = run ? testSeed() : 0;

async function rejects(p: Promise<unknown>, check: (e: unknown) => boolean): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e ?? new Error('rejected with nothing'));
  assert.ok(err !== undefined, 'expected a rejection');
  assert.ok(check(err), String(err));
}

function message(i: number, len: number): Buffer {
  const m = Buffer.alloc(len);
  for (let k = 0; k < len; k++) m[k] = (i * 31 + k) & 0xff;
  if (len >= 4) m.writeUInt32LE(i, 0);
  return m;
}

if (run) {
  for (const poll of ['adaptive', 'doorbell', 'busy'] as const) {
    test(`${poll}: messages arrive in order and intact through a small ring, the sender waiting for space`, () => withTimeout('order', 20000, async () => {
      const { a, b, done } = await channelPair({ poll, sendRingBytes: 4096, receiveRingBytes: 4096 });
      const rnd = prng(seed);
      const lens = Array.from({ length: 3000 }, () => rnd.int(0, 1500));
      let next = 0;
      const all = new Promise<void>((resolve, reject) => {
        a.on('message', (m) => {
          try {
            assert.ok(Buffer.from(m).equals(message(next, lens[next]!)), `message ${next}`);
          } catch (err) {
            reject(err);
          }
          if (++next === lens.length) resolve();
        });
      });
      for (let i = 0; i < lens.length; i++) await b.send(message(i, lens[i]!));
      await all;
      assert.ok(b.stats().sent.fullWaits > 0, 'the ring filled and the sender waited');
      assert.is(a.stats().received.messages, lens.length);
      await done();
    }));

    test(`${poll}: requests are matched to their responses under concurrency`, () => withTimeout('requests', 20000, async () => {
      const { a, b, done } = await channelPair({ poll });
      const rnd = prng(seed + 1);
      a.handle(async (req) => {
        await new Promise((r) => setTimeout(r, rnd.int(0, 3)));
        return Buffer.concat([Buffer.from('re:'), req]);
      });
      const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => b.request(Buffer.from(`q${i}`))));
      replies.forEach((r, i) => assert.is(r.toString(), `re:q${i}`));
      assert.equal(b.stats().requests.answered, 500);
      assert.equal(a.stats().requests.served, 500);
      await done();
    }));
  }

  test('zero-copy: claim/commit writes in place and receive hands out a view of the ring', () => withTimeout('zero-copy', 5000, async () => {
    const { a, b, done } = await channelPair();
    const got = new Promise<[boolean, string]>((resolve) => a.once('message', (m) => resolve([m.buffer instanceof SharedArrayBuffer, Buffer.from(m).toString()])));
    const view = b.claim(5)!;
    assert.ok(view.buffer instanceof SharedArrayBuffer, 'the claim is ring memory');
    view.set(Buffer.from('hello'));
    b.commit();
    assert.equal(await got, [true, 'hello']);
    const slow = await b.claimAsync(3);
    slow.set([1, 2, 3]);
    b.commit();
    await done();
  }));

  test('requests: timeout, abort, a throwing handler, and a late answer that is ignored', () => withTimeout('request errors', 10000, async () => {
    const { a, b, done } = await channelPair();
    const gates: Array<() => void> = [];
    a.handle((req) => {
      const s = req.toString();
      if (s === 'throw') throw new Error('handler says no');
      if (s === 'hold') return new Promise((resolve) => gates.push(() => resolve(Buffer.from('late'))));
      return req;
    });
    const e1 = await b.request(Buffer.from('hold'), { timeoutMs: 50 }).then(() => null, (e) => e);
    assert.ok(isRingwireError(e1, 'ERR_TIMEOUT'), String(e1));
    const ac = new AbortController();
    const p = b.request(Buffer.from('hold'), { signal: ac.signal });
    ac.abort(new Error('user gave up'));
    const e2 = await p.then(() => null, (e) => e);
    assert.ok(isRingwireError(e2, 'ERR_ABORTED'), String(e2));
    const e3 = await b.request(Buffer.from('throw')).then(() => null, (e) => e);
    assert.ok(isRingwireError(e3, 'ERR_REMOTE'), String(e3));
    assert.match(e3.message, /handler says no/);
    for (const g of gates) g();
    assert.is((await b.request(Buffer.from('fine'))).toString(), 'fine', 'late answers did not confuse later requests');
    const s = b.stats().requests;
    assert.equal([s.timedOut, s.aborted], [1, 1]);
    const e4 = await b.request(Buffer.from('x'), { signal: AbortSignal.abort() }).then(() => null, (e) => e);
    assert.ok(isRingwireError(e4, 'ERR_ABORTED'));
    await done();
  }));

  test('requests wait for a handler attached late instead of failing', () => withTimeout('late handler', 5000, async () => {
    const { a, b, done } = await channelPair();
    const p = b.request(Buffer.from('early'));
    await new Promise((r) => setTimeout(r, 30));
    a.handle((r) => r);
    assert.is((await p).toString(), 'early');
    await done();
  }));

  test('graceful close: everything sent before close() arrives, then end, then a clean close on both sides', () => withTimeout('close', 10000, async () => {
    const { a, b, done } = await channelPair({ sendRingBytes: 4096, receiveRingBytes: 4096 });
    const received: number[] = [];
    a.on('message', (m) => received.push(Buffer.from(m).readUInt32LE(0)));
    const ended = new Promise<void>((r) => a.once('end', r));
    const aClosed = a.whenClosed();
    const sends = Array.from({ length: 2000 }, (_, i) => b.send(message(i, 64)));
    await b.close();
    await Promise.all(sends);
    await ended;
    assert.is(await aClosed, undefined, 'the server side closed cleanly');
    assert.is(received.length, 2000);
    assert.ok(received.every((v, i) => v === i));
    const e = await b.send(Buffer.from('late')).then(() => null, (err) => err);
    assert.ok(isRingwireError(e, 'ERR_RING_CLOSED'));
    await done();
  }));

  test('async iterator: copies in order, back-pressure while unread, ends with the peer', () => withTimeout('iterator', 10000, async () => {
    const { a, b, done } = await channelPair({ sendRingBytes: 4096, receiveRingBytes: 4096 });
    const N = 1000;
    const sender = (async () => {
      for (let i = 0; i < N; i++) await b.send(message(i, 100));
      await b.end();
    })();
    let i = 0;
    for await (const m of a) {
      assert.ok(m.equals(message(i, 100)), `message ${i}`);
      if (i === 10) {
        // Stall the reader: the sender must end up waiting, not the heap growing.
        await new Promise((r) => setTimeout(r, 50));
        assert.ok(b.stats().sent.fullWaits > 0, 'sender waited while the iterator stalled');
      }
      i++;
    }
    await sender;
    assert.is(i, N);
    await done();
  }));

  test('stats: messages and bytes; messages sent in one synchronous run share one commit and at most one doorbell', () => withTimeout('stats', 5000, async () => {
    // 'doorbell': the default ('adaptive') may be polling between the sends, and then rings no bell.
    const { a, b, done } = await channelPair({ poll: 'doorbell' });
    let n = 0;
    let wake!: () => void;
    a.on('message', () => { if (++n === 100 || n === 110) wake(); });
    let all = new Promise<void>((r) => { wake = r; });
    for (let i = 0; i < 100; i++) assert.ok(b.trySend(Buffer.alloc(10)));
    await all;
    let s = b.stats().sent;
    assert.is(s.messages, 100);
    assert.is(s.bytes, 1000);
    assert.is(s.doorbellsRung + s.doorbellsSuppressed, 1, 'one commit for the whole run');
    all = new Promise<void>((r) => { wake = r; });
    for (let i = 0; i < 10; i++) await b.send(Buffer.alloc(10));
    await all;
    s = b.stats().sent;
    assert.is(s.doorbellsRung + s.doorbellsSuppressed, 11, 'each awaited send is its own commit');
    assert.ok(s.doorbellsRung >= 1, 'the sleeping receiver was woken at least once');
    assert.is(a.stats().received.bytes, 1100);
    await done();
  }));

  test('messages that arrive before anyone listens are kept, in order, and do not hold up responses behind them', () => withTimeout('unclaimed', 5000, async () => {
    const { a, b, done } = await channelPair();
    a.handle((r) => r);
    for (let i = 0; i < 5; i++) await a.send(message(i, 16));
    assert.is((await b.request(Buffer.from('behind'))).toString(), 'behind');
    const got: number[] = [];
    const all = new Promise<void>((r) => b.on('message', (m) => { got.push(Buffer.from(m).readUInt32LE(0)); if (got.length === 6) r(); }));
    await a.send(message(5, 16));
    await all;
    assert.equal(got, [0, 1, 2, 3, 4, 5]);
    await done();
  }));

  test('responseSpinUs: a requester polling for answers from a sleeping peer in another process loses none, then sleeps again', () => withTimeout('hybrid', 20000, async () => {
    const children = new Children();
    const address = `@ringwire-test-52-hybrid-${process.pid}`;
    try {
      await startPeer(children, { role: 'serve', address });
      const ch = await connect(address, { responseSpinUs: 2000 });
      for (let i = 0; i < 300; i++) assert.is((await ch.request(Buffer.from(`h${i}`))).toString(), `h${i}`);
      // After the spins the doorbell is armed again: an answer that takes longer than the spin still arrives.
      const slow = await connect(address, { responseSpinUs: 1 });
      const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => slow.request(Buffer.from(`s${i}`))));
      replies.forEach((r, i) => assert.is(r.toString(), `s${i}`));
      await ch.close();
      await slow.close();
    } finally {
      await children.killAll();
    }
  }));

  test('bad input is a typed error', () => withTimeout('bad input', 5000, async () => {
    const { b, done } = await channelPair({ sendRingBytes: 4096 });
    await rejects(b.send('text' as unknown as Uint8Array), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
    await rejects(b.send(new Uint8Array(5000)), (e: unknown) => isRingwireError(e, 'ERR_RING_TOO_LARGE'));
    await rejects(b.request(new Uint8Array(1), { timeoutMs: -1 }), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'));
    await rejects(connect('@x', { sendRingBytes: 1000 }), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'));
    await rejects(connect('ftp://x'), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
    await rejects(listen('@y', { maxRingBytes: 3 }), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'));
    await done();
  }));
}

test.run();
