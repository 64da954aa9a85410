// A region's SharedArrayBuffer posted to worker threads: the same memory, Atomics across threads,
// and a mapping that outlives the creating side's references.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { addonAvailable } from '../lib/native/native.js';
import { Region } from '../lib/native/region.js';
import { requireOrSkip, withTimeout } from './helpers/index.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());

/** Starts a worker; `exited` is listened for from the start, so a quick exit is never missed. */
function startWorker(source: string, workerData: unknown): { worker: Worker; exited: () => Promise<number> } {
  const worker = new Worker(source, { eval: true, workerData });
  const exit = new Promise<number>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', resolve);
  });
  exit.catch(() => {});
  return { worker, exited: () => withTimeout('worker exit', 20_000, () => exit) };
}

if (available) {
  test('a worker sees the main thread\'s writes and answers through Atomics on the same mapping', async () => {
    const r = Region.create('posted', 4096);
    const words = new Int32Array(r.buffer);
    const { worker, exited } = startWorker(`
      const { workerData } = require('node:worker_threads');
      const w = new Int32Array(workerData.buffer);
      // Protocol: word 0 is a turn counter; the worker waits for odd turns, answers with even ones.
      for (let turn = 1; turn < 200; turn += 2) {
        while (Atomics.load(w, 0) !== turn) Atomics.wait(w, 0, turn - 1, 5000);
        w[1 + (turn >> 1)] = w[0] * 3;
        Atomics.store(w, 0, turn + 1);
        Atomics.notify(w, 0);
      }
    `, { buffer: r.buffer });
    try {
      for (let turn = 1; turn < 200; turn += 2) {
        Atomics.store(words, 0, turn);
        Atomics.notify(words, 0);
        const res = Atomics.wait(words, 0, turn, 5000);
        assert.is.not(res, 'timed-out', `worker answered turn ${turn}`);
      }
      for (let i = 0; i < 100; i++) assert.is(words[1 + i], (2 * i + 1) * 3);
      assert.is(await exited(), 0);
    } finally {
      await worker.terminate();
      r.close();
    }
  });

  test('the mapping lives while a worker holds the buffer, after the creator closed its Region', async () => {
    let r: Region | undefined = Region.create('outlives', 4096);
    const buffer = r.buffer;
    const { worker, exited } = startWorker(`
      const { workerData, parentPort } = require('node:worker_threads');
      const w = new Int32Array(workerData.buffer);
      parentPort.once('message', () => {
        Atomics.store(w, 0, 77);
        parentPort.postMessage('written');
      });
    `, { buffer });
    try {
      r.close();
      r = undefined;
      (globalThis as { gc?: () => void }).gc?.();
      const answered = new Promise((resolve) => worker.once('message', resolve));
      worker.postMessage('go');
      assert.is(await withTimeout('worker write', 10_000, () => answered), 'written');
      assert.is(Atomics.load(new Int32Array(buffer), 0), 77);
      assert.is(await exited(), 0);
    } finally {
      await worker.terminate();
    }
  });
}

test.run();
