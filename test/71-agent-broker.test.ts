// The agent as a real process (`ringwire agent --config`): register, connect('svc:...') brokered
// through a socketpair, the agent never mapping a ring, policy denial, revocation on SIGHUP reload,
// bad configs at start and on reload, `ringwire agent status`, access-log lines.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { promisify } from 'node:util';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError, type RingwireError } from '../lib/errors.js';
import { connectAgent, type AgentClient } from '../lib/agent/index.js';
import type { Channel } from '../lib/channel/channel.js';
import { requireOrSkip, scratch, type Scratch } from './helpers/index.js';
import { cliPath, startAgentPeer, startAgentProcess, uniqueAgentAddress, agentClient, agentConfig } from './helpers/agent.js';

const run = requireOrSkip('native addon', addonAvailable());

const baseConfig = agentConfig;

const client = agentClient;

/** Registers `orders` answering `v1:<request>`; resolves the server-side channels as they open. */
async function serveOrders(s: Scratch, address: string, opened: Channel[] = []): Promise<Channel[]> {
  const server = await client(s, address);
  await server.register('orders', { version: 'v1' }, (ch) => {
    opened.push(ch);
    ch.handle((req) => Buffer.from(`v1:${req.toString()}`));
    s.defer(() => ch.destroy());
  });
  return opened;
}

function closedWith(ch: Channel): Promise<RingwireError | undefined> {
  return ch.closed ? ch.whenClosed() : new Promise((resolve) => ch.once('close', resolve));
}

function memfdNames(pid: number | 'self'): string[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes('/memfd:')).map((l) => l.slice(l.indexOf('/memfd:')));
}

if (run) {
  test('register + connect through the agent; the agent process never maps a ring; status and access log', () => scratch('agent broker', 30000, async (s) => {
    const address = uniqueAgentAddress('71');
    const agent = await startAgentProcess(s.children, s.dir, baseConfig(address));
    await serveOrders(s, address);
    const c = await client(s, address);
    assert.is(c.identity, 'spiffe://cluster.local/ns/shop/sa/orders', 'identity from the uid rule');
    const ch = await c.connect('orders');
    s.defer(() => ch.destroy());
    for (let i = 0; i < 100; i++) assert.is((await ch.request(Buffer.from(`m${i}`))).toString(), `v1:m${i}`);
    assert.is(ch.peer.pid, process.pid, 'peer pid as the agent read it from the kernel');
    // Our process maps ring memfds (so the check can see them); the agent maps none.
    const ours = memfdNames('self');
    assert.ok(ours.length > 0, 'this process maps the rings');
    const theirs = memfdNames(agent.child.pid!);
    assert.equal(theirs.filter((n) => ours.includes(n)), [], `agent maps ${theirs.join(', ')}`);
    const agentFds = readdirSync(`/proc/${agent.child.pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${agent.child.pid}/fd/${fd}`); } catch { return ''; } });
    assert.equal(agentFds.filter((l) => l.startsWith('/memfd:')), [], 'nor holds a ring memfd (libuv has eventfds of its own, so those say nothing)');
    c.report();
    const { stdout } = await promisify(execFile)(process.execPath, [cliPath(), 'agent', 'status', '--address', address]);
    assert.match(stdout, /orders .*pid \d+ .*spiffe:\/\/cluster.local\/ns\/shop\/sa\/orders .*version v1 .*in-flight 1/);
    assert.match(stdout, /connections: 1/);
    const open = JSON.parse(await agent.stderr.waitFor((l) => l.includes('"event":"open"'))) as Record<string, any>;
    assert.is(open.dst.service, 'orders');
    assert.is(open.src.identity, 'spiffe://cluster.local/ns/shop/sa/orders');
    await ch.close();
    const closeLine = JSON.parse(await agent.stderr.waitFor((l) => l.includes('"event":"close"'))) as Record<string, any>;
    assert.ok(closeLine.bytes_sent >= 100 * 2, `bytes reported at close: ${closeLine.bytes_sent}`);
    assert.ok(closeLine.messages_received >= 100);
    assert.type(closeLine.duration_ms, 'number');
  }));

  test('a denied connect gets ERR_POLICY_DENIED naming the policy, and a deny log line; squatting is refused', () => scratch('agent deny', 30000, async (s) => {
    const address = uniqueAgentAddress('71');
    const agent = await startAgentProcess(s.children, s.dir, baseConfig(address, {
      policies: [{ name: 'only-web', action: 'ALLOW', selector: { services: ['orders'] }, rules: [{ from: [{ source: { namespaces: ['web'] } }] }] }],
    }));
    await serveOrders(s, address);
    const c = await client(s, address);
    const err = await c.connect('orders').then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(err, 'ERR_POLICY_DENIED'), String(err));
    assert.match(err!.message, /only-web/);
    const deny = JSON.parse(await agent.stderr.waitFor((l) => l.includes('"event":"deny"'))) as Record<string, any>;
    assert.is(deny.policy, 'only-web');
    const squat = await c.register('payments', {}, () => {}).then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(squat, 'ERR_POLICY_DENIED'), 'a name nobody may serve');
    const unknown = await c.connect('nothing-here').then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(unknown, 'ERR_NO_INSTANCE'), String(unknown));
  }));

  test('SIGHUP reload revokes a live channel at both peers; a bad reload keeps the old config', () => scratch('agent revoke', 30000, async (s) => {
    const address = uniqueAgentAddress('71');
    const agent = await startAgentProcess(s.children, s.dir, baseConfig(address));
    const serverSide = await serveOrders(s, address);
    const c = await client(s, address);
    const ch = await c.connect('orders');
    assert.is((await ch.request(Buffer.from('x'))).toString(), 'v1:x');
    const clientClosed = closedWith(ch);
    const serverClosed = closedWith(serverSide[0]!);
    agent.writeConfig(baseConfig(address, { policies: [{ name: 'lockdown', action: 'DENY', rules: [{}] }] }));
    const hup = performance.now();
    agent.child.kill('SIGHUP');
    const [ce, se] = await Promise.all([clientClosed, serverClosed]);
    console.log(`  [measure] SIGHUP to both peers closed (ERR_POLICY_REVOKED): ${(performance.now() - hup).toFixed(1)} ms, including the agent re-reading its file`);
    assert.ok(isRingwireError(ce, 'ERR_POLICY_REVOKED'), `client: ${String(ce)}`);
    assert.ok(isRingwireError(se, 'ERR_POLICY_REVOKED'), `server: ${String(se)}`);
    assert.match(ce!.message, /lockdown/);
    await agent.stderr.waitFor((l) => l.includes('"event":"revoke"'));
    const mark = agent.stderr.all.length;
    agent.writeConfig('version: 1\npolicies: [{ name: x, action: PERHAPS }]\n');
    agent.child.kill('SIGHUP');
    const line = await agent.stderr.waitFor((l) => l.includes('reload failed'), mark);
    assert.match(line, /\/policies\/0\/action/);
    const err = await c.connect('orders').then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(err, 'ERR_POLICY_DENIED') && err.message.includes('lockdown'), 'old config still in force');
  }));

  test("connect('svc:NAME') uses a shared agent client that lets the process exit once its channels closed", () => scratch('agent svc', 30000, async (s) => {
    const address = uniqueAgentAddress('71');
    await startAgentProcess(s.children, s.dir, baseConfig(address));
    await serveOrders(s, address);
    const peer = await startAgentPeer(s.children, { address, svc: 'orders' });
    assert.equal(peer.first.answers, ['v1:svc'], JSON.stringify(peer.first));
    const code = peer.child.exitCode ?? await new Promise((resolve) => peer.child.once('exit', resolve));
    assert.is(code, 0, 'exited by itself');
  }));

  test('a bad config at start exits non-zero naming the offending path', () => scratch('agent bad config', 20000, async (s) => {
    const path = join(s.dir, 'bad.yaml');
    writeFileSync(path, stringify(baseConfig(uniqueAgentAddress('71'), { limits: { connectionsPerIdentity: -1 } })));
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = s.children.add(spawn(process.execPath, [cliPath(), 'agent', '--config', path], { stdio: ['ignore', 'ignore', 'pipe'] }));
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
      child.once('close', (code) => resolve({ code, stderr }));
    });
    assert.is(result.code, 1, result.stderr);
    assert.match(result.stderr, /ERR_AGENT_CONFIG/);
    assert.match(result.stderr, /bad\.yaml: \/limits\/connectionsPerIdentity/);
  }));
}

test.run();
