// eventfd doorbells: counter semantics, event-loop readiness through uv_poll (with microtasks run
// inside the callback), blocking waits with timeouts, ownership of received fds, and close.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { isRingwireError } from '../lib/errors.js';
import { addonAvailable, native } from '../lib/native.js';
import { EventFd } from '../lib/eventfd.js';
import { EventFdDoorbell } from '../lib/doorbell-eventfd.js';
import { Region } from '../lib/region.js';
import { Children, requireOrSkip, withTimeout } from './helpers.js';
import { witnessCloexec, witnessIsOpen, witnessNonblocking } from './20-libc-witness.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());
const eventfdModule = new URL('../lib/eventfd.js', import.meta.url).href;

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
}

test.run();
