/**
 * Two TCG guests with virtio-net on the TypeScript vhost-user switch (`ringwire vhost-user-switch`,
 * run as a child process exactly as a user would): they ping each other and move 10 MiB over TCP
 * with a SHA-256 on both ends. Then a guest is killed mid-transfer: the switch must drop its port
 * and keep switching for the others (a host port asks the surviving guest for its MAC with ARP),
 * and a guest that boots on the same socket must reach the survivor again.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FdSocket } from '../lib/native/unix-socket.js';
import { requireOrSkip, withTimeout } from '../test/helpers/index.js';
import { missingVmPrerequisites, REPO_ROOT, withVms, type Vm, type VmSession } from './harness/index.js';

const missing = missingVmPrerequisites();
const VM_TIMEOUT_MS = 240_000;
const BYTES = 10 * 1024 * 1024;
const MAC_A = '52:54:00:00:00:0a';
const MAC_B = '52:54:00:00:00:0b';

const SERVER = `
import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
let n = 0;
createServer((s) => {
  const id = ++n, h = createHash('sha256');
  let bytes = 0, reported = 0;
  s.on('data', (d) => {
    h.update(d);
    bytes += d.length;
    if (bytes - reported >= 1 << 20) { reported = bytes; console.log('progress ' + id + ' ' + bytes); }
  });
  s.on('end', () => { console.log('got ' + id + ' ' + bytes + ' ' + h.digest('hex')); s.end(); });
  s.on('error', (e) => console.log('conn ' + id + ' ' + e.code));
}).listen(5000, () => console.log('listening'));
`;

const CLIENT = `
import { connect } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
const total = Number(process.argv[2]);
const h = createHash('sha256');
const s = connect(5000, '10.0.0.2', async () => {
  for (let sent = 0; sent < total; ) {
    const chunk = randomBytes(Math.min(65536, total - sent));
    h.update(chunk);
    sent += chunk.length;
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  console.log('sent ' + total + ' ' + h.digest('hex'));
});
s.on('error', (e) => { console.error(e); process.exit(2); });
`;

interface SwitchProc {
  child: ChildProcessWithoutNullStreams;
  stderr: () => string;
  waitLog(re: RegExp, what: string): Promise<void>;
}

async function startSwitch(vms: VmSession): Promise<SwitchProc> {
  const args = [join(REPO_ROOT, 'dist/bin/ringwire.js'), 'vhost-user-switch', '--port', join(vms.dir, 'a.sock'), '--port', join(vms.dir, 'b.sock'), '--host-socket', join(vms.dir, 'host.sock')];
  const child = vms.children.add(spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    out += d;
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d;
    for (const w of waiters) w();
  });
  const waitFor = (get: () => string, re: RegExp, what: string): Promise<void> => withTimeout(what, 60_000, () => new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (re.test(get())) {
        waiters.delete(check);
        resolve();
      } else if (child.exitCode !== null) {
        reject(new Error(`switch exited ${child.exitCode}: ${err}`));
      }
    };
    waiters.add(check);
    check();
  }));
  await waitFor(() => out, /"ready":true/, 'the switch to listen');
  return { child, stderr: () => err, waitLog: (re, what) => waitFor(() => err, re, what) };
}

/**
 * A guest on the switch. The NIC is set up here rather than through the harness's `net` option
 * because QEMU 7.2 under TCG crashes (SIGSEGV in kvm_virtio_pci_irqfd_use: vhost_net_start turns
 * off guest-notifier masking for vhost-user, and without KVM there is no irqfd table) as soon as a
 * vhost-user virtio-net-pci with MSI-X starts; `vectors=0` (INTx) avoids that path.
 */
function guest(vms: VmSession, name: string, mac: string, address: string, script: string, files: Record<string, string>): Promise<Vm> {
  const sock = join(vms.dir, `${mac === MAC_B ? 'b' : 'a'}.sock`);
  return vms.start({
    name, files, memfdBackend: true, timeoutMs: VM_TIMEOUT_MS, modules: ['net'],
    script: `ip link set eth0 up && ip addr add ${address} dev eth0 || exit 90\n${script}`,
    extraArgs: ['-chardev', `socket,id=sw,path=${sock}`, '-netdev', 'vhost-user,chardev=sw,id=sw0', '-device', `virtio-net-pci,netdev=sw0,mac=${mac},vectors=0`],
  });
}

/** An ARP request for `ip` from a host port; resolves with the MAC that answered. */
async function arpFromHost(path: string, ip: number[]): Promise<string> {
  const sock = await FdSocket.connect(path, { type: 'seqpacket' });
  try {
    const hostMac = [0x02, 0, 0, 0, 0, 0xfe];
    const f = new Uint8Array(42);
    f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...hostMac, 0x08, 0x06], 0);
    f.set([0, 1, 0x08, 0, 6, 4, 0, 1, ...hostMac, 10, 0, 0, 254, 0, 0, 0, 0, 0, 0, ...ip], 14);
    const reply = new Promise<string>((resolve) => {
      sock.on('message', (d) => {
        // ARP reply (oper 2) from the address we asked about, sent to us.
        if (d.readUInt16BE(12) === 0x0806 && d.readUInt16BE(20) === 2 && d.subarray(28, 32).equals(Buffer.from(ip))) {
          resolve([...d.subarray(22, 28)].map((b) => b.toString(16).padStart(2, '0')).join(':'));
        }
      });
    });
    // The guest may still be bringing eth0 up; ask again until it answers.
    const timer = setInterval(() => sock.send(f), 500);
    sock.send(f);
    try {
      return await withTimeout('ARP reply through the switch', 30_000, () => reply);
    } finally {
      clearInterval(timer);
    }
  } finally {
    sock.close();
  }
}

test('two guests ping and move 10 MiB over TCP through the switch; a killed guest is dropped, others keep switching, a new one rejoins', async () => {
  if (!requireOrSkip(`VM test prerequisites (${missing.join(', ')})`, missing.length === 0)) return;
  await withVms(async (vms) => {
    const sw = await startSwitch(vms);
    const b = await guest(vms, 'b', MAC_B, '10.0.0.2/24', 'node "$RINGWIRE_JOB/server.mjs"', { 'server.mjs': SERVER });
    await b.waitForLine(/^listening/, VM_TIMEOUT_MS);
    const t0 = Date.now();
    const a = await guest(vms, 'a', MAC_A, '10.0.0.1/24', `busybox ping -c 3 -W 10 10.0.0.2 && node "$RINGWIRE_JOB/client.mjs" ${BYTES}`, { 'client.mjs': CLIENT });
    const ra = await a.waitSuccess();
    assert.match(ra.output, /3 packets transmitted, 3 packets received/);
    const sent = /^sent (\d+) ([0-9a-f]{64})$/m.exec(ra.output);
    assert.ok(sent, `client output: ${ra.output}`);
    const got = await b.waitForLine(/^got 1 (\d+) ([0-9a-f]{64})$/, 60_000);
    assert.is(Number(got[1]), BYTES);
    assert.is(got[2], sent[2], 'SHA-256 of what b received equals what a sent');
    console.log(`  ping + 10 MiB through the switch: ${Date.now() - t0} ms wall for guest a (boot included)`);

    // A guest killed mid-transfer: its port goes, the rest keeps switching.
    const a2 = await guest(vms, 'a2', MAC_A, '10.0.0.1/24', `node "$RINGWIRE_JOB/client.mjs" ${1 << 30}`, { 'client.mjs': CLIENT });
    await b.waitForLine(/^progress 2 /, VM_TIMEOUT_MS);
    await a2.kill();
    await sw.waitLog(/port a detached/, 'the switch to drop the killed guest\'s port');
    assert.is(await arpFromHost(join(vms.dir, 'host.sock'), [10, 0, 0, 2]), MAC_B);

    // A new guest on the same socket reaches the survivor.
    const a3 = await guest(vms, 'a3', MAC_A, '10.0.0.1/24', `busybox ping -c 2 -W 10 10.0.0.2 && node "$RINGWIRE_JOB/client.mjs" ${1 << 20}`, { 'client.mjs': CLIENT });
    const r3 = await a3.waitSuccess();
    const sent3 = /^sent (\d+) ([0-9a-f]{64})$/m.exec(r3.output);
    assert.ok(sent3, `client output: ${r3.output}`);
    const got3 = await b.waitForLine(/^got 3 (\d+) ([0-9a-f]{64})$/, 60_000);
    assert.is(got3[2], sent3[2]);
    assert.not.match(sw.stderr(), /broken|dropping the front-end/, 'no protocol errors or broken queues');
    await b.kill();
  });
});

test.run();
