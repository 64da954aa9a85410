/**
 * The server side of the HTTP record mapping (docs/http.md): each exchange arriving on a channel
 * becomes a real `http.IncomingMessage` and `http.ServerResponse`, handed to unmodified
 * `(req, res)` listeners (Express, Fastify's serverFactory, plain handlers).
 *
 * The response is a genuine ServerResponse (so `instanceof`, Express's prototype swap and every
 * header method behave as Node's), with the few methods that would write HTTP/1 bytes replaced on
 * the instance: `_storeHeader` keeps the status and fields instead of formatting a head, `_send`
 * queues body bytes, `_finish` ends the body, `addTrailers` keeps fields, `_writeRaw` drops the
 * interim (1xx) heads this mapping does not carry. The request is a genuine IncomingMessage fed
 * by push().
 *
 * Concurrency contract: everything runs on the thread that owns the channels.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { Channel } from '../channel/channel.js';
import { listen, type ChannelServer, type ServerOptions } from '../channel/server.js';
import { ringwireError, type RingwireError } from '../errors.js';
import { Inflow, Outflow, OUTFLOW_HIGH_WATER } from './flow.js';
import { ExchangeSocket } from './socket.js';
import {
  FRAME_HEADER, Flag, FrameType, ResetCode, decodeFields, decodeRequestHead, decodeU32, encodeReset,
  encodeResponseHead, encodeTrailers, readFrame, type FieldList,
} from './wire.js';

export interface HttpServerOptions {
  /** Largest request head block in bytes (method, path and fields); larger gets 431. Default 16 KiB, as Node's. */
  maxHeaderSize?: number;
  /** Largest request body in bytes; a larger content-length gets 413, a longer body a reset. Default: no limit (as Node). */
  maxBodySize?: number;
  /** Options of the channel listener serveHttp()/listen() creates. */
  channel?: ServerOptions;
}

export type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const DEFAULT_MAX_HEADER_SIZE = 16 * 1024;

/** Node's internal symbols for a response's header store and its need-drain flag, found once. */
const probe = new http.ServerResponse(new http.IncomingMessage(null as never));
const kOutHeaders = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kOutHeaders');
const kNeedDrain = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kNeedDrain');
const protoFinish = (http.ServerResponse.prototype as unknown as { _finish: (this: http.ServerResponse) => void })._finish;

let cachedDate = '';
let cachedDateAt = 0;
function utcDate(): string {
  const now = Date.now();
  if (now - cachedDateAt >= 1000 || cachedDate === '') {
    cachedDateAt = now - (now % 1000);
    cachedDate = new Date(now).toUTCString();
  }
  return cachedDate;
}

/** Connection-specific fields of HTTP/1 that mean nothing on a ring (as HTTP/2 drops them). */
function isHopByHop(lower: string): boolean {
  return lower === 'connection' || lower === 'keep-alive' || lower === 'transfer-encoding' || lower === 'upgrade' || lower === 'proxy-connection';
}

function pushField(out: FieldList, name: string, value: unknown, validate: boolean): void {
  if (Array.isArray(value)) {
    for (const v of value) pushField(out, name, v, validate);
    return;
  }
  const v = String(value);
  if (validate) {
    http.validateHeaderName(name);
    http.validateHeaderValue(name, v);
  }
  out.push(name, v);
}

/** The header shapes ServerResponse hands _storeHeader: its own store, an object, flat or paired arrays. */
function collectFields(res: http.ServerResponse, headers: unknown): FieldList {
  const out: FieldList = [];
  if (!headers) return out;
  if (kOutHeaders && headers === (res as unknown as Record<symbol, unknown>)[kOutHeaders]) {
    for (const key in headers as Record<string, [string, unknown]>) {
      const entry = (headers as Record<string, [string, unknown]>)[key]!;
      pushField(out, entry[0], entry[1], false);
    }
  } else if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const [k, v] of headers as Array<[string, unknown]>) pushField(out, k, v, true);
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) pushField(out, headers[i] as string, headers[i + 1], true);
    }
  } else {
    for (const key of Object.keys(headers as object)) pushField(out, key, (headers as Record<string, unknown>)[key], true);
  }
  return out;
}

interface ResponseInternals {
  _header: string | null;
  _headerSent: boolean;
  _hasBody: boolean;
  _contentLength: number | null;
  chunkedEncoding: boolean;
  sendDate: boolean;
  finished: boolean;
  _closed: boolean;
  destroyed: boolean;
}

type Done = (err?: Error | null) => void;
type AddHeaderLines = { _addHeaderLines(fields: string[], n: number): void };

/** One exchange: its request, response, pseudo-socket and the two flows of body bytes. */
class ServerExchange {
  readonly id: number;
  readonly conn: ServerConnection;
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly socket: ExchangeSocket;
  readonly inflow: Inflow;
  readonly outflow: Outflow;
  /** Declared content-length of the request body, or -1. */
  declaredLength = -1;
  receivedLength = 0;
  /** The client sent Flag.End (or trailers): no more request frames. */
  requestDone = false;
  /** Request body bytes pushed into req while it was over its high-water mark: credited on resume(). */
  unconsumed = 0;
  /** The response's End is in the ring (or the channel's queue). */
  responseDone = false;
  reset = false;
  // Response frames gathered within one tick, so `res.end(body)` costs two records, not three.
  #headFields: FieldList | null = null;
  #status = 200;
  #reason = '';
  #chunks: Buffer[] = [];
  #chunkBytes = 0;
  #callbacks: Done[] = [];
  #ending = false;
  #trailers: FieldList | null = null;
  #flushScheduled = false;
  /** The response's end was handed to the outflow (it is in the ring once `responseDone`). */
  #endQueued = false;

  constructor(conn: ServerConnection, id: number, method: string, path: string, fields: string[]) {
    this.id = id;
    this.conn = conn;
    const channel = conn.channel;
    this.inflow = new Inflow(channel, id);
    this.outflow = new Outflow(channel, id, () => this.#drained(), (err) => this.abort(err, false));
    this.socket = new ExchangeSocket(channel, {
      resume: () => this.#resumed(),
      destroy: (err) => this.#destroyedLocally(err),
      writableLength: () => this.outflow.length,
    });
    const req = new http.IncomingMessage(this.socket as never);
    req.method = method;
    req.url = path;
    req.httpVersionMajor = 1;
    req.httpVersionMinor = 1;
    req.httpVersion = '1.1';
    // What Node's parser calls: sets rawHeaders and the count the lazy `headers` getter reads.
    (req as unknown as AddHeaderLines)._addHeaderLines(fields, fields.length);
    this.req = req;
    const res = new http.ServerResponse(req);
    this.res = res;
    this.#patch(res);
    res.assignSocket(this.socket as never);
    this.#onFinish();
  }

  /** Replaces, on this instance only, the ServerResponse methods that would write HTTP/1 bytes. */
  #patch(res: http.ServerResponse): void {
    const self = this;
    const r = res as unknown as Record<string, unknown>;
    r._storeHeader = function (this: http.ServerResponse & ResponseInternals, _firstLine: string, headers: unknown): void {
      const fields = collectFields(this, headers);
      let hasLength = false;
      let hasDate = false;
      for (let i = fields.length - 2; i >= 0; i -= 2) {
        const lower = fields[i]!.toLowerCase();
        if (lower === 'content-length') hasLength = true;
        else if (lower === 'date') hasDate = true;
        else if (isHopByHop(lower)) fields.splice(i, 2);
      }
      if (!hasLength && this._hasBody && typeof this._contentLength === 'number') fields.push('content-length', String(this._contentLength));
      if (!hasDate && this.sendDate) fields.push('date', utcDate());
      self.#status = this.statusCode;
      self.#reason = this.statusMessage ?? '';
      self.#headFields = fields;
      this._header = _firstLine || 'ringwire';
      this._headerSent = false;
      this.chunkedEncoding = false;
    };
    r._send = function (this: http.ServerResponse & ResponseInternals, data: string | Uint8Array, encoding: BufferEncoding | null, callback: Done | null): boolean {
      this._headerSent = true;
      if (data.length > 0) {
        const chunk = typeof data === 'string' ? Buffer.from(data, encoding ?? 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        self.#chunks.push(chunk);
        self.#chunkBytes += chunk.length;
      }
      if (typeof callback === 'function') self.#callbacks.push(callback);
      if (self.#chunkBytes >= OUTFLOW_HIGH_WATER) self.#flush();
      else self.#scheduleFlush();
      return self.outflow.writable();
    };
    r._writeRaw = function (_data: unknown, _enc: unknown, callback: unknown): boolean {
      if (typeof callback === 'function') process.nextTick(callback as () => void);
      return true;
    };
    r._finish = function (this: http.ServerResponse): void {
      self.#ending = true;
      self.#scheduleFlush();
      protoFinish.call(this);
    };
    r.addTrailers = function (headers: Record<string, unknown> | Array<[string, unknown]>): void {
      const fields: FieldList = [];
      const entries = Array.isArray(headers) ? headers : Object.entries(headers);
      for (const [k, v] of entries) pushField(fields, k, v, true);
      self.#trailers = fields;
    };
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => this.#flush());
  }

  /** Writes what the response produced this tick: head, body bytes, end (with trailers). */
  #flush(): void {
    this.#flushScheduled = false;
    if (this.reset) {
      const cbs = this.#callbacks;
      this.#callbacks = [];
      const err = ringwireError('ERR_HTTP_RESET', 'the exchange was aborted');
      for (const cb of cbs) cb(err);
      return;
    }
    const ending = this.#ending && !this.#endQueued;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#chunkBytes = 0;
    if (this.responseDone || (!ending && chunks.length === 0 && !this.#headFields && this.#callbacks.length === 0)) return;
    if (ending) this.#endQueued = true;
    const cbs = this.#callbacks;
    this.#callbacks = [];
    const userDone: Done | undefined = cbs.length === 0 ? undefined : cbs.length === 1 ? cbs[0] : (err) => { for (const cb of cbs) cb(err); };
    // The exchange is forgotten only once its end is in the ring: Window frames for it still matter until then.
    const done: Done | undefined = !ending ? userDone : (err) => { if (!err) this.#responseEnded(); userDone?.(err); };
    const trailers = ending ? this.#trailers : null;
    if (this.#headFields) {
      const endInHead = ending && chunks.length === 0 && !trailers;
      const head = encodeResponseHead(this.id, endInHead ? Flag.End : 0, this.#status, this.#reason, this.#headFields);
      this.#headFields = null;
      if (!head) {
        this.abort(ringwireError('ERR_HTTP_HEADERS_TOO_LARGE', 'a response header field is over its length limit'), true);
        done?.(ringwireError('ERR_HTTP_HEADERS_TOO_LARGE', 'a response header field is over its length limit'));
        return;
      }
      this.outflow.frame(head, endInHead ? done : undefined);
      if (endInHead) return;
    }
    if (chunks.length > 0 || (ending && !trailers)) {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      this.outflow.write(body, ending && !trailers, trailers ? undefined : done);
    }
    if (trailers) {
      const frame = encodeTrailers(this.id, trailers);
      if (frame) this.outflow.frame(frame, done);
      else this.abort(ringwireError('ERR_HTTP_HEADERS_TOO_LARGE', 'a trailer field is over its length limit'), true);
    } else if (!ending && chunks.length === 0) {
      done?.();
    }
  }

  #responseEnded(): void {
    if (this.responseDone) return;
    this.responseDone = true;
    this.conn.maybeRetire(this);
  }

  /** As Node's server does once a response is finished: the socket is let go and 'close' follows. */
  #onFinish(): void {
    const res = this.res as http.ServerResponse & ResponseInternals;
    res.once('finish', () => {
      const req = this.req as http.IncomingMessage & { _consuming: boolean; _dump(): void };
      if (!req._consuming && !req.readableFlowing) req._dump();
      res.detachSocket(this.socket as never);
      process.nextTick(() => {
        if (res._closed) return;
        res._closed = true;
        res.destroyed = true;
        res.emit('close');
      });
    });
  }

  #drained(): void {
    const res = this.res as unknown as Record<symbol, unknown>;
    if (kNeedDrain && res[kNeedDrain]) {
      res[kNeedDrain] = false;
      this.res.emit('drain');
    } else if (!kNeedDrain) {
      this.res.emit('drain');
    }
  }

  #resumed(): void {
    if (this.unconsumed > 0) {
      const n = this.unconsumed;
      this.unconsumed = 0;
      this.inflow.consumed(n);
    }
  }

  /** Body bytes from the client. */
  data(view: Uint8Array, start: number, end: boolean): void {
    const n = view.length - start;
    if (!this.inflow.received(n)) {
      this.conn.protocolError(this, 'a Data frame overran the credit it was given');
      return;
    }
    this.receivedLength += n;
    const max = this.conn.server.maxBodySize;
    if (this.receivedLength > max || (this.declaredLength >= 0 && this.receivedLength > this.declaredLength)) {
      this.#badBody(this.receivedLength > max ? 413 : 400, `request body longer than ${this.receivedLength > max ? 'the limit' : 'its content-length'}`);
      return;
    }
    const req = this.req;
    if (n > 0) {
      if (req.destroyed) this.inflow.consumed(n);
      else if (req.push(Buffer.from(view.subarray(start)))) this.inflow.consumed(n);
      else this.unconsumed += n;
    }
    if (end) this.#requestEnded(null);
  }

  trailers(buf: Buffer, start: number): void {
    const fields = decodeFields(buf, start, buf.length, false);
    if (!fields) {
      this.conn.protocolError(this, 'malformed trailers');
      return;
    }
    const req = this.req as http.IncomingMessage & { complete: boolean };
    // With `complete` set, Node's _addHeaderLines files the fields as trailers.
    req.complete = true;
    (req as unknown as AddHeaderLines)._addHeaderLines(fields, fields.length);
    req.complete = false;
    this.#requestEnded(fields);
  }

  #requestEnded(_trailers: string[] | null): void {
    this.requestDone = true;
    if (this.declaredLength >= 0 && this.receivedLength !== this.declaredLength) {
      this.#badBody(400, `request body of ${this.receivedLength} bytes, content-length ${this.declaredLength}`);
      return;
    }
    const req = this.req as http.IncomingMessage & { complete: boolean };
    req.complete = true;
    if (!req.destroyed) req.push(null);
    this.conn.maybeRetire(this);
  }

  /** A body that broke its declared length or the size limit: the handler sees an aborted request, the client a status or a reset. */
  #badBody(status: number, why: string): void {
    const err = ringwireError('ERR_HTTP_BODY_LENGTH', why);
    if (!this.res.headersSent) {
      this.conn.sendStatus(this.id, status);
      this.responseDone = true;
    }
    this.abort(err, !this.responseDone);
  }

  /** The client reset the exchange (or went away): Node's "aborted" request and a closed response. */
  clientGone(code: number, reason: string): void {
    this.abort(Object.assign(new Error('aborted'), { code: 'ECONNRESET', reason, resetCode: code }), false);
  }

  /**
   * Ends the exchange abnormally: pending writes fail, req is destroyed as Node destroys an aborted
   * request, res sees 'close' without 'finish', and the client gets a Reset when `tell`.
   */
  abort(err: Error, tell: boolean): void {
    if (this.reset) return;
    this.reset = true;
    this.outflow.abandon(err);
    this.socket.closeQuietly();
    if (tell) this.conn.sendReset(this.id, ResetCode.Internal, err.message);
    const req = this.req as http.IncomingMessage & { complete: boolean };
    if (!req.complete && !req.destroyed) req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET', cause: err }));
    this.conn.retire(this);
  }

  /** The handler (or Node) destroyed req or res: abort toward the client. */
  #destroyedLocally(err: Error | undefined): void {
    if (this.reset) return;
    this.reset = true;
    this.outflow.abandon(err ?? ringwireError('ERR_HTTP_RESET', 'the response was destroyed'));
    if (!(this.responseDone && this.requestDone)) this.conn.sendReset(this.id, ResetCode.Internal, err?.message ?? 'the server destroyed the response');
    const req = this.req as http.IncomingMessage & { complete: boolean };
    if (!req.complete && !req.destroyed) req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    this.conn.retire(this);
  }

  /** Window frame: credit for the response body. */
  grant(bytes: number): void {
    this.outflow.grant(bytes);
  }
}

/** One channel carrying exchanges. */
class ServerConnection {
  readonly channel: Channel;
  readonly server: HttpServer;
  readonly exchanges = new Map<number, ServerExchange>();
  /** Highest exchange id seen: ids below it that are not live belong to finished exchanges. */
  #lastId = 0;
  protocolErrors = 0;

  constructor(server: HttpServer, channel: Channel) {
    this.server = server;
    this.channel = channel;
    channel.on('message', (view) => this.#frame(view));
    channel.on('close', (err) => this.#closed(err));
  }

  #frame(view: Uint8Array): void {
    const f = readFrame(view);
    if (!f) {
      this.protocolErrors++;
      return;
    }
    const ex = this.exchanges.get(f.id);
    switch (f.type) {
      case FrameType.Headers:
        if (ex || f.id <= this.#lastId) {
          // A second head for a live exchange, or a reused id: out of order.
          if (ex) this.protocolError(ex, 'a second head for one exchange');
          else this.#refuse(f.id, ResetCode.Protocol, 'exchange ids must increase');
          return;
        }
        this.#lastId = f.id;
        this.#head(f.id, f.flags, Buffer.from(view.buffer, view.byteOffset, view.byteLength), f.start);
        return;
      case FrameType.Data:
        if (ex) {
          if (!ex.requestDone) ex.data(view, f.start, (f.flags & Flag.End) !== 0);
          else this.protocolError(ex, 'Data after the end of the request');
        } else if (f.id > this.#lastId) this.#refuse(f.id, ResetCode.Protocol, 'Data before the head');
        return;
      case FrameType.Trailers:
        if (ex) {
          if (!ex.requestDone) ex.trailers(Buffer.from(view.buffer, view.byteOffset, view.byteLength), f.start);
          else this.protocolError(ex, 'Trailers after the end of the request');
        } else if (f.id > this.#lastId) this.#refuse(f.id, ResetCode.Protocol, 'Trailers before the head');
        return;
      case FrameType.Reset: {
        if (!ex) return;
        const code = decodeU32(view, f.start, view.length) ?? ResetCode.Protocol;
        ex.clientGone(code, Buffer.from(view.subarray(f.start + 4)).toString());
        return;
      }
      case FrameType.Window: {
        const n = decodeU32(view, f.start, view.length);
        if (ex && n !== null) ex.grant(n);
        return;
      }
      default:
        if (ex) this.protocolError(ex, `unknown frame type ${f.type}`);
        else this.protocolErrors++;
    }
  }

  #head(id: number, flags: number, view: Buffer, start: number): void {
    const server = this.server;
    if (view.length - start > server.maxHeaderSize) {
      this.sendStatus(id, 431);
      return;
    }
    const head = decodeRequestHead(view, start, view.length);
    if (!head) {
      this.protocolErrors++;
      this.sendStatus(id, 400);
      return;
    }
    if (server.closing) {
      this.#refuse(id, ResetCode.Refused, 'the server is closing');
      return;
    }
    const fields = head.fields;
    const ended = (flags & Flag.End) !== 0;
    let declared = -1;
    let chunked = false;
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]!;
      if (name.length === 14 && name.toLowerCase() === 'content-length') {
        const v = fields[i + 1]!;
        if (!/^\d{1,15}$/.test(v) || (declared >= 0 && Number(v) !== declared)) {
          this.sendStatus(id, 400);
          return;
        }
        declared = Number(v);
      } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
        chunked = true;
      }
    }
    if (declared > server.maxBodySize) {
      this.sendStatus(id, 413);
      return;
    }
    // Body parsers ask "does it have a body?" with content-length or transfer-encoding, as
    // HTTP/1.1 would deliver it: a body of unknown length reads as chunked.
    if (!ended && declared < 0 && !chunked) fields.push('transfer-encoding', 'chunked');
    const ex = new ServerExchange(this, id, head.method, head.path, fields);
    ex.declaredLength = declared;
    this.exchanges.set(id, ex);
    try {
      server.emit('request', ex.req, ex.res);
    } catch (err) {
      server.handlerFailed(err as Error, ex);
    }
    if (ended && !ex.reset) ex.data(new Uint8Array(0), 0, true);
  }

  /** A bare response (400, 413, 431) for an exchange that never reached a handler, or whose body broke its length. */
  sendStatus(id: number, status: number): void {
    const frame = encodeResponseHead(id, Flag.End, status, http.STATUS_CODES[status] ?? '', ['content-length', '0', 'date', utcDate()]);
    this.#send(frame!);
  }

  sendReset(id: number, code: number, reason: string): void {
    this.#send(encodeReset(id, code, reason.slice(0, 200)));
  }

  #refuse(id: number, code: number, reason: string): void {
    this.protocolErrors++;
    this.sendReset(id, code, reason);
  }

  #send(frame: Buffer): void {
    try {
      if (!this.channel.trySend(frame)) this.channel.send(frame).catch(() => {});
    } catch {
      // The channel is closing: its 'close' aborts what is left.
    }
  }

  protocolError(ex: ServerExchange, why: string): void {
    this.protocolErrors++;
    const err = ringwireError('ERR_HTTP_PROTOCOL', why);
    if (!ex.res.headersSent) {
      this.sendStatus(ex.id, 400);
      ex.responseDone = true;
      ex.abort(err, false);
    } else {
      ex.abort(err, true);
    }
  }

  /** Forgets an exchange once both directions are done. */
  maybeRetire(ex: ServerExchange): void {
    if (ex.requestDone && ex.responseDone) this.retire(ex);
  }

  retire(ex: ServerExchange): void {
    if (this.exchanges.get(ex.id) !== ex) return;
    this.exchanges.delete(ex.id);
    if (this.exchanges.size === 0) this.server.connectionIdle(this);
  }

  #closed(err: RingwireError | undefined): void {
    for (const ex of [...this.exchanges.values()]) ex.clientGone(ResetCode.Cancel, err?.message ?? 'the channel closed');
    this.server.connectionClosed(this);
  }
}

export interface HttpServer {
  on(event: 'request', listener: RequestListener): this;
  on(event: 'listening' | 'close', listener: () => void): this;
  on(event: 'connection', listener: (channel: Channel) => void): this;
  on(event: 'requestError', listener: (err: Error, req: http.IncomingMessage, res: http.ServerResponse) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

/**
 * net/http.Server's shape for HTTP over ringwire: 'request' listeners get (req, res);
 * listen(address) binds a channel listener; attach(channel) serves a channel obtained elsewhere
 * (the agent, an inproc pair). Works as Fastify's serverFactory result.
 */
export class HttpServer extends EventEmitter {
  readonly maxHeaderSize: number;
  readonly maxBodySize: number;
  readonly #channelOptions: ServerOptions;
  #listener: ChannelServer | undefined;
  #address: string | null = null;
  #connections = new Set<ServerConnection>();
  closing = false;
  // Node's http.Server timeouts: accepted for compatibility (Fastify sets them); a ring has no idle sockets to time out.
  keepAliveTimeout = 5000;
  requestTimeout = 300_000;
  headersTimeout = 60_000;
  timeout = 0;
  maxRequestsPerSocket = 0;

  constructor(handler?: RequestListener, opts: HttpServerOptions = {}) {
    super();
    const maxHeaderSize = opts.maxHeaderSize ?? DEFAULT_MAX_HEADER_SIZE;
    if (!Number.isInteger(maxHeaderSize) || maxHeaderSize < 256) throw ringwireError('ERR_OUT_OF_RANGE', `maxHeaderSize must be an integer >= 256, got ${maxHeaderSize}`);
    const maxBodySize = opts.maxBodySize ?? Number.MAX_SAFE_INTEGER;
    if (!(maxBodySize >= 0)) throw ringwireError('ERR_OUT_OF_RANGE', `maxBodySize must be >= 0, got ${maxBodySize}`);
    this.maxHeaderSize = maxHeaderSize;
    this.maxBodySize = maxBodySize;
    this.#channelOptions = opts.channel ?? {};
    if (handler) this.on('request', handler);
  }

  get listening(): boolean {
    return this.#listener !== undefined;
  }

  /** Live channels. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Exchanges in progress on all channels (requests still being read or answered). */
  get pendingRequests(): number {
    let n = 0;
    for (const c of this.#connections) n += c.exchanges.size;
    return n;
  }

  /** Frames refused as malformed or out of order since start. */
  get protocolErrors(): number {
    let n = this.#closedProtocolErrors;
    for (const c of this.#connections) n += c.protocolErrors;
    return n;
  }

  #closedProtocolErrors = 0;

  /**
   * Binds a ringwire address (UNIX path, '@abstract', 'inproc://name', 'tcp://host:port'). Also
   * takes net.Server's `{ path }` object (what Fastify's listen({ path }) passes). Emits 'listening'.
   */
  listen(address: string | { path?: string; port?: number }, cb?: () => void): this {
    const target = typeof address === 'string' ? address : address?.path;
    if (typeof target !== 'string') {
      process.nextTick(() => this.emit('error', ringwireError('ERR_INVALID_ARG', 'listen() needs a ringwire address (string, or { path })')));
      return this;
    }
    listen(target, this.#channelOptions, (channel) => this.attach(channel)).then((server) => {
      this.#listener = server;
      this.#address = server.address;
      this.closing = false;
      cb?.();
      this.emit('listening');
    }, (err: Error) => this.emit('error', err));
    return this;
  }

  address(): string | null {
    return this.#address;
  }

  /** Serves HTTP exchanges on a channel connected by other means. */
  attach(channel: Channel): void {
    const conn = new ServerConnection(this, channel);
    this.#connections.add(conn);
    this.emit('connection', channel);
  }

  /** Stops accepting; open channels end once their exchanges finish. 'close' fires when all are gone. */
  close(cb?: (err?: Error) => void): this {
    this.closing = true;
    const listener = this.#listener;
    this.#listener = undefined;
    this.#address = null;
    const stopped = listener ? listener.close() : Promise.resolve();
    for (const c of this.#connections) if (c.exchanges.size === 0) void c.channel.close();
    stopped.then(() => this.#maybeClosed(cb), (err: Error) => cb?.(err));
    return this;
  }

  #closeWaiters: Array<(err?: Error) => void> = [];

  #maybeClosed(cb?: (err?: Error) => void): void {
    if (cb) this.#closeWaiters.push(cb);
    if (!this.closing || this.#listener || this.#connections.size > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
    this.emit('close');
  }

  /** Destroys every channel at once (their exchanges abort). */
  closeAllConnections(): void {
    for (const c of [...this.#connections]) c.channel.destroy();
  }

  /** Ends the channels that have no exchange in progress. */
  closeIdleConnections(): void {
    for (const c of this.#connections) if (c.exchanges.size === 0) void c.channel.close();
  }

  maxHeadersCount: number | null = null;

  getConnections(cb: (err: Error | null, count: number) => void): this {
    process.nextTick(cb, null, this.#connections.size);
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  setTimeout(ms?: number, cb?: () => void): this {
    if (typeof ms === 'number') this.timeout = ms;
    if (cb) this.on('timeout', cb);
    return this;
  }

  /** @internal */
  connectionIdle(conn: ServerConnection): void {
    if (this.closing) void conn.channel.close();
  }

  /** @internal */
  connectionClosed(conn: ServerConnection): void {
    if (!this.#connections.delete(conn)) return;
    this.#closedProtocolErrors += conn.protocolErrors;
    if (this.closing) this.#maybeClosed();
  }

  /**
   * A 'request' listener threw. Node's own server would crash the process; a ring server answers
   * 500 (or resets the exchange if the head already left), reports the error on 'requestError'
   * and keeps serving. Without a 'requestError' listener the error becomes a process warning.
   */
  handlerFailed(err: Error, ex: ServerExchange): void {
    if (!ex.res.headersSent && !ex.reset) {
      ex.res.statusCode = 500;
      ex.res.end();
    } else {
      ex.abort(err, true);
    }
    if (this.listenerCount('requestError') > 0) this.emit('requestError', err, ex.req, ex.res);
    else process.emitWarning(err);
  }
}

/** An HttpServer that is not listening yet (http.createServer's shape); use as Fastify's serverFactory. */
export function createHttpServer(handler?: RequestListener, opts?: HttpServerOptions): HttpServer {
  return new HttpServer(handler, opts);
}

/**
 * Fastify's `serverFactory`: `Fastify({ serverFactory: httpServerFactory() })`, then
 * `fastify.listen({ path: '<ringwire address>' })`. Typed as http.Server because Fastify's types
 * ask for one: the HttpServer has the members Fastify and its plugins use (listen, close,
 * address, the timeouts, closeAllConnections, closeIdleConnections, getConnections), not the
 * socket-level ones (a ring has no sockets to count or time out).
 */
export function httpServerFactory(opts?: HttpServerOptions): (handler: RequestListener) => http.Server {
  return (handler) => new HttpServer(handler, opts) as unknown as http.Server;
}

/** Serves `handler` on a ringwire address (listening once the promise resolves), or on a ChannelServer's channels. */
export async function serveHttp(address: string | ChannelServer, handler: RequestListener, opts: HttpServerOptions = {}): Promise<HttpServer> {
  const server = new HttpServer(handler, opts);
  if (typeof address === 'string') {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address, () => { server.off('error', reject); resolve(); });
    });
  } else {
    address.on('connection', (channel: Channel) => server.attach(channel));
  }
  return server;
}
