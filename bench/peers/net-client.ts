/**
 * The harness side of the `uds` and `tcp` transports: spawns bench/peers/net-peer.js as a separate
 * process (pinned to the peer core), then opens one connection per measurement.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { pinnedNode } from '../pin.js';
import type { OpenContext, Peer, PingPongRun, StreamHandle } from '../transport.js';
import { ACK, MODE_ECHO, MODE_SINK, READY, SINK_HEADER_BYTES } from './net-wire.js';

const peerScript = fileURLToPath(new URL('./net-peer.js', import.meta.url));
const BATCH = 64;
/** Batched writes only for messages whose batch stays at most 1 MiB; larger ones gain nothing. */
const MAX_BATCHED_SIZE = 16 << 10;

export type NetKind = 'uds' | 'tcp';

function startPeer(kind: NetKind, ctx: OpenContext): Promise<{ child: ChildProcess; address: string }> {
  const args = kind === 'uds' ? ['uds', `${ctx.tempDir}/net-peer.sock`] : ['tcp'];
  const [cmd, argv] = pinnedNode(ctx.peerCore, peerScript, args);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /^listening (\S+)\n/.exec(out);
      if (!m) return;
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      resolve({ child, address: m[1]! });
    };
    const onExit = (code: number | null): void => reject(new Error(`bench: ${kind} peer exited with ${code} before listening`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', reject);
  });
}

/** Connects, sends the mode header and waits for READY, so no data byte ever mixes with it. */
function open(kind: NetKind, address: string, header: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = kind === 'uds' ? connect(address) : connect(Number(address), '127.0.0.1');
    sock.setNoDelay(true);
    sock.once('error', reject);
    sock.once('connect', () => sock.write(header));
    sock.once('data', (d: Buffer) => {
      sock.off('error', reject);
      if (d.length === 1 && d[0] === READY) resolve(sock);
      else {
        sock.destroy();
        reject(new Error(`bench: ${kind} peer answered the header with ${d.length} unexpected bytes`));
      }
    });
  });
}

function pingpong(sock: Socket, size: number, run: PingPongRun): Promise<void> {
  const msg = Buffer.alloc(size, 0xa5);
  return new Promise((resolve, reject) => {
    let received = 0;
    let t0 = 0n;
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('bench: peer closed the connection during ping-pong')));
    sock.on('data', (d: Buffer) => {
      received += d.length;
      if (received < size) return;
      const t1 = process.hrtime.bigint();
      if (received > size) return reject(new Error(`bench: echo returned ${received} bytes for ${size}`));
      received = 0;
      if (!run.record(t0, t1)) return resolve();
      next();
    });
    const send = (): void => {
      t0 = process.hrtime.bigint();
      sock.write(msg);
    };
    const next = (): void => {
      const w = run.wait();
      if (w) void w.then(send);
      else send();
    };
    next();
  });
}

function streamHandle(sock: Socket, size: number, messages: number, batch: number): StreamHandle {
  const chunk = Buffer.alloc(size * batch, 0x5a);
  const writes = messages / batch;
  let done: (() => void) | undefined;
  let fail: ((err: Error) => void) | undefined;
  sock.on('data', (d: Buffer) => {
    if (d.length !== 1 || d[0] !== ACK || !done) return fail?.(new Error('bench: unexpected bytes from the sink'));
    const r = done;
    done = fail = undefined;
    r();
  });
  sock.on('error', (err) => fail?.(err));
  sock.on('close', () => fail?.(new Error('bench: sink closed the connection')));
  let left = 0;
  // Writes until the socket asks to wait (write() returned false), then resumes on 'drain': how a
  // Node program that respects back-pressure sends.
  const pump = (): void => {
    while (left > 0) {
      left--;
      if (!sock.write(chunk)) {
        sock.once('drain', pump);
        return;
      }
    }
  };
  return {
    messagesPerBurst: messages,
    burst: () =>
      new Promise<void>((resolve, reject) => {
        done = resolve;
        fail = reject;
        left = writes;
        pump();
      }),
    close: async () => {
      sock.destroy();
    },
  };
}

/** Opens a net peer of `kind`; the Peer reuses one child process for every measurement. */
export async function openNetPeer(kind: NetKind, ctx: OpenContext): Promise<Peer> {
  const { child, address } = await startPeer(kind, ctx);
  const sockets = new Set<Socket>();
  const track = (s: Socket): Socket => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    return s;
  };
  const sinkHeader = (burstBytes: number): Buffer => {
    const h = Buffer.alloc(SINK_HEADER_BYTES);
    h[0] = MODE_SINK;
    h.writeDoubleLE(burstBytes, 1);
    return h;
  };
  const stream = (batch: number) => async (size: number, count: number): Promise<StreamHandle | null> => {
    if (batch > 1 && size > MAX_BATCHED_SIZE) return null;
    const messages = Math.ceil(count / batch) * batch;
    const sock = track(await open(kind, address, sinkHeader(messages * size)));
    return streamHandle(sock, size, messages, batch);
  };
  let closed: Promise<void> | undefined;
  return {
    paced: true,
    async pingpong(size, run) {
      const sock = track(await open(kind, address, Buffer.from([MODE_ECHO])));
      try {
        await pingpong(sock, size, run);
      } finally {
        sock.destroy();
      }
    },
    streams: { stream: stream(1), [`stream-batch${BATCH}`]: stream(BATCH) },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin!.end();
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      });
      return closed;
    },
  };
}
