/**
 * C as a first-class peer: include/ringwire.h's own unit tests (built with the system compiler,
 * plain and with ASan/UBSan where available), and a C service in another process that exchanges
 * typed kitchen messages with Node in both directions over SPSC rings in sealed memfds, sleeping
 * on the eventfd doorbell between requests.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FdServer } from '../lib/native/unix-socket.js';
import { attachMpscConsumer, attachMpscProducer, createMpscConsumerHalf, createMpscProducerHalf } from '../lib/process/process-ring.js';
import { native } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { scratch } from './helpers/index.js';
import { spawnSocketPeer } from './helpers/ring-child.js';
import { compileC, haveCc, startScratchEcho } from './types/c-peer.js';
import * as K from './types/kitchen.js';
import { echoed, sample } from './types/sample.js';


test('include/ringwire.h unit tests (C, system compiler)', async () => {
  if (!haveCc()) return;
  await scratch('c unit', 120_000, async (s) => {
    const out = execFileSync(compileC(s.dir, 'unit'), { encoding: 'utf8' });
    process.stdout.write(out.replace(/^/gm, '  '));
    assert.match(out, /^8 passed, 0 failed$/m);
    const san = spawnSync('cc', ['-fsanitize=address,undefined', '-x', 'c', '-', '-o', `${s.dir}/probe`], { input: 'int main(void){return 0;}' });
    if (san.status === 0) {
      const checked = execFileSync(compileC(s.dir, 'unit', ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-g']), { encoding: 'utf8' });
      assert.match(checked, /^8 passed, 0 failed$/m, 'under ASan/UBSan');
    } else {
      console.log('  (no sanitizer runtime: ASan/UBSan run skipped; the plain run above still counts)');
    }
  });
});

test('a C service answers typed requests across processes, both directions, sleeping between them', async () => {
  if (!haveCc()) return;
  await scratch('c echo', 60_000, async (s) => {
    const c = await startScratchEcho(s, compileC(s.dir, 'echo'));
    const reply = new K.RequestView();
    const values: K.Request[] = [
      sample,
      { ...sample, name: 'plain ascii', nick: undefined, status: { tag: 'ok', val: 7 }, shape: { tag: 'circle', val: 3.5 }, tags: [], items: [] },
      { ...sample, id: 0xffffffffffffffffn, values: [0x40000000, -1], raw: new Uint8Array(300).fill(7), shape: { tag: 'empty' } },
    ];
    for (let i = 0; i < 60; i++) {
      const v = values[i % values.length]!;
      assert.ok(K.sendRequest(c.requests, v, 1));
      // Each reply is awaited before the next request, so the C side empties its ring and parks
      // on its eventfd every time; Node parks on its own eventfd via the libuv loop.
      assert.ok(await c.replies.waitForData({ timeoutMs: 10_000 }), 'reply in time');
      assert.ok(c.replies.read() >= 0);
      assert.is(c.replies.type, 1);
      assert.equal(reply.wrap(c.replies.data, c.replies.offset, c.replies.length).toValue(), echoed(v));
      assert.is(c.replies.length, K.measureRequest(echoed(v) as K.Request), 'C claimed exactly the canonical size');
      c.replies.release();
    }
    // A corrupt request (a string pointing outside it) is refused by the C side's validation.
    const n = K.measureRequest(sample);
    const off = c.requests.claim(n, 1);
    K.writeRequest(sample, c.requests.data, off, n);
    new DataView(c.requests.data.buffer, c.requests.data.byteOffset).setUint32(off + 8, n, true);
    c.requests.commit();
    assert.ok(await c.replies.waitForData({ timeoutMs: 10_000 }));
    assert.ok(c.replies.read() >= 0);
    assert.is(c.replies.type, 3, 'the C peer reports the corrupt request');
    c.replies.release();
    assert.ok(c.requests.send(new Uint8Array(0), 2));
    assert.ok(await c.replies.waitForData({ timeoutMs: 10_000 }));
    c.replies.read();
    const [requests, parks] = Buffer.from(c.replies.view()).toString().split(' ').map(Number) as [number, number];
    c.replies.release();
    console.log(`  C peer: ${requests} requests, parked ${parks} times; Node: ${c.replies.stats().parks} parks, ${c.requests.stats().doorbellsRung} doorbells rung`);
    assert.is(requests, 61);
    assert.ok(parks >= 30, `the C side slept between requests (${parks} parks)`);
    assert.ok(c.requests.stats().doorbellsRung >= 30, 'Node rang the C side awake');
    assert.is(await c.exited, 0);
  });
});

test('C MPSC producers in other processes feed a Node MPSC consumer; one dies holding a reservation', async () => {
  if (!haveCc()) return;
  await scratch('c mpsc', 90_000, async (s) => {
    const binary = compileC(s.dir, 'mpsc-producer');
    const half = createMpscConsumerHalf(1 << 12, 'c-mpsc');
    const consumer = attachMpscConsumer(half, { abandonTimeoutMs: 100 });
    s.defer(() => consumer.close());
    const path = join(s.dir, 'mpsc.sock');
    const server = FdServer.listen(path, { type: 'seqpacket' });
    s.defer(() => server.close());
    server.on('connection', (sock) => {
      s.defer(() => sock.close());
      sock.once('message', (_data, fds) => consumer.addProducer(fds[0]!));
      sock.send(Buffer.from('rwm0'), half.fds);
    });
    const run = (...args: string[]): Promise<number | null> => {
      const child = s.children.add(spawn(binary, [path, ...args], { stdio: ['ignore', 'inherit', 'inherit'] }));
      return new Promise((resolve) => child.once('exit', resolve));
    };
    // The first producer reserves the head of the ring and exits without committing.
    assert.is(await run('9', '0', 'abandon'), 0);
    const COUNT = 300;
    const exits = [run('1', String(COUNT)), run('2', String(COUNT))];
    const view = new K.RequestView();
    const next = [0, 0, 0];
    let received = 0;
    while (received < 2 * COUNT) {
      assert.ok(await consumer.ring.waitForData({ timeoutMs: 10_000 }), `message ${received} in time`);
      while (consumer.ring.read() >= 0) {
        const v = view.wrap(consumer.ring.data, consumer.ring.offset, consumer.ring.length).toValue();
        const who = Number(BigInt(v.id) >> 32n);
        const i = Number(BigInt(v.id) & 0xffffffffn);
        assert.is(v.name, `producer-${who}`);
        assert.is(i, next[who], `producer ${who} in order`);
        assert.equal(v.values, [i, -i]);
        next[who]!++;
        received++;
      }
      consumer.ring.release();
    }
    assert.equal(await Promise.all(exits), [0, 0]);
    assert.is(consumer.ring.stats().abandoned, 1, 'the dead producer\'s reservation was skipped');
    console.log(`  ${received} typed messages from two C producers, 1 abandoned reservation skipped, ${consumer.ring.stats().parks} parks`);
  });
});

test('Node MPSC producers feed a C MPSC consumer; one leaves a reservation uncommitted and loses it', async () => {
  if (!haveCc()) return;
  await scratch('c mpsc consumer', 90_000, async (s) => {
    const binary = compileC(s.dir, 'mpsc-consumer');
    const { sock, inbox, exited, out: printed } = await spawnSocketPeer(s, 'mpscq', binary, (path) => [path, String(1 << 12)]);
    const hello = await inbox.next(10_000);
    assert.is(hello.data.toString(), 'rwq1');
    const copies = hello.fds.map((fd) => native().dup(fd));
    const liveHalf = createMpscProducerHalf();
    const live = attachMpscProducer(liveHalf, hello.fds);
    s.defer(() => live.close());
    const dead = attachMpscProducer(createMpscProducerHalf(), copies);
    s.defer(() => dead.close());
    sock.send(Buffer.from('rwq2'), liveHalf.fds);
    // One producer reserves the head and never commits (as if it died there).
    const held = dead.ring.claim(K.measureRequest(sample), 1);
    assert.ok(held >= 0);
    const COUNT = 400;
    for (let i = 0; i < COUNT; i++) {
      const v = { ...sample, id: BigInt(i) };
      while (!K.sendRequest(live.ring, v, 1)) assert.ok(await live.ring.waitForSpace(K.measureRequest(v), { timeoutMs: 10_000 }), 'space in time');
    }
    while (!live.ring.send(new Uint8Array(0), 2)) await live.ring.waitForSpace(0, { timeoutMs: 10_000 });
    assert.is(await exited, 0);
    const [valid, invalid, abandoned, parks] = printed().trim().split(' ').map(Number) as [number, number, number, number];
    console.log(`  C consumer: ${valid} valid, ${invalid} invalid, ${abandoned} abandoned skipped, ${parks} parks; Node producer waited for space ${live.ring.stats().fullWaits} times`);
    assert.equal([valid, invalid, abandoned], [COUNT, 0, 1]);
    assert.throws(() => dead.ring.commit(), (e: unknown) => isRingwireError(e, 'ERR_TIMEOUT'), 'the late commit is refused');
  });
});

test.run();
