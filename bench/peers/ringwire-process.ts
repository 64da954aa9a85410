/**
 * `ringwire-process` and `ringwire-process-doorbell`: two SPSC rings in sealed memfds between the
 * harness and a child process (bench/peers/ringwire-process-peer.ts), set up over a SOCK_SEQPACKET
 * socket with lib/process/process-ring.ts, eventfds as doorbells. The harness side is ring-wire.ts's
 * ringPeer, as for ringwire-thread, so the transports differ only in where the far side runs and
 * how it waits: busy-polling, or parked on its eventfd whenever its inbound ring is empty.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  attachSpscConsumer, attachSpscProducer, createSpscConsumerHalf, createSpscProducerHalf, FdInbox,
  type ProcessRing,
} from '../../lib/process/process-ring.js';
import type { SpscConsumer, SpscProducer } from '../../lib/ring/spsc.js';
import { FdServer, type FdSocket } from '../../lib/native/unix-socket.js';
import { pinnedNode } from '../pin.js';
import type { OpenContext, Peer, Transport } from '../transport.js';
import { ringPeer, PRODUCER_SPIN } from './ring-wire.js';
import { maxMessageSize } from '../../lib/ring/layout.js';

const peerScript = fileURLToPath(new URL('./ringwire-process-peer.js', import.meta.url));
/** The same ring size as ringwire-thread, so both carry the same message sizes. */
const RING_BYTES = 1 << 20;
const SETUP_MS = 10_000;

type Mode = 'busy' | 'doorbell';

/** The harness side's rings, for checking how often the far side was asleep (doorbellsRung). */
export interface ProcessRingPeer extends Peer {
  stats(): { ping: ReturnType<SpscProducer['stats']>; pong: ReturnType<SpscConsumer['stats']> };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function accept(server: FdServer, child: ChildProcess): Promise<FdSocket> {
  let onExit!: (code: number | null) => void;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<FdSocket>((resolve, reject) => {
      onExit = (code) => reject(new Error(`bench: ringwire-process peer exited with ${code} before connecting`));
      child.once('exit', onExit);
      server.once('connection', resolve);
      timer = setTimeout(() => reject(new Error('bench: ringwire-process peer did not connect')), SETUP_MS);
    });
  } finally {
    clearTimeout(timer);
    child.off('exit', onExit);
  }
}

export async function openProcessRingPeer(mode: Mode, ctx: OpenContext): Promise<ProcessRingPeer> {
  const address = join(ctx.tempDir, 'ringwire-process.sock');
  const server = FdServer.listen(address, { mode: 0o600 });
  const pingHalf = createSpscProducerHalf(RING_BYTES, 'bench-ping');
  const pongHalf = createSpscConsumerHalf(RING_BYTES, 'bench-pong');
  const [cmd, argv] = pinnedNode(ctx.peerCore, peerScript, [address, mode]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
  let sock: FdSocket | undefined;
  let inbox: FdInbox | undefined;
  let ping: ProcessRing<SpscProducer> | undefined;
  let pong: ProcessRing<SpscConsumer> | undefined;
  const release = async (): Promise<void> => {
    const gone = exited(child);
    const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(kill);
    ping?.close();
    pong?.close();
    pingHalf.close();
    pongHalf.close();
    inbox?.close();
    sock?.close();
    server.close();
  };
  try {
    sock = await accept(server, child);
    inbox = new FdInbox(sock);
    sock.send(Buffer.from(JSON.stringify({ capacity: RING_BYTES })), [...pingHalf.fds]);
    sock.send(Buffer.from('pong'), [...pongHalf.fds]);
    ping = attachSpscProducer(pingHalf, (await inbox.next(SETUP_MS)).fds, { spin: PRODUCER_SPIN });
    pong = attachSpscConsumer(pongHalf, (await inbox.next(SETUP_MS)).fds);
  } catch (err) {
    child.kill('SIGKILL');
    await release();
    throw err;
  }
  const out = ping.ring;
  const inbound = pong.ring;
  return { ...ringPeer(out, inbound, release), stats: () => ({ ping: out.stats(), pong: inbound.stats() }) };
}

export const ringwireProcess: Transport = {
  name: 'ringwire-process',
  distance: 'process',
  description: 'SPSC rings in sealed memfds between this process and a child, busy-polling (eventfds set up but rarely rung)',
  maxSize: maxMessageSize(RING_BYTES),
  busyPoll: true,
  open: (ctx) => openProcessRingPeer('busy', ctx),
};
