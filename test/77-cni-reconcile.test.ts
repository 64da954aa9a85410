// The pod manager across restarts and over time: pods recorded in the state file get their sockets
// back when the agent starts again, a namespace that went away meanwhile is dropped, a sweep drops a
// pod whose namespace vanished without DEL, and 200 ADD/DEL cycles leave no fd, socket or listener
// behind. The plugin side runs in-process here (runPlugin, the same code the binary runs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { addonAvailable, native } from '../lib/native/native.js';
import { FdSocket } from '../lib/native/unix-socket.js';
import { runPlugin } from '../lib/cni/plugin.js';
import { startPodManager } from '../lib/cni/pod-manager.js';
import { requireOrSkip, scratch } from './helpers/index.js';
import { askFromPod, EchoIdentityHost, hasCniTools, TestNode } from './helpers/cni.js';

const run = requireOrSkip('native addon', addonAvailable()) && requireOrSkip('root and ip netns', hasCniTools());

const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [] };

function cni(command: string, containerId: string, netns: string, socket: string, pod = containerId): Promise<{ exitCode: number; stdout: string }> {
  const env = { CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_ARGS: `K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=${pod};K8S_POD_UID=uid-${pod}` };
  return runPlugin(env, JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'ringwire-cni', agentSocket: socket, prevResult }));
}

/** This process's open fds by kind: sockets, namespaces, other. */
function fdKinds(): { sockets: number; netns: number; total: number } {
  let sockets = 0;
  let netns = 0;
  const fds = readdirSync('/proc/self/fd');
  for (const fd of fds) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd readdir itself used
    }
    if (target.startsWith('socket:')) sockets++;
    else if (target.startsWith('net:')) netns++;
  }
  return { sockets, netns, total: fds.length };
}

/** The network namespace of every thread of this process: the namespace switch must never leak into one. */
function threadNamespaces(): string[] {
  return readdirSync('/proc/self/task').map((t) => {
    try {
      return readlinkSync(`/proc/self/task/${t}/ns/net`);
    } catch {
      return 'gone';
    }
  });
}

/** Abstract names listening inside a namespace, from that namespace's /proc/net/unix. */
async function abstractListeners(node: TestNode, netns: string): Promise<string[]> {
  const r = await node.exec(['cat', '/proc/net/unix'], netns);
  return r.stdout.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 8 && f[7]!.startsWith('@')).map((f) => f[7]!);
}

if (run) {
  test('restart: recorded pods get their sockets back, a namespace gone meanwhile is dropped; a sweep drops one gone later', () => scratch('reconcile', 60000, async (s) => {
    const node = new TestNode(s, '77a');
    const socket = join(s.dir, 'cni.sock');
    const stateFile = join(s.dir, 'pods.json');
    const logs: Array<Record<string, unknown>> = [];
    const log = (e: Record<string, unknown>): void => void logs.push(e);
    const a = node.addPod('a');
    const b = node.addPod('b');

    const host1 = new EchoIdentityHost();
    s.defer(() => host1.closeAll());
    const pm1 = await startPodManager({ host: host1, eventSocket: socket, stateFile, sweepMs: 0, log });
    assert.is((await cni('ADD', 'ca', a, socket, 'pod-a')).exitCode, 0);
    assert.is((await cni('ADD', 'cb', b, socket, 'pod-b')).exitCode, 0);
    assert.equal((JSON.parse(readFileSync(stateFile, 'utf8')) as { pods: Array<{ containerId: string }> }).pods.map((p) => p.containerId), ['ca', 'cb']);
    await pm1.close(); // the agent stops: its pod sockets go with it, the state file stays
    assert.is((await askFromPod(node, a)).ok, false, 'no socket while the agent is down');
    node.removeNs(b); // pod b is deleted while the agent is down

    const host2 = new EchoIdentityHost();
    s.defer(() => host2.closeAll());
    const pm2 = await startPodManager({ host: host2, eventSocket: socket, stateFile, sweepMs: 0, log });
    s.defer(() => pm2.close());
    assert.equal(pm2.pods().map((p) => p.containerId), ['ca']);
    const got = await askFromPod(node, a);
    assert.is((got.got as { identity: { pod: string } }).identity.pod, 'pod-a', JSON.stringify(got));
    assert.ok(logs.some((l) => l.event === 'pod-removed' && l.containerId === 'cb' && /gone/.test(String(l.reason))));
    assert.ok(logs.some((l) => l.event === 'pod-restored' && l.containerId === 'ca'));
    assert.is((await cni('CHECK', 'ca', a, socket, 'pod-a')).exitCode, 0, 'CHECK passes after the restart');

    node.removeNs(a); // the listener still pins the namespace; the path is gone
    pm2.sweep();
    assert.equal(pm2.pods(), []);
    assert.equal(host2.live, []);
    assert.equal((JSON.parse(readFileSync(stateFile, 'utf8')) as { pods: unknown[] }).pods, []);
  }));

  test('garbage on the event socket: each connection gets a reason, fds are closed, non-root callers are refused, the manager keeps serving', () => scratch('event bad input', 30000, async (s) => {
    const node = new TestNode(s, '77c');
    const socket = join(s.dir, 'cni.sock');
    const host = new EchoIdentityHost();
    s.defer(() => host.closeAll());
    const logs: Array<Record<string, unknown>> = [];
    const pm = await startPodManager({ host, eventSocket: socket, stateFile: join(s.dir, 'pods.json'), sweepMs: 0, log: (e) => void logs.push(e) });
    s.defer(() => pm.close());
    const ask = async (data: Buffer, fds: number[] = []): Promise<Record<string, unknown>> => {
      const sock = await FdSocket.connect(socket);
      try {
        return await new Promise((resolve, reject) => {
          sock.once('message', (d) => resolve(JSON.parse(d.toString()) as Record<string, unknown>));
          sock.once('close', () => reject(new Error('closed without a reply')));
          sock.send(data, fds);
        });
      } finally {
        sock.close();
      }
    };
    assert.match(String((await ask(Buffer.from('\x00\xff garbage'))).message), /not JSON/);
    const before = fdKinds(); // after one round, so the loop's lazily made handles are in it
    assert.match(String((await ask(Buffer.from('{"v":1,"op":"check","containerId":"c","ifName":"eth0"}'))).message), /needs netns/);
    assert.match(String((await ask(Buffer.from(JSON.stringify({ v: 1, op: 'add', containerId: 'c', ifName: 'eth0', netns: '/x', pad: 'y'.repeat(20000) })))).message), /exceeds/);
    assert.match(String((await ask(Buffer.from('{"v":9,"op":"add"}'))).message), /version/);
    const efd = native().eventfdCreate(false);
    const withFd = await ask(Buffer.from('{"v":1,"op":"del","containerId":"c","ifName":"eth0"}'), [efd]);
    native().close(efd);
    assert.equal([withFd.ok, withFd.code], [false, 'bad-request']);
    assert.equal(fdKinds(), before, 'the passed fd was closed, every connection released');
    // A caller that is not root: the socket file (0600) keeps it out; on an abstract name, which has
    // no permissions, SO_PEERCRED refuses it before its event is read.
    const worker = fileURLToPath(new URL('./workers/cni-pod.js', import.meta.url));
    // Asynchronously: the manager answering it lives on this very event loop.
    const asUser = async (address: string): Promise<string> => (await promisify(execFile)('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, worker, address])).stdout;
    assert.match(await asUser(socket), /EACCES/);
    const abstract = `@rw77c-${process.pid}`;
    const pm2 = await startPodManager({ host, eventSocket: abstract, stateFile: join(s.dir, 'pods2.json'), sweepMs: 0, log: () => undefined });
    s.defer(() => pm2.close());
    assert.match(await asUser(abstract), /uid 1000 may not send CNI events/);
    // Still serving.
    assert.is((await cni('ADD', 'after', node.addPod('ok'), socket)).exitCode, 0);
    assert.equal(pm.pods().map((p) => p.containerId), ['after']);
  }));

  test('200 ADD/DEL cycles: no leaked fds, namespaces, sockets or listeners', () => scratch('cycles', 150000, async (s) => {
    const node = new TestNode(s, '77b');
    const socket = join(s.dir, 'cni.sock');
    const host = new EchoIdentityHost();
    s.defer(() => host.closeAll());
    const pm = await startPodManager({ host, eventSocket: socket, stateFile: join(s.dir, 'pods.json'), sweepMs: 0, log: () => undefined });
    s.defer(() => pm.close());
    const pods = [node.addPod('p0'), node.addPod('p1'), node.addPod('p2'), node.addPod('p3')];
    // Warm up once so lazily created handles (the addon, the loop) are in the baseline.
    assert.is((await cni('ADD', 'warm', pods[0]!, socket)).exitCode, 0);
    assert.is((await cni('DEL', 'warm', pods[0]!, socket)).exitCode, 0);
    const before = fdKinds();
    const ownNs = readlinkSync('/proc/self/ns/net');
    for (let i = 0; i < 200; i++) {
      const netns = pods[i % pods.length]!;
      const add = await cni('ADD', `c${i}`, netns, socket);
      assert.is(add.exitCode, 0, add.stdout);
      if (i % 50 === 0) assert.ok((await askFromPod(node, netns)).ok, `cycle ${i}: the pod's socket answers`);
      const del = await cni('DEL', `c${i}`, netns, socket);
      assert.equal([del.exitCode, del.stdout], [0, '']);
    }
    const after = fdKinds();
    assert.equal(after, before, `fds before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    assert.is(after.netns, 0, 'no namespace fd is ever kept');
    const threadsAfter = threadNamespaces();
    assert.ok(threadsAfter.every((ns) => ns === ownNs || ns === 'gone'), `every thread still in ${ownNs}: ${threadsAfter.join(' ')}`);
    assert.equal(host.live, []);
    assert.equal(pm.pods(), []);
    for (const netns of pods) assert.equal(await abstractListeners(node, netns), [], `nothing listens in ${netns}`);
  }));
}

test.run();
