/**
 * PodManager: the agent's side of CNI (ztunnel's inpod/statemanager.rs with istio-cni's node agent
 * folded in). It serves the CNI event socket the plugin calls, and for each pod opens a listening
 * socket on `@ringwire` inside the pod's network namespace and hands it to the agent with the pod's
 * identity: whoever connects there is that pod. It records the pods in a state file and, when the
 * agent restarts, re-creates each pod's socket or drops the pod whose namespace is gone.
 *
 * Concurrency contract: one PodManager per agent, on the agent's thread. Events are handled one at
 * a time in arrival order (an ADD waits for the DEL before it), so no two operations race on a pod.
 */
import { constants } from 'node:os';
import { ringwireError, type RingwireError } from '../errors.js';
import { closeFd } from '../native/native.js';
import { FdServer, type FdSocket } from '../native/unix-socket.js';
import { listenInNetns, netnsId, ownNetnsId, sameNetns } from './netns.js';
import { encode, validEvent, type EventReply, type PodEvent, type ReplyCode } from './protocol.js';
import { loadState, saveState, type PodRecord } from './state.js';
import type { PodRef } from './spec.js';

/** The workload identity a pod's connections carry (the agent's listener identity). */
export interface PodIdentity {
  spiffe: string;
  namespace: string;
  serviceAccount: string;
  pod: string;
  podUid?: string;
}

/** What the manager needs from the agent: an Agent satisfies it as it is (see docs/kubernetes.md). */
export interface ControlSocketHost {
  addControlSocket(opts: { fd: number; identity?: PodIdentity; label?: string }): string | Promise<string>;
  removeControlSocket(id: string): unknown;
}

export interface PodManagerOptions {
  host: ControlSocketHost;
  /** The CNI event socket (path or '@name'). A path is created mode 0600. */
  eventSocket: string;
  stateFile: string;
  /** The name each pod gets, inside its own namespace. Default '@ringwire'. */
  podSocket?: string;
  trustDomain?: string;
  /**
   * The pod's Kubernetes service account: CNI does not carry it. Default: 'default', which is what
   * Kubernetes gives a pod that names none; in a cluster, look it up from the API server.
   */
  serviceAccountOf?: (pod: PodRef) => string | Promise<string>;
  /** uids allowed to send CNI events (the runtime runs plugins as root). Default [0]. */
  allowedUids?: readonly number[];
  /** Re-check every pod's namespace this often and drop the gone ones; 0 disables. Default 10 s. */
  sweepMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

interface LivePod {
  record: PodRecord;
  listenerId: string;
  identity: PodIdentity | undefined;
}

class Refusal extends Error {
  constructor(readonly code: ReplyCode, message: string) {
    super(message);
  }
}

export class PodManager {
  readonly eventSocket: string;
  readonly podSocket: string;
  #opts: PodManagerOptions;
  #pods = new Map<string, LivePod>();
  #server: FdServer | undefined;
  #clients = new Set<FdSocket>();
  #queue: Promise<unknown> = Promise.resolve();
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #log: (entry: Record<string, unknown>) => void;

  private constructor(opts: PodManagerOptions) {
    this.#opts = opts;
    this.eventSocket = opts.eventSocket;
    this.podSocket = opts.podSocket ?? '@ringwire';
    this.#log = opts.log ?? ((entry) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'cni', ...entry })}\n`));
  }

  /** Loads the state file, re-creates the sockets of pods still alive, then serves CNI events. */
  static async start(opts: PodManagerOptions): Promise<PodManager> {
    if (typeof opts?.host?.addControlSocket !== 'function' || typeof opts.host.removeControlSocket !== 'function') {
      throw ringwireError('ERR_INVALID_ARG', 'host must have addControlSocket and removeControlSocket (an Agent)');
    }
    if (typeof opts.stateFile !== 'string' || opts.stateFile === '') throw ringwireError('ERR_INVALID_ARG', 'stateFile is required');
    const sweepMs = opts.sweepMs ?? 10_000;
    if (!Number.isInteger(sweepMs) || sweepMs < 0) throw ringwireError('ERR_OUT_OF_RANGE', `sweepMs must be a non-negative integer, got ${sweepMs}`);
    const pm = new PodManager(opts);
    await pm.#reconcile();
    try {
      pm.#server = FdServer.listen(opts.eventSocket, { mode: 0o600 });
    } catch (err) {
      await pm.close();
      throw err;
    }
    pm.#server.on('connection', (sock) => pm.#serve(sock));
    pm.#server.on('error', (err) => pm.#log({ event: 'error', error: err.message }));
    if (sweepMs > 0) {
      pm.#sweepTimer = setInterval(() => void pm.#enqueue(() => pm.sweep()), sweepMs);
      pm.#sweepTimer.unref();
    }
    return pm;
  }

  /** The pods served now. */
  pods(): Array<PodRecord & { listenerId: string; identity?: PodIdentity }> {
    return [...this.#pods.values()].map((p) => ({ ...p.record, listenerId: p.listenerId, ...(p.identity ? { identity: p.identity } : {}) }));
  }

  /** Handles one event as the socket would; the reply it would send. */
  handle(event: PodEvent): Promise<EventReply> {
    return this.#enqueue(async () => {
      if (this.#closed) return { v: 1, ok: false, code: 'internal', message: 'the agent is shutting down' } as const;
      try {
        const extra = event.op === 'add' ? await this.#add(event) : event.op === 'del' ? this.#del(event) : this.#check(event);
        return { v: 1, ok: true, ...extra } as const;
      } catch (err) {
        const code: ReplyCode = err instanceof Refusal ? err.code : 'internal';
        this.#log({ event: 'refused', op: event.op, containerId: event.containerId, code, reason: (err as Error).message });
        return { v: 1, ok: false, code, message: (err as Error).message } as const;
      }
    });
  }

  /** Drops every pod whose namespace is gone or is no longer the one it was (DEL never came). */
  sweep(): void {
    for (const [id, p] of this.#pods) {
      if (!sameNetns(netnsId(p.record.netns), { dev: p.record.netnsDev, ino: p.record.netnsIno })) {
        this.#drop(id, 'namespace gone');
      }
    }
  }

  /** Stops serving CNI events and closes every pod socket. The state file stays for the next start. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#server?.close();
    for (const c of this.#clients) c.close();
    await this.#queue.catch(() => undefined);
    for (const p of this.#pods.values()) this.#release(p);
    this.#pods.clear();
  }

  #enqueue<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #serve(sock: FdSocket): void {
    const allowed = this.#opts.allowedUids ?? [0];
    let uid: number;
    try {
      uid = sock.peerCred().uid;
    } catch {
      sock.close();
      return;
    }
    if (!allowed.includes(uid)) {
      this.#log({ event: 'refused', reason: `uid ${uid} may not send CNI events` });
      this.#reply(sock, { v: 1, ok: false, code: 'forbidden', message: `uid ${uid} may not send CNI events` });
      sock.close();
      return;
    }
    this.#clients.add(sock);
    sock.on('close', () => this.#clients.delete(sock));
    sock.on('error', () => undefined);
    sock.on('message', (data, fds) => {
      if (fds.length > 0) {
        for (const fd of fds) closeFd(fd);
        this.#reply(sock, { v: 1, ok: false, code: 'bad-request', message: 'CNI events carry no fds' });
        return;
      }
      const event = validEvent(data);
      if (typeof event === 'string') {
        this.#reply(sock, { v: 1, ok: false, code: 'bad-request', message: event });
        return;
      }
      void this.handle(event).then((reply) => this.#reply(sock, reply));
    });
  }

  #reply(sock: FdSocket, reply: EventReply): void {
    try {
      sock.send(encode(reply));
    } catch {
      // The plugin gave up (timeout) and closed: the work is done either way, and a retried event is idempotent.
    }
  }

  async #add(event: PodEvent): Promise<{ socket: string; identity?: string }> {
    const netns = event.netns!;
    const id = netnsId(netns);
    if (!id) throw new Refusal('netns', `CNI_NETNS ${netns} does not exist`);
    if (sameNetns(id, ownNetnsId())) throw new Refusal('netns', `CNI_NETNS ${netns} is the node's own network namespace`);
    const existing = this.#pods.get(event.containerId);
    if (existing) {
      if (sameNetns(id, { dev: existing.record.netnsDev, ino: existing.record.netnsIno })) {
        return { socket: this.podSocket, ...(existing.identity ? { identity: existing.identity.spiffe } : {}) };
      }
      throw new Refusal('conflict', `container ${event.containerId} is already served in another namespace (${existing.record.netns}); DEL it first`);
    }
    const serviceAccount = event.pod ? await (this.#opts.serviceAccountOf ?? (() => 'default'))(event.pod) : undefined;
    const record: PodRecord = {
      containerId: event.containerId,
      ifName: event.ifName,
      netns,
      netnsDev: id.dev,
      netnsIno: id.ino,
      ...(event.pod ? { pod: event.pod } : {}),
      ...(serviceAccount ? { serviceAccount } : {}),
      addedAt: new Date().toISOString(),
    };
    const live = await this.#open(record);
    this.#pods.set(record.containerId, live);
    this.#save();
    this.#log({ event: 'pod-added', containerId: record.containerId, netns, pod: event.pod, identity: live.identity?.spiffe });
    return { socket: this.podSocket, ...(live.identity ? { identity: live.identity.spiffe } : {}) };
  }

  #del(event: PodEvent): Record<string, never> {
    if (this.#pods.has(event.containerId)) this.#drop(event.containerId, 'CNI DEL');
    return {};
  }

  #check(event: PodEvent): { socket: string } {
    const p = this.#pods.get(event.containerId);
    if (!p) throw new Refusal('unknown-pod', `container ${event.containerId} has no ringwire socket`);
    if (!sameNetns(netnsId(event.netns!), { dev: p.record.netnsDev, ino: p.record.netnsIno })) {
      throw new Refusal('unknown-pod', `container ${event.containerId} is served in ${p.record.netns}, not ${event.netns}`);
    }
    return { socket: this.podSocket };
  }

  /** Listens inside the pod's namespace and gives the socket to the agent. */
  async #open(record: PodRecord): Promise<LivePod> {
    let fd: number;
    try {
      fd = listenInNetns(record.netns, this.podSocket);
    } catch (err) {
      throw netnsRefusal(record.netns, this.podSocket, err as RingwireError);
    }
    const identity = this.#identityOf(record);
    try {
      const label = record.pod ? `pod ${record.pod.namespace}/${record.pod.name}` : `container ${record.containerId}`;
      const listenerId = await this.#opts.host.addControlSocket({ fd, label, ...(identity ? { identity } : {}) });
      return { record, listenerId, identity };
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  #identityOf(record: PodRecord): PodIdentity | undefined {
    if (!record.pod) return undefined;
    const sa = record.serviceAccount ?? 'default';
    const td = this.#opts.trustDomain ?? 'cluster.local';
    return {
      spiffe: `spiffe://${td}/ns/${record.pod.namespace}/sa/${sa}`,
      namespace: record.pod.namespace,
      serviceAccount: sa,
      pod: record.pod.name,
      ...(record.pod.uid ? { podUid: record.pod.uid } : {}),
    };
  }

  #drop(containerId: string, reason: string): void {
    const p = this.#pods.get(containerId);
    if (!p) return;
    this.#pods.delete(containerId);
    this.#release(p);
    this.#save();
    this.#log({ event: 'pod-removed', containerId, netns: p.record.netns, pod: p.record.pod, reason });
  }

  /** Takes the pod's socket back from the agent; an agent that already let it go is fine. */
  #release(p: LivePod): void {
    try {
      this.#opts.host.removeControlSocket(p.listenerId);
    } catch (err) {
      this.#log({ event: 'warning', containerId: p.record.containerId, reason: `the agent did not release ${p.listenerId}: ${(err as Error).message}` });
    }
  }

  #save(): void {
    saveState(this.#opts.stateFile, [...this.#pods.values()].map((p) => p.record));
  }

  /** istio-cni's reconciliation: every recorded pod whose namespace is still the same gets its socket back. */
  async #reconcile(): Promise<void> {
    const records = loadState(this.#opts.stateFile, (msg) => this.#log({ event: 'state', warning: msg }));
    for (const record of records) {
      if (this.#pods.has(record.containerId)) continue;
      if (!sameNetns(netnsId(record.netns), { dev: record.netnsDev, ino: record.netnsIno })) {
        this.#log({ event: 'pod-removed', containerId: record.containerId, netns: record.netns, reason: 'namespace gone while the agent was down' });
        continue;
      }
      try {
        this.#pods.set(record.containerId, await this.#open(record));
        this.#log({ event: 'pod-restored', containerId: record.containerId, netns: record.netns, pod: record.pod });
      } catch (err) {
        this.#log({ event: 'pod-removed', containerId: record.containerId, netns: record.netns, reason: `cannot re-create its socket: ${(err as Error).message}` });
      }
    }
    this.#save();
  }
}

function netnsRefusal(netns: string, address: string, err: RingwireError): Refusal | RingwireError {
  const { EINVAL, ENOENT, EADDRINUSE } = constants.errno;
  // setns() says EINVAL for a file that is not a network namespace.
  if (err.errno === EINVAL) return new Refusal('netns', `CNI_NETNS ${netns} is not a network namespace`);
  if (err.errno === ENOENT) return new Refusal('netns', `CNI_NETNS ${netns} does not exist`);
  if (err.errno === EADDRINUSE) return new Refusal('conflict', `${address} is already taken inside ${netns}`);
  return err;
}

export function startPodManager(opts: PodManagerOptions): Promise<PodManager> {
  return PodManager.start(opts);
}
