/**
 * 'inproc://name': channels between worker threads of one process. Rings and doorbells live in
 * SharedArrayBuffers (lib/ring/thread-ring.ts); the rendezvous is a BroadcastChannel named after the
 * address, which every thread of the process can open.
 *
 * Rendezvous: the client creates both rings and a two-word "gone" buffer, posts
 * { op: 'connect', id, name, secret, c2s, s2c, gone }, and the listener answers
 * { op: 'accepted' | 'refused', id, name, reason }. Each side sets its gone word and notifies when
 * it closes, so the other notices even without an End record.
 *
 * Limits: one listener per name is enforced only within a thread; a terminated worker sets no gone
 * word, so watch the Worker's 'exit' and destroy its channels.
 */
import { timingSafeEqual } from 'node:crypto';
import { ringwireError } from '../errors.js';
import { createThreadRing, openConsumer, openProducer, type ThreadRingDescriptor } from '../ring/thread-ring.js';
import type { AcceptorHooks, Acceptor, ServerOptions } from './acceptor.js';
import type { GoneReason, Link, LinkConsumer, LinkProducer, PeerIdentity } from './link.js';
import { DEFAULT_MAX_RING_BYTES, checkLimits, secretBytes } from './handshake-server.js';
import { PRODUCER_DATA, isPowerOfTwo } from '../ring/layout.js';

const PREFIX = 'ringwire:inproc:';
const CLIENT_GONE = 0;
const SERVER_GONE = 1;
const listening = new Set<string>();

interface ConnectMsg {
  op: 'connect';
  id: string;
  name: string;
  uid: number;
  gid: number;
  secret: Uint8Array | undefined;
  c2s: ThreadRingDescriptor;
  s2c: ThreadRingDescriptor;
  gone: SharedArrayBuffer;
}

interface ReplyMsg {
  op: 'accepted' | 'refused';
  id: string;
  name: string;
  reason: string;
}

class InprocLink implements Link {
  readonly transport = 'inproc' as const;
  #gone: Int32Array;
  #mine: number;
  #closed = false;
  #cb: ((why: GoneReason) => void) | undefined;
  #why: GoneReason | undefined;

  constructor(
    readonly producer: LinkProducer,
    readonly consumer: LinkConsumer,
    readonly peer: PeerIdentity,
    readonly localAddress: string,
    readonly remoteAddress: string,
    gone: SharedArrayBuffer,
    role: 'client' | 'server',
  ) {
    this.#gone = new Int32Array(gone);
    this.#mine = role === 'client' ? CLIENT_GONE : SERVER_GONE;
    const theirs = role === 'client' ? SERVER_GONE : CLIENT_GONE;
    const w = Atomics.waitAsync(this.#gone, theirs, 0);
    // A waitAsync does not hold the event loop open, which is what a liveness watch should do.
    // The peer may have left before anyone called onGone (a client that gave up while the policy
    // check ran): remember it so onGone still reports it.
    const fire = (): void => {
      this.#why = { code: undefined, reason: 'the peer thread closed the channel' };
      if (!this.#closed) this.#cb?.(this.#why);
    };
    if (w.async) void w.value.then(fire);
    else fire();
  }

  onGone(cb: (why: GoneReason) => void): void {
    this.#cb = cb;
    const why = this.#why;
    if (why) queueMicrotask(() => { if (!this.#closed) cb(why); });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#gone, this.#mine, 1);
    Atomics.notify(this.#gone, this.#mine);
  }
}

function identity(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

export function listenInproc(name: string, opts: ServerOptions, hooks: AcceptorHooks): Acceptor {
  if (listening.has(name)) throw ringwireError('ERR_INVALID_ARG', `inproc://${name} is already listening in this thread`);
  const min = opts.minRingBytes ?? 4096;
  const max = opts.maxRingBytes ?? DEFAULT_MAX_RING_BYTES;
  checkLimits(min, max);
  const secret = secretBytes(opts.secret);
  const address = `inproc://${name}`;
  const bc = new BroadcastChannel(PREFIX + name);
  listening.add(name);
  const reply = (m: ReplyMsg): void => bc.postMessage(m);
  bc.onmessage = (ev: MessageEvent) => {
    const m = ev.data as ConnectMsg;
    if (!m || m.op !== 'connect' || typeof m.id !== 'string') return;
    void (async () => {
      const refuse = (reason: string): void => {
        reply({ op: 'refused', id: m.id, name: opts.name ?? 'ringwire', reason });
        hooks.refused({ peer: { pid: process.pid, uid: m.uid, gid: m.gid, name: String(m.name) }, reason, error: ringwireError('ERR_POLICY', reason) });
      };
      if (!hooks.admit()) return refuse('server is at its connection limit');
      const done = hooks.started();
      try {
        for (const d of [m.c2s, m.s2c]) {
          const cap = (d?.producer?.byteLength ?? 0) - PRODUCER_DATA;
          if (!isPowerOfTwo(cap) || cap < min || cap > max) return refuse(`ring of ${cap} bytes is outside ${min}..${max}`);
        }
        if (secret && !(m.secret instanceof Uint8Array && m.secret.length === secret.length && timingSafeEqual(m.secret, secret))) return refuse('wrong or missing secret');
        const peer = { pid: process.pid, uid: m.uid, gid: m.gid, name: String(m.name) };
        if (opts.allow) {
          if ((opts.allow.uids || opts.allow.gids) && !opts.allow.uids?.includes(peer.uid) && !opts.allow.gids?.includes(peer.gid)) return refuse(`uid ${peer.uid} / gid ${peer.gid} is not allowed`);
          const verdict = opts.allow.check ? await opts.allow.check(peer) : true;
          if (verdict !== true) return refuse(typeof verdict === 'string' && verdict ? verdict : 'refused by policy');
        }
        if (Atomics.load(new Int32Array(m.gone), CLIENT_GONE) !== 0) return refuse('the client gave up before it was accepted');
        const spin = opts.spin === undefined ? {} : { spin: opts.spin };
        const link = new InprocLink(openProducer(m.s2c, spin), openConsumer(m.c2s, spin), peer, address, `${address} (${peer.name})`, m.gone, 'server');
        reply({ op: 'accepted', id: m.id, name: opts.name ?? 'ringwire', reason: '' });
        hooks.link(link);
      } catch (err) {
        refuse((err as Error).message);
      } finally {
        done();
      }
    })();
  };
  return {
    address,
    close: () => {
      listening.delete(name);
      bc.close();
    },
  };
}

export interface InprocConnectOptions {
  name: string;
  secret: Uint8Array | undefined;
  sendRingBytes: number;
  receiveRingBytes: number;
  timeoutMs: number;
  spin?: number;
}

export function connectInproc(name: string, o: InprocConnectOptions): Promise<Link> {
  const c2s = createThreadRing(o.sendRingBytes);
  const s2c = createThreadRing(o.receiveRingBytes);
  const gone = new SharedArrayBuffer(8);
  const id = `${process.pid}:${Math.random().toString(36).slice(2)}:${Date.now()}`;
  const bc = new BroadcastChannel(PREFIX + name);
  const address = `inproc://${name}`;
  return new Promise<Link>((resolve, reject) => {
    const finish = (err: Error | undefined, link?: Link): void => {
      clearTimeout(timer);
      bc.close();
      if (err) {
        Atomics.store(new Int32Array(gone), CLIENT_GONE, 1);
        reject(err);
      } else resolve(link!);
    };
    const timer = setTimeout(() => finish(ringwireError('ERR_TIMEOUT', `no inproc listener at ${address} answered within ${o.timeoutMs} ms`)), o.timeoutMs);
    bc.onmessage = (ev: MessageEvent) => {
      const m = ev.data as ReplyMsg;
      if (!m || m.id !== id || (m.op !== 'accepted' && m.op !== 'refused')) return;
      if (m.op === 'refused') {
        finish(ringwireError('ERR_POLICY', `inproc server refused: ${m.reason}`));
        return;
      }
      const spin = o.spin === undefined ? {} : { spin: o.spin };
      const peer = { pid: process.pid, ...identity(), name: String(m.name) };
      finish(undefined, new InprocLink(openProducer(c2s, spin), openConsumer(s2c, spin), peer, `${address} (${o.name})`, address, gone, 'client'));
    };
    const msg: ConnectMsg = { op: 'connect', id, name: o.name, ...identity(), secret: o.secret, c2s, s2c, gone };
    bc.postMessage(msg);
  });
}
