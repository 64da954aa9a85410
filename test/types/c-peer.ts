/**
 * Builds the C test programs with the system compiler and runs test/c/echo.c as a typed-message
 * peer across processes: it creates its halves of two SPSC rings, Node creates the other halves
 * (lib/process/process-ring.ts), and the fds travel over a SEQPACKET socket.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FdServer, type FdSocket } from '../../lib/native/unix-socket.js';
import { FdInbox, attachSpscConsumer, attachSpscProducer, createSpscConsumerHalf, createSpscProducerHalf } from '../../lib/process/process-ring.js';
import type { SpscConsumer, SpscProducer } from '../../lib/ring/spsc.js';
import { requireOrSkip, type Scratch } from '../helpers/index.js';

export const repo = fileURLToPath(new URL('../../../', import.meta.url));

export function haveCc(): boolean {
  return requireOrSkip('a C compiler (cc)', spawnSync('cc', ['--version']).status === 0);
}

/** Compiles test/c/<name>.c with -Werror against include/ and the generated kitchen.h; returns the binary. */
export function compileC(dir: string, name: string, extra: string[] = []): string {
  const out = join(dir, `${name}${extra.length ? `-${extra.length}` : ''}`);
  execFileSync('cc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-pedantic', `-I${join(repo, 'include')}`, `-I${join(repo, 'test/types')}`,
    `-I${join(repo, 'test/c')}`, join(repo, `test/c/${name}.c`), '-o', out, ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
  return out;
}

export interface CPeer {
  /** Node -> C requests. */
  readonly requests: SpscProducer;
  /** C -> Node replies. */
  readonly replies: SpscConsumer;
  readonly pid: number;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/** Starts the echo service and trades ring halves with it. */
export async function startCEcho(s: Scratch, binary: string, capacity = 1 << 14): Promise<CPeer> {
  const path = join(s.dir, 'echo.sock');
  const server = FdServer.listen(path, { type: 'seqpacket' });
  s.defer(() => server.close());
  const accepted = new Promise<FdSocket>((resolve, reject) => {
    server.once('connection', resolve);
    server.once('error', reject);
  });
  const child = s.children.add(spawn(binary, [path, String(capacity)], { stdio: ['ignore', 'inherit', 'inherit'] }));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const sock = await accepted;
  s.defer(() => sock.close());
  const inbox = new FdInbox(sock);
  s.defer(() => inbox.close());
  const hello = await inbox.next(10_000);
  if (hello.data.toString() !== 'rwc1' || hello.fds.length !== 4) throw new Error(`bad hello from the C peer: ${hello.data.toString()}`);
  const n2c = createSpscProducerHalf(capacity, 'n2c');
  const c2n = createSpscConsumerHalf(capacity, 'c2n');
  sock.send(Buffer.from('rwn1'), [...n2c.fds, ...c2n.fds]);
  const [cConsBlock, cDataBell, cProdBlock, cSpaceBell] = hello.fds as [number, number, number, number];
  const requests = attachSpscProducer(n2c, [cConsBlock, cDataBell]);
  s.defer(() => requests.close());
  const replies = attachSpscConsumer(c2n, [cProdBlock, cSpaceBell]);
  s.defer(() => replies.close());
  return { requests: requests.ring, replies: replies.ring, pid: child.pid!, exited };
}
