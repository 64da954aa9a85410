/**
 * The CNI event protocol between the plugin (exec'd by the container runtime) and the pod manager
 * inside the node agent, as istio-cni's plugin talks to its node agent over a "pluginevent" socket.
 * Version 1, over SOCK_SEQPACKET: one request datagram, one reply datagram, then the plugin closes.
 * Each datagram is one UTF-8 JSON object of at most MAX_EVENT_BYTES.
 *
 *   plugin -> agent  {v: 1, op: 'add' | 'del' | 'check', containerId, ifName, netns?, pod?}
 *   agent -> plugin  {v: 1, ok: true, socket?, identity?} | {v: 1, ok: false, code, message}
 *
 * `validEvent` checks syntax only (types, sizes); what an event means is the pod manager's business.
 */
import type { PodRef } from './spec.js';

export const PROTOCOL_VERSION = 1;
export const MAX_EVENT_BYTES = 16 * 1024;

export type EventOp = 'add' | 'del' | 'check';

export interface PodEvent {
  v: typeof PROTOCOL_VERSION;
  op: EventOp;
  containerId: string;
  ifName: string;
  /** Required for add and check; del may arrive without it. */
  netns?: string;
  pod?: PodRef;
}

export type EventReply =
  | { v: typeof PROTOCOL_VERSION; ok: true; socket?: string; identity?: string }
  | { v: typeof PROTOCOL_VERSION; ok: false; code: ReplyCode; message: string };

/** Why the agent refused: the plugin maps each to a CNI error code. */
export type ReplyCode = 'bad-request' | 'forbidden' | 'netns' | 'conflict' | 'unknown-pod' | 'internal';

const OPS: readonly string[] = ['add', 'del', 'check'];
const MAX_FIELD = 1024;

function shortString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_FIELD && !v.includes('\0');
}

/** Parses and checks one request datagram; a string says what is wrong with it. */
export function validEvent(data: Uint8Array): PodEvent | string {
  if (data.length > MAX_EVENT_BYTES) return `event of ${data.length} bytes exceeds ${MAX_EVENT_BYTES}`;
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8'));
  } catch {
    return 'event is not JSON';
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'event must be a JSON object';
  const e = raw as Record<string, unknown>;
  if (e.v !== PROTOCOL_VERSION) return `unsupported protocol version ${JSON.stringify(e.v)} (this agent speaks ${PROTOCOL_VERSION})`;
  if (typeof e.op !== 'string' || !OPS.includes(e.op)) return `unknown op ${JSON.stringify(e.op)}`;
  if (!shortString(e.containerId) || !shortString(e.ifName)) return 'containerId and ifName must be non-empty strings';
  if (e.netns !== undefined && !(shortString(e.netns) && e.netns.startsWith('/'))) return 'netns must be an absolute path';
  if (e.op !== 'del' && e.netns === undefined) return `${e.op} needs netns`;
  if (e.pod !== undefined) {
    const p = e.pod as Record<string, unknown> | null;
    if (p === null || typeof p !== 'object' || !shortString(p.namespace) || !shortString(p.name) || (p.uid !== undefined && !shortString(p.uid))) {
      return 'pod must be {namespace, name, uid?} with non-empty strings';
    }
  }
  const pod = e.pod as PodRef | undefined;
  return {
    v: PROTOCOL_VERSION,
    op: e.op as EventOp,
    containerId: e.containerId as string,
    ifName: e.ifName as string,
    ...(e.netns !== undefined ? { netns: e.netns as string } : {}),
    ...(pod ? { pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid } } : {}),
  };
}

/** Parses a reply datagram; a string says what is wrong with it. */
export function validReply(data: Uint8Array): EventReply | string {
  if (data.length > MAX_EVENT_BYTES) return 'reply too large';
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.length).toString('utf8'));
  } catch {
    return 'reply is not JSON';
  }
  const r = raw as Record<string, unknown> | null;
  if (r === null || typeof r !== 'object' || r.v !== PROTOCOL_VERSION || typeof r.ok !== 'boolean') return 'reply is not a v1 reply';
  if (r.ok === false && (typeof r.code !== 'string' || typeof r.message !== 'string')) return 'refusal without code and message';
  return r as unknown as EventReply;
}

export function encode(message: PodEvent | EventReply): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}
