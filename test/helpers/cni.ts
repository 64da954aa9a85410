/**
 * CNI test scaffolding (tests 75-79): a "node" that is itself a network namespace made for the
 * test, "pods" that are namespaces made with `ip netns add`, a plugin directory holding Debian's
 * reference plugins beside ringwire-cni, and a runtime that invokes a conflist the way libcni does
 * (each plugin exec'd inside the node namespace with the spec's environment and stdin, prevResult
 * threaded through ADD, the cached result given to CHECK and DEL, DEL in reverse order).
 * Bridges, gateway addresses and veths live only inside namespaces the test created.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../../lib/native/native.js';
import { FdSocket } from '../../lib/native/unix-socket.js';
import type { ControlSocketHost, PodIdentity } from '../../lib/cni/pod-manager.js';
import type { Scratch } from './index.js';

/** Where Debian's containernetworking-plugins puts the reference plugins. */
export const DEBIAN_CNI_DIR = '/usr/lib/cni';
const PLUGIN_JS = fileURLToPath(new URL('../../bin/ringwire-cni.js', import.meta.url));

export function hasCniTools(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  return ['bridge', 'host-local', 'loopback'].every((p) => existsSync(join(DEBIAN_CNI_DIR, p)));
}

function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(argv[0]!, argv.slice(1), { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: unknown }).code as number) ?? 1 : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** A node namespace plus pod namespaces, all removed (and checked gone) by the scratch cleanup. */
export class TestNode {
  readonly node: string;
  readonly binDir: string;
  #prefix: string;
  #namespaces: string[] = [];

  constructor(s: Scratch, tag: string) {
    this.#prefix = `rw${tag}-${process.pid}`;
    this.node = this.#addNs('node');
    this.binDir = join(s.dir, 'cni-bin');
    mkdirSync(this.binDir);
    for (const p of ['bridge', 'host-local', 'loopback']) symlinkSync(join(DEBIAN_CNI_DIR, p), join(this.binDir, p));
    // A runtime execs the plugin file: a wrapper puts this node binary and the built plugin behind it.
    writeFileSync(join(this.binDir, 'ringwire-cni'), `#!/bin/sh\nexec '${process.execPath}' '${PLUGIN_JS}' "$@"\n`);
    chmodSync(join(this.binDir, 'ringwire-cni'), 0o755);
    s.defer(() => this.destroy());
    // A test process that dies of an uncaught error skips the deferred cleanups; this still runs.
    const onExit = (): void => {
      for (const ns of this.#namespaces) {
        try {
          execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
        } catch {
          // already gone
        }
      }
    };
    process.once('exit', onExit);
    s.defer(() => void process.off('exit', onExit));
  }

  #addNs(name: string): string {
    const ns = `${this.#prefix}-${name}`;
    execFileSync('ip', ['netns', 'add', ns]);
    this.#namespaces.push(ns);
    return ns;
  }

  /** A pod: a fresh network namespace; returns its CNI_NETNS path. */
  addPod(name: string): string {
    return `/run/netns/${this.#addNs(name)}`;
  }

  /** Deletes a pod namespace early (a pod gone without DEL). */
  removeNs(path: string): void {
    const name = path.replace('/run/netns/', '');
    execFileSync('ip', ['netns', 'del', name]);
    this.#namespaces = this.#namespaces.filter((n) => n !== name);
  }

  /** Runs a command inside a namespace (the node's by default). */
  exec(argv: string[], ns = this.node): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(['ip', 'netns', 'exec', ns.replace('/run/netns/', ''), ...argv]);
  }

  destroy(): void {
    const left: string[] = [];
    for (const ns of this.#namespaces.reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        left.push(ns);
      }
    }
    this.#namespaces = [];
    const still = left.filter((ns) => existsSync(`/run/netns/${ns}`));
    if (still.length > 0) throw new Error(`namespaces not removed: ${still.join(', ')}`);
  }
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifName: string;
  args?: Record<string, string>;
}

export interface PluginRun {
  type: string;
  code: number;
  stdout: string;
  stderr: string;
  result: Record<string, unknown> | undefined;
}

/** A libcni-shaped invocation of one conflist, every plugin exec'd inside the node namespace. */
export class Runtime {
  #node: TestNode;
  #binDir: string;
  #conflist: { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
  /** libcni caches the ADD result per attachment and hands it to CHECK and DEL as prevResult. */
  #cache = new Map<string, unknown>();

  /** `binDir` is CNI_PATH, where the runtime finds each plugin by its type (the node's by default). */
  constructor(node: TestNode, conflist: { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> }, binDir = node.binDir) {
    this.#node = node;
    this.#binDir = binDir;
    this.#conflist = conflist;
  }

  /** Execs one plugin exactly as a runtime does: CNI_* env, config on stdin, result on stdout. */
  async invoke(command: string, plugin: Record<string, unknown>, at: Partial<Attachment>, prevResult: unknown, extraEnv: Record<string, string> = {}): Promise<PluginRun> {
    const conf = { ...plugin, cniVersion: this.#conflist.cniVersion, name: this.#conflist.name, ...(prevResult === undefined ? {} : { prevResult }) };
    return this.invokeRaw(String(plugin.type), JSON.stringify(conf), {
      CNI_COMMAND: command,
      ...(at.containerId ? { CNI_CONTAINERID: at.containerId } : {}),
      ...(at.netns ? { CNI_NETNS: at.netns } : {}),
      ...(at.ifName ? { CNI_IFNAME: at.ifName } : {}),
      CNI_ARGS: Object.entries(at.args ?? {}).map(([k, v]) => `${k}=${v}`).join(';'),
      ...extraEnv,
    });
  }

  /** Execs plugin `type` with exactly this stdin and these CNI_* variables (bad input goes here). */
  invokeRaw(type: string, stdin: string, cniEnv: Record<string, string>): Promise<PluginRun> {
    const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_PATH: this.#binDir, ...cniEnv };
    return new Promise((resolve) => {
      const child = execFile('ip', ['netns', 'exec', this.#node.node, join(this.#binDir, type)], { env, encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        let result: Record<string, unknown> | undefined;
        try {
          result = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
        } catch {
          result = undefined;
        }
        resolve({ type, code, stdout, stderr, result });
      });
      child.stdin!.end(stdin);
    });
  }

  /** ADD through the chain; stops at the first failure. Returns every plugin's run. */
  async add(at: Attachment): Promise<PluginRun[]> {
    const runs: PluginRun[] = [];
    let prev: unknown;
    for (const plugin of this.#conflist.plugins) {
      const r = await this.invoke('ADD', plugin, at, prev);
      runs.push(r);
      if (r.code !== 0) return runs;
      prev = r.result;
    }
    this.#cache.set(`${at.containerId}/${at.ifName}`, prev);
    return runs;
  }

  async check(at: Attachment): Promise<PluginRun[]> {
    const prev = this.#cache.get(`${at.containerId}/${at.ifName}`);
    const runs: PluginRun[] = [];
    for (const plugin of this.#conflist.plugins) {
      const r = await this.invoke('CHECK', plugin, at, prev);
      runs.push(r);
      if (r.code !== 0) return runs;
    }
    return runs;
  }

  /** DEL in reverse order; libcni carries on past a failing plugin and reports the first error. */
  async del(at: Attachment): Promise<PluginRun[]> {
    const prev = this.#cache.get(`${at.containerId}/${at.ifName}`);
    const runs: PluginRun[] = [];
    for (const plugin of [...this.#conflist.plugins].reverse()) runs.push(await this.invoke('DEL', plugin, at, prev));
    this.#cache.delete(`${at.containerId}/${at.ifName}`);
    return runs;
  }
}

/** A bridge network (host-local IPAM, state in `dir`) followed by ringwire-cni. */
export function bridgeConflist(dir: string, bridge: string, subnet: string, agentSocket: string, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: '1.0.0',
    name: `net-${bridge}`,
    plugins: [
      { type: 'bridge', bridge, isGateway: false, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(dir, 'ipam') } },
      { type: 'ringwire-cni', agentSocket, timeoutMs: 10000, ...extra },
    ],
  };
}

/**
 * A stand-in for the agent's listener API (the same structural type the agent implements): it
 * accepts on each pod socket and answers every connection with the identity of the listener it came
 * through, plus the caller's SO_PEERCRED, then closes. Enough to prove injection and identity.
 */
export class EchoIdentityHost implements ControlSocketHost {
  #next = 0;
  #listeners = new Map<string, { fd: number; poller: InstanceType<ReturnType<typeof native>['Poller']> }>();
  readonly added: Array<{ id: string; identity?: PodIdentity; label?: string }> = [];

  addControlSocket(opts: { fd: number; identity?: PodIdentity; label?: string }): string {
    const id = `l${++this.#next}`;
    const addon = native();
    const poller = new addon.Poller();
    poller.open(opts.fd);
    poller.start(addon.pollEvents.readable, () => {
      for (;;) {
        const c = addon.accept(opts.fd);
        if (c < 0) return;
        const sock = FdSocket.fromFd(c);
        sock.on('error', () => undefined);
        try {
          sock.send(Buffer.from(JSON.stringify({ identity: opts.identity ?? null, label: opts.label, listener: id, peer: sock.peerCred() })));
        } catch {
          // A prober (CHECK connects and closes at once) is gone before the answer: nothing to tell it.
        }
        sock.close();
      }
    });
    this.#listeners.set(id, { fd: opts.fd, poller });
    this.added.push({ id, ...(opts.identity ? { identity: opts.identity } : {}), ...(opts.label ? { label: opts.label } : {}) });
    return id;
  }

  removeControlSocket(id: string): void {
    const l = this.#listeners.get(id);
    if (!l) return;
    this.#listeners.delete(id);
    l.poller.close();
    native().close(l.fd);
  }

  get live(): string[] {
    return [...this.#listeners.keys()];
  }

  closeAll(): void {
    for (const id of [...this.#listeners.keys()]) this.removeControlSocket(id);
  }
}

/** Connects to `address` from inside pod namespace `netns` in a child process; its one JSON line. */
export async function askFromPod(node: TestNode, netns: string, address = '@ringwire', asUid?: number): Promise<Record<string, unknown>> {
  const script = fileURLToPath(new URL('../workers/cni-pod.js', import.meta.url));
  const argv = [...(asUid === undefined ? [] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups']), process.execPath, script, address];
  const r = await node.exec(argv, netns);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { error: `pod client printed ${JSON.stringify(r.stdout)} / ${JSON.stringify(r.stderr)} (exit ${r.code})` };
  }
}
