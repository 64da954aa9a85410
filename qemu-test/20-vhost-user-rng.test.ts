/**
 * vhost-user-rng under QEMU: the guest kernel's virtio-rng driver reads /dev/hwrng through QEMU's
 * vhost-user-rng-pci front-end and ringwire's TypeScript back-end, running in this process.
 *
 * How we know the bytes came from our back-end: it serves a known stream (one fill byte chosen per
 * run), and the guest also has QEMU's built-in virtio-rng-pci (the harness adds it with the rng
 * modules). The guest reads 4 KiB from every hwrng it has; exactly one must return only the fill
 * byte, and the back-end must have served at least that much.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RngDevice } from '../virtio/devices/rng.js';
import { VhostUserServer } from '../virtio/vhost-user/server.js';
import { prng, requireOrSkip, testSeed } from '../test/helpers/index.js';
import { missingVmPrerequisites, withVms } from './harness/index.js';

const missing = missingVmPrerequisites();
const VM_TIMEOUT_MS = 120_000;
const READ_BYTES = 4096;

const GUEST_SCRIPT = `
set -e
cd /sys/class/misc/hw_random
grep MemTotal /proc/meminfo
echo "rngs: $(cat rng_available)"
for r in $(cat rng_available); do
  echo "$r" > rng_current
  dd if=/dev/hwrng of="$RINGWIRE_JOB/$r.bin" bs=${READ_BYTES} count=1 iflag=fullblock 2>/dev/null
done
echo rng-done
`;

/**
 * Boots a guest with `memoryMiB` of RAM shared through a memfd, reads every hwrng it has, and checks
 * that exactly one returned the back-end's stream. Returns the guest's MemTotal in KiB.
 */
async function guestReadsHwrng(memoryMiB: number): Promise<number> {
  const fillByte = prng(testSeed()).int(1, 255);
  const device = new RngDevice({ fill: (b) => b.fill(fillByte) });
  const logs: string[] = [];
  let memTotalKiB = 0;
  await withVms(async (vms) => {
    const sock = join(vms.dir, 'rng.sock');
    const server = VhostUserServer.listen(sock, device, { log: (m) => logs.push(m) });
    vms.children.onCleanup(() => server.close());
    const connected = new Promise<void>((r) => server.once('connection', () => r()));
    const vm = await vms.start({
      name: 'rng', script: GUEST_SCRIPT, modules: ['rng'], memfdBackend: true, memoryMiB, timeoutMs: VM_TIMEOUT_MS,
      extraArgs: ['-chardev', `socket,id=vurng,path=${sock}`, '-device', 'vhost-user-rng-pci,chardev=vurng'],
    });
    await connected;
    const r = await vm.waitSuccess();
    memTotalKiB = Number(/^MemTotal:\s+(\d+) kB$/m.exec(r.output)?.[1] ?? 0);
    const rngs = /^rngs: (.*)$/m.exec(r.output)?.[1]?.trim().split(/\s+/) ?? [];
    assert.is(rngs.length, 2, `two hwrng devices expected, guest saw: ${rngs.join(' ')}`);
    const ours = rngs.filter((name) => {
      const f = join(vm.jobDir, `${name}.bin`);
      assert.ok(existsSync(f), `${name} was not read`);
      const data = readFileSync(f);
      assert.is(data.byteLength, READ_BYTES, `${name}: short read`);
      return data.every((b) => b === fillByte);
    });
    assert.is(ours.length, 1, `exactly one hwrng must return the back-end's stream; matched: ${ours.join(' ')}`);
    assert.ok(device.bytesServed >= READ_BYTES, `back-end served ${device.bytesServed} bytes`);
    assert.equal(logs, [], 'no protocol errors or broken queues');
    console.log(`  ${memoryMiB} MiB guest: back-end served ${device.bytesServed} bytes in ${device.requests} requests; ${ours[0]} is ours; VM ${r.wallMs} ms`);
  });
  return memTotalKiB;
}

test('the guest reads /dev/hwrng from the TypeScript vhost-user-rng back-end', async () => {
  if (!requireOrSkip(`VM test prerequisites (${missing.join(', ')})`, missing.length === 0)) return;
  await guestReadsHwrng(512);
});

// A guest of 8 GiB: QEMU's memory table then has a region of about 5 GiB mapped above guest-physical
// 4 GiB, which the back-end once refused ("Invalid typed array length"). The memfd is sparse.
test('an 8 GiB guest: the back-end maps its memory regions above 4 GiB and serves it', async () => {
  if (!requireOrSkip(`VM test prerequisites (${missing.join(', ')})`, missing.length === 0)) return;
  const memTotalKiB = await guestReadsHwrng(8192);
  assert.ok(memTotalKiB > 7 * 1024 * 1024, `the guest saw ${memTotalKiB} KiB of RAM`);
});

test.run();
