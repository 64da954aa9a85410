/**
 * `ringwire-channel` / `ringwire-channel-doorbell`: the public channel API (lib/channel) between
 * this process and a child: ping-pong is `channel.request()` answered by a handler, a stream is
 * `channel.send()` per message closed by one request. `-doorbell` sleeps on the eventfd when idle
 * (poll: 'doorbell'); the plain one busy-polls (poll: 'busy'); `-hybrid` is the doorbell channel
 * whose requester polls up to 50 µs for each response before sleeping (responseSpinUs).
 * `http2-ringwire` / `http2-uds`: node:http2 requests (POST, body echoed) over a ringwire Duplex and
 * over a UNIX socket to the same server in the same child; `stream` is a burst of requests with up
 * to 64 in flight, so msgsPerSec reads as requests per second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http2 from 'node:http2';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, createDuplex, type Channel } from '../../lib/index.js';
import { pinnedNode } from '../pin.js';
import type { OpenContext, Peer, PingPongRun, StreamHandle, Transport } from '../transport.js';
import { maxMessageSize } from '../../lib/ring/layout.js';

const peerScript = fileURLToPath(new URL('./ringwire-channel-peer.js', import.meta.url));
export const RING_BYTES = 1 << 22;
const SETUP_MS = 10_000;
const H2_IN_FLIGHT = 64;

type Mode = 'busy' | 'doorbell' | 'adaptive';

interface Child {
  child: ChildProcess;
  channel: string;
  h2: string;
  h2Path: string;
  close(): Promise<void>;
}

async function startChild(mode: Mode, ctx: OpenContext): Promise<Child> {
  const channel = join(ctx.tempDir, 'ringwire-channel.sock');
  const h2 = join(ctx.tempDir, 'ringwire-h2.sock');
  const h2Path = join(ctx.tempDir, 'uds-h2.sock');
  const [cmd, argv] = pinnedNode(ctx.peerCore, peerScript, [mode, channel, h2, h2Path]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bench: ringwire-channel peer did not start')), SETUP_MS);
    child.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`bench: ringwire-channel peer exited with ${code}`)); });
  });
  return {
    child, channel, h2, h2Path,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

export async function channelPingPong(ch: Channel, size: number, run: PingPongRun): Promise<void> {
  const msg = Buffer.alloc(size, 0xa5);
  for (;;) {
    const w = run.wait();
    if (w) await w;
    const t0 = process.hrtime.bigint();
    const reply = await ch.request(msg);
    const t1 = process.hrtime.bigint();
    if (reply.length !== size) throw new Error(`bench: echo returned ${reply.length} bytes for ${size}`);
    if (!run.record(t0, t1)) return;
  }
}

async function openChannelPeer(mode: Mode, ctx: OpenContext, responseSpinUs?: number): Promise<Peer> {
  const c = await startChild(mode, ctx);
  // 'adaptive' is the default: the row measures what a caller who sets nothing gets.
  const opts = { ...(mode === 'adaptive' ? {} : { poll: mode }), sendRingBytes: RING_BYTES, receiveRingBytes: RING_BYTES, ...(responseSpinUs === undefined ? {} : { responseSpinUs }) };
  let ch: Channel | undefined;
  let sink: Channel | undefined;
  try {
    ch = await connect(c.channel, opts);
    sink = await connect(c.channel, { ...opts, name: 'sink' });
  } catch (err) {
    await c.close();
    throw err;
  }
  return channelPeer(ch, sink, () => c.close());
}

/** A Peer over two open channels to an echo handler and a counting sink (also used by ringwire-agent). */
export function channelPeer(pp: Channel, sk: Channel, closeMore: () => Promise<void>): Peer {
  return {
    paced: true,
    pingpong: (size, run) => channelPingPong(pp, size, run),
    streams: {
      stream: async (size, count): Promise<StreamHandle> => {
        const msg = Buffer.alloc(size, 0x5a);
        return {
          messagesPerBurst: count,
          burst: async () => {
            for (let i = 0; i < count; i++) if (!sk.trySend(msg)) await sk.send(msg);
            const got = (await sk.request(Buffer.alloc(1))).readUInt32LE(0);
            if (got !== count) throw new Error(`bench: sink counted ${got} of ${count}`);
          },
          close: async () => {},
        };
      },
    },
    close: async () => {
      pp.destroy();
      sk.destroy();
      await closeMore();
    },
  };
}

function h2Request(session: http2.ClientHttp2Session, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/' });
    let n = 0;
    req.on('data', (d: Buffer) => { n += d.length; });
    req.on('end', () => resolve(n));
    req.on('error', reject);
    req.end(body);
  });
}

async function openHttp2Peer(over: 'ringwire' | 'uds', ctx: OpenContext): Promise<Peer> {
  const c = await startChild('doorbell', ctx);
  let session: http2.ClientHttp2Session;
  try {
    if (over === 'ringwire') {
      const ch = await connect(c.h2, { sendRingBytes: RING_BYTES, receiveRingBytes: RING_BYTES });
      session = http2.connect('http://ringwire.invalid', { createConnection: () => createDuplex(ch) });
    } else {
      session = http2.connect('http://uds.invalid', { path: c.h2Path } as http2.SecureClientSessionOptions);
    }
    await new Promise<void>((resolve, reject) => { session.once('connect', () => resolve()); session.once('error', reject); });
  } catch (err) {
    await c.close();
    throw err;
  }
  return {
    paced: true,
    pingpong: async (size, run) => {
      const body = Buffer.alloc(size, 0xa5);
      for (;;) {
        const w = run.wait();
        if (w) await w;
        const t0 = process.hrtime.bigint();
        const n = await h2Request(session, body);
        const t1 = process.hrtime.bigint();
        if (n !== size) throw new Error(`bench: http2 echo returned ${n} bytes for ${size}`);
        if (!run.record(t0, t1)) return;
      }
    },
    streams: {
      stream: async (size, count): Promise<StreamHandle> => {
        const body = Buffer.alloc(size, 0x5a);
        return {
          messagesPerBurst: count,
          burst: async () => {
            let next = 0;
            const worker = async (): Promise<void> => {
              while (next < count) {
                next++;
                await h2Request(session, body);
              }
            };
            await Promise.all(Array.from({ length: Math.min(H2_IN_FLIGHT, count) }, worker));
          },
          close: async () => {},
        };
      },
    },
    close: async () => {
      session.destroy();
      await c.close();
    },
  };
}

export const ringwireChannel: Transport = {
  name: 'ringwire-channel',
  distance: 'process',
  description: 'connect()/listen() channel to a child process, request() per round trip, both sides busy-polling',
  maxSize: maxMessageSize(RING_BYTES),
  busyPoll: true,
  open: (ctx) => openChannelPeer('busy', ctx),
};

export const ringwireChannelDoorbell: Transport = {
  name: 'ringwire-channel-doorbell',
  distance: 'process',
  description: 'the same channel, both sides sleeping on their eventfd doorbell when idle',
  maxSize: maxMessageSize(RING_BYTES),
  open: (ctx) => openChannelPeer('doorbell', ctx),
};

export const ringwireChannelAdaptive: Transport = {
  name: 'ringwire-channel-adaptive',
  distance: 'process',
  description: 'the same channel with default options (poll: adaptive): polls while traffic is dense, sleeps on the eventfd when it thins',
  maxSize: maxMessageSize(RING_BYTES),
  open: (ctx) => openChannelPeer('adaptive', ctx),
};

export const ringwireChannelHybrid: Transport = {
  name: 'ringwire-channel-hybrid',
  distance: 'process',
  description: 'the doorbell channel, the requester polling up to 50 µs for each response (responseSpinUs: 50); the peer still sleeps',
  maxSize: maxMessageSize(RING_BYTES),
  open: (ctx) => openChannelPeer('doorbell', ctx, 50),
};

export const http2Ringwire: Transport = {
  name: 'http2-ringwire',
  distance: 'process',
  description: 'node:http2 POSTs (body echoed) over a ringwire channel Duplex; stream = requests/s with 64 in flight',
  maxSize: 1 << 20,
  open: (ctx) => openHttp2Peer('ringwire', ctx),
};

export const http2Uds: Transport = {
  name: 'http2-uds',
  distance: 'process',
  description: 'the same node:http2 server and requests over a plain UNIX socket',
  maxSize: 1 << 20,
  open: (ctx) => openHttp2Peer('uds', ctx),
};
