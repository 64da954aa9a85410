/** test/87's view of the C echo peer (bench/peers/ringwire-c.ts): built and started inside a scratch. */
import { spawnSync } from 'node:child_process';
import { startCEcho, type CEcho } from '../../bench/peers/ringwire-c.js';
import { requireOrSkip, type Scratch } from '../helpers/index.js';

export { compileC } from '../../bench/peers/ringwire-c.js';

export function haveCc(): boolean {
  return requireOrSkip('a C compiler (cc)', spawnSync('cc', ['--version']).status === 0);
}

/** Starts the echo service; the scratch kills it and closes Node's side. */
export async function startScratchEcho(s: Scratch, binary: string, capacity = 1 << 14): Promise<CEcho> {
  const echo = await startCEcho(s.dir, binary, capacity);
  s.children.add(echo.child);
  s.defer(() => echo.close());
  return echo;
}
