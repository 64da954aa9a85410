/**
 * The ivshmem-server wire protocol as QEMU's ivshmem-doorbell device speaks it
 * (qemu docs/specs/ivshmem-spec.rst, "The ivshmem Client-Server Protocol").
 *
 * The connection is one-way, server to client. Every message is one little-endian signed int64
 * sent by its own sendmsg, optionally with one fd (SCM_RIGHTS). On connect: the version (0); the
 * client's id; -1 with the shared-memory fd; each existing peer's id once per vector with that
 * vector's eventfd; the client's own id once per vector with its eventfds. Later: a peer id with an
 * fd is a join (one message per vector), a peer id without an fd is a leave.
 */
import { ringwireError } from '../errors.js';

export const IVSHMEM_PROTOCOL_VERSION = 0;
/** Ids travel in the Doorbell register's high 16 bits. */
export const IVSHMEM_MAX_ID = 0xffff;
export const IVSHMEM_SHM_MESSAGE = -1;
export const IVSHMEM_MESSAGE_BYTES = 8;
/** PCI ids of QEMU's ivshmem devices (ivshmem-plain and ivshmem-doorbell). */
export const IVSHMEM_VENDOR_ID = 0x1af4;
export const IVSHMEM_DEVICE_ID = 0x1110;

/** BAR0 registers, 4 bytes each (spec: "Register layout"). */
export const IvshmemRegister = { IntrMask: 0, IntrStatus: 4, IVPosition: 8, Doorbell: 12 } as const;
export const IVSHMEM_BAR0_SIZE = 256;

/** Value written to the Doorbell register to ring `vector` of peer `id`. */
export function doorbellValue(id: number, vector: number): number {
  return ((id & 0xffff) << 16) | (vector & 0xffff);
}

export function encodeMessage(value: number): Uint8Array {
  const b = new Uint8Array(IVSHMEM_MESSAGE_BYTES);
  new DataView(b.buffer).setBigInt64(0, BigInt(value), true);
  return b;
}

export interface IvshmemMessage {
  /** The int64, as a number when it fits in 53 bits, else NaN (no valid message is that large). */
  value: number;
  /** The fd that came with it, owned by the receiver; -1 when none. */
  fd: number;
}

/**
 * Frames the stream into 8-byte messages. A stream recvmsg that returns fds ends inside the data
 * sent with them (docs/virtio.md, "fd attribution"), so a chunk's fds belong to the message that
 * holds its last byte. More than one fd for one message is a protocol error; the extra fds and the
 * whole chunk's fds on error are handed back to the caller to close.
 */
export class MessageReader {
  #partial = new Uint8Array(IVSHMEM_MESSAGE_BYTES);
  #have = 0;

  /** Returns the complete messages in `chunk`; throws ERR_IVSHMEM_PROTOCOL (fds still the caller's) on misuse. */
  push(chunk: Uint8Array, fds: readonly number[]): IvshmemMessage[] {
    const out: IvshmemMessage[] = [];
    if (fds.length > 1) throw ringwireError('ERR_IVSHMEM_PROTOCOL', `${fds.length} fds arrived with one message; the protocol carries at most one`);
    if (chunk.length === 0 && fds.length > 0) throw ringwireError('ERR_IVSHMEM_PROTOCOL', 'an fd arrived without data');
    let i = 0;
    while (i < chunk.length) {
      const take = Math.min(IVSHMEM_MESSAGE_BYTES - this.#have, chunk.length - i);
      this.#partial.set(chunk.subarray(i, i + take), this.#have);
      this.#have += take;
      i += take;
      if (this.#have < IVSHMEM_MESSAGE_BYTES) break;
      this.#have = 0;
      const big = new DataView(this.#partial.buffer).getBigInt64(0, true);
      const value = big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : NaN;
      out.push({ value, fd: -1 });
    }
    if (fds.length === 1) {
      const last = out[out.length - 1];
      if (!last || this.#have !== 0) throw ringwireError('ERR_IVSHMEM_PROTOCOL', 'an fd arrived with an incomplete message');
      last.fd = fds[0]!;
    }
    return out;
  }
}
