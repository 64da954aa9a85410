/**
 * The state layer of a vhost-user back-end: feature and protocol-feature negotiation, ownership,
 * the guest memory table and the vrings (vhost-user.rst, "Front-end message types" and "Ring
 * states"; https://www.qemu.org/docs/master/interop/vhost-user.html). It gets whole messages from
 * the wire layer and returns the reply payload, if the request has one; it never touches the
 * socket. Anything malformed or out of order throws ERR_VHOST_PROTOCOL: the wire layer then drops
 * the connection, and close() releases every fd and mapping.
 *
 * Fd ownership: handle() owns msg.fds from the moment it is called and closes every fd it does
 * not keep, whether it returns or throws, in one place: a handler that keeps fds takes them from
 * the request's PendingFds once their new owner holds them; the rest are closed when handle() ends.
 */
import { ringwireError } from '../../lib/errors.js';
import type { GuestMemory } from '../memory.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC } from '../split-layout.js';
import type { VhostUserDevice } from './device.js';
import { closeQuietly, mapMemoryTable, type MappedMemoryTable, type MemoryTableOptions } from './memory-table.js';
import {
  ConfigPayload, MemoryTablePayload, U64Payload, VHOST_VRING_F_LOG, VringAddressPayload, VringFdPayload, VringStatePayload,
} from './payloads.js';
import { VHOST_USER_F_PROTOCOL_FEATURES, VhostUserProtocolFeature as PF, VhostUserRequest as R, type VhostUserMessage } from './protocol.js';
import { Vring } from './vring.js';

const bit = (n: number): bigint => 1n << BigInt(n);

type View = { check(): string | null };

function valid<T extends View>(view: T, what: string): T {
  const bad = view.check();
  if (bad) throw ringwireError('ERR_VHOST_PROTOCOL', `${what}: ${bad}`);
  return view;
}

/** Fds each request carries: SET_MEM_TABLE one per region, the vring fd requests one unless NOFD. */
function expectedFds(msg: VhostUserMessage): number {
  switch (msg.request) {
    case R.SET_MEM_TABLE: {
      const t = new MemoryTablePayload(msg.payload);
      return t.check() === null ? t.nregions : -1;
    }
    case R.SET_VRING_KICK:
    case R.SET_VRING_CALL:
    case R.SET_VRING_ERR: {
      const p = new VringFdPayload(msg.payload);
      return p.check() === null ? (p.noFd ? 0 : 1) : -1;
    }
    default:
      return 0;
  }
}

/** A request's received fds that no one has taken yet. */
class PendingFds {
  #fds: number[];
  constructor(fds: readonly number[]) {
    this.#fds = [...fds];
  }
  get first(): number | undefined {
    return this.#fds[0];
  }
  /** Hands every fd to the caller, which owns them from here on. */
  take(): number[] {
    const fds = this.#fds;
    this.#fds = [];
    return fds;
  }
  closeRest(): void {
    for (const fd of this.take()) closeQuietly(fd);
  }
}

export class VhostUserBackendState {
  readonly device: VhostUserDevice;
  readonly vrings: readonly Vring[];
  #table: MappedMemoryTable | undefined;
  #owner = false;
  #features = 0n;
  #protocolFeatures = 0n;
  readonly #memoryOptions: MemoryTableOptions;

  constructor(device: VhostUserDevice, log: (message: string) => void, memoryOptions: MemoryTableOptions = {}) {
    this.device = device;
    this.#memoryOptions = memoryOptions;
    if (!Number.isInteger(device.numQueues) || device.numQueues < 1 || device.numQueues > 256) {
      throw ringwireError('ERR_OUT_OF_RANGE', `numQueues must be 1..256 (the vring index is 8 bits), got ${device.numQueues}`);
    }
    this.vrings = Array.from({ length: device.numQueues }, (_, i) => new Vring(i, device, log));
  }

  /** Protocol features this back-end offers: REPLY_ACK and RESET_DEVICE always, CONFIG when the device has a config space. */
  offeredProtocolFeatures(): bigint {
    let pf = bit(PF.REPLY_ACK) | bit(PF.RESET_DEVICE);
    if (this.device.config() !== undefined) pf |= bit(PF.CONFIG);
    return pf;
  }

  /** True once REPLY_ACK is negotiated: a need_reply request then gets a u64 status. */
  get replyAck(): boolean {
    return (this.#protocolFeatures & bit(PF.REPLY_ACK)) !== 0n;
  }

  get memory(): GuestMemory | undefined {
    return this.#table?.memory;
  }

  get acknowledgedFeatures(): bigint {
    return this.#features;
  }

  /** Handles one request; returns its reply payload, or undefined for requests without one. */
  handle(msg: VhostUserMessage): Uint8Array | undefined {
    const fds = new PendingFds(msg.fds);
    try {
      const want = expectedFds(msg);
      if (want >= 0 && msg.fds.length !== want) {
        throw ringwireError('ERR_VHOST_PROTOCOL', `${R[msg.request] ?? `request ${msg.request}`} came with ${msg.fds.length} fds, expected ${want}`);
      }
      const reply = this.#dispatch(msg, fds);
      // Front-ends order the ring setup differently (QEMU: memory, num, base, addr, kick; others kick
      // first): start any ring whose last missing piece this message supplied.
      for (const v of this.vrings) if (!v.running) this.#tryStart(v);
      return reply;
    } finally {
      fds.closeRest();
    }
  }

  /** Releases the memory table and every vring fd, and resets the device. */
  close(): void {
    for (const v of this.vrings) v.close();
    this.device.reset();
    this.#dropTable();
  }

  /** Unmaps the memory table now (the queues over it must be stopped first). */
  #dropTable(): void {
    const t = this.#table;
    this.#table = undefined;
    t?.release();
  }

  #dispatch(msg: VhostUserMessage, fds: PendingFds): Uint8Array | undefined {
    const p = msg.payload;
    switch (msg.request) {
      case R.GET_FEATURES:
        return U64Payload.encode(this.device.features() | bit(VHOST_USER_F_PROTOCOL_FEATURES));
      case R.SET_FEATURES: {
        // QEMU 7.2 may ack bits it was never offered (EVENT_IDX: design doc); the queue honours what was acked.
        this.#features = valid(new U64Payload(p), 'SET_FEATURES').value;
        this.device.acknowledgeFeatures(this.#features & ~bit(VHOST_USER_F_PROTOCOL_FEATURES));
        if (!this.#protocolFeaturesNegotiated()) for (const v of this.vrings) v.enabled = true;
        return undefined;
      }
      case R.GET_PROTOCOL_FEATURES:
        return U64Payload.encode(this.offeredProtocolFeatures());
      case R.SET_PROTOCOL_FEATURES: {
        const pf = valid(new U64Payload(p), 'SET_PROTOCOL_FEATURES').value;
        const extra = pf & ~this.offeredProtocolFeatures();
        if (extra) throw ringwireError('ERR_VHOST_PROTOCOL', `SET_PROTOCOL_FEATURES acks bits 0x${extra.toString(16)} that were not offered`);
        this.#protocolFeatures = pf;
        return undefined;
      }
      case R.SET_OWNER:
        if (this.#owner) throw ringwireError('ERR_VHOST_PROTOCOL', 'SET_OWNER sent twice on one connection');
        this.#owner = true;
        return undefined;
      case R.RESET_OWNER:
        // Deprecated in the rst; QEMU no longer sends it. It also gives up ownership.
        this.#reset();
        this.#owner = false;
        return undefined;
      case R.RESET_DEVICE:
        // Resets the device, not the session: ownership and protocol features stay (QEMU sends no SET_OWNER after it).
        this.#reset();
        return undefined;
      case R.GET_QUEUE_NUM:
        return U64Payload.encode(BigInt(this.vrings.length));
      case R.SET_MEM_TABLE:
        return this.#setMemTable(msg, fds);
      case R.SET_VRING_NUM: {
        const s = valid(new VringStatePayload(p), 'SET_VRING_NUM');
        this.#vring(s.index, 'SET_VRING_NUM').setNum(s.num);
        return undefined;
      }
      case R.SET_VRING_ADDR: {
        const a = valid(new VringAddressPayload(p), 'SET_VRING_ADDR');
        if (a.flags & VHOST_VRING_F_LOG) throw ringwireError('ERR_VHOST_PROTOCOL', 'SET_VRING_ADDR asks for used-ring logging, which was not offered');
        this.#vring(a.index, 'SET_VRING_ADDR').setAddresses({ desc: a.desc, avail: a.avail, used: a.used });
        return undefined;
      }
      case R.SET_VRING_BASE: {
        const s = valid(new VringStatePayload(p), 'SET_VRING_BASE');
        this.#vring(s.index, 'SET_VRING_BASE').setBase(s.num);
        return undefined;
      }
      case R.GET_VRING_BASE: {
        const s = valid(new VringStatePayload(p), 'GET_VRING_BASE');
        const v = this.#vring(s.index, 'GET_VRING_BASE');
        return VringStatePayload.encode(v.index, v.getBase());
      }
      case R.SET_VRING_KICK:
      case R.SET_VRING_CALL:
      case R.SET_VRING_ERR:
        this.#setVringFd(msg, fds);
        return undefined;
      case R.SET_VRING_ENABLE: {
        const s = valid(new VringStatePayload(p), 'SET_VRING_ENABLE');
        if (!this.#protocolFeaturesNegotiated()) throw ringwireError('ERR_VHOST_PROTOCOL', 'SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES');
        if (s.num > 1) throw ringwireError('ERR_VHOST_PROTOCOL', `SET_VRING_ENABLE with state ${s.num}`);
        const v = this.#vring(s.index, 'SET_VRING_ENABLE');
        v.enabled = s.num === 1;
        if (!v.enabled) v.stop();
        return undefined;
      }
      case R.GET_CONFIG:
        return this.#getConfig(p);
      case R.SET_CONFIG: {
        this.#requireProtocolFeature(PF.CONFIG, 'SET_CONFIG');
        const c = valid(new ConfigPayload(p), 'SET_CONFIG');
        this.device.setConfig(c.offset, c.data);
        return undefined;
      }
      default:
        throw ringwireError('ERR_VHOST_PROTOCOL', `${R[msg.request] ?? `unknown request ${msg.request}`} is not supported by this back-end`);
    }
  }

  #setMemTable(msg: VhostUserMessage, fds: PendingFds): undefined {
    const t = valid(new MemoryTablePayload(msg.payload), 'SET_MEM_TABLE');
    // mapMemoryTable owns the fds from the call on, whether it maps them or refuses.
    const table = mapMemoryTable(t.regions(), fds.take(), this.#memoryOptions);
    // The old table goes away now ("the back-end ... must ... close the old ones"): running queues
    // stop here, it is unmapped, and handle() restarts them over the new one from the avail index
    // they had reached.
    for (const v of this.vrings) v.stop();
    this.#dropTable();
    this.#table = table;
    return undefined;
  }

  #setVringFd(msg: VhostUserMessage, fds: PendingFds): void {
    const name = R[msg.request]!;
    const f = valid(new VringFdPayload(msg.payload), name);
    if (f.index >= this.vrings.length) throw ringwireError('ERR_VHOST_PROTOCOL', `${name} for vring ${f.index}, device has ${this.vrings.length}`);
    if (f.noFd && msg.request === R.SET_VRING_KICK) throw ringwireError('ERR_VHOST_PROTOCOL', 'SET_VRING_KICK without an fd (polling mode) is not supported');
    const v = this.vrings[f.index]!;
    const fd = fds.first;
    try {
      // The vring owns the fd once a setter returns; if it throws, the fd is still ours.
      if (msg.request === R.SET_VRING_KICK) {
        v.setKick(fd!);
        // Without protocol features a ring starts enabled as soon as it is started ("Ring states").
        if (!this.#protocolFeaturesNegotiated()) v.enabled = true;
      } else if (msg.request === R.SET_VRING_CALL) {
        v.setCall(fd);
      } else {
        v.setErr(fd);
      }
    } catch (err) {
      throw ringwireError('ERR_VHOST_PROTOCOL', `${name} for vring ${f.index}: ${(err as Error).message}`, { cause: err });
    }
    fds.take();
  }

  #getConfig(p: Uint8Array): Uint8Array {
    this.#requireProtocolFeature(PF.CONFIG, 'GET_CONFIG');
    const c = valid(new ConfigPayload(p), 'GET_CONFIG');
    const space = this.device.config();
    if (!space) throw ringwireError('ERR_VHOST_PROTOCOL', 'GET_CONFIG on a device without a config space');
    const data = new Uint8Array(c.size);
    data.set(space.subarray(Math.min(c.offset, space.byteLength), Math.min(c.offset + c.size, space.byteLength)));
    return ConfigPayload.encode(c.offset, c.flags, data);
  }

  #tryStart(v: Vring): void {
    v.tryStart(this.#table?.memory, {
      eventIdx: (this.#features & bit(VIRTIO_F_EVENT_IDX)) !== 0n,
      indirect: (this.#features & bit(VIRTIO_F_INDIRECT_DESC)) !== 0n,
    });
  }

  #reset(): void {
    for (const v of this.vrings) v.close();
    this.#features = 0n;
    this.device.reset();
    this.#dropTable();
  }

  #vring(index: number, what: string): Vring {
    const v = this.vrings[index];
    if (!v) throw ringwireError('ERR_VHOST_PROTOCOL', `${what} for vring ${index}, device has ${this.vrings.length}`);
    return v;
  }

  #protocolFeaturesNegotiated(): boolean {
    return (this.#features & bit(VHOST_USER_F_PROTOCOL_FEATURES)) !== 0n || this.#protocolFeatures !== 0n;
  }

  #requireProtocolFeature(f: PF, what: string): void {
    if ((this.#protocolFeatures & bit(f)) === 0n) throw ringwireError('ERR_VHOST_PROTOCOL', `${what} without the ${PF[f]} protocol feature`);
  }
}
