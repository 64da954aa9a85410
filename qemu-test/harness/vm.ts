/**
 * One QEMU guest running one shell script inside a chroot of the host's root (read-only over 9p),
 * with the host's `node` and this repository at their host paths.
 *
 * Files, all under `<workDir>/<name>/`: `job/` is shared read-write with the guest and mounted
 * there at the same absolute path (exchange files through `vm.jobDir`); `console.log` is the serial
 * console; `qemu.log` is QEMU's stderr; `qemu-cmd.txt` the command line. When a guest fails or
 * times out, those are copied to `$RINGWIRE_VM_LOG_DIR` (default `<tmpdir>/ringwire-vm-logs`) and
 * the copy is named in the result and on stderr, because the test's temp dir is removed afterwards.
 *
 * Concurrency contract: a Vm belongs to the test that started it; wait(), waitForLine() and kill()
 * may be called any number of times, in any order; kill() after exit is a no-op.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ringwireError } from '../../lib/errors.js';
import type { Children } from '../../test/helpers.js';
import { chooseAccel, QEMU, type Accel } from './accel.js';
import { GUEST_MARK } from './guest-init.js';
import { ensureGuestImage, MODULE_GROUPS, type ModuleGroup } from './image.js';

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

/** A step the guest's /init reported, with guest uptime and host wall time since QEMU started. */
export interface GuestMark {
  uptimeS: number;
  wallMs: number;
}

export interface VmResult {
  /** The script's exit status, or null when the script never finished (timeout, boot failure). */
  exitCode: number | null;
  /** What the script wrote to stdout and stderr (interleaved with any kernel console messages). */
  output: string;
  timedOut: boolean;
  /** QEMU's own exit code or signal. */
  qemuExit: number | NodeJS.Signals | null;
  wallMs: number;
  /** /init's steps by name: init, job-start, job-exit, and FAILED: <step> when one broke. */
  marks: ReadonlyMap<string, GuestMark>;
  /** Where the logs were kept, when the run failed. */
  logsDir?: string;
}

const DEFAULT_NET = { netdev: 'user', address: '10.0.2.15/24', gateway: '10.0.2.2' } as const;
const GUEST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const CONSOLE_KEEP_CHARS = 8 << 20;
const QEMU_STDERR_KEEP_CHARS = 16 << 10;

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
/** QEMU option values escape a comma by doubling it. */
const qopt = (s: string): string => s.replace(/,/g, ',,');

function validate(o: VmStartOptions): void {
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

type Waiter = { re: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class Vm {
  readonly name: string;
  /** `<workDir>/<name>`: the VM's own files. */
  readonly dir: string;
  /** Shared read-write with the guest, at this same path inside it. */
  readonly jobDir: string;
  /** Path of the serial console log. */
  readonly console: string;
  readonly qemuLog: string;
  readonly accel: Accel;

  #child: ChildProcessByStdio<Writable, Readable, Readable>;
  #consoleFile: WriteStream;
  #text = '';
  #stderr = '';
  #partial = '';
  #lines: string[] = [];
  #waiters = new Set<Waiter>();
  #marks = new Map<string, GuestMark>();
  #started = Date.now();
  #timedOut = false;
  #timer: NodeJS.Timeout;
  #exited: Promise<VmResult>;
  #logsDir: string | undefined;

  private constructor(o: VmStartOptions, accel: Accel, args: string[]) {
    this.name = o.name;
    this.dir = join(o.workDir, o.name);
    this.jobDir = join(this.dir, 'job');
    this.console = join(this.dir, 'console.log');
    this.qemuLog = join(this.dir, 'qemu.log');
    this.accel = accel;
    writeFileSync(join(this.dir, 'qemu-cmd.txt'), [QEMU, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : shq(a))).join(' ') + '\n');
    this.#consoleFile = createWriteStream(this.console);
    const qemuErr = createWriteStream(this.qemuLog);
    // stdin stays an open pipe: QEMU's stdio chardev treats EOF on stdin as a closed console.
    this.#child = spawn(QEMU, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    o.children?.add(this.#child);
    this.#child.stdout.on('data', (d: Buffer) => this.#onConsole(d));
    this.#child.stderr.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString('utf8')).slice(-QEMU_STDERR_KEEP_CHARS);
    });
    this.#child.stderr.pipe(qemuErr);
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#child.kill('SIGKILL');
    }, o.timeoutMs);
    this.#exited = new Promise<VmResult>((resolve) => {
      let spawnError: Error | undefined;
      this.#child.on('error', (e) => (spawnError = e));
      this.#child.on('close', (code, signal) => {
        clearTimeout(this.#timer);
        this.#endPartialLine();
        if (spawnError) this.#text += `\n[harness] could not start ${QEMU}: ${spawnError.message}\n`;
        const tail = this.#tail();
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(ringwireError('ERR_PEER_GONE', `VM ${this.name} exited (${signal ?? code}) before printing a line matching ${w.re}${tail}`));
        }
        this.#waiters.clear();
        Promise.all([new Promise<void>((r) => this.#consoleFile.end(() => r())), new Promise<void>((r) => (qemuErr.writableFinished ? r() : qemuErr.once('finish', () => r())))])
          .then(() => resolve(this.#result(code ?? signal)));
      });
    });
  }

  /** Provisions the image if needed, picks the accelerator and starts QEMU; does not wait for boot. */
  static async start(o: VmStartOptions): Promise<Vm> {
    validate(o);
    const image = await ensureGuestImage();
    const accel = await chooseAccel(image);
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
      `RW_MODULES=${shq([...modules].join(' '))}`,
      `RW_NET_ADDR=${shq(net?.address ?? '')}`,
      `RW_NET_GW=${shq(net?.gateway ?? '')}`,
      '',
    ].join('\n'));
    const mem = o.memoryMiB ?? 512;
    const args = [
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
    return new Vm(o, accel, args);
  }

  /** Console text received so far. */
  get consoleText(): string {
    return this.#text;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Resolves when QEMU has exited (the script finished, the guest failed, or the timeout killed it). */
  wait(): Promise<VmResult> {
    return this.#exited;
  }

  /** Like wait(), but rejects with the console tail and the kept logs unless the script exited 0. */
  async waitSuccess(): Promise<VmResult> {
    const r = await this.wait();
    if (r.exitCode === 0) return r;
    const why = r.timedOut ? 'timed out' : r.exitCode === null ? `never finished its script (QEMU exit ${r.qemuExit})` : `script exited ${r.exitCode}`;
    throw new Error(`VM ${this.name} ${why}; logs kept in ${r.logsDir}${this.#tail()}`);
  }

  /**
   * Resolves with the first console line (this one or an earlier one) matching `re`. Rejects with
   * ERR_TIMEOUT after `timeoutMs`, or ERR_PEER_GONE when QEMU exits first.
   */
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.#lines) {
      const m = line.match(re);
      if (m) return Promise.resolve(m);
    }
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
      return Promise.reject(ringwireError('ERR_PEER_GONE', `VM ${this.name} has exited; no console line matched ${re}${this.#tail()}`));
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        re, resolve, reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(ringwireError('ERR_TIMEOUT', `VM ${this.name}: no console line matched ${re} within ${timeoutMs} ms${this.#tail()}`));
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  /** Kills QEMU (SIGKILL) and waits until it is gone. */
  async kill(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    await this.#exited;
  }

  /** Copies console, QEMU stderr, command line and job files somewhere that outlives the test. */
  preserveLogs(reason: string): string {
    if (this.#logsDir) return this.#logsDir;
    const root = process.env.RINGWIRE_VM_LOG_DIR || join(tmpdir(), 'ringwire-vm-logs');
    const dest = join(root, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}-${this.name}`);
    mkdirSync(dest, { recursive: true });
    for (const f of ['console.log', 'qemu.log', 'qemu-cmd.txt']) {
      if (existsSync(join(this.dir, f))) copyFileSync(join(this.dir, f), join(dest, f));
    }
    if (existsSync(this.jobDir)) cpSync(this.jobDir, join(dest, 'job'), { recursive: true });
    writeFileSync(join(dest, 'reason.txt'), `${reason}\n`);
    console.error(`  VM ${this.name}: ${reason}; logs kept in ${dest}`);
    this.#logsDir = dest;
    return dest;
  }

  #onConsole(d: Buffer): void {
    this.#consoleFile.write(d);
    const chunk = d.toString('latin1');
    this.#text = (this.#text + chunk).slice(-CONSOLE_KEEP_CHARS);
    const parts = (this.#partial + chunk).split('\n');
    this.#partial = parts.pop() ?? '';
    for (const raw of parts) this.#onLine(raw.replace(/\r$/, ''));
  }

  #endPartialLine(): void {
    if (this.#partial) this.#onLine(this.#partial);
    this.#partial = '';
  }

  #onLine(line: string): void {
    this.#lines.push(line);
    this.#noteMark(line);
    for (const w of this.#waiters) {
      const m = line.match(w.re);
      if (!m) continue;
      clearTimeout(w.timer);
      this.#waiters.delete(w);
      w.resolve(m);
    }
  }

  #noteMark(line: string): void {
    const at = line.indexOf(GUEST_MARK);
    if (at < 0) return;
    const m = /^\s*(.*?)\s+@([\d.]+)\s*$/.exec(line.slice(at + GUEST_MARK.length));
    if (m?.[1] && m[2]) this.#marks.set(m[1].replace(/^job-exit \d+$/, 'job-exit'), { uptimeS: Number(m[2]), wallMs: Date.now() - this.#started });
  }

  #tail(): string {
    const lines = this.#text.split('\n').slice(-25).join('\n');
    const stderr = this.#stderr.trim() ? `\n--- QEMU stderr ---\n${this.#stderr.trim().split('\n').slice(-10).join('\n')}` : '';
    return `\n--- last console lines of ${this.name} ---\n${lines}${stderr}\n---`;
  }

  #result(qemuExit: number | NodeJS.Signals | null): VmResult {
    const statusFile = join(this.jobDir, 'exit-status');
    const status = existsSync(statusFile) ? Number.parseInt(readFileSync(statusFile, 'utf8'), 10) : NaN;
    const exitCode = Number.isInteger(status) && !this.#timedOut ? status : null;
    const start = this.#text.indexOf(`${GUEST_MARK} job-start`);
    const end = this.#text.indexOf(`${GUEST_MARK} job-exit`, start);
    const output = start < 0 ? '' : this.#text.slice(this.#text.indexOf('\n', start) + 1, end < 0 ? undefined : end).replace(/\r/g, '');
    const result: VmResult = { exitCode, output, timedOut: this.#timedOut, qemuExit, wallMs: Date.now() - this.#started, marks: this.#marks };
    if (exitCode !== 0) {
      const failed = [...this.#marks.keys()].find((k) => k.startsWith('FAILED:'));
      const why = this.#timedOut ? 'timed out' : exitCode === null ? `no exit status (${failed ?? `QEMU exit ${qemuExit}`})` : `script exited ${exitCode}`;
      result.logsDir = this.preserveLogs(why);
    }
    return result;
  }
}
