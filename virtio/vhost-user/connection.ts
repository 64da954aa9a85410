/**
 * The wire layer of a vhost-user back-end: one front-end connection on a UNIX stream socket.
 * Reads bytes and fds, frames them with VhostUserParser, hands each message to the state layer,
 * and writes its reply (flags 0x5) or, when the front-end set need_reply and REPLY_ACK was
 * negotiated, the u64 status (vhost-user.rst, "Communication" and "REPLY_ACK").
 *
 * Failure policy: any malformed or unsupported message ends the connection with a logged reason;
 * the state layer then releases every fd and mapping and the device is reset, so the front-end can
 * reconnect to a clean back-end. Nothing a front-end sends can throw past this class.
 *
 * Concurrency contract: lives on the event loop of the thread that accepted the socket.
 */
import { EventEmitter } from 'node:events';
import { isRingwireError, ringwireError, type RingwireError } from '../../lib/errors.js';
import type { FdSocket } from '../../lib/native/unix-socket.js';
import type { VhostUserDevice } from './device.js';
import { closeQuietly, type MemoryTableOptions } from './memory-table.js';
import { encodeReply, encodeReplyAck, needsReply, VhostUserParser } from './protocol.js';
import { VhostUserBackendState } from './state.js';

export interface VhostUserConnection {
  on(event: 'close', listener: (reason: RingwireError | undefined) => void): this;
  once(event: 'close', listener: (reason: RingwireError | undefined) => void): this;
}

export class VhostUserConnection extends EventEmitter {
  readonly state: VhostUserBackendState;
  readonly #socket: FdSocket;
  readonly #parser = new VhostUserParser();
  readonly #log: (message: string) => void;
  #closed = false;
  #reason: RingwireError | undefined;

  constructor(socket: FdSocket, device: VhostUserDevice, log: (message: string) => void, memoryOptions: MemoryTableOptions = {}) {
    super();
    this.#socket = socket;
    this.#log = log;
    this.state = new VhostUserBackendState(device, log, memoryOptions);
    socket.on('message', (data, fds) => this.#onData(data, fds));
    socket.on('error', (err) => {
      this.#reason ??= err;
      this.#log(`dropping the front-end: ${err.message}`);
    });
    socket.on('close', () => this.#teardown());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Drops the connection, logging `reason`. Idempotent. */
  close(reason?: string): void {
    if (this.#closed) return;
    if (reason) {
      this.#reason ??= ringwireError('ERR_VHOST_PROTOCOL', reason);
      this.#log(`dropping the front-end: ${reason}`);
    }
    this.#socket.close();
    this.#teardown();
  }

  #onData(data: Buffer, fds: number[]): void {
    if (this.#closed) {
      for (const fd of fds) closeQuietly(fd);
      return;
    }
    try {
      this.#parser.push(data, fds);
      for (let msg = this.#parser.next(); msg && !this.#closed; msg = this.#parser.next()) {
        let reply: Uint8Array | undefined;
        try {
          reply = this.state.handle(msg);
        } catch (err) {
          // Tell a front-end that waits for the status why it is about to lose us.
          if (needsReply(msg.flags) && this.state.replyAck) this.#socket.send(encodeReplyAck(msg.request, false));
          throw err;
        }
        if (reply) this.#socket.send(encodeReply(msg.request, reply));
        else if (needsReply(msg.flags) && this.state.replyAck) this.#socket.send(encodeReplyAck(msg.request, true));
      }
    } catch (err) {
      const why = isRingwireError(err) ? err.message : `internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`;
      this.close(why);
    }
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#parser.takeFds()) closeQuietly(fd);
    try {
      this.state.close();
    } catch (err) {
      this.#log(`releasing the connection's state failed: ${(err as Error).message}`);
    }
    const reason = this.#reason;
    process.nextTick(() => this.emit('close', reason));
  }
}
