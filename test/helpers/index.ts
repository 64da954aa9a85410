/**
 * Shared test scaffolding: a fresh temp directory per test, children that are always killed, hard
 * timeouts, and a seeded PRNG so failures reproduce. Import from every tier (test/, qemu-test/).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';

/** Creates a private temp directory; the returned `cleanup` removes it. */
export function makeTempDir(prefix = 'ringwire-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `fn` with a hard deadline; rejects with a message naming `what` when it passes. */
export async function withTimeout<T>(what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tracks child processes (and workers) so a test's cleanup kills every one of them. */
export class Children {
  #procs = new Set<ChildProcess>();
  #terminators = new Set<() => unknown>();

  add<T extends ChildProcess>(child: T): T {
    this.#procs.add(child);
    child.once('exit', () => this.#procs.delete(child));
    return child;
  }

  /** Registers any other cleanup (worker.terminate, server.close, ...). */
  onCleanup(fn: () => unknown): void {
    this.#terminators.add(fn);
  }

  async killAll(): Promise<void> {
    for (const p of this.#procs) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    const waits = [...this.#procs].map((p) =>
      p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)),
    );
    const fns = [...this.#terminators];
    this.#terminators.clear();
    for (const fn of fns) await fn();
    await Promise.all(waits);
    this.#procs.clear();
  }
}

/** What `scratch` hands a test body. */
export interface Scratch {
  /** A private temp directory, removed after everything else is cleaned up. */
  dir: string;
  /** Killed (with their onCleanup hooks run) before any deferred cleanup. */
  children: Children;
  /** Registers a cleanup (close a ring half, a region, a server); they run in reverse order. */
  defer(fn: () => unknown): void;
  /** Defers `item.close()` and returns `item`: `const half = own(createSpscConsumerHalf(...))`. */
  own<T extends { close(): unknown }>(item: T): T;
}

/**
 * Runs `body` with a temp dir and a Children under a hard deadline named `name`. Whether the body
 * returns, throws or times out, the children are killed first (a child may still be using what the
 * deferred cleanups close), then every deferred cleanup runs, then the dir is removed. A failing
 * cleanup does not stop the others; the body's own error wins over a cleanup's.
 */
export async function scratch<T>(name: string, ms: number, body: (s: Scratch) => Promise<T>): Promise<T> {
  const { dir, cleanup } = makeTempDir();
  const children = new Children();
  const deferred: Array<() => unknown> = [cleanup];
  const errors: unknown[] = [];
  try {
    const defer = (fn: () => unknown): void => void deferred.push(fn);
    const own = <I extends { close(): unknown }>(item: I): I => {
      defer(() => item.close());
      return item;
    };
    return await withTimeout(name, ms, () => body({ dir, children, defer, own }));
  } catch (err) {
    errors.push(err);
    throw err;
  } finally {
    const steps = [() => children.killAll(), ...deferred.reverse()];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    // The body's error if it failed, else the first cleanup's: a cleanup that fails is a leak, and fails the test.
    if (errors.length > 0) throw errors[0];
  }
}

/** mulberry32: small, fast, seeded; good enough to drive property tests reproducibly. */
export function prng(seed: number): { next(): number; int(lo: number, hi: number): number; bytes(n: number): Uint8Array } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    bytes: (n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = (next() * 256) | 0;
      return b;
    },
  };
}

/** Seed for property tests: RINGWIRE_SEED reproduces a failing run; the seed is always printed. */
export function testSeed(): number {
  const env = process.env.RINGWIRE_SEED;
  const seed = env ? Number(env) : (Date.now() ^ (process.pid << 8)) >>> 0;
  console.log(`  seed ${seed} (set RINGWIRE_SEED=${seed} to reproduce)`);
  return seed;
}

/** In CI a missing dependency fails loudly; elsewhere the caller may skip with this reason printed. */
export function requireOrSkip(what: string, available: boolean): boolean {
  if (available) return true;
  if (process.env.CI) throw new Error(`${what} is missing, and CI must not skip this tier`);
  console.warn(`  SKIPPING: ${what} is missing`);
  return false;
}
