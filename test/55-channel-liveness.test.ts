// Liveness: a peer process killed with SIGKILL is noticed through its socket's end-of-file. Pending
// requests reject with ERR_PEER_GONE, the channel closes and gives back its fds, the server keeps
// serving, and a client reconnects to a restarted server. Then 1,000 connect/close cycles must not
// leak fds or (after GC) memfd mappings.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen, type Channel } from '../lib/index.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';
import { startPeer } from './workers/channel-spawn.js';

const run = requireOrSkip('native addon', addonAvailable());

// Only the kinds of fd ringwire opens are counted (UNIX sockets, eventfds, its memfds): Node opens
// files of its own at times (the CA bundle NODE_EXTRA_CA_CERTS names, read lazily on Node 22), and
// counting every fd made this test fail for them.
const RINGWIRE_KINDS = /^(socket:|anon_inode:\[eventfd\]$|\/memfd:ringwire-)/;

function ringwireFds(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    if (RINGWIRE_KINDS.test(target)) out.push(`${fd}=${target}`);
  }
  return out;
}

function assertSameFds(before: string[], what: string): void {
  const after = ringwireFds();
  assert.is(after.length, before.length, `${what}: before [${before.join(' ')}], after [${after.join(' ')}]`);
}

function ringMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('memfd:ringwire-')).length;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    (globalThis as { gc?: () => void }).gc?.();
  }
}

if (run) {
  test('a server killed with SIGKILL: pending requests reject with ERR_PEER_GONE promptly, fds come back, the client reconnects', () => withTimeout('server killed', 20000, async () => {
    const children = new Children();
    const { dir, cleanup } = makeTempDir();
    const address = join(dir, 'svc.sock');
    try {
      const fds0 = ringwireFds();
      const { child } = await startPeer(children, { role: 'serve', address, slow: true });
      const ch = await connect(address);
      assert.is(ch.peer.pid, child.pid, 'SO_PEERCRED names the server process');
      const pending = Array.from({ length: 5 }, (_, i) => ch.request(Buffer.from(`r${i}`), { timeoutMs: 60_000 }).then(() => null, (e) => e));
      await new Promise((r) => setTimeout(r, 20));
      const t0 = performance.now();
      child.kill('SIGKILL');
      const errors = await Promise.all(pending);
      const noticedMs = performance.now() - t0;
      for (const e of errors) assert.ok(isRingwireError(e, 'ERR_PEER_GONE'), String(e));
      assert.ok(noticedMs < 1000, `noticed in ${noticedMs.toFixed(0)} ms`);
      const why = await ch.whenClosed();
      assert.ok(isRingwireError(why, 'ERR_PEER_GONE'));
      await settle();
      assertSameFds(fds0, 'socket and eventfds closed');
      // A restarted server at the same path (its stale socket file replaced) serves the client again.
      await startPeer(children, { role: 'serve', address });
      const again = await connect(address);
      assert.is((await again.request(Buffer.from('back'))).toString(), 'back');
      await again.close();
    } finally {
      await children.killAll();
      cleanup();
    }
  }));

  test('a client killed with SIGKILL: its channel closes with ERR_PEER_GONE and the server serves the next one', () => withTimeout('client killed', 20000, async () => {
    const children = new Children();
    const address = `@ringwire-test-55-${process.pid}`;
    const closes: Array<Promise<unknown>> = [];
    const server = await listen(address, {}, (ch: Channel) => {
      ch.handle((r) => r);
      closes.push(ch.whenClosed());
    });
    try {
      const { child, first } = await startPeer(children, { role: 'connect', address, count: 3, hold: true });
      assert.is(first.done, 3);
      assert.is(server.connections, 1);
      child.kill('SIGKILL');
      const why = await closes[0];
      assert.ok(isRingwireError(why, 'ERR_PEER_GONE'), String(why));
      assert.is(server.connections, 0);
      const next = await startPeer(children, { role: 'connect', address, count: 10 });
      assert.is(next.first.done, 10);
    } finally {
      await children.killAll();
      server.destroyConnections();
      await server.close();
    }
  }));

  test('1,000 connect/request/close cycles leak no fds and no mappings', () => withTimeout('cycles', 120000, async () => {
    const address = `@ringwire-test-55-cycles-${process.pid}`;
    const server = await listen(address, {}, (ch) => ch.handle((r) => r));
    try {
      // Warm up once so lazily created handles (the addon, timers) are not counted as leaks.
      const warm = await connect(address, { sendRingBytes: 4096, receiveRingBytes: 4096 });
      await warm.close();
      await settle();
      const fds0 = ringwireFds();
      const maps0 = ringMappings();
      for (let i = 0; i < 1000; i++) {
        const ch = await connect(address, { sendRingBytes: 4096, receiveRingBytes: 4096 });
        assert.is((await ch.request(Buffer.from([i & 0xff]))).readUInt8(0), i & 0xff);
        if (i % 2 === 0) await ch.close();
        else {
          ch.destroy();
          await ch.whenClosed();
        }
      }
      await new Promise((r) => setTimeout(r, 50));
      await settle();
      assert.is(server.connections, 0);
      assertSameFds(fds0, 'fd count back to where it started');
      const maps = ringMappings();
      // Mappings go with their SharedArrayBuffers at GC; a few may still await the collector.
      assert.ok(maps <= maps0 + 16, `ring mappings ${maps0} before, ${maps} after 1000 cycles`);
    } finally {
      server.destroyConnections();
      await server.close();
    }
  }));
}

test.run();
