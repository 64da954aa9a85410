/**
 * CPU pinning with taskset: the measuring thread on one core, every peer on another, so the two
 * sides of a round trip never fight for one core and busy-polling peers get a core of their own.
 * Pinning is best effort; whether it happened is recorded in the report's env.
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { cpus } from 'node:os';

export interface Pinning {
  readonly used: boolean;
  readonly mainCore?: number;
  readonly peerCore?: number;
  /** Why pinning was not used, when it was not. */
  readonly reason?: string;
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Pins the calling thread (main thread or a worker) to `core`. taskset -p without -a changes one
 * task, and /proc/thread-self names the calling thread because sync fs calls run on it.
 */
export function pinCurrentThread(core: number): boolean {
  try {
    const tid = readlinkSync('/proc/thread-self').split('/').pop();
    if (!tid) return false;
    execFileSync('taskset', ['-p', '-c', String(core), tid], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pins the main thread to core 0 and reserves core 1 for peers, when taskset and 2 cores exist. */
export function setUpPinning(wanted: boolean): Pinning {
  if (!wanted) return { used: false, reason: 'disabled with --no-pin' };
  if (cpus().length < 2) return { used: false, reason: 'fewer than 2 cores' };
  if (!hasTaskset()) return { used: false, reason: 'taskset not found' };
  if (!pinCurrentThread(0)) return { used: false, reason: 'taskset -p failed' };
  return { used: true, mainCore: 0, peerCore: 1 };
}

/** Command and arguments that start `node script args` on `core` (all its threads), or unpinned. */
export function pinnedNode(core: number | undefined, script: string, args: readonly string[]): [string, string[]] {
  const node = [process.execPath, script, ...args];
  if (core === undefined) return [node[0]!, node.slice(1)];
  return ['taskset', ['-c', String(core), ...node]];
}
