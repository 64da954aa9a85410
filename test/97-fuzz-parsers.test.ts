/**
 * Property-based tests (fast-check) for every parser a peer can reach (issue 19, item 7): the
 * channel handshake (message views, and live servers and clients fed arbitrary datagrams and fds),
 * vhost-user (the stream parser, the back-end state fed arbitrary messages, descriptor chains in
 * arbitrary guest memory), ivshmem (the message reader, and a client fed by a hostile server), and
 * the layers that landed since: HTTP records, the agent's control messages, the CNI plugin's inputs.
 *
 * Properties: a peer's bytes end in a typed error of the parser's own code or in a valid result,
 * never another exception; valid messages round-trip; fds received are owned or closed (this
 * process's fds by kind are the same after as before). Seeded by RINGWIRE_SEED like every test;
 * a failure prints fast-check's seed and path, and the shrunk counterexample.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { fdsByKind } from '../bench/soak/fds.js';
import { join } from 'node:path';
import { addonAvailable, closeFd, native } from '../lib/native/native.js';
import { FdServer, FdSocket } from '../lib/native/unix-socket.js';
import { EventFd } from '../lib/native/eventfd.js';
import { Region } from '../lib/native/region.js';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen } from '../lib/index.js';
import {
  AckView, AddRingView, DisconnectCode, DisconnectView, Frame, HelloView, InitView, Msg,
  encodeAck, encodeAddRing, encodeConnect, encodeConnected, encodeDisconnect, encodeHello, encodeInit,
} from '../lib/channel/protocol.js';
import { MessageReader, encodeMessage as encodeIvshmem } from '../lib/ivshmem/protocol.js';
import { IvshmemClient } from '../lib/ivshmem/client.js';
import { GuestMemory } from '../virtio/memory.js';
import { SplitQueueDevice } from '../virtio/split-queue.js';
import { VhostUserParser, encodeMessage as encodeVhost } from '../virtio/vhost-user/protocol.js';
import { VhostUserBackendState } from '../virtio/vhost-user/state.js';
import { RngDevice } from '../virtio/devices/rng.js';
import { FRAME_HEADER, decodeFields, decodeRequestHead, decodeResponseHead, decodeU32, encodeRequestHead, encodeResponseHead, readFrame } from '../lib/http/wire.js';
import { decodeAgentMessage, decodeClientMessage } from '../lib/agent/protocol.js';
import { validEvent, validReply } from '../lib/cni/protocol.js';
import { CniError, parseCniArgs, parseEnv, parseNetConf } from '../lib/cni/spec.js';
import { requireOrSkip, scratch, testSeed } from './helpers/index.js';

const hasAddon = requireOrSkip('native addon', addonAvailable());
const seed = testSeed();
const runs = (n: number): fc.Parameters<unknown> => ({ seed, numRuns: Number(process.env.RINGWIRE_FUZZ_RUNS ?? n), endOnFailure: true });


async function settled(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

// ---- channel handshake ------------------------------------------------------------------------

const name = fc.string({ maxLength: 20 }).filter((s) => Buffer.byteLength(s) <= 64 && !s.includes('\0'));
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** A valid handshake message of any type, encoded. */
const validMessage = fc.oneof(
  fc.record({ minVersion: fc.integer({ min: 1, max: 5 }), span: fc.integer({ min: 0, max: 5 }), minRingBytes: u32, maxRingBytes: u32, maxRingsPerDirection: fc.integer({ min: 1, max: 0xffff }), flags: fc.constantFrom(0, 1), name })
    .map((h) => encodeHello({ ...h, maxVersion: h.minVersion + h.span, minRingBytes: Math.min(h.minRingBytes, h.maxRingBytes), maxRingBytes: Math.max(h.minRingBytes, h.maxRingBytes) })),
  fc.record({ version: fc.integer({ min: 1, max: 0xffff }), ringsPerDirection: u16, clientToServerBytes: u32, serverToClientBytes: u32, name, secret: fc.uint8Array({ maxLength: 64 }) }).map(encodeInit),
  fc.record({ direction: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>, side: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>, ringIndex: u16, ringBytes: u32 }).map(encodeAddRing),
  fc.record({ ackedType: fc.constantFrom(Msg.Init, Msg.AddRing), direction: fc.integer({ min: 0, max: 255 }), side: fc.integer({ min: 0, max: 255 }), ringIndex: u16 }).map(encodeAck),
  fc.constant(encodeConnect()),
  fc.constant(encodeConnected()),
  fc.record({ code: fc.integer({ min: 1, max: 9 }) as fc.Arbitrary<DisconnectCode>, reason: fc.string({ maxLength: 300 }) }).map((d) => encodeDisconnect(d.code, d.reason)),
);

/** A datagram a hostile peer might send: valid, valid with bytes flipped or cut, or noise. */
const datagram = fc.oneof(
  validMessage,
  fc.tuple(validMessage, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([m, flips]) => { const b = Buffer.from(m); for (const [at, v] of flips) b[at % b.length] = v; return b; }),
  fc.tuple(validMessage, fc.nat()).map(([m, cut]) => m.subarray(0, Math.max(1, cut % m.length))),
  fc.uint8Array({ minLength: 1, maxLength: 600 }).map((u) => Buffer.from(u)),
);

/** Which fds ride with a datagram: none, or 1-3 of eventfds and sealed/unsealed memfds. */
const fdKinds = fc.array(fc.constantFrom('eventfd', 'memfd', 'sealed-memfd'), { maxLength: 3 });

function makeFds(kinds: readonly string[]): { fds: number[]; close(): void } {
  const made: Array<{ fd: number; close(): void }> = kinds.map((k) => {
    if (k === 'eventfd') return EventFd.create();
    const r = Region.create('fuzz', 4096 + 192);
    if (k === 'sealed-memfd') r.seal({ shrink: true, grow: true, seal: true });
    return r;
  });
  return { fds: made.map((m) => m.fd), close: () => { for (const m of made) m.close(); } };
}

test('handshake views: any bytes parse without throwing, and every valid message round-trips to the same bytes', () => {
  fc.assert(fc.property(fc.oneof(datagram, validMessage), (bytes) => {
    const f = Frame.parse(bytes, []);
    if (!f || !f.isValid()) return;
    const again = ((): Buffer | undefined => {
      switch (f.type) {
        case Msg.Hello: { const v = new HelloView(f.body); return v.isValid() ? encodeHello(v.toObject()) : undefined; }
        case Msg.Init: { const v = new InitView(f.body); return v.isValid() ? encodeInit(v.toObject()) : undefined; }
        case Msg.AddRing: { const v = new AddRingView(f.body); return v.isValid() ? encodeAddRing(v.toObject()) : undefined; }
        case Msg.Ack: { const v = new AckView(f.body); return v.isValid() ? encodeAck(v.toObject()) : undefined; }
        case Msg.Disconnect: { const v = new DisconnectView(f.body); return v.isValid() ? encodeDisconnect(v.code as DisconnectCode, v.reason!) : undefined; }
        default: return Buffer.from(bytes);
      }
    })();
    if (again) assert.equal(new Uint8Array(again), new Uint8Array(bytes));
  }), runs(3000));
});

if (hasAddon) {
  test('a live server fed arbitrary datagrams and fds answers with a known Disconnect code or drops the peer, loses no fd, and keeps serving', () => scratch('fuzz server', 170000, async ({ dir, defer }) => {
    const server = await listen(join(dir, 's.sock'), { handshakeTimeoutMs: 150, minRingBytes: 4096, maxRingBytes: 1 << 16 });
    defer(() => server.close());
    defer(() => server.destroyConnections());
    await (await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 })).close();
    await settled(() => server.connections === 0);
    const before = fdsByKind();
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(datagram, fdKinds), { minLength: 1, maxLength: 5 }), async (script) => {
      const sock = await FdSocket.connect(server.address!, { maxFds: 4 });
      const codes: number[] = [];
      const closed = new Promise<void>((r) => sock.once('close', r));
      sock.on('error', () => {});
      sock.on('message', (d, fds) => {
        for (const fd of fds) closeFd(fd);
        const f = Frame.parse(d, []);
        if (f?.type === Msg.Disconnect) codes.push(new DisconnectView(f.body).code);
      });
      try {
        for (const [bytes, kinds] of script) {
          if (sock.fd < 0) break;
          const extra = makeFds(kinds);
          try {
            sock.send(bytes, extra.fds);
          } catch (err) {
            if (!isRingwireError(err)) throw err;
          } finally {
            extra.close();
          }
        }
        // The server ends it: a Disconnect, or the step timeout.
        await closed;
      } finally {
        sock.close();
      }
      for (const c of codes) assert.ok(Object.values(DisconnectCode).includes(c as DisconnectCode), `unknown Disconnect code ${c}`);
    }), runs(60));
    await settled(() => server.connections === 0);
    const ch = await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 });
    await ch.close();
    await settled(() => server.connections === 0);
    assert.equal(fdsByKind(), before);
  }));

  test('a client facing a server that sends arbitrary datagrams and fds fails with a typed error (or connects), and loses no fd', () => scratch('fuzz client', 170000, async ({ dir, defer }) => {
    const path = join(dir, 'fake.sock');
    let script: Array<[Buffer, string[]]> = [];
    const fake = FdServer.listen(path, { maxFds: 4 });
    defer(() => fake.close());
    fake.on('connection', (sock: FdSocket) => {
      sock.on('error', () => {});
      sock.on('message', (_d, fds) => { for (const fd of fds) closeFd(fd); });
      for (const [bytes, kinds] of script) {
        const extra = makeFds(kinds);
        try {
          sock.send(bytes, extra.fds);
        } catch {
          // The client hung up already.
        } finally {
          extra.close();
        }
      }
      setTimeout(() => sock.close(), 20);
    });
    const before = fdsByKind();
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(datagram, fdKinds), { minLength: 1, maxLength: 5 }), async (s) => {
      script = s;
      const outcome = await connect(path, { handshakeTimeoutMs: 150, sendRingBytes: 4096, receiveRingBytes: 4096 }).then((ch) => ch, (e: unknown) => e);
      if (outcome instanceof Error) {
        assert.ok(isRingwireError(outcome), `connect() failed with a non-ringwire error: ${String(outcome)}`);
        assert.ok(['ERR_HANDSHAKE', 'ERR_POLICY', 'ERR_TIMEOUT', 'ERR_PEER_GONE', 'ERR_MSG_TRUNCATED'].includes(outcome.code), outcome.code);
      } else {
        (outcome as { destroy(): void }).destroy();
      }
    }), runs(40));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fdsByKind(), before);
  }));
}

// ---- vhost-user ---------------------------------------------------------------------------------

test('vhost-user parser: any chunking of any bytes yields messages or ERR_VHOST_PROTOCOL, and every fd comes out exactly once', () => {
  let nextFd = 100000;
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.tuple(fc.integer({ min: 0, max: 45 }), fc.uint8Array({ maxLength: 64 })).map(([r, p]) => encodeVhost(r, p))), fc.integer({ min: 0, max: 10 })), { maxLength: 12 }),
    (chunks) => {
      const parser = new VhostUserParser();
      const fdsIn: number[] = [];
      const fdsOut: number[] = [];
      for (const [bytes, nfds] of chunks) {
        const fds = bytes.byteLength > 0 ? Array.from({ length: nfds }, () => nextFd++) : [];
        fdsIn.push(...fds);
        try {
          parser.push(bytes, fds);
          for (let m = parser.next(); m; m = parser.next()) fdsOut.push(...m.fds);
        } catch (err) {
          if (!isRingwireError(err, 'ERR_VHOST_PROTOCOL')) throw err;
          break;
        }
      }
      fdsOut.push(...parser.takeFds());
      assert.equal([...fdsOut].sort((a, b) => a - b), [...fdsIn].sort((a, b) => a - b));
    },
  ), runs(2000));
});

if (hasAddon) {
  test('vhost-user back-end state: arbitrary requests (with eventfds, memfds or none) throw only ERR_VHOST_PROTOCOL, and close() releases every fd', () => {
    const before = fdsByKind();
    fc.assert(fc.property(
      fc.array(fc.record({
        request: fc.integer({ min: 0, max: 45 }),
        payload: fc.oneof(fc.uint8Array({ maxLength: 48 }), fc.tuple(fc.integer({ min: 0, max: 3 }), fc.bigUint64Array({ minLength: 4, maxLength: 4 })).map(([n, w]) => {
          const b = new Uint8Array(8 + 32 * n);
          new DataView(b.buffer).setUint32(0, n, true);
          for (let i = 0; i < n; i++) new BigUint64Array(b.buffer, 8 + 32 * i, 4).set(w.map((x) => x % (1n << 24n)));
          return b;
        })),
        fds: fdKinds,
        flags: fc.constantFrom(1, 9),
      }), { maxLength: 20 }),
      (msgs) => {
        const state = new VhostUserBackendState(new RngDevice(), () => {});
        try {
          for (const m of msgs) {
            const made = makeFds(m.fds);
            // handle() owns the fds from the call on: hand it duplicates, close ours.
            const dup = made.fds.map((fd) => native().dup(fd));
            made.close();
            try {
              state.handle({ request: m.request, flags: m.flags, size: m.payload.byteLength, payload: m.payload, fds: dup });
            } catch (err) {
              if (!isRingwireError(err, 'ERR_VHOST_PROTOCOL')) throw err;
            }
          }
        } finally {
          state.close();
        }
      },
    ), runs(400));
    assert.equal(fdsByKind(), before);
  });
}

test('descriptor chains: a queue over arbitrary guest memory yields in-bounds chains or ERR_VIRTQUEUE_BROKEN, in bounded steps', () => {
  const size = 16;
  fc.assert(fc.property(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), fc.uint8Array({ maxLength: 64 }), fc.boolean(), (rings, spots, indirect) => {
    const buffer = new SharedArrayBuffer(8192);
    const bytes = new Uint8Array(buffer);
    bytes.set(rings, 0);
    // Descriptor addresses that land in memory now and then, not only out of it.
    for (let i = 0; i + 1 < spots.length; i += 2) bytes[(spots[i]! % 16) * 16] = spots[i + 1]!;
    const memory = new GuestMemory([{ guestPhysAddr: 0, size: 8192, buffer }]);
    const q = new SplitQueueDevice({ memory, size, addresses: { desc: 0, avail: 256, used: 512 }, indirect });
    try {
      for (let n = 0; n <= size; n++) {
        const chain = q.pop();
        if (!chain) return;
        for (const b of [...chain.readable, ...chain.writable]) assert.ok(b.buffer === buffer && b.byteOffset + b.byteLength <= 8192);
        q.pushUsed(chain.head, 0);
      }
    } catch (err) {
      if (!isRingwireError(err, 'ERR_VIRTQUEUE_BROKEN')) throw err;
    }
  }), runs(3000));
});

// ---- ivshmem -------------------------------------------------------------------------------------

test('ivshmem MessageReader: any chunking gives the same messages; fds go to the message holding the chunk\'s last byte; else ERR_IVSHMEM_PROTOCOL', () => {
  fc.assert(fc.property(fc.array(fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 30 }), (values, cuts, fdCounts) => {
    const stream = new Uint8Array(values.length * 8);
    values.forEach((v, i) => new DataView(stream.buffer).setBigInt64(i * 8, v, true));
    const points = [...new Set(cuts.map((c) => (stream.length ? c % (stream.length + 1) : 0)))].sort((a, b) => a - b);
    const reader = new MessageReader();
    const got: number[] = [];
    let fd = 1;
    let prev = 0;
    for (const [k, at] of [...points, stream.length].entries()) {
      const chunk = stream.subarray(prev, at);
      prev = at;
      const fds = Array.from({ length: fdCounts[k] ?? 0 }, () => fd++);
      try {
        const msgs = reader.push(chunk, fds);
        got.push(...msgs.map((m) => m.value));
        if (fds.length === 1) assert.is(msgs[msgs.length - 1]!.fd, fds[0]);
      } catch (err) {
        if (!isRingwireError(err, 'ERR_IVSHMEM_PROTOCOL')) throw err;
        return;
      }
    }
    assert.equal(got, values.map((v) => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : NaN)));
  }), runs(2000));
});

if (hasAddon) {
  test('ivshmem client fed arbitrary messages and fds by a hostile server: connects or fails typed, and closing releases every fd', () => scratch('fuzz ivshmem', 170000, async ({ dir, defer }) => {
    const path = join(dir, 'ivshmem.sock');
    let script: Array<[bigint, string | null]> = [];
    const fake = FdServer.listen(path, { type: 'stream' });
    defer(() => fake.close());
    fake.on('connection', (sock: FdSocket) => {
      sock.on('error', () => {});
      for (const [v, kind] of script) {
        const extra = makeFds(kind ? [kind] : []);
        try {
          sock.send(encodeIvshmem(Number(v)), extra.fds);
        } catch {
          // gone
        } finally {
          extra.close();
        }
      }
      setTimeout(() => sock.close(), 20);
    });
    const before = fdsByKind();
    const msg = fc.tuple(fc.oneof(fc.constantFrom(0n, -1n, 1n, 2n, 3n), fc.bigInt({ min: -5n, max: 70000n })), fc.option(fc.constantFrom('eventfd', 'sealed-memfd', 'memfd'), { nil: null }));
    await fc.assert(fc.asyncProperty(fc.oneof(
      fc.array(msg, { maxLength: 12 }),
      // The well-formed opening, then anything.
      fc.array(msg, { maxLength: 8 }).map((rest): Array<[bigint, string | null]> => [[0n, null], [1n, null], [-1n, 'sealed-memfd'], [1n, 'eventfd'], [1n, 'eventfd'], ...rest]),
    ), async (s) => {
      script = s;
      const outcome = await IvshmemClient.connect(path, { vectors: 2, timeoutMs: 150 }).then((c) => c, (e: unknown) => e);
      if (outcome instanceof IvshmemClient) {
        outcome.on('error', () => {});
        await new Promise((r) => setTimeout(r, 30));
        outcome.close();
      } else {
        assert.ok(isRingwireError(outcome), `connect() failed with a non-ringwire error: ${String(outcome)}`);
      }
    }), runs(40));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fdsByKind(), before);
  }));
}

// ---- HTTP records, agent control messages, CNI inputs --------------------------------------------

const latin1 = fc.string({ maxLength: 30 }).map((t) => Buffer.from(t, 'utf8').toString('latin1'));
const fieldList = fc.array(fc.tuple(latin1.filter((n) => n.length > 0 && n.length <= 255), latin1), { maxLength: 6 }).map((pairs) => pairs.flat());

test('HTTP records: any bytes decode to a head or null without throwing; valid heads round-trip', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 300 }), (u, at) => {
    const buf = Buffer.from(u);
    const off = Math.min(at, buf.length);
    readFrame(buf);
    decodeRequestHead(buf, off, buf.length);
    decodeResponseHead(buf, off, buf.length);
    decodeFields(buf, off, buf.length, false);
    decodeFields(buf, off, buf.length, true);
    decodeU32(buf, off, buf.length);
  }), runs(3000));
  fc.assert(fc.property(u32, fc.constantFrom(0, 1), latin1.filter((m) => m.length > 0), latin1.filter((p) => p.length > 0), fieldList, (id, flags, method, path, fields) => {
    const enc = encodeRequestHead(id, flags, method, path, fields);
    if (!enc) return;
    const f = readFrame(enc)!;
    assert.equal([f.id, f.flags], [id, flags]);
    assert.equal(decodeRequestHead(enc, FRAME_HEADER, enc.length), { method, path, fields });
  }), runs(1000));
  fc.assert(fc.property(u32, fc.integer({ min: 100, max: 999 }), latin1.filter((r) => r.length <= 255), fieldList, (id, status, reason, fields) => {
    const enc = encodeResponseHead(id, 0, status, reason, fields);
    if (!enc) return;
    const head = decodeResponseHead(enc, FRAME_HEADER, enc.length)!;
    assert.equal([head.status, head.reason, head.fields.map((b) => b.toString('latin1'))], [status, reason, fields]);
  }), runs(1000));
});

test('agent control messages: any bytes, JSON or not, decode or throw ERR_AGENT_PROTOCOL, never anything else', () => {
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
    fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v))),
    fc.record({ op: fc.constantFrom('hello', 'connect', 'listen', 'accept', 'refuse', 'register', 'grant', 'revoke', 'bye', 'x'), id: fc.oneof(fc.nat(), fc.string()), name: fc.string() }, { requiredKeys: ['op'] })
      .map((v) => Buffer.from(JSON.stringify(v))),
  );
  fc.assert(fc.property(payload, fc.integer({ min: 0, max: 3 }), (data, fds) => {
    for (const decode of [decodeClientMessage, decodeAgentMessage]) {
      try {
        decode(data, fds);
      } catch (err) {
        if (!isRingwireError(err, 'ERR_AGENT_PROTOCOL')) throw err;
      }
    }
  }), runs(3000));
});

test('CNI inputs: events, replies, stdin configs, CNI_ARGS and environments parse or are refused with a reason, never throw otherwise', () => {
  const json = fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }),
    fc.record({ cniVersion: fc.constantFrom('1.0.0', '0.4.0', '9'), name: fc.string(), type: fc.constantFrom('ringwire', 'x'), agentSocket: fc.string(), timeoutMs: fc.oneof(fc.integer(), fc.string()), excludeNamespaces: fc.array(fc.string()), prevResult: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)));
  fc.assert(fc.property(json, fc.constantFrom('ADD', 'DEL', 'CHECK', 'VERSION') as fc.Arbitrary<'ADD' | 'DEL' | 'CHECK' | 'VERSION'>, (text, cmd) => {
    const bytes = Buffer.from(text);
    const e = validEvent(bytes);
    const r = validReply(bytes);
    assert.ok(typeof e === 'string' || typeof e === 'object');
    assert.ok(typeof r === 'string' || typeof r === 'object');
    try {
      parseNetConf(text, cmd);
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
    }
    try {
      parseCniArgs(text);
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
    }
  }), runs(3000));
  fc.assert(fc.property(fc.dictionary(fc.constantFrom('CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'), fc.string({ maxLength: 40 })), (env) => {
    try {
      parseEnv(env);
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
    }
  }), runs(2000));
});

test.run();
