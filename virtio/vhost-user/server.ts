/**
 * A vhost-user back-end listening on a UNIX stream socket (QEMU `-chardev socket,path=...` in
 * client mode connects to it; so does DPDK's virtio_user). One device, one front-end at a time: a
 * second connection while one is active is refused with a logged reason, because the device's
 * queues and memory belong to the front-end that programmed them. When the front-end goes away
 * (or is dropped for a protocol error) the device is reset and the next connection starts clean.
 *
 * Concurrency contract: lives on the event loop of the thread that called listen().
 */
import { EventEmitter } from 'node:events';
import type { RingwireError } from '../../lib/errors.js';
import { FdServer } from '../../lib/native/unix-socket.js';
import { VhostUserConnection } from './connection.js';
import type { VhostUserDevice } from './device.js';
import type { MemoryTableOptions } from './memory-table.js';
import { VHOST_USER_MAX_FDS } from './protocol.js';

export interface VhostUserServerOptions {
  /** Where reasons for dropped connections and broken queues go. Default: stderr. */
  log?: (message: string) => void;
  /** chmod of the socket file. */
  mode?: number;
  /**
   * Accept guest memory whose fds lack F_SEAL_SHRINK (DPDK virtio_user with --no-huge, file-backed
   * memory). Off by default: such a front-end can shrink the file under our mapping and kill this
   * whole process with SIGBUS, so turn it on only for front-ends you trust as much as the process.
   */
  allowUnsealedMemory?: boolean;
}

export interface VhostUserServer {
  on(event: 'connection', listener: (conn: VhostUserConnection) => void): this;
  on(event: 'disconnect', listener: (reason: RingwireError | undefined) => void): this;
  once(event: 'connection', listener: (conn: VhostUserConnection) => void): this;
  once(event: 'disconnect', listener: (reason: RingwireError | undefined) => void): this;
}

export class VhostUserServer extends EventEmitter {
  readonly path: string;
  readonly device: VhostUserDevice;
  readonly #server: FdServer;
  readonly #log: (message: string) => void;
  #active: VhostUserConnection | undefined;

  private constructor(path: string, device: VhostUserDevice, server: FdServer, log: (message: string) => void, memoryOptions: MemoryTableOptions) {
    super();
    this.path = path;
    this.device = device;
    this.#server = server;
    this.#log = log;
    server.on('connection', (sock) => {
      if (this.#active) {
        this.#log(`${path}: refusing a second front-end while one is connected`);
        sock.close();
        return;
      }
      const conn = new VhostUserConnection(sock, device, (m) => this.#log(`${path}: ${m}`), memoryOptions);
      this.#active = conn;
      conn.once('close', (reason) => {
        if (this.#active === conn) this.#active = undefined;
        this.emit('disconnect', reason);
      });
      this.emit('connection', conn);
    });
    // Accept errors (EMFILE) are transient: FdServer retries; keep serving.
    server.on('error', (err) => this.#log(`${path}: ${err.message}`));
  }

  /** Listens on `path` (a stale socket file there is replaced). */
  static listen(path: string, device: VhostUserDevice, options: VhostUserServerOptions = {}): VhostUserServer {
    const log = options.log ?? ((m: string) => console.error(`ringwire vhost-user: ${m}`));
    // 64 KiB chunks hold any legal message; 8 fds is the protocol's limit, more is MSG_CTRUNC.
    const server = FdServer.listen(path, { type: 'stream', maxFds: VHOST_USER_MAX_FDS, ...(options.mode === undefined ? {} : { mode: options.mode }) });
    return new VhostUserServer(path, device, server, log, { allowUnsealedMemory: options.allowUnsealedMemory === true });
  }

  /** The connected front-end, if any. */
  get connection(): VhostUserConnection | undefined {
    return this.#active;
  }

  /** Stops listening and drops the front-end. */
  close(): void {
    this.#server.close();
    this.#active?.close();
  }
}
