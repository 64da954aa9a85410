/**
 * The service side of the agent: one control connection per process (AgentClient) that registers
 * names, asks for channels, receives the socketpair ends the agent brokers and runs the ordinary
 * channel handshake over them (lib/channel/brokered.ts), reports channel counters, and obeys
 * revocations. If the agent goes away, open channels keep flowing (they never passed through it);
 * connects fail at once with ERR_AGENT_UNAVAILABLE while it is away; the client reconnects with
 * backoff and registers its names again.
 *
 * Concurrency contract: an AgentClient belongs to the thread that created it.
 */
import { EventEmitter } from 'node:events';
import { ringwireError, isRingwireError, type ErrorCode, type RingwireError } from '../errors.js';
import { FdSocket } from '../native/unix-socket.js';
import { closeAll } from '../native/unix-socket-sys.js';
import type { Channel } from '../channel/channel.js';
import type { ChannelOptions } from '../channel/options.js';
import { channelOverSocket } from '../channel/brokered.js';
import {
  CONTROL_RECEIVE_BUFFER, CONTROL_VERSION, DEFAULT_AGENT_ADDRESS, decodeAgentMessage, encode,
  type AgentMessage, type ChannelCounters, type ClientMessage,
} from './protocol.js';
import type { AgentStatus } from './agent.js';

export interface AgentClientOptions extends ChannelOptions {
  /** The agent's control socket; default $RINGWIRE_AGENT or '@ringwire'. */
  address?: string;
  /** Reconnect (with backoff, 25 ms doubling to 500 ms) after the agent goes away; default true. */
  reconnect?: boolean;
  /** How long a register/connect/status waits for the agent's answer; default 5 s. */
  controlTimeoutMs?: number;
  /** Ring sizes this side asks for or accepts on brokered channels (as connect()/listen()). */
  sendRingBytes?: number;
  receiveRingBytes?: number;
  maxRingBytes?: number;
  handshakeTimeoutMs?: number;
}

export interface RegisterOptions {
  version?: string;
  labels?: Record<string, string>;
  maxConnections?: number;
}

export interface Registration {
  readonly name: string;
  close(): Promise<void>;
}

interface Pending {
  resolve(msg: AgentMessage, fds: number[]): void;
  reject(err: RingwireError): void;
  timer: NodeJS.Timeout;
}

interface Tracked {
  channel: Channel | undefined;
  revoked: RingwireError | undefined;
  last: ChannelCounters;
}

const BACKOFF_MIN_MS = 25;
const BACKOFF_MAX_MS = 500;

function counters(ch: Channel): ChannelCounters {
  const s = ch.stats();
  return { messagesSent: s.sent.messages, messagesReceived: s.received.messages, bytesSent: s.sent.bytes, bytesReceived: s.received.bytes };
}

function errorCode(code: string): ErrorCode {
  return isRingwireError(Object.assign(new Error(), { code })) ? (code as ErrorCode) : 'ERR_AGENT_PROTOCOL';
}

export interface AgentClient {
  on(event: 'disconnect', listener: (err: RingwireError) => void): this;
  on(event: 'reconnect' | 'closed', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export class AgentClient extends EventEmitter {
  readonly address: string;
  #opts: AgentClientOptions;
  #sock: FdSocket | undefined;
  #identity: string | null = null;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #registrations = new Map<string, { opts: RegisterOptions; onChannel: (ch: Channel) => void }>();
  #channels = new Map<number, Tracked>();
  #reportTimer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_MIN_MS;
  #closed = false;

  private constructor(o: AgentClientOptions) {
    super();
    this.address = o.address ?? process.env.RINGWIRE_AGENT ?? DEFAULT_AGENT_ADDRESS;
    this.#opts = o;
  }

  /** Connects to the agent and says hello; ERR_AGENT_UNAVAILABLE when nothing answers. */
  static async connect(o: AgentClientOptions = {}): Promise<AgentClient> {
    const c = new AgentClient(o);
    await c.#open();
    return c;
  }

  /** The workload identity the agent gave this process (null: anonymous). */
  get identity(): string | null {
    return this.#identity;
  }

  /** Names registered through this client. */
  get registrations(): number {
    return this.#registrations.size;
  }

  get connected(): boolean {
    return this.#sock !== undefined;
  }

  async #open(): Promise<void> {
    let sock: FdSocket;
    try {
      sock = await FdSocket.connect(this.address, { maxMessageSize: CONTROL_RECEIVE_BUFFER, maxFds: 1, timeoutMs: 1000 });
    } catch (err) {
      throw ringwireError('ERR_AGENT_UNAVAILABLE', `no agent answers on ${this.address}: ${(err as Error).message}`, { cause: err });
    }
    sock.on('error', () => {});
    this.#sock = sock;
    sock.on('message', (data, fds) => this.#onMessage(sock, data, fds));
    sock.on('close', () => this.#onClose(sock));
    const welcome = await this.#request({ op: 'hello', v: CONTROL_VERSION }, 'welcome');
    if (welcome.op !== 'welcome') throw ringwireError('ERR_AGENT_PROTOCOL', `expected welcome, got ${welcome.op}`);
    this.#identity = welcome.identity;
    clearInterval(this.#reportTimer);
    this.#reportTimer = setInterval(() => this.#reportAll(), Math.max(100, welcome.reportIntervalMs));
    this.#reportTimer.unref();
    for (const [name, r] of this.#registrations) {
      // A name this identity may no longer serve (the config changed) is dropped, not retried for ever.
      await this.#sendRegister(name, r.opts).catch((err: RingwireError) => {
        this.#registrations.delete(name);
        this.#warn(err);
      });
    }
    this.#backoff = BACKOFF_MIN_MS;
  }

  /** Sends a message with a fresh id (or the hello) and resolves with the matching answer. */
  #request(msg: ClientMessage | Omit<Extract<ClientMessage, { id: number }>, 'id'>, kind: 'welcome' | 'id', fdsOut?: number[]): Promise<AgentMessage> {
    const sock = this.#sock;
    if (!sock || this.#closed) return Promise.reject(ringwireError('ERR_AGENT_UNAVAILABLE', `not connected to the agent at ${this.address}`));
    const id = kind === 'welcome' ? 0 : this.#nextId++;
    const full = kind === 'welcome' ? msg : { ...msg, id };
    return new Promise((resolve, reject) => {
      const timeoutMs = this.#opts.controlTimeoutMs ?? 5000;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(ringwireError('ERR_TIMEOUT', `the agent did not answer ${msg.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (m, fds) => { clearTimeout(timer); if (fdsOut) fdsOut.push(...fds); else closeAll(fds); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
        timer,
      });
      try {
        sock.send(encode(full as ClientMessage));
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(ringwireError('ERR_AGENT_UNAVAILABLE', `agent connection lost: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  #onMessage(sock: FdSocket, data: Buffer, fds: number[]): void {
    let msg: AgentMessage;
    try {
      msg = decodeAgentMessage(data, fds.length);
    } catch (err) {
      closeAll(fds);
      this.#warn(err as Error);
      sock.close();
      return;
    }
    switch (msg.op) {
      case 'welcome': return this.#settle(0, msg, fds);
      case 'ok':
      case 'error':
      case 'status':
      case 'channel': return this.#settle(msg.id, msg, fds);
      case 'incoming': return this.#incoming(msg, fds[0]!);
      case 'revoke': return this.#revoke(msg);
      case 'bye': {
        this.#byeReason = ringwireError(msg.code === 'ERR_AGENT_UNAVAILABLE' ? 'ERR_AGENT_UNAVAILABLE' : errorCode(msg.code), `agent said bye: ${msg.reason}`);
        sock.close();
      }
    }
  }

  #byeReason: RingwireError | undefined;

  #settle(id: number, msg: AgentMessage, fds: number[]): void {
    const p = this.#pending.get(id);
    if (!p) {
      closeAll(fds);
      return;
    }
    this.#pending.delete(id);
    p.resolve(msg, fds);
  }

  #onClose(sock: FdSocket): void {
    if (this.#sock !== sock) return;
    this.#sock = undefined;
    clearInterval(this.#reportTimer);
    const err = this.#byeReason ?? ringwireError('ERR_AGENT_UNAVAILABLE', `the agent at ${this.address} went away`);
    this.#byeReason = undefined;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    if (this.#closed) return;
    this.emit('disconnect', err);
    if (this.#opts.reconnect ?? true) this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
    this.#reconnectTimer = setTimeout(() => {
      this.#open().then(
        () => { this.emit('reconnect'); },
        () => { this.#sock?.close(); if (!this.#closed && !this.#sock) this.#scheduleReconnect(); },
      );
    }, delay);
    // Only registrations keep a process alive waiting for the agent.
    if (this.#registrations.size === 0) this.#reconnectTimer.unref();
  }

  async #sendRegister(name: string, o: RegisterOptions): Promise<void> {
    const reply = await this.#request({ op: 'register', name, ...(o.version ? { version: o.version } : {}), ...(o.labels ? { labels: o.labels } : {}), ...(o.maxConnections ? { maxConnections: o.maxConnections } : {}) }, 'id');
    if (reply.op === 'error') throw ringwireError(errorCode(reply.code), reply.message);
  }

  /**
   * Registers this process as an instance of `name`; channels to it arrive on `onChannel`. The
   * agent refuses (ERR_POLICY_DENIED) unless the config's `serve` rules let this identity serve it.
   */
  async register(name: string, o: RegisterOptions, onChannel: (channel: Channel) => void): Promise<Registration> {
    if (typeof onChannel !== 'function') throw ringwireError('ERR_INVALID_ARG', 'register needs an onChannel function');
    if (this.#registrations.has(name)) throw ringwireError('ERR_INVALID_ARG', `${name} is already registered by this client`);
    await this.#sendRegister(name, o);
    this.#registrations.set(name, { opts: o, onChannel });
    return {
      name,
      close: async () => {
        if (!this.#registrations.delete(name)) return;
        if (this.#sock) await this.#request({ op: 'unregister', name }, 'id').catch(() => {});
      },
    };
  }

  /** A channel to an instance of `service`, brokered by the agent. */
  async connect(service: string, o: { labels?: Record<string, string> } = {}): Promise<Channel> {
    const started = performance.now();
    const fds: number[] = [];
    const reply = await this.#request({ op: 'connect', service, ...(o.labels ? { labels: o.labels } : {}) }, 'id', fds);
    if (reply.op === 'error') throw ringwireError(errorCode(reply.code), reply.policy ? `${reply.message} [policy ${reply.policy}]` : reply.message);
    if (reply.op !== 'channel') throw ringwireError('ERR_AGENT_PROTOCOL', `expected channel, got ${reply.op}`);
    const ch = await this.#openChannel(reply.channel, fds[0]!, 'client', `svc:${service}`, reply.peer, undefined);
    this.#send({ op: 'opened', channel: reply.channel, openUs: Math.round((performance.now() - started) * 1000) });
    return ch;
  }

  #incoming(msg: Extract<AgentMessage, { op: 'incoming' }>, fd: number): void {
    const reg = this.#registrations.get(msg.service);
    if (!reg) {
      closeAll([fd]);
      return;
    }
    this.#openChannel(msg.channel, fd, 'server', `svc:${msg.service}`, msg.peer, reg.onChannel).catch((err: Error) => this.#warn(err));
  }

  async #openChannel(id: number, fd: number, role: 'client' | 'server', address: string, peer: { identity: string | null; pid: number; uid: number }, deliver: ((ch: Channel) => void) | undefined): Promise<Channel> {
    const tracked: Tracked = { channel: undefined, revoked: undefined, last: { messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0 } };
    this.#channels.set(id, tracked);
    let ch: Channel;
    try {
      ch = await channelOverSocket(fd, {
        ...this.#opts, role, address, name: peer.identity ?? `pid ${process.pid}`,
        peer: { pid: peer.pid, uid: peer.uid, gid: -1 },
      });
    } catch (err) {
      this.#channels.delete(id);
      this.#send({ op: 'closed', channel: id, stats: tracked.last, reason: `handshake failed: ${(err as Error).message}` });
      throw err;
    }
    tracked.channel = ch;
    ch.once('close', (err?: RingwireError) => {
      try {
        tracked.last = counters(ch);
      } catch {
        // keep the last report
      }
      this.#channels.delete(id);
      if (!tracked.revoked) this.#send({ op: 'closed', channel: id, stats: tracked.last, ...(err ? { reason: err.message.slice(0, 1000) } : {}) });
    });
    if (tracked.revoked) ch.destroy(tracked.revoked);
    else deliver?.(ch);
    return ch;
  }

  #revoke(msg: Extract<AgentMessage, { op: 'revoke' }>): void {
    const t = this.#channels.get(msg.channel);
    if (!t) return;
    t.revoked = ringwireError('ERR_POLICY_REVOKED', `${msg.reason}${msg.policy ? ` [policy ${msg.policy}]` : ''}`);
    t.channel?.destroy(t.revoked);
  }

  /** Problems that concern no pending call: reported on 'error' when someone listens, else dropped. */
  #warn(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #send(msg: ClientMessage): void {
    try {
      this.#sock?.send(encode(msg));
    } catch {
      // The agent is gone; it forgot this channel anyway.
    }
  }

  #reportAll(): void {
    for (const [id, t] of this.#channels) {
      if (!t.channel || t.channel.closed) continue;
      t.last = counters(t.channel);
      this.#send({ op: 'report', channel: id, stats: t.last });
    }
  }

  /** Sends every open channel's counters now (they are also sent every reportIntervalSeconds and at close). */
  report(): void {
    this.#reportAll();
  }

  /** The agent's status snapshot. */
  async status(): Promise<AgentStatus> {
    const reply = await this.#request({ op: 'status' }, 'id');
    if (reply.op !== 'status') throw ringwireError('ERR_AGENT_PROTOCOL', `expected status, got ${reply.op}`);
    return reply.status as AgentStatus;
  }

  /** Resolves once connected (at once, or at the next 'reconnect'); rejects if closed first. */
  ready(): Promise<void> {
    if (this.#sock) return Promise.resolve();
    if (this.#closed) return Promise.reject(ringwireError('ERR_RING_CLOSED', 'agent client closed'));
    return new Promise((resolve, reject) => {
      const onReconnect = (): void => { this.off('closed', onClosed); resolve(); };
      const onClosed = (): void => { this.off('reconnect', onReconnect); reject(ringwireError('ERR_RING_CLOSED', 'agent client closed')); };
      this.once('reconnect', onReconnect);
      this.once('closed', onClosed);
    });
  }

  /** Closes the control connection; open channels stay open (close them yourself). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#reportTimer);
    this.#sock?.close();
    for (const p of this.#pending.values()) p.reject(ringwireError('ERR_AGENT_UNAVAILABLE', 'agent client closed'));
    this.#pending.clear();
    this.emit('closed');
  }
}

export function connectAgent(o: AgentClientOptions = {}): Promise<AgentClient> {
  return AgentClient.connect(o);
}
