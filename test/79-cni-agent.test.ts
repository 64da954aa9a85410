// The whole node: the real agent (lib/agent) with the pod manager embedded, Debian's bridge then
// ringwire-cni exec'd per pod, and pods that share no filesystem and no route reaching each other by
// service name through their own @ringwire. The agent knows each pod by the socket it came in
// through: registration rights and policy follow the pod's identity, not its uid.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { addonAvailable } from '../lib/native/native.js';
import { startAgent } from '../lib/agent/index.js';
import { startPodManager } from '../lib/cni/pod-manager.js';
import { requireOrSkip, scratch, type Children } from './helpers/index.js';
import { bridgeConflist, hasCniTools, Runtime, TestNode, type Attachment } from './helpers/cni.js';

const run = requireOrSkip('native addon', addonAvailable()) && requireOrSkip('root, ip netns and Debian containernetworking-plugins', hasCniTools());
const PEER = fileURLToPath(new URL('./workers/agent-peer.js', import.meta.url));
const CLI = fileURLToPath(new URL('../bin/ringwire.js', import.meta.url));

/** Starts the agent's test peer inside a pod namespace as `uid`; resolves with its first JSON line. */
async function podProcess(children: Children, netns: string, job: object, uid = 1000): Promise<{ first: Record<string, unknown>; lines: AsyncIterator<string>; stop: () => void }> {
  const ns = netns.replace('/run/netns/', '');
  const child = children.add(spawn('ip', ['netns', 'exec', ns, 'setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, PEER, JSON.stringify(job)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const l = await lines.next();
  if (l.done) throw new Error(`pod process ${JSON.stringify(job)} exited without a word`);
  return { first: JSON.parse(l.value) as Record<string, unknown>, lines, stop: () => child.stdin!.end() };
}

const k8s = (name: string): Record<string, string> => ({ IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: name, K8S_POD_UID: `uid-${name}` });

if (run) {
  test('pods on separate networks reach a service by name through their own @ringwire; policy follows the pod, not the uid', () => scratch('node', 90000, async (s) => {
    const node = new TestNode(s, '79');
    const serviceAccounts: Record<string, string> = { 'orders-1': 'orders', 'web-1': 'web', 'batch-1': 'batch' };
    const agent = await startAgent({
      config: {
        version: 1,
        trustDomain: 'cluster.local',
        services: { orders: { serve: ['cluster.local/ns/shop/sa/orders'] } },
        policies: [{ name: 'orders-from-web', action: 'ALLOW', selector: { services: ['orders'] }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }] }],
      },
      listen: [`@rw79-${process.pid}-node`],
      metrics: false,
      log: () => undefined,
    });
    s.defer(() => agent.close());
    const socket = join(s.dir, 'cni.sock');
    const pm = await startPodManager({ host: agent, eventSocket: socket, stateFile: join(s.dir, 'pods.json'), sweepMs: 0, serviceAccountOf: (pod) => serviceAccounts[pod.name] ?? 'default', log: () => undefined });
    s.defer(() => pm.close());

    // Three pods, each on its own bridge network without a gateway: no route between any two.
    const pods: Attachment[] = ['orders-1', 'web-1', 'batch-1'].map((name, i) => ({ containerId: `c-${name}`, netns: node.addPod(name), ifName: 'eth0', args: k8s(name) }));
    const nets = pods.map((_, i) => new Runtime(node, bridgeConflist(s.dir, `rw79b${i}`, `10.79.${i}.0/24`, socket)));
    for (const [i, pod] of pods.entries()) {
      const runs = await nets[i]!.add(pod);
      assert.equal(runs.map((r) => r.code), [0, 0], runs.map((r) => r.stdout + r.stderr).join('\n'));
    }
    assert.ok((await node.exec(['ip', 'route', 'get', '10.79.0.2'], pods[1]!.netns)).code !== 0, 'web has no route to orders');
    assert.equal(agent.status().listeners.filter((l) => l.identity).map((l) => l.identity).sort(), ['spiffe://cluster.local/ns/shop/sa/batch', 'spiffe://cluster.local/ns/shop/sa/orders', 'spiffe://cluster.local/ns/shop/sa/web']);

    // Every pod process runs as uid 1000: only the socket tells them apart.
    const server = await podProcess(s.children, pods[0]!.netns, { address: '@ringwire', serve: 'orders', version: 'v1' });
    assert.equal([server.first.ready, server.first.identity], [true, 'spiffe://cluster.local/ns/shop/sa/orders'], JSON.stringify(server.first));
    const squatter = await podProcess(s.children, pods[2]!.netns, { address: '@ringwire', serve: 'orders' });
    assert.is(squatter.first.error, 'ERR_POLICY_DENIED', `batch may not serve orders: ${JSON.stringify(squatter.first)}`);

    const client = await podProcess(s.children, pods[1]!.netns, { address: '@ringwire', connect: 'orders', count: 3 });
    assert.equal(client.first.answers, ['v1:q0', 'v1:q1', 'v1:q2'], JSON.stringify(client.first));
    assert.is(client.first.identity, 'spiffe://cluster.local/ns/shop/sa/web');
    const denied = await podProcess(s.children, pods[2]!.netns, { address: '@ringwire', connect: 'orders' });
    assert.is(denied.first.error, 'ERR_POLICY_DENIED', JSON.stringify(denied.first));
    client.stop();

    // DEL of the server's pod closes its socket and the agent's control connection with it: by the
    // time the plugin has its answer, the pod has left the registry.
    const del = await nets[0]!.del(pods[0]!);
    assert.equal(del.map((r) => r.code), [0, 0]);
    assert.is(agent.status().services.orders?.length ?? 0, 0, 'the deleted pod no longer serves');
    const after = await podProcess(s.children, pods[1]!.netns, { address: '@ringwire', connect: 'orders' });
    assert.is(after.first.error, 'ERR_NO_INSTANCE', JSON.stringify(after.first));
    for (const i of [1, 2]) await nets[i]!.del(pods[i]!);
  }));

  test('`ringwire node-agent` killed with -9: ADD fails saying so, DEL still succeeds; restarted, it gives the surviving pod its socket back', () => scratch('restart', 90000, async (s) => {
    const node = new TestNode(s, '79r');
    const config = join(s.dir, 'agent.yaml');
    writeFileSync(config, 'version: 1\nservices:\n  orders:\n    serve: [cluster.local/ns/shop/sa/default]\n');
    const socket = join(s.dir, 'cni.sock');
    const state = join(s.dir, 'pods.json');
    const startDaemon = async (): Promise<ChildProcess> => {
      // The agent runs in the node's namespace, as a hostNetwork DaemonSet pod does (`ip netns exec` execs it: same pid).
      const child = s.children.add(spawn('ip', ['netns', 'exec', node.node, process.execPath, CLI, 'node-agent', `--config=${config}`, `--listen=@rw79r-${process.pid}`, `--cni-socket=${socket}`, `--state=${state}`], { stdio: ['ignore', 'ignore', 'pipe'] }));
      // Its one "listening on" line on stderr says the event socket is up.
      for await (const line of createInterface({ input: child.stderr! })) if (/CNI events on/.test(line)) break;
      return child;
    };
    let daemon = await startDaemon();
    assert.is(readlinkSync(`/proc/${daemon.pid}/ns/net`), (await node.exec(['readlink', '/proc/self/ns/net'])).stdout.trim(), 'the agent runs in the node namespace');
    const rt = new Runtime(node, bridgeConflist(s.dir, 'rw79r', '10.79.9.0/24', socket));
    const a: Attachment = { containerId: 'pa', netns: node.addPod('a'), ifName: 'eth0', args: k8s('a') };
    const b: Attachment = { containerId: 'pb', netns: node.addPod('b'), ifName: 'eth0', args: k8s('b') };
    assert.equal((await rt.add(a)).map((r) => r.code), [0, 0]);
    const served = await podProcess(s.children, a.netns, { address: '@ringwire', serve: 'orders' });
    assert.is(served.first.ready, true, JSON.stringify(served.first));

    daemon.kill('SIGKILL');
    await new Promise((r) => daemon.once('exit', r));
    const refused = await rt.add(b);
    assert.equal([refused[0]!.code, refused[1]!.result?.code], [0, 11], refused[1]!.stdout);
    assert.match(String(refused[1]!.result?.msg), /agent is not running/);
    assert.equal((await rt.del(b)).map((r) => r.code), [0, 0], 'DEL with the agent down');

    daemon = await startDaemon();
    const again = await podProcess(s.children, a.netns, { address: '@ringwire', serve: 'orders' });
    assert.equal([again.first.ready, again.first.identity], [true, 'spiffe://cluster.local/ns/shop/sa/default'], JSON.stringify(again.first));
    assert.equal((await rt.check(a)).map((r) => r.code), [0, 0]);
    assert.equal((await rt.del(a)).map((r) => r.code), [0, 0]);
    daemon.kill('SIGTERM');
    assert.is(await new Promise((r) => daemon.once('exit', r)), 0, 'SIGTERM drains and exits 0');
  }));
}

test.run();
