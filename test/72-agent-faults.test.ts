// Faults: the agent killed mid-traffic (channels keep flowing, connects fail fast, registrations
// come back), an instance killed (out of rotation), bad input on the control socket (ends that
// connection with a reason, everyone else is still served), per-identity limits, and 1,000
// brokered connect/close cycles without fd growth.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { addonAvailable } from '../lib/native/native.js';
import { FdSocket } from '../lib/native/unix-socket.js';
import { closeAll } from '../lib/native/unix-socket-sys.js';
import { isRingwireError, type RingwireError } from '../lib/errors.js';
import { connectAgent, startAgent, type Agent, type AgentClient } from '../lib/agent/index.js';
import { requireOrSkip, scratch, type Scratch } from './helpers/index.js';
import { startAgentPeer, startAgentProcess, uniqueAgentAddress, agentClient, agentConfig } from './helpers/agent.js';

const run = requireOrSkip('native addon', addonAvailable());

const config = agentConfig;

const client = agentClient;

async function inProcessAgent(s: Scratch, extra: object = {}): Promise<{ agent: Agent; address: string; log: Array<Record<string, unknown>> }> {
  const address = uniqueAgentAddress('72');
  const log: Array<Record<string, unknown>> = [];
  const agent = await startAgent({ config: config(address, extra), log: (l) => { log.push(l as unknown as Record<string, unknown>); if (log.length > 100) log.shift(); } });
  s.defer(() => agent.close());
  return { agent, address, log };
}

/** Raw control connection: what the agent answers to `send`, up to its close. */
async function rawExchange(address: string, send: Array<[Buffer, number[]?]>): Promise<{ replies: Array<Record<string, unknown>>; closed: boolean }> {
  const sock = await FdSocket.connect(address, { maxMessageSize: 65536, maxFds: 1 });
  const replies: Array<Record<string, unknown>> = [];
  const closed = new Promise<void>((resolve) => sock.on('close', resolve));
  sock.on('error', () => {});
  sock.on('message', (d, fds) => { closeAll(fds); replies.push(JSON.parse(d.toString()) as Record<string, unknown>); });
  for (const [data, fds] of send) sock.send(data, fds ?? []);
  await closed;
  return { replies, closed: true };
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

if (run) {
  test('agent killed: channels keep flowing, connects fail fast, registrations return when it is back', () => scratch('agent kill', 40000, async (s) => {
    const address = uniqueAgentAddress('72');
    const agentProc = await startAgentProcess(s.children, s.dir, config(address));
    const server = await client(s, address);
    await server.register('orders', { version: 'v1' }, (ch) => { ch.handle((r) => Buffer.from(`v1:${r.toString()}`)); s.defer(() => ch.destroy()); });
    const c = await client(s, address);
    const ch = await c.connect('orders');
    s.defer(() => ch.destroy());
    const disconnected = new Promise((resolve) => c.once('disconnect', resolve));
    agentProc.child.kill('SIGKILL');
    await disconnected;
    for (let i = 0; i < 50; i++) assert.is((await ch.request(Buffer.from(`a${i}`))).toString(), `v1:a${i}`, 'the channel never went through the agent');
    const t0 = performance.now();
    const err = await c.connect('orders').then(() => undefined, (e: RingwireError) => e);
    const failMs = performance.now() - t0;
    assert.ok(isRingwireError(err, 'ERR_AGENT_UNAVAILABLE'), String(err));
    const reconnected = Promise.all([new Promise((r) => server.once('reconnect', r)), new Promise((r) => c.once('reconnect', r))]);
    const back = await startAgentProcess(s.children, s.dir, config(address), 'agent2.yaml');
    const t1 = performance.now();
    await reconnected;
    const ch2 = await c.connect('orders');
    const wholeMs = performance.now() - t1;
    s.defer(() => ch2.destroy());
    assert.is((await ch2.request(Buffer.from('b'))).toString(), 'v1:b');
    console.log(`  [measure] connect with the agent down failed in ${failMs.toFixed(2)} ms; registry whole ${wholeMs.toFixed(0)} ms after the agent listened again`);
    back.child.kill('SIGTERM');
  }));

  test('an instance killed with SIGKILL leaves the rotation; the other instance takes the connects', () => scratch('instance kill', 40000, async (s) => {
    const { agent, address } = await inProcessAgent(s, { services: { orders: { serve: ['cluster.local/ns/shop/sa/orders'] } } });
    const a = await startAgentPeer(s.children, { address, serve: 'orders', version: 'a' });
    const b = await startAgentPeer(s.children, { address, serve: 'orders', version: 'b' });
    assert.ok(a.first.ready && b.first.ready);
    const c = await client(s, address);
    assert.is(agent.status().services.orders!.length, 2);
    // One channel to each (least in-flight), live when the instance dies.
    const live = [await c.connect('orders'), await c.connect('orders')];
    s.defer(() => live.forEach((ch) => ch.destroy()));
    const answers = await Promise.all(live.map(async (ch) => (await ch.request(Buffer.from('x'))).toString()));
    assert.equal([...answers].sort(), ['a:x', 'b:x']);
    const toA = live[answers.indexOf('a:x')]!;
    const toB = live[answers.indexOf('b:x')]!;
    const gone = performance.now();
    a.child.kill('SIGKILL');
    const outOfRotation = (async () => {
      while (agent.status().services.orders?.length !== 1) await new Promise((r) => setTimeout(r, 1));
      return performance.now() - gone;
    })();
    const midTraffic = await toA.request(Buffer.from('y')).then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(midTraffic, 'ERR_PEER_GONE'), `a request to the killed instance: ${String(midTraffic)}`);
    assert.is((await toB.request(Buffer.from('y'))).toString(), 'b:y', 'the other instance is unaffected');
    const outMs = await outOfRotation;
    for (let i = 0; i < 5; i++) {
      const ch = await c.connect('orders');
      assert.is((await ch.request(Buffer.from('x'))).toString(), 'b:x');
      await ch.close();
    }
    toB.destroy();
    b.child.kill('SIGKILL');
    while (agent.status().services.orders) await new Promise((r) => setTimeout(r, 2));
    const err = await c.connect('orders').then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(err, 'ERR_NO_INSTANCE'), String(err));
    console.log(`  [measure] killed instance out of rotation after ${outMs.toFixed(1)} ms (includes process teardown)`);
  }));

  test('bad control input ends that connection with a reason; others are still served', () => scratch('bad input', 30000, async (s) => {
    const { address } = await inProcessAgent(s, { limits: { connectsPerSecond: 50 } });
    const good = await client(s, address);
    await good.register('orders', {}, (ch) => { ch.handle((r) => r); s.defer(() => ch.destroy()); });
    const hello = Buffer.from('{"op":"hello","v":1}');
    const cases: Array<[string, Array<[Buffer, number[]?]>, RegExp]> = [
      ['garbage', [[Buffer.from([1, 2, 3, 0xff])]], /not UTF-8 JSON/],
      ['not hello first', [[Buffer.from('{"op":"connect","id":1,"service":"orders"}')]], /expected hello first/],
      ['wrong version', [[Buffer.from('{"op":"hello","v":9}')]], /version 9/],
      ['unknown op', [[hello], [Buffer.from('{"op":"rm-rf","id":1}')]], /unknown op/],
      ['truncated JSON', [[hello], [Buffer.from('{"op":"connect","id":1,"serv')]], /not UTF-8 JSON/],
      ['oversized', [[hello], [Buffer.alloc(20000, 0x20)]], /exceeds/],
      ['fd where none belongs', [[hello], [Buffer.from('{"op":"status","id":1}'), [0]]], /carried 1 fds/],
      ['hello twice', [[hello], [hello]], /hello sent twice/],
      ['connect flood', [[hello], ...Array.from({ length: 200 }, (_, i) => [Buffer.from(`{"op":"connect","id":${i + 1},"service":"orders"}`)] as [Buffer])], /connects per second/],
    ];
    const before = fdCount();
    for (const [what, send, why] of cases) {
      const { replies } = await rawExchange(address, send);
      const bye = replies.find((r) => r.op === 'bye');
      assert.ok(bye, `${what}: a bye with a reason (got ${JSON.stringify(replies).slice(0, 300)})`);
      assert.match(String(bye!.reason), why, what);
      const ch = await good.connect('orders');
      assert.is((await ch.request(Buffer.from(what))).toString(), what, `still serving after ${what}`);
      await ch.close();
    }
    assert.ok(fdCount() <= before + 2, `fds ${before} -> ${fdCount()}`);
  }));

  test('an instance that stops reading its control socket leaves the rotation instead of piling up fds', () => scratch('unread', 30000, async (s) => {
    const { address } = await inProcessAgent(s);
    const stuck = await FdSocket.connect(address, { maxMessageSize: 65536, maxFds: 1 });
    stuck.on('error', () => {});
    s.defer(() => stuck.close());
    const registered = new Promise((resolve) => stuck.on('message', (d, fds) => { closeAll(fds); if (d.toString().includes('"ok"')) resolve(undefined); }));
    stuck.send(Buffer.from('{"op":"hello","v":1}'));
    stuck.send(Buffer.from('{"op":"register","id":1,"name":"orders"}'));
    await registered;
    stuck.pause();
    const raw = await FdSocket.connect(address, { maxMessageSize: 65536, maxFds: 1 });
    raw.on('error', () => {});
    s.defer(() => raw.close());
    const before = fdCount();
    let brokered = 0;
    const refused = await new Promise<Record<string, unknown>>((resolve) => {
      let id = 0;
      const next = (): void => raw.send(Buffer.from(`{"op":"connect","id":${++id},"service":"orders"}`));
      raw.on('message', (d, fds) => {
        closeAll(fds);
        const m = JSON.parse(d.toString()) as Record<string, unknown>;
        if (m.op === 'welcome') return next();
        if (m.op === 'channel') { brokered++; return next(); }
        resolve(m);
      });
      raw.send(Buffer.from('{"op":"hello","v":1}'));
    });
    assert.is(refused.code, 'ERR_NO_INSTANCE', JSON.stringify(refused));
    // The kernel buffer holds some in flight; the agent's own queue is bounded (64 KiB of messages).
    assert.ok(fdCount() - before < 1000, `agent holds ${fdCount() - before} more fds after ${brokered} brokered`);
    console.log(`  [measure] a non-reading instance left the rotation after ${brokered} connects; ${fdCount() - before} fds held meanwhile`);
  }));

  test('per-identity limits: control connections, registrations, open channels', () => scratch('limits', 30000, async (s) => {
    const { address } = await inProcessAgent(s, {
      services: { orders: { serve: ['cluster.local/ns/shop/*'] }, a: { serve: ['*'] }, b: { serve: ['*'] } },
      limits: { controlConnectionsPerIdentity: 3, registrationsPerIdentity: 2, connectionsPerIdentity: 2 },
    });
    const c1 = await client(s, address);
    const c2 = await client(s, address);
    await c1.register('orders', {}, (ch) => { ch.handle((r) => r); s.defer(() => ch.destroy()); });
    await c1.register('a', {}, () => {});
    const third = await c2.register('b', {}, () => {}).then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(third, 'ERR_AGENT_LIMIT'), String(third));
    const x = await c2.connect('orders');
    const y = await c2.connect('orders');
    s.defer(() => { x.destroy(); y.destroy(); });
    const z = await c2.connect('orders').then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(z, 'ERR_AGENT_LIMIT'), String(z));
    await client(s, address);
    const fourth = await connectAgent({ address, reconnect: false }).then((c) => { c.close(); return undefined; }, (e: RingwireError) => e);
    assert.ok(fourth, 'a fourth control connection of one identity is refused');
  }));

  test('1,000 brokered connect/close cycles leave no fds behind and no steady heap growth', () => scratch('fd growth', 120000, async (s) => {
    const { agent, address } = await inProcessAgent(s);
    const server = await client(s, address);
    await server.register('orders', {}, (ch) => { ch.handle((r) => r); });
    const c = await client(s, address);
    const cycle = async (): Promise<void> => {
      const ch = await c.connect('orders');
      await ch.request(Buffer.from('x'));
      await ch.close();
    };
    const gc = (globalThis as { gc?: () => void }).gc;
    const heap = async (): Promise<number> => {
      // Mapped rings are released by finalizers: let them run between two collections.
      gc?.();
      await new Promise((r) => setTimeout(r, 50));
      gc?.();
      return process.memoryUsage().heapUsed;
    };
    for (let i = 0; i < 100; i++) await cycle();
    const before = fdCount();
    const t0 = performance.now();
    for (let i = 0; i < 500; i++) await cycle();
    const h1 = await heap();
    for (let i = 0; i < 500; i++) await cycle();
    const ms = performance.now() - t0;
    const h2 = await heap();
    while (agent.status().connections.length > 0) await new Promise((r) => setTimeout(r, 5));
    const after = fdCount();
    assert.ok(after <= before + 4, `fds ${before} -> ${after}`);
    // The first cycles warm up the JIT and caches; a leak of 2 KiB per cycle would still show here.
    if (gc) assert.ok(h2 - h1 < 1 << 20, `heap grew ${h2 - h1} bytes over the last 500 cycles`);
    assert.equal(agent.status().connections, []);
    assert.is(agent.status().services.orders![0]!.inFlight, 0);
    console.log(`  [measure] 1,000 connect+request+close cycles in ${ms.toFixed(0)} ms (${(ms / 1000).toFixed(2)} ms each); fds ${before} -> ${after}; heap over the last 500: ${gc ? `${((h2 - h1) / 1024).toFixed(0)} KiB` : 'not measured (no --expose-gc)'}`);
  }));
}

test.run();
