/**
 * VM-to-VM networking under TCG: ringwire's TypeScript vhost-user switch next to QEMU's own
 * `-netdev socket` (VM to VM over a TCP stream in QEMU) and `-netdev user` (VM to a host UDP echo
 * server through slirp: user networking has no VM-to-VM path), all in one run.
 *
 *   npm run build && node dist/bench/vm/switch-vs-qemu.js [--rtt N] [--stream-ms MS] [--json FILE]
 *
 * Per transport it boots the guests, then the client guest measures UDP round trips (64-byte
 * datagrams, one in flight) and one-way datagram rate (64-byte datagrams sent back to back for
 * --stream-ms; the receiver counts). Guests run node under TCG, so absolute figures measure the
 * emulator as much as the transport: compare the rows, not the numbers, and never gate CI on them.
 * Every NIC is a virtio-net-pci with `vectors=0` (INTx), which vhost-user needs under TCG in QEMU
 * 7.2 (see qemu-test/21), so all rows use the same guest interrupt path.
 */
import { writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { VhostUserSwitch } from '../../virtio/devices/switch.js';
import { missingVmPrerequisites, withVms, type Vm, type VmSession } from '../../qemu-test/harness/index.js';

const { values } = parseArgs({ options: { rtt: { type: 'string' }, 'stream-ms': { type: 'string' }, json: { type: 'string' } } });
const RTT = Number(values.rtt ?? 2000);
const STREAM_MS = Number(values['stream-ms'] ?? 3000);
const VM_TIMEOUT_MS = 300_000;

/** The UDP echo + counter both peers understand: 'e' datagrams are echoed, 's' counted, 'd' answered with the count. */
const SERVER = `
import { createSocket } from 'node:dgram';
const s = createSocket('udp4');
let count = 0;
s.on('message', (m, r) => {
  if (m[0] === 0x65) s.send(m, r.port, r.address);
  else if (m[0] === 0x73) count++;
  else if (m[0] === 0x64) s.send('c' + count, r.port, r.address);
});
s.bind(7000, () => console.log('listening'));
`;

const CLIENT = `
import { createSocket } from 'node:dgram';
const [host, n, ms] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const s = createSocket('udp4');
const reply = () => new Promise((r) => s.once('message', r));
const send = (b) => new Promise((r) => s.send(b, 7000, host, r));
const ping = Buffer.alloc(64, 0x65);
for (let i = 0; i < 200; i++) { const w = reply(); await send(ping); await w; }
const rtt = [];
for (let i = 0; i < n; i++) {
  const w = reply(); const t = process.hrtime.bigint(); await send(ping); await w;
  rtt.push(Number(process.hrtime.bigint() - t) / 1000);
}
rtt.sort((a, b) => a - b);
const data = Buffer.alloc(64, 0x73);
let sent = 0; const end = Date.now() + ms;
while (Date.now() < end) { for (let i = 0; i < 64; i++) s.send(data, 7000, host); sent += 64; await new Promise((r) => setImmediate(r)); }
await new Promise((r) => setTimeout(r, 500));
let received = -1;
for (let tries = 0; tries < 20 && received < 0; tries++) {
  const w = Promise.race([reply(), new Promise((r) => setTimeout(r, 500))]);
  await send(Buffer.from('d'));
  const m = await w; if (m) received = Number(String(m).slice(1));
}
console.log('RESULT ' + JSON.stringify({ p50: rtt[rtt.length >> 1], p99: rtt[Math.floor(rtt.length * 0.99)], sent, received, ms }));
s.close();
`;

interface Row { transport: string; path: string; rttP50Us: number; rttP99Us: number; sentPerSec: number; framesPerSec: number; lossPct: number }

function guest(vms: VmSession, name: string, netdev: string, extra: string[], address: string, script: string): Promise<Vm> {
  return vms.start({
    name, memfdBackend: true, timeoutMs: VM_TIMEOUT_MS, modules: ['net'], files: { 'server.mjs': SERVER, 'client.mjs': CLIENT },
    script: `ip link set eth0 up && ip addr add ${address} dev eth0 || exit 90\n${script}`,
    extraArgs: [...extra, '-netdev', `${netdev},id=n0`, '-device', `virtio-net-pci,netdev=n0,mac=52:54:00:00:01:${name === 'server' ? '02' : '01'},vectors=0`],
  });
}

function parse(transport: string, path: string, output: string): Row {
  const m = /^RESULT (.*)$/m.exec(output);
  if (!m) throw new Error(`${transport}: no result in guest output:\n${output.slice(-2000)}`);
  const r = JSON.parse(m[1]!) as { p50: number; p99: number; sent: number; received: number; ms: number };
  return {
    transport, path, rttP50Us: Math.round(r.p50), rttP99Us: Math.round(r.p99), sentPerSec: Math.round(r.sent / (r.ms / 1000)),
    framesPerSec: Math.round(r.received / (r.ms / 1000)), lossPct: Math.round((1 - r.received / r.sent) * 1000) / 10,
  };
}

type NetFor = (vms: VmSession) => [netdev: string, extraArgs: string[]];

async function vmPair(transport: string, serverNet: NetFor, clientNet: NetFor, before?: (vms: VmSession) => void): Promise<Row> {
  return withVms(async (vms) => {
    before?.(vms);
    const [sNet, sExtra] = serverNet(vms);
    const server = await guest(vms, 'server', sNet, sExtra, '10.0.0.2/24', 'node "$RINGWIRE_JOB/server.mjs"');
    await server.waitForLine(/^listening/, VM_TIMEOUT_MS);
    const [cNet, cExtra] = clientNet(vms);
    const client = await guest(vms, 'client', cNet, cExtra, '10.0.0.1/24', `node "$RINGWIRE_JOB/client.mjs" 10.0.0.2 ${RTT} ${STREAM_MS}`);
    const r = await client.waitSuccess();
    await server.kill();
    return parse(transport, 'VM to VM', r.output);
  });
}

async function main(): Promise<void> {
  const missing = missingVmPrerequisites();
  if (missing.length) throw new Error(`VM prerequisites missing: ${missing.join(', ')}`);
  const rows: Row[] = [];
  let sw: VhostUserSwitch | undefined;
  const vhost = (name: string): NetFor => (vms) => ['vhost-user,chardev=c', ['-chardev', `socket,id=c,path=${join(vms.dir, `${name}.sock`)}`]];
  rows.push(await vmPair('ringwire-vhost-user-switch', vhost('server'), vhost('client'), (vms) => {
    sw = VhostUserSwitch.start({ ports: [join(vms.dir, 'server.sock'), join(vms.dir, 'client.sock')], log: () => {} });
    vms.children.onCleanup(() => sw?.close());
  }));
  const port = 20000 + (process.pid % 20000);
  rows.push(await vmPair('qemu-netdev-socket', () => [`socket,listen=127.0.0.1:${port}`, []], () => [`socket,connect=127.0.0.1:${port}`, []]));
  rows.push(await userNet());
  const env = { node: process.version, date: new Date().toISOString(), accel: 'tcg', switch: sw ? { ...sw.l2.stats, ports: Object.fromEntries(sw.ports.map((p) => [p.name, p.stats])) } : undefined };
  console.table(rows);
  if (values.json) writeFileSync(values.json, JSON.stringify({ env, results: rows }, null, 2));
}

/** QEMU user networking: the client guest talks to a UDP echo server on the host's loopback. */
async function userNet(): Promise<Row> {
  const s = createSocket('udp4');
  let count = 0;
  s.on('message', (m, r) => {
    if (m[0] === 0x65) s.send(m, r.port, r.address);
    else if (m[0] === 0x73) count++;
    else if (m[0] === 0x64) s.send(`c${count}`, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(7000, '127.0.0.1', r));
  try {
    return await withVms(async (vms) => {
      const client = await guest(vms, 'client', 'user', [], '10.0.2.15/24', `node "$RINGWIRE_JOB/client.mjs" 10.0.2.2 ${RTT} ${STREAM_MS}`);
      return parse('qemu-netdev-user', 'VM to host', (await client.waitSuccess()).output);
    });
  } finally {
    s.close();
  }
}

await main();
