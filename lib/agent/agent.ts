/**
 * The node agent: one per host (or per pod namespace set), listening on `@ringwire`. For each
 * control connection it learns who is calling from the kernel (identity.ts); it keeps the registry
 * of service instances, decides each connect with the pure policy (policy.ts) and routing
 * (routing.ts) functions, and brokers an allowed connect by handing one end of a fresh
 * socketpair(SOCK_SEQPACKET) to each peer. The peers then run the ordinary channel handshake and
 * share memory directly: the agent never maps a ring nor sees a payload, only the counters the
 * peers report. On reload it re-checks every live channel and revokes those no longer allowed.
 *
 * Concurrency contract: an Agent belongs to the thread that started it; everything runs on its
 * event loop.
 */
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import { ringwireError, type RingwireError } from '../errors.js';
import { native, check } from '../native/native.js';
import { FdServer, FdSocket } from '../native/unix-socket.js';
import { closeAll } from '../native/unix-socket-sys.js';
import { checkConfig, loadConfigFile, type AgentConfig } from './config.js';
import { listenerWorkload, readKernelIdentity, resolveIdentity, type KernelIdentity, type ListenerIdentity, type WorkloadIdentity } from './identity.js';
import { AgentMetrics, serveMetrics, type AccessLogLine } from './metrics.js';
import { authorize, compilePolicies, mayServe, type CompiledPolicies } from './policy.js';
import {
  CONTROL_RECEIVE_BUFFER, CONTROL_VERSION, decodeClientMessage, encode,
  type AgentMessage, type ChannelCounters, type ClientMessage, type PeerView,
} from './protocol.js';
import { pickInstance, type Instance } from './routing.js';

export interface AgentOptions {
  /** The configuration as an object (validated here), or... */
  config?: unknown;
  /** ...a YAML file, re-read by reload(). One of the two; neither means `{ version: 1 }`. */
  configPath?: string;
  /** Overrides config.listen. */
  listen?: string[];
  /** Overrides config.metrics; false serves none. */
  metrics?: AgentConfig['metrics'] | false;
  /** Access-log sink; default: one JSON line per event on stderr. */
  log?: (line: AccessLogLine & { time: string }) => void;
  /** For deterministic weighted routing in tests. */
  random?: () => number;
}

export interface AddListenerOptions {
  /** A bound, listening SOCK_SEQPACKET fd (the agent takes it), or an address to bind here. */
  fd?: number;
  address?: string;
  /** Whoever connects here is this workload (a pod's own socket). */
  identity?: ListenerIdentity;
  label?: string;
}

interface Listener {
  id: string;
  label: string;
  server: FdServer;
  identity: WorkloadIdentity | undefined;
  sessions: Set<Session>;
}

interface Registration extends Instance {
  key: string;
  service: string;
  session: Session;
  channels: Set<number>;
}

interface Brokered {
  id: number;
  service: string;
  client: Session;
  /** The client's identity key when it opened (limits count by it, whatever a reload changes). */
  clientKey: string;
  server: Registration;
  openedAt: number;
  policy: string | null;
  /** Last counters each side reported (sent by that side). */
  clientStats: ChannelCounters;
  serverStats: ChannelCounters;
}

const ZERO: ChannelCounters = { messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0 };
const RECENT_DENIALS = 32;
const BYE_GRACE_MS = 1000;
/** Bytes of messages (each `channel`/`incoming` holding a duplicated fd) queued for a peer that does not read. */
const MAX_UNREAD_BYTES = 64 * 1024;

class Session {
  greeted = false;
  registrations = new Map<string, Registration>();
  channels = new Set<number>();
  tokens: number;
  refilledAt = performance.now();
  closed = false;
  /** Said bye or closed: nothing it sends is acted on any more. */
  retired = false;

  constructor(
    readonly id: number,
    readonly sock: FdSocket,
    readonly kernel: KernelIdentity,
    public identity: WorkloadIdentity | null,
    readonly listener: Listener,
    burst: number,
  ) {
    this.tokens = burst;
  }

  get key(): string {
    return this.identity?.principal ?? `uid:${this.kernel.uid}`;
  }

  view(): PeerView {
    return { identity: this.identity?.spiffe ?? null, pid: this.kernel.pid, uid: this.kernel.uid };
  }

  send(msg: AgentMessage, fds: number[] = []): void {
    if (this.closed) return;
    try {
      this.sock.send(encode(msg), fds);
    } catch {
      // The peer is gone; its 'close' cleans up.
    }
  }
}

export interface Agent {
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'session', listener: (info: { pid: number; identity: string | null }) => void): this;
  on(event: 'refused', listener: (reason: string) => void): this;
}

export class Agent extends EventEmitter {
  #config: AgentConfig;
  #configPath: string | undefined;
  #policies: CompiledPolicies;
  #log: (line: AccessLogLine & { time: string }) => void;
  #random: () => number;
  #listeners = new Map<string, Listener>();
  #nextListener = 1;
  #sessions = new Set<Session>();
  #nextSession = 1;
  #registry = new Map<string, Set<Registration>>();
  #channels = new Map<number, Brokered>();
  /** Open brokered channels per client identity key (limits.connectionsPerIdentity). */
  #openByKey = new Map<string, number>();
  #nextChannel = 1;
  #picks = 0;
  #denials: Array<AccessLogLine & { time: string }> = [];
  #metricServers: Server[] = [];
  readonly metrics = new AgentMetrics();
  /** Where metrics are served (http://127.0.0.1:port and/or a socket path). */
  readonly metricsAddresses: string[] = [];
  #closed = false;

  private constructor(config: AgentConfig, o: AgentOptions) {
    super();
    this.#config = config;
    this.#configPath = o.configPath;
    this.#policies = compilePolicies(config.policies);
    this.#log = o.log ?? ((line) => process.stderr.write(`${JSON.stringify(line)}\n`));
    this.#random = o.random ?? Math.random;
  }

  static async start(o: AgentOptions = {}): Promise<Agent> {
    if (typeof o !== 'object' || o === null) throw ringwireError('ERR_INVALID_ARG', 'agent options must be an object');
    const config = o.configPath !== undefined ? loadConfigFile(o.configPath) : checkConfig(o.config ?? { version: 1 }, 'config');
    const agent = new Agent(config, o);
    try {
      for (const address of o.listen ?? config.listen) agent.addControlSocket({ address });
      const m = o.metrics === false ? undefined : o.metrics ?? config.metrics;
      if (m?.port !== undefined) await agent.#serveMetrics({ port: m.port, host: m.host ?? '127.0.0.1' });
      if (m?.socket !== undefined) await agent.#serveMetrics({ path: m.socket });
    } catch (err) {
      await agent.close();
      throw err;
    }
    return agent;
  }

  async #serveMetrics(where: { port: number; host: string } | { path: string }): Promise<void> {
    const { server, address } = await serveMetrics(this.metrics.registry, where);
    this.#metricServers.push(server);
    this.metricsAddresses.push(address);
  }

  get config(): Readonly<AgentConfig> {
    return this.#config;
  }

  /** Addresses of the listeners (labels for fds handed in). */
  get addresses(): string[] {
    return [...this.#listeners.values()].map((l) => l.label);
  }

  /**
   * Starts accepting control connections on another socket; returns its id for removeControlSocket().
   * Throws synchronously (ERR_INVALID_ARG, ERR_NATIVE) on a bad fd or identity; the fd then stays the caller's.
   */
  addControlSocket(o: AddListenerOptions): string {
    if (this.#closed) throw ringwireError('ERR_AGENT_UNAVAILABLE', 'agent is closed');
    if ((o.fd === undefined) === (o.address === undefined)) throw ringwireError('ERR_INVALID_ARG', 'addControlSocket needs exactly one of fd and address');
    const identity = o.identity ? listenerWorkload(o.identity) : undefined;
    const sockOpts = { maxMessageSize: CONTROL_RECEIVE_BUFFER, maxFds: 1 };
    const server = o.fd !== undefined ? FdServer.fromFd(o.fd, sockOpts, o.label ?? `fd ${o.fd}`) : FdServer.listen(o.address!, { ...sockOpts, mode: 0o666 });
    const id = `l${this.#nextListener++}`;
    const listener: Listener = { id, label: o.label ?? o.address ?? `fd ${o.fd}`, server, identity, sessions: new Set() };
    server.on('error', (err) => this.#warn(err));
    server.on('connection', (sock) => this.#accept(listener, sock));
    this.#listeners.set(id, listener);
    return id;
  }

  /** Stops a listener and ends the control connections accepted on it. */
  removeControlSocket(id: string): void {
    const l = this.#listeners.get(id);
    if (!l) throw ringwireError('ERR_INVALID_ARG', `no listener ${JSON.stringify(id)}`);
    this.#listeners.delete(id);
    l.server.close();
    for (const s of l.sessions) this.#bye(s, 'ERR_AGENT_UNAVAILABLE', 'listener removed');
  }

  #accept(listener: Listener, sock: FdSocket): void {
    sock.on('error', () => {});
    let kernel: KernelIdentity;
    try {
      kernel = readKernelIdentity(sock);
    } catch (err) {
      this.emit('refused', (err as Error).message);
      sock.close();
      return;
    }
    const identity = listener.identity ?? resolveIdentity(kernel, this.#config.identities, this.#config.trustDomain);
    const session = new Session(this.#nextSession++, sock, kernel, identity, listener, this.#config.limits.connectsPerSecond);
    let sameIdentity = 0;
    for (const s of this.#sessions) if (s.key === session.key) sameIdentity++;
    if (sameIdentity >= this.#config.limits.controlConnectionsPerIdentity) {
      session.send({ op: 'bye', code: 'ERR_AGENT_LIMIT', reason: `${session.key} already has ${sameIdentity} control connections (limits.controlConnectionsPerIdentity)` });
      sock.close();
      this.emit('refused', `control connection limit for ${session.key}`);
      return;
    }
    this.#sessions.add(session);
    listener.sessions.add(session);
    sock.on('message', (data, fds) => this.#onMessage(session, data, fds));
    sock.on('close', () => this.#onSessionClosed(session));
    this.emit('session', { pid: kernel.pid, identity: identity?.spiffe ?? null });
  }

  /**
   * Ends a control connection with a reason (bad input, limits, shutdown). The session is retired
   * at once; the socket stays open for a grace period, discarding what still arrives, because
   * closing a UNIX socket with unread messages resets it and the peer would never read the reason.
   */
  #bye(s: Session, code: string, reason: string, graceMs = BYE_GRACE_MS): void {
    s.send({ op: 'bye', code, reason });
    this.#retire(s);
    if (graceMs === 0) {
      s.sock.close();
      return;
    }
    const timer = setTimeout(() => s.sock.close(), graceMs);
    timer.unref();
    s.sock.once('close', () => clearTimeout(timer));
  }

  #onMessage(s: Session, data: Buffer, fds: number[]): void {
    if (s.retired) {
      closeAll(fds);
      return;
    }
    let msg: ClientMessage;
    try {
      msg = decodeClientMessage(data, fds.length);
    } catch (err) {
      closeAll(fds);
      this.#bye(s, 'ERR_AGENT_PROTOCOL', (err as Error).message);
      return;
    }
    if (!s.greeted) {
      if (msg.op !== 'hello') return this.#bye(s, 'ERR_AGENT_PROTOCOL', `expected hello first, got ${msg.op}`);
      if (msg.v !== CONTROL_VERSION) return this.#bye(s, 'ERR_AGENT_PROTOCOL', `control protocol version ${msg.v} is not supported (${CONTROL_VERSION})`);
      s.greeted = true;
      s.send({ op: 'welcome', v: CONTROL_VERSION, identity: s.identity?.spiffe ?? null, pid: s.kernel.pid, uid: s.kernel.uid, netns: s.kernel.netns, reportIntervalMs: Math.round(this.#config.reportIntervalSeconds * 1000) });
      return;
    }
    switch (msg.op) {
      case 'hello': return this.#bye(s, 'ERR_AGENT_PROTOCOL', 'hello sent twice');
      case 'register': return this.#register(s, msg);
      case 'unregister': {
        const r = s.registrations.get(msg.name);
        if (!r) return s.send({ op: 'error', id: msg.id, code: 'ERR_INVALID_ARG', message: `${msg.name} is not registered on this connection` });
        this.#unregister(r);
        return s.send({ op: 'ok', id: msg.id });
      }
      case 'connect': return this.#connect(s, msg);
      case 'opened': {
        const ch = this.#channels.get(msg.channel);
        if (ch && ch.client === s) this.metrics.openSeconds.observe(msg.openUs / 1e6);
        return;
      }
      case 'report':
      case 'closed': return this.#report(s, msg);
      case 'status': return s.send({ op: 'status', id: msg.id, status: this.status() });
    }
  }

  #register(s: Session, msg: Extract<ClientMessage, { op: 'register' }>): void {
    const fail = (code: string, message: string): void => s.send({ op: 'error', id: msg.id, code, message });
    const svc = this.#config.services[msg.name];
    if (!svc) return fail('ERR_POLICY_DENIED', `service ${msg.name} is not configured (services.${msg.name}.serve names who may register it)`);
    if (!mayServe(svc.serve, s.identity)) return fail('ERR_POLICY_DENIED', `${s.identity?.spiffe ?? `anonymous uid ${s.kernel.uid}`} may not serve ${msg.name} (services.${msg.name}.serve)`);
    if (s.registrations.has(msg.name)) return fail('ERR_INVALID_ARG', `${msg.name} is already registered on this connection`);
    let mine = 0;
    for (const other of this.#sessions) if (other.key === s.key) mine += other.registrations.size;
    if (mine >= this.#config.limits.registrationsPerIdentity) return fail('ERR_AGENT_LIMIT', `${s.key} has ${mine} registrations (limits.registrationsPerIdentity)`);
    const r: Registration = {
      key: `${msg.name}#${s.id}`, service: msg.name, session: s, channels: new Set(),
      version: msg.version, labels: msg.labels ?? {}, maxConnections: msg.maxConnections ?? Number.MAX_SAFE_INTEGER, inFlight: 0, lastPicked: 0,
    };
    s.registrations.set(msg.name, r);
    let set = this.#registry.get(msg.name);
    if (!set) this.#registry.set(msg.name, (set = new Set()));
    set.add(r);
    this.metrics.registrations.set({ service: msg.name }, set.size);
    s.send({ op: 'ok', id: msg.id });
  }

  #unregister(r: Registration): void {
    r.session.registrations.delete(r.service);
    const set = this.#registry.get(r.service);
    set?.delete(r);
    this.metrics.registrations.set({ service: r.service }, set?.size ?? 0);
    if (set?.size === 0) this.#registry.delete(r.service);
  }

  #takeToken(s: Session): boolean {
    const rate = this.#config.limits.connectsPerSecond;
    const now = performance.now();
    s.tokens = Math.min(rate, s.tokens + ((now - s.refilledAt) / 1000) * rate);
    s.refilledAt = now;
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }

  #connect(s: Session, msg: Extract<ClientMessage, { op: 'connect' }>): void {
    const started = performance.now();
    const fail = (code: string, message: string, policy?: string): void => s.send({ op: 'error', id: msg.id, code, message, ...(policy ? { policy } : {}) });
    if (!this.#takeToken(s)) return this.#bye(s, 'ERR_AGENT_LIMIT', `more than ${this.#config.limits.connectsPerSecond} connects per second (limits.connectsPerSecond)`);
    const mine = this.#openByKey.get(s.key) ?? 0;
    if (mine >= this.#config.limits.connectionsPerIdentity) return fail('ERR_AGENT_LIMIT', `${s.key} has ${mine} open channels (limits.connectionsPerIdentity)`);
    const decision = authorize(this.#policies, { source: s.identity, service: msg.service });
    const src = { identity: s.identity?.spiffe ?? null, pid: s.kernel.pid, uid: s.kernel.uid, netns: s.kernel.netns };
    if (!decision.allowed) {
      this.#access({ event: 'deny', src, dst: { service: msg.service }, policy: decision.policy, reason: decision.reason });
      this.metrics.denied.inc({ source: src.identity ?? 'anonymous', destination: msg.service, policy: decision.policy ?? '' });
      return fail('ERR_POLICY_DENIED', decision.reason, decision.policy ?? undefined);
    }
    if (s.sock.writableLength > MAX_UNREAD_BYTES) return this.#bye(s, 'ERR_AGENT_LIMIT', 'too many answers (and their fds) wait unread on this control connection');
    const registered = this.#registry.get(msg.service);
    // An instance that stopped reading its control socket would make the agent hold an fd per connect.
    const instances = registered && [...registered].filter((i) => i.session.sock.writableLength <= MAX_UNREAD_BYTES);
    const r = instances && pickInstance(instances, { weights: this.#config.services[msg.service]?.routing?.weights, labels: msg.labels, random: this.#random });
    if (!r) return fail('ERR_NO_INSTANCE', instances ? `every instance of ${msg.service} is at its maxConnections or excluded by labels/weights` : `no instance of ${msg.service} is registered`);
    const pair = new Int32Array(2);
    const err = native().socketpair(pair);
    if (err < 0) return fail('ERR_NATIVE', `socketpair: errno ${-err}`);
    const id = this.#nextChannel++;
    try {
      // FdSocket.send duplicates fds it must queue, so ours are closed right after either way.
      r.session.send({ op: 'incoming', channel: id, service: msg.service, registration: r.key, peer: s.view() }, [pair[1]!]);
      s.send({ op: 'channel', id: msg.id, channel: id, service: msg.service, peer: r.session.view() }, [pair[0]!]);
    } finally {
      check('close', native().close(pair[0]!));
      check('close', native().close(pair[1]!));
    }
    const ch: Brokered = { id, service: msg.service, client: s, clientKey: s.key, server: r, openedAt: Date.now(), policy: decision.policy, clientStats: { ...ZERO }, serverStats: { ...ZERO } };
    this.#channels.set(id, ch);
    this.#openByKey.set(s.key, mine + 1);
    s.channels.add(id);
    r.channels.add(id);
    r.inFlight++;
    r.lastPicked = ++this.#picks;
    const labels = { source: src.identity ?? 'anonymous', destination: msg.service };
    this.metrics.opened.inc(labels);
    this.metrics.active.inc(labels);
    this.metrics.connectSeconds.observe((performance.now() - started) / 1000);
    this.#access({ event: 'open', channel: id, src, dst: this.#dst(ch), policy: decision.policy });
  }

  #dst(ch: Brokered): AccessLogLine['dst'] {
    const srv = ch.server.session;
    return { service: ch.service, identity: srv.identity?.spiffe ?? null, pid: srv.kernel.pid, instance: ch.server.key };
  }

  #report(s: Session, msg: Extract<ClientMessage, { op: 'report' | 'closed' }>): void {
    const ch = this.#channels.get(msg.channel);
    // A report may race a revoke or a close by the other side: not an error.
    if (!ch || (ch.client !== s && ch.server.session !== s)) return;
    const isClient = ch.client === s;
    const before = isClient ? ch.clientStats : ch.serverStats;
    const from = isClient ? ch.client : ch.server.session;
    const to = isClient ? ch.service : ch.client.identity?.spiffe ?? 'anonymous';
    this.metrics.addTraffic(from.identity?.spiffe ?? 'anonymous', to, before, msg.stats);
    if (isClient) ch.clientStats = msg.stats;
    else ch.serverStats = msg.stats;
    if (msg.op === 'closed') this.#finish(ch, 'close', msg.reason ?? `closed by the ${isClient ? 'client' : 'server'}`);
  }

  /** Forgets a channel: out of the instance's in-flight count, one access-log line. */
  #finish(ch: Brokered, event: 'close' | 'revoke', reason: string, policy?: string | null): void {
    if (!this.#channels.delete(ch.id)) return;
    const open = (this.#openByKey.get(ch.clientKey) ?? 1) - 1;
    if (open > 0) this.#openByKey.set(ch.clientKey, open);
    else this.#openByKey.delete(ch.clientKey);
    ch.client.channels.delete(ch.id);
    ch.server.channels.delete(ch.id);
    ch.server.inFlight--;
    const c = ch.client;
    this.metrics.active.dec({ source: c.identity?.spiffe ?? 'anonymous', destination: ch.service });
    this.#access({
      event, channel: ch.id, src: { identity: c.identity?.spiffe ?? null, pid: c.kernel.pid, uid: c.kernel.uid, netns: c.kernel.netns },
      dst: this.#dst(ch), reason, ...(policy !== undefined ? { policy } : {}),
      bytes_sent: ch.clientStats.bytesSent, bytes_received: ch.serverStats.bytesSent,
      messages_sent: ch.clientStats.messagesSent, messages_received: ch.serverStats.messagesSent,
      duration_ms: Date.now() - ch.openedAt,
    });
  }

  #onSessionClosed(s: Session): void {
    s.closed = true;
    this.#retire(s);
  }

  #retire(s: Session): void {
    if (s.retired) return;
    s.retired = true;
    this.#sessions.delete(s);
    s.listener.sessions.delete(s);
    // Out of rotation at once: the kernel reported end-of-file as the process died.
    const ids = [...s.channels];
    for (const r of [...s.registrations.values()]) {
      ids.push(...r.channels);
      this.#unregister(r);
    }
    for (const id of ids) {
      const ch = this.#channels.get(id);
      if (ch) this.#finish(ch, 'close', `control connection of pid ${s.kernel.pid} closed`);
    }
  }

  /** A daemon keeps serving: problems go to 'error' listeners, or to stderr when there are none. */
  #warn(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), agent: `error: ${err.message}` })}\n`);
  }

  #access(line: AccessLogLine): void {
    const full = { time: new Date().toISOString(), ...line };
    if (line.event === 'deny') {
      this.#denials.push(full);
      if (this.#denials.length > RECENT_DENIALS) this.#denials.shift();
    }
    try {
      this.#log(full);
    } catch (err) {
      this.#warn(err as Error);
    }
  }

  /**
   * Applies a new configuration (an object, or the config file read again). A bad one throws
   * ERR_AGENT_CONFIG and the old one stays. Identities are re-resolved, and every live channel the
   * new policies no longer allow is revoked: both peers are told and close it (ERR_POLICY_REVOKED).
   * Listen addresses and metrics endpoints are fixed at start.
   */
  reload(config?: unknown): { revoked: number } {
    const next = config !== undefined ? checkConfig(config, 'config') : this.#configPath !== undefined ? loadConfigFile(this.#configPath) : undefined;
    if (!next) throw ringwireError('ERR_AGENT_CONFIG', 'reload() without a config needs the agent to have been started with configPath');
    this.#config = next;
    this.#policies = compilePolicies(next.policies);
    for (const s of this.#sessions) if (!s.listener.identity) s.identity = resolveIdentity(s.kernel, next.identities, next.trustDomain);
    for (const s of this.#sessions) {
      for (const r of [...s.registrations.values()]) if (!mayServe(next.services[r.service]?.serve, s.identity)) this.#unregister(r);
    }
    let revoked = 0;
    for (const ch of [...this.#channels.values()]) {
      const d = authorize(this.#policies, { source: ch.client.identity, service: ch.service });
      if (d.allowed) continue;
      revoked++;
      const msg: AgentMessage = { op: 'revoke', channel: ch.id, reason: d.reason, policy: d.policy };
      ch.client.send(msg);
      ch.server.session.send(msg);
      this.metrics.revoked.inc({ source: ch.client.identity?.spiffe ?? 'anonymous', destination: ch.service, policy: d.policy ?? '' });
      this.#finish(ch, 'revoke', d.reason, d.policy);
    }
    return { revoked };
  }

  /** A snapshot for `ringwire agent status` and tests. */
  status(): AgentStatus {
    const services: AgentStatus['services'] = {};
    for (const [name, set] of this.#registry) {
      services[name] = [...set].map((r) => ({
        instance: r.key, identity: r.session.identity?.spiffe ?? null, pid: r.session.kernel.pid,
        version: r.version ?? null, labels: r.labels, inFlight: r.inFlight,
        maxConnections: r.maxConnections === Number.MAX_SAFE_INTEGER ? null : r.maxConnections,
      }));
    }
    return {
      pid: process.pid,
      listeners: [...this.#listeners.values()].map((l) => ({ id: l.id, label: l.label, address: l.label, identity: l.identity?.spiffe ?? null, sessions: l.sessions.size })),
      sessions: this.#sessions.size,
      services,
      connections: [...this.#channels.values()].map((ch) => ({
        channel: ch.id, service: ch.service, source: ch.client.identity?.spiffe ?? null, sourcePid: ch.client.kernel.pid,
        instance: ch.server.key, openedAt: new Date(ch.openedAt).toISOString(),
        bytesSent: ch.clientStats.bytesSent, bytesReceived: ch.serverStats.bytesSent,
      })),
      recentDenials: [...this.#denials],
    };
  }

  /**
   * Drains: stops accepting, tells every peer `bye` and closes the control connections. Channels
   * already brokered keep flowing (they never went through the agent).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.#listeners.values()) l.server.close();
    this.#listeners.clear();
    for (const s of [...this.#sessions]) this.#bye(s, 'ERR_AGENT_UNAVAILABLE', 'the agent is shutting down', 0);
    await Promise.all(this.#metricServers.map((srv) => new Promise<void>((resolve) => { srv.closeAllConnections?.(); srv.close(() => resolve()); })));
    this.metrics.registry.clear();
  }
}

export interface AgentStatus {
  pid: number;
  /** `label` and `address` are the same text: the address bound, or the label given with an fd. */
  listeners: Array<{ id: string; label: string; address: string; identity: string | null; sessions: number }>;
  sessions: number;
  services: Record<string, Array<{ instance: string; identity: string | null; pid: number; version: string | null; labels: Record<string, string>; inFlight: number; maxConnections: number | null }>>;
  connections: Array<{ channel: number; service: string; source: string | null; sourcePid: number; instance: string; openedAt: string; bytesSent: number; bytesReceived: number }>;
  recentDenials: Array<AccessLogLine & { time: string }>;
}

export function startAgent(o: AgentOptions = {}): Promise<Agent> {
  return Agent.start(o);
}

export type { RingwireError };
