// The plugin in a real chain: Debian's reference `bridge` (with `host-local` IPAM) sets up each
// pod's interface, then `ringwire-cni` tells the pod manager, which opens @ringwire inside the pod.
// Every plugin is exec'd as a runtime does it, inside a "node" namespace made for the test; pods are
// `ip netns` namespaces. The pod manager's agent here is EchoIdentityHost (the agent's listener API),
// which answers each connection with the identity of the socket it came through.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addonAvailable } from '../lib/native/native.js';
import { startPodManager, type PodManager } from '../lib/cni/pod-manager.js';
import { requireOrSkip, scratch, type Scratch } from './helpers/index.js';
import { askFromPod, bridgeConflist, EchoIdentityHost, hasCniTools, Runtime, TestNode, type Attachment } from './helpers/cni.js';

const run = requireOrSkip('native addon', addonAvailable()) && requireOrSkip('root, ip netns and Debian containernetworking-plugins in /usr/lib/cni', hasCniTools());

interface Setup {
  node: TestNode;
  host: EchoIdentityHost;
  pm: PodManager;
  socket: string;
  stateFile: string;
}

async function setup(s: Scratch, tag: string): Promise<Setup> {
  const node = new TestNode(s, tag);
  const host = new EchoIdentityHost();
  s.defer(() => host.closeAll());
  const socket = join(s.dir, 'cni.sock');
  const stateFile = join(s.dir, 'state', 'pods.json');
  const pm = await startPodManager({ host, eventSocket: socket, stateFile, sweepMs: 0, log: () => undefined });
  s.defer(() => pm.close());
  return { node, host, pm, socket, stateFile };
}

function k8s(ns: string, name: string, uid: string): Record<string, string> {
  return { IgnoreUnknown: '1', K8S_POD_NAMESPACE: ns, K8S_POD_NAME: name, K8S_POD_INFRA_CONTAINER_ID: 'x', K8S_POD_UID: uid };
}

if (run) {
  test('bridge then ringwire-cni: the bridge result survives the chain, @ringwire appears in the pod with its identity', () => scratch('chain', 60000, async (s) => {
    const { node, host, pm, socket } = await setup(s, '76a');
    const rt = new Runtime(node, bridgeConflist(s.dir, 'rw76a', '10.76.1.0/24', socket));
    const pod: Attachment = { containerId: 'pod-a-1', netns: node.addPod('a'), ifName: 'eth0', args: k8s('shop', 'orders-1', 'uid-a') };
    const [bridge, ringwire] = await rt.add(pod);
    assert.is(bridge!.code, 0, bridge!.stdout + bridge!.stderr);
    assert.is(ringwire!.code, 0, ringwire!.stdout + ringwire!.stderr);
    assert.equal(ringwire!.result, bridge!.result, 'prevResult passed through unchanged');
    assert.is((bridge!.result!.ips as Array<{ address: string }>)[0]!.address, '10.76.1.2/24');
    // The pod's interface is the bridge's, and the bridge exists only in the node namespace.
    assert.match((await node.exec(['ip', '-o', 'addr', 'show', 'eth0'], pod.netns)).stdout, /10\.76\.1\.2\/24/);
    assert.is((await node.exec(['ip', 'link', 'show', 'rw76a'])).code, 0, 'bridge inside the node namespace');

    const got = await askFromPod(node, pod.netns);
    assert.ok(got.ok, JSON.stringify(got));
    const identity = (got.got as { identity: Record<string, string> }).identity;
    assert.equal(identity, { spiffe: 'spiffe://cluster.local/ns/shop/sa/default', namespace: 'shop', serviceAccount: 'default', pod: 'orders-1', podUid: 'uid-a' });
    assert.is(pm.pods().length, 1);

    const check = await rt.check(pod);
    assert.equal(check.map((r) => r.code), [0, 0], check.map((r) => r.stdout + r.stderr).join('\n'));

    const del = await rt.del(pod);
    assert.equal(del.map((r) => [r.type, r.code, r.stdout]), [['ringwire-cni', 0, ''], ['bridge', 0, '']]);
    assert.equal(host.live, [], 'the pod socket is closed');
    const after = await askFromPod(node, pod.netns);
    assert.is(after.ok, false, 'nothing answers on @ringwire after DEL');
    assert.is(pm.pods().length, 0);
  }));

  test('two pods with the same uid on separate networks are told apart by the socket they came through', () => scratch('two pods', 60000, async (s) => {
    const { node, socket } = await setup(s, '76b');
    const netA = new Runtime(node, bridgeConflist(s.dir, 'rw76b1', '10.76.2.0/24', socket));
    const netB = new Runtime(node, bridgeConflist(s.dir, 'rw76b2', '10.76.3.0/24', socket));
    const a: Attachment = { containerId: 'pod-a', netns: node.addPod('a'), ifName: 'eth0', args: k8s('shop', 'orders-1', 'uid-1') };
    const b: Attachment = { containerId: 'pod-b', netns: node.addPod('b'), ifName: 'eth0', args: k8s('shop', 'orders-2', 'uid-2') };
    for (const [rt, at] of [[netA, a], [netB, b]] as const) {
      const runs = await rt.add(at);
      assert.equal(runs.map((r) => r.code), [0, 0], runs.map((r) => r.stdout + r.stderr).join('\n'));
    }
    // No route between them: each pod's only network is its own bridge, without a gateway.
    const route = await node.exec(['ip', 'route', 'get', '10.76.3.2'], a.netns);
    assert.ok(route.code !== 0, `pod a has no route to pod b: ${route.stdout}`);
    const [fromA, fromB] = [await askFromPod(node, a.netns, '@ringwire', 1234), await askFromPod(node, b.netns, '@ringwire', 1234)];
    const ga = fromA.got as { identity: { pod: string; podUid: string }; peer: { uid: number } };
    const gb = fromB.got as { identity: { pod: string; podUid: string }; peer: { uid: number } };
    assert.is(ga.peer.uid, 1234);
    assert.is(gb.peer.uid, 1234);
    assert.equal([ga.identity.pod, ga.identity.podUid], ['orders-1', 'uid-1']);
    assert.equal([gb.identity.pod, gb.identity.podUid], ['orders-2', 'uid-2']);
    await netA.del(a);
    await netB.del(b);
  }));

  test('bad input: each is a spec-shaped error or a no-op, and the pod manager keeps serving', () => scratch('bad input', 90000, async (s) => {
    const { node, host, pm, socket } = await setup(s, '76c');
    const conflist = bridgeConflist(s.dir, 'rw76c', '10.76.4.0/24', socket);
    const rt = new Runtime(node, conflist);
    const ringwire = conflist.plugins[1]!;
    const prevResult = { cniVersion: '1.0.0', interfaces: [], ips: [] };
    const errorOf = (r: { code: number; result: Record<string, unknown> | undefined }): unknown => [r.code !== 0, r.result?.code];

    const malformed = await rt.invokeRaw('ringwire-cni', '{"cniVersion": "1.0.0", "name": ', { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' });
    assert.equal(errorOf(malformed), [true, 6], malformed.stdout);
    assert.is(malformed.result!.cniVersion, '1.0.0');
    assert.type(malformed.result!.msg, 'string');

    const oldVersion = await rt.invokeRaw('ringwire-cni', JSON.stringify({ ...ringwire, cniVersion: '0.2.0', name: 'n', prevResult }), { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0' });
    assert.equal(errorOf(oldVersion), [true, 1], oldVersion.stdout);

    const noNetns = await rt.invoke('ADD', ringwire, { containerId: 'c1', ifName: 'eth0' }, prevResult);
    assert.equal(errorOf(noNetns), [true, 4], noNetns.stdout);
    assert.match(String(noNetns.result!.msg), /CNI_NETNS/);

    const notNs = join(s.dir, 'not-a-namespace');
    writeFileSync(notNs, 'plain file');
    const notNamespace = await rt.invoke('ADD', ringwire, { containerId: 'c2', netns: notNs, ifName: 'eth0' }, prevResult);
    assert.equal(errorOf(notNamespace), [true, 4], notNamespace.stdout);
    assert.match(String(notNamespace.result!.msg), /not a network namespace/);

    const missing = await rt.invoke('ADD', ringwire, { containerId: 'c3', netns: '/run/netns/rw76c-never-made', ifName: 'eth0' }, prevResult);
    assert.equal(errorOf(missing), [true, 4], missing.stdout);

    const unchained = await rt.invoke('ADD', ringwire, { containerId: 'c4', netns: node.addPod('x'), ifName: 'eth0' }, undefined);
    assert.equal(errorOf(unchained), [true, 7], unchained.stdout);

    const badCommand = await rt.invokeRaw('ringwire-cni', '{}', { CNI_COMMAND: 'FROB' });
    assert.equal(errorOf(badCommand), [true, 4], badCommand.stdout);

    // A plugin called twice for one pod: the second ADD is a no-op with the same socket.
    const pod: Attachment = { containerId: 'twice', netns: node.addPod('twice'), ifName: 'eth0', args: k8s('shop', 'twice', 'u') };
    const first = await rt.add(pod);
    assert.equal(first.map((r) => r.code), [0, 0]);
    const again = await rt.invoke('ADD', ringwire, pod, first[0]!.result);
    assert.is(again.code, 0, again.stdout);
    assert.equal(again.result, first[0]!.result);
    assert.is(host.live.length, 1, 'still one listener');
    // The same container id in another namespace is refused until DEL.
    const elsewhere = await rt.invoke('ADD', ringwire, { ...pod, netns: node.addPod('elsewhere') }, prevResult);
    assert.equal(errorOf(elsewhere), [true, 100], elsewhere.stdout);

    // DEL of a pod nobody added, with and without CNI_NETNS: success, empty stdout.
    for (const at of [{ containerId: 'ghost', ifName: 'eth0' }, { containerId: 'ghost', ifName: 'eth0', netns: '/run/netns/nowhere' }]) {
      const del = await rt.invoke('DEL', ringwire, at, prevResult);
      assert.equal([del.code, del.stdout], [0, ''], del.stderr);
    }
    // CHECK of an unknown pod fails.
    const check = await rt.invoke('CHECK', ringwire, { containerId: 'ghost', ifName: 'eth0', netns: pod.netns }, prevResult);
    assert.equal(errorOf(check), [true, 101], check.stdout);

    // And through all that the manager kept serving.
    assert.ok((await askFromPod(node, pod.netns)).ok);
    assert.equal(pm.pods().map((p) => p.containerId), ['twice']);
    await rt.del(pod);
  }));

  test('agent down: ADD fails with "try again later" saying so, DEL succeeds, CHECK fails', () => scratch('agent down', 30000, async (s) => {
    const node = new TestNode(s, '76d');
    const socket = join(s.dir, 'absent.sock');
    const rt = new Runtime(node, bridgeConflist(s.dir, 'rw76d', '10.76.5.0/24', socket));
    const pod: Attachment = { containerId: 'p', netns: node.addPod('p'), ifName: 'eth0', args: k8s('shop', 'p', 'u') };
    const add = await rt.add(pod);
    assert.is(add[0]!.code, 0);
    assert.is(add[1]!.code !== 0, true);
    assert.is(add[1]!.result!.code, 11, add[1]!.stdout);
    assert.match(String(add[1]!.result!.msg), /agent is not running/);
    const del = await rt.del(pod);
    assert.equal(del.map((r) => r.code), [0, 0], del.map((r) => r.stdout + r.stderr).join('\n'));
  }));
}

test.run();
