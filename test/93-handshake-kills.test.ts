// Peers that die at every step of the channel handshake (issue 19, item 1). The server runs in this
// process and its fds are counted by kind (eventfd, memfd, socket) from /proc/self/fd before and
// after: hundreds of peers per step, each dying abruptly (socket and every fd it holds closed at
// once, no Disconnect: what the kernel does for a SIGKILLed process) at a seeded point, several at
// a time. A few real child processes are SIGKILLed mid-handshake too. Nothing may be left behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { addonAvailable } from '../lib/native/native.js';
import { connect, listen, type Channel } from '../lib/index.js';
import { HANDSHAKE_STEPS as STEPS, dyingPeer } from '../bench/soak/dying-peer.js';
import { fdsByKind } from '../bench/soak/fds.js';
import { prng, requireOrSkip, scratch, testSeed } from './helpers/index.js';

const run = requireOrSkip('native addon', addonAvailable());
const PER_STEP = Number(process.env.RINGWIRE_KILLS_PER_STEP ?? 200);
const AT_ONCE = 8;


async function settle(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not settled within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

if (run) {
  test(`peers dying at each of ${STEPS.length} handshake steps (${PER_STEP} per step, seeded) leave the server no eventfd, memfd or socket`, () => scratch('handshake kills', 170000, async ({ dir, defer }) => {
    const rng = prng(testSeed());
    const open = new Set<Channel>();
    const server = await listen(`${dir}/s.sock`, { handshakeTimeoutMs: 2000, minRingBytes: 4096, maxRingBytes: 4096 }, (ch) => {
      open.add(ch);
      void ch.whenClosed().then(() => open.delete(ch));
    });
    defer(() => server.close());
    defer(() => server.destroyConnections());
    // A first good channel, closed again, so lazily created handles are counted in both snapshots.
    await (await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 })).close();
    await settle(() => server.connections === 0, 'warm-up');
    const before = fdsByKind();
    for (const step of STEPS) {
      for (let done = 0; done < PER_STEP; done += AT_ONCE) {
        await Promise.all(Array.from({ length: AT_ONCE }, () => dyingPeer(server.address!, step, rng.int(0, 3))));
      }
      await settle(() => server.connections === 0, `after step ${step}`);
      const now = fdsByKind();
      assert.equal(now, before, `server fds after ${PER_STEP} deaths at step '${step}': ${JSON.stringify(now)}, before ${JSON.stringify(before)}`);
    }
    // And the server still serves.
    const ch = await connect(server.address!, { sendRingBytes: 4096, receiveRingBytes: 4096 });
    await ch.close();
  }));

  test('child processes SIGKILLed at seeded points mid-handshake leave the server no fds', () => scratch('handshake sigkill', 120000, async ({ dir, children, defer }) => {
    const rng = prng(testSeed());
    const server = await listen(`${dir}/s.sock`, { handshakeTimeoutMs: 2000 }, () => {});
    defer(() => server.close());
    defer(() => server.destroyConnections());
    await (await connect(server.address!)).close();
    await settle(() => server.connections === 0, 'warm-up');
    const before = fdsByKind();
    const child = fileURLToPath(new URL('./workers/handshake-loop.js', import.meta.url));
    for (let i = 0; i < 12; i++) {
      const p = children.add(spawn(process.execPath, [child, server.address!], { stdio: 'ignore' }));
      // The child connects over and over; the kill lands wherever it happens to be.
      await new Promise((r) => setTimeout(r, rng.int(30, 250)));
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
    await settle(() => server.connections === 0, 'after the kills');
    assert.equal(fdsByKind(), before);
  }));
}

test.run();

