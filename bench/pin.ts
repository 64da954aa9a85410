/**
 * CPU pinning with taskset: the measuring thread on one core, every peer on another, so the two
 * sides of a round trip never fight for one core and busy-polling peers get a core of their own.
 * Pinning is best effort; whether it happened, and why not, is recorded in the report's env.
 *
 * By default pinning is skipped when other work already keeps the cores busy: measured here on a
 * 2-core machine under a load of 4-5, a pinned side waits behind that work on its own core and
 * round trips grew from about 30 µs to 100-200 µs, while the unpinned scheduler kept them near 30.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpus } from 'node:os';

export type PinMode = 'auto' | 'on' | 'off';

/** Above this many cores' worth of other work, `auto` does not pin. */
const BUSY_CORES = 0.5;

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

function cpuTimes(): { idle: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal; guest time is already inside user.
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return { idle: (fields[3] ?? 0) + (fields[4] ?? 0), total };
}

/** Cores' worth of CPU time other processes used over `ms`, while this one sleeps. */
export async function busyCores(ms = 300): Promise<number> {
  try {
    const a = cpuTimes();
    await sleep(ms);
    const b = cpuTimes();
    const total = b.total - a.total;
    if (total <= 0) return 0;
    return Math.round((1 - (b.idle - a.idle) / total) * cpus().length * 100) / 100;
  } catch {
    return 0; // no /proc/stat: nothing known, so behave as on an idle machine
  }
}

/** Pins the main thread to core 0 and reserves core 1 for peers, when taskset and 2 cores exist. */
export function setUpPinning(mode: PinMode, busy: number): Pinning {
  if (mode === 'off') return { used: false, reason: 'disabled with --no-pin' };
  if (cpus().length < 2) return { used: false, reason: 'fewer than 2 cores' };
  if (mode === 'auto' && busy >= BUSY_CORES) {
    return { used: false, reason: `other work keeps ${busy} cores busy (--pin forces pinning)` };
  }
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
