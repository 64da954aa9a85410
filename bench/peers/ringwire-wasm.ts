/**
 * A WebAssembly peer whose linear memory holds the rings (issue 16): wasm/order-echo.ts, compiled
 * by AssemblyScript, runs in a worker on a shared WebAssembly.Memory; Node writes typed orders
 * into a request ring in that memory and reads the typed replies the module built in place in a
 * reply ring there. Both sides sleep on Atomics doorbells whose words live in the same memory
 * (the module waits with memory.atomic.wait32, Node with Atomics.waitAsync).
 *
 * Layout of the 4 MiB memory: AssemblyScript's own data below 1 MiB; from RINGS_AT the request
 * ring's producer and consumer blocks, the reply ring's, then the two doorbell words.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AtomicsDoorbell } from '../../lib/ring/doorbell.js';
import { CONSUMER_BLOCK_SIZE, RingKind, producerBlockSize } from '../../lib/ring/layout.js';
import { initConsumerBlock, initProducerBlock } from '../../lib/ring/ring-memory.js';
import { SpscConsumer, SpscProducer } from '../../lib/ring/spsc.js';
import { OrderView, sendOrder, type Order } from '../codec-order.js';
import type { Transport } from '../transport.js';
import type { WasmBells } from './ringwire-wasm-worker.js';

/** The parts of the WebAssembly JS API used here (TypeScript's ES libs do not declare it without DOM). */
export interface WasmMemory { readonly buffer: ArrayBuffer }
export const WA = (globalThis as unknown as {
  WebAssembly: {
    Memory: new (d: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
    compile(bytes: Uint8Array): Promise<object>;
    Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  };
}).WebAssembly;

const repo = fileURLToPath(new URL('../../../', import.meta.url));
export const WASM_PAGES = 64;
const RINGS_AT = 1 << 20;
export const WASM_RING_BYTES = 1 << 16;

/** Compiles wasm/order-echo.ts (and the generated wasm/order.ts) unless dist/wasm has a fresh build. */
export function buildOrderEcho(): string {
  const out = join(repo, 'dist/wasm/order-echo.wasm');
  const sources = ['wasm/order-echo.ts', 'wasm/order.ts'].map((f) => statSync(join(repo, f)).mtimeMs);
  if (existsSync(out) && statSync(out).mtimeMs > Math.max(...sources)) return out;
  mkdirSync(dirname(out), { recursive: true });
  execFileSync(process.execPath, [join(repo, 'node_modules/assemblyscript/bin/asc.js'), join(repo, 'wasm/order-echo.ts'),
    '--runtime', 'stub', '--importMemory', '--sharedMemory', '--initialMemory', String(WASM_PAGES), '--maximumMemory', String(WASM_PAGES),
    '--enable', 'threads', '-O3', '--noAssert', '-o', out], { stdio: ['ignore', 'inherit', 'inherit'] });
  return out;
}

export interface WasmPeer {
  readonly memory: WasmMemory;
  readonly requests: SpscProducer;
  readonly replies: SpscConsumer;
  /** Resolves with what serve() returned: orders handled, or 0xffffffff for a corrupt ring. */
  readonly done: Promise<number>;
  close(): Promise<void>;
}

/** Starts the module in a worker on `memory`: serve(args...) with the given doorbells. */
export async function startWasmWorker(wasmFile: string, memory: WasmMemory, args: number[], bells: WasmBells): Promise<{ done: Promise<number>; terminate(): Promise<unknown> }> {
  const module = await WA.compile(await import('node:fs/promises').then((fs) => fs.readFile(wasmFile)));
  const worker = new Worker(new URL('./ringwire-wasm-worker.js', import.meta.url), { workerData: { module, memory, args, bells } });
  const done = new Promise<number>((resolve, reject) => {
    worker.once('message', (m: number) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`wasm worker exited with ${code} before serve() returned`)));
  });
  done.catch(() => {});
  return { done, terminate: () => worker.terminate() };
}

/** Creates the memory and rings, and starts the module in a worker. */
export async function startWasmPeer(wasmFile: string, capacity = WASM_RING_BYTES, spin = 0): Promise<WasmPeer> {
  const memory = new WA.Memory({ initial: WASM_PAGES, maximum: WASM_PAGES, shared: true });
  const buffer = memory.buffer as unknown as SharedArrayBuffer;
  const reqP = RINGS_AT;
  const reqC = reqP + producerBlockSize(capacity);
  const repP = reqC + CONSUMER_BLOCK_SIZE;
  const repC = repP + producerBlockSize(capacity);
  const bells = repC + CONSUMER_BLOCK_SIZE;
  initProducerBlock({ buffer, offset: reqP }, RingKind.Spsc, capacity);
  initConsumerBlock({ buffer, offset: reqC }, RingKind.Spsc, capacity);
  initProducerBlock({ buffer, offset: repP }, RingKind.Spsc, capacity);
  initConsumerBlock({ buffer, offset: repC }, RingKind.Spsc, capacity);
  const requests = new SpscProducer({ producer: { buffer, offset: reqP }, consumer: { buffer, offset: reqC } }, { dataBell: new AtomicsDoorbell(buffer, bells >> 2) });
  const replies = new SpscConsumer({ producer: { buffer, offset: repP }, consumer: { buffer, offset: repC } }, { dataBell: new AtomicsDoorbell(buffer, (bells >> 2) + 1) });
  const { done, terminate } = await startWasmWorker(wasmFile, memory, [reqP, reqC, bells, repP, repC, bells + 4, spin], { kind: 'atomics' });
  return { memory, requests, replies, done, close: async () => void (await terminate()) };
}

const ORDER: Order = { id: 1, ts: 2, account: 3, price: 1.5, qty: 4, side: 1, flags: 5, venue: 6, active: true, symbol: 'ACME', fills: [1, 2, 3, 4] };

export const ringwireWasm: Transport = {
  name: 'ringwire-wasm',
  distance: 'thread',
  description: 'a WebAssembly module (AssemblyScript) in a worker answers typed orders in place, rings in its shared linear memory',
  /** The message is the typed request whatever the size slot; rows run at the slots up to 64 B. */
  maxSize: 64,
  async open() {
    const peer = await startWasmPeer(buildOrderEcho(), WASM_RING_BYTES, 50_000_000);
    const view = new OrderView();
    return {
      // The message is the typed order (84 bytes); the size slot only labels the row.
      async pingpong(_size, run) {
        for (let go = true, i = 0; go; i++) {
          const t0 = process.hrtime.bigint();
          ORDER.id = i;
          sendOrder(peer.requests, ORDER, 1);
          while (peer.replies.read() < 0) { /* busy-poll, as ringwire-thread does */ }
          if (view.wrap(peer.replies.data, peer.replies.offset, peer.replies.length).idAsNumber() !== i + 1) throw new Error('bench: wasm reply out of order');
          peer.replies.release();
          go = run.record(t0, process.hrtime.bigint());
        }
      },
      async close() {
        peer.requests.send(new Uint8Array(0), 2);
        await Promise.race([peer.done.catch(() => 0), new Promise((r) => setTimeout(r, 2000))]);
        await peer.close();
      },
    };
  },
};
