// The addon itself: it loads, reports failures as typed errors, and keeps no global state, so it
// works in worker threads (including ones terminated with live poll handles) and when loaded twice.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { isRingwireError } from '../lib/errors.js';
import { addonAvailable, addonPath, closeFd, native, type NativeAddon } from '../lib/native/native.js';
import { EventFd } from '../lib/native/eventfd.js';
import { makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';
import { witnessIsOpen } from './20-libc-witness.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());
const distLib = pathToFileURL(join(import.meta.dirname, '..', 'lib', 'native')).href;

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

function runWorker(source: string): Promise<unknown> {
  const worker = new Worker(source, { eval: true, workerData: { distLib } });
  return withTimeout('worker', 20_000, () => new Promise((resolve, reject) => {
    let result: unknown;
    worker.on('message', (m) => { result = m; });
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error(`worker exited with ${code}`))));
  })).finally(() => worker.terminate());
}

if (available) {
  test('the addon exports only system calls and reports -errno', () => {
    const addon = native();
    assert.type(addon.memfdCreate, 'function');
    assert.is(addon.close(0x7ffffff0), -9, 'close of a never-opened fd is -EBADF');
    assert.is(addon.eventfdRead(0x7ffffff0), -9);
    assert.is(addon.mmap(0x7ffffff0, 0, 4096, false), -9);
  });

  test('native arguments of the wrong shape give -EINVAL, never a crash', () => {
    const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const EINVAL = -22;
    assert.is(addon.close!('3'), EINVAL);
    assert.is(addon.close!(-1), EINVAL);
    assert.is(addon.close!(1.5), EINVAL);
    assert.is(addon.mmap!(0, -4096, 4096, true), EINVAL);
    assert.is(addon.mmap!(0, 0, 0, true), EINVAL);
    assert.is(addon.sendmsg!(0, 'text', new Int32Array(0)), EINVAL);
    assert.is(addon.sendmsg!(0, new Uint8Array(1), new Int32Array(254)), EINVAL);
    assert.is(addon.recvmsg!(0, new Uint8Array(1), new Int32Array(1), new Int32Array(1)), EINVAL);
    assert.is(addon.fstat!(0, new Float64Array(1)), EINVAL);
    assert.is(addon.eventfdWrite!(0, 0), EINVAL);
    assert.is(addon.pollWait!(0, 1, 2 ** 40), EINVAL);
  });

  test('closeFd turns errno into ERR_NATIVE with errno and syscall', () => {
    const fd = native().eventfdCreate(false);
    assert.ok(fd >= 0);
    closeFd(fd);
    assert.not.ok(witnessIsOpen(fd), 'libc agrees the fd is closed');
    try {
      closeFd(fd);
      assert.unreachable('second close must fail');
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_NATIVE'));
      assert.is(err.errno, 9);
      assert.is(err.syscall, 'close');
      assert.match(err.message, /EBADF/);
    }
  });

  test('fd arguments are validated in TypeScript before the addon is called', () => {
    assert.throws(() => closeFd(-1), (e: unknown) => isRingwireError(e, 'ERR_OUT_OF_RANGE'));
    assert.throws(() => closeFd(1.5), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
    assert.throws(() => closeFd('3' as unknown as number), (e: unknown) => isRingwireError(e, 'ERR_INVALID_ARG'));
  });

  test('a second copy of the addon in the same process has its own state', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const copy = join(dir, 'ringwire-copy.node');
      copyFileSync(addonPath, copy);
      const second = createRequire(import.meta.url)(copy) as NativeAddon;
      assert.is.not(second, native());
      const fd = second.eventfdCreate(false);
      assert.ok(fd >= 0);
      const poller = new second.Poller();
      assert.is(poller.open(fd), 0);
      const fired = new Promise<void>((resolve) => {
        assert.is(poller.start(second.pollEvents.readable, () => { second.eventfdRead(fd); resolve(); }), 0);
      });
      // Signalled through the first copy: both see the same kernel object, not each other's state.
      assert.is(native().eventfdWrite(fd, 1), 0);
      await withTimeout('poll in the second copy', 5000, () => fired);
      poller.close();
      assert.is(second.close(fd), 0);
    } finally {
      cleanup();
    }
  });

  test('the addon loads and works in a worker thread', async () => {
    const result = await runWorker(`
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { Region } = await import(workerData.distLib + '/region.js');
        const { EventFd } = await import(workerData.distLib + '/eventfd.js');
        const r = Region.create('worker-region', 4096);
        new Int32Array(r.buffer)[0] = 7;
        const e = EventFd.create();
        await new Promise((resolve) => { e.onReadable(() => { e.drain(); resolve(); }); e.signal(); });
        e.close();
        r.close();
        parentPort.postMessage(new Int32Array(r.buffer)[0]);
      })().catch((err) => { throw err; });
    `);
    assert.is(result, 7);
  });

  test('terminating a worker with a live poll handle and open fds shuts it down cleanly', async () => {
    const before = openFdCount();
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.distLib + '/eventfd.js').then(({ EventFd }) => {
        const e = EventFd.create();
        e.onReadable(() => e.drain());
        parentPort.postMessage(e.fd);
      });
    `, { eval: true, workerData: { distLib } });
    try {
      const fd = await withTimeout('worker start', 20_000, () => new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      }));
      assert.ok(witnessIsOpen(fd));
      const code = await withTimeout('worker terminate', 20_000, () => worker.terminate());
      assert.is(code, 1, 'terminate() reports exit code 1');
      // The eventfd itself belonged to JS (not closed by terminate); close it so the count matches.
      closeFd(fd);
      assert.is(openFdCount(), before);
    } finally {
      await worker.terminate();
    }
  });

  test('EventFd in the main thread keeps working after workers come and go', () => {
    const e = EventFd.create();
    e.signal(3);
    assert.is(e.drain(), 3);
    e.close();
  });
}

test.run();
