// Identity from the kernel with real processes under different uids (setpriv) and in separate
// network namespaces (ip netns): serve rules stop name squatting, policies see the uid-derived
// identity, a netns rule and a pod socket (a listening fd bound inside the pod's netns and handed to
// agent.addControlSocket with an identity) name the pod.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonAvailable, native } from '../lib/native/native.js';
import { FdServer } from '../lib/native/unix-socket.js';
import { startAgent, type Agent } from '../lib/agent/index.js';
import { requireOrSkip, scratch, type Scratch } from './helpers/index.js';
import { startAgentPeer, uniqueAgentAddress } from './helpers/agent.js';

function hasTools(): boolean {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

const run = requireOrSkip('native addon', addonAvailable()) && requireOrSkip('root with setpriv and ip netns', hasTools());
const asUid = (uid: number): string[] => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--'];

async function agentWith(s: Scratch, extra: object, listen?: string[]): Promise<{ agent: Agent; address: string }> {
  const address = uniqueAgentAddress('73');
  const agent = await startAgent({ config: { version: 1, listen: listen ?? [address], ...extra }, metrics: false, log: () => {} });
  s.defer(() => agent.close());
  return { agent, address: listen?.[0] ?? address };
}

function netns(s: Scratch, tag: string): { name: string; inode: number } {
  const name = `rw73-${process.pid}-${tag}`;
  execFileSync('ip', ['netns', 'add', name]);
  s.defer(() => {
    execFileSync('ip', ['netns', 'del', name]);
    assert.not.ok(existsSync(`/run/netns/${name}`), 'namespace removed');
  });
  return { name, inode: statSync(`/run/netns/${name}`).ino };
}

if (run) {
  test('addon: socketpair is a connected SEQPACKET pair; SO_PEERPIDFD and pidfd_open name the right process', () => scratch('pidfd', 20000, async (s) => {
    const addon = native();
    const pair = new Int32Array(2);
    assert.is(addon.socketpair(pair), 0);
    s.defer(() => { addon.close(pair[0]!); addon.close(pair[1]!); });
    assert.is(addon.sendmsg(pair[0]!, Buffer.from('one'), new Int32Array(0)), 3);
    const buf = Buffer.alloc(16);
    const meta = new Int32Array(2);
    assert.is(addon.recvmsg(pair[1]!, buf, new Int32Array(1), meta), 3, 'one datagram, boundaries kept');
    const address = uniqueAgentAddress('73');
    const server = FdServer.listen(address);
    s.defer(() => server.close());
    const child = s.children.add(spawn(process.execPath, ['--input-type=module', '-e', `import { FdSocket } from ${JSON.stringify(new URL('../lib/native/unix-socket.js', import.meta.url).href)}; await FdSocket.connect(${JSON.stringify(address)}); setInterval(() => {}, 1000);`], { stdio: 'inherit' }));
    const accepted = await new Promise<import('../lib/native/unix-socket.js').FdSocket>((resolve) => server.once('connection', resolve));
    s.defer(() => accepted.close());
    const pidfd = addon.peerPidfd(accepted.fd);
    const fd = pidfd === -92 ? addon.pidfdOpen(accepted.peerCred().pid) : pidfd;
    assert.ok(fd >= 0, `pidfd: ${fd}`);
    s.defer(() => addon.close(fd));
    const pidOf = (): number => Number(/^Pid:\s*(-?\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]);
    assert.is(pidOf(), child.pid, 'the pidfd names the connecting process');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.is(pidOf(), -1, 'and says so once it is gone');
    assert.is(addon.pidfdOpen(0), -22, 'pid 0 is EINVAL');
  }));

  test('uids: the owner may serve, another uid may not squat, policy sees the caller\'s uid identity', () => scratch('agent uids', 40000, async (s) => {
    const { agent, address } = await agentWith(s, {
      identities: [
        { match: { uid: 1001 }, namespace: 'shop', serviceAccount: 'orders' },
        { match: { uid: 1002 }, namespace: 'shop', serviceAccount: 'intruder' },
        { match: { uid: 1003 }, namespace: 'web', serviceAccount: 'frontend' },
      ],
      services: { orders: { serve: ['cluster.local/ns/shop/sa/orders'] } },
      policies: [{ name: 'web-only', action: 'ALLOW', selector: { services: ['orders'] }, rules: [{ from: [{ source: { namespaces: ['web'] } }] }] }],
    });
    const owner = await startAgentPeer(s.children, { address, serve: 'orders', version: 'v1' }, asUid(1001));
    assert.is(owner.first.identity, 'spiffe://cluster.local/ns/shop/sa/orders', JSON.stringify(owner.first));
    assert.is(agent.status().services.orders![0]!.pid, owner.child.pid, 'the kernel pid, not a claim');
    const squat = await startAgentPeer(s.children, { address, serve: 'orders' }, asUid(1002));
    assert.is(squat.first.error, 'ERR_POLICY_DENIED', JSON.stringify(squat.first));
    assert.match(String(squat.first.message), /intruder may not serve orders/);
    const web = await startAgentPeer(s.children, { address, connect: 'orders', count: 3 }, asUid(1003));
    assert.equal(web.first.answers, ['v1:q0', 'v1:q1', 'v1:q2'], JSON.stringify(web.first));
    assert.is(web.first.identity, 'spiffe://cluster.local/ns/web/sa/frontend');
    const anon = await startAgentPeer(s.children, { address, connect: 'orders' }, asUid(1004));
    assert.is(anon.first.error, 'ERR_POLICY_DENIED', JSON.stringify(anon.first));
    assert.match(String(anon.first.message), /web-only/);
    assert.is(agent.status().services.orders!.length, 1, 'the squatter registered nothing');
  }));

  test('netns: a rule by network namespace inode names a process in that namespace; abstract names do not cross namespaces', () => scratch('agent netns', 40000, async (s) => {
    const ns = netns(s, 'a');
    chmodSync(s.dir, 0o755);
    const path = join(s.dir, 'agent.sock');
    await agentWith(s, {
      identities: [{ match: { netns: ns.inode }, namespace: 'pods', serviceAccount: 'a' }],
      services: { orders: { serve: ['cluster.local/ns/pods/sa/a'] } },
    }, [path, uniqueAgentAddress('73')]);
    const inPod = await startAgentPeer(s.children, { address: path, serve: 'orders' }, ['ip', 'netns', 'exec', ns.name]);
    assert.is(inPod.first.identity, 'spiffe://cluster.local/ns/pods/sa/a', JSON.stringify(inPod.first));
    const onHost = await startAgentPeer(s.children, { address: path, serve: 'orders' });
    assert.is(onHost.first.error, 'ERR_POLICY_DENIED', 'the host netns is not the pod');
  }));

  test('pod socket: a listener bound inside the pod netns and handed over names whoever connects there', () => scratch('agent pod socket', 40000, async (s) => {
    const ns = netns(s, 'p');
    const { agent, address } = await agentWith(s, { services: { orders: { serve: ['cluster.local/ns/shop/sa/orders'] } } });
    const returnPath = join(s.dir, 'return.sock');
    chmodSync(s.dir, 0o755);
    const back = FdServer.listen(returnPath);
    s.defer(() => back.close());
    const podName = `@ringwire-73-${process.pid}`;
    const fd = await new Promise<number>((resolve) => {
      back.on('connection', (sock) => sock.on('message', (_d, fds) => { sock.send(Buffer.from('ok')); resolve(fds[0]!); }));
      const helper = fileURLToPath(new URL('./workers/netns-listener.js', import.meta.url));
      s.children.add(spawn('ip', ['netns', 'exec', ns.name, process.execPath, helper, returnPath, podName], { stdio: 'inherit' }));
    });
    const id = agent.addControlSocket({ fd, identity: { spiffe: 'spiffe://cluster.local/ns/shop/sa/orders', pod: 'orders-1' }, label: `pod ${ns.name}` });
    const pod = await startAgentPeer(s.children, { address: podName, serve: 'orders', version: 'pod' }, ['ip', 'netns', 'exec', ns.name]);
    assert.is(pod.first.identity, 'spiffe://cluster.local/ns/shop/sa/orders', JSON.stringify(pod.first));
    // The host reaches the agent on its own socket and the pod's instance through it.
    const host = await startAgentPeer(s.children, { address, connect: 'orders' });
    assert.equal(host.first.answers, ['pod:q0']);
    const hostOnPodName = await startAgentPeer(s.children, { address: podName, serve: 'orders' });
    assert.is(hostOnPodName.first.error, 'ERR_AGENT_UNAVAILABLE', 'the pod\'s abstract name is not visible from the host netns');
    const gone = new Promise((r) => pod.child.once('exit', r));
    agent.removeControlSocket(id);
    pod.child.kill('SIGKILL');
    await gone;
    while (agent.status().services.orders) await new Promise((r) => setTimeout(r, 5));
  }));
}

test.run();
