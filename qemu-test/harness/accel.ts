/**
 * Which QEMU accelerator to use. TCG always works; KVM is used only where a probe boot under KVM
 * reached the guest's /init within a short deadline, because on some hosts (this project's
 * development machine among them) /dev/kvm exists but guests hang. The verdict is cached per host
 * kernel and QEMU version so a hanging KVM costs the probe deadline once, not once per test.
 * RINGWIRE_VM_ACCEL=tcg|kvm overrides the probe.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { GUEST_MARK } from './guest-init.js';
import type { GuestImage } from './image.js';

export type Accel = 'tcg' | 'kvm';
export const QEMU = 'qemu-system-x86_64';
const PROBE_DEADLINE_MS = 20_000;

/** QEMU's version line, or undefined when the binary is missing. */
export function qemuVersion(): string | undefined {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function probeBoot(image: GuestImage): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(QEMU, [
      '-accel', 'kvm', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-serial', 'stdio', '-kernel', image.kernel, '-initrd', image.initramfs,
      '-append', 'console=ttyS0 panic=-1 quiet ringwire.probe',
    ], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    let ok = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_DEADLINE_MS);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (out.includes(`${GUEST_MARK} probe-ok`)) ok = true;
    });
    child.on('error', () => resolve(false));
    child.on('close', () => {
      clearTimeout(timer);
      resolve(ok);
    });
  });
}

let memo: Accel | undefined;

export async function chooseAccel(image: GuestImage): Promise<Accel> {
  const forced = process.env.RINGWIRE_VM_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return forced;
  if (memo) return memo;
  if (!kvmUsable()) return (memo = 'tcg');
  const key = `${release()} ${qemuVersion()} ${image.kernelRelease}`;
  const file = join(image.cacheDir, 'kvm-probe.json');
  if (existsSync(file)) {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as { key: string; accel: Accel };
    if (cached.key === key) return (memo = cached.accel);
  }
  memo = (await probeBoot(image)) ? 'kvm' : 'tcg';
  writeFileSync(`${file}.${process.pid}`, JSON.stringify({ key, accel: memo }));
  renameSync(`${file}.${process.pid}`, file);
  return memo;
}
