/**
 * Parent side of the cross-process ring tests: starts test/workers/process-ring-child.js with its
 * own SOCK_SEQPACKET socket in the test's temp dir and hands back the connected socket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FdInbox } from '../../lib/process/process-ring.js';
import { FdServer, type FdSocket } from '../../lib/native/unix-socket.js';
import { withTimeout, type Children, type Scratch } from './index.js';
import type { RingProducer } from '../../lib/ring/ring-types.js';
import type { ChildParams, ChildRole } from '../workers/process-ring-child.js';
import { messageLength, writeMessage } from '../workers/ring-worker.js';

const childScript = fileURLToPath(new URL('../workers/process-ring-child.js', import.meta.url));
export const CHILD_WAIT_MS = 30_000;

export interface RingChild {
  readonly proc: ChildProcess;
  readonly sock: FdSocket;
  readonly inbox: FdInbox;
  /** Resolves with how the child ended: exit code, or the signal that killed it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns a child in `role`, waits for it to connect, and checks with SO_PEERCRED that it is that child. */
export async function startChild(children: Children, dir: string, name: string, role: ChildRole, params: ChildParams): Promise<RingChild> {
  const address = join(dir, `${name}.sock`);
  const server = FdServer.listen(address, { mode: 0o600 });
  try {
    const connected = new Promise<FdSocket>((resolve) => server.once('connection', resolve));
    const proc = children.add(spawn(process.execPath, [childScript, address, role, JSON.stringify(params)], { stdio: ['ignore', 'inherit', 'inherit'] }));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    const early = exited.then(({ code, signal }) => {
      throw new Error(`${name} exited (${signal ?? code}) before connecting`);
    });
    early.catch(() => {});
    const sock = await withTimeout(`${name} connects`, CHILD_WAIT_MS, () => Promise.race([connected, early]));
    // The inbox listens from the first tick, so no message (and none of its fds) is dropped.
    const inbox = new FdInbox(sock);
    children.onCleanup(() => {
      inbox.close();
      sock.close();
    });
    if (sock.peerCred().pid !== proc.pid) throw new Error(`${name}: the socket's peer is pid ${sock.peerCred().pid}, not the child ${proc.pid}`);
    return { proc, sock, inbox, exited };
  } finally {
    server.close();
  }
}

/** The child's next message, parsed as JSON. */
export async function report<T>(child: RingChild, timeoutMs = CHILD_WAIT_MS): Promise<T> {
  const m = await child.inbox.next(timeoutMs);
  return JSON.parse(m.data.toString()) as T;
}

/** Hands `child` this side's ring half (`fds`) and resolves with the fds it answers with: its own half. */
export async function handHalf(child: RingChild, fds: readonly number[]): Promise<number[]> {
  child.sock.send(Buffer.from('half'), [...fds]);
  return (await child.inbox.next(CHILD_WAIT_MS)).fds;
}

/** Starts a child in `role` that opens the other half of the ring whose half here has `fds`; the child's half comes back as `peerFds`. */
export async function startRingPeer(children: Children, dir: string, role: ChildRole, params: ChildParams, fds: readonly number[]): Promise<{ child: RingChild; peerFds: number[] }> {
  const child = await startChild(children, dir, role, role, params);
  return { child, peerFds: await handHalf(child, fds) };
}

/** Hands a producer child the consumer half's fds and adds the space bell it answers with. */
export async function joinProducer(child: RingChild, fds: readonly number[], addProducer: (fd: number) => () => void): Promise<() => void> {
  const answer = await handHalf(child, fds);
  if (answer.length !== 1) throw new Error(`producer sent ${answer.length} fds`);
  return addProducer(answer[0]!);
}

/**
 * Sends producer 0's messages 0..count-1 (ring-worker's lengths and contents), waiting for space
 * when the ring is full, and returns the checksum a consumer reports for them.
 */
export async function produceSequence(ring: RingProducer, count: number): Promise<number> {
  let checksum = 0;
  for (let seq = 0; seq < count; seq++) {
    const len = messageLength(0, seq);
    let off = ring.claim(len, 0);
    while (off < 0) {
      if (!(await ring.waitForSpace(len, { timeoutMs: CHILD_WAIT_MS }))) throw new Error(`no space at ${seq}`);
      off = ring.claim(len, 0);
    }
    writeMessage(ring.data, off, 0, seq, len);
    ring.commit();
    checksum = (checksum + seq + len) >>> 0;
  }
  return checksum;
}

export interface SocketPeer {
  readonly sock: FdSocket;
  readonly inbox: FdInbox;
  /** Resolves with the child's exit code. */
  readonly exited: Promise<number | null>;
  /** What the child printed on stdout so far. */
  out(): string;
}

/**
 * Runs any program (a C peer, a node script) that connects to a fresh SOCK_SEQPACKET socket in the
 * test's dir, whose path `args` places among its arguments; collects its stdout, and closes the
 * socket and inbox when the test's scratch is cleaned up.
 */
export async function spawnSocketPeer(s: Scratch, name: string, command: string, args: (path: string) => string[]): Promise<SocketPeer> {
  const path = join(s.dir, `${name}.sock`);
  const server = s.own(FdServer.listen(path, { type: 'seqpacket' }));
  const accepted = new Promise<FdSocket>((resolve) => server.once('connection', resolve));
  const child = s.children.add(spawn(command, args(path), { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const sock = s.own(await accepted);
  const inbox = s.own(new FdInbox(sock));
  return { sock, inbox, exited, out: () => out };
}
