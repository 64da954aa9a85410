// Which way the addon turns an mmap'ed region into a SharedArrayBuffer on this Node, which addon
// file it loaded, and that the buffer it makes is the shared mapping itself (seen through a second
// mapping and from a worker) and is unmapped once collected. CI runs this under Node 20, 22, 24 and
// 26 (.ci/run), against the prebuilds and against a forced-fallback source build, so both paths stay
// covered: node_api_create_external_sharedarraybuffer where the running Node has it, the V8 backing
// store where it does not (docs/native.md).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { basename, dirname, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { addonAvailable, addonPath, native, packageRoot } from '../lib/native/native.js';
import { Region } from '../lib/native/region.js';
import { requireOrSkip, scratch } from './helpers/index.js';

const run = requireOrSkip('the ringwire native addon', addonAvailable());
const [major, minor, patch] = process.versions.node.split('.').map(Number) as [number, number, number];

/**
 * Whether this Node exports node_api_create_external_sharedarraybuffer, for the versions CI tests
 * (Node 20: no; 22.23.x, 24.16+ and 26.1+: yes). Undefined for versions nobody here has looked at.
 */
function nodeHasExternalSab(): boolean | undefined {
  const atLeast = (n: number, p: number): boolean => minor > n || (minor === n && patch >= p);
  if (major === 20) return false;
  if (major === 22) return atLeast(23, 0) ? true : undefined; // where in 22.x it arrived is not checked here
  if (major === 24) return atLeast(16, 0);
  if (major >= 26) return major > 26 || atLeast(1, 0);
  return undefined;
}

function mappedNames(): string[] {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('memfd:ringwire-90-')).map((l) => l.trim());
}

async function collected(name: string): Promise<boolean> {
  for (let i = 0; i < 500; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    if (!mappedNames().some((l) => l.includes(name))) return true;
    await new Promise((r) => setTimeout(r, 10)); // the deleter may run on a V8 background thread
  }
  return false;
}

if (run) {
  const info = native().sharedBuffer;
  console.log(`  Node ${process.versions.node}: ${relative(packageRoot, addonPath)}, SharedArrayBuffers via ${info.path} (build ${info.build}, headers of Node ${info.headersNodeMajor})`);

  test('the SharedArrayBuffer path is the one this Node and this build call for', () => {
    const has = nodeHasExternalSab();
    if (info.build === 'v8') assert.is(info.path, 'v8', 'a RINGWIRE_SAB=v8 build takes the fallback');
    else if (info.build === 'external-only') assert.is(info.path, 'external', 'an external-only build loads only where the API exists');
    else if (has !== undefined) assert.is(info.path, has ? 'external' : 'v8', `Node ${process.versions.node} ${has ? 'has' : 'lacks'} the external API`);
    if (has === false) assert.is(info.path, 'v8');
    const expected = process.env.RINGWIRE_EXPECT_SAB;
    if (expected) assert.is(info.path, expected, `RINGWIRE_EXPECT_SAB=${expected}`);
  });

  test('the addon file is the prebuild for this platform and Node, or a source build against this Node\'s headers', () => {
    const fromPrebuild = relative(packageRoot, addonPath).startsWith('prebuilds/');
    if (process.env.PREBUILDS_ONLY) assert.ok(fromPrebuild, `PREBUILDS_ONLY is set, yet ${addonPath} loaded`);
    if (fromPrebuild) {
      assert.is(relative(packageRoot, dirname(addonPath)), `prebuilds/linux-${process.arch}`);
      if (process.versions.modules === '115') {
        assert.is(basename(addonPath), 'ringwire.abi115.glibc.node', 'Node 20 takes its ABI-specific prebuild');
        assert.is(info.build, 'auto');
      } else {
        assert.is(basename(addonPath), 'ringwire.glibc.node', 'other Nodes take the Node-API prebuild');
        assert.is(info.build, 'external-only');
      }
    } else {
      assert.is(relative(packageRoot, addonPath), 'build/Release/ringwire.node');
      // The npm_config_nodedir trap: addon/install.cjs and .ci/run build against the running Node's headers.
      assert.is(info.headersNodeMajor, major, 'source build compiled against this Node\'s headers');
    }
  });

  test('the buffer is the mapping: a second mapping and a worker see the same bytes', () => scratch('shared mapping', 20000, async ({ defer }) => {
    const region = Region.create('ringwire-90-shared', 4096);
    defer(() => region.close());
    assert.ok(region.buffer instanceof SharedArrayBuffer);
    assert.is(region.buffer.byteLength, 4096);
    const again = Region.fromFd(native().dup(region.fd), { writable: true });
    defer(() => again.close());
    new Int32Array(region.buffer)[1] = 7;
    assert.is(new Int32Array(again.buffer)[1], 7, 'written through one mapping, read through the other');
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const a = new Int32Array(workerData);
       Atomics.store(a, 0, a[1] * 6);
       parentPort.postMessage('done');`,
      { eval: true, workerData: region.buffer },
    );
    defer(() => worker.terminate());
    await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    assert.is(Atomics.load(new Int32Array(again.buffer), 0), 42, 'the worker wrote into the file');
  }));

  test('a collected buffer unmaps its region, on this path\'s finalizer', async () => {
    assert.ok(typeof (globalThis as { gc?: () => void }).gc === 'function', 'run with --expose-gc (test/run.mjs does)');
    const name = `ringwire-90-gc-${process.pid}`;
    (() => {
      const region = Region.create(name, 3 * 4096);
      new Uint8Array(region.buffer)[0] = 1;
      region.close(); // the fd goes now; the mapping stays until the buffer is collected
    })();
    assert.ok(mappedNames().some((l) => l.includes(name)), 'mapped while referenced');
    assert.ok(await collected(name), `${name} still mapped after the buffer became garbage`);
  });
}

test.run();
