// Peers that die at every step of the channel handshake (issue 19, item 1). The server runs in this
// process and its fds are counted by kind (eventfd, memfd, socket) from /proc/self/fd before and
// after: hundreds of peers per step, each dying abruptly (socket and every fd it holds closed at
// once, no Disconnect: what the kernel does for a SIGKILLed process) at a seeded point, several at
// a time. A few real child processes are SIGKILLed mid-handshake too. Nothing may be left behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { addonAvailable } from '../lib/native/native.js';
import { FdSocket } from '../lib/native/unix-socket.js';
import { connect, listen, type Channel } from '../lib/index.js';
import { RingSet, FrameQueue } from '../lib/channel/handshake.js';
import { AckView, Msg, encodeConnect, encodeInit, type Frame } from '../lib/channel/protocol.js';
import { prng, requireOrSkip, scratch, testSeed } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
const PER_STEP = Number(process.env.RINGWIRE_KILLS_PER_STEP ?? 200);
const AT_ONCE = 8;

/** This process's open fds by kind. */
export function fdsByKind(): Record<'eventfd' | 'memfd' | 'socket' | 'other', number> {
  const out = { eventfd: 0, memfd: 0, socket: 0, other: 0 };
  for (const name of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the directory's own fd, closed already
    }
    if (target === 'anon_inode:[eventfd]') out.eventfd++;
    else if (target.startsWith('/memfd:')) out.memfd++;
    else if (target.startsWith('socket:')) out.socket++;
    else out.other++;
  }
  return out;
}

/** Where a peer dies: after the named event. */
const STEPS = [
  'connected-socket', // before reading Hello
  'hello', // read Hello, sent nothing
  'init-sent', // Init sent, Ack not read
  'init-acked',
  'one-addring-sent',
  'addrings-sent', // both announcements out, the server's not answered
  'exchange-done', // every block known both ways, Connect not sent
  'connect-sent', // Connect sent, Connected not read: the leak of issue 19
  'channel-open', // Connected read
] as const;
type Step = (typeof STEPS)[number];

/**
 * A well-behaved client up to `dieAt`, then an abrupt death: the socket and every fd it holds are
 * closed in one go. `linger` (seeded) picks how long it waits first: not at all, one loop turn, or
 * a few ms, so the death lands before, during and after the server's next step.
 */
async function dyingPeer(address: string, dieAt: Step, linger: number): Promise<void> {
  const sock = await FdSocket.connect(address, { maxMessageSize: 512, maxFds: 2 });
  sock.on('error', () => {});
  const frames = new FrameQueue(sock, 5000);
  let rings: RingSet | undefined;
  const die = async (): Promise<void> => {
    if (linger === 1) await new Promise((r) => setImmediate(r));
    else if (linger > 1) await new Promise((r) => setTimeout(r, linger - 1));
    frames.dispose();
    rings?.dispose();
    sock.close();
  };
  const next = async (): Promise<Frame> => {
    const f = await frames.next('the server');
    return f;
  };
  try {
    if (dieAt === 'connected-socket') return await die();
    const hello = await next();
    assert.is(hello.type, Msg.Hello);
    if (dieAt === 'hello') return await die();
    sock.send(encodeInit({ version: 1, ringsPerDirection: 1, clientToServerBytes: 4096, serverToClientBytes: 4096, name: 'dying', secret: new Uint8Array(0) }));
    if (dieAt === 'init-sent') return await die();
    const ack = await next();
    assert.ok(ack.type === Msg.Ack && new AckView(ack.body).ackedType === Msg.Init);
    if (dieAt === 'init-acked') return await die();
    rings = new RingSet('client', 4096, 4096);
    const announcements = rings.announcements();
    sock.send(announcements[0]!.data, announcements[0]!.fds);
    if (dieAt === 'one-addring-sent') return await die();
    sock.send(announcements[1]!.data, announcements[1]!.fds);
    if (dieAt === 'addrings-sent') return await die();
    while (!rings.complete) {
      const g = await next();
      if (g.type === Msg.AddRing) sock.send(rings.acceptPeerBlock(g));
      else if (g.type === Msg.Ack) rings.acceptAck(g);
      else throw new Error(`unexpected message ${g.type}`);
    }
    if (dieAt === 'exchange-done') return await die();
    sock.send(encodeConnect());
    if (dieAt === 'connect-sent') return await die();
    const connected = await next();
    assert.is(connected.type, Msg.Connected);
    return await die();
  } catch (err) {
    await die();
    // The server may refuse or drop a peer racing its own death; that is not this test's concern.
    if ((err as { code?: string }).code === undefined) throw err;
  }
}

async function settle(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not settled within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

if (run) {
  test(`peers dying at each of ${STEPS.length} handshake steps (${PER_STEP} per step, seeded) leave the server no eventfd, memfd or socket`, () => scratch('handshake kills', 170000, async ({ dir, defer }) => {
    const rng = prng(testSeed());
    const open = new Set<Channel>();
    const server = await listen(`${dir}/s.sock`, { handshakeTimeoutMs: 2000, minRingBytes: 4096, maxRingBytes: 4096 }, (ch) => {
      open.add(ch);
      void ch.whenClosed().then(() => open.delete(ch));
    });
    defer(() => server.close());
    defer(() => server.destroyConnections());
    // A first good channel, closed again, so lazily created handles are counted in both snapshots.
    await (await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 })).close();
    await settle(() => server.connections === 0, 'warm-up');
    const before = fdsByKind();
    for (const step of STEPS) {
      for (let done = 0; done < PER_STEP; done += AT_ONCE) {
        await Promise.all(Array.from({ length: AT_ONCE }, () => dyingPeer(server.address!, step, rng.int(0, 3))));
      }
      await settle(() => server.connections === 0, `after step ${step}`);
      const now = fdsByKind();
      assert.equal(now, before, `server fds after ${PER_STEP} deaths at step '${step}': ${JSON.stringify(now)}, before ${JSON.stringify(before)}`);
    }
    // And the server still serves.
    const ch = await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 });
    await ch.close();
  }));

  test('child processes SIGKILLed at seeded points mid-handshake leave the server no fds', () => scratch('handshake sigkill', 120000, async ({ dir, children, defer }) => {
    const rng = prng(testSeed());
    const server = await listen(`${dir}/s.sock`, { handshakeTimeoutMs: 2000 }, () => {});
    defer(() => server.close());
    defer(() => server.destroyConnections());
    await (await connect(server.address!)).close();
    await settle(() => server.connections === 0, 'warm-up');
    const before = fdsByKind();
    const child = fileURLToPath(new URL('./workers/handshake-loop.js', import.meta.url));
    for (let i = 0; i < 12; i++) {
      const p = children.add(spawn(process.execPath, [child, server.address!], { stdio: 'ignore' }));
      // The child connects over and over; the kill lands wherever it happens to be.
      await new Promise((r) => setTimeout(r, rng.int(30, 250)));
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
    await settle(() => server.connections === 0, 'after the kills');
    assert.equal(fdsByKind(), before);
  }));
}

test.run();

