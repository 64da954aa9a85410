/**
 * The handshake wire format (docs/protocol.md is the specification; keep the two in step).
 * Modelled on memif's control channel: every message is one SOCK_SEQPACKET datagram with an 8-byte
 * header and a fixed-layout body; ring blocks and doorbells travel as SCM_RIGHTS fds with the
 * announcement that describes them.
 *
 * This file is syntax only: each body is a typed view whose isValid() checks length, reserved
 * fields and string encodings. Whether a valid message is acceptable now (state, limits, policy)
 * is the handshake's business (handshake-server.ts / handshake-client.ts).
 */

export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 8;
/** Largest datagram either side accepts during the handshake. */
export const MAX_HANDSHAKE_MESSAGE = 512;
export const NAME_BYTES = 64;
export const SECRET_BYTES = 64;
export const MAX_REASON_BYTES = 256;

/** Message types. Numbers are wire values: never reuse one. */
export const Msg = {
  Hello: 1,
  Init: 2,
  AddRing: 3,
  Ack: 4,
  Connect: 5,
  Connected: 6,
  Disconnect: 7,
} as const;
export type MsgType = (typeof Msg)[keyof typeof Msg];

/** Why a connection ended; carried by Disconnect. */
export const DisconnectCode = {
  Normal: 1,
  Protocol: 2,
  Version: 3,
  Policy: 4,
  Secret: 5,
  Limit: 6,
  Timeout: 7,
  Internal: 8,
  Shutdown: 9,
} as const;
export type DisconnectCode = (typeof DisconnectCode)[keyof typeof DisconnectCode];

export const Direction = { ClientToServer: 0, ServerToClient: 1 } as const;
export type Direction = (typeof Direction)[keyof typeof Direction];
export const BlockSide = { Producer: 0, Consumer: 1 } as const;
export type BlockSide = (typeof BlockSide)[keyof typeof BlockSide];

export const HELLO_FLAG_SECRET_REQUIRED = 0x1;

const BODY_SIZE: Record<MsgType, number> = {
  [Msg.Hello]: 84,
  [Msg.Init]: 144,
  [Msg.AddRing]: 16,
  [Msg.Ack]: 8,
  [Msg.Connect]: 0,
  [Msg.Connected]: 0,
  [Msg.Disconnect]: 8, // plus reasonLength bytes
};
/** Fds that must travel with each message type. */
const FDS: Record<MsgType, number> = {
  [Msg.Hello]: 0, [Msg.Init]: 0, [Msg.AddRing]: 2, [Msg.Ack]: 0, [Msg.Connect]: 0, [Msg.Connected]: 0, [Msg.Disconnect]: 0,
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A fixed-size, NUL-padded UTF-8 field: valid when the text decodes and nothing follows its first NUL. */
function readPadded(view: DataView, offset: number, size: number, length?: number): string | null {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, size);
  const end = length ?? (bytes.indexOf(0) < 0 ? size : bytes.indexOf(0));
  if (end > size) return null;
  for (let i = end; i < size; i++) if (bytes[i] !== 0) return null;
  try {
    return utf8.decode(bytes.subarray(0, end));
  } catch {
    return null;
  }
}

function writePadded(view: DataView, offset: number, size: number, bytes: Uint8Array): void {
  new Uint8Array(view.buffer, view.byteOffset + offset, size).set(bytes.subarray(0, size));
}

/** One received datagram: header checked, body still raw. */
export class Frame {
  constructor(readonly type: number, readonly body: DataView, readonly fds: readonly number[]) {}

  /** Splits a datagram; null when the header itself is malformed (too short, reserved bits, length). */
  static parse(data: Uint8Array, fds: readonly number[]): Frame | null {
    if (data.length < HEADER_SIZE) return null;
    const v = new DataView(data.buffer, data.byteOffset, data.length);
    const type = v.getUint16(0, true);
    if (v.getUint16(2, true) !== 0) return null;
    if (v.getUint32(4, true) !== data.length - HEADER_SIZE) return null;
    return new Frame(type, new DataView(data.buffer, data.byteOffset + HEADER_SIZE, data.length - HEADER_SIZE), fds);
  }

  /** True when the type is known and the body size and fd count are exactly what that type carries. */
  isValid(): boolean {
    if (!(this.type in BODY_SIZE)) return false;
    const t = this.type as MsgType;
    if (this.fds.length !== FDS[t]) return false;
    if (t === Msg.Disconnect) return this.body.byteLength >= BODY_SIZE[t];
    return this.body.byteLength === BODY_SIZE[t];
  }
}

function frame(type: MsgType, bodySize: number, fill?: (body: DataView) => void): Buffer {
  const buf = Buffer.alloc(HEADER_SIZE + bodySize);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
  v.setUint16(0, type, true);
  v.setUint32(4, bodySize, true);
  fill?.(new DataView(buf.buffer, buf.byteOffset + HEADER_SIZE, bodySize));
  return buf;
}

export interface Hello {
  minVersion: number;
  maxVersion: number;
  minRingBytes: number;
  maxRingBytes: number;
  maxRingsPerDirection: number;
  flags: number;
  name: string;
}

/** Hello body: u16 minVersion, u16 maxVersion, u32 minRingBytes, u32 maxRingBytes, u16 maxRings, u16 0, u32 flags, u8 name[64]. */
export class HelloView {
  constructor(private readonly b: DataView) {}
  get minVersion(): number { return this.b.getUint16(0, true); }
  get maxVersion(): number { return this.b.getUint16(2, true); }
  get minRingBytes(): number { return this.b.getUint32(4, true); }
  get maxRingBytes(): number { return this.b.getUint32(8, true); }
  get maxRingsPerDirection(): number { return this.b.getUint16(12, true); }
  get flags(): number { return this.b.getUint32(16, true); }
  get name(): string | null { return readPadded(this.b, 20, NAME_BYTES); }
  isValid(): boolean {
    return this.b.getUint16(14, true) === 0 && (this.flags & ~HELLO_FLAG_SECRET_REQUIRED) === 0
      && this.minVersion >= 1 && this.minVersion <= this.maxVersion && this.minRingBytes <= this.maxRingBytes
      && this.maxRingsPerDirection >= 1 && this.name !== null;
  }
  toObject(): Hello {
    return { minVersion: this.minVersion, maxVersion: this.maxVersion, minRingBytes: this.minRingBytes, maxRingBytes: this.maxRingBytes, maxRingsPerDirection: this.maxRingsPerDirection, flags: this.flags, name: this.name ?? '' };
  }
}

export function encodeHello(h: Hello): Buffer {
  return frame(Msg.Hello, BODY_SIZE[Msg.Hello], (b) => {
    b.setUint16(0, h.minVersion, true);
    b.setUint16(2, h.maxVersion, true);
    b.setUint32(4, h.minRingBytes, true);
    b.setUint32(8, h.maxRingBytes, true);
    b.setUint16(12, h.maxRingsPerDirection, true);
    b.setUint32(16, h.flags, true);
    writePadded(b, 20, NAME_BYTES, Buffer.from(h.name));
  });
}

export interface Init {
  version: number;
  ringsPerDirection: number;
  clientToServerBytes: number;
  serverToClientBytes: number;
  name: string;
  secret: Uint8Array;
}

/** Init body: u16 version, u16 ringsPerDirection, u32 c2sBytes, u32 s2cBytes, u16 nameLength, u16 secretLength, u8 name[64], u8 secret[64]. */
export class InitView {
  constructor(private readonly b: DataView) {}
  get version(): number { return this.b.getUint16(0, true); }
  get ringsPerDirection(): number { return this.b.getUint16(2, true); }
  get clientToServerBytes(): number { return this.b.getUint32(4, true); }
  get serverToClientBytes(): number { return this.b.getUint32(8, true); }
  get nameLength(): number { return this.b.getUint16(12, true); }
  get secretLength(): number { return this.b.getUint16(14, true); }
  get name(): string | null { return readPadded(this.b, 16, NAME_BYTES, this.nameLength); }
  get secret(): Uint8Array {
    return new Uint8Array(this.b.buffer, this.b.byteOffset + 16 + NAME_BYTES, Math.min(this.secretLength, SECRET_BYTES)).slice();
  }
  isValid(): boolean {
    if (this.nameLength > NAME_BYTES || this.secretLength > SECRET_BYTES || this.name === null) return false;
    const secret = new Uint8Array(this.b.buffer, this.b.byteOffset + 16 + NAME_BYTES, SECRET_BYTES);
    for (let i = this.secretLength; i < SECRET_BYTES; i++) if (secret[i] !== 0) return false;
    return this.version >= 1;
  }
  toObject(): Init {
    return { version: this.version, ringsPerDirection: this.ringsPerDirection, clientToServerBytes: this.clientToServerBytes, serverToClientBytes: this.serverToClientBytes, name: this.name ?? '', secret: this.secret };
  }
}

export function encodeInit(i: Init): Buffer {
  const name = Buffer.from(i.name);
  if (name.length > NAME_BYTES) throw new RangeError(`name is ${name.length} bytes; at most ${NAME_BYTES}`);
  if (i.secret.length > SECRET_BYTES) throw new RangeError(`secret is ${i.secret.length} bytes; at most ${SECRET_BYTES}`);
  return frame(Msg.Init, BODY_SIZE[Msg.Init], (b) => {
    b.setUint16(0, i.version, true);
    b.setUint16(2, i.ringsPerDirection, true);
    b.setUint32(4, i.clientToServerBytes, true);
    b.setUint32(8, i.serverToClientBytes, true);
    b.setUint16(12, name.length, true);
    b.setUint16(14, i.secret.length, true);
    writePadded(b, 16, NAME_BYTES, name);
    writePadded(b, 16 + NAME_BYTES, SECRET_BYTES, i.secret);
  });
}

export interface AddRing {
  direction: Direction;
  side: BlockSide;
  ringIndex: number;
  ringBytes: number;
}

/** AddRing body: u8 direction, u8 side, u16 ringIndex, u32 ringBytes, u32 flags (0), u32 0. Fds: [block memfd, eventfd]. */
export class AddRingView {
  constructor(private readonly b: DataView) {}
  get direction(): Direction { return this.b.getUint8(0) as Direction; }
  get side(): BlockSide { return this.b.getUint8(1) as BlockSide; }
  get ringIndex(): number { return this.b.getUint16(2, true); }
  get ringBytes(): number { return this.b.getUint32(4, true); }
  isValid(): boolean {
    return this.b.getUint8(0) <= 1 && this.b.getUint8(1) <= 1 && this.b.getUint32(8, true) === 0 && this.b.getUint32(12, true) === 0;
  }
  toObject(): AddRing {
    return { direction: this.direction, side: this.side, ringIndex: this.ringIndex, ringBytes: this.ringBytes };
  }
}

export function encodeAddRing(a: AddRing): Buffer {
  return frame(Msg.AddRing, BODY_SIZE[Msg.AddRing], (b) => {
    b.setUint8(0, a.direction);
    b.setUint8(1, a.side);
    b.setUint16(2, a.ringIndex, true);
    b.setUint32(4, a.ringBytes, true);
  });
}

export interface Ack {
  ackedType: number;
  direction: number;
  side: number;
  ringIndex: number;
}

/** Ack body: u16 ackedType, u8 direction, u8 side, u16 ringIndex, u16 0 (direction/side/index only for AddRing). */
export class AckView {
  constructor(private readonly b: DataView) {}
  get ackedType(): number { return this.b.getUint16(0, true); }
  get direction(): number { return this.b.getUint8(2); }
  get side(): number { return this.b.getUint8(3); }
  get ringIndex(): number { return this.b.getUint16(4, true); }
  isValid(): boolean {
    return this.b.getUint16(6, true) === 0 && (this.ackedType === Msg.Init || this.ackedType === Msg.AddRing);
  }
  toObject(): Ack {
    return { ackedType: this.ackedType, direction: this.direction, side: this.side, ringIndex: this.ringIndex };
  }
}

export function encodeAck(a: Ack): Buffer {
  return frame(Msg.Ack, BODY_SIZE[Msg.Ack], (b) => {
    b.setUint16(0, a.ackedType, true);
    b.setUint8(2, a.direction);
    b.setUint8(3, a.side);
    b.setUint16(4, a.ringIndex, true);
  });
}

export function encodeConnect(): Buffer {
  return frame(Msg.Connect, 0);
}

export function encodeConnected(): Buffer {
  return frame(Msg.Connected, 0);
}

export interface Disconnect {
  code: number;
  reason: string;
}

/** Disconnect body: u32 code, u16 reasonLength, u16 0, then reasonLength bytes of UTF-8 (at most 256). */
export class DisconnectView {
  constructor(private readonly b: DataView) {}
  get code(): number { return this.b.getUint32(0, true); }
  get reasonLength(): number { return this.b.getUint16(4, true); }
  get reason(): string | null {
    if (8 + this.reasonLength !== this.b.byteLength) return null;
    return readPadded(this.b, 8, this.reasonLength, this.reasonLength);
  }
  isValid(): boolean {
    return this.b.getUint16(6, true) === 0 && this.reasonLength <= MAX_REASON_BYTES && this.reason !== null;
  }
  toObject(): Disconnect {
    return { code: this.code, reason: this.reason ?? '' };
  }
}

export function encodeDisconnect(code: DisconnectCode, reason: string): Buffer {
  let bytes = Buffer.from(reason);
  // Cut at a character boundary so the peer's strict UTF-8 check still passes.
  if (bytes.length > MAX_REASON_BYTES) bytes = Buffer.from(new TextDecoder().decode(bytes.subarray(0, MAX_REASON_BYTES)).replace(/\uFFFD+$/, ''));
  return frame(Msg.Disconnect, 8 + bytes.length, (b) => {
    b.setUint32(0, code, true);
    b.setUint16(4, bytes.length, true);
    writePadded(b, 8, bytes.length, bytes);
  });
}

export function msgName(type: number): string {
  return Object.entries(Msg).find(([, v]) => v === type)?.[0] ?? `unknown(${type})`;
}
