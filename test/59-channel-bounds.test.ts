// A peer cannot make a channel spend unbounded memory or lose data it already sent: regressions for
// reviewed bugs (response queue growth, data lost on graceful close while paused, handshake frame
// floods, TCP policy and socket leaks, corrupt ring heads, hostile Hello limits, inproc liveness).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { addonAvailable, closeFd } from '../lib/native/native.js';
import { FdServer, FdSocket } from '../lib/native/unix-socket.js';
import { EventFd } from '../lib/native/eventfd.js';
import { DisconnectCode, DisconnectView, Frame, Msg, encodeAck, encodeAddRing, encodeConnected, encodeHello, encodeInit } from '../lib/channel/protocol.js';
import { SpscConsumer } from '../lib/ring/spsc.js';
import { CW } from '../lib/ring/layout.js';
import { connect, listen, type Channel, type ServerOptions, type ConnectOptions, type Refusal } from '../lib/index.js';
import { requireOrSkip, withTimeout } from './helpers/index.js';
import { addressFor, channelPair, type ChannelPair, type Transport } from './helpers/channel-pair.js';

const run = requireOrSkip('native addon', addonAvailable());
const pair = (opts: ServerOptions & ConnectOptions = {}, onServer?: (ch: Channel) => void, transport?: Transport): Promise<ChannelPair> => channelPair(opts, { onServer, transport });

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

// How fast assembly is belongs in a benchmark, not here (no timed assertions): this checks that a
// frame split into a thousand segments arrives whole and intact.
test('tcp: a large frame trickled in small segments arrives whole', () => withTimeout('tcp trickle', 30000, async () => {
  let resolveA!: (c: Channel) => void;
  const aP = new Promise<Channel>((r) => { resolveA = r; });
  const server = await listen('tcp://127.0.0.1:0', {}, (ch) => resolveA(ch));
  const port = Number(server.address!.split(':').pop());
  const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
  s.on('error', () => {});
  try {
    await new Promise((r) => s.once('connect', r));
    const ring = 4 << 20;
    const init = encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: ring, serverToClientBytes: ring, name: 'trickle', secret: new Uint8Array(0) });
    s.write(Buffer.concat([Buffer.from(Uint32Array.of(init.length).buffer), init]));
    const a = await aP;
    const length = 2 << 20;
    const got = new Promise<Uint8Array>((r) => a.once('message', (m) => r(Uint8Array.from(m))));
    const header = Buffer.alloc(8);
    header.writeUInt32LE(length, 0);
    header.writeUInt32LE(1, 4);
    s.write(header);
    const piece = Buffer.alloc(2048, 7);
    for (let sent = 0; sent < length; sent += piece.length) {
      s.write(piece);
      await new Promise((r) => setImmediate(r));
    }
    const frame = await got;
    assert.is(frame.length, length);
    assert.ok(frame.every((b) => b === 7), 'every byte arrived as sent');
    a.destroy();
  } finally {
    s.destroy();
    await server.close();
  }
}));

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

  test('requests held for a handler not yet set are bounded by bytes; the rest are refused, the held ones served once handle() is called', () => withTimeout('unhandled bytes', 20000, async () => {
    const { a, b, done } = await pair({ sendRingBytes: 256 * 1024, receiveRingBytes: 256 * 1024, requestTimeoutMs: Infinity });
    try {
      const n = 64;
      const size = 64 * 1024;
      let refused = 0;
      const replies = Array.from({ length: n }, (_, i) => b.request(Buffer.alloc(size, i)).then((r) => r, (e: { code?: string }) => {
        if (e.code === 'ERR_REMOTE') refused++;
        throw e;
      }));
      for (const r of replies) r.catch(() => {});
      const settledRefusals = await settled(() => refused, 300, 10000);
      // 1 MiB of 64 KiB requests is 16; without a byte bound all 64 (4 MiB) were held.
      assert.ok(settledRefusals >= n - 16, `${settledRefusals} of ${n} refused`);
      a.handle((req) => req.subarray(0, 1));
      const outcomes = await Promise.allSettled(replies);
      const served = outcomes.filter((o) => o.status === 'fulfilled').length;
      assert.is(served + settledRefusals, n);
      assert.ok(served >= 1 && served <= 16, `${served} held requests`);
    } finally {
      await done();
    }
  }));

  test('handlers that await their own requests to the peer still complete when more run than the in-flight cap', () => withTimeout('nested requests', 20000, async () => {
    let server!: Channel;
    const { b, done } = await pair({ requestTimeoutMs: 10000 }, (ch) => {
      server = ch;
      ch.handle(async (req) => Buffer.concat([req, await ch.request(Buffer.from('?'))]));
    });
    try {
      b.handle(() => Buffer.from('!'));
      const n = 300;
      const all = await Promise.all(Array.from({ length: n }, (_, i) => b.request(Buffer.from(String(i)))));
      assert.ok(all.every((r, i) => r.toString() === `${i}!`));
      assert.is(server.stats().requests.timedOut, 0);
    } finally {
      await done();
    }
  }));

  test('async handlers in flight are capped at 64; the rest wait and are served as handlers finish', () => withTimeout('handler cap', 20000, async () => {
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

  for (const transport of ['unix', 'tcp', 'inproc'] as const) {
    test(`${transport}: messages held for a late 'message' listener survive the peer's graceful close`, () => withTimeout('late listener', 20000, async () => {
      const { a, b, done } = await pair({}, (ch) => void ch.end(), transport);
      try {
        const n = 200;
        for (let i = 0; i < n; i++) await b.send(Buffer.from(String(i)));
        await b.close();
        assert.is(await b.whenClosed(), undefined);
        // Give the server time to see the socket close while nobody reads (the bug closed it then).
        await new Promise((r) => setTimeout(r, 100));
        const got: string[] = [];
        a.on('message', (m) => got.push(Buffer.from(m).toString()));
        const err = await a.whenClosed();
        assert.is(err, undefined, `closed with ${err?.message}`);
        assert.equal(got, Array.from({ length: n }, (_, i) => String(i)));
      } finally {
        await done();
      }
    }));

    test(`${transport}: a slow async iterator receives everything sent before the peer's graceful close`, () => withTimeout('slow iterator', 20000, async () => {
      const got: string[] = [];
      let finished!: Promise<unknown>;
      const { b, done } = await pair({}, (ch) => {
        void ch.end();
        finished = (async () => {
          for await (const m of ch) {
            got.push(m.toString());
            await new Promise((r) => setTimeout(r, 1));
          }
          return ch.whenClosed();
        })();
      }, transport);
      try {
        const n = 200;
        for (let i = 0; i < n; i++) await b.send(Buffer.from(String(i)));
        await b.close();
        const err = (await finished) as Error | undefined;
        assert.is(err, undefined, `closed with ${err?.message}`);
        assert.equal(got, Array.from({ length: n }, (_, i) => String(i)));
      } finally {
        await done();
      }
    }));
  }

  test('a peer that vanishes without End: what it published is still delivered, then ERR_PEER_GONE', () => withTimeout('vanished peer', 20000, async () => {
    const { a, b, done } = await pair();
    try {
      a.pause();
      for (let i = 0; i < 100; i++) await b.send(Buffer.from(String(i)));
      b.destroy();
      await b.whenClosed();
      await new Promise((r) => setTimeout(r, 50));
      assert.is(a.closed, false, 'a paused channel keeps what the peer left until it is read');
      const got: string[] = [];
      a.on('message', (m) => got.push(Buffer.from(m).toString()));
      a.resume();
      const err = await a.whenClosed();
      assert.is(err?.code, 'ERR_PEER_GONE');
      assert.is(got.length, 100);
      const late = await a.send(Buffer.from('late')).then(() => undefined, (e: { code?: string }) => e);
      assert.ok(late, 'send after close must reject');
    } finally {
      await done();
    }
  }));

  test('a ring head the peer corrupted makes send(), request() and end() reject and destroys the channel, never a synchronous throw', () => withTimeout('corrupt head', 15000, async () => {
    const { a, b, done } = await pair({ sendRingBytes: 4096, receiveRingBytes: 4096, minRingBytes: 4096 });
    const release = SpscConsumer.prototype.release;
    let capture = false;
    let clientConsumer: SpscConsumer | undefined;
    // The client's consumer object is private to its channel; catch it as it releases the first message.
    SpscConsumer.prototype.release = function (this: SpscConsumer): void {
      if (capture) {
        clientConsumer = this;
        capture = false;
      }
      release.call(this);
    };
    try {
      const first = new Promise<void>((r) => b.once('message', () => { capture = true; r(); }));
      await a.send(Buffer.from('hello'));
      await first;
      while (!clientConsumer) await new Promise((r) => setTimeout(r, 5));
      b.pause();
      Atomics.store((clientConsumer as unknown as { ctl: Int32Array }).ctl, CW.head, 3);
      const outcomes: Array<Promise<unknown>> = [];
      const call = (fn: () => Promise<unknown>): void => {
        let p: Promise<unknown>;
        try {
          p = fn();
        } catch (err) {
          throw new Error(`threw synchronously: ${(err as Error).message}`);
        }
        outcomes.push(p.then(() => 'ok', (e: { code?: string }) => e.code));
      };
      // The ring looks full after about four of these, and only then is the bad head noticed.
      for (let i = 0; i < 8; i++) call(() => a.request(Buffer.alloc(1000), { timeoutMs: Infinity }));
      call(() => a.send(Buffer.alloc(1000)));
      call(() => a.end());
      const results = await Promise.all(outcomes);
      assert.ok(results.slice(0, 8).includes('ERR_RING_CORRUPT'), `the request that met the bad head fails with it: ${results.join(' ')}`);
      assert.not.ok(results.slice(0, 9).includes('ok'), results.join(' '));
      assert.is(a.closed, true);
      assert.is((await a.whenClosed())?.code, 'ERR_RING_CORRUPT');
    } finally {
      SpscConsumer.prototype.release = release;
      await done();
    }
  }));

  test('unix: a server Hello with insane or oversized ring limits is refused with Limit/Protocol before the client creates any ring', () => withTimeout('hostile hello unix', 15000, async () => {
    for (const [min, max, code] of [[2 ** 31, 2 ** 31, DisconnectCode.Protocol], [2 ** 30, 2 ** 30, DisconnectCode.Limit], [4, 4, DisconnectCode.Protocol], [1 << 20, 4096, DisconnectCode.Protocol]] as const) {
      const address = addressFor('unix');
      const srv = FdServer.listen(address, { maxMessageSize: 512, maxFds: 2 });
      const told = new Promise<{ code: number; announced: boolean }>((resolve) => {
        srv.on('connection', (s: FdSocket) => {
          let announced = false;
          s.on('error', () => {});
          s.send(encodeHello({ minVersion: 1, maxVersion: 1, minRingBytes: min, maxRingBytes: max, maxRingsPerDirection: 1, flags: 0, name: 'hostile' }));
          s.on('message', (d: Buffer, fds: number[]) => {
            for (const fd of fds) closeFd(fd);
            const f = Frame.parse(d, []);
            if (f?.type === Msg.Init) s.send(encodeAck({ ackedType: Msg.Init, direction: 0, side: 0, ringIndex: 0 }));
            else if (f?.type === Msg.AddRing) announced = true;
            else if (f?.type === Msg.Disconnect) resolve({ code: new DisconnectView(f.body).code, announced });
          });
        });
      });
      try {
        const err = await connect(address, { sendRingBytes: 4096, receiveRingBytes: 4096, handshakeTimeoutMs: 2000 }).then((c) => { c.destroy(); return undefined; }, (e: { code?: string }) => e);
        assert.is(err?.code, 'ERR_HANDSHAKE', `Hello ${min}..${max}`);
        const t = await told;
        assert.is(t.code, code, `Hello ${min}..${max}`);
        assert.is(t.announced, false);
      } finally {
        srv.close();
      }
    }
  }));

  test('a client pipelining fd-carrying messages during a slow policy check is cut off; the server does not hold its fds', () => withTimeout('fd flood', 20000, async () => {
    const openFds = (): number => readdirSync('/proc/self/fd').length;
    let releaseCheck!: () => void;
    const checkMayFinish = new Promise<void>((r) => { releaseCheck = r; });
    let checking!: () => void;
    const inCheck = new Promise<void>((r) => { checking = r; });
    let first = true;
    const address = addressFor('unix');
    const server = await listen(address, { allow: { check: async () => {
      if (!first) return true;
      first = false;
      checking();
      await checkMayFinish;
      return true;
    } } });
    const refused = new Promise<Refusal>((r) => server.once('refused', r));
    const sock = await FdSocket.connect(address, { maxMessageSize: 512, maxFds: 2 });
    const e = EventFd.create();
    let ringsAnnounced = 0;
    const closedByServer = new Promise<void>((r) => sock.once('close', () => r()));
    try {
      sock.on('error', () => {});
      sock.on('message', (data: Buffer, fds: number[]) => {
        for (const fd of fds) closeFd(fd);
        if (Frame.parse(data, [])?.type === Msg.AddRing) ringsAnnounced++;
      });
      sock.send(encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'flood', secret: new Uint8Array(0) }));
      await inCheck;
      const base = openFds();
      const add = encodeAddRing({ direction: 0, side: 0, ringIndex: 0, ringBytes: 4096 });
      let sent = 0;
      while (sent < 1000) {
        if (sock.writableLength > 0) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        sock.send(add, [e.fd, e.fd]);
        sent++;
      }
      const held = (await settled(openFds, 200, 10000)) - base;
      assert.ok(held <= 2 * 8 + 4, `the server holds ${held} extra fds after ${sent} pipelined AddRings`);
      releaseCheck();
      const r = await refused;
      assert.match(r.reason, /handshake messages/);
      await closedByServer;
      assert.is(ringsAnnounced, 0, 'the server created and announced rings for a peer it had already failed');
      const ok = await connect(address);
      ok.destroy();
    } finally {
      releaseCheck();
      e.close();
      sock.close();
      await server.close();
    }
  }));
}

test('tcp:// refuses to listen with allow.uids or allow.gids, which it could not enforce', () => withTimeout('tcp uid policy', 10000, async () => {
  for (const allow of [{ uids: [4242] }, { gids: [4242] }]) {
    const err = await listen('tcp://127.0.0.1:0', { allow }).then((s) => { void s.close(); return undefined; }, (e: { code?: string }) => e);
    assert.is(err?.code, 'ERR_INVALID_ARG', JSON.stringify(allow));
  }
  const s = await listen('tcp://127.0.0.1:0', { allow: { check: () => true } });
  await s.close();
}));

test('tcp: sockets refused or timed out in the handshake are closed even if the peer never closes, and count toward maxConnections until then', () => withTimeout('tcp refused sockets', 15000, async () => {
  const openSockets = (): number => readdirSync('/proc/self/fd').filter((f) => {
    try {
      return readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
  const server = await listen('tcp://127.0.0.1:0', { handshakeTimeoutMs: 200, maxConnections: 10 });
  const port = Number(server.address!.split(':').pop());
  const socks: net.Socket[] = [];
  try {
    let refusals = 0;
    const allRefused = new Promise<void>((r) => server.on('refused', () => { if (++refusals === 10) r(); }));
    const base = openSockets();
    for (let i = 0; i < 10; i++) {
      // allowHalfOpen: this side stays open after the server's FIN, as a hostile peer would.
      const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      s.on('error', () => {});
      s.on('data', () => {});
      socks.push(s);
    }
    await allRefused;
    assert.is(server.connections, 10, 'refused sockets still open count toward maxConnections');
    while (server.connections > 0) await new Promise((r) => setTimeout(r, 20));
    const left = openSockets() - base - socks.length;
    assert.ok(left <= 0, `${left} server-side sockets still open`);
  } finally {
    for (const s of socks) s.destroy();
    await server.close();
  }
}));

test('tcp: a server Hello with insane or oversized frame limits is refused with a Disconnect and ERR_HANDSHAKE', () => withTimeout('hostile hello tcp', 15000, async () => {
  const framed = (b: Buffer): Buffer => Buffer.concat([Buffer.from(Uint32Array.of(b.length).buffer), b]);
  for (const [min, max, code] of [[2 ** 31, 2 ** 31, DisconnectCode.Protocol], [2 ** 30, 2 ** 30, DisconnectCode.Limit], [4, 4, DisconnectCode.Protocol]] as const) {
    let answer!: (b: Buffer) => void;
    const received = new Promise<Buffer>((r) => { answer = r; });
    const srv = net.createServer((c) => {
      c.on('error', () => {});
      const chunks: Buffer[] = [];
      c.write(framed(encodeHello({ minVersion: 1, maxVersion: 1, minRingBytes: min, maxRingBytes: max, maxRingsPerDirection: 1, flags: 0, name: 'hostile' })));
      c.on('data', (d) => {
        chunks.push(d);
        // A well-behaved client would send Init; answer it as a hostile server would.
        if (Buffer.concat(chunks).length >= 4 && Buffer.concat(chunks).readUInt16LE(4) === Msg.Init) c.write(framed(encodeConnected()));
      });
      c.on('end', () => { answer(Buffer.concat(chunks)); c.end(); });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as net.AddressInfo).port;
      const err = await connect(`tcp://127.0.0.1:${port}`, { sendRingBytes: 4096, receiveRingBytes: 4096 }).then((ch) => { ch.destroy(); return undefined; }, (e: { code?: string }) => e);
      assert.is(err?.code, 'ERR_HANDSHAKE', `Hello ${min}..${max}`);
      const got = await received;
      const f = Frame.parse(got.subarray(4, 4 + got.readUInt32LE(0)), []);
      assert.is(f?.type, Msg.Disconnect);
      assert.is(new DisconnectView(f!.body).code, code);
    } finally {
      srv.close();
    }
  }
}));

test('inproc: a client that gave up while the policy check ran does not leave an open channel on the server', () => withTimeout('inproc gave up', 15000, async () => {
  let gaveUp!: () => void;
  const clientGaveUp = new Promise<void>((r) => { gaveUp = r; });
  const opened: Channel[] = [];
  const server = await listen(addressFor('inproc'), { allow: { check: async () => { await clientGaveUp; return true; } } }, (ch) => opened.push(ch));
  try {
    const err = await connect(server.address!, { connectTimeoutMs: 100 }).then((c) => { c.destroy(); return undefined; }, (e: { code?: string }) => e);
    assert.is(err?.code, 'ERR_TIMEOUT');
    gaveUp();
    const deadline = Date.now() + 3000;
    while (server.connections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.is(server.connections, 0, 'the server still counts a connection whose client is gone');
    for (const ch of opened) assert.is(ch.closed, true);
  } finally {
    server.destroyConnections();
    await server.close();
  }
}));

test('tcp: a paused receiver buffers about one ring of frames, not a frame count, and the sender waits; resuming delivers all in order', () => withTimeout('tcp read bound', 30000, async () => {
  let resolveA!: (c: Channel) => void;
  const aP = new Promise<Channel>((r) => { resolveA = r; });
  const server = await listen('tcp://127.0.0.1:0', {}, (ch) => { ch.pause(); resolveA(ch); });
  const b = await connect(server.address!, { sendRingBytes: 64 * 1024 });
  const a = await aP;
  try {
    const frame = (i: number): Buffer => Buffer.alloc(b.maxMessageSize, i & 0xff);
    const n = 1000;
    let sent = 0;
    const sending = (async () => {
      for (let i = 0; i < n; i++) {
        await b.send(frame(i));
        sent++;
      }
    })();
    sending.catch(() => {});
    const stuck = await settled(() => sent, 300, 20000);
    // Kernel socket buffers hold a few MiB (about 100 such frames); 1024 frames were buffered before.
    assert.ok(stuck < 500, `${stuck} frames of ${b.maxMessageSize} bytes were accepted by a paused receiver`);
    let next = 0;
    const all = new Promise<void>((resolve, reject) => {
      a.on('message', (m) => {
        if (!Buffer.from(m).equals(frame(next))) reject(new Error(`frame ${next} differs`));
        if (++next === n) resolve();
      });
    });
    a.resume();
    await all;
    await sending;
  } finally {
    a.destroy();
    b.destroy();
    await server.close();
  }
}));

test.run();
