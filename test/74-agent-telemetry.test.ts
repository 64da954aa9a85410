// Telemetry and lifecycle: Prometheus metrics over loopback HTTP and a UNIX socket fed by the
// peers' counter reports, weighted routing through a live agent, SIGTERM draining (channels stay),
// and a caller that exits before the agent reads its identity (the pidfd check refuses it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { addonAvailable } from '../lib/native/native.js';
import { FdSocket } from '../lib/native/unix-socket.js';
import { isRingwireError, type RingwireError } from '../lib/errors.js';
import { connectAgent, startAgent, type AgentClient } from '../lib/agent/index.js';
import { requireOrSkip, scratch, type Scratch } from './helpers/index.js';
import { startAgentProcess, uniqueAgentAddress, agentClient, agentConfig } from './helpers/agent.js';

const run = requireOrSkip('native addon', addonAvailable());

const config = agentConfig;

const client = agentClient;

function get(o: { url?: string; socketPath?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = o.url ? request(`${o.url}/metrics`) : request({ socketPath: o.socketPath, path: '/metrics' });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

function metric(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

if (run) {
  test('metrics on a loopback port and a UNIX socket: opened, denied, active, bytes from reports, latency', () => scratch('agent metrics', 30000, async (s) => {
    const address = uniqueAgentAddress('74');
    const socketPath = join(s.dir, 'metrics.sock');
    const agent = await startAgent({
      config: config(address, { policies: [{ name: 'no-payments', action: 'DENY', selector: { services: ['payments'] }, rules: [{}] }] }),
      metrics: { port: 0, socket: socketPath }, log: () => {},
    });
    s.defer(() => agent.close());
    const url = agent.metricsAddresses.find((a) => a.startsWith('http://'))!;
    assert.ok(url, String(agent.metricsAddresses));
    const server = await client(s, address);
    await server.register('orders', {}, (ch) => { ch.handle((r) => r); s.defer(() => ch.destroy()); });
    const c = await client(s, address);
    const ch = await c.connect('orders');
    s.defer(() => ch.destroy());
    for (let i = 0; i < 10; i++) await ch.request(Buffer.alloc(100));
    const denied = await c.connect('payments').then(() => undefined, (e: RingwireError) => e);
    assert.ok(isRingwireError(denied, 'ERR_POLICY_DENIED'));
    c.report();
    const src = 'source="spiffe://cluster.local/ns/shop/sa/orders"';
    let text = '';
    for (;;) {
      text = await get({ url });
      if ((metric(text, 'ringwire_agent_bytes_total', `${src},destination="orders"`) ?? 0) >= 1000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.is(metric(text, 'ringwire_agent_connections_opened_total', `${src},destination="orders"`), 1);
    assert.is(metric(text, 'ringwire_agent_connections_active', `${src},destination="orders"`), 1);
    assert.is(metric(text, 'ringwire_agent_connections_denied_total', `${src},destination="payments",policy="no-payments"`), 1);
    assert.is(metric(text, 'ringwire_agent_messages_total', `${src},destination="orders"`), 10);
    assert.ok(text.includes('ringwire_agent_connect_duration_seconds_count 1'), 'brokering latency histogram');
    assert.ok(text.includes('ringwire_agent_channel_open_seconds_count 1'), 'connect-to-open latency as the client reports it');
    assert.ok(text.includes('process_cpu_user_seconds_total'), 'default process metrics');
    const overSocket = await get({ socketPath });
    assert.ok(overSocket.includes('ringwire_agent_connections_opened_total'), 'served on the UNIX socket too');
  }));

  test('weighted routing 90/10 by version through a live agent', () => scratch('agent weights', 30000, async (s) => {
    const address = uniqueAgentAddress('74');
    let i = 0;
    const agent = await startAgent({
      config: config(address, { services: { orders: { serve: ['cluster.local/ns/shop/sa/orders'], routing: { weights: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] } } } }),
      metrics: false, log: () => {}, random: () => (i++ % 20) / 20,
    });
    s.defer(() => agent.close());
    for (const version of ['v1', 'v2']) {
      const srv = await client(s, address);
      await srv.register('orders', { version }, (ch) => { ch.handle((r) => Buffer.from(`${version}:${r.toString()}`)); s.defer(() => ch.destroy()); });
    }
    const c = await client(s, address);
    const counts: Record<string, number> = {};
    for (let n = 0; n < 20; n++) {
      const ch = await c.connect('orders');
      const v = (await ch.request(Buffer.from('x'))).toString().split(':')[0]!;
      counts[v] = (counts[v] ?? 0) + 1;
      await ch.close();
    }
    assert.equal(counts, { v1: 18, v2: 2 });
  }));

  test('SIGTERM drains: the agent exits 0, peers get bye, brokered channels keep flowing', () => scratch('agent drain', 30000, async (s) => {
    const address = uniqueAgentAddress('74');
    const agent = await startAgentProcess(s.children, s.dir, config(address));
    const server = await client(s, address);
    await server.register('orders', {}, (ch) => { ch.handle((r) => r); s.defer(() => ch.destroy()); });
    const c = await client(s, address);
    const ch = await c.connect('orders');
    s.defer(() => ch.destroy());
    const bye = new Promise<RingwireError>((resolve) => c.once('disconnect', resolve));
    const exited = new Promise<number | null>((resolve) => agent.child.once('exit', resolve));
    agent.child.kill('SIGTERM');
    assert.is(await exited, 0);
    const err = await bye;
    assert.ok(isRingwireError(err, 'ERR_AGENT_UNAVAILABLE') && err.message.includes('shutting down'), String(err));
    assert.is((await ch.request(Buffer.from('still'))).toString(), 'still');
    assert.ok(agent.stderr.all.some((l) => l.includes('draining')));
  }));

  test('a caller that exits before the agent reads its identity is refused (pidfd check)', () => scratch('agent pid race', 30000, async (s) => {
    const address = uniqueAgentAddress('74');
    const agent = await startAgentProcess(s.children, s.dir, config(address));
    // Freeze the agent so the connection waits in its backlog while the caller exits and is reaped.
    agent.child.kill('SIGSTOP');
    const unixSocket = new URL('../lib/native/unix-socket.js', import.meta.url).href;
    const script = `import { FdSocket } from '${unixSocket}'; const s = await FdSocket.connect(${JSON.stringify(address)}); s.send(Buffer.from('{"op":"hello","v":1}')); process.exit(7);`;
    const caller = s.children.add(spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' }));
    assert.is(await new Promise((resolve) => caller.once('exit', resolve)), 7, 'the caller connected, then exited and was reaped');
    agent.child.kill('SIGCONT');
    const line = await agent.stderr.waitFor((l) => l.includes('refused a control connection'));
    assert.match(line, /exited|gone/); // SO_PEERPIDFD: fdinfo says it exited; pidfd_open fallback: ESRCH
    // A live caller is still served.
    const ok = await client(s, address);
    assert.is(ok.identity, 'spiffe://cluster.local/ns/shop/sa/orders');
    const raw = await FdSocket.connect(address);
    raw.close();
  }));
}

test.run();
