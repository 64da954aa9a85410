/**
 * The vhost-user-net switch without VMs: TypeScript front-ends act as two guests' virtio-net
 * drivers (receive and transmit queues over memfd guest memory, real sockets, real eventfds), and a
 * host process joins over the seqpacket host port. Learning, flooding, port loss and rejoining.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from '../lib/channel/index.js';
import { FdSocket } from '../lib/native/unix-socket.js';
import { L2Switch, type SwitchPort } from '../virtio/devices/l2-switch.js';
import { VhostUserSwitch } from '../virtio/devices/switch.js';
import { FrontendGuest, type GuestQueue } from '../virtio/vhost-user/frontend-guest.js';
import { VhostUserFrontend } from '../virtio/vhost-user/frontend.js';
import { Children, makeTempDir, prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';

const seed = testSeed();

/** Every test gets a hard deadline, so a reply that never comes fails with a name instead of hanging the file. */
function t(name: string, fn: () => Promise<void> | void): void {
  test(name, () => withTimeout(name, 60_000, async () => fn()));
}
const HDR = 12;
const RX_BUF = HDR + 1518;

const mac = (n: number): Uint8Array => Uint8Array.from([0x02, 0, 0, 0, 0, n]);
const BROADCAST = new Uint8Array(6).fill(0xff);

function frame(dst: Uint8Array, src: Uint8Array, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.byteLength);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // local experimental EtherType
  f.set(payload, 14);
  return f;
}

/** A virtio-net driver on a FrontendGuest: posts receive buffers, sends frames, collects what arrives. */
class NetGuest {
  readonly received: Uint8Array[] = [];
  #rxBufs = new Map<number, number>();
  #waiters: Array<() => void> = [];
  constructor(readonly fe: VhostUserFrontend, readonly guest: FrontendGuest) {
    this.rx.call.onReadable(() => this.#onRx());
    this.tx.call.onReadable(() => {
      this.tx.call.drain();
      while (this.tx.driver.popUsed());
    });
    this.#refill();
  }
  static async connect(path: string): Promise<NetGuest> {
    const fe = await VhostUserFrontend.connect(path);
    const guest = new FrontendGuest();
    await guest.start(fe, 2, { queueSize: 64 });
    return new NetGuest(fe, guest);
  }
  get rx(): GuestQueue {
    return this.guest.queues[0]!;
  }
  get tx(): GuestQueue {
    return this.guest.queues[1]!;
  }
  /** Sends a frame as header + body in two buffers, or (`oneBuffer`) both in one, as Linux does for linear frames. */
  send(f: Uint8Array, oneBuffer = false): void {
    if (oneBuffer) {
      const at = this.guest.alloc(HDR + f.byteLength);
      this.guest.bytes(at + HDR, f.byteLength).set(f);
      assert.ok(this.tx.driver.add([{ addr: at, len: HDR + f.byteLength }], []) !== null, 'tx full');
    } else {
      const hdr = this.guest.alloc(HDR);
      const body = this.guest.alloc(f.byteLength);
      this.guest.bytes(body, f.byteLength).set(f);
      assert.ok(this.tx.driver.add([{ addr: hdr, len: HDR }, { addr: body, len: f.byteLength }], []) !== null, 'tx full');
    }
    if (this.tx.driver.publish()) this.tx.kick.signal();
  }
  /** Resolves once `n` frames in total have been received. */
  async waitFor(n: number, what: string): Promise<void> {
    await withTimeout(what, 5000, async () => {
      while (this.received.length < n) await new Promise<void>((r) => this.#waiters.push(r));
    });
  }
  close(): void {
    this.fe.close();
    this.guest.close();
  }
  #refill(): void {
    while (this.rx.driver.numFree > 0) {
      const addr = this.guest.alloc(RX_BUF);
      const head = this.rx.driver.add([], [{ addr, len: RX_BUF }])!;
      this.#rxBufs.set(head, addr);
    }
    if (this.rx.driver.publish()) this.rx.kick.signal();
  }
  #onRx(): void {
    this.rx.call.drain();
    for (let u = this.rx.driver.popUsed(); u; u = this.rx.driver.popUsed()) {
      const addr = this.#rxBufs.get(u.id)!;
      const bytes = this.guest.bytes(addr, u.len);
      assert.is(bytes[10], 1, 'num_buffers = 1');
      this.received.push(bytes.slice(HDR));
    }
    this.#refill();
    for (const w of this.#waiters.splice(0)) w();
  }
}

/** A host port client: one frame per seqpacket message. */
async function hostPort(path: string): Promise<{ sock: FdSocket; received: Uint8Array[]; waitFor(n: number): Promise<void> }> {
  const sock = await FdSocket.connect(path, { type: 'seqpacket' });
  const received: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  sock.on('message', (d) => {
    received.push(new Uint8Array(d));
    wake?.();
  });
  return {
    sock, received,
    waitFor: (n) => withTimeout('host port frames', 5000, async () => {
      while (received.length < n) await new Promise<void>((r) => (wake = r));
    }),
  };
}

t('L2Switch: learns, forwards unicast, floods broadcast and unknown, forgets a detached port', () => {
  const got = new Map<string, Uint8Array[]>();
  const port = (name: string): SwitchPort => ({ name, deliver: (f) => got.get(name)!.push(f.slice()) });
  const [a, b, c] = ['a', 'b', 'c'].map((n) => (got.set(n, []), port(n))) as [SwitchPort, SwitchPort, SwitchPort];
  const sw = new L2Switch();
  for (const p of [a, b, c]) sw.attach(p);
  sw.forward(a, frame(mac(2), mac(1), Uint8Array.of(1)));
  assert.equal([got.get('b')!.length, got.get('c')!.length], [1, 1], 'unknown destination floods');
  sw.forward(b, frame(mac(1), mac(2), Uint8Array.of(2)));
  assert.equal([got.get('a')!.length, got.get('c')!.length], [1, 1], 'learned destination goes to one port');
  sw.forward(a, frame(BROADCAST, mac(1), Uint8Array.of(3)));
  assert.equal([got.get('b')!.length, got.get('c')!.length], [2, 2]);
  assert.is(sw.lookup(mac(2)), b);
  sw.detach(b);
  assert.is(sw.lookup(mac(2)), undefined);
  sw.forward(a, frame(mac(2), mac(1), Uint8Array.of(4)));
  assert.is(got.get('b')!.length, 2, 'a detached port receives nothing');
  sw.forward(a, Uint8Array.of(1, 2, 3));
  assert.is(sw.stats.dropped, 1, 'runt frame dropped');
});

t('two guests and a host port exchange frames through the switch; a guest that leaves is dropped and can rejoin', async () => {
  const { dir, cleanup } = makeTempDir();
  const logs: string[] = [];
  const sw = VhostUserSwitch.start({ ports: [join(dir, 'a.sock'), join(dir, 'b.sock')], hostSocket: join(dir, 'host.sock'), log: (m) => logs.push(m) });
  const rand = prng(seed);
  let a: NetGuest | undefined, b: NetGuest | undefined;
  try {
    a = await NetGuest.connect(join(dir, 'a.sock'));
    b = await NetGuest.connect(join(dir, 'b.sock'));
    const host = await hostPort(join(dir, 'host.sock'));
    // a -> broadcast: b and the host see it; the switch learns a.
    a.send(frame(BROADCAST, mac(1), rand.bytes(60)));
    await b.waitFor(1, 'b gets the broadcast');
    await host.waitFor(1);
    // b -> a, unicast: only a gets it.
    const payloads = Array.from({ length: 100 }, () => rand.bytes(rand.int(46, 1500)));
    for (let i = 0; i < payloads.length; i++) {
      b.send(frame(mac(1), mac(2), payloads[i]!), i % 2 === 0);
      // The back-end shares this event loop: let it run before the transmit ring fills.
      if (i % 20 === 19) await a.waitFor(i + 1, `a gets frame ${i}`);
    }
    a.received.forEach((f, i) => assert.equal(f, frame(mac(1), mac(2), payloads[i]!), `frame ${i}`));
    assert.is(host.received.length, 1, 'first b->a frame goes to a only: a was learned from its broadcast');
    // The host port sends to b by MAC after b was learned.
    host.sock.send(frame(mac(2), mac(9), Uint8Array.of(7, 7, 7)));
    await b.waitFor(2, 'b gets the host frame');
    assert.equal(b.received[1]!.subarray(14, 17), Uint8Array.of(7, 7, 7));
    // a goes away: its port leaves the switch, b and the host keep switching.
    a.close();
    await withTimeout('a detached', 5000, async () => {
      while (!logs.some((l) => /port a detached/.test(l))) await new Promise((r) => setTimeout(r, 10));
    });
    assert.is(sw.l2.lookup(mac(1)), undefined);
    host.sock.send(frame(mac(2), mac(9), Uint8Array.of(8)));
    await b.waitFor(3, 'b still switched after a left');
    // a rejoins on the same socket.
    a = await NetGuest.connect(join(dir, 'a.sock'));
    a.send(frame(mac(2), mac(1), Uint8Array.of(9)));
    await b.waitFor(4, 'b hears the rejoined a');
    b.send(frame(mac(1), mac(2), Uint8Array.of(10)));
    await a.waitFor(1, 'the rejoined a is reachable');
    assert.is(sw.ports[0]!.stats.rxDropped + sw.ports[1]!.stats.rxDropped, 0);
    host.sock.close();
  } finally {
    a?.close();
    b?.close();
    await sw.close();
    cleanup();
  }
});

t('a guest without receive buffers: frames wait in a bounded backlog, then are dropped and counted', async () => {
  const { dir, cleanup } = makeTempDir();
  const sw = VhostUserSwitch.start({ ports: [join(dir, 'a.sock')], hostSocket: join(dir, 'host.sock'), log: () => {} });
  const fe = await VhostUserFrontend.connect(join(dir, 'a.sock'));
  const guest = new FrontendGuest();
  try {
    await guest.start(fe, 2, { queueSize: 64 });
    const host = await hostPort(join(dir, 'host.sock'));
    for (let i = 0; i < 300; i++) host.sock.send(frame(BROADCAST, mac(9), Uint8Array.of(i & 0xff)));
    await withTimeout('frames reach the switch', 5000, async () => {
      while (sw.ports[0]!.stats.rxDropped + 256 < 300) await new Promise((r) => setTimeout(r, 10));
    });
    assert.is(sw.ports[0]!.stats.rxDropped, 300 - 256);
    host.sock.close();
  } finally {
    fe.close();
    guest.close();
    await sw.close();
    cleanup();
  }
});

t('a host process on a ringwire channel port exchanges frames with a guest; its frames are not lost to back-pressure', async () => {
  const { dir, cleanup } = makeTempDir();
  const sw = await VhostUserSwitch.listen({ ports: [join(dir, 'a.sock')], hostChannel: join(dir, 'host.ch'), log: () => {} });
  let a: NetGuest | undefined;
  const rand = prng(seed ^ 0x77);
  try {
    a = await NetGuest.connect(join(dir, 'a.sock'));
    const ch = await connect(join(dir, 'host.ch'));
    const got: Uint8Array[] = [];
    ch.on('message', (f) => got.push(f.slice()));
    // The guest announces itself; the host answers by unicast and sends a burst.
    a.send(frame(BROADCAST, mac(1), Uint8Array.of(1)));
    await withTimeout('the channel port hears the guest', 5000, async () => {
      while (got.length < 1) await new Promise((r) => setTimeout(r, 5));
    });
    assert.equal(got[0], frame(BROADCAST, mac(1), Uint8Array.of(1)));
    const payloads = Array.from({ length: 50 }, () => rand.bytes(rand.int(46, 1500)));
    for (const p of payloads) await ch.send(frame(mac(1), mac(9), p));
    await a.waitFor(50, 'the guest gets the host burst');
    a.received.forEach((f, i) => assert.equal(f, frame(mac(1), mac(9), payloads[i]!), `frame ${i}`));
    assert.is(sw.l2.lookup(mac(9))?.name, 'channel0');
    await ch.close();
    await withTimeout('the channel port leaves', 5000, async () => {
      while (sw.l2.ports.length > 1) await new Promise((r) => setTimeout(r, 5));
    });
    assert.is(sw.l2.lookup(mac(9)), undefined);
  } finally {
    a?.close();
    await sw.close();
    cleanup();
  }
});

/** Polls a condition the switch reaches on its own event-loop turns. */
async function until(what: string, cond: () => boolean): Promise<void> {
  await withTimeout(what, 5000, async () => {
    while (!cond()) await new Promise((r) => setTimeout(r, 5));
  });
}

t('a host port whose client stopped reading (EPIPE) drops the frame and leaves; the sender and the other ports carry on', async () => {
  // FdSocket cannot shutdown(SHUT_RD); python3 can, and keeps the connection open meanwhile.
  if (!requireOrSkip('python3', spawnSync('python3', ['--version']).status === 0)) return;
  const { dir, cleanup } = makeTempDir();
  const children = new Children();
  const logs: string[] = [];
  const hostSock = join(dir, 'host.sock');
  const sw = VhostUserSwitch.start({ ports: [join(dir, 'a.sock')], hostSocket: hostSock, log: (m) => logs.push(m) });
  let a: NetGuest | undefined;
  const deaf = async (): Promise<void> => {
    const py = children.add(spawn('python3', ['-c', [
      'import socket, sys, time',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)',
      `s.connect(${JSON.stringify(hostSock)})`,
      's.shutdown(socket.SHUT_RD)',
      "print('shut', flush=True)",
      'time.sleep(60)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] }));
    await withTimeout('the deaf client to connect', 10_000, () => new Promise((r) => py.stdout!.once('data', r)));
  };
  try {
    a = await NetGuest.connect(join(dir, 'a.sock'));
    const host = await hostPort(hostSock);
    await until('a and the host port attached', () => sw.l2.ports.length === 2);
    // A host client's frame floods to the deaf port: the error must not escape its 'message' listener.
    await deaf();
    await until('the deaf port attached', () => sw.l2.ports.length === 3);
    host.sock.send(frame(BROADCAST, mac(9), Uint8Array.of(1)));
    await a.waitFor(1, 'a gets the host broadcast');
    await until('the deaf port leaves', () => sw.l2.ports.length === 2);
    // A VM's frame floods to another deaf port: that must not break the VM's transmit ring.
    await deaf();
    await until('the second deaf port attached', () => sw.l2.ports.length === 3);
    a.send(frame(BROADCAST, mac(1), Uint8Array.of(2)));
    await host.waitFor(1);
    assert.equal(host.received[0], frame(BROADCAST, mac(1), Uint8Array.of(2)));
    await until('the second deaf port leaves', () => sw.l2.ports.length === 2);
    a.send(frame(mac(9), mac(1), Uint8Array.of(3)));
    await host.waitFor(2);
    assert.is(sw.l2.stats.deliverErrors, 0, 'the host port handles its own failure');
    const log = logs.join('\n');
    assert.not.match(log, /broken/);
    assert.is(log.match(/port host\d: closing: .*peer/g)?.length, 2, log);
    host.sock.close();
  } finally {
    a?.close();
    await children.killAll();
    await sw.close();
    cleanup();
  }
});

t('L2Switch: a port whose deliver() throws loses that frame only; the sender and the other ports are unaffected', () => {
  const logs: string[] = [];
  const sw = new L2Switch({ log: (m) => logs.push(m) });
  const got: Uint8Array[] = [];
  const from: SwitchPort = { name: 'from', deliver: () => {} };
  const bad: SwitchPort = { name: 'bad', deliver: () => { throw new Error('EPIPE'); } };
  const good: SwitchPort = { name: 'good', deliver: (f) => got.push(f.slice()), flush: () => { throw new Error('flush'); } };
  for (const p of [from, bad, good]) sw.attach(p);
  sw.forward(from, frame(BROADCAST, mac(1), Uint8Array.of(1)));
  sw.commit();
  assert.is(got.length, 1, 'the port after the failing one still gets the flood');
  assert.is(sw.stats.deliverErrors, 2);
  assert.match(logs.join('\n'), /port bad: delivery failed: EPIPE/);
});

t('L2Switch: the MAC table is bounded per port and in total; full, it floods instead of learning; aged entries are swept', async () => {
  const ports = Array.from({ length: 6 }, (_, i): SwitchPort & { got: number } => ({ name: `p${i}`, got: 0, deliver() { this.got++; } }));
  const [evil, good] = ports as [typeof ports[0], typeof ports[0]];
  let clock = 0;
  const sw = new L2Switch({ ageingMs: 100, maxMacs: 64, maxMacsPerPort: 16, now: () => clock });
  for (const p of ports) sw.attach(p);
  const made = (n: number): Uint8Array => Uint8Array.from([0x02, 0x10, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, 0]);
  for (let i = 0; i < 10_000; i++) sw.forward(evil, frame(BROADCAST, made(i), Uint8Array.of(0)));
  assert.is(sw.stats.macs, 16, 'one port learns at most its share');
  assert.is(sw.stats.learnRefused, 10_000 - 16);
  sw.forward(good, frame(BROADCAST, mac(1), Uint8Array.of(1)));
  assert.is(sw.lookup(mac(1)), good, 'the other ports still learn');
  // An address the switch refused to learn is flooded to, so it still arrives.
  const before = evil.got;
  sw.forward(good, frame(made(9999), mac(1), Uint8Array.of(2)));
  assert.is(evil.got, before + 1);
  // The total cap: 4 ports x 16 = 64 entries, so the sixth port learns nothing.
  for (const p of ports.slice(2, 5)) for (let i = 0; i < 16; i++) sw.forward(p, frame(BROADCAST, made(100_000 * (ports.indexOf(p) + 1) + i), Uint8Array.of(3)));
  assert.is(sw.stats.macs, 64);
  sw.forward(ports[5]!, frame(BROADCAST, mac(6), Uint8Array.of(4)));
  assert.is(sw.lookup(mac(6)), undefined, 'a full table learns nothing more');
  // Past the ageing time the next frame sweeps everything stale and is learned itself.
  clock += 150;
  sw.forward(ports[5]!, frame(BROADCAST, mac(6), Uint8Array.of(5)));
  assert.is(sw.stats.macs, 1);
  assert.is(sw.lookup(mac(6)), ports[5]);
  // The defaults bound a port too.
  const dflt = new L2Switch();
  dflt.attach(evil);
  dflt.attach(good);
  for (let i = 0; i < 20_000; i++) dflt.forward(evil, frame(BROADCAST, made(i), Uint8Array.of(0)));
  assert.ok(dflt.stats.macs <= 1024, `${dflt.stats.macs} entries from one port`);
});

test.run();
