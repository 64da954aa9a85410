/**
 * The agent's control protocol, version 1 (docs/agent.md, "Control protocol"): over a
 * SOCK_SEQPACKET connection each datagram is one UTF-8 JSON object of at most MAX_CONTROL_MESSAGE
 * bytes with an `op`. Every message is validated against its op's schema before anything looks at
 * it (syntax only; what it means is the agent's and the client's business). Only `channel` and
 * `incoming` (agent to peer) carry an fd: one end of a fresh socketpair.
 */
import { Ajv } from 'ajv';
import { ringwireError, type RingwireError } from '../errors.js';

export const CONTROL_VERSION = 1;
export const MAX_CONTROL_MESSAGE = 16 * 1024;
/** The receive buffer: larger than the limit so an oversized message is read whole and refused with a reason. */
export const CONTROL_RECEIVE_BUFFER = 64 * 1024;
export const DEFAULT_AGENT_ADDRESS = '@ringwire';

export interface ChannelCounters {
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface PeerView {
  identity: string | null;
  pid: number;
  uid: number;
}

/** Client (a service's library) to agent. */
export type ClientMessage =
  | { op: 'hello'; v: number; name?: string }
  | { op: 'register'; id: number; name: string; version?: string; labels?: Record<string, string>; maxConnections?: number }
  | { op: 'unregister'; id: number; name: string }
  | { op: 'connect'; id: number; service: string; labels?: Record<string, string> }
  | { op: 'opened'; channel: number; openUs: number }
  | { op: 'report'; channel: number; stats: ChannelCounters }
  | { op: 'closed'; channel: number; stats: ChannelCounters; reason?: string }
  | { op: 'status'; id: number };

/** Agent to client. */
export type AgentMessage =
  | { op: 'welcome'; v: number; identity: string | null; pid: number; uid: number; netns: number; reportIntervalMs: number }
  | { op: 'ok'; id: number }
  | { op: 'error'; id: number; code: string; message: string; policy?: string }
  | { op: 'channel'; id: number; channel: number; service: string; peer: PeerView }
  | { op: 'incoming'; channel: number; service: string; registration: string; peer: PeerView }
  | { op: 'revoke'; channel: number; reason: string; policy: string | null }
  | { op: 'status'; id: number; status: unknown }
  | { op: 'bye'; code: string; reason: string };

const id = { type: 'integer', minimum: 1, maximum: 2 ** 31 } as const;
const name = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' } as const;
const labels = { type: 'object', maxProperties: 32, propertyNames: { maxLength: 63 }, additionalProperties: { type: 'string', maxLength: 63 } } as const;
const count = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const counters = {
  type: 'object', additionalProperties: false, required: ['messagesSent', 'messagesReceived', 'bytesSent', 'bytesReceived'],
  properties: { messagesSent: count, messagesReceived: count, bytesSent: count, bytesReceived: count },
} as const;
const text = { type: 'string', maxLength: 1024 } as const;
const peer = {
  type: 'object', additionalProperties: false, required: ['identity', 'pid', 'uid'],
  properties: { identity: { type: ['string', 'null'] }, pid: count, uid: count },
} as const;

function message(op: string, props: Record<string, unknown>, required: string[]): object {
  return { type: 'object', additionalProperties: false, required: ['op', ...required], properties: { op: { const: op }, ...props } };
}

const CLIENT_SCHEMAS: Record<ClientMessage['op'], object> = {
  hello: message('hello', { v: { type: 'integer', minimum: 1, maximum: 65535 }, name: { type: 'string', maxLength: 64 } }, ['v']),
  register: message('register', { id, name, version: { type: 'string', minLength: 1, maxLength: 63 }, labels, maxConnections: { type: 'integer', minimum: 1, maximum: 1_000_000 } }, ['id', 'name']),
  unregister: message('unregister', { id, name }, ['id', 'name']),
  connect: message('connect', { id, service: name, labels }, ['id', 'service']),
  opened: message('opened', { channel: id, openUs: { type: 'number', minimum: 0, maximum: 3.6e9 } }, ['channel', 'openUs']),
  report: message('report', { channel: id, stats: counters }, ['channel', 'stats']),
  closed: message('closed', { channel: id, stats: counters, reason: text }, ['channel', 'stats']),
  status: message('status', { id }, ['id']),
};

const AGENT_SCHEMAS: Record<AgentMessage['op'], object> = {
  welcome: message('welcome', { v: count, identity: { type: ['string', 'null'] }, pid: count, uid: count, netns: count, reportIntervalMs: count }, ['v', 'identity', 'pid', 'uid', 'netns', 'reportIntervalMs']),
  ok: message('ok', { id }, ['id']),
  error: message('error', { id: count, code: { type: 'string', pattern: '^ERR_[A-Z_]+$' }, message: text, policy: text }, ['id', 'code', 'message']),
  channel: message('channel', { id, channel: id, service: name, peer }, ['id', 'channel', 'service', 'peer']),
  incoming: message('incoming', { channel: id, service: name, registration: text, peer }, ['channel', 'service', 'registration', 'peer']),
  revoke: message('revoke', { channel: id, reason: text, policy: { type: ['string', 'null'] } }, ['channel', 'reason', 'policy']),
  status: message('status', { id, status: {} }, ['id', 'status']),
  bye: message('bye', { code: { type: 'string' }, reason: text }, ['code', 'reason']),
};

/** Ops that arrive with exactly one fd. */
const WITH_FD = new Set<string>(['channel', 'incoming']);

const ajv = new Ajv({ allErrors: false, strict: true });
const clientValidators = new Map(Object.entries(CLIENT_SCHEMAS).map(([op, s]) => [op, ajv.compile(s)]));
const agentValidators = new Map(Object.entries(AGENT_SCHEMAS).map(([op, s]) => [op, ajv.compile(s)]));

export function encode(msg: ClientMessage | AgentMessage): Buffer {
  return Buffer.from(JSON.stringify(msg));
}

/** The decoded message, or ERR_AGENT_PROTOCOL saying what is wrong with it. Pure over its input. */
function decode<T>(data: Buffer, fds: number, validators: Map<string, ReturnType<typeof ajv.compile>>, from: string): T {
  if (data.length > MAX_CONTROL_MESSAGE) throw protocolError(`${from} message of ${data.length} bytes exceeds ${MAX_CONTROL_MESSAGE}`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    throw protocolError(`${from} message is not UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw protocolError(`${from} message is not a JSON object`);
  const op = (value as { op?: unknown }).op;
  const validate = typeof op === 'string' ? validators.get(op) : undefined;
  if (!validate) throw protocolError(`unknown op ${JSON.stringify(op)?.slice(0, 64)} from ${from}`);
  if (!validate(value)) {
    const e = validate.errors?.[0];
    throw protocolError(`${op} from ${from}: ${e ? `${e.instancePath || '/'} ${e.message}` : 'invalid'}`);
  }
  const wantFds = WITH_FD.has(op as string) ? 1 : 0;
  if (fds !== wantFds) throw protocolError(`${op} from ${from} carried ${fds} fds; expected ${wantFds}`);
  return value as T;
}

export function decodeClientMessage(data: Buffer, fds: number): ClientMessage {
  return decode<ClientMessage>(data, fds, clientValidators, 'client');
}

export function decodeAgentMessage(data: Buffer, fds: number): AgentMessage {
  return decode<AgentMessage>(data, fds, agentValidators, 'agent');
}

export function protocolError(message: string): RingwireError {
  return ringwireError('ERR_AGENT_PROTOCOL', message);
}
