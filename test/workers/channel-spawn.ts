/** Starting channel-peer.js in a child process (optionally behind a wrapper such as `ip netns exec X`). */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Children } from '../helpers/index.js';

const PEER = fileURLToPath(new URL('./channel-peer.js', import.meta.url));

export interface StartedPeer {
  child: ChildProcess;
  /** The peer's first JSON line ({ ready } or { done } or { error }). */
  first: Record<string, unknown>;
}

export async function startPeer(children: Children, job: object, wrapper: string[] = []): Promise<StartedPeer> {
  const argv = [...wrapper, process.execPath, PEER, JSON.stringify(job)];
  const child = children.add(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] }));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const l = await lines.next();
  if (l.done) throw new Error(`peer ${JSON.stringify(job)} exited without a word`);
  return { child, first: JSON.parse(l.value) as Record<string, unknown> };
}
