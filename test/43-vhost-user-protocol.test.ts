import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import {
  ConfigPayload, MemoryRegionPayload, MemoryTablePayload, U64Payload, VhostUserParser, VhostUserRequest, VringAddressPayload,
  VringFdPayload, VringStatePayload, decodeHeader, encodeMessage, encodeReply, encodeReplyAck, needsReply,
  type VhostUserMessage,
} from '../virtio/index.js';

function expectProtocolError(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isRingwireError(err, 'ERR_VHOST_PROTOCOL'), `expected ERR_VHOST_PROTOCOL, got ${String(err)}`);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('did not throw');
}

function drain(p: VhostUserParser): VhostUserMessage[] {
  const out: VhostUserMessage[] = [];
  for (let m = p.next(); m; m = p.next()) out.push(m);
  return out;
}

test('header layout: u32 request, u32 flags, u32 size, little-endian; replies carry flags 0x5', () => {
  const msg = encodeMessage(VhostUserRequest.SET_VRING_NUM, VringStatePayload.encode(1, 256), 0x1 | 0x8);
  assert.equal([...msg.subarray(0, 12)], [8, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0]);
  assert.equal(decodeHeader(msg), { request: 8, flags: 9, size: 8 });
  assert.ok(needsReply(decodeHeader(msg).flags));
  const reply = encodeReply(VhostUserRequest.GET_FEATURES, U64Payload.encode(0x1_4000_0000n));
  assert.equal(decodeHeader(reply), { request: 1, flags: 5, size: 8 });
  assert.is(new U64Payload(reply.subarray(12)).value, 0x1_4000_0000n);
  const nack = encodeReplyAck(VhostUserRequest.SET_MEM_TABLE, false);
  assert.equal(decodeHeader(nack), { request: 5, flags: 5, size: 8 });
  assert.is(new U64Payload(nack.subarray(12)).value, 1n);
  assert.is(new U64Payload(encodeReplyAck(5, true).subarray(12)).value, 0n);
});

test('request ids match the vhost-user spec', () => {
  const expected: Array<[VhostUserRequest, number]> = [
    [VhostUserRequest.GET_FEATURES, 1], [VhostUserRequest.SET_FEATURES, 2], [VhostUserRequest.SET_OWNER, 3],
    [VhostUserRequest.RESET_OWNER, 4], [VhostUserRequest.SET_MEM_TABLE, 5], [VhostUserRequest.SET_VRING_NUM, 8],
    [VhostUserRequest.SET_VRING_ADDR, 9], [VhostUserRequest.SET_VRING_BASE, 10], [VhostUserRequest.GET_VRING_BASE, 11],
    [VhostUserRequest.SET_VRING_KICK, 12], [VhostUserRequest.SET_VRING_CALL, 13], [VhostUserRequest.SET_VRING_ERR, 14],
    [VhostUserRequest.GET_PROTOCOL_FEATURES, 15], [VhostUserRequest.SET_PROTOCOL_FEATURES, 16], [VhostUserRequest.GET_QUEUE_NUM, 17],
    [VhostUserRequest.SET_VRING_ENABLE, 18], [VhostUserRequest.GET_CONFIG, 24], [VhostUserRequest.SET_CONFIG, 25],
    [VhostUserRequest.RESET_DEVICE, 34], [VhostUserRequest.GET_MAX_MEM_SLOTS, 36], [VhostUserRequest.ADD_MEM_REG, 37],
    [VhostUserRequest.REM_MEM_REG, 38], [VhostUserRequest.SET_STATUS, 39], [VhostUserRequest.GET_STATUS, 40],
  ];
  for (const [id, n] of expected) assert.is(id, n, VhostUserRequest[id]);
});

test('payload views: round-trip encoders and reject malformed payloads with a reason', () => {
  const state = new VringStatePayload(VringStatePayload.encode(3, 0xfffe));
  assert.ok(state.isValid());
  assert.equal([state.index, state.num], [3, 0xfffe]);
  assert.not.ok(new VringStatePayload(new Uint8Array(7)).isValid());

  const fd = new VringFdPayload(VringFdPayload.encode(5, true));
  assert.ok(fd.isValid());
  assert.equal([fd.index, fd.noFd], [5, true]);
  assert.match(new VringFdPayload(U64Payload.encode(0x205n)).check()!, /reserved bits/);

  const addr = new VringAddressPayload(VringAddressPayload.encode({ index: 1, desc: 0x7f0000001000n, used: 0x7f0000003000n, avail: 0x7f0000002000n, log: 0xffffffffffffffffn }));
  assert.ok(addr.isValid());
  assert.equal([addr.index, addr.flags, addr.desc, addr.used, addr.avail, addr.log], [1, 0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n, 0xffffffffffffffffn]);
  assert.match(new VringAddressPayload(VringAddressPayload.encode({ index: 0, flags: 2, desc: 0n, used: 0n, avail: 0n })).check()!, /undefined bits/);
  assert.match(new VringAddressPayload(new Uint8Array(48)).check()!, /expected 40/);

  const region = { guestPhysAddr: 0x100000000n, memorySize: 0x40000000n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0xc0000000n };
  const table = new MemoryTablePayload(MemoryTablePayload.encode([region, { ...region, guestPhysAddr: 0n, mmapOffset: 0n }]));
  assert.ok(table.isValid());
  assert.is(table.nregions, 2);
  assert.equal(table.region(0), region);
  const full = new Uint8Array(MemoryTablePayload.MAX_SIZE);
  full.set(MemoryTablePayload.encode([region]));
  assert.ok(new MemoryTablePayload(full).isValid(), 'the whole 8-slot struct is accepted');
  const nine = MemoryTablePayload.encode(Array.from({ length: 9 }, () => region));
  assert.match(new MemoryTablePayload(nine).check()!, /9 regions/);
  assert.match(new MemoryTablePayload(MemoryTablePayload.encode([region]).subarray(0, 39)).check()!, /need 40/);
  assert.match(new MemoryTablePayload(MemoryTablePayload.encode([{ ...region, memorySize: 0n }])).check()!, /empty/);
  assert.match(new MemoryTablePayload(MemoryTablePayload.encode([{ ...region, guestPhysAddr: 0xffffffffc0000001n }])).check()!, /wraps the guest-physical/);
  assert.match(new MemoryTablePayload(MemoryTablePayload.encode([{ ...region, userspaceAddr: 0xffffffffc0000001n }])).check()!, /wraps the user/);
  assert.match(new MemoryTablePayload(MemoryTablePayload.encode([{ ...region, mmapOffset: 0xffffffffc0000001n }])).check()!, /overflows/);
  assert.match(new MemoryTablePayload(new Uint8Array(4)).check()!, /shorter/);

  const single = new MemoryRegionPayload(MemoryRegionPayload.encode(region));
  assert.ok(single.isValid());
  assert.equal(single.region, region);
  assert.not.ok(new MemoryRegionPayload(MemoryRegionPayload.encode({ ...region, memorySize: 0n })).isValid());

  const cfg = new ConfigPayload(ConfigPayload.encode(4, 0, Uint8Array.of(1, 2, 3)));
  assert.ok(cfg.isValid());
  assert.equal([cfg.offset, cfg.size, cfg.flags, [...cfg.data]], [4, 3, 0, [1, 2, 3]]);
  assert.match(new ConfigPayload(ConfigPayload.encode(0, 0, new Uint8Array(257))).check()!, /exceeds 256/);
  assert.match(new ConfigPayload(ConfigPayload.encode(200, 0, new Uint8Array(100))).check()!, /past the 256-byte/);
  assert.match(new ConfigPayload(ConfigPayload.encode(0, 2, new Uint8Array(1))).check()!, /flags 2/);
  assert.match(new ConfigPayload(ConfigPayload.encode(0, 0, new Uint8Array(4)).subarray(0, 15)).check()!, /header says 16/);
});

test('parser reassembles messages fed one byte at a time and many per chunk', () => {
  const msgs = [
    encodeMessage(VhostUserRequest.GET_FEATURES),
    encodeMessage(VhostUserRequest.SET_FEATURES, U64Payload.encode(1n << 32n)),
    encodeMessage(VhostUserRequest.SET_VRING_ADDR, VringAddressPayload.encode({ index: 0, desc: 1n, used: 2n, avail: 3n }), 0x9),
  ];
  const stream = new Uint8Array(msgs.reduce((s, m) => s + m.byteLength, 0));
  let o = 0;
  for (const m of msgs) { stream.set(m, o); o += m.byteLength; }
  const byByte = new VhostUserParser();
  const got: VhostUserMessage[] = [];
  for (const b of stream) { byByte.push(Uint8Array.of(b)); got.push(...drain(byByte)); }
  const whole = new VhostUserParser();
  whole.push(stream);
  for (const out of [got, drain(whole)]) {
    assert.equal(out.map((m) => [m.request, m.flags, m.size, m.payload.byteLength]), [[1, 1, 0, 0], [2, 1, 8, 8], [9, 9, 40, 40]]);
    assert.is(new U64Payload(out[1]!.payload).value, 1n << 32n);
  }
  assert.is(whole.bufferedBytes, 0);
});

test('fds go to the message holding the chunk\'s last byte', () => {
  const a = encodeMessage(VhostUserRequest.SET_VRING_NUM, VringStatePayload.encode(0, 256));
  const b = encodeMessage(VhostUserRequest.SET_VRING_KICK, VringFdPayload.encode(0));
  const c = encodeMessage(VhostUserRequest.SET_MEM_TABLE, MemoryTablePayload.encode([{ guestPhysAddr: 0n, memorySize: 4096n, userspaceAddr: 0n, mmapOffset: 0n }]));
  const p = new VhostUserParser();
  p.push(a.subarray(0, 5));
  // The tail of A and all of B in one read, with B's fd (the kernel stops the read after B's data).
  p.push(new Uint8Array([...a.subarray(5), ...b]), [40]);
  // C's fd arrives with its first bytes; the rest follows without fds.
  p.push(c.subarray(0, 20), [41]);
  p.push(c.subarray(20));
  const out = drain(p);
  assert.equal(out.map((m) => [m.request, m.fds]), [[8, []], [12, [40]], [5, [41]]]);
  assert.equal(p.takeFds(), []);
});

test('malformed streams end with ERR_VHOST_PROTOCOL, stay failed, and give back their fds', () => {
  const bad: Array<[string, Uint8Array, RegExp, number[]?]> = [
    ['version 0', encodeMessage(1, new Uint8Array(0), 0x0), /version 0/],
    ['version 2', encodeMessage(1, new Uint8Array(0), 0x2), /version 2/],
    ['a reply sent as a request', encodeReply(1), /has the reply flag/],
    ['undefined flag bits', encodeMessage(1, new Uint8Array(0), 0x11), /undefined flag bits 0x10/],
    ['oversize payload (header alone)', encodeMessage(5).map((v, i) => (i === 9 ? 0x10 : i === 8 ? 1 : v)), /4097-byte payload, limit 4096/],
    ['nine fds', encodeMessage(5, new Uint8Array(8)), /9 fds/, [1, 2, 3, 4, 5, 6, 7, 8, 9]],
  ];
  for (const [name, bytes, pattern, fds] of bad) {
    const p = new VhostUserParser();
    p.push(bytes, fds);
    expectProtocolError(() => p.next(), pattern);
    expectProtocolError(() => p.next(), pattern);
    assert.ok(p.failed, name);
    assert.equal(p.takeFds(), fds ?? [], `${name}: fds handed back`);
    const later = [100];
    try { p.push(Uint8Array.of(0), later); } catch { /* the failed parser refuses data */ }
    assert.equal(p.takeFds(), later, `${name}: fds pushed after the failure are still handed back`);
  }
  const replies = new VhostUserParser({ expect: 'reply' });
  replies.push(encodeMessage(1));
  expectProtocolError(() => replies.next(), /lacks the reply flag/);
  const ok = new VhostUserParser({ expect: 'reply', maxPayload: 8 });
  ok.push(encodeReply(1, U64Payload.encode(7n)));
  assert.is(new U64Payload(ok.next()!.payload).value, 7n);
});

test.run();
