// Containers: two "pods" are processes in separate network namespaces with no network between them.
// (a) They talk through a socket path both can see, as a hostPath/CNI mount would give them.
// (b) A node agent enters pod A's namespace (nsenter --net) and listens on an abstract name there:
//     pod A reaches it; pod B and the host, in other namespaces, cannot even see the name.
// Namespaces are named per test run and deleted afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { connect } from '../lib/index.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';
import { startPeer } from './workers/channel-spawn.js';

function hasTools(): boolean {
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

const run = requireOrSkip('native addon', addonAvailable()) && requireOrSkip('root with ip netns and nsenter', hasTools());

function netnsOf(pid: number | string): string {
  return execFileSync('readlink', [`/proc/${pid}/ns/net`]).toString().trim();
}

async function withPods(fn: (a: string, b: string, children: Children, dir: string) => Promise<void>): Promise<void> {
  const a = `rw56-${process.pid}-a`;
  const b = `rw56-${process.pid}-b`;
  const children = new Children();
  const { dir, cleanup } = makeTempDir();
  chmodSync(dir, 0o755);
  execFileSync('ip', ['netns', 'add', a]);
  try {
    execFileSync('ip', ['netns', 'add', b]);
    await fn(a, b, children, dir);
  } finally {
    await children.killAll();
    for (const ns of [a, b]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // never created
      }
    }
    cleanup();
  }
  assert.not.ok(existsSync(`/run/netns/${a}`) || existsSync(`/run/netns/${b}`), 'namespaces removed');
}

if (run) {
  test('pods in separate network namespaces talk through a shared socket path', () => withTimeout('shared path', 20000, () => withPods(async (a, b, children, dir) => {
    const address = join(dir, 'svc.sock');
    const server = await startPeer(children, { role: 'serve', address, mode: 0o666, name: 'pod-a' }, ['ip', 'netns', 'exec', a]);
    assert.is(server.first.ready, address);
    const client = await startPeer(children, { role: 'connect', address, count: 20, name: 'pod-b' }, ['ip', 'netns', 'exec', b]);
    assert.is(client.first.done, 20, JSON.stringify(client.first));
    assert.is((client.first.peer as { pid: number }).pid, server.child.pid, 'SO_PEERCRED crosses namespaces');
    const nsA = netnsOf(server.child.pid!);
    const nsB = execFileSync('ip', ['netns', 'exec', b, 'readlink', '/proc/self/ns/net']).toString().trim();
    assert.ok(nsA !== nsB && nsA !== netnsOf(process.pid), `three distinct namespaces: ${nsA}, ${nsB}, host ${netnsOf(process.pid)}`);
    // Pod B has nothing but a loopback that is down: no network path to pod A exists.
    const links = execFileSync('ip', ['netns', 'exec', b, 'ip', '-o', 'link']).toString().trim().split('\n');
    assert.is(links.length, 1);
    assert.match(links[0]!, /lo: .*state DOWN/);
  })));

  test('a node agent enters a pod namespace and serves an abstract socket only that pod can reach', () => withTimeout('agent', 20000, () => withPods(async (a, b, children) => {
    const address = `@ringwire-agent-${process.pid}`;
    const agent = await startPeer(children, { role: 'serve', address, name: 'node-agent' }, ['nsenter', `--net=/run/netns/${a}`]);
    assert.is(agent.first.ready, address);
    assert.is(netnsOf(agent.child.pid!), execFileSync('ip', ['netns', 'exec', a, 'readlink', '/proc/self/ns/net']).toString().trim(), 'the agent listens inside pod A');
    const podA = await startPeer(children, { role: 'connect', address, count: 20, name: 'pod-a-app' }, ['ip', 'netns', 'exec', a]);
    assert.is(podA.first.done, 20, JSON.stringify(podA.first));
    assert.is((podA.first.peer as { name: string }).name, 'node-agent');
    const podB = await startPeer(children, { role: 'connect', address, name: 'pod-b-app' }, ['ip', 'netns', 'exec', b]);
    assert.match(String(podB.first.error), /ECONNREFUSED|refused/i, 'pod B cannot see pod A\'s abstract name');
    const fromHost = await connect(address, { connectTimeoutMs: 500 }).then(() => null, (e) => e);
    assert.ok(isRingwireError(fromHost), `the host namespace cannot see it either: ${fromHost}`);
  })));
}

test.run();
