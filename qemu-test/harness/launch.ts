/**
 * Turns VmOptions into a job directory and a QEMU command line: validates the options, writes
 * script.sh (env, cwd, the test's script) and vm.conf (what /init sets up), and picks the devices.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ringwireError } from '../../lib/errors.js';
import type { Children } from '../../test/helpers/index.js';
import type { Accel } from './accel.js';
import { MODULE_GROUPS, type GuestImage, type ModuleGroup } from './image.js';

/** Repository root on the host, which is also its path inside every guest. */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');

export interface VmNet {
  /** QEMU -netdev backend without the id, e.g. `user` (default) or `socket,listen=127.0.0.1:5555`. */
  netdev?: string;
  /** eth0 address in CIDR form; default 10.0.2.15/24 (user-mode networking's guest address). */
  address?: string;
  /** Default route; default 10.0.2.2 (user-mode's gateway, which forwards to the host's loopback). */
  gateway?: string | null;
  /** MAC of the virtio-net device; default derived from the VM name, so VMs on one link differ. */
  mac?: string;
}

export interface VmOptions {
  /** Letters, digits, `-` and `_`; names the VM's files and kept logs. */
  name: string;
  /** Shell run by the host's /bin/sh inside the guest chroot, in `cwd`. Its exit status is the result. */
  script: string;
  /** Wall-clock limit from QEMU's start; the guest is killed when it passes. */
  timeoutMs: number;
  memoryMiB?: number;
  cpus?: number;
  /** Guest RAM as a shared memfd (`-object memory-backend-memfd,share=on`), which vhost-user needs. */
  memfdBackend?: boolean;
  /** A virtio-net NIC configured as eth0 before the script runs; `true` means user-mode defaults. */
  net?: boolean | VmNet;
  /** Extra module groups to load (see MODULE_GROUPS); `net` is implied by `net`. */
  modules?: ModuleGroup[];
  /** Files written into the job directory before boot, by plain file name. */
  files?: Record<string, string | Uint8Array>;
  /** Exported to the script (in addition to PATH, HOME, RINGWIRE_JOB, RINGWIRE_REPO, RINGWIRE_VM). */
  env?: Record<string, string>;
  /** Working directory of the script inside the guest; default the repository root. */
  cwd?: string;
  /** Extra QEMU arguments: ivshmem or vhost-user devices, chardevs, ... */
  extraArgs?: string[];
  /** Appended to the kernel command line. */
  kernelArgs?: string;
}

export interface VmStartOptions extends VmOptions {
  /** Directory that receives `<name>/`; usually the test's makeTempDir(). */
  workDir: string;
  /** When given, QEMU is registered so `children.killAll()` kills it too. */
  children?: Children;
}

const DEFAULT_NET = { netdev: 'user', address: '10.0.2.15/24', gateway: '10.0.2.2' } as const;
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
/** QEMU option values escape a comma by doubling it. */
const qopt = (s: string): string => s.replace(/,/g, ',,');

export function validate(o: VmStartOptions): void {
  const bad = (what: string): never => {
    throw ringwireError('ERR_INVALID_ARG', `Vm.start: ${what}`);
  };
  const range = (what: string): never => {
    throw ringwireError('ERR_OUT_OF_RANGE', `Vm.start: ${what}`);
  };
  if (typeof o.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(o.name)) bad(`name must be 1-64 of [A-Za-z0-9_-], got ${JSON.stringify(o.name)}`);
  if (typeof o.script !== 'string') bad('script must be a string');
  if (!Number.isFinite(o.timeoutMs) || o.timeoutMs <= 0) range(`timeoutMs must be a positive number, got ${o.timeoutMs}`);
  if (o.memoryMiB !== undefined && (!Number.isInteger(o.memoryMiB) || o.memoryMiB < 128 || o.memoryMiB > 16384)) range(`memoryMiB must be an integer in 128..16384, got ${o.memoryMiB}`);
  if (o.cpus !== undefined && (!Number.isInteger(o.cpus) || o.cpus < 1 || o.cpus > 8)) range(`cpus must be an integer in 1..8, got ${o.cpus}`);
  if (typeof o.workDir !== 'string' || !o.workDir.startsWith('/') || /[\s'"\\]/.test(o.workDir)) bad(`workDir must be an absolute path without whitespace or quotes, got ${JSON.stringify(o.workDir)}`);
  for (const key of Object.keys(o.env ?? {})) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) bad(`env name ${JSON.stringify(key)} is not a shell variable name`);
  for (const g of o.modules ?? []) if (!(g in MODULE_GROUPS) || (g as string) === 'base') bad(`unknown module group ${JSON.stringify(g)}`);
  for (const f of Object.keys(o.files ?? {})) if (!/^[A-Za-z0-9_.-]+$/.test(f) || f.startsWith('.') || ['script.sh', 'vm.conf', 'exit-status'].includes(f)) bad(`files: ${JSON.stringify(f)} is not a plain file name or is reserved`);
  if (o.extraArgs && !o.extraArgs.every((a) => typeof a === 'string')) bad('extraArgs must be strings');
}

function netConfig(o: VmOptions): Required<VmNet> | undefined {
  if (!o.net) return undefined;
  const n = o.net === true ? {} : o.net;
  const hash = createHash('sha256').update(o.name).digest();
  const mac = n.mac ?? `52:54:00:${[hash[0], hash[1], hash[2]].map((b) => (b ?? 0).toString(16).padStart(2, '0')).join(':')}`;
  return { netdev: n.netdev ?? DEFAULT_NET.netdev, address: n.address ?? DEFAULT_NET.address, gateway: n.gateway === undefined ? DEFAULT_NET.gateway : n.gateway, mac };
}

/** Creates `<workDir>/<name>/job` with script.sh, vm.conf and `files`; returns QEMU's arguments. */
export function prepareLaunch(o: VmStartOptions, image: GuestImage, accel: Accel): string[] {
  const dir = join(o.workDir, o.name);
  const jobDir = join(dir, 'job');
  if (existsSync(dir)) throw ringwireError('ERR_INVALID_ARG', `Vm.start: ${dir} already exists; VM names must be unique per workDir`);
  mkdirSync(jobDir, { recursive: true });
  for (const [f, data] of Object.entries(o.files ?? {})) writeFileSync(join(jobDir, f), data);
  const net = netConfig(o);
  const modules = new Set(o.modules ?? []);
  if (net) modules.add('net');
  const env: Record<string, string> = { PATH: GUEST_PATH, HOME: '/tmp', RINGWIRE_VM: o.name, RINGWIRE_JOB: jobDir, RINGWIRE_REPO: REPO_ROOT, ...o.env };
  writeFileSync(join(jobDir, 'script.sh'), [
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`),
    `cd ${shq(o.cwd ?? REPO_ROOT)} || exit 125`,
    o.script,
    '',
  ].join('\n'));
  writeFileSync(join(jobDir, 'vm.conf'), [
    `RW_JOB=${shq(jobDir)}`,
    `RW_REPO=${shq(REPO_ROOT)}`,
    `RW_MODULES=${shq([...modules].join(' '))}`,
    `RW_NET_ADDR=${shq(net?.address ?? '')}`,
    `RW_NET_GW=${shq(net?.gateway ?? '')}`,
    '',
  ].join('\n'));
  const mem = o.memoryMiB ?? 512;
  return [
    // RDRAND lets the guest kernel seed its CRNG at once (it trusts the CPU); without it node's
    // first getrandom() waits seconds for jitter entropy. qemu64 otherwise: `max` is slower under TCG.
    '-accel', accel, '-machine', 'pc', '-cpu', 'qemu64,+rdrand', '-m', `${mem}M`, '-smp', String(o.cpus ?? 1),
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-serial', 'stdio',
    '-kernel', image.kernel, '-initrd', image.initramfs,
    '-append', `console=ttyS0 panic=-1 quiet ${o.kernelArgs ?? ''}`.trim(),
    '-virtfs', 'local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${qopt(jobDir)},mount_tag=job,security_model=none`,
    ...(o.memfdBackend ? ['-object', `memory-backend-memfd,id=mem,size=${mem}M,share=on`, '-numa', 'node,memdev=mem'] : []),
    ...(net ? ['-netdev', `${net.netdev},id=net0`, '-device', `virtio-net-pci,netdev=net0,mac=${net.mac}`] : []),
    ...(modules.has('rng') ? ['-device', 'virtio-rng-pci'] : []),
    ...(o.extraArgs ?? []),
  ];
}
