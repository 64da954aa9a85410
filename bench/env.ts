/** The environment a report was measured in; the contract's env plus how it was measured. */
import { cpus, loadavg, release } from 'node:os';
import type { Pinning } from './pin.js';
import type { Env } from './results.js';

export function captureEnv(extra: { pinning: Pinning; busyCores: number; mode: 'quick' | 'full'; repeat: number; timerOverheadNs: number }): Env {
  const c = cpus();
  return {
    node: process.version,
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    kernel: release(),
    date: new Date().toISOString(),
    // Other work on the machine moves every figure; this says how much there was when we started.
    loadAvg1m: Math.round(loadavg()[0]! * 100) / 100,
    ...extra,
  };
}
