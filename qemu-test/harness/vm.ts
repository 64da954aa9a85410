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
import { copyFileSync, cpSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ringwireError } from '../../lib/errors.js';
import { chooseAccel, QEMU, type Accel } from './accel.js';
import { GUEST_MARK } from './guest-init.js';
import { ensureGuestImage } from './image.js';
import { prepareLaunch, shq, validate, type VmStartOptions } from './launch.js';

export { REPO_ROOT, type VmNet, type VmOptions, type VmStartOptions } from './launch.js';

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

const CONSOLE_KEEP_CHARS = 8 << 20;
const QEMU_STDERR_KEEP_CHARS = 16 << 10;

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
  #killRequested = false;
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
      // 'close' normally ends the VM; a spawn failure may only emit 'error', so either finishes it once.
      let finished = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
        if (finished) return;
        finished = true;
        clearTimeout(this.#timer);
        this.#endPartialLine();
        if (spawnError) this.#stderr += `[harness] could not start ${QEMU}: ${spawnError.message}\n`;
        const tail = this.#tail();
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(ringwireError('ERR_PEER_GONE', `VM ${this.name} exited (${signal ?? code}) before printing a line matching ${w.re}${tail}`));
        }
        this.#waiters.clear();
        if (spawnError) qemuErr.end();
        Promise.all([new Promise<void>((r) => this.#consoleFile.end(() => r())), new Promise<void>((r) => (qemuErr.writableFinished ? r() : qemuErr.once('finish', () => r())))])
          .then(() => resolve(this.#result(code ?? signal)));
      };
      this.#child.on('close', (code, signal) => finish(code, signal));
      this.#child.on('error', (err) => {
        if (this.#child.pid === undefined) finish(null, null, err);
      });
    });
  }

  /** Provisions the image if needed, picks the accelerator and starts QEMU; does not wait for boot. */
  static async start(o: VmStartOptions): Promise<Vm> {
    validate(o);
    const image = await ensureGuestImage();
    const accel = await chooseAccel(image);
    return new Vm(o, accel, prepareLaunch(o, image, accel));
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
    throw new Error(`VM ${this.name} ${why}; logs kept in ${r.logsDir ?? this.preserveLogs(why)}${this.#tail()}`);
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

  /** Kills QEMU (SIGKILL) and waits until it is gone; logs are not kept for a kill asked for here. */
  async kill(): Promise<void> {
    this.#killRequested = true;
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
    // A guest its test killed on purpose is not a failure; withVms still keeps its logs if the test throws.
    if (exitCode !== 0 && !(this.#killRequested && !this.#timedOut)) {
      const failed = [...this.#marks.keys()].find((k) => k.startsWith('FAILED:'));
      const why = this.#timedOut ? 'timed out' : exitCode === null ? `no exit status (${failed ?? `QEMU exit ${qemuExit}`})` : `script exited ${exitCode}`;
      result.logsDir = this.preserveLogs(why);
    }
    return result;
  }
}
