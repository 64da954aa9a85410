/**
 * `ringwire ivshmem-server` as a process: it listens, serves a client, logs joins and leaves, exits
 * cleanly on SIGTERM (removing its socket), and refuses bad options with a typed message.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IvshmemClient } from '../lib/ivshmem/client.js';
import { parseSize } from '../lib/ivshmem/cli.js';
import { addonAvailable } from '../lib/native/native.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';

const CLI = fileURLToPath(new URL('../bin/ringwire.js', import.meta.url));
const ready = (): boolean => requireOrSkip('the native addon (npm install)', addonAvailable());

test('sizes parse with K/M/G suffixes and reject anything else', () => {
  assert.is(parseSize('4M'), 4 << 20);
  assert.is(parseSize('64k'), 65536);
  assert.is(parseSize('4096'), 4096);
  for (const bad of ['', '1.5M', '-4M', '4T', 'M']) assert.throws(() => parseSize(bad), /size must be/);
});

test('bad invocations exit non-zero with a reason', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
  const none = run();
  assert.is(none.status, 2);
  assert.match(none.stdout, /ivshmem-server/);
  assert.is(run('no-such-command').status, 2);
  if (!ready()) return;
  const notPow2 = run('ivshmem-server', '--path', '@ringwire-cli-test', '--size', '3M');
  assert.is(notPow2.status, 1);
  assert.match(notPow2.stderr, /ERR_OUT_OF_RANGE: .*power of two/);
  assert.is(run('ivshmem-server', '--size', '1M').status, 1, '--path is required');
  assert.is(run('ivshmem-server', '--path', '@x', '--bogus').status, 1);
});

test('the server process serves a client, logs join and leave, and exits on SIGTERM', async () => {
  if (!ready()) return;
  const { dir, cleanup } = makeTempDir('ringwire-ivshmem-cli-');
  const children = new Children();
  const path = join(dir, 'ivshmem.sock');
  try {
    const child = children.add(spawn(process.execPath, [CLI, 'ivshmem-server', '--path', path, '--size', '256K', '--slots', '4'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    const waitFor = (re: RegExp) => withTimeout(`server output ${re}`, 15_000, () => new Promise<void>((resolve) => {
      const check = () => re.test(out) && resolve();
      child.stdout.on('data', (d: Buffer) => { out += d; check(); });
      check();
    }));
    await waitFor(/listening on .*262144 bytes, 4 slots, 2 vectors/);
    const client = await IvshmemClient.connect(path);
    assert.is(client.id, 1);
    await waitFor(/join: peer 1 \(pid \d+\)/);
    client.close();
    await waitFor(/leave: peer 1/);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.is(await withTimeout('the server to exit', 10_000, () => exited), 0);
    assert.not.ok(existsSync(path), 'the socket file is removed');
  } finally {
    await children.killAll();
    cleanup();
  }
});

test.run();
