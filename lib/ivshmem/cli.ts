/**
 * `ringwire ivshmem-server`: runs an IvshmemHost (server + laid-out region + host pseudo-peer) in
 * the foreground until SIGINT or SIGTERM, logging joins and leaves. Start it before QEMU.
 */
import { parseArgs } from 'node:util';
import { ringwireError } from '../errors.js';
import { IvshmemHost } from './host.js';

export const IVSHMEM_SERVER_USAGE = `usage: ringwire ivshmem-server --path SOCKET [--size 4M] [--vectors 2] [--slots 16] [--mode 0600]
  --path     UNIX socket QEMU connects to (-chardev socket,path=SOCKET); @name for an abstract socket
  --size     shared memory, a power of two (K/M/G suffixes); default 4M
  --vectors  doorbell vectors per peer (QEMU's vectors=); default 2
  --slots    peer ids 0..slots-1; the host is 0; default 16
  --mode     octal permissions of the socket file
QEMU: -chardev socket,path=SOCKET,id=ivs -device ivshmem-doorbell,chardev=ivs,vectors=2`;

/** Parses "4M", "65536", "1G" into bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(text.trim());
  if (!m) throw ringwireError('ERR_INVALID_ARG', `size must be a number with an optional K, M or G suffix, got ${JSON.stringify(text)}`);
  const shift = { '': 0, K: 10, M: 20, G: 30 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * 2 ** shift;
}

function intArg(text: string | undefined, name: string, radix = 10): number | undefined {
  if (text === undefined) return undefined;
  const n = Number.parseInt(text, radix);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw ringwireError('ERR_INVALID_ARG', `--${name} must be an integer, got ${JSON.stringify(text)}`);
  return n;
}

/** Runs until a signal; resolves with the exit code. */
export async function ivshmemServerCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { path: { type: 'string' }, size: { type: 'string' }, vectors: { type: 'string' }, slots: { type: 'string' }, mode: { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) {
    console.log(IVSHMEM_SERVER_USAGE);
    return 0;
  }
  if (!values.path) throw ringwireError('ERR_INVALID_ARG', `--path is required\n${IVSHMEM_SERVER_USAGE}`);
  const vectors = intArg(values.vectors, 'vectors');
  const slots = intArg(values.slots, 'slots');
  const mode = intArg(values.mode, 'mode', 8);
  const host = IvshmemHost.listen({
    path: values.path,
    size: parseSize(values.size ?? '4M'),
    ...(vectors === undefined ? {} : { vectors }),
    ...(slots === undefined ? {} : { slots }),
    ...(mode === undefined ? {} : { mode }),
  });
  const g = host.geometry;
  console.log(`ivshmem-server: listening on ${values.path}; ${g.regionSize} bytes, ${g.slots} slots, ${g.vectors} vectors, ${g.ringCapacity}-byte rings; host is peer ${host.id}`);
  host.on('join', (_ch, p) => console.log(`join: peer ${p.id} (pid ${p.pid})`));
  host.on('leave', (id, reason) => console.log(`leave: peer ${id}${reason ? ` (${reason.message})` : ''}`));
  host.on('client-error', (err, id) => console.log(`client error${id === undefined ? '' : ` from peer ${id}`}: ${err.message}`));
  host.on('channel-error', (id, err) => console.log(`channel to peer ${id} broken: ${err.code} ${err.message}`));
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  host.close();
  return 0;
}
