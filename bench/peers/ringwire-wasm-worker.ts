/**
 * Instantiates the order-echo module on the shared memory and runs serve() until it returns. The
 * module's doorbells are imports: Atomics on words in the memory (threads), or eventfds (a peer in
 * another process, whose rings are memfds mapped into the memory).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native, POLLIN } from '../../lib/native/native.js';
import { WA } from './ringwire-wasm.js';

export type WasmBells = { kind: 'atomics' } | { kind: 'eventfd'; parkFd: number; ringFd: number };

const { module, memory, args, bells } = workerData as { module: object; memory: { buffer: SharedArrayBuffer }; args: number[]; bells: WasmBells };
const words = new Int32Array(memory.buffer);
const env = bells.kind === 'atomics'
  ? {
      park: (bell: number, seen: number) => void Atomics.wait(words, bell >>> 2, seen, 1000),
      ring: (bell: number) => {
        Atomics.add(words, bell >>> 2, 1);
        Atomics.notify(words, bell >>> 2);
      },
    }
  : {
      park: () => {
        if (native().pollWait(bells.parkFd, POLLIN, 1000) > 0) native().eventfdRead(bells.parkFd);
      },
      ring: () => void native().eventfdWrite(bells.ringFd, 1),
    };
const instance = new WA.Instance(module, { env: { memory, ...env, abort: () => { throw new Error('wasm abort'); } } });
const serve = instance.exports.serve as (...a: number[]) => number;
parentPort!.postMessage(serve(...args) >>> 0);
