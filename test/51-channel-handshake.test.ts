// The handshake against misbehaving peers: raw sockets that send garbage, wrong versions, oversized
// rings, wrong fds, or nothing at all. Each gets a Disconnect with a reason (or is dropped after the
// step timeout), the server reports it on 'refused', and the next well-behaved client still connects.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { addonAvailable, closeFd } from '../lib/native/native.js';
import { FdServer, FdSocket } from '../lib/native/unix-socket.js';
import { EventFd } from '../lib/native/eventfd.js';
import { Region } from '../lib/native/region.js';
import { createBlockRegion } from '../lib/process/shm-ring.js';
import { RingKind } from '../lib/ring/layout.js';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen, type ChannelServer, type Refusal } from '../lib/index.js';
import {
  DisconnectCode, DisconnectView, Frame, HelloView, Msg, encodeAddRing, encodeHello, encodeInit,
} from '../lib/channel/protocol.js';
import { makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';

const run = requireOrSkip('native addon (npm install builds it)', addonAvailable());

/** A raw client that records every frame the server sends until the socket closes. */
async function rawClient(address: string): Promise<{ sock: FdSocket; frames: Frame[]; closed: Promise<void>; next(type: number): Promise<Frame> }> {
  const sock = await FdSocket.connect(address, { maxFds: 4 });
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  sock.on('message', (d, fds) => {
    // The server's own ring blocks are of no use to a raw client: close them so the fd count below is ours to check.
    for (const fd of fds) closeFd(fd);
    const f = Frame.parse(d, fds);
    if (f) frames.push(f);
    for (const w of waiters.splice(0)) w();
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => { r(); for (const w of waiters.splice(0)) w(); }));
  const next = async (type: number): Promise<Frame> => {
    for (;;) {
      const f = frames.find((x) => x.type === type);
      if (f) return f;
      if (sock.fd < 0) throw new Error(`socket closed before message type ${type}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { sock, frames, closed, next };
}

const validInit = (o: Partial<Parameters<typeof encodeInit>[0]> = {}): Buffer =>
  encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'raw', secret: new Uint8Array(0), ...o });

async function expectDisconnect(address: string, script: (c: Awaited<ReturnType<typeof rawClient>>) => Promise<void> | void, code: number, reasonPattern: RegExp): Promise<void> {
  const c = await rawClient(address);
  await c.next(Msg.Hello);
  await script(c);
  const d = await c.next(Msg.Disconnect);
  const v = new DisconnectView(d.body);
  assert.ok(v.isValid());
  assert.is(v.code, code, `disconnect code (reason: ${v.reason})`);
  assert.match(v.reason!, reasonPattern);
  await c.closed;
}

async function withServer(fn: (server: ChannelServer, address: string, refusals: Refusal[]) => Promise<void>, opts = {}): Promise<void> {
  const { dir, cleanup } = makeTempDir();
  const address = join(dir, 's.sock');
  const server = await listen(address, { handshakeTimeoutMs: 300, maxRingBytes: 1 << 16, ...opts }, (ch) => ch.handle((r) => r));
  const refusals: Refusal[] = [];
  server.on('refused', (r) => refusals.push(r));
  try {
    await fn(server, address, refusals);
    // After whatever went wrong, a good client still gets served.
    const ch = await connect(address, { sendRingBytes: 4096, receiveRingBytes: 4096 });
    assert.equal((await ch.request(Buffer.from('still serving'))).toString(), 'still serving');
    await ch.close();
  } finally {
    server.destroyConnections();
    await server.close();
    cleanup();
  }
}

if (run) {
  test('server: the Hello states versions and limits', () => withTimeout('hello', 5000, () => withServer(async (_s, address) => {
    const c = await rawClient(address);
    const h = new HelloView((await c.next(Msg.Hello)).body);
    assert.ok(h.isValid());
    assert.equal([h.minVersion, h.maxVersion, h.maxRingBytes, h.maxRingsPerDirection], [1, 1, 1 << 16, 1]);
    c.sock.close();
  })));

  test('server: garbage, wrong versions, over-large rings and early messages end that connection with a reason', () => withTimeout('bad clients', 10000, () => withServer(async (_s, address, refusals) => {
    await expectDisconnect(address, (c) => c.sock.send(Buffer.from('GET / HTTP/1.1\r\n\r\n')), DisconnectCode.Protocol, /malformed/);
    await expectDisconnect(address, (c) => c.sock.send(validInit({ version: 9 })), DisconnectCode.Version, /version 9/);
    await expectDisconnect(address, (c) => c.sock.send(validInit({ clientToServerBytes: 1 << 30 })), DisconnectCode.Limit, /outside/);
    await expectDisconnect(address, (c) => c.sock.send(validInit({ serverToClientBytes: 5000 })), DisconnectCode.Limit, /power of two/);
    await expectDisconnect(address, (c) => c.sock.send(validInit({ ringsPerDirection: 4 })), DisconnectCode.Limit, /rings per direction/);
    await expectDisconnect(address, (c) => c.sock.send(encodeHello({ minVersion: 1, maxVersion: 1, minRingBytes: 64, maxRingBytes: 64, maxRingsPerDirection: 1, flags: 0, name: 'x' })), DisconnectCode.Protocol, /unexpected Hello/);
    assert.ok(refusals.length >= 6, `refusals reported: ${refusals.length}`);
  })));

  test('server: a peer that says nothing is dropped after the step timeout', () => withTimeout('silent', 5000, () => withServer(async (_s, address, refusals) => {
    const t0 = performance.now();
    await expectDisconnect(address, () => {}, DisconnectCode.Timeout, /no Init within 300 ms/);
    assert.ok(performance.now() - t0 < 2000);
    assert.ok(refusals.some((r) => isRingwireError(r.error, 'ERR_TIMEOUT')));
  })));

  test('server: ring announcements with the wrong fds are refused and every fd is closed', () => withTimeout('bad fds', 10000, () => withServer(async (_s, address) => {
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const announce = (ringBytes = 4096) => encodeAddRing({ direction: 0, side: 0, ringIndex: 0, ringBytes });
    // Two eventfds where a memfd belongs.
    await expectDisconnect(address, async (c) => {
      c.sock.send(validInit());
      await c.next(Msg.Ack);
      const a = EventFd.create();
      const b = EventFd.create();
      c.sock.send(announce(), [a.fd, b.fd]);
      a.close();
      b.close();
    }, DisconnectCode.Limit, /block is 0 bytes/);
    // A memfd the sender could still shrink.
    await expectDisconnect(address, async (c) => {
      c.sock.send(validInit());
      await c.next(Msg.Ack);
      const r = Region.create('unsealed', 192 + 4096);
      const e = EventFd.create();
      c.sock.send(announce(), [r.fd, e.fd]);
      r.close();
      e.close();
    }, DisconnectCode.Protocol, /missing required seals: .*shrink/);
    // A sealed block of the wrong size, and a block the client does not own.
    await expectDisconnect(address, async (c) => {
      c.sock.send(validInit());
      await c.next(Msg.Ack);
      const r = createBlockRegion(RingKind.Spsc, 8192, 'producer', 'too big');
      const e = EventFd.create();
      c.sock.send(announce(), [r.fd, e.fd]);
      r.close();
      e.close();
    }, DisconnectCode.Limit, /bytes; expected/);
    await expectDisconnect(address, async (c) => {
      c.sock.send(validInit());
      await c.next(Msg.Ack);
      const r = createBlockRegion(RingKind.Spsc, 4096, 'consumer', 'not yours');
      const e = EventFd.create();
      c.sock.send(encodeAddRing({ direction: 0, side: 1, ringIndex: 0, ringBytes: 4096 }), [r.fd, e.fd]);
      r.close();
      e.close();
    }, DisconnectCode.Protocol, /does not own/);
    // The fds the server received (and our copies) are all closed again; the socket of the last raw client may linger a tick.
    await new Promise((r) => setTimeout(r, 50));
    const fdsAfter = readdirSync('/proc/self/fd').length;
    assert.ok(fdsAfter <= fdsBefore, `fds before ${fdsBefore}, after ${fdsAfter}`);
  })));

  test('server: a secret is required when configured, and compared exactly', () => withTimeout('secret', 10000, () => withServer(async (_s, address) => {
    for (const secret of [undefined, 'wrong', 'right-secret-but-longer']) {
      try {
        await connect(address, secret === undefined ? {} : { secret });
        assert.unreachable('connected without the right secret');
      } catch (err) {
        assert.ok(isRingwireError(err, 'ERR_POLICY'), String(err));
      }
    }
    const ch = await connect(address, { secret: 'right-secret' });
    await ch.close();
  }, { secret: 'right-secret' }).catch((err) => {
    // withServer's final probe connects without a secret: expected to be refused here.
    if (!isRingwireError(err, 'ERR_POLICY')) throw err;
  })));

  test('server: connections beyond maxConnections are refused with a reason', () => withTimeout('limit', 10000, async () => {
    const { dir, cleanup } = makeTempDir();
    const server = await listen(join(dir, 's.sock'), { maxConnections: 1 });
    try {
      const first = await connect(server.address!);
      const err = await connect(server.address!).then(() => null, (e) => e);
      assert.ok(isRingwireError(err, 'ERR_HANDSHAKE'), String(err));
      assert.match(String(err.message), /limit of 1 connections/);
      await first.close();
      const again = await connect(server.address!);
      await again.close();
    } finally {
      server.destroyConnections();
      await server.close();
      cleanup();
    }
  }));

  test('client: a server that never says Hello times out; a malformed Hello is refused with a reason', () => withTimeout('bad server', 10000, async () => {
    const { dir, cleanup } = makeTempDir();
    const address = join(dir, 'fake.sock');
    const fake = FdServer.listen(address);
    const received: Frame[] = [];
    let mode: 'silent' | 'garbage' = 'silent';
    fake.on('connection', (sock) => {
      sock.on('error', () => {});
      sock.on('message', (d, fds) => { const f = Frame.parse(d, fds); if (f) received.push(f); });
      if (mode === 'garbage') sock.send(Buffer.from('\x01\x00\x00\x00\x04\x00\x00\x00oops'));
    });
    try {
      const t0 = performance.now();
      const e1 = await connect(address, { handshakeTimeoutMs: 200 }).then(() => null, (e) => e);
      assert.ok(isRingwireError(e1, 'ERR_TIMEOUT'), String(e1));
      assert.ok(performance.now() - t0 < 2000);
      mode = 'garbage';
      const e2 = await connect(address, { handshakeTimeoutMs: 2000 }).then(() => null, (e) => e);
      assert.ok(isRingwireError(e2, 'ERR_HANDSHAKE'), String(e2));
      await new Promise((r) => setTimeout(r, 50));
      const d = received.filter((f) => f.type === Msg.Disconnect).at(-1);
      assert.ok(d, 'the client told the fake server why');
      assert.is(new DisconnectView(d!.body).code, DisconnectCode.Protocol);
    } finally {
      fake.close();
      cleanup();
    }
  }));
}

test.run();
