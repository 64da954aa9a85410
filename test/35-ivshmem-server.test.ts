/**
 * The ivshmem-server against a TypeScript client that speaks QEMU's side of the protocol: setup
 * order, joins, leaves, id reuse, per-client host bells, and clients that misbehave.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { IvshmemClient } from '../lib/ivshmem/client.js';
import { encodeMessage, MessageReader } from '../lib/ivshmem/protocol.js';
import { HOST_PEER_ID, IvshmemServer, MAX_QUEUED_MESSAGES } from '../lib/ivshmem/server.js';
import { addonAvailable } from '../lib/native/native.js';
import { EventFd } from '../lib/native/eventfd.js';
import { Region } from '../lib/native/region.js';
import { FdServer, FdSocket } from '../lib/native/unix-socket.js';
import { makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';

const ready = (): boolean => requireOrSkip('the native addon (npm install)', addonAvailable());
const openFds = (): number => readdirSync('/proc/self/fd').length;
const once = <T extends unknown[]>(em: { once(ev: string, fn: (...a: T) => void): unknown }, ev: string): Promise<T> =>
  withTimeout(`event ${ev}`, 5000, () => new Promise<T>((r) => em.once(ev, (...a: T) => r(a))));

async function withServer(fn: (server: IvshmemServer, path: string) => Promise<void>, opts: { maxPeers?: number; vectors?: number } = {}): Promise<void> {
  const { dir, cleanup } = makeTempDir('ringwire-ivshmem-');
  const path = join(dir, 'ivshmem.sock');
  const server = IvshmemServer.listen({ path, size: 1 << 16, ...opts });
  try {
    await withTimeout('ivshmem server test', 30_000, () => fn(server, path));
  } finally {
    server.close();
    cleanup();
  }
}

test('the message reader frames int64s and gives a chunk\'s fd to its last message', () => {
  const r = new MessageReader();
  const two = new Uint8Array([...encodeMessage(0), ...encodeMessage(-1)]);
  assert.equal(r.push(two.subarray(0, 5), []), []);
  assert.equal(r.push(two.subarray(5), [42]), [{ value: 0, fd: -1 }, { value: -1, fd: 42 }]);
  assert.equal(r.push(encodeMessage(65535), []), [{ value: 65535, fd: -1 }]);
  const big = new Uint8Array(8).fill(0x7f);
  assert.ok(Number.isNaN(r.push(big, [])[0]!.value), 'an int64 past 2^53 must not pass as a number');
  for (const [chunk, fds] of [[encodeMessage(1), [3, 4]], [new Uint8Array(0), [3]], [encodeMessage(1).subarray(0, 4), [3]]] as const) {
    try {
      new MessageReader().push(chunk, fds);
      assert.unreachable('accepted a malformed chunk');
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_IVSHMEM_PROTOCOL'), String(err));
    }
  }
});

test('listen validates its options with typed errors', () => {
  if (!ready()) return;
  for (const [opts, code] of [
    [{ path: '@x', size: 3 << 12 }, 'ERR_OUT_OF_RANGE'],
    [{ path: '@x', size: 1024 }, 'ERR_OUT_OF_RANGE'],
    [{ path: '@x', size: 4096, vectors: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ path: '@x', size: 4096, maxPeers: 1 }, 'ERR_OUT_OF_RANGE'],
    [{ path: 7, size: 4096 }, 'ERR_INVALID_ARG'],
    [{ path: '@x', size: '4096' }, 'ERR_INVALID_ARG'],
  ] as const) {
    assert.throws(() => IvshmemServer.listen(opts as never), (err: unknown) => isRingwireError(err, code), JSON.stringify(opts));
  }
});

test('a client gets version, id, the memory, the host peer and its own vectors', async () => {
  if (!ready()) return;
  await withServer(async (server, path) => {
    const joined = once<[{ id: number; pid: number }]>(server, 'join');
    const a = await IvshmemClient.connect(path);
    try {
      const [info] = await joined;
      assert.is(a.id, 1, 'id 0 is the host pseudo-peer');
      assert.is(info.id, 1);
      assert.is(info.pid, process.pid);
      assert.equal(a.peers(), [HOST_PEER_ID]);
      assert.is(a.region.size, 1 << 16);
      assert.equal(a.region.seals(), { shrink: true, grow: true, seal: true, write: false, futureWrite: false });
      new Uint8Array(server.region.buffer)[100] = 0x5a;
      assert.is(new Uint8Array(a.region.buffer)[100], 0x5a, 'client and server map the same memory');
      server.ring(a.id, 1);
      assert.is(a.ownBell(1).drain(), 1);
      assert.is(a.ownBell(0).drain(), 0);
      a.ring(HOST_PEER_ID, 0);
      assert.is(server.hostBell(a.id, 0).drain(), 1);
    } finally {
      a.close();
    }
  });
});

test('several clients: joins and leaves reach the others, host bells are per client, ids are reused', async () => {
  if (!ready()) return;
  await withServer(async (server, path) => {
    const a = await IvshmemClient.connect(path);
    const aSeesB = once<[number]>(a, 'join');
    const b = await IvshmemClient.connect(path);
    const c = await IvshmemClient.connect(path, { vectors: 1 });
    try {
      assert.is((await aSeesB)[0], b.id);
      assert.equal(b.peers(), [HOST_PEER_ID, a.id]);
      assert.equal(server.peers(), [1, 2, 3]);
      a.ring(b.id, 1);
      assert.is(b.ownBell(1).drain(), 1);
      assert.is(b.ownBell(0).drain(), 0);
      b.ring(HOST_PEER_ID, 0);
      b.ring(HOST_PEER_ID, 0);
      assert.is(server.hostBell(b.id, 0).drain(), 2, 'the host knows which client rang');
      assert.is(server.hostBell(a.id, 0).drain(), 0);
      assert.throws(() => c.ring(a.id, 1), (err: unknown) => isRingwireError(err, 'ERR_OUT_OF_RANGE'), 'a 1-vector client closes extra fds');

      const aSeesLeave = once<[number]>(a, 'leave');
      const serverSeesLeave = once<[number, unknown]>(server, 'leave');
      const bId = b.id;
      b.close();
      assert.is((await aSeesLeave)[0], bId);
      assert.equal(await serverSeesLeave, [bId, undefined]);
      assert.equal(a.peers(), [HOST_PEER_ID, c.id]);
      assert.throws(() => server.hostBell(bId, 0), (err: unknown) => isRingwireError(err, 'ERR_PEER_GONE'));
      const d = await IvshmemClient.connect(path);
      assert.is(d.id, bId, 'the lowest free id is reused');
      d.close();
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });
});

test('hostile clients: bytes, fds, refusals and churn end only their own connection and leak no fds', async () => {
  if (!ready()) return;
  await withServer(async (server, path) => {
    const errors: string[] = [];
    server.on('client-error', (err) => errors.push(err.code));
    const good = await IvshmemClient.connect(path);
    const before = openFds();
    try {
      for (let i = 0; i < 3; i++) {
        const raw = await FdSocket.connect(path, { type: 'stream' });
        const gone = once(raw, 'close');
        const stray = EventFd.create();
        // Bytes alone; bytes with an fd; more fds than the server accepts in one message.
        raw.send(new Uint8Array([1, 2, 3]), i === 0 ? [] : Array(i === 1 ? 1 : 12).fill(stray.fd));
        stray.close();
        await gone;
      }
      for (let i = 0; i < 50; i++) (await FdSocket.connect(path, { type: 'stream' })).close();
      const full = await IvshmemClient.connect(path);
      const refused = await IvshmemClient.connect(path).then(() => 'accepted', (err: unknown) => (isRingwireError(err) ? err.code : String(err)));
      assert.is(refused, 'ERR_PEER_GONE', 'a client past maxPeers is disconnected');
      full.close();
      await withTimeout('the server to settle', 5000, async () => {
        while (server.peers().length !== 1 || openFds() !== before) await new Promise((r) => setTimeout(r, 5));
      });
      assert.equal(errors.sort(), ['ERR_IVSHMEM_PROTOCOL', 'ERR_IVSHMEM_PROTOCOL', 'ERR_IVSHMEM_PROTOCOL', 'ERR_MSG_TRUNCATED'], errors.join(','));
      good.ring(HOST_PEER_ID, 1);
      assert.is(server.hostBell(good.id, 1).drain(), 1, 'the well-behaved client is still served');
    } finally {
      good.close();
    }
  }, { maxPeers: 3 });
});

test('a client that never reads is disconnected before its queue grows without bound', async () => {
  if (!ready()) return;
  await withServer(async (server, path) => {
    const stuck = await FdSocket.connect(path, { type: 'stream' });
    stuck.pause();
    let left: [number, { code: string } | undefined] | undefined;
    server.on('leave', (id, reason) => {
      if (id === 1) left = [id, reason];
    });
    let churns = 0;
    while (!left && churns < 2000) {
      const c = await IvshmemClient.connect(path);
      const gone = once(server, 'leave');
      c.close();
      await gone;
      churns++;
    }
    assert.ok(left, `still connected after ${churns} churns`);
    assert.is(left![0], 1);
    assert.is(left![1]?.code, 'ERR_IVSHMEM_PROTOCOL');
    assert.ok(churns * 3 > MAX_QUEUED_MESSAGES / 2, `dropped after only ${churns} churns`);
    stuck.close();
  });
});

test('the client rejects a server that breaks the protocol and closes what it received', async () => {
  if (!ready()) return;
  const { dir, cleanup } = makeTempDir('ringwire-ivshmem-');
  const path = join(dir, 'fake.sock');
  // Each step: the value and the fd sent with it (none, an eventfd, or a memfd).
  const scripts: Array<Array<[number, 'none' | 'eventfd' | 'memfd']>> = [
    [[1, 'none']],
    [[0, 'none'], [70000, 'none']],
    [[0, 'none'], [1, 'none'], [-1, 'none']],
    [[0, 'none'], [1, 'eventfd']],
    [[0, 'none'], [1, 'none'], [-1, 'eventfd']],
    [[0, 'none'], [1, 'none'], [-1, 'memfd'], [-2, 'eventfd']],
    [[0, 'none'], [1, 'none'], [-1, 'memfd'], [1, 'memfd']],
    [[0, 'none'], [1, 'none'], [-1, 'memfd'], [0, 'eventfd'], [1, 'none']],
  ];
  let script = 0;
  const fake = FdServer.listen(path, { type: 'stream' });
  const bell = EventFd.create();
  const mem = Region.create('fake-ivshmem', 4096);
  // Sealed as our server does, so the scripts get past the memory to the step they break.
  mem.seal({ shrink: true });
  fake.on('connection', (sock) => {
    for (const [value, fd] of scripts[script++]!) sock.send(encodeMessage(value), fd === 'none' ? [] : [fd === 'memfd' ? mem.fd : bell.fd]);
  });
  const before = openFds();
  try {
    for (let i = 0; i < scripts.length; i++) {
      const r = await IvshmemClient.connect(path, { timeoutMs: 3000 }).then(() => 'connected', (err: unknown) => (isRingwireError(err) ? err.code : String(err)));
      assert.is(r, 'ERR_IVSHMEM_PROTOCOL', `script ${i}`);
      // The fake server's end closes once it sees our hang-up, a loop turn or two later.
      await withTimeout(`fds of broken setup ${i} to be closed`, 5000, async () => {
        while (openFds() !== before) await new Promise((r) => setTimeout(r, 5));
      });
    }
  } finally {
    fake.close();
    bell.close();
    mem.close();
    cleanup();
  }
});

test('the client refuses shared memory that is not sealed against shrinking (it could SIGBUS us later)', async () => {
  if (!ready()) return;
  const { dir, cleanup } = makeTempDir('ringwire-ivshmem-');
  const path = join(dir, 'unsealed.sock');
  const fake = FdServer.listen(path, { type: 'stream' });
  const mem = Region.create('unsealed-ivshmem', 4096);
  fake.on('connection', (sock) => {
    sock.send(encodeMessage(0));
    sock.send(encodeMessage(1));
    sock.send(encodeMessage(-1), [mem.fd]);
  });
  const before = openFds();
  try {
    const err = await IvshmemClient.connect(path, { timeoutMs: 3000 }).then(() => undefined, (e: unknown) => e);
    assert.ok(isRingwireError(err, 'ERR_IVSHMEM_PROTOCOL'), String(err));
    assert.match(String((err as Error).cause), /missing required seals: shrink/);
    await withTimeout('the refused memory fd to be closed', 5000, async () => {
      while (openFds() !== before) await new Promise((r) => setTimeout(r, 5));
    });
  } finally {
    fake.close();
    mem.close();
    cleanup();
  }
});

test.run();
