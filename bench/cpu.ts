/**
 * CPU time a measurement costs: every thread of this process (the harness, its workers) and of
 * every descendant process (child peers). This process's own time comes from process.cpuUsage()
 * (getrusage: user + system of all its threads, brought up to date for the running ones); the
 * children's from /proc/<pid>/task/<tid>/schedstat, whose first field is the nanoseconds a thread
 * ran (user + system, not /proc/<pid>/stat's 10 ms ticks, though a thread that never stops running
 * is brought up to date only at scheduler ticks: a few ms over a window of a second). The second
 * field is the nanoseconds a thread waited on a run queue while runnable, which says how much the
 * rest of the machine got in the way (a busy-polling peer that waits for a core is not measuring
 * the transport any more). Threads the harness itself adds for pacing are subtracted.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface CpuSnapshot {
  readonly atNs: bigint;
  /** process.cpuUsage() of this process, µs. */
  readonly selfUs: number;
  /** schedstat run time of the excluded threads of this process, ns. */
  readonly excludedNs: number;
  /** Per thread (pid/tid): [ran ns, waited ns]. */
  readonly tasks: ReadonlyMap<string, readonly [number, number]>;
}

export interface CpuDelta {
  /** CPU time of all threads of this process and its descendants over the window, in µs. */
  readonly cpuUs: number;
  /** Run-queue waits summed over those threads, in µs. */
  readonly runDelayUs: number;
  /** Wall-clock length of the window, in µs. */
  readonly wallUs: number;
}

function schedstat(pid: number, tid: number | string): [number, number] | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
    return [Number(f[0]), Number(f[1])];
  } catch {
    return undefined; // the thread ended between the listing and the read
  }
}

function readTasks(pid: number, into: Map<string, readonly [number, number]>, exclude: ReadonlySet<number>): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return; // the process ended: its last figures are gone with it
  }
  for (const tid of tids) {
    if (exclude.has(Number(tid))) continue;
    const st = schedstat(pid, tid);
    if (st) into.set(`${pid}/${tid}`, st);
  }
}

/** Pids of every live descendant of `root`, from the ppid field of /proc/<pid>/stat. */
export function descendants(root = process.pid): number[] {
  const parent = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    const c = e.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone already
    }
  }
  const out: number[] = [];
  const frontier = [root];
  while (frontier.length) {
    const p = frontier.pop()!;
    for (const [pid, ppid] of parent) {
      if (ppid === p) {
        out.push(pid);
        frontier.push(pid);
      }
    }
  }
  return out;
}

/** True when per-thread schedstat can be read here (needs CONFIG_SCHED_INFO and /proc). */
export function cpuAccountingAvailable(): boolean {
  try {
    return readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`, 'utf8').split(' ').length >= 2;
  } catch {
    return false;
  }
}

/**
 * Measures a window: `start()` lists the processes once (a /proc scan, a few ms, done before the
 * window opens) and snapshots their threads; `stop()` snapshots the same processes again.
 * Threads born inside the window count from zero; threads that died inside it are lost (the bench
 * starts its peers before measuring, so none do).
 */
export class CpuProbe {
  readonly #exclude: Set<number>;
  #pids: number[] = [];
  #start: CpuSnapshot | undefined;

  constructor(exclude: Iterable<number> = []) {
    this.#exclude = new Set(exclude);
  }

  /** Threads (tids) whose time must not count: the harness's own pacing thread, say. */
  exclude(tid: number): void {
    this.#exclude.add(tid);
  }

  #snapshot(): CpuSnapshot {
    const tasks = new Map<string, readonly [number, number]>();
    for (const pid of this.#pids) readTasks(pid, tasks, this.#exclude);
    let excludedNs = 0;
    for (const tid of this.#exclude) excludedNs += schedstat(process.pid, tid)?.[0] ?? 0;
    const u = process.cpuUsage();
    return { atNs: process.hrtime.bigint(), selfUs: u.user + u.system, excludedNs, tasks };
  }

  start(): void {
    this.#pids = [process.pid, ...descendants()];
    this.#start = this.#snapshot();
  }

  get started(): boolean {
    return this.#start !== undefined;
  }

  stop(): CpuDelta {
    if (!this.#start) throw new Error('bench: CpuProbe.stop() before start()');
    const end = this.#snapshot();
    const a = this.#start;
    this.#start = undefined;
    let ran = 0, waited = 0;
    const self = `${process.pid}/`;
    for (const [k, [r, w]] of end.tasks) {
      const [r0, w0] = a.tasks.get(k) ?? [0, 0];
      if (!k.startsWith(self)) ran += Math.max(0, r - r0);
      waited += Math.max(0, w - w0);
    }
    const selfUs = Math.max(0, end.selfUs - a.selfUs - (end.excludedNs - a.excludedNs) / 1000);
    return { cpuUs: selfUs + ran / 1000, runDelayUs: waited / 1000, wallUs: Number(end.atNs - a.atNs) / 1000 };
  }
}
