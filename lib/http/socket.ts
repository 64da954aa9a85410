/**
 * ExchangeSocket: what `req.socket` / `res.socket` are for one exchange. Node's IncomingMessage
 * and ServerResponse (and the frameworks above them) only touch a small part of net.Socket: the
 * addresses, `readable`/`writable`/`destroyed`, `resume()` (a request body is being read),
 * `destroy()` (abort), cork/uncork, the writable-state counters and 'close'. This object supplies
 * exactly that, per exchange, so `req.socket.remoteAddress` reads as Node users expect without a
 * stream per request. It is an EventEmitter, not a stream: it carries no bytes.
 */
import { EventEmitter } from 'node:events';
import type { Channel } from '../channel/channel.js';

export interface SocketHooks {
  /** The request body is being read: return the credit of what was taken. */
  resume(): void;
  /** destroy() from Node or the handler: abort the exchange. */
  destroy(err: Error | undefined): void;
  /** Bytes accepted for the response and not yet in the ring. */
  writableLength(): number;
}

export class ExchangeSocket extends EventEmitter {
  readonly remoteAddress: string;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string;
  readonly localAddress: string;
  readonly localPort: number | undefined;
  readonly encrypted = undefined;
  readonly connecting = false;
  readonly writableHighWaterMark = 16384;
  readonly readableHighWaterMark = 16384;
  readable = true;
  writable = true;
  destroyed = false;
  /** Read by Node's readStart(): a paused socket is not resumed by req._read(). */
  _paused = false;
  /** The response currently using this socket (Node's http sets and reads it). */
  _httpMessage: unknown = null;
  /** What stream.finished() and OutgoingMessage.end() look at. */
  _writableState = { corked: 0, closed: false, finished: false, ended: false, errored: null as Error | null, length: 0 };
  bytesWritten = 0;
  bytesRead = 0;
  #hooks: SocketHooks;

  constructor(channel: Channel, hooks: SocketHooks) {
    super();
    this.#hooks = hooks;
    this.remoteAddress = channel.remoteAddress;
    this.remotePort = channel.remotePort;
    this.remoteFamily = channel.transport === 'tcp' ? (channel.remoteAddress.includes(':') ? 'IPv6' : 'IPv4') : 'ringwire';
    this.localAddress = channel.localAddress;
    this.localPort = channel.localPort;
  }

  get writableLength(): number {
    return this.#hooks.writableLength();
  }

  get writableCorked(): number {
    return 0;
  }

  get writableFinished(): boolean {
    return this._writableState.finished;
  }

  get readyState(): string {
    return this.destroyed ? 'closed' : 'open';
  }

  address(): { address: string; family: string; port: number | undefined } {
    return { address: this.localAddress, family: this.remoteFamily, port: this.localPort };
  }

  resume(): this {
    this.#hooks.resume();
    return this;
  }

  pause(): this {
    return this;
  }

  cork(): void {}

  uncork(): void {}

  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  /** Bytes never go through here: the response is framed by the exchange. */
  write(_chunk: unknown, _enc?: unknown, cb?: unknown): boolean {
    if (typeof cb === 'function') process.nextTick(cb as () => void);
    return true;
  }

  end(): this {
    return this;
  }

  destroySoon(): void {}

  /** Aborts the exchange (Node calls this from req.destroy() and res.destroy()). */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.#close();
    this.#hooks.destroy(err);
    return this;
  }

  /** The exchange ended or was aborted from the other side: 'close' as a socket would. */
  closeQuietly(): void {
    if (this.destroyed) return;
    this.#close();
  }

  #close(): void {
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    this._writableState.closed = true;
    process.nextTick(() => this.emit('close', false));
  }
}
