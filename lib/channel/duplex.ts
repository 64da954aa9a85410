/**
 * ChannelDuplex: a stream.Duplex over a Channel that stands in for a net.Socket, so protocols
 * written for sockets (node:http, node:http2, ...) run over ringwire unmodified:
 *
 *   httpServer.emit('connection', createDuplex(channel))                     // server side
 *   http.request({ createConnection: () => createDuplex(channel), ... })     // client side
 *
 * Bytes written are cut into messages of at most the channel's maxMessageSize; end() is the
 * channel's half-close; back-pressure both ways is the rings' (a full ring holds write callbacks,
 * a full read buffer pauses the channel). setNoDelay/setKeepAlive/ref/unref are accepted no-ops (a
 * ring has no Nagle or keep-alive probes); setTimeout is a real idle timer.
 */
import type { Agent } from 'node:http';
import { Duplex } from 'node:stream';
import type { Channel } from './channel.js';
import { connect, type ConnectOptions } from './connect.js';

export interface DuplexOptions {
  /** As net.Socket: keep the writable side open after the peer ended. Default false. */
  allowHalfOpen?: boolean;
}

export class ChannelDuplex extends Duplex {
  readonly channel: Channel;
  bytesRead = 0;
  #bytesWritten = 0;
  #idleMs = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  readonly connecting = false;
  readonly pending = false;

  constructor(channel: Channel, opts: DuplexOptions = {}) {
    super({ allowHalfOpen: opts.allowHalfOpen ?? false, decodeStrings: true });
    this.channel = channel;
    channel.on('message', (data) => {
      this.bytesRead += data.length;
      this.#touch();
      if (!this.push(Buffer.from(data))) channel.pause();
    });
    channel.on('end', () => this.push(null));
    // A peer that went away (destroy() without end(), or a process that died) is what a socket
    // sees as FIN: 'end', then 'close' once this side ends too, and no 'error'. Only a broken
    // ring or a local failure is an error.
    channel.on('close', (err) => {
      if (err && err.code !== 'ERR_PEER_GONE') this.destroy(err);
      else if (!this.readableEnded) this.push(null);
    });
  }

  override _read(): void {
    this.channel.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#touch();
    const max = this.channel.maxMessageSize;
    let off = 0;
    try {
      while (off < chunk.length) {
        const piece = chunk.subarray(off, Math.min(off + max, chunk.length));
        if (!this.channel.trySend(piece)) break;
        off += piece.length;
      }
    } catch (err) {
      cb(err as Error);
      return;
    }
    this.#bytesWritten += off;
    if (off === chunk.length) {
      cb();
      return;
    }
    void this.#writeSlow(chunk.subarray(off), cb);
  }

  /** Chunks queued while a write waited are coalesced into as few messages as fit. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this._write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), 'buffer' as BufferEncoding, cb);
  }

  async #writeSlow(rest: Buffer, cb: (err?: Error | null) => void): Promise<void> {
    const max = this.channel.maxMessageSize;
    try {
      for (let off = 0; off < rest.length; off += max) {
        const piece = rest.subarray(off, Math.min(off + max, rest.length));
        await this.channel.send(piece);
        this.#bytesWritten += piece.length;
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.channel.end().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    clearTimeout(this.#idleTimer);
    if (!this.channel.closed) this.channel.destroy();
    cb(err);
  }

  #touch(): void {
    if (this.#idleMs > 0) this.#idleTimer?.refresh();
  }

  // ---- the parts of net.Socket that protocol stacks call ----

  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  get remoteAddress(): string {
    return this.channel.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.channel.remotePort;
  }

  get remoteFamily(): string {
    return this.channel.transport === 'tcp' ? (this.channel.remoteAddress.includes(':') ? 'IPv6' : 'IPv4') : 'ringwire';
  }

  get localAddress(): string {
    return this.channel.localAddress;
  }

  get localPort(): number | undefined {
    return this.channel.localPort;
  }

  address(): { address: string; family: string; port: number | undefined } {
    return { address: this.localAddress, family: this.remoteFamily, port: this.localPort };
  }

  get readyState(): 'open' | 'readOnly' | 'writeOnly' | 'closed' {
    if (this.destroyed) return 'closed';
    const r = !this.readableEnded;
    const w = !this.writableEnded;
    return r && w ? 'open' : r ? 'readOnly' : w ? 'writeOnly' : 'closed';
  }

  /** Calls back with 'timeout' after `ms` without reads or writes; 0 disables (as net.Socket). */
  setTimeout(ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#idleMs = ms;
    if (ms > 0) {
      this.#idleTimer = setTimeout(() => this.emit('timeout'), ms);
      this.#idleTimer.unref();
    }
    return this;
  }

  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  setKeepAlive(_enable?: boolean, _delay?: number): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  destroySoon(): void {
    this.end();
  }
}

export function createDuplex(channel: Channel, opts?: DuplexOptions): ChannelDuplex {
  return new ChannelDuplex(channel, opts);
}

/**
 * An http.Agent's `createConnection` that opens a ringwire channel per socket the agent wants:
 * `agent.createConnection = agentConnection(address)`. Typed as Node's own, so it compiles under
 * `--strict` (the Duplex arrives through the callback; nothing is returned synchronously).
 */
export function agentConnection(address: string, opts: ConnectOptions & DuplexOptions = {}): Agent['createConnection'] {
  return (_options, callback) => {
    connect(address, opts).then(
      (channel) => callback?.(null, createDuplex(channel, opts)),
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  };
}
