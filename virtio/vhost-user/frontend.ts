/**
 * A minimal vhost-user front-end: the QEMU side of the protocol, for tests, benchmarks and host
 * processes that want to drive a back-end without a VM. It sends requests over a UNIX stream
 * socket with their fds and waits for the replies the protocol defines (GET_* and, with need_reply,
 * the REPLY_ACK status). Guest memory is whatever memfd-backed Regions the caller shares.
 *
 * Concurrency contract: one request at a time per front-end (each call awaits its reply before the
 * next is sent, as QEMU does); lives on the event loop of the thread that connected it.
 */
import { ringwireError } from '../../lib/errors.js';
import { FdSocket } from '../../lib/native/unix-socket.js';
import { U64Payload, VringStatePayload } from './payloads.js';
import { encodeMessage, VHOST_USER_NEED_REPLY_MASK, VHOST_USER_VERSION, VhostUserParser, VhostUserRequest as R, type VhostUserMessage } from './protocol.js';

/** Requests whose reply is part of the protocol, whatever REPLY_ACK says. */
const HAS_REPLY = new Set<number>([R.GET_FEATURES, R.GET_PROTOCOL_FEATURES, R.GET_VRING_BASE, R.GET_QUEUE_NUM, R.GET_CONFIG, R.GET_MAX_MEM_SLOTS, R.GET_STATUS]);

export class VhostUserFrontend {
  readonly #socket: FdSocket;
  readonly #parser = new VhostUserParser({ expect: 'reply' });
  #waiter: { resolve: (m: VhostUserMessage) => void; reject: (e: Error) => void } | undefined;
  #closed: Error | undefined;

  private constructor(socket: FdSocket) {
    this.#socket = socket;
    socket.on('message', (data, fds) => {
      try {
        this.#parser.push(data, fds);
        for (let m = this.#parser.next(); m; m = this.#parser.next()) this.#deliver(m);
      } catch (err) {
        this.#fail(err as Error);
      }
    });
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(ringwireError('ERR_PEER_GONE', 'the vhost-user back-end closed the connection')));
  }

  static async connect(path: string): Promise<VhostUserFrontend> {
    return new VhostUserFrontend(await FdSocket.connect(path, { type: 'stream' }));
  }

  /** Set when the connection ended; every later call rejects with it. */
  get closed(): Error | undefined {
    return this.#closed;
  }

  /**
   * Sends one request. Resolves with the reply payload for requests that have one, with the
   * REPLY_ACK status payload when `needReply` is set, otherwise undefined once written.
   */
  async request(request: number, payload: Uint8Array = new Uint8Array(0), fds: readonly number[] = [], options: { needReply?: boolean; flags?: number } = {}): Promise<Uint8Array | undefined> {
    if (this.#closed) throw this.#closed;
    const flags = options.flags ?? (VHOST_USER_VERSION | (options.needReply ? VHOST_USER_NEED_REPLY_MASK : 0));
    const expectReply = HAS_REPLY.has(request) || options.needReply === true;
    const reply = expectReply ? this.#nextReply() : undefined;
    this.#socket.send(encodeMessage(request, payload, flags), fds);
    if (!reply) return undefined;
    const m = await reply;
    if (m.request !== request) throw ringwireError('ERR_VHOST_PROTOCOL', `reply to ${R[m.request] ?? m.request}, expected ${R[request]}`);
    return m.payload;
  }

  /** Sends raw bytes (for tests that corrupt the stream). */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): void {
    this.#socket.send(bytes, fds);
  }

  async getU64(request: R.GET_FEATURES | R.GET_PROTOCOL_FEATURES | R.GET_QUEUE_NUM): Promise<bigint> {
    return new U64Payload((await this.request(request))!).value;
  }

  /** A request with a REPLY_ACK; throws ERR_VHOST_PROTOCOL when the back-end reports failure. */
  async requestAck(request: number, payload?: Uint8Array, fds?: readonly number[]): Promise<void> {
    const status = new U64Payload((await this.request(request, payload, fds, { needReply: true }))!).value;
    if (status !== 0n) throw ringwireError('ERR_VHOST_PROTOCOL', `${R[request]} failed with status ${status}`);
  }

  async getVringBase(index: number): Promise<number> {
    return new VringStatePayload((await this.request(R.GET_VRING_BASE, VringStatePayload.encode(index, 0)))!).num;
  }

  close(): void {
    this.#socket.close();
  }

  #nextReply(): Promise<VhostUserMessage> {
    if (this.#waiter) throw ringwireError('ERR_INVALID_ARG', 'one request at a time');
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  #deliver(m: VhostUserMessage): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    if (!w) {
      this.#fail(ringwireError('ERR_VHOST_PROTOCOL', `unsolicited reply ${R[m.request] ?? m.request}`));
      return;
    }
    w.resolve(m);
  }

  #fail(err: Error): void {
    this.#closed ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#closed);
  }
}
