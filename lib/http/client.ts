/**
 * The client side of the HTTP record mapping: an undici Dispatcher, so `fetch(url, { dispatcher })`,
 * `undici.request()` and everything built on undici send their requests as ring records.
 *
 * `dispatch(opts, handler)` takes both handler generations undici uses: the legacy callbacks
 * (onConnect/onHeaders/onData/onComplete/onError: undici 6-7's request() and fetch, Node's own
 * fetch) and the controller style (onRequestStart/onResponseStart/...: undici 7 interceptors, 8).
 *
 * Pooling: per resolved address, up to `connections` channels (default 1; exchanges are
 * multiplexed on a channel, each with its own flow control), opened on first use. The address
 * comes from `address`, a fixed string or a resolver from the request's origin (the hook for
 * names resolved by an agent).
 *
 * Concurrency contract: one dispatcher per thread; everything runs on its event loop.
 */
import { Dispatcher, FormData as UndiciFormData, Response as UndiciResponse, errors as undiciErrors } from 'undici';
import type { Channel } from '../channel/channel.js';
import { connect, type ConnectOptions } from '../channel/connect.js';
import { ringwireError, type RingwireError } from '../errors.js';
import { Inflow, Outflow } from './flow.js';
import {
  Flag, FrameType, ResetCode, decodeFields, decodeResponseHead, decodeU32, encodeRequestHead, encodeReset, readFrame,
  type FieldList,
} from './wire.js';

export interface RingwireDispatcherOptions {
  /** The ringwire address of the server, or a resolver from the request origin to an address. */
  address: string | ((origin: URL) => string | Promise<string>);
  /** Channels per address; exchanges are spread over them. Default 1. */
  connections?: number;
  /** Options of the channels opened (ring sizes, poll mode, ...). */
  connect?: ConnectOptions;
  /** Milliseconds from dispatch to the response head before failing (undici's HeadersTimeoutError). Default 300 s, 0 disables. */
  headersTimeout?: number;
  /** Milliseconds without response body bytes before failing (undici's BodyTimeoutError). Default 300 s, 0 disables. */
  bodyTimeout?: number;
}

type LegacyHandler = {
  onConnect?(abort: (err?: Error) => void, context?: unknown): void;
  onResponseStarted?(): void;
  onHeaders?(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData?(chunk: Buffer): boolean;
  onComplete?(trailers: Buffer[] | null): void;
  onError?(err: Error): void;
  onBodySent?(chunkSize: number, total: number): void;
  onRequestSent?(): void;
};

type ControllerHandler = {
  onRequestStart?(controller: Controller, context: unknown): void;
  onResponseStart?(controller: Controller, status: number, headers: Record<string, string | string[]>, statusMessage?: string): void;
  onResponseData?(controller: Controller, chunk: Buffer): void;
  onResponseEnd?(controller: Controller, trailers: Record<string, string | string[]>): void;
  onResponseError?(controller: Controller, err: Error): void;
};

interface Controller {
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: Error | null;
  /** The response head's raw fields, as undici 8's fetch reads them from the controller. */
  readonly rawHeaders: Buffer[] | null;
  abort(reason?: Error): void;
  pause(): void;
  resume(): void;
}

/** undici's parseHeaders for the controller style: lower-cased names, repeated names as arrays. */
function headersObject(raw: Buffer[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toString('latin1').toLowerCase();
    const v = raw[i + 1]!.toString('latin1');
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

function requestFields(headers: unknown, out: FieldList): void {
  if (headers == null) return;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const [k, v] of headers as Array<[string, string]>) out.push(String(k), String(v));
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) out.push(String(headers[i]), String(headers[i + 1]));
    }
    return;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of headers as Iterable<[string, string]>) out.push(String(k), String(v));
    return;
  }
  for (const k of Object.keys(headers as object)) {
    const v = (headers as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, String(x));
    else out.push(k, String(v));
  }
}

type Body = Buffer | AsyncIterable<Uint8Array | string> | null;

/** The request body as bytes (known length) or an async iterable; FormData and Blob the way undici's core takes them. */
function normalizeBody(body: unknown, fields: FieldList): Body {
  if (body == null) return null;
  if (typeof body === 'string') return Buffer.from(body);
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // By tag, not instanceof: undici's own FormData is not the global one. Each Response serializes
  // only its own undici's FormData (Node 24+ bundles another undici than the package's), so the
  // package's FormData goes through the package's Response and any other through the global one.
  if ((body as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] === 'FormData') {
    const r = body instanceof UndiciFormData ? new UndiciResponse(body) : new Response(body as FormData);
    fields.push('content-type', r.headers.get('content-type')!);
    return r.body as unknown as AsyncIterable<Uint8Array>;
  }
  if (typeof Blob !== 'undefined' && body instanceof Blob) {
    if (body.type) fields.push('content-type', body.type);
    fields.push('content-length', String(body.size));
    return body.stream() as unknown as AsyncIterable<Uint8Array>;
  }
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') return body as AsyncIterable<Uint8Array>;
  if (typeof (body as Iterable<unknown>)[Symbol.iterator] === 'function') {
    return (async function* () { yield* body as Iterable<Uint8Array>; })();
  }
  throw ringwireError('ERR_INVALID_ARG', `unsupported request body of type ${typeof body}`);
}

/** One request in flight. */
class ClientExchange implements Controller {
  readonly id: number;
  readonly #conn: ClientConnection;
  readonly #legacy: LegacyHandler | undefined;
  readonly #modern: ControllerHandler | undefined;
  readonly inflow: Inflow;
  readonly outflow: Outflow;
  /** performance.now() after which the sweep fails this exchange. */
  deadline = Infinity;
  rawHeaders: Buffer[] | null = null;
  #headersTimeout: number;
  #bodyTimeout: number;
  #gotHead = false;
  #done = false;
  #paused = false;
  #unconsumed = 0;
  #reason: Error | null = null;
  #drainWaiter: (() => void) | undefined;
  /** The server finished its response before the request body was all sent: stop sending. */
  #responseComplete = false;

  constructor(conn: ClientConnection, id: number, handler: LegacyHandler & ControllerHandler, headersTimeout: number, bodyTimeout: number) {
    this.id = id;
    this.#conn = conn;
    const modern = typeof handler.onRequestStart === 'function' || typeof handler.onResponseStart === 'function';
    this.#legacy = modern ? undefined : handler;
    this.#modern = modern ? handler : undefined;
    this.inflow = new Inflow(conn.channel, id);
    this.outflow = new Outflow(conn.channel, id, () => { const w = this.#drainWaiter; this.#drainWaiter = undefined; w?.(); }, (err) => this.fail(err, false));
    this.#headersTimeout = headersTimeout;
    this.#bodyTimeout = bodyTimeout;
    if (headersTimeout > 0) this.deadline = performance.now() + headersTimeout;
  }

  // ---- Controller (the controller-style handler's view) ----
  get aborted(): boolean {
    return this.#reason !== null;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  abort(reason?: Error): void {
    if (this.#done) return;
    this.#reason = reason ?? new undiciErrors.RequestAbortedError();
    this.fail(this.#reason, true);
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#unconsumed > 0) {
      const n = this.#unconsumed;
      this.#unconsumed = 0;
      this.inflow.consumed(n);
    }
  }

  /** Runs the handler's start hook; false when it aborted the request there. */
  start(): boolean {
    if (this.#modern) this.#modern.onRequestStart?.(this, {});
    else this.#legacy!.onConnect?.((err?: Error) => this.abort(err));
    return !this.#done;
  }

  async sendBody(body: AsyncIterable<Uint8Array | string>): Promise<void> {
    try {
      for await (const chunk of body) {
        if (this.#done || this.#responseComplete) break;
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (buf.length === 0) continue;
        if (!this.outflow.write(buf, false)) await new Promise<void>((r) => { this.#drainWaiter = r; });
      }
      if (!this.#done && !this.#responseComplete) {
        this.outflow.write(Buffer.alloc(0), true);
        this.#legacy?.onRequestSent?.();
      }
    } catch (err) {
      if (!this.#done) this.fail(err as Error, true);
    } finally {
      const b = body as unknown as { destroy?: (e?: Error) => void };
      if (this.#done && typeof b.destroy === 'function') b.destroy();
    }
  }

  head(status: number, reason: string, raw: Buffer[], end: boolean): void {
    if (this.#gotHead && status >= 200) {
      this.#conn.protocolError(this, 'a second final response head');
      return;
    }
    this.#gotHead = true;
    this.deadline = this.#bodyTimeout > 0 ? performance.now() + this.#bodyTimeout : Infinity;
    if (this.#modern) {
      this.rawHeaders = raw;
      this.#modern.onResponseStart?.(this, status, headersObject(raw), reason);
    } else {
      this.#legacy!.onResponseStarted?.();
      const more = this.#legacy!.onHeaders?.(status, raw, () => this.resume(), reason);
      if (more === false) this.#paused = true;
    }
    if (end && !this.#done) this.complete(null);
  }

  data(chunk: Buffer, end: boolean): void {
    if (!this.#gotHead) {
      this.#conn.protocolError(this, 'Data before the response head');
      return;
    }
    if (!this.inflow.received(chunk.length)) {
      this.#conn.protocolError(this, 'a Data frame overran the credit it was given');
      return;
    }
    if (chunk.length > 0) {
      if (this.#bodyTimeout > 0) this.deadline = performance.now() + this.#bodyTimeout;
      if (this.#modern) this.#modern.onResponseData?.(this, chunk);
      else if (this.#legacy!.onData?.(chunk) === false) this.#paused = true;
      if (this.#done) return;
      if (this.#paused) this.#unconsumed += chunk.length;
      else this.inflow.consumed(chunk.length);
    }
    if (end) this.complete(null);
  }

  complete(trailers: Buffer[] | null): void {
    if (this.#done) return;
    if (!this.#gotHead) {
      this.#conn.protocolError(this, 'Trailers before the response head');
      return;
    }
    this.#done = true;
    this.#responseComplete = true;
    this.#conn.retire(this);
    // The rest of an unsent request body is not wanted: tell the server nothing more comes.
    if (!this.outflow.ended) this.#conn.sendReset(this.id, ResetCode.NoError, 'response complete');
    if (!this.outflow.ended || !this.outflow.idle) this.outflow.abandon(ringwireError('ERR_HTTP_RESET', 'the response completed before the request body was sent'));
    this.#drainWaiter?.();
    if (this.#modern) this.#modern.onResponseEnd?.(this, trailers ? headersObject(trailers) : {});
    else this.#legacy!.onComplete?.(trailers ?? []);
  }

  /** Fails the exchange with `err`; tells the server with a Reset when `tell`. */
  fail(err: Error, tell: boolean): void {
    if (this.#done) return;
    this.#done = true;
    this.#conn.retire(this);
    if (tell) this.#conn.sendReset(this.id, ResetCode.Cancel, err.message);
    this.outflow.abandon(err);
    this.#drainWaiter?.();
    if (this.#modern) this.#modern.onResponseError?.(this, err);
    else this.#legacy!.onError?.(err);
  }

  timedOut(): void {
    this.fail(this.#gotHead ? new undiciErrors.BodyTimeoutError() : new undiciErrors.HeadersTimeoutError(), true);
  }
}

/** One channel and the exchanges on it. */
class ClientConnection {
  readonly channel: Channel;
  readonly exchanges = new Map<number, ClientExchange>();
  #nextId = 1;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #onClosed: (c: ClientConnection) => void;
  protocolErrors = 0;

  constructor(channel: Channel, onClosed: (c: ClientConnection) => void) {
    this.channel = channel;
    this.#onClosed = onClosed;
    channel.on('message', (view) => this.#frame(view));
    channel.on('close', (err) => this.#closed(err));
  }

  get usable(): boolean {
    return !this.channel.closed && this.#nextId < 0xffffffff;
  }

  dispatch(opts: Dispatcher.DispatchOptions, origin: URL, handler: LegacyHandler & ControllerHandler, headersTimeout: number, bodyTimeout: number): void {
    const id = this.#nextId++;
    const ex = new ClientExchange(this, id, handler, headersTimeout, bodyTimeout);
    this.exchanges.set(id, ex);
    if (ex.deadline !== Infinity) this.#sweeper ??= setInterval(() => this.#sweep(), 250).unref();
    if (!ex.start()) return;
    if ((opts as { upgrade?: unknown }).upgrade || opts.method === 'CONNECT') {
      ex.fail(new undiciErrors.NotSupportedError('upgrade and CONNECT are not carried over ringwire HTTP records'), false);
      return;
    }
    const fields: FieldList = [];
    let body: Body;
    try {
      requestFields(opts.headers, fields);
      body = normalizeBody(opts.body, fields);
    } catch (err) {
      ex.fail(err as Error, false);
      return;
    }
    let hasHost = false;
    let hasLength = false;
    for (let i = 0; i < fields.length; i += 2) {
      const n = fields[i]!;
      if (n.length === 4 && n.toLowerCase() === 'host') hasHost = true;
      else if (n.length === 14 && n.toLowerCase() === 'content-length') hasLength = true;
    }
    if (!hasHost) fields.push('host', origin.host);
    if (Buffer.isBuffer(body) && !hasLength && (body.length > 0 || opts.method === 'POST' || opts.method === 'PUT' || opts.method === 'PATCH')) fields.push('content-length', String(body.length));
    const noBody = body === null || (Buffer.isBuffer(body) && body.length === 0);
    const head = encodeRequestHead(id, noBody ? Flag.End : 0, opts.method, opts.path, fields);
    if (!head || head.length > this.channel.maxMessageSize) {
      ex.fail(ringwireError('ERR_HTTP_HEADERS_TOO_LARGE', 'the request head does not fit in one ring record or a field is over its length limit'), false);
      return;
    }
    ex.outflow.frame(head);
    if (noBody) return;
    if (Buffer.isBuffer(body)) ex.outflow.write(body, true);
    else void ex.sendBody(body!);
  }

  #frame(view: Uint8Array): void {
    const f = readFrame(view);
    if (!f) {
      this.protocolErrors++;
      return;
    }
    const ex = this.exchanges.get(f.id);
    if (!ex) return; // finished or failed here already: late frames are expected
    const end = (f.flags & Flag.End) !== 0;
    switch (f.type) {
      case FrameType.Headers: {
        const copy = Buffer.from(view.subarray(f.start));
        const head = decodeResponseHead(copy, 0, copy.length);
        if (!head) this.protocolError(ex, 'malformed response head');
        else if (head.status >= 200) ex.head(head.status, head.reason, head.fields, end);
        return;
      }
      case FrameType.Data:
        ex.data(Buffer.from(view.subarray(f.start)), end);
        return;
      case FrameType.Trailers: {
        const copy = Buffer.from(view.subarray(f.start));
        const fields = decodeFields(copy, 0, copy.length, true);
        if (!fields) this.protocolError(ex, 'malformed trailers');
        else ex.complete(fields);
        return;
      }
      case FrameType.Reset: {
        const code = decodeU32(view, f.start, view.length) ?? ResetCode.Protocol;
        const reason = Buffer.from(view.subarray(f.start + 4)).toString();
        ex.fail(ringwireError('ERR_HTTP_RESET', `the server reset the exchange (code ${code}${reason ? `: ${reason}` : ''})`), false);
        return;
      }
      case FrameType.Window: {
        const n = decodeU32(view, f.start, view.length);
        if (n !== null) ex.outflow.grant(n);
        return;
      }
      default:
        this.protocolError(ex, `unknown frame type ${f.type}`);
    }
  }

  protocolError(ex: ClientExchange, why: string): void {
    this.protocolErrors++;
    ex.fail(ringwireError('ERR_HTTP_PROTOCOL', why), true);
  }

  sendReset(id: number, code: number, reason: string): void {
    if (this.channel.closed) return;
    const frame = encodeReset(id, code, reason.slice(0, 200));
    try {
      if (!this.channel.trySend(frame)) this.channel.send(frame).catch(() => {});
    } catch {
      // closing: the channel's 'close' fails what is left
    }
  }

  retire(ex: ClientExchange): void {
    this.exchanges.delete(ex.id);
    if (this.exchanges.size === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  #idleWaiters: Array<() => void> = [];

  /** Resolves once no exchange is in flight (what Dispatcher.close() waits for before ending the channel). */
  idle(): Promise<void> {
    if (this.exchanges.size === 0 || this.channel.closed) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Runs while exchanges with deadlines exist; stops itself on an idle pass (a timer per request costs more). */
  #sweep(): void {
    if (this.exchanges.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
      return;
    }
    const now = performance.now();
    for (const ex of [...this.exchanges.values()]) if (ex.deadline <= now) ex.timedOut();
  }

  #closed(err: RingwireError | undefined): void {
    const failure = err?.code === 'ERR_PEER_GONE' ? err : ringwireError('ERR_PEER_GONE', `the channel closed before the response completed${err ? ` (${err.message})` : ''}`, { cause: err });
    for (const ex of [...this.exchanges.values()]) ex.fail(failure, false);
    for (const w of this.#idleWaiters.splice(0)) w();
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#onClosed(this);
  }
}

/** The channels to one address. */
class AddressPool {
  readonly address: string;
  readonly #size: number;
  readonly #connect: ConnectOptions;
  readonly #conns: ClientConnection[] = [];
  #opening: Promise<ClientConnection> | undefined;

  constructor(address: string, size: number, connectOptions: ConnectOptions) {
    this.address = address;
    this.#size = size;
    this.#connect = connectOptions;
  }

  get connections(): readonly ClientConnection[] {
    return this.#conns;
  }

  /** The least busy usable channel, opening one while below the pool size. */
  get(): ClientConnection | Promise<ClientConnection> {
    let best: ClientConnection | undefined;
    for (const c of this.#conns) if (c.usable && (!best || c.exchanges.size < best.exchanges.size)) best = c;
    if (best && (best.exchanges.size === 0 || this.#conns.length >= this.#size)) return best;
    if (this.#opening) return best ?? this.#opening;
    this.#opening = connect(this.address, this.#connect).then((ch) => {
      const c = new ClientConnection(ch, (closed) => {
        const i = this.#conns.indexOf(closed);
        if (i >= 0) this.#conns.splice(i, 1);
      });
      this.#conns.push(c);
      return c;
    }).finally(() => { this.#opening = undefined; });
    return best ?? this.#opening;
  }

  /** As undici's close(): requests in flight complete, then each channel ends. */
  close(): Promise<void> {
    return Promise.all(this.#conns.map((c) => c.idle().then(() => c.channel.close()))).then(() => {});
  }

  destroy(): void {
    for (const c of [...this.#conns]) c.channel.destroy();
  }
}

/**
 * An undici Dispatcher over ringwire channels. Usable per call (`fetch(url, { dispatcher })`,
 * `request(url, { dispatcher })`) or as the global dispatcher (`setGlobalDispatcher`).
 */
export class RingwireDispatcher extends Dispatcher {
  readonly #resolve: (origin: URL) => string | Promise<string>;
  readonly #size: number;
  readonly #connect: ConnectOptions;
  readonly #headersTimeout: number;
  readonly #bodyTimeout: number;
  readonly #pools = new Map<string, AddressPool>();
  /** Parsed origins (a URL parse per request is measurable at these latencies). */
  readonly #origins = new Map<string, URL>();
  #closed = false;

  constructor(opts: RingwireDispatcherOptions) {
    super();
    if (typeof opts !== 'object' || opts === null) throw ringwireError('ERR_INVALID_ARG', 'RingwireDispatcher needs options with an address');
    const { address } = opts;
    if (typeof address === 'string') this.#resolve = () => address;
    else if (typeof address === 'function') this.#resolve = address;
    else throw ringwireError('ERR_INVALID_ARG', 'address must be a ringwire address or a function from origin to address');
    const size = opts.connections ?? 1;
    if (!Number.isInteger(size) || size < 1) throw ringwireError('ERR_OUT_OF_RANGE', `connections must be an integer >= 1, got ${size}`);
    this.#size = size;
    this.#connect = opts.connect ?? {};
    this.#headersTimeout = opts.headersTimeout ?? 300_000;
    this.#bodyTimeout = opts.bodyTimeout ?? 300_000;
  }

  /** Requests in flight over every channel (what a leak check watches). */
  get pendingRequests(): number {
    let n = 0;
    for (const p of this.#pools.values()) for (const c of p.connections) n += c.exchanges.size;
    return n;
  }

  /** Open channels over every address. */
  get connections(): number {
    let n = 0;
    for (const p of this.#pools.values()) n += p.connections.length;
    return n;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const h = handler as LegacyHandler & ControllerHandler;
    const fail = (err: Error): void => {
      if (typeof h.onResponseError === 'function') h.onResponseError({ aborted: true, paused: false, reason: err, rawHeaders: null, abort() {}, pause() {}, resume() {} }, err);
      else h.onError?.(err);
    };
    if (this.#closed) {
      queueMicrotask(() => fail(new undiciErrors.ClientClosedError()));
      return false;
    }
    const key = String(opts.origin);
    let origin = this.#origins.get(key);
    if (!origin) {
      try {
        origin = new URL(key);
      } catch {
        queueMicrotask(() => fail(new undiciErrors.InvalidArgumentError('dispatch needs an origin')));
        return true;
      }
      if (this.#origins.size >= 1024) this.#origins.clear();
      this.#origins.set(key, origin);
    }
    const url = origin;
    const headersTimeout = opts.headersTimeout ?? this.#headersTimeout;
    const bodyTimeout = opts.bodyTimeout ?? this.#bodyTimeout;
    const go = (conn: ClientConnection): void => conn.dispatch(opts, url, h, headersTimeout, bodyTimeout);
    let address: string | Promise<string>;
    try {
      address = this.#resolve(url);
    } catch (err) {
      queueMicrotask(() => fail(err as Error));
      return true;
    }
    const withPool = (addr: string): void => {
      let pool = this.#pools.get(addr);
      if (!pool) {
        pool = new AddressPool(addr, this.#size, this.#connect);
        this.#pools.set(addr, pool);
      }
      const c = pool.get();
      if (c instanceof ClientConnection) go(c);
      else c.then(go, fail);
    };
    if (typeof address === 'string') withPool(address);
    else address.then(withPool, fail);
    return true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    const done = Promise.all([...this.#pools.values()].map((p) => p.close())).then(() => {});
    if (callback) {
      done.then(callback, callback);
      return;
    }
    return done;
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    this.#closed = true;
    for (const p of this.#pools.values()) p.destroy();
    const cb = typeof a === 'function' ? a : b;
    if (cb) {
      queueMicrotask(cb);
      return;
    }
    return Promise.resolve();
  }
}
