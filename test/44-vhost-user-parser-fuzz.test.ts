/**
 * Seeded fuzz of the vhost-user stream parser and payload views: random chunking of valid streams
 * must reproduce the messages exactly with their fds; corrupted streams must end in
 * ERR_VHOST_PROTOCOL and nothing else; no fd is ever lost; payload views never throw from check().
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { prng, testSeed } from './helpers/index.js';
import {
  ConfigPayload, MemoryRegionPayload, MemoryTablePayload, U64Payload, VHOST_USER_MAX_FDS, VhostUserParser, VringAddressPayload,
  VringFdPayload, VringStatePayload, encodeMessage, type VhostUserMessage,
} from '../virtio/index.js';

type Rnd = ReturnType<typeof prng>;

interface Sent { request: number; flags: number; payload: Uint8Array; fds: number[] }

function randomMessage(rnd: Rnd, nextFd: () => number): Sent {
  const request = rnd.int(1, 40);
  const flags = 0x1 | (rnd.next() < 0.3 ? 0x8 : 0);
  const payload = rnd.bytes(rnd.next() < 0.8 ? rnd.int(0, 64) : rnd.int(0, 600));
  const nfds = rnd.next() < 0.7 ? 0 : rnd.int(1, VHOST_USER_MAX_FDS);
  return { request, flags, payload, fds: Array.from({ length: nfds }, nextFd) };
}

/** Splits like a stream recvmsg would: a message's fds ride on a chunk that ends inside it. */
function chunkStream(rnd: Rnd, msgs: Sent[]): Array<{ bytes: Uint8Array; fds: number[] }> {
  const chunks: Array<{ bytes: Uint8Array; fds: number[] }> = [];
  for (const m of msgs) {
    const bytes = encodeMessage(m.request, m.payload, m.flags);
    let o = 0;
    while (o < bytes.byteLength) {
      const take = rnd.int(1, bytes.byteLength - o);
      const piece = bytes.subarray(o, o + take);
      const prev = chunks[chunks.length - 1];
      if (o === 0 && prev && prev.fds.length === 0 && rnd.next() < 0.5) {
        // Glue the previous message's tail onto this one's first piece: a read may do that, but
        // never past a piece that carried fds (the kernel ends the read there).
        chunks[chunks.length - 1] = { bytes: new Uint8Array([...prev.bytes, ...piece]), fds: [...m.fds] };
      } else {
        chunks.push({ bytes: piece.slice(), fds: o === 0 ? [...m.fds] : [] });
      }
      o += take;
    }
  }
  return chunks;
}

test('random chunkings of valid streams give back every message and fd exactly', () => {
  const rnd = prng(testSeed());
  let fd = 1000;
  let total = 0;
  for (let iter = 0; iter < 400; iter++) {
    const msgs = Array.from({ length: rnd.int(1, 20) }, () => randomMessage(rnd, () => fd++));
    const parser = new VhostUserParser();
    const got: VhostUserMessage[] = [];
    for (const c of chunkStream(rnd, msgs)) {
      parser.push(c.bytes, c.fds);
      for (let m = parser.next(); m; m = parser.next()) got.push(m);
    }
    assert.is(got.length, msgs.length);
    got.forEach((m, i) => {
      const want = msgs[i]!;
      if (m.request !== want.request || m.flags !== want.flags || m.size !== want.payload.byteLength) assert.unreachable(`iteration ${iter} message ${i} header differs`);
      assert.equal(m.payload, want.payload);
      assert.equal(m.fds, want.fds, `iteration ${iter} message ${i} fds`);
    });
    assert.equal(parser.takeFds(), []);
    assert.is(parser.bufferedBytes, 0);
    total += got.length;
  }
  console.log(`  ${total} messages reassembled`);
});

test('corrupted streams yield whole messages or ERR_VHOST_PROTOCOL, and lose no fd', () => {
  const rnd = prng(testSeed());
  let fd = 1;
  let failures = 0;
  let messages = 0;
  for (let iter = 0; iter < 3000; iter++) {
    const msgs = Array.from({ length: rnd.int(1, 8) }, () => randomMessage(rnd, () => fd++));
    const chunks = chunkStream(rnd, msgs);
    // Flip, insert or drop bytes, or add fds, somewhere in the stream.
    for (let k = rnd.int(1, 3); k > 0; k--) {
      const c = chunks[rnd.int(0, chunks.length - 1)]!;
      const what = rnd.int(0, 3);
      if (what === 0 && c.bytes.byteLength > 0) c.bytes[rnd.int(0, c.bytes.byteLength - 1)] = rnd.int(0, 255);
      else if (what === 1) c.bytes = new Uint8Array([...c.bytes, ...rnd.bytes(rnd.int(1, 16))]);
      else if (what === 2 && c.bytes.byteLength > 1) c.bytes = c.bytes.subarray(0, rnd.int(1, c.bytes.byteLength - 1));
      else c.fds.push(...Array.from({ length: rnd.int(1, 9) }, () => fd++));
    }
    const fdsIn = chunks.flatMap((c) => c.fds);
    const fdsOut: number[] = [];
    const parser = new VhostUserParser({ maxPayload: rnd.next() < 0.5 ? 4096 : 600 });
    let failed = false;
    for (const c of chunks) {
      try {
        parser.push(c.bytes, c.fds);
        for (let m = parser.next(); m; m = parser.next()) {
          messages++;
          assert.is(m.payload.byteLength, m.size);
          assert.ok(m.fds.length <= VHOST_USER_MAX_FDS);
          assert.is(m.flags & 0x7, 0x1);
          fdsOut.push(...m.fds);
        }
      } catch (err) {
        if (!isRingwireError(err, 'ERR_VHOST_PROTOCOL')) throw err;
        failed = true;
      }
    }
    if (failed) failures++;
    fdsOut.push(...parser.takeFds());
    assert.equal(fdsOut.sort((x, y) => x - y), fdsIn.sort((x, y) => x - y), `iteration ${iter}: every fd is handed out exactly once`);
  }
  console.log(`  ${messages} messages, ${failures} failed streams`);
  assert.ok(failures > 100 && messages > 1000, 'both outcomes are exercised');
});

test('payload views never throw from check(), whatever the bytes', () => {
  const rnd = prng(testSeed());
  const views = [U64Payload, VringFdPayload, VringStatePayload, VringAddressPayload, MemoryTablePayload, MemoryRegionPayload, ConfigPayload];
  let valid = 0;
  for (let i = 0; i < 20000; i++) {
    const View = views[i % views.length]!;
    const len = rnd.next() < 0.5 ? [8, 40, 12 + rnd.int(0, 300), 8 + 32 * rnd.int(0, 9), 264][rnd.int(0, 4)]! : rnd.int(0, 300);
    const bytes = rnd.bytes(len);
    if (View === MemoryTablePayload && len >= 4 && rnd.next() < 0.7) new DataView(bytes.buffer).setUint32(0, rnd.int(0, 9), true);
    if (View === ConfigPayload && len >= 12 && rnd.next() < 0.7) {
      const dv = new DataView(bytes.buffer);
      dv.setUint32(0, rnd.int(0, 300), true);
      dv.setUint32(4, len - 12, true);
      dv.setUint32(8, rnd.int(0, 2), true);
    }
    const reason = new View(bytes).check();
    assert.ok(reason === null || typeof reason === 'string');
    if (reason === null) valid++;
  }
  console.log(`  ${valid} of 20000 random payloads well formed`);
  assert.ok(valid > 0);
});

test.run();
