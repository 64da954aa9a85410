/**
 * HTTP and gRPC through ringwire against the same protocols over a UNIX socket, same child, same
 * handler (bench/peers/http-peer.ts; its servers sleep on their doorbells):
 *   - `undici-ringwire` / `undici-uds`: undici.request() POSTs whose body the server echoes; over
 *     the ringwire Dispatcher (HTTP exchanges as ring records) / over undici's Agent on the socket;
 *   - `fastify-ringwire` / `fastify-uds`: GET / of a Fastify hello-world, the same two clients;
 *   - `grpc-ringwire` / `grpc-uds`: a unary echo on grpc-js's server, reached through a ringwire
 *     channel Duplex (createConnectionInjector) / the server's unix: binding; the client is one
 *     minimal gRPC-over-node:http2 caller for both (grpc-js's client takes no foreign connection:
 *     docs/http.md).
 * `pingpong` is one request at a time (p50 of the round trip); `stream` keeps STREAM_IN_FLIGHT
 * requests in flight, so msgsPerSec reads as requests per second.
 */
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import { Agent, request, type Dispatcher } from 'undici';
import { connect, createDuplex } from '../../lib/index.js';
import { RingwireDispatcher } from '../../lib/http/index.js';
import { pinnedNode } from '../pin.js';
import type { OpenContext, Peer, StreamHandle, Transport } from '../transport.js';
import { httpPeerAddresses } from './http-addresses.js';

const peerScript = fileURLToPath(new URL('./http-peer.js', import.meta.url));
const SETUP_MS = 20_000;
const STREAM_IN_FLIGHT = 16;
/** Requests per stream burst at most: an HTTP request costs tens of µs, so the byte-sized bursts of the harness would take seconds. */
const MAX_BURST = 512;
const RING_BYTES = 1 << 22;

async function startChild(ctx: OpenContext): Promise<{ close(): Promise<void> }> {
  const [cmd, argv] = pinnedNode(ctx.peerCore, peerScript, [ctx.tempDir]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bench: http peer did not start')), SETUP_MS);
    child.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bench: http peer exited with ${code}`)); });
  });
  return {
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

type Call = (size: number) => Promise<void>;

/** A Peer from one request function: ping-pong one at a time, stream with STREAM_IN_FLIGHT in flight. */
function peerOf(call: Call, close: () => Promise<void>): Peer {
  return {
    pingpong: async (size, run) => {
      for (;;) {
        const t0 = process.hrtime.bigint();
        await call(size);
        const t1 = process.hrtime.bigint();
        if (!run.record(t0, t1)) return;
      }
    },
    streams: {
      stream: async (size, count): Promise<StreamHandle> => {
        const n = Math.min(count, MAX_BURST);
        return {
          messagesPerBurst: n,
          burst: async () => {
            let next = 0;
            const worker = async (): Promise<void> => {
              while (next < n) {
                next++;
                await call(size);
              }
            };
            await Promise.all(Array.from({ length: Math.min(STREAM_IN_FLIGHT, n) }, worker));
          },
          close: async () => {},
        };
      },
    },
    close,
  };
}

async function undiciPeer(kind: 'echo' | 'fastify', over: 'ringwire' | 'uds', ctx: OpenContext): Promise<Peer> {
  const child = await startChild(ctx);
  const a = httpPeerAddresses(ctx.tempDir);
  const dispatcher: Dispatcher = over === 'ringwire'
    ? new RingwireDispatcher({ address: kind === 'echo' ? a.echoRingwire : a.fastifyRingwire, connect: { sendRingBytes: RING_BYTES, receiveRingBytes: RING_BYTES } })
    : new Agent({ connect: { socketPath: kind === 'echo' ? a.echoUds : a.fastifyUds }, keepAliveTimeout: 60_000 });
  const bodies = new Map<number, Buffer>();
  const call: Call = kind === 'echo'
    ? async (size) => {
      let body = bodies.get(size);
      if (!body) bodies.set(size, body = Buffer.alloc(size, 0xa5));
      const res = await request('http://bench.local/echo', { dispatcher, method: 'POST', body });
      const got = Buffer.from(await res.body.arrayBuffer());
      if (got.length !== size) throw new Error(`bench: echo returned ${got.length} bytes for ${size}`);
    }
    : async () => {
      const res = await request('http://bench.local/', { dispatcher });
      const text = await res.body.text();
      if (res.statusCode !== 200 || text !== '{"hello":"world"}') throw new Error(`bench: fastify answered ${res.statusCode} ${text}`);
    };
  try {
    await call(1);
  } catch (err) {
    await dispatcher.destroy();
    await child.close();
    throw err;
  }
  return peerOf(call, async () => {
    await dispatcher.destroy();
    await child.close();
  });
}

/** One gRPC unary call by hand over node:http2: 5-byte message prefix, grpc-status from the trailers. */
function grpcUnary(session: http2.ClientHttp2Session, message: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/bench.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
    let n = 0;
    let status: string | undefined;
    req.on('data', (d: Buffer) => { n += d.length; });
    req.on('trailers', (t) => { status = String(t['grpc-status']); });
    req.on('end', () => (status === '0' ? resolve(n - 5) : reject(new Error(`bench: grpc-status ${status}`))));
    req.on('error', reject);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(message.length, 1);
    req.end(Buffer.concat([prefix, message]));
  });
}

async function grpcPeer(over: 'ringwire' | 'uds', ctx: OpenContext): Promise<Peer> {
  const child = await startChild(ctx);
  const a = httpPeerAddresses(ctx.tempDir);
  let session: http2.ClientHttp2Session;
  try {
    if (over === 'ringwire') {
      const ch = await connect(a.grpcRingwire, { sendRingBytes: RING_BYTES, receiveRingBytes: RING_BYTES });
      session = http2.connect('http://grpc.invalid', { createConnection: () => createDuplex(ch) });
    } else {
      session = http2.connect('http://grpc.invalid', { path: a.grpcUds } as http2.SecureClientSessionOptions);
    }
    await new Promise<void>((resolve, reject) => { session.once('connect', () => resolve()); session.once('error', reject); });
  } catch (err) {
    await child.close();
    throw err;
  }
  const messages = new Map<number, Buffer>();
  const call: Call = async (size) => {
    let m = messages.get(size);
    if (!m) messages.set(size, m = Buffer.alloc(size, 0x5a));
    const n = await grpcUnary(session, m);
    if (n !== size) throw new Error(`bench: grpc echo returned ${n} bytes for ${size}`);
  };
  return peerOf(call, async () => {
    session.destroy();
    await child.close();
  });
}

const MAX = 1 << 20;

export const undiciUds: Transport = { name: 'undici-uds', distance: 'process', maxSize: MAX, description: 'undici.request() POST, body echoed by a node:http (req, res) handler, over a UNIX socket (undici Agent, socketPath)', open: (ctx) => undiciPeer('echo', 'uds', ctx) };
export const undiciRingwire: Transport = { name: 'undici-ringwire', distance: 'process', maxSize: MAX, description: 'the same requests and handler, as ring records: ringwire/http Dispatcher to serveHttp() (server on its doorbell)', open: (ctx) => undiciPeer('echo', 'ringwire', ctx) };
export const fastifyUds: Transport = { name: 'fastify-uds', distance: 'process', maxSize: MAX, description: 'undici.request() GET of a Fastify 5 hello-world listening on a UNIX socket', open: (ctx) => undiciPeer('fastify', 'uds', ctx) };
export const fastifyRingwire: Transport = { name: 'fastify-ringwire', distance: 'process', maxSize: MAX, description: 'the same Fastify app through httpServerFactory(), called with the ringwire/http Dispatcher', open: (ctx) => undiciPeer('fastify', 'ringwire', ctx) };
export const grpcUds: Transport = { name: 'grpc-uds', distance: 'process', maxSize: MAX, description: 'grpc-js unary echo bound on unix:, called by a minimal gRPC-over-node:http2 client', open: (ctx) => grpcPeer('uds', ctx) };
export const grpcRingwire: Transport = { name: 'grpc-ringwire', distance: 'process', maxSize: MAX, description: 'the same grpc-js server fed ringwire channel Duplexes (createConnectionInjector), same client over createDuplex', open: (ctx) => grpcPeer('ringwire', ctx) };
