/**
 * The harness side of the `worker-postmessage` and `message-channel` transports: one worker per
 * run, talking either through the Worker object itself or through a MessageChannel port moved to it.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import type { OpenContext, Peer, PingPongRun, StreamHandle } from '../transport.js';
import type { PortControl, PortReply } from './port-wire.js';

const peerScript = new URL('./port-peer.js', import.meta.url);

/** What Worker and MessagePort have in common for this purpose. */
interface Endpoint {
  postMessage(value: unknown): void;
  on(event: 'message', fn: (msg: unknown) => void): unknown;
  off(event: 'message', fn: (msg: unknown) => void): unknown;
}

function next(ep: Endpoint, worker: Worker): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      worker.off('exit', onExit);
      ep.off('message', onMessage);
      resolve(m);
    };
    const onExit = (code: number): void => {
      ep.off('message', onMessage);
      reject(new Error(`bench: port peer exited with ${code}`));
    };
    ep.on('message', onMessage);
    worker.once('exit', onExit);
  });
}

async function control(ep: Endpoint, worker: Worker, c: PortControl): Promise<void> {
  ep.postMessage(c);
  const r = (await next(ep, worker)) as PortReply;
  if (r.kind !== 'ready') throw new Error(`bench: port peer answered ${r.kind} to ${c.mode}`);
}

function pingpong(ep: Endpoint, worker: Worker, size: number, run: PingPongRun): Promise<void> {
  const msg = new Uint8Array(size).fill(0xa5);
  return new Promise((resolve, reject) => {
    let t0 = 0n;
    const finish = (err?: Error): void => {
      ep.off('message', onMessage);
      worker.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onMessage = (m: unknown): void => {
      const t1 = process.hrtime.bigint();
      if (!(m instanceof Uint8Array) || m.length !== size) return finish(new Error('bench: echo returned something else'));
      if (!run.record(t0, t1)) return finish();
      next();
    };
    const send = (): void => {
      t0 = process.hrtime.bigint();
      ep.postMessage(msg);
    };
    const next = (): void => {
      const w = run.wait();
      if (w) void w.then(send);
      else send();
    };
    const onExit = (code: number): void => finish(new Error(`bench: port peer exited with ${code}`));
    ep.on('message', onMessage);
    worker.once('exit', onExit);
    next();
  });
}

function streamHandle(ep: Endpoint, worker: Worker, size: number, count: number): StreamHandle {
  const msg = new Uint8Array(size).fill(0x5a);
  return {
    messagesPerBurst: count,
    // postMessage has no back-pressure, so the burst itself is the window: at most about 4 MiB queued.
    burst: async () => {
      const acked = next(ep, worker);
      for (let i = 0; i < count; i++) ep.postMessage(msg);
      const r = (await acked) as PortReply;
      if (r.kind !== 'ack') throw new Error(`bench: sink answered ${r.kind} instead of ack`);
    },
    close: async () => undefined,
  };
}

/** Starts the worker; `channel` routes data through a MessageChannel port instead of the Worker. */
export async function openPortPeer(channel: boolean, ctx: OpenContext): Promise<Peer> {
  const mc = channel ? new MessageChannel() : undefined;
  const worker = new Worker(peerScript, {
    workerData: { port: mc?.port2, peerCore: ctx.peerCore },
    transferList: mc ? [mc.port2] : [],
  });
  const ep: Endpoint = mc ? mc.port1 : (worker as unknown as Endpoint);
  try {
    const online = (await next(ep, worker)) as PortReply;
    if (online.kind !== 'online') throw new Error(`bench: port peer said ${online.kind} before online`);
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  let closed: Promise<void> | undefined;
  return {
    paced: true,
    async pingpong(size, run) {
      await control(ep, worker, { mode: 'echo' });
      await pingpong(ep, worker, size, run);
    },
    streams: {
      stream: async (size, count) => {
        await control(ep, worker, { mode: 'sink', burst: count });
        return streamHandle(ep, worker, size, count);
      },
    },
    close() {
      closed ??= (async () => {
        mc?.port1.close();
        await worker.terminate();
      })();
      return closed;
    },
  };
}
