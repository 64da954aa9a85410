/**
 * Every error ringwire throws comes from this one table: a stable `code`, the built-in class it
 * extends (so `instanceof RangeError` keeps working), and whether reconnecting can help.
 * Classes are generated from the table so the list and the classes cannot drift apart.
 */

const table = {
  ERR_RING_CORRUPT: { base: Error, retry: false, doc: 'shared memory broke an invariant; the ring is unusable' },
  ERR_RING_TOO_LARGE: { base: RangeError, retry: false, doc: 'a message is larger than the ring can ever hold' },
  ERR_RING_CLOSED: { base: Error, retry: false, doc: 'the ring or channel was closed locally' },
  ERR_PEER_GONE: { base: Error, retry: true, doc: 'the peer disconnected or died' },
  ERR_HANDSHAKE: { base: Error, retry: false, doc: 'the peer broke the handshake protocol or refused us' },
  ERR_POLICY: { base: Error, retry: false, doc: 'the peer was refused by policy' },
  ERR_TIMEOUT: { base: Error, retry: true, doc: 'an operation did not complete in time' },
  ERR_ABORTED: { base: Error, retry: false, doc: 'the operation was cancelled through an AbortSignal' },
  ERR_NATIVE: { base: Error, retry: false, doc: 'a system call failed; see errno and syscall' },
  ERR_MSG_TRUNCATED: { base: Error, retry: false, doc: 'a received message or its fds did not fit (MSG_TRUNC/MSG_CTRUNC); the fds that did arrive were closed' },
  ERR_ADDON_MISSING: { base: Error, retry: false, doc: 'the native addon is not built or cannot load' },
  ERR_INVALID_ARG: { base: TypeError, retry: false, doc: 'an argument has the wrong type or shape' },
  ERR_OUT_OF_RANGE: { base: RangeError, retry: false, doc: 'an argument is outside its allowed range' },
  ERR_VHOST_PROTOCOL: { base: Error, retry: true, doc: 'a vhost-user front-end sent a malformed or unexpected message' },
  ERR_VIRTQUEUE_BROKEN: { base: Error, retry: false, doc: 'a virtqueue holds an invalid descriptor or index' },
  ERR_GUEST_MEMORY: { base: RangeError, retry: false, doc: 'a guest address range is not inside one mapped guest memory region' },
  ERR_IVSHMEM_PROTOCOL: { base: Error, retry: true, doc: 'an ivshmem-server or client broke the protocol' },
  ERR_REMOTE: { base: Error, retry: false, doc: "the peer's request handler failed; the message carries its text" },
  // agent (lib/agent/): the node agent and its clients
  ERR_POLICY_DENIED: { base: Error, retry: false, doc: 'the node agent refused the connect by policy; the message names the policy' },
  ERR_POLICY_REVOKED: { base: Error, retry: false, doc: 'a policy reload no longer allows this channel; the agent told both peers to close it' },
  ERR_AGENT_UNAVAILABLE: { base: Error, retry: true, doc: 'no node agent answers on its control socket, or it went away' },
  ERR_AGENT_PROTOCOL: { base: Error, retry: false, doc: 'a control-socket message was malformed, oversized, unexpected or carried fds where none belong' },
  ERR_AGENT_CONFIG: { base: Error, retry: false, doc: 'the agent configuration is invalid; the message names the offending path' },
  ERR_NO_INSTANCE: { base: Error, retry: true, doc: 'no registered instance of the service can take a connection' },
  ERR_AGENT_LIMIT: { base: Error, retry: true, doc: 'a per-identity limit of the agent (connections, registrations, connect rate) was reached' },
  // http (lib/http: HTTP exchanges as ring records)
  ERR_HTTP_PROTOCOL: { base: Error, retry: false, doc: 'the peer broke the HTTP record mapping (malformed frame or head, records out of order)' },
  ERR_HTTP_RESET: { base: Error, retry: true, doc: 'the peer aborted the HTTP exchange (the ringwire ECONNRESET); reason and reset code in the message' },
  ERR_HTTP_HEADERS_TOO_LARGE: { base: RangeError, retry: false, doc: 'an HTTP head is over the header-bytes limit or a field over its length limit (431)' },
  ERR_HTTP_BODY_LENGTH: { base: Error, retry: false, doc: 'an HTTP body was longer or shorter than its content-length' },
  // types (issue 16: typed messages in the canonical ABI layout)
  ERR_MESSAGE_CORRUPT: { base: Error, retry: false, doc: 'a typed message broke its schema: a pointer outside the message, a bad discriminant or char, or bad UTF-8' },
} as const satisfies Record<string, { base: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor; retry: boolean; doc: string }>;

export type ErrorCode = keyof typeof table;

export interface RingwireErrorOptions {
  cause?: unknown;
  errno?: number;
  syscall?: string;
}

/** Common shape of every ringwire error, whatever built-in class it extends. */
export interface RingwireError extends Error {
  readonly code: ErrorCode;
  /** True when reconnecting or retrying later may succeed. */
  readonly retryable: boolean;
  readonly errno?: number;
  readonly syscall?: string;
}

type Ctor = new (message: string, options?: RingwireErrorOptions) => RingwireError;

function makeClass(code: ErrorCode): Ctor {
  const { base, retry } = table[code];
  const Base = base as ErrorConstructor;
  const cls = class extends Base {
    readonly code = code;
    readonly retryable = retry;
    errno?: number;
    syscall?: string;
    constructor(message: string, options: RingwireErrorOptions = {}) {
      super(message, options.cause === undefined ? undefined : { cause: options.cause });
      if (options.errno !== undefined) this.errno = options.errno;
      if (options.syscall !== undefined) this.syscall = options.syscall;
    }
  };
  Object.defineProperty(cls, 'name', { value: `Ringwire${Base.name}` });
  Object.defineProperty(cls.prototype, 'name', { value: `Ringwire${Base.name} [${code}]` });
  return cls as unknown as Ctor;
}

export const errors = Object.fromEntries(
  Object.keys(table).map((code) => [code, makeClass(code as ErrorCode)]),
) as { readonly [K in ErrorCode]: Ctor };

/** Builds the error for `code`; the one way ringwire code creates errors. */
export function ringwireError(code: ErrorCode, message: string, options?: RingwireErrorOptions): RingwireError {
  return new errors[code](message, options);
}

/** True when `err` is a ringwire error, optionally with the given code. */
export function isRingwireError(err: unknown, code?: ErrorCode): err is RingwireError {
  if (!(err instanceof Error)) return false;
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' && c in table && (code === undefined || c === code);
}

/** Documentation of every code, for docs and `ringwire --errors`. */
export function errorCodes(): ReadonlyArray<{ code: ErrorCode; retryable: boolean; doc: string }> {
  return (Object.keys(table) as ErrorCode[]).map((code) => ({ code, retryable: table[code].retry, doc: table[code].doc }));
}
