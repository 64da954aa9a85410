// Fd passing between processes: a parent hands a sealed memfd and an eventfd to a child over a UNIX
// socket; the child maps the memory, writes into it and rings the eventfd; the parent checks the
// bytes, the doorbell and the child's credentials. This file is also the child (RINGWIRE_FD_CHILD).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { addonAvailable } from '../lib/native/native.js';
import { EventFd } from '../lib/native/eventfd.js';
import { Region } from '../lib/native/region.js';
import { FdServer, FdSocket, type SocketType } from '../lib/native/unix-socket.js';
import { Children, makeTempDir, prng, requireOrSkip, testSeed, withTimeout } from './helpers/index.js';
import { witnessCloexec, witnessPid } from './20-libc-witness.js';

const REGION_SIZE = 1 << 16;

/** The child: connect, take [memfd, eventfd], fill the region from the seed, ring, report, exit. */
async function child(address: string, type: SocketType): Promise<void> {
  const sock = await FdSocket.connect(address, { type });
  const [data, fds] = await new Promise<[Buffer, number[]]>((resolve) => sock.once('message', (d, f) => resolve([d, f])));
  const seed = data.readUInt32LE(0);
  const [memfd, efd] = fds as [number, number];
  const cloexec = witnessCloexec(memfd) && witnessCloexec(efd);
  const region = Region.fromFd(memfd, { writable: true });
  const bytes = new Uint8Array(region.buffer);
  bytes.set(prng(seed).bytes(REGION_SIZE - 4), 4);
  // Publish the pid last, with release semantics, so the parent sees the bytes once it sees the pid.
  Atomics.store(new Int32Array(region.buffer), 0, witnessPid());
  const bell = EventFd.fromFd(efd);
  bell.signal();
  sock.send(Buffer.from(JSON.stringify({ cloexec, seals: region.seals() })));
  bell.close();
  region.close();
  sock.close();
}

if (process.env.RINGWIRE_FD_CHILD) {
  const [address, type] = JSON.parse(process.env.RINGWIRE_FD_CHILD) as [string, SocketType];
  await child(address, type);
} else {
  const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());
  const self = fileURLToPath(import.meta.url);

  const cases: Array<[SocketType, 'path' | 'abstract']> = [['seqpacket', 'path'], ['seqpacket', 'abstract'], ['stream', 'path'], ['stream', 'abstract']];
  for (const [type, kind] of cases) {
    test(`${type} over ${kind}: a child maps a passed memfd, writes it, rings a passed eventfd`, async () => {
      if (!available) return;
      const { dir, cleanup } = makeTempDir();
      const children = new Children();
      const address = kind === 'path' ? join(dir, 'parent.sock') : `@ringwire-fd-child-${process.pid}-${type}`;
      const server = FdServer.listen(address, { type, mode: 0o600 });
      const region = Region.create('for-child', REGION_SIZE);
      const bell = EventFd.create();
      try {
        region.seal({ shrink: true, grow: true, seal: true });
        const seed = testSeed();
        const connected = new Promise<FdSocket>((resolve) => server.once('connection', resolve));
        const proc = children.add(spawn(process.execPath, [self], {
          stdio: ['ignore', 'inherit', 'inherit'],
          env: { ...process.env, RINGWIRE_FD_CHILD: JSON.stringify([address, type]) },
        }));
        const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
        const sock = await withTimeout('child connects', 20_000, () => connected);
        assert.is(sock.peerCred().pid, proc.pid, 'SO_PEERCRED names the child');
        assert.is(sock.peerCred().uid, process.getuid!());

        const rung = new Promise<number>((resolve) => bell.onReadable(() => {
          const n = bell.drain();
          if (n > 0) resolve(n);
        }));
        const report = new Promise<string>((resolve) => {
          let text = '';
          sock.on('message', (d) => { text += d.toString(); });
          sock.once('close', () => resolve(text));
        });
        const seedMsg = Buffer.alloc(4);
        seedMsg.writeUInt32LE(seed);
        sock.send(seedMsg, [region.fd, bell.fd]);

        assert.is(await withTimeout('doorbell from the child', 20_000, () => rung), 1);
        assert.is(Atomics.load(new Int32Array(region.buffer), 0), proc.pid, 'the child wrote its pid');
        const expected = prng(seed).bytes(REGION_SIZE - 4);
        assert.ok(Buffer.from(region.buffer, 4).equals(Buffer.from(expected)), 'every byte the child wrote is visible');
        const result = JSON.parse(await withTimeout('child report and EOF', 20_000, () => report)) as { cloexec: boolean; seals: Record<string, boolean> };
        assert.ok(result.cloexec, 'the child received close-on-exec fds');
        assert.equal(result.seals, { shrink: true, grow: true, write: false, futureWrite: false, seal: true }, 'seals travel with the fd');
        assert.is(await withTimeout('child exit', 20_000, () => exited), 0);
      } finally {
        await children.killAll();
        bell.close();
        region.close();
        server.close();
        cleanup();
      }
    });
  }

  test.run();
}
