// Every refusal of a malformed handshake carries the accurate Disconnect code and reason, both
// ways (issue 19, item 2): datagrams over the 512-byte limit (513 bytes, 200 KiB), too many fds
// (3 and 253 on Init, 3 on AddRing), and a ring block whose contents are corrupt. The peer gets a
// Disconnect saying why (never a bare EOF); the refusing side reports the same reason, never "the
// peer closed the socket"; and the server goes on serving.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable, closeFd } from '../lib/native/native.js';
import { FdServer, FdSocket } from '../lib/native/unix-socket.js';
import { EventFd } from '../lib/native/eventfd.js';
import { createBlockRegion } from '../lib/process/shm-ring.js';
import { RingKind } from '../lib/ring/layout.js';
import { isRingwireError, type RingwireError } from '../lib/errors.js';
import { connect, listen, type Refusal } from '../lib/index.js';
import {
  AckView, DisconnectCode, DisconnectView, Frame, Msg, encodeAddRing, encodeHello, encodeInit,
} from '../lib/channel/protocol.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());

const init = (): Buffer => encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'raw', secret: new Uint8Array(0) });
const hello = (): Buffer => encodeHello({ minVersion: 1, maxVersion: 1, minRingBytes: 4096, maxRingBytes: 4096, maxRingsPerDirection: 1, flags: 0, name: 'fake' });

/** Frames received on `sock` (fds closed at once), awaitable by type; `closed` settles at EOF. */
function recorder(sock: FdSocket): { next(type: number): Promise<Frame>; closed: Promise<void>; frames: Frame[] } {
  const frames: Frame[] = [];
  const waiters: Array<() => void> = [];
  sock.on('message', (d, fds) => {
    for (const fd of fds) closeFd(fd);
    const f = Frame.parse(d, []);
    if (f) frames.push(f);
    for (const w of waiters.splice(0)) w();
  });
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => { r(); for (const w of waiters.splice(0)) w(); }));
  const next = async (type: number): Promise<Frame> => {
    for (;;) {
      const f = frames.find((x) => x.type === type);
      if (f) return f;
      if (sock.fd < 0) throw new Error(`socket closed before a message of type ${type} (got ${frames.map((x) => x.type).join(',') || 'nothing'})`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { next, closed, frames };
}

function disconnectOf(f: Frame): { code: number; reason: string } {
  const v = new DisconnectView(f.body);
  assert.ok(v.isValid(), 'a well-formed Disconnect');
  return { code: v.code, reason: v.reason! };
}

/** n fds to send (one eventfd repeated: SCM_RIGHTS takes duplicates), and their release. */
function fdsToSend(n: number): { fds: number[]; close(): void } {
  const e = EventFd.create();
  return { fds: Array.from({ length: n }, () => e.fd), close: () => e.close() };
}

/** A producer block of the right size and seals whose header is garbage. */
function corruptBlock(side: 'producer' | 'consumer'): { fds: number[]; close(): void } {
  const r = createBlockRegion(RingKind.Spsc, 4096, side, 'corrupt');
  new Uint8Array(r.buffer).fill(0xa5, 0, 64);
  const e = EventFd.create();
  return { fds: [r.fd, e.fd], close: () => { r.close(); e.close(); } };
}

interface ServerCase {
  name: string;
  /** What the raw client sends after Hello (and, with afterAck, after the Ack of a valid Init). */
  afterAck?: boolean;
  send: (sock: FdSocket) => (() => void) | void;
  code: number;
  reason: RegExp;
}

const serverCases: ServerCase[] = [
  { name: 'a 513-byte datagram', send: (s) => s.send(Buffer.alloc(513, 1)), code: DisconnectCode.Protocol, reason: /513-byte message; at most 512/ },
  { name: 'a 200 KiB datagram', send: (s) => s.send(Buffer.alloc(200 * 1024, 1)), code: DisconnectCode.Protocol, reason: /204800-byte message; at most 512/ },
  { name: 'Init with 3 fds', send: (s) => { const f = fdsToSend(3); s.send(init(), f.fds); return f.close; }, code: DisconnectCode.Protocol, reason: /more fds than maxFds \(2\)/ },
  { name: 'Init with 253 fds', send: (s) => { const f = fdsToSend(253); s.send(init(), f.fds); return f.close; }, code: DisconnectCode.Protocol, reason: /more fds than maxFds \(2\)/ },
  {
    name: 'AddRing with 3 fds', afterAck: true, code: DisconnectCode.Protocol, reason: /more fds than maxFds \(2\)/,
    send: (s) => { const f = fdsToSend(3); s.send(encodeAddRing({ direction: 0, side: 0, ringIndex: 0, ringBytes: 4096 }), f.fds); return f.close; },
  },
  {
    name: 'AddRing whose block header is corrupt', afterAck: true, code: DisconnectCode.Protocol, reason: /corrupt|bad magic/,
    send: (s) => { const b = corruptBlock('producer'); s.send(encodeAddRing({ direction: 0, side: 0, ringIndex: 0, ringBytes: 4096 }), b.fds); return b.close; },
  },
];

if (run) {
  for (const c of serverCases) {
    test(`server refuses ${c.name} with code ${c.code} and the reason, and keeps serving`, () => scratch(`server: ${c.name}`, 15000, async ({ dir, defer }) => {
      const server = await listen(`${dir}/s.sock`, { handshakeTimeoutMs: 3000, minRingBytes: 4096, maxRingBytes: 4096 });
      defer(() => server.close());
      const refusals: Refusal[] = [];
      server.on('refused', (r) => refusals.push(r));
      const sock = await FdSocket.connect(server.address!, { maxFds: 4 });
      defer(() => sock.close());
      const rec = recorder(sock);
      await rec.next(Msg.Hello);
      if (c.afterAck) {
        sock.send(init());
        const ack = await rec.next(Msg.Ack);
        assert.is(new AckView(ack.body).ackedType, Msg.Init);
      }
      const release = c.send(sock);
      if (release) defer(release);
      const { code, reason } = disconnectOf(await rec.next(Msg.Disconnect));
      assert.is(code, c.code, `code (reason: ${reason})`);
      assert.match(reason, c.reason);
      await rec.closed;
      while (refusals.length === 0) await new Promise((r) => setTimeout(r, 5));
      assert.match(refusals[0]!.reason, c.reason);
      assert.not.match(refusals[0]!.reason, /peer closed/);
      const ch = await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 });
      await ch.close();
    }));
  }

  interface ClientCase {
    name: string;
    /** The fake server's misbehaviour, on a connection whose Init it has (or has not yet) seen. */
    act: (sock: FdSocket, rec: ReturnType<typeof recorder>) => Promise<(() => void) | void>;
    code: number;
    reason: RegExp;
  }
  const clientCases: ClientCase[] = [
    { name: 'a 513-byte datagram for Hello', act: async (s) => s.send(Buffer.alloc(513, 1)), code: DisconnectCode.Protocol, reason: /513-byte message; at most 512/ },
    { name: 'a 200 KiB datagram for Hello', act: async (s) => s.send(Buffer.alloc(200 * 1024, 1)), code: DisconnectCode.Protocol, reason: /204800-byte message; at most 512/ },
    { name: 'Hello with 3 fds', act: async (s) => { const f = fdsToSend(3); s.send(hello(), f.fds); return f.close; }, code: DisconnectCode.Protocol, reason: /more fds than maxFds \(2\)/ },
    {
      name: 'a corrupt server block', code: DisconnectCode.Protocol, reason: /corrupt|bad magic/,
      act: async (s, rec) => {
        s.send(hello());
        await rec.next(Msg.Init);
        s.send(Buffer.from(Uint8Array.of(4, 0, 0, 0, 8, 0, 0, 0, Msg.Init, 0, 0, 0, 0, 0, 0, 0)));
        const b = corruptBlock('producer');
        const k = corruptBlock('consumer');
        s.send(encodeAddRing({ direction: 1, side: 0, ringIndex: 0, ringBytes: 4096 }), b.fds);
        s.send(encodeAddRing({ direction: 0, side: 1, ringIndex: 0, ringBytes: 4096 }), k.fds);
        return () => { b.close(); k.close(); };
      },
    },
  ];

  for (const c of clientCases) {
    test(`client refuses ${c.name}: connect() rejects with the reason and the server is told code ${c.code}`, () => scratch(`client: ${c.name}`, 15000, async ({ dir, defer }) => {
      const fake = FdServer.listen(`${dir}/fake.sock`, { maxFds: 4 });
      defer(() => fake.close());
      let told: Promise<{ code: number; reason: string }> | undefined;
      fake.on('connection', (sock: FdSocket) => {
        defer(() => sock.close());
        const rec = recorder(sock);
        told = (async () => {
          const release = await c.act(sock, rec);
          if (release) defer(release);
          return disconnectOf(await rec.next(Msg.Disconnect));
        })();
        told.catch(() => {});
      });
      const err = (await connect(`${dir}/fake.sock`, { handshakeTimeoutMs: 3000, sendRingBytes: 4096, receiveRingBytes: 4096 }).then(() => undefined, (e: RingwireError) => e))!;
      assert.ok(isRingwireError(err, 'ERR_HANDSHAKE'), `connect() rejected with ${String(err)}`);
      assert.match(err.message, c.reason);
      const { code, reason } = await told!;
      assert.is(code, c.code, `code (reason: ${reason})`);
      assert.match(reason, c.reason);
    }));
  }
}

test.run();
