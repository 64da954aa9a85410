import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { prng, testSeed } from './helpers/index.js';
import {
  GuestMemory, SplitQueueDevice, SplitQueueDriver, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY, splitQueueLayout,
  vringNeedEvent, type DescriptorChain, type GuestBuffer,
} from '../virtio/index.js';

const GPA_BASE = 0x40000;
const UVA_BASE = 0x7f1200000000n;
const MEM_SIZE = 1 << 20;
const DATA = GPA_BASE + 0x20000; // data buffers and indirect tables live from here on
const IND = DATA + 0x1000; // hand-built indirect tables

interface Setup {
  mem: GuestMemory;
  bytes: Uint8Array;
  driver: SplitQueueDriver;
  device: SplitQueueDevice;
  layout: ReturnType<typeof splitQueueLayout>;
}

function setup(n: number, opts: { eventIdx?: boolean; indirect?: boolean } = {}): Setup {
  const bytes = new Uint8Array(new SharedArrayBuffer(MEM_SIZE));
  const mem = new GuestMemory([{ guestPhysAddr: GPA_BASE, size: MEM_SIZE, userspaceAddr: UVA_BASE, bytes }]);
  const layout = splitQueueLayout(n, GPA_BASE);
  const driver = new SplitQueueDriver({ memory: mem, size: n, addresses: layout, eventIdx: opts.eventIdx });
  // The device gets the ring addresses the way vhost-user sends them: as front-end user addresses.
  const toUva = (gpa: bigint): bigint => gpa - BigInt(GPA_BASE) + UVA_BASE;
  const device = new SplitQueueDevice({
    memory: mem, size: n, eventIdx: opts.eventIdx, indirect: opts.indirect, ringAddressSpace: 'user-virtual',
    addresses: { desc: toUva(layout.desc), avail: toUva(layout.avail), used: toUva(layout.used) },
  });
  return { mem, bytes, driver, device, layout };
}

function concat(views: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(views.reduce((s, v) => s + v.byteLength, 0));
  let o = 0;
  for (const v of views) { out.set(v, o); o += v.byteLength; }
  return out;
}

function expectBroken(fn: () => unknown, what: string, pattern?: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_VIRTQUEUE_BROKEN'), `${what}: expected ERR_VIRTQUEUE_BROKEN, got ${String(err)}`);
    if (pattern) assert.match((err as Error).message, pattern, what);
    return;
  }
  assert.unreachable(`${what}: did not throw`);
}

test('random chains round-trip driver -> device -> driver, with and without indirect tables', () => {
  const rnd = prng(testSeed());
  for (const n of [1, 8, 64]) {
    for (const eventIdx of [false, true]) {
      const s = setup(n, { eventIdx });
      for (let round = 0; round < 40; round++) {
        // A batch of chains with private data areas, completed in a random order.
        let cursor = DATA;
        const sent = new Map<number, { out: Uint8Array; inLens: number[]; inAddrs: number[] }>();
        const batch = rnd.int(1, n);
        for (let c = 0; c < batch; c++) {
          const indirect = rnd.next() < 0.4;
          const maxBufs = indirect ? n : Math.max(1, Math.min(4, s.driver.numFree));
          const total = rnd.int(1, maxBufs);
          const nOut = rnd.int(0, total);
          const outs: GuestBuffer[] = [];
          const ins: GuestBuffer[] = [];
          const outData: Uint8Array[] = [];
          for (let i = 0; i < total; i++) {
            const len = rnd.int(0, 48);
            if (i < nOut) {
              const d = rnd.bytes(len);
              s.bytes.set(d, cursor - GPA_BASE);
              outData.push(d);
              outs.push({ addr: cursor, len });
            } else {
              ins.push({ addr: BigInt(cursor), len });
            }
            cursor += len;
          }
          const table = indirect ? cursor + (16 - (cursor % 16)) : undefined;
          if (table !== undefined) cursor = table + 16 * total;
          const head = s.driver.add(outs, ins, table === undefined ? {} : { indirectTable: table });
          if (head === null) break;
          sent.set(head, { out: concat(outData), inLens: ins.map((b) => b.len), inAddrs: ins.map((b) => Number(b.addr)) });
        }
        s.driver.publish();
        const popped: DescriptorChain[] = [];
        for (let chain = s.device.pop(); chain; chain = s.device.pop()) popped.push(chain);
        assert.is(popped.length, sent.size, 'the device sees every published chain');
        const written = new Map<number, Uint8Array>();
        for (const chain of popped) {
          const want = sent.get(chain.head);
          assert.ok(want, `head ${chain.head} was sent`);
          assert.equal(concat(chain.readable), want!.out, 'readable bytes arrive intact');
          assert.equal(chain.writable.map((v) => v.byteLength), want!.inLens);
          const fill = rnd.bytes(chain.writableBytes);
          let o = 0;
          for (const v of chain.writable) { v.set(fill.subarray(o, o + v.byteLength)); o += v.byteLength; }
          written.set(chain.head, fill);
        }
        for (let i = popped.length - 1; i > 0; i--) {
          const j = rnd.int(0, i);
          [popped[i], popped[j]] = [popped[j]!, popped[i]!];
        }
        for (const chain of popped) s.device.pushUsed(chain.head, chain.writableBytes);
        let got = 0;
        for (let u = s.driver.popUsed(); u; u = s.driver.popUsed()) {
          const want = sent.get(u.id)!;
          const fill = written.get(u.id)!;
          assert.is(u.len, fill.byteLength);
          const back = concat(want.inAddrs.map((a, i) => s.bytes.subarray(a - GPA_BASE, a - GPA_BASE + want.inLens[i]!)));
          assert.equal(back, fill, 'writable bytes come back to the driver');
          got++;
        }
        assert.is(got, popped.length);
        assert.is(s.driver.numFree, n, 'every descriptor is free again');
        assert.is(s.device.inFlight, 0);
      }
    }
  }
});

test('u16 indices wrap: 70000 round trips through a 4-entry queue', () => {
  const s = setup(4, { eventIdx: true });
  for (let i = 0; i < 70000; i++) {
    const head = s.driver.add([{ addr: DATA, len: 4 }], [{ addr: DATA + 64, len: 8 }]);
    assert.ok(head !== null);
    s.driver.publish();
    const chain = s.device.pop()!;
    s.device.pushUsed(chain.head, 3);
    const used = s.driver.popUsed()!;
    if (used.id !== head || used.len !== 3) assert.unreachable(`round ${i}: got ${JSON.stringify(used)}`);
  }
  assert.is(s.device.lastAvailIndex, 70000 & 0xffff);
  assert.is(s.device.usedIndex, 70000 & 0xffff);
});

test('vringNeedEvent matches a direct walk of [old, new) modulo 2^16', () => {
  const rnd = prng(testSeed());
  const direct = (event: number, next: number, old: number): boolean => {
    for (let i = old; i !== next; i = (i + 1) & 0xffff) if (i === event) return true;
    return false;
  };
  for (let k = 0; k < 20000; k++) {
    const old = rnd.int(0, 0xffff);
    const next = (old + rnd.int(0, 300)) & 0xffff;
    const event = rnd.next() < 0.5 ? (old + rnd.int(-5, 305)) & 0xffff : rnd.int(0, 0xffff);
    if (vringNeedEvent(event, next, old) !== direct(event, next, old)) assert.unreachable(`event ${event} new ${next} old ${old}`);
  }
});

test('used-buffer notifications follow used_event (EVENT_IDX) and NO_INTERRUPT (without)', () => {
  const rnd = prng(testSeed());
  const s = setup(16, { eventIdx: true });
  const view = new DataView(s.bytes.buffer);
  const usedEventOff = Number(s.layout.avail) - GPA_BASE + 4 + 2 * 16;
  let signalled = 0;
  let first = true;
  for (let round = 0; round < 3000; round++) {
    const k = rnd.int(0, 5);
    for (let i = 0; i < k; i++) s.driver.add([], [{ addr: DATA, len: 8 }]);
    s.driver.publish();
    for (let c = s.device.pop(); c; c = s.device.pop()) s.device.pushUsed(c.head, 0);
    // The driver chooses used_event freely; the device's answer must match a direct walk.
    const event = rnd.next() < 0.7 ? (signalled + rnd.int(0, 8)) & 0xffff : rnd.int(0, 0xffff);
    view.setUint16(usedEventOff, event, true);
    const now = s.device.usedIndex;
    let expected = first;
    for (let i = signalled; i !== now; i = (i + 1) & 0xffff) if (i === event) expected = true;
    assert.is(s.device.shouldNotify(), expected, `round ${round}: event ${event} in [${signalled}, ${now})`);
    first = false;
    signalled = now;
    while (s.driver.popUsed());
  }
  const f = setup(8, { eventIdx: false });
  const flagsOff = Number(f.layout.avail) - GPA_BASE;
  f.driver.add([{ addr: DATA, len: 1 }], []);
  f.driver.publish();
  f.device.pushUsed(f.device.pop()!.head, 0);
  assert.is(f.device.shouldNotify(), true);
  f.driver.disableUsedNotifications();
  assert.is(new DataView(f.bytes.buffer).getUint16(flagsOff, true), VIRTQ_AVAIL_F_NO_INTERRUPT);
  assert.is(f.device.shouldNotify(), false);
  assert.is(f.driver.enableUsedNotifications(), true, 'an entry is already waiting');
  assert.is(f.device.shouldNotify(), true);
});

test('kick suppression: avail_event and NO_NOTIFY are published and the driver obeys them', () => {
  for (const eventIdx of [false, true]) {
    const s = setup(8, { eventIdx });
    const dv = new DataView(s.bytes.buffer);
    const usedOff = Number(s.layout.used) - GPA_BASE;
    const availEventOff = usedOff + 4 + 8 * 8;
    assert.is(s.driver.add([{ addr: DATA, len: 1 }], []) !== null, true);
    assert.is(s.driver.publish(), true, 'first buffer: the device asked for a kick');
    s.device.disableKickNotifications();
    assert.is(dv.getUint16(usedOff, true), VIRTQ_USED_F_NO_NOTIFY);
    s.device.pushUsed(s.device.pop()!.head, 0);
    s.driver.popUsed();
    s.driver.add([{ addr: DATA, len: 1 }], []);
    // Without EVENT_IDX the flag stops the kick; with it, avail_event stayed at 0 (pop did not advance
    // it while disabled), and moving idx from 1 to 2 does not cross it.
    assert.is(s.driver.publish(), false, `eventIdx=${eventIdx}: no kick while the device polls`);
    assert.is(s.device.enableKickNotifications(), true, 'the re-check finds the buffer added meanwhile');
    assert.is(dv.getUint16(usedOff, true), 0);
    assert.is(dv.getUint16(availEventOff, true), 1, 'avail_event names the next entry the device reads');
    s.device.pushUsed(s.device.pop()!.head, 0);
    assert.is(dv.getUint16(availEventOff, true), 2, 'pop advances avail_event (QEMU 7.2 relies on it)');
    assert.is(s.device.enableKickNotifications(), false);
    s.driver.popUsed();
    s.driver.add([{ addr: DATA, len: 1 }], []);
    assert.is(s.driver.publish(), true, 'kick once notifications are back');
  }
});

test('base index: a new device resumes at lastAvailIndex and the used idx left in memory', () => {
  const s = setup(8);
  for (let i = 0; i < 5; i++) s.driver.add([{ addr: DATA, len: 2 }], []);
  s.driver.publish();
  for (let i = 0; i < 3; i++) s.device.pushUsed(s.device.pop()!.head, 0);
  const base = s.device.lastAvailIndex;
  assert.is(base, 3);
  const resumed = new SplitQueueDevice({ memory: s.mem, size: 8, addresses: s.layout, base });
  assert.is(resumed.usedIndex, 3);
  assert.is(resumed.pending(), 2);
  resumed.pushUsed(resumed.pop()!.head, 0);
  resumed.pushUsed(resumed.pop()!.head, 0);
  assert.is(resumed.pop(), null);
  let n = 0;
  while (s.driver.popUsed()) n++;
  assert.is(n, 5);
});

test('maxChainLength caps the buffers of a chain, indirect ones included', () => {
  const s = setup(8);
  const device = new SplitQueueDevice({ memory: s.mem, size: 8, addresses: s.layout, maxChainLength: 3 });
  s.driver.add([{ addr: DATA, len: 1 }, { addr: DATA, len: 1 }], [{ addr: DATA, len: 1 }], { indirectTable: IND });
  s.driver.add([{ addr: DATA, len: 1 }, { addr: DATA, len: 1 }], [{ addr: DATA, len: 1 }, { addr: DATA, len: 1 }], { indirectTable: IND + 64 });
  s.driver.publish();
  assert.is(device.pop()!.readable.length, 2, 'three buffers pass');
  expectBroken(() => device.pop(), 'four buffers', /more than 3 buffers/);
});

test('device-side misuse is a typed argument error, not a broken queue', () => {
  const s = setup(8);
  s.driver.add([], [{ addr: DATA, len: 8 }]);
  s.driver.publish();
  const c = s.device.pop()!;
  try { s.device.pushUsed(c.head + 1, 0); assert.unreachable(); } catch (e) { assert.ok(isRingwireError(e, 'ERR_INVALID_ARG')); }
  try { s.device.pushUsed(c.head, 9); assert.unreachable(); } catch (e) { assert.ok(isRingwireError(e, 'ERR_OUT_OF_RANGE')); }
  assert.is(s.device.broken, undefined);
  s.device.pushUsed(c.head, 8);
  assert.equal(s.driver.popUsed(), { id: c.head, len: 8 });
});

// Hand-built malformed chains: each must break the queue with a reason, and stay broken.
function rawDesc(s: Setup, table: number, i: number, addr: bigint | number, len: number, flags: number, next: number): void {
  const dv = new DataView(s.bytes.buffer);
  const off = table - GPA_BASE + 16 * i;
  dv.setBigUint64(off, BigInt(addr), true);
  dv.setUint32(off + 8, len, true);
  dv.setUint16(off + 12, flags, true);
  dv.setUint16(off + 14, next, true);
}
function rawAvail(s: Setup, n: number, heads: number[], idx = heads.length): void {
  const dv = new DataView(s.bytes.buffer);
  const off = Number(s.layout.avail) - GPA_BASE;
  heads.forEach((h, i) => dv.setUint16(off + 4 + 2 * (i % n), h, true));
  dv.setUint16(off + 2, idx, true);
}

const cases: Array<[string, RegExp, (s: Setup, desc: number) => void, { indirect?: boolean }?]> = [
  ['a loop in the ring table', /more than the 8 descriptors of its ring table/, (s, d) => { rawDesc(s, d, 0, DATA, 4, 1, 1); rawDesc(s, d, 1, DATA, 4, 1, 0); rawAvail(s, 8, [0]); }],
  ['a self-loop', /a loop/, (s, d) => { rawDesc(s, d, 3, DATA, 4, 1, 3); rawAvail(s, 8, [3]); }],
  ['next past the table', /links to descriptor 9/, (s, d) => { rawDesc(s, d, 0, DATA, 4, 1, 9); rawAvail(s, 8, [0]); }],
  ['head past the table', /names head 8/, (s) => rawAvail(s, 8, [8])],
  ['avail idx more than n ahead', /9 entries ahead/, (s) => rawAvail(s, 8, [], 9)],
  ['buffer outside memory', /outside guest memory/, (s, d) => { rawDesc(s, d, 0, GPA_BASE + MEM_SIZE - 2, 4, 0, 0); rawAvail(s, 8, [0]); }],
  ['buffer past 2^64', /outside guest memory/, (s, d) => { rawDesc(s, d, 0, 0xfffffffffffffff0n, 0x20, 0, 0); rawAvail(s, 8, [0]); }],
  ['readable after writable', /readable descriptor after a writable/, (s, d) => { rawDesc(s, d, 0, DATA, 4, 3, 1); rawDesc(s, d, 1, DATA, 4, 0, 0); rawAvail(s, 8, [0]); }],
  ['indirect inside indirect', /inside an indirect table/, (s, d) => { rawDesc(s, d, 0, IND, 32, 4, 0); rawDesc(s, IND, 0, DATA, 4, 1, 1); rawDesc(s, IND, 1, IND, 16, 4, 0); rawAvail(s, 8, [0]); }],
  ['indirect length not a multiple of 16', /multiple of 16/, (s, d) => { rawDesc(s, d, 0, IND, 24, 4, 0); rawAvail(s, 8, [0]); }],
  ['indirect length zero', /multiple of 16/, (s, d) => { rawDesc(s, d, 0, IND, 0, 4, 0); rawAvail(s, 8, [0]); }],
  ['indirect with NEXT', /both INDIRECT and NEXT/, (s, d) => { rawDesc(s, d, 0, IND, 16, 5, 1); rawAvail(s, 8, [0]); }],
  ['indirect table outside memory', /indirect table .* outside/, (s, d) => { rawDesc(s, d, 0, GPA_BASE + MEM_SIZE - 16, 32, 4, 0); rawAvail(s, 8, [0]); }],
  ['a loop inside an indirect table', /more than the 4 descriptors of its indirect table/, (s, d) => { rawDesc(s, d, 0, IND, 64, 4, 0); rawDesc(s, IND, 0, DATA, 1, 1, 1); rawDesc(s, IND, 1, DATA, 1, 1, 0); rawAvail(s, 8, [0]); }],
  ['indirect next past its table', /links to descriptor 2, table has 2/, (s, d) => { rawDesc(s, d, 0, IND, 32, 4, 0); rawDesc(s, IND, 0, DATA, 1, 1, 1); rawDesc(s, IND, 1, DATA, 1, 1, 2); rawAvail(s, 8, [0]); }],
  ['indirect without the feature', /VIRTIO_F_INDIRECT_DESC/, (s, d) => { rawDesc(s, d, 0, IND, 16, 4, 0); rawDesc(s, IND, 0, DATA, 1, 0, 0); rawAvail(s, 8, [0]); }, { indirect: false }],
  ['the same head made available twice', /again while the device still holds it/, (s, d) => { rawDesc(s, d, 0, DATA, 4, 0, 0); rawAvail(s, 8, [0, 0]); }],
];

for (const [name, pattern, build, opts] of cases) {
  test(`malformed: ${name}`, () => {
    const s = setup(8);
    const device = new SplitQueueDevice({ memory: s.mem, size: 8, addresses: s.layout, indirect: opts?.indirect });
    build(s, Number(s.layout.desc));
    if (name === 'the same head made available twice') device.pop();
    expectBroken(() => device.pop(), name, pattern);
    assert.ok(device.broken);
    expectBroken(() => device.pop(), `${name}: stays broken`);
    expectBroken(() => device.pushUsed(0, 0), `${name}: pushUsed refuses too`);
  });
}

test('malformed: a chain over 2^32 bytes in total (2.7.5.2)', () => {
  // Two descriptors of 2^31 + 1 bytes over the same big region: each fits, their sum does not.
  // The ArrayBuffer is never touched, so the kernel backs it with no pages.
  const big = new Uint8Array(new ArrayBuffer(2 ** 31 + 4096));
  const mem = new GuestMemory([{ guestPhysAddr: 0, size: big.byteLength, bytes: big }]);
  const layout = splitQueueLayout(4, 0);
  const dv = new DataView(big.buffer);
  for (let i = 0; i < 2; i++) {
    dv.setBigUint64(16 * i, 64n, true);
    dv.setUint32(16 * i + 8, 2 ** 31 + 1, true);
    dv.setUint16(16 * i + 12, i === 0 ? 1 : 0, true);
    dv.setUint16(16 * i + 14, 1, true);
  }
  dv.setUint16(Number(layout.avail) + 2, 1, true);
  const device = new SplitQueueDevice({ memory: mem, size: 4, addresses: layout });
  expectBroken(() => device.pop(), 'sum over 2^32', /longer than 2\^32 bytes/);
});

test.run();
