/** Instantiates the order-echo module on the shared memory and runs serve() until it returns. */
import { parentPort, workerData } from 'node:worker_threads';
import { WA } from './ringwire-wasm.js';

const { module, memory, args } = workerData as { module: object; memory: object; args: number[] };
const instance = new WA.Instance(module, { env: { memory, abort: () => { throw new Error('wasm abort'); } } });
const serve = instance.exports.serve as (...a: number[]) => number;
parentPort!.postMessage(serve(...args) >>> 0);
