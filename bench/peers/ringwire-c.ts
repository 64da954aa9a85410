/**
 * A C peer in another process (issue 16): test/c/echo.c, built with the system compiler against
 * include/ringwire.h, answers typed kitchen requests (test/types/kitchen.wit) over two SPSC rings
 * in sealed memfds. It creates its own halves; the fds travel over one SEQPACKET message each way
 * ("rwc1" with [n2c consumer block, n2c data bell, c2n producer block, c2n space bell], "rwn1"
 * with Node's halves). The bench row busy-polls on both sides, like ringwire-process.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FdServer, type FdSocket } from '../../lib/native/unix-socket.js';
import { FdInbox, attachSpscConsumer, attachSpscProducer, createSpscConsumerHalf, createSpscProducerHalf } from '../../lib/process/process-ring.js';
import type { SpscConsumer, SpscProducer } from '../../lib/ring/spsc.js';
import { RequestView, sendRequest } from '../../test/types/kitchen.js';
import { sample } from '../../test/types/sample.js';
import type { Transport } from '../transport.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

/** Compiles test/c/<name>.c with -Werror against include/ and the generated kitchen.h; returns the binary. */
export function compileC(dir: string, name: string, extra: string[] = []): string {
  const out = join(dir, `${name}${extra.length ? `-${extra.length}` : ''}`);
  execFileSync('cc', ['-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-pedantic', `-I${join(repo, 'include')}`, `-I${join(repo, 'test/types')}`,
    `-I${join(repo, 'test/c')}`, join(repo, `test/c/${name}.c`), '-o', out, ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
  return out;
}

export interface CEcho {
  /** Node -> C requests. */
  readonly requests: SpscProducer;
  /** C -> Node replies. */
  readonly replies: SpscConsumer;
  readonly child: ChildProcess;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Closes Node's side (rings, socket, server); kill the child first. */
  close(): void;
}

/** Starts the C echo service with its socket in `dir` and trades ring halves with it. */
export async function startCEcho(dir: string, binary: string, capacity = 1 << 14, spin = 0): Promise<CEcho> {
  const closers: Array<() => void> = [];
  const close = (): void => {
    for (const c of closers.splice(0).reverse()) c();
  };
  try {
    const path = join(dir, 'echo.sock');
    const server = FdServer.listen(path, { type: 'seqpacket' });
    closers.push(() => server.close());
    const accepted = new Promise<FdSocket>((resolve, reject) => {
      server.once('connection', resolve);
      server.once('error', reject);
    });
    const child = spawn(binary, [path, String(capacity), String(spin)], { stdio: ['ignore', 'inherit', 'inherit'] });
    closers.push(() => child.kill('SIGKILL'));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const sock = await Promise.race([accepted, exited.then(() => { throw new Error('the C peer exited before connecting'); })]);
    closers.push(() => sock.close());
    const inbox = new FdInbox(sock);
    closers.push(() => inbox.close());
    const hello = await inbox.next(10_000);
    if (hello.data.toString() !== 'rwc1' || hello.fds.length !== 4) throw new Error(`bad hello from the C peer: ${hello.data.toString()}`);
    const n2c = createSpscProducerHalf(capacity, 'n2c');
    closers.push(() => n2c.close());
    const c2n = createSpscConsumerHalf(capacity, 'c2n');
    closers.push(() => c2n.close());
    sock.send(Buffer.from('rwn1'), [...n2c.fds, ...c2n.fds]);
    const [cConsBlock, cDataBell, cProdBlock, cSpaceBell] = hello.fds as [number, number, number, number];
    const requests = attachSpscProducer(n2c, [cConsBlock, cDataBell]);
    closers.push(() => requests.close());
    const replies = attachSpscConsumer(c2n, [cProdBlock, cSpaceBell]);
    closers.push(() => replies.close());
    return { requests: requests.ring, replies: replies.ring, child, exited, close };
  } catch (err) {
    close();
    throw err;
  }
}

const CAPACITY = 1 << 16;

export const ringwireC: Transport = {
  name: 'ringwire-c',
  distance: 'process',
  description: 'a C service (include/ringwire.h) in another process answers typed kitchen requests, SPSC rings in sealed memfds, busy-polling',
  /** The message is the typed request whatever the size slot; rows run at the slots up to 64 B. */
  maxSize: 64,
  async open(ctx) {
    const echo = await startCEcho(ctx.tempDir, compileC(ctx.tempDir, 'echo'), CAPACITY, 50_000_000);
    const view = new RequestView();
    return {
      // The message is the typed kitchen request (~250 bytes); the size slot only labels the row.
      async pingpong(_size, run) {
        for (let go = true, i = 0; go; i++) {
          const t0 = process.hrtime.bigint();
          sendRequest(echo.requests, sample, 1);
          while (echo.replies.read() < 0) { /* busy-poll, as ringwire-process does */ }
          if (echo.replies.type !== 1 || view.wrap(echo.replies.data, echo.replies.offset, echo.replies.length).color !== sample.color) throw new Error('bench: bad C reply');
          echo.replies.release();
          go = run.record(t0, process.hrtime.bigint());
        }
      },
      async close() {
        echo.requests.send(new Uint8Array(0), 2);
        await Promise.race([echo.exited, new Promise((r) => setTimeout(r, 2000))]);
        echo.close();
      },
    };
  },
};
