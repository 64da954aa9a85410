// Identity and policy: SO_PEERCRED on both sides, allow rules by uid/gid and by callback, the
// socket file's mode, and refusals that reach the peer as a reason (never a hang). The refused
// peers run as another user (uid/gid 65534) in child processes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { addonAvailable } from '../lib/native/native.js';
import { isRingwireError } from '../lib/errors.js';
import { connect, listen, type PeerInfo, type Refusal, type ServerOptions } from '../lib/index.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';
import { startPeer } from './workers/channel-spawn.js';

const NOBODY = 65534;
const run = requireOrSkip('native addon', addonAvailable()) && requireOrSkip('root (to run peers as another uid)', process.getuid?.() === 0);

async function scenario(opts: ServerOptions, fn: (address: string, seen: PeerInfo[], refusals: Refusal[], children: Children) => Promise<void>): Promise<void> {
  const children = new Children();
  const { dir, cleanup } = makeTempDir();
  // The peers running as nobody must be able to reach the socket inside.
  chmodSync(dir, 0o755);
  const address = join(dir, 'svc.sock');
  const seen: PeerInfo[] = [];
  const refusals: Refusal[] = [];
  const server = await listen(address, opts, (ch) => {
    seen.push(ch.peer as PeerInfo);
    ch.handle((r) => r);
  });
  server.on('refused', (r) => refusals.push(r));
  try {
    await fn(address, seen, refusals, children);
  } finally {
    await children.killAll();
    server.destroyConnections();
    await server.close();
    cleanup();
  }
}

if (run) {
  test('SO_PEERCRED: each side sees the other process as the kernel recorded it', () => withTimeout('peercred', 10000, () => scenario({ mode: 0o666 }, async (address, seen, _r, children) => {
    const { child, first } = await startPeer(children, { role: 'connect', address, count: 2, uid: NOBODY, gid: NOBODY, name: 'pod-a' });
    assert.is(first.done, 2, JSON.stringify(first));
    assert.is(seen.length, 1);
    assert.equal({ pid: seen[0]!.pid, uid: seen[0]!.uid, gid: seen[0]!.gid, name: seen[0]!.name }, { pid: child.pid, uid: NOBODY, gid: NOBODY, name: 'pod-a' });
    assert.equal(first.peer, { pid: process.pid, uid: 0, gid: 0, name: 'ringwire' });
  })));

  test('allow by uid/gid: a peer outside the list is refused with the reason', () => withTimeout('uid policy', 10000, () => scenario({ mode: 0o666, allow: { uids: [0] } }, async (address, seen, refusals, children) => {
    const { first } = await startPeer(children, { role: 'connect', address, uid: NOBODY, gid: NOBODY });
    assert.is(first.code, 'ERR_POLICY');
    assert.match(String(first.error), /uid 65534 \/ gid 65534 is not allowed/);
    assert.is(seen.length, 0);
    assert.is(refusals.length, 1);
    assert.is(refusals[0]!.peer.uid, NOBODY);
    const ok = await connect(address);
    await ok.close();
  })));

  test('allow by gid lets a matching group in', () => withTimeout('gid policy', 10000, () => scenario({ mode: 0o666, allow: { uids: [0], gids: [NOBODY] } }, async (address, _seen, _r, children) => {
    const { first } = await startPeer(children, { role: 'connect', address, count: 1, uid: NOBODY, gid: NOBODY });
    assert.is(first.done, 1, JSON.stringify(first));
  })));

  test('allow callback: async verdicts, a string is the reason, a throw refuses', () => withTimeout('callback policy', 10000, () => scenario({
    allow: {
      check: async (peer) => {
        await new Promise((r) => setTimeout(r, 5));
        if (peer.name === 'thrower') throw new Error('policy backend down');
        return peer.name === 'friend' ? true : `name ${peer.name} is not on the list`;
      },
    },
  }, async (address, seen) => {
    const friend = await connect(address, { name: 'friend' });
    await friend.close();
    const e1 = await connect(address, { name: 'stranger' }).then(() => null, (e) => e);
    assert.ok(isRingwireError(e1, 'ERR_POLICY'));
    assert.match(e1.message, /name stranger is not on the list/);
    const e2 = await connect(address, { name: 'thrower' }).then(() => null, (e) => e);
    assert.ok(isRingwireError(e2, 'ERR_POLICY'));
    assert.match(e2.message, /policy backend down/);
    assert.is(seen.length, 1);
  })));

  test('socket file mode: 0600 keeps other users out at connect, 0666 lets them in', () => withTimeout('mode', 10000, async () => {
    await scenario({ mode: 0o600 }, async (address, _s, _r, children) => {
      assert.is(statSync(address).mode & 0o777, 0o600);
      const { first } = await startPeer(children, { role: 'connect', address, uid: NOBODY, gid: NOBODY });
      assert.match(String(first.error), /EACCES|permission/i);
    });
    await scenario({ mode: 0o666 }, async (address, _s, _r, children) => {
      assert.is(statSync(address).mode & 0o777, 0o666);
      const { first } = await startPeer(children, { role: 'connect', address, count: 1, uid: NOBODY, gid: NOBODY });
      assert.is(first.done, 1);
    });
  }));
}

test.run();
