// eventfd doorbells: counter semantics, event-loop readiness through uv_poll (with microtasks run
// inside the callback), blocking waits with timeouts, ownership of received fds, and close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { isRingwireError } from '../lib/errors.js';
import { addonAvailable, native } from '../lib/native/native.js';
import { EventFd } from '../lib/native/eventfd.js';
import { EventFdDoorbell } from '../lib/native/doorbell-eventfd.js';
import { Region } from '../lib/native/region.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';
import { witnessCloexec, witnessIsOpen, witnessNonblocking } from './20-libc-witness.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());
const eventfdModule = new URL('../lib/native/eventfd.js', import.meta.url).href;
const doorbellModule = new URL('../lib/native/doorbell-eventfd.js', import.meta.url).href;
const witnessModule = new URL('./20-libc-witness.js', import.meta.url).href;

/** Runs an ES module script in a child and returns the JSON it prints; a child that hangs fails the test. */
async function runChild(what: string, script: string, env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>> {
  const children = new Children();
  try {
    const child = children.add(spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env }));
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { err += d; });
    const code = await withTimeout(what, 10_000, () => new Promise((resolve) => child.on('exit', resolve)));
    assert.is(code, 0, `${what}: child exit code; stderr: ${err}`);
    return { ...JSON.parse(out) as Record<string, unknown>, stderr: err };
  } finally {
    await children.killAll();
  }
}

if (available) {
  test('create: non-blocking, close-on-exec; signal adds, drain reads and resets', () => {
    const e = EventFd.create();
    try {
      assert.ok(witnessCloexec(e.fd));
      assert.ok(witnessNonblocking(e.fd));
      assert.is(e.drain(), 0, 'nothing pending: 0, without blocking');
      e.signal();
      e.signal(41);
      assert.is(e.drain(), 42);
      assert.is(e.drain(), 0);
      assert.throws(() => e.signal(0), (err: unknown) => isRingwireError(err, 'ERR_OUT_OF_RANGE'));
      assert.throws(() => e.signal(1.5), (err: unknown) => isRingwireError(err, 'ERR_OUT_OF_RANGE'));
    } finally {
      e.close();
    }
  });

  test('semaphore mode takes one per drain', () => {
    const e = EventFd.create({ semaphore: true });
    e.signal(3);
    assert.equal([e.drain(), e.drain(), e.drain(), e.drain()], [1, 1, 1, 0]);
    e.close();
  });

  test('onReadable fires on the loop, runs microtasks inside the callback, and stops with offReadable', async () => {
    const e = EventFd.create();
    const order: string[] = [];
    try {
      await withTimeout('onReadable', 5000, () => new Promise<void>((resolve) => {
        e.onReadable(() => {
          order.push(`readable ${e.drain()}`);
          Promise.resolve().then(() => order.push('microtask'));
          setImmediate(() => {
            order.push('immediate');
            resolve();
          });
        });
        e.signal(5);
      }));
      assert.equal(order, ['readable 5', 'microtask', 'immediate'], 'microtasks drained before the loop moves on');

      e.offReadable();
      let fired = 0;
      e.signal();
      // One loop turn: a poll phase (where a live handle would fire) then this immediate.
      await new Promise((resolve) => setImmediate(resolve));
      assert.is(order.length, 3, 'the old callback no longer fires');
      e.onReadable(() => {
        fired++;
        e.drain();
      });
      await withTimeout('re-armed', 5000, async () => {
        while (fired === 0) await new Promise((resolve) => setImmediate(resolve));
      });
      assert.is(fired, 1, 'the pending signal is seen after re-arming (level-triggered)');
    } finally {
      e.close();
    }
  });

  test('an exception thrown by the callback reaches uncaughtException, not a crash', async () => {
    const e = EventFd.create();
    const seen = new Promise<unknown>((resolve) => process.once('uncaughtException', resolve));
    e.onReadable(() => {
      e.drain();
      e.offReadable();
      throw new Error('thrown from onReadable');
    });
    e.signal();
    const err = await withTimeout('uncaughtException', 5000, () => seen);
    assert.match(String(err), /thrown from onReadable/);
    e.close();
  });

  test('waitSync: times out when idle, returns at once when signalled, and wakes for another thread', async () => {
    const e = EventFd.create();
    try {
      const t0 = performance.now();
      assert.is(e.waitSync(50), false);
      assert.ok(performance.now() - t0 >= 45, 'waited about the timeout');
      e.signal();
      assert.is(e.waitSync(10_000), true);
      assert.is(e.waitSync(0), true, 'waitSync does not drain');
      e.drain();

      // A worker blocks in waitSync on a received fd; the main thread wakes it.
      const worker = new Worker(`
        const { workerData, parentPort } = require('node:worker_threads');
        import(workerData.mod).then(({ EventFd }) => {
          const e = EventFd.fromFd(workerData.fd);
          parentPort.postMessage('waiting');
          const rung = e.waitSync(10000);
          parentPort.postMessage(rung ? e.drain() : -1);
          e.close();
        });
      `, { eval: true, workerData: { mod: eventfdModule, fd: native().dup(e.fd) } });
      try {
        const messages: unknown[] = [];
        const done = new Promise<void>((resolve, reject) => {
          worker.on('message', (m) => {
            messages.push(m);
            if (m === 'waiting') e.signal(9);
            else resolve();
          });
          worker.on('error', reject);
        });
        await withTimeout('worker waitSync', 15_000, () => done);
        assert.equal(messages, ['waiting', 9]);
      } finally {
        await worker.terminate();
      }
    } finally {
      e.close();
    }
  });

  test('fromFd takes a received eventfd (making it non-blocking) and refuses other fds', () => {
    const blocking = native().eventfdCreate(false);
    const r = Region.create('not-an-eventfd', 4096);
    try {
      const e = EventFd.fromFd(blocking);
      assert.ok(witnessNonblocking(blocking));
      assert.is(e.drain(), 0, 'drain never blocks');
      assert.throws(() => EventFd.fromFd(r.fd), (err: unknown) => isRingwireError(err, 'ERR_INVALID_ARG'));
      assert.ok(witnessIsOpen(r.fd), 'a refused fd stays the caller\'s');
      assert.throws(() => EventFd.fromFd(0x7ffffff0), (err: unknown) => isRingwireError(err, 'ERR_NATIVE'));
      e.close();
    } finally {
      r.close();
    }
  });

  test('close releases the poll handle and the fd, is idempotent, and later calls are typed errors', async () => {
    const e = EventFd.create();
    const fd = e.fd;
    e.onReadable(() => e.drain());
    e.close();
    e.close();
    assert.is(e.fd, -1);
    assert.not.ok(witnessIsOpen(fd));
    assert.throws(() => e.signal(), (err: unknown) => isRingwireError(err, 'ERR_RING_CLOSED'));
    assert.throws(() => e.waitSync(0), (err: unknown) => isRingwireError(err, 'ERR_RING_CLOSED'));

    // A process whose only handle is a closed EventFd's poller exits by itself: nothing keeps the loop.
    const children = new Children();
    try {
      const child = children.add(spawn(process.execPath, ['--input-type=module', '-e', `
        const { EventFd } = await import(${JSON.stringify(eventfdModule)});
        const e = EventFd.create();
        e.onReadable(() => {});
        e.close();
      `], { stdio: 'inherit' }));
      const code = await withTimeout('child with a closed EventFd exits', 15_000, () => new Promise((resolve) => child.on('exit', resolve)));
      assert.is(code, 0);
    } finally {
      await children.killAll();
    }
  });

  test('EventFdDoorbell: a ring before wait is kept, waits time out, close resolves pending waits', async () => {
    const bell = EventFdDoorbell.create();
    try {
      bell.ring();
      assert.is(await bell.wait(1000), true, 'ring before wait');
      assert.is(await bell.wait(20), false, 'timeout');
      const pending = [bell.wait(10_000), bell.wait(10_000)];
      setImmediate(() => bell.ring());
      assert.equal(await withTimeout('ring wakes all waiters', 5000, () => Promise.all(pending)), [true, true]);
      assert.is(bell.waitSync(0), false);
      bell.ring();
      assert.is(bell.waitSync(1000), true);
      assert.is(bell.eventfd.drain(), 0, 'waitSync consumed the ring');
      const orphan = bell.wait(10_000);
      bell.close();
      assert.is(await orphan, false);
      await bell.wait(0).then(() => assert.unreachable('wait on a closed bell'), (err) => assert.ok(isRingwireError(err, 'ERR_RING_CLOSED')));
    } finally {
      bell.close();
    }
  });

  test('a peer that clears O_NONBLOCK on the shared description cannot make drain, signal or waitSync block', async () => {
    // In a child, because the bug being guarded against parks the whole thread in read(2)/write(2).
    const r = await runChild('eventfd calls with O_NONBLOCK cleared', `
      const { EventFd } = await import(${JSON.stringify(eventfdModule)});
      const { EventFdDoorbell } = await import(${JSON.stringify(doorbellModule)});
      const w = await import(${JSON.stringify(witnessModule)});
      const e = EventFd.create();
      const bell = new EventFdDoorbell(e);
      w.witnessClearNonblocking(e.fd);
      const out = { nonblocking: w.witnessNonblocking(e.fd), emptyDrain: e.drain() };
      e.signal(3);
      out.drain = e.drain();
      let t0 = performance.now();
      out.bellWaitSync = bell.waitSync(30);
      out.bellWaitSyncMs = performance.now() - t0;
      out.saturate = w.witnessWriteU64(e.fd, w.EVENTFD_MAX);
      try { out.fullSignal = e.signal(1); } catch (err) { out.fullSignal = err.code + ' ' + err.errno; }
      try { bell.ring(); out.fullRing = 'no throw'; } catch (err) { out.fullRing = err.code + ' ' + err.errno; }
      out.fullDrain = e.drain() > 0;
      out.afterFull = e.drain();
      console.log(JSON.stringify(out));
    `);
    assert.is(r.nonblocking, false, 'the peer did clear O_NONBLOCK');
    assert.is(r.emptyDrain, 0, 'drain at 0 returns 0 instead of blocking');
    assert.is(r.drain, 3);
    assert.is(r.bellWaitSync, false);
    assert.ok((r.bellWaitSyncMs as number) < 5000, 'waitSync returned around its timeout');
    assert.is(r.saturate, 8);
    assert.is(r.fullSignal, false, 'signal at the maximum count reports it, instead of blocking');
    assert.is(r.fullRing, 'no throw', 'a full counter counts as rung');
    assert.is(r.fullDrain, true);
    assert.is(r.afterFull, 0);
  });

  test('EventFdDoorbell.ring never throws: a closed bell is a no-op; a bell whose fd was closed behind it goes dead', () => {
    const closed = EventFdDoorbell.create();
    closed.close();
    closed.ring();
    assert.is(closed.live, false);

    const bell = EventFdDoorbell.create();
    const fd = bell.fd;
    assert.is(bell.live, true);
    native().close(fd);
    bell.ring();
    assert.is(bell.live, false, 'EBADF marks it dead');
    assert.is(bell.fd, -1, 'and the number is forgotten, so close() cannot close a file that reuses it');
    const reuse = EventFd.create();
    try {
      bell.ring();
      bell.close();
      assert.ok(witnessIsOpen(reuse.fd), 'a file that took the old number is untouched');
      reuse.signal(2);
      assert.is(reuse.drain(), 2);
    } finally {
      reuse.close();
    }
  });

  test('EventFdDoorbell: a wait() that drains a ring also wakes the waits already pending on the same bell', async () => {
    const bell = EventFdDoorbell.create();
    try {
      const first = bell.wait(10_000);
      // Rung before the loop polls the fd: the second wait's own drain takes the count.
      bell.ring();
      const second = bell.wait(10_000);
      assert.equal(await withTimeout('both waits settle', 5000, () => Promise.all([first, second])), [true, true]);

      const parked = bell.wait(10_000);
      bell.ring();
      assert.is(bell.waitSync(0), true);
      assert.is(await withTimeout('waitSync also passes the ring on', 5000, () => parked), true);
    } finally {
      bell.close();
    }
  });

  test('kernels without RWF_NOWAIT on eventfd: drain falls back to poll-then-read and still never blocks', async () => {
    const compiler = process.env.CC ?? 'cc'; // the arm64 run under qemu-user sets CC=aarch64-linux-gnu-gcc
    const cc = spawnSync(compiler, ['--version']);
    if (!requireOrSkip(`a C compiler (${compiler}) to build the preadv2 shim`, cc.status === 0)) return;
    const { dir, cleanup } = makeTempDir();
    try {
      // preadv2 as an old kernel answers RWF_NOWAIT on an eventfd; loaded ahead of libc in a child.
      writeFileSync(join(dir, 'shim.c'), `
        #define _GNU_SOURCE
        #include <errno.h>
        #include <sys/uio.h>
        #include <unistd.h>
        static ssize_t refuse(void) {
          static int told;
          if (!told++) write(2, "preadv2 refused\\n", 16);
          errno = EOPNOTSUPP;
          return -1;
        }
        /* Builds with _FILE_OFFSET_BITS=64 (node-gyp's) call the 64 name. */
        ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags) { (void)fd; (void)iov; (void)n; (void)off; (void)flags; return refuse(); }
        ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off_t off, int flags) { (void)fd; (void)iov; (void)n; (void)off; (void)flags; return refuse(); }
      `);
      const built = spawnSync(compiler, ['-shared', '-fPIC', '-o', join(dir, 'shim.so'), join(dir, 'shim.c')], { stdio: 'inherit' });
      assert.is(built.status, 0, 'shim builds');
      const r = await runChild('eventfd drain through the fallback', `
        const { EventFd } = await import(${JSON.stringify(eventfdModule)});
        const w = await import(${JSON.stringify(witnessModule)});
        const e = EventFd.create();
        w.witnessClearNonblocking(e.fd);
        const out = { nonblocking: w.witnessNonblocking(e.fd), emptyDrain: e.drain() };
        e.signal(5);
        out.drain = e.drain();
        out.again = e.drain();
        console.log(JSON.stringify(out));
      `, { ...process.env, LD_PRELOAD: join(dir, 'shim.so') });
      assert.match(r.stderr as string, /preadv2 refused/, 'the shim was in the path');
      assert.is(r.nonblocking, false);
      assert.equal([r.emptyDrain, r.drain, r.again], [0, 5, 0]);
    } finally {
      cleanup();
    }
  });
}

test.run();
