// Regions: memfd creation, seals (checked against libc through ffi-rs), read-only and read-write
// mappings, mapping files by path, and every kind of bad input ending in a typed error, not SIGBUS.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { closeSync, readFileSync, readlinkSync, writeFileSync, writeSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isRingwireError, type ErrorCode } from '../lib/errors.js';
import { addonAvailable, native } from '../lib/native/native.js';
import { Region, truncateFd } from '../lib/native/region.js';
import { EventFd } from '../lib/native/eventfd.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';
import { SEAL, witnessCloexec, witnessIsOpen, witnessSeals, witnessSize } from './20-libc-witness.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());
const regionModule = new URL('../lib/native/region.js', import.meta.url).href;

function throwsCode(fn: () => unknown, code: ErrorCode, errno?: number): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isRingwireError(err, code), `expected ${code}, got ${String(err)}`);
    if (errno !== undefined) assert.is(err.errno, errno, `errno of ${err.message}`);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

/** A second, independent fd for the same memfd, as a peer would receive it. */
function dupFd(fd: number): number {
  const r = native().dup(fd);
  assert.ok(r >= 0);
  return r;
}

const EPERM = 1;
const EBADF = 9;
const ENOENT = 2;
const EBUSY = 16;
const ENODEV = 19;

if (available) {
  test('create: a close-on-exec memfd of the asked size, mapped read-write as a SharedArrayBuffer', () => {
    const r = Region.create('ringwire-test', 10_000);
    try {
      assert.ok(r.buffer instanceof SharedArrayBuffer);
      assert.is(r.buffer.byteLength, 10_000);
      assert.is(r.size, 10_000);
      assert.ok(r.writable);
      assert.ok(witnessCloexec(r.fd), 'FD_CLOEXEC set, as libc sees it');
      assert.is(witnessSize(r.fd), 10_000, 'file size, as libc sees it');
      assert.match(readlinkSync(`/proc/self/fd/${r.fd}`), /^\/memfd:ringwire-test/);
      assert.equal(r.seals(), { shrink: false, grow: false, write: false, futureWrite: false, seal: false });
      assert.is(witnessSeals(r.fd), 0);
      const words = new Int32Array(r.buffer);
      Atomics.store(words, 5, 1234);
      const peer = Region.fromFd(dupFd(r.fd), { writable: false });
      assert.is(Atomics.load(new Int32Array(peer.buffer), 5), 1234, 'a second mapping sees the write');
      peer.close();
    } finally {
      r.close();
    }
  });

  test('seals: shrink, grow and future-write stop a peer from truncating, writing or remapping writable', () => {
    const r = Region.create('sealed', 8192);
    try {
      new Uint8Array(r.buffer).fill(7, 0, 16);
      r.seal({ shrink: true, grow: true, futureWrite: true });
      assert.equal(r.seals(), { shrink: true, grow: true, write: false, futureWrite: true, seal: false });
      assert.is(witnessSeals(r.fd), SEAL.SHRINK | SEAL.GROW | SEAL.FUTURE_WRITE, 'libc sees the same seals');

      const peerFd = dupFd(r.fd);
      throwsCode(() => truncateFd(peerFd, 4096), 'ERR_NATIVE', EPERM);
      throwsCode(() => truncateFd(peerFd, 16384), 'ERR_NATIVE', EPERM);
      assert.throws(() => writeSync(peerFd, Buffer.from('x'), 0, 1, 0), /EPERM/);
      throwsCode(() => Region.fromFd(peerFd, { writable: true }), 'ERR_NATIVE', EPERM);
      assert.ok(witnessIsOpen(peerFd), 'a failed fromFd leaves the fd with the caller');

      const peer = Region.fromFd(peerFd, { writable: false });
      assert.is(witnessSize(r.fd), 8192, 'size unchanged after the refused truncations');
      // The owner's existing writable mapping keeps working and the peer sees it.
      new Uint8Array(r.buffer)[100] = 99;
      assert.is(new Uint8Array(peer.buffer)[100], 99);
      assert.is(new Uint8Array(peer.buffer)[0], 7);
      peer.close();
    } finally {
      r.close();
    }
  });

  test('seals: write is refused while a writable mapping exists; seal locks the set', () => {
    const r = Region.create('seal-write', 4096);
    try {
      throwsCode(() => r.seal({ write: true }), 'ERR_NATIVE', EBUSY);
      r.seal({ shrink: true, seal: true });
      assert.is(witnessSeals(r.fd), SEAL.SHRINK | SEAL.SEAL);
      throwsCode(() => r.seal({ grow: true }), 'ERR_NATIVE', EPERM);
      throwsCode(() => r.seal({ grow: 'yes' } as never), 'ERR_INVALID_ARG');
      assert.equal(r.seals().grow, false);
    } finally {
      r.close();
    }
  });

  test('closeFd keeps the mapping; the fd is really closed; close is idempotent', () => {
    const r = Region.create('closefd', 4096);
    const fd = r.fd;
    r.closeFd();
    assert.is(r.fd, -1);
    assert.not.ok(witnessIsOpen(fd));
    const bytes = new Uint8Array(r.buffer);
    bytes[4095] = 1;
    assert.is(bytes[4095], 1);
    r.close();
    throwsCode(() => r.seals(), 'ERR_RING_CLOSED');
  });

  test('mapPath: a /dev/shm file at aligned and unaligned offsets, read-only and read-write', () => {
    const path = join('/dev/shm', `ringwire-test-${process.pid}`);
    const content = Buffer.alloc(3 * 4096);
    for (let i = 0; i < content.length; i++) content[i] = i % 251;
    writeFileSync(path, content);
    try {
      const aligned = Region.mapPath(path, { writable: false, offset: 4096, size: 4096 });
      assert.is(aligned.fd, -1, 'mapPath keeps no fd');
      assert.equal(Buffer.from(new Uint8Array(aligned.buffer)), content.subarray(4096, 8192));
      const unaligned = Region.mapPath(path, { writable: false, offset: 100 });
      assert.is(unaligned.size, content.length - 100, 'size defaults to the rest of the file');
      assert.equal(Buffer.from(new Uint8Array(unaligned.buffer)), content.subarray(100));
      const rw = Region.mapPath(path, { writable: true, offset: 5000, size: 10 });
      new Uint8Array(rw.buffer).set([1, 2, 3]);
      assert.equal([...readFileSync(path).subarray(5000, 5003)], [1, 2, 3], 'writes reach the file');
      assert.equal([...new Uint8Array(unaligned.buffer, 4900, 3)], [1, 2, 3], 'and other mappings');
      throwsCode(() => rw.seal({ shrink: true }), 'ERR_RING_CLOSED');
      for (const r of [aligned, unaligned, rw]) r.close();
    } finally {
      unlinkSync(path);
    }
  });

  test('mapping past the end of a file is a typed error, not SIGBUS', () => {
    const r = Region.create('short', 4096);
    const { dir, cleanup } = makeTempDir();
    try {
      throwsCode(() => Region.fromFd(r.fd, { writable: false, size: 8192 }), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.fromFd(r.fd, { writable: false, offset: 4096 }), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.fromFd(r.fd, { writable: false, offset: 4000, size: 97 }), 'ERR_OUT_OF_RANGE');
      const empty = join(dir, 'empty');
      writeFileSync(empty, '');
      throwsCode(() => Region.mapPath(empty, { writable: false }), 'ERR_OUT_OF_RANGE');
      const tail = Region.fromFd(dupFd(r.fd), { writable: false, offset: 4000, size: 96 });
      assert.is(tail.buffer.byteLength, 96);
      tail.close();
    } finally {
      r.close();
      cleanup();
    }
  });

  test('bad arguments: negative or fractional offsets and sizes, bad fds, unmappable fds, missing paths', () => {
    const r = Region.create('args', 4096);
    try {
      throwsCode(() => Region.fromFd(r.fd, { writable: false, offset: -4096 }), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.fromFd(r.fd, { writable: false, offset: 1.5 }), 'ERR_INVALID_ARG');
      throwsCode(() => Region.fromFd(r.fd, { writable: false, size: 0 }), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.fromFd(r.fd, { writable: false, size: -1 }), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.fromFd(r.fd, { writable: 1 } as never), 'ERR_INVALID_ARG');
      throwsCode(() => Region.fromFd(r.fd, null as never), 'ERR_INVALID_ARG');
      throwsCode(() => Region.fromFd(-1, { writable: false }), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.create('x', 0), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.create('x', 10.5), 'ERR_INVALID_ARG');
      throwsCode(() => Region.create('x'.repeat(300), 4096), 'ERR_OUT_OF_RANGE');
      throwsCode(() => truncateFd(r.fd, -1), 'ERR_OUT_OF_RANGE');
      throwsCode(() => Region.mapPath('/nonexistent/ringwire', { writable: false }), 'ERR_NATIVE', ENOENT);

      const closed = dupFd(r.fd);
      closeSync(closed);
      throwsCode(() => Region.fromFd(closed, { writable: false }), 'ERR_NATIVE', EBADF);

      const e = EventFd.create();
      throwsCode(() => Region.fromFd(e.fd, { writable: false }), 'ERR_INVALID_ARG'); // not a regular file: size needed
      throwsCode(() => Region.fromFd(e.fd, { writable: false, size: 4096 }), 'ERR_NATIVE', ENODEV);
      e.close();
      // The owner keeps working after all of that.
      new Uint8Array(r.buffer)[0] = 1;
      assert.is(witnessSize(r.fd), 4096);
    } finally {
      r.close();
    }
  });

  test('a read-only mapping really is read-only: a child that writes to it faults, the owner carries on', async () => {
    const r = Region.create('readonly', 4096);
    const children = new Children();
    try {
      r.seal({ futureWrite: true });
      const child = children.add(spawn(process.execPath, ['--input-type=module', '-e', `
        const { Region } = await import(${JSON.stringify(regionModule)});
        const ro = Region.fromFd(3, { writable: false });
        process.stdout.write('mapped ' + new Uint8Array(ro.buffer)[0] + '\\n');
        new Uint8Array(ro.buffer)[0] = 1;
        process.stdout.write('wrote\\n');
      `], { stdio: ['ignore', 'pipe', 'inherit', r.fd] }));
      let out = '';
      child.stdout!.on('data', (d) => { out += d; });
      new Uint8Array(r.buffer)[0] = 42;
      const signal = await withTimeout('read-only child', 20_000, () => new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig))));
      assert.is(out, 'mapped 42\n', 'the child read the owner\'s byte and never completed its write');
      assert.is(signal, 'SIGSEGV');
      assert.is(new Uint8Array(r.buffer)[0], 42);
      new Uint8Array(r.buffer)[0] = 43;
      assert.is(new Uint8Array(r.buffer)[0], 43);
    } finally {
      await children.killAll();
      r.close();
    }
  });

  test('the mapping is unmapped once the last SharedArrayBuffer reference is collected', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!requireOrSkip('global.gc (node --expose-gc, as test/run.mjs runs)', typeof gc === 'function')) return;
    const name = `gc-probe-${process.pid}-${Date.now()}`;
    const mapped = (): boolean => readFileSync('/proc/self/maps', 'utf8').includes(`/memfd:${name}`);
    (() => {
      const r = Region.create(name, 1 << 20);
      new Uint8Array(r.buffer)[0] = 1;
      r.close();
    })();
    assert.ok(mapped(), 'still mapped while the buffer may be referenced');
    // Collection is not synchronous with gc(): give V8 a bounded number of full collections.
    for (let i = 0; i < 50 && mapped(); i++) {
      gc!();
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.not.ok(mapped(), 'unmapped after the buffer was collected');
  });

  test('fromFd requireSeals: the seals are read before fstat and mmap, and a missing one refuses the fd', () => {
    const sealed = Region.create('sealed', 8192);
    const unsealed = Region.create('unsealed', 8192);
    const addon = native() as unknown as Record<string, unknown>;
    const calls: string[] = [];
    const originals = new Map<string, unknown>();
    for (const name of ['getSeals', 'fstat', 'mmap']) {
      const fn = addon[name] as (...args: unknown[]) => unknown;
      originals.set(name, fn);
      addon[name] = (...args: unknown[]): unknown => {
        calls.push(name);
        return fn(...args);
      };
    }
    try {
      sealed.seal({ shrink: true, grow: true, seal: true });
      const fd = dupFd(sealed.fd);
      const r = Region.fromFd(fd, { writable: false, requireSeals: { shrink: true, seal: true } });
      assert.equal(calls, ['getSeals', 'fstat', 'mmap'], 'a peer that shrinks then seals after our fstat is caught by the order');
      assert.is(r.size, 8192);
      r.close();

      calls.length = 0;
      const bare = dupFd(unsealed.fd);
      throwsCode(() => Region.fromFd(bare, { writable: false, requireSeals: { shrink: true } }), 'ERR_INVALID_ARG');
      assert.equal(calls, ['getSeals'], 'refused before anything was mapped');
      assert.ok(witnessIsOpen(bare), 'a refused fd stays the caller\'s');
      closeSync(bare);

      const ev = EventFd.create();
      throwsCode(() => Region.fromFd(ev.fd, { writable: false, size: 8, requireSeals: { shrink: true } }), 'ERR_NATIVE');
      ev.close();
      throwsCode(() => Region.fromFd(sealed.fd, { writable: false, requireSeals: { shrink: 1 } as never }), 'ERR_INVALID_ARG');
    } finally {
      for (const [name, fn] of originals) addon[name] = fn;
      sealed.close();
      unsealed.close();
    }
  });
}

test.run();
