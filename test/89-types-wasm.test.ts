/**
 * WebAssembly as a peer: wasm/order-echo.ts (AssemblyScript, built with asc from npm) runs in a
 * worker on a shared WebAssembly.Memory that holds both rings. It reads typed orders in place
 * through the generated wasm/order.ts accessors and builds typed replies in place in the reply
 * ring; Node writes and reads with the generated TypeScript. Corrupt orders are refused, never
 * read out of bounds. Both sides sleep on Atomics doorbells in that memory between messages.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { native } from '../lib/native/native.js';
import { generate } from '../lib/types/index.js';
import { OrderView, measureOrder, sendOrder, writeOrder, type Order } from '../bench/codec-order.js';
import { WA, buildOrderEcho, startWasmPeer, startWasmWorker } from '../bench/peers/ringwire-wasm.js';
import { CONSUMER_BLOCK_SIZE, RingKind, producerBlockSize } from '../lib/ring/layout.js';
import { initConsumerBlock, initProducerBlock } from '../lib/ring/ring-memory.js';
import { Region } from '../lib/native/region.js';
import { EventFdDoorbell } from '../lib/native/doorbell-eventfd.js';
import { scratch, withTimeout } from './helpers/index.js';
import { spawnSocketPeer } from './helpers/ring-child.js';
import { mapOver, memoryAddress } from './types/wasm-map.js';

const src = (p: string): string => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

test('wasm/order.ts is what `ringwire gen --lang as` emits today', () => {
  assert.fixture(src('wasm/order.ts'), generate(src('bench/codec-order.wit'), { lang: 'as' }));
});

test('a wasm module answers typed orders in place, rings in its shared memory, sleeping between them', async () => {
  const wasm = buildOrderEcho();
  const peer = await startWasmPeer(wasm);
  try {
    await withTimeout('wasm echo', 60_000, async () => {
      const view = new OrderView();
      const next = async (): Promise<number> => {
        assert.ok(await peer.replies.waitForData({ timeoutMs: 10_000 }), 'a reply in time');
        assert.ok(peer.replies.read() >= 0);
        return peer.replies.type;
      };
      for (let i = 0; i < 100; i++) {
        const o: Order = { id: 1000 + i, ts: 2 ** 40 + i, account: i * 7, price: i / 4, qty: 3, side: i & 1, flags: i & 15, venue: 9, active: (i & 2) !== 0,
          symbol: ['ACME', 'Zürich', '', '日本株', 'x'.repeat(100)][i % 5]!, fills: Array.from({ length: i % 6 }, (_, k) => k * 10 + i) };
        assert.ok(sendOrder(peer.requests, o, 1));
        assert.is(await next(), 1);
        const v = view.wrap(peer.replies.data, peer.replies.offset, peer.replies.length).toValue();
        assert.equal(v, { ...o, id: BigInt(o.id as number) + 1n, ts: BigInt(o.ts as number), price: o.price * 2, fills: [...o.fills].reverse() });
        assert.is(peer.replies.length, measureOrder(o), 'the module sized its reply exactly');
        peer.replies.release();
      }
      // Corrupt orders: a symbol outside the message, bad UTF-8, a bad enum, a misaligned list.
      const o: Order = { id: 1, ts: 2, account: 3, price: 4, qty: 5, side: 0, flags: 0, venue: 0, active: false, symbol: 'ABCD', fills: [1] };
      const corruptions: Array<(dv: DataView, at: number, n: number) => void> = [
        (dv, at, n) => dv.setUint32(at + 48, n, true),
        (dv, at) => dv.setUint8(at + 64, 0xff),
        (dv, at) => dv.setUint8(at + 40, 2),
        (dv, at) => dv.setUint32(at + 56, dv.getUint32(at + 56, true) + 2, true),
        (dv, at) => dv.setUint32(at + 60, 0x40000000, true),
      ];
      for (const corrupt of corruptions) {
        const n = measureOrder(o);
        const at = peer.requests.claim(n, 1);
        writeOrder(o, peer.requests.data, at, n);
        corrupt(new DataView(peer.requests.data.buffer, peer.requests.data.byteOffset), at, n);
        peer.requests.commit();
        assert.is(await next(), 3, 'refused');
        peer.replies.release();
      }
      assert.ok(peer.requests.send(new Uint8Array(0), 2));
      assert.is(await next(), 2);
      const dv = new DataView(peer.replies.data.buffer, peer.replies.data.byteOffset + peer.replies.offset, 8);
      const handled = dv.getUint32(0, true);
      const parks = dv.getUint32(4, true);
      peer.replies.release();
      console.log(`  wasm peer: ${handled} orders, parked ${parks} times; Node rang it ${peer.requests.stats().doorbellsRung} times`);
      assert.is(handled, 105);
      assert.ok(parks >= 50, `the module slept between requests (${parks} parks)`);
      assert.is(await peer.done, 105);
    });
  } finally {
    await peer.close();
  }
});

test('a corrupt request ring stops the module with its error code, not a wild read', async () => {
  const peer = await startWasmPeer(buildOrderEcho());
  try {
    // Word 0 of the first record: present, with a length far past the ring.
    const words = new Uint32Array(peer.requests.data.buffer, peer.requests.data.byteOffset, 2);
    words[1] = 1;
    Atomics.store(words, 0, (0x80000000 | 0x100000) >>> 0);
    assert.is(await withTimeout('corrupt ring', 20_000, () => peer.done), 0xffffffff);
  } finally {
    await peer.close();
  }
});

test('across processes: the peer\'s sealed memfds mapped over the module\'s linear memory, eventfd doorbells', async () => {
  const wasm = buildOrderEcho();
  await scratch('wasm across processes', 90_000, async (s) => {
    const capacity = 1 << 16;
    const PAGE = 4096;
    const pages = (n: number): number => Math.ceil(n / PAGE) * PAGE;
    const memory = new WA.Memory({ initial: 64, maximum: 64, shared: true });
    const base = memoryAddress(memory, 3 << 20);
    const child = new URL('./types/wasm-process-child.js', import.meta.url).pathname;
    const { sock, inbox, exited, out: printed } = await spawnSocketPeer(s, 'wasm', process.execPath, (path) => [child, path, '50', String(capacity)]);
    const hello = await inbox.next(10_000);
    const [reqProducerBlock, , repConsumerBlock, repDataBell] = hello.fds as [number, number, number, number];
    s.defer(() => hello.fds.forEach((fd) => native().close(fd)));
    // Every block, ours and the peer's, becomes pages of the module's memory; the peer's read-only.
    const reqP = 1 << 20;
    const reqC = reqP + pages(producerBlockSize(capacity));
    const repP = reqC + PAGE;
    const repC = repP + pages(producerBlockSize(capacity));
    // Our blocks: the request ring's consumer block and the reply ring's producer block. As for any
    // process ring they end sealed with F_SEAL_FUTURE_WRITE, which also forbids *our* new writable
    // mappings: so they are mapped into the module's memory first, then sealed.
    const ownBlock = (name: string, side: 'producer' | 'consumer', at: number): Region => {
      const size = side === 'producer' ? producerBlockSize(capacity) : CONSUMER_BLOCK_SIZE;
      const region = Region.create(name, size);
      s.defer(() => region.close());
      if (side === 'producer') initProducerBlock({ buffer: region.buffer }, RingKind.Spsc, capacity);
      else initConsumerBlock({ buffer: region.buffer }, RingKind.Spsc, capacity);
      region.seal({ shrink: true, grow: true });
      mapOver(memory, base, at, region.fd, size, true);
      region.seal({ futureWrite: true, seal: true });
      return region;
    };
    const reqC_block = ownBlock('wasm-req-consumer', 'consumer', reqC);
    const repP_block = ownBlock('wasm-rep-producer', 'producer', repP);
    const reqDataBell = EventFdDoorbell.create();
    s.defer(() => reqDataBell.close());
    const repSpaceBell = EventFdDoorbell.create();
    s.defer(() => repSpaceBell.close());
    sock.send(Buffer.from('ok'), [reqC_block.fd, reqDataBell.fd, repP_block.fd, repSpaceBell.fd]);
    mapOver(memory, base, reqP, reqProducerBlock, producerBlockSize(capacity), false);
    mapOver(memory, base, repC, repConsumerBlock, PAGE, false);
    const words = new Uint32Array(memory.buffer);
    assert.is(words[reqP >> 2], 0x50525752, "the peer's producer block shows through the module's memory");
    assert.is(words[reqC >> 2], 0x43525752, 'our consumer block too');
    const worker = await startWasmWorker(wasm, memory, [reqP, reqC, 0, repP, repC, 0, 0], { kind: 'eventfd', parkFd: reqDataBell.fd, ringFd: repDataBell });
    s.defer(() => worker.terminate());
    assert.is(await withTimeout('wasm serve', 60_000, () => worker.done), 50);
    assert.is(await exited, 0);
    console.log(`  child: ${printed().trim()}`);
    assert.match(printed(), /^ok 50 /);
  });
});

test.run();
