// UNIX sockets with fds, in one process: both socket types on paths and abstract names, message
// boundaries, fd passing up to SCM_MAX_FD, truncation handling without leaks, back-pressure,
// EOF and errors exactly once, and listener housekeeping.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { isRingwireError, type ErrorCode } from '../lib/errors.js';
import { addonAvailable, closeFd, native, type NativePoller } from '../lib/native/native.js';
import { EventFd } from '../lib/native/eventfd.js';
import { Region } from '../lib/native/region.js';
import { encodeAddress, FdServer, FdSocket, MAX_FDS, type SocketType } from '../lib/native/unix-socket.js';
import { makeTempDir, prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';
import { witnessCloexec } from './20-libc-witness.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function isCode(code: ErrorCode, errno?: number) {
  return (err: unknown) => isRingwireError(err, code) && (errno === undefined || err.errno === errno);
}

/** Listens, connects, and returns both ends plus a cleanup that closes everything. */
async function pair(address: string, opts: { type?: SocketType; serverMaxFds?: number; serverMaxMessageSize?: number; truncated?: 'close' | 'report' } = {}) {
  const server = FdServer.listen(address, { type: opts.type, maxFds: opts.serverMaxFds, maxMessageSize: opts.serverMaxMessageSize, ...(opts.truncated ? { truncated: opts.truncated } : {}) });
  const accepted = new Promise<FdSocket>((resolve) => server.once('connection', resolve));
  const client = await FdSocket.connect(address, { type: opts.type });
  const peer = await withTimeout('accept', 5000, () => accepted);
  return {
    server, client, peer,
    close() {
      client.close();
      peer.close();
      server.close();
    },
  };
}

/** Collects 'message' events until `count` arrived. */
function messages(sock: FdSocket, count: number): Promise<Array<{ data: Buffer; fds: number[] }>> {
  return withTimeout(`${count} messages`, 10_000, () => new Promise((resolve, reject) => {
    const got: Array<{ data: Buffer; fds: number[] }> = [];
    sock.on('message', function onMessage(data, fds) {
      got.push({ data, fds });
      if (got.length === count) {
        sock.off('message', onMessage);
        resolve(got);
      }
    });
    sock.once('error', reject);
  }));
}

/** Records 'error' and 'close' events so tests can check each happened exactly once, in order. */
function lifecycle(sock: FdSocket): { events: string[]; closed: Promise<void> } {
  const events: string[] = [];
  sock.on('error', (err) => events.push(`error ${err.code}`));
  const closed = new Promise<void>((resolve) => sock.on('close', () => { events.push('close'); resolve(); }));
  return { events, closed };
}

if (available) {
  const { dir, cleanup } = makeTempDir();
  let n = 0;
  const addresses = () => [join(dir, `s${n++}.sock`), `@ringwire-test-${process.pid}-${n++}`];
  test.after(cleanup);

  for (const type of ['seqpacket', 'stream'] as const) {
    test(`${type}: data and fds travel on a path and an abstract name; received fds are close-on-exec`, async () => {
      for (const address of addresses()) {
        const p = await pair(address, { type });
        const region = Region.create('passed', 4096);
        const bell = EventFd.create();
        try {
          new Uint8Array(region.buffer)[10] = 123;
          const got = messages(p.peer, 1);
          p.client.send(Buffer.from('hello'), [region.fd, bell.fd]);
          const [m] = await got;
          assert.is(m!.data.toString(), 'hello', address);
          assert.is(m!.fds.length, 2);
          const [memfd, efd] = m!.fds as [number, number];
          assert.ok(witnessCloexec(memfd) && witnessCloexec(efd), 'MSG_CMSG_CLOEXEC applied');
          const mapped = Region.fromFd(memfd, { writable: true });
          assert.is(new Uint8Array(mapped.buffer)[10], 123, 'same memory');
          new Uint8Array(mapped.buffer)[11] = 45;
          assert.is(new Uint8Array(region.buffer)[11], 45, 'and writes flow back');
          EventFd.fromFd(efd).signal(6);
          assert.is(bell.drain(), 6, 'same eventfd');
          mapped.close();
          const cred = p.peer.peerCred();
          assert.equal(cred, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
        } finally {
          region.close();
          bell.close();
          p.close();
        }
      }
    });
  }

  test('seqpacket keeps message boundaries; stream delivers the same bytes in order', async () => {
    const seed = testSeed();
    const rnd = prng(seed);
    const sizes = Array.from({ length: 50 }, () => rnd.int(1, 3000));
    const payloads = sizes.map((s) => Buffer.from(rnd.bytes(s)));
    const [sp] = addresses();
    const seq = await pair(sp!, { type: 'seqpacket' });
    try {
      const got = messages(seq.peer, payloads.length);
      for (const b of payloads) seq.client.send(b);
      const received = await got;
      assert.equal(received.map((m) => m.data.length), sizes, 'one message per send');
      assert.ok(received.every((m, i) => m.data.equals(payloads[i]!)));
    } finally {
      seq.close();
    }
    const [st] = addresses();
    const stream = await pair(st!, { type: 'stream' });
    try {
      const total = Buffer.concat(payloads);
      const chunks: Buffer[] = [];
      const all = withTimeout('stream bytes', 10_000, () => new Promise<void>((resolve) => {
        let bytes = 0;
        stream.peer.on('message', (data) => {
          chunks.push(data);
          bytes += data.length;
          if (bytes >= total.length) resolve();
        });
      }));
      for (const b of payloads) stream.client.send(b);
      await all;
      assert.ok(Buffer.concat(chunks).equals(total));
    } finally {
      stream.close();
    }
  });

  test('SCM_MAX_FD fds arrive in one message; one more is refused before the system call', async () => {
    const [address] = addresses();
    const p = await pair(address!);
    const bell = EventFd.create();
    try {
      const got = messages(p.peer, 1);
      p.client.send(Buffer.from('many'), new Array(MAX_FDS).fill(bell.fd));
      const [m] = await got;
      assert.is(m!.fds.length, MAX_FDS);
      assert.is(new Set(m!.fds).size, MAX_FDS, 'each is a fresh descriptor');
      for (const fd of m!.fds) assert.is(readlinkSync(`/proc/self/fd/${fd}`), 'anon_inode:[eventfd]');
      for (const fd of m!.fds) closeFd(fd);
      assert.throws(() => p.client.send(Buffer.from('x'), new Array(MAX_FDS + 1).fill(bell.fd)), isCode('ERR_OUT_OF_RANGE'));
      assert.throws(() => p.client.send(Buffer.from('x'), [-1]), isCode('ERR_OUT_OF_RANGE'));
      assert.throws(() => p.client.send(new Uint8Array(0)), isCode('ERR_INVALID_ARG'));
      assert.throws(() => p.client.send('text' as never), isCode('ERR_INVALID_ARG'));
    } finally {
      bell.close();
      p.close();
    }
  });

  test('MSG_CTRUNC: more fds than the receiver takes is an error on that socket, and no fd leaks', async () => {
    const [address] = addresses();
    const before = openFdCount();
    const p = await pair(address!, { serverMaxFds: 2 });
    const bell = EventFd.create();
    const life = lifecycle(p.peer);
    try {
      p.client.send(Buffer.from('five'), [bell.fd, bell.fd, bell.fd, bell.fd, bell.fd]);
      await withTimeout('truncated socket closes', 5000, () => life.closed);
      assert.equal(life.events, ['error ERR_MSG_TRUNCATED', 'close']);
    } finally {
      bell.close();
      p.close();
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.is(openFdCount(), before, 'every fd that arrived was closed');
  });

  test('MSG_TRUNC: a seqpacket message larger than maxMessageSize is an error, not silently cut', async () => {
    const [address] = addresses();
    const p = await pair(address!, { serverMaxMessageSize: 16 });
    const life = lifecycle(p.peer);
    try {
      p.client.send(Buffer.alloc(100, 1));
      await withTimeout('truncated socket closes', 5000, () => life.closed);
      assert.equal(life.events, ['error ERR_MSG_TRUNCATED', 'close']);
    } finally {
      p.close();
    }
  });

  test("truncated: 'report' drops an oversized message or one with too many fds whole, names its real size, closes its fds, and keeps the socket", async () => {
    const [address] = addresses();
    const before = openFdCount();
    const p = await pair(address!, { serverMaxMessageSize: 16, serverMaxFds: 2, truncated: 'report' });
    const reports: string[] = [];
    p.peer.on('truncated', (err) => reports.push(`${err.code} ${err.message}`));
    const bell = EventFd.create();
    try {
      const got = messages(p.peer, 1);
      p.client.send(Buffer.alloc(100, 1));
      p.client.send(Buffer.from('three'), [bell.fd, bell.fd, bell.fd]);
      p.client.send(Buffer.from('fits'));
      const [m] = await got;
      assert.is(m!.data.toString(), 'fits');
      assert.is(reports.length, 2);
      assert.match(reports[0]!, /ERR_MSG_TRUNCATED .*a 100-byte message; at most 16/);
      assert.match(reports[1]!, /ERR_MSG_TRUNCATED .*more fds than maxFds \(2\)/);
      assert.is(p.peer.fd >= 0, true, 'the socket stays open');
    } finally {
      bell.close();
      p.close();
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.is(openFdCount(), before, 'the fds of the dropped message were closed');
  });

  test("truncated: 'report' is refused for stream sockets, whose framing a cut would break", () => {
    try {
      FdServer.listen('@ringwire-never-bound', { type: 'stream', truncated: 'report' });
      assert.unreachable('accepted');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_INVALID_ARG');
    }
  });

  test('EOF is reported once; sends after it name the reason', async () => {
    const [address] = addresses();
    const p = await pair(address!);
    const life = lifecycle(p.peer);
    const clientLife = lifecycle(p.client);
    p.client.close();
    p.client.close();
    await withTimeout('EOF', 5000, () => life.closed);
    await clientLife.closed;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(life.events, ['close'], 'EOF: close once, no error');
    assert.equal(clientLife.events, ['close']);
    assert.throws(() => p.peer.send(Buffer.from('x')), isCode('ERR_PEER_GONE'));
    assert.throws(() => p.client.send(Buffer.from('x')), isCode('ERR_RING_CLOSED'));
    assert.throws(() => p.client.peerCred(), isCode('ERR_RING_CLOSED'));
    p.close();
  });

  test('a full socket queues sends in order (fds duplicated) and flushes them when writable', async () => {
    const [address] = addresses();
    const p = await pair(address!);
    const rnd = prng(testSeed());
    const count = 300;
    const payloads = Array.from({ length: count }, () => Buffer.from(rnd.bytes(rnd.int(1000, 30_000))));
    try {
      p.peer.pause();
      let queuedAtMost = 0;
      let drains = 0;
      p.client.on('drain', () => drains++);
      for (let i = 0; i < count; i++) {
        // Every tenth message carries a fresh eventfd that is closed right after send(): a queued
        // message must hold its own duplicate.
        if (i % 10 === 0) {
          const e = EventFd.create();
          e.signal(i + 1);
          p.client.send(payloads[i]!, [e.fd]);
          e.close();
        } else {
          p.client.send(payloads[i]!);
        }
        queuedAtMost = Math.max(queuedAtMost, p.client.writableLength);
      }
      assert.ok(queuedAtMost > 0, 'the socket buffer filled and sends were queued');
      const got = messages(p.peer, count);
      p.peer.resume();
      const received = await got;
      for (let i = 0; i < count; i++) {
        assert.ok(received[i]!.data.equals(payloads[i]!), `message ${i} intact and in order`);
        assert.is(received[i]!.fds.length, i % 10 === 0 ? 1 : 0);
        if (i % 10 === 0) {
          const e = EventFd.fromFd(received[i]!.fds[0]!);
          assert.is(e.drain(), i + 1, 'the fd is the one sent with this message');
          e.close();
        }
      }
      assert.is(p.client.writableLength, 0);
      assert.ok(drains >= 1, "'drain' emitted once the queue emptied");
    } finally {
      p.close();
    }
  });

  test('pause holds messages in the kernel until resume', async () => {
    const [address] = addresses();
    const p = await pair(address!);
    try {
      let got = 0;
      p.peer.on('message', () => got++);
      p.peer.pause();
      p.client.send(Buffer.from('held'));
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      assert.is(got, 0);
      const arrived = new Promise((resolve) => p.peer.once('message', resolve));
      p.peer.resume();
      await withTimeout('resumed', 5000, () => arrived);
      assert.is(got, 1);
    } finally {
      p.close();
    }
  });

  test('listen: stale socket files are replaced, live ones and other files refused; mode applied; close unlinks', async () => {
    const path = join(dir, 'house.sock');
    const first = FdServer.listen(path, { mode: 0o600 });
    assert.is(lstatSync(path).mode & 0o777, 0o600);
    assert.throws(() => FdServer.listen(path), isCode('ERR_NATIVE', 98));
    assert.throws(() => FdServer.listen(path, { type: 'stream' }), isCode('ERR_NATIVE', 98));
    first.close();
    assert.not.ok(existsSync(path), 'close unlinked the socket file');

    // A stale socket file, as a crashed listener leaves it: bound, then the fd gone without unlink.
    const addon = native();
    const fd = addon.socket(false);
    assert.is(addon.bind(fd, encodeAddress(path)), 0);
    addon.close(fd);
    assert.ok(lstatSync(path).isSocket());
    const replaced = FdServer.listen(path);
    const accepted = new Promise<FdSocket>((resolve) => replaced.once('connection', resolve));
    const c = await FdSocket.connect(path);
    (await withTimeout('accept on the replaced socket', 5000, () => accepted)).close();
    c.close();
    replaced.close();

    const file = join(dir, 'plain-file');
    writeFileSync(file, 'keep me');
    assert.throws(() => FdServer.listen(file), isCode('ERR_INVALID_ARG'));
    assert.is(readFileSync(file, 'utf8'), 'keep me');
    assert.throws(() => FdServer.listen(join(dir, 'x'.repeat(120))), isCode('ERR_OUT_OF_RANGE'));
    assert.throws(() => FdServer.listen('@'), isCode('ERR_INVALID_ARG'));
    await FdSocket.connect(join(dir, 'nobody.sock')).then(
      () => assert.unreachable('connect to a missing path'),
      (err) => assert.ok(isCode('ERR_NATIVE', 2)(err)),
    );
  });
}

test('a peer that closes with our data unread is ERR_PEER_GONE, reported once', async () => {
  if (!available) return;
  const { dir, cleanup } = makeTempDir();
  for (const type of ['seqpacket', 'stream'] as const) {
    const p = await pair(join(dir, `${type}.sock`), { type });
    try {
      p.peer.pause();
      p.client.send(Buffer.from('never read'));
      const errors: unknown[] = [];
      p.client.on('error', (e) => errors.push(e));
      const closed = new Promise<void>((resolve) => p.client.once('close', () => resolve()));
      p.peer.close();
      await withTimeout(`${type} close`, 5000, () => closed);
      assert.is(errors.length, 1, `${type}: one error`);
      assert.ok(isRingwireError(errors[0], 'ERR_PEER_GONE'), `${type}: ${String(errors[0])}`);
    } finally {
      p.close();
    }
  }
  cleanup();
});

test('FdServer: when the poll cannot start, listen() fails cleanly and releases the poll handle, fd and socket file', () => {
  if (!available) return;
  const { dir, cleanup } = makeTempDir();
  const addon = native() as unknown as { Poller: new () => NativePoller };
  const Original = addon.Poller;
  const opened: number[] = [];
  let closed = 0;
  addon.Poller = class extends Original {
    override open(fd: number): number {
      opened.push(fd);
      return super.open(fd);
    }
    override start(): number {
      return -22; // EINVAL from uv_poll_start
    }
    override close(): number {
      closed++;
      return super.close();
    }
  };
  try {
    const address = join(dir, 'nostart.sock');
    try {
      FdServer.listen(address);
      assert.unreachable('listen succeeded with a poll that cannot start');
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_NATIVE'), String(err));
    }
    assert.is(opened.length, 1);
    assert.is(closed, 1, 'the opened poll handle was closed');
    assert.not.ok(existsSync(`/proc/self/fd/${opened[0]}`), 'the listening fd was closed');
    assert.not.ok(existsSync(address), 'the socket file was removed');
  } finally {
    addon.Poller = Original;
    cleanup();
  }
});

test.run();
