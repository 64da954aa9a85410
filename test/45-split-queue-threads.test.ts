/**
 * Driver and device in two threads over one SharedArrayBuffer, sleeping between bursts and woken
 * only through the queue's own notification suppression (kick when publish() says so, call when
 * shouldNotify() says so). A lost wake-up shows as a wait that times out, which fails the test.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from './helpers/index.js';
import { GuestMemory, SplitQueueDevice, SplitQueueDriver, splitQueueLayout } from '../virtio/index.js';

const GPA = 0x100000;
const MEM = 1 << 20;
const N = 16;
const CHAINS = 20000;
const DATA = GPA + 0x10000;
const SLOT = 64;
const WAIT_MS = 5000;
// Control words: kicks from the driver, calls from the device.
const KICK = 0;
const CALL = 1;

interface Shared { mem: SharedArrayBuffer; ctl: SharedArrayBuffer; eventIdx: boolean }

function open(shared: Shared): { memory: GuestMemory; bytes: Uint8Array; ctl: Int32Array } {
  const bytes = new Uint8Array(shared.mem);
  return { memory: new GuestMemory([{ guestPhysAddr: GPA, size: MEM, bytes }]), bytes, ctl: new Int32Array(shared.ctl) };
}

/** Worker side: sends CHAINS requests carrying their sequence number, checks each reply. */
function runDriver(shared: Shared): void {
  const { memory, bytes, ctl } = open(shared);
  const dv = new DataView(bytes.buffer);
  const driver = new SplitQueueDriver({ memory, size: N, addresses: splitQueueLayout(N, GPA), eventIdx: shared.eventIdx });
  const seqOf = new Map<number, number>();
  let sent = 0;
  let received = 0;
  let kicks = 0;
  while (received < CHAINS) {
    let progressed = false;
    while (sent < CHAINS && driver.numFree >= 2) {
      const slot = DATA + (sent % (2 * N)) * SLOT;
      dv.setUint32(slot - GPA, sent, true);
      const head = driver.add([{ addr: slot, len: 4 + (sent % 20) }], [{ addr: slot + 32, len: 8 }])!;
      seqOf.set(head, sent++);
      progressed = true;
    }
    if (driver.publish()) {
      kicks++;
      Atomics.add(ctl, KICK, 1);
      Atomics.notify(ctl, KICK);
    }
    for (let u = driver.popUsed(); u; u = driver.popUsed()) {
      const seq = seqOf.get(u.id)!;
      const slot = DATA + (seq % (2 * N)) * SLOT;
      if (u.len !== 8 || dv.getUint32(slot + 32 - GPA, true) !== seq * 3 || dv.getUint32(slot + 36 - GPA, true) !== 4 + (seq % 20)) {
        throw new Error(`reply to ${seq} is wrong`);
      }
      received++;
      progressed = true;
    }
    if (progressed) continue;
    const seen = Atomics.load(ctl, CALL);
    if (driver.enableUsedNotifications()) continue;
    if (Atomics.wait(ctl, CALL, seen, WAIT_MS) === 'timed-out') throw new Error(`driver: no call for ${WAIT_MS} ms with ${sent - received} outstanding (lost wake-up)`);
  }
  parentPort!.postMessage({ kicks });
}

if (!isMainThread) {
  try {
    runDriver(workerData as Shared);
  } catch (err) {
    parentPort!.postMessage({ error: String(err) });
  }
} else {
  for (const eventIdx of [false, true]) {
    test(`${CHAINS} chains between threads, sleeping on notifications (eventIdx=${eventIdx})`, async () => {
      const shared: Shared = { mem: new SharedArrayBuffer(MEM), ctl: new SharedArrayBuffer(8), eventIdx };
      const { memory, bytes, ctl } = open(shared);
      const dv = new DataView(bytes.buffer);
      const worker = new Worker(new URL(import.meta.url), { workerData: shared });
      try {
        const done = new Promise<{ kicks?: number; error?: string }>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        });
        // The driver initialises the rings; wait for its first kick before attaching the device.
        if (Atomics.wait(ctl, KICK, 0, WAIT_MS) === 'timed-out') assert.unreachable('driver never kicked');
        const device = new SplitQueueDevice({ memory, size: N, addresses: splitQueueLayout(N, GPA), eventIdx });
        let served = 0;
        let calls = 0;
        let sleeps = 0;
        while (served < CHAINS) {
          device.disableKickNotifications();
          for (let c = device.pop(); c; c = device.pop()) {
            const seq = new DataView(c.readable[0]!.buffer, c.readable[0]!.byteOffset).getUint32(0, true);
            const w = new DataView(c.writable[0]!.buffer, c.writable[0]!.byteOffset, 8);
            w.setUint32(0, seq * 3, true);
            w.setUint32(4, c.readableBytes, true);
            device.pushUsed(c.head, 8);
            served++;
          }
          if (device.shouldNotify()) {
            calls++;
            Atomics.add(ctl, CALL, 1);
            Atomics.notify(ctl, CALL);
          }
          if (served === CHAINS) break;
          const seen = Atomics.load(ctl, KICK);
          if (device.enableKickNotifications()) continue;
          sleeps++;
          if (Atomics.wait(ctl, KICK, seen, WAIT_MS) === 'timed-out') assert.unreachable(`device: no kick for ${WAIT_MS} ms after ${served} chains (lost wake-up)`);
        }
        const result = await withTimeout('driver thread', 30_000, () => done);
        assert.is(result.error, undefined, result.error);
        console.log(`  eventIdx=${eventIdx}: ${result.kicks} kicks, ${calls} calls, ${sleeps} device sleeps for ${CHAINS} chains`);
        assert.ok((result.kicks ?? 0) < CHAINS && calls < CHAINS, 'suppression saved some notifications');
        assert.is(dv.getUint16(Number(splitQueueLayout(N, GPA).used) - GPA + 2, true), CHAINS & 0xffff);
      } finally {
        await worker.terminate();
      }
    });
  }
  test.run();
}
