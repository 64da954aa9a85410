/**
 * The VM harness itself: a TCG guest runs the host's node against this repository over 9p, a guest
 * that overruns its timeout is killed and its logs kept, and user-mode networking reaches a TCP
 * server on the host's loopback (the baseline the VM benchmarks compare against).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { requireOrSkip, withTimeout } from '../test/helpers/index.js';
import { ensureGuestImage, missingVmPrerequisites, REPO_ROOT, Vm, withVms } from './harness/index.js';

const missing = missingVmPrerequisites();
const ready = (): boolean => requireOrSkip(`VM test prerequisites (${missing.join(', ')})`, missing.length === 0);
/** Generous per-VM limit: a TCG boot takes ~5-10 s, more on a loaded 2-core CI runner. */
const VM_TIMEOUT_MS = 120_000;

const PROBE = `
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { release } from 'node:os';
console.log('node-ready');
let write = 'writable';
try { writeFileSync('.ringwire-vm-write-probe', 'x'); } catch (err) { write = err.code; }
writeFileSync(process.env.RINGWIRE_JOB + '/result.json', JSON.stringify({
  versions: process.versions,
  release: release(),
  cwd: process.cwd(),
  packageSha256: createHash('sha256').update(readFileSync('package.json')).digest('hex'),
  write,
  env: process.env.PROBE_ENV,
}));
`;

test('Vm.start rejects bad options with typed errors before touching QEMU', async () => {
  const base = { name: 'ok', script: 'true', timeoutMs: 1000, workDir: '/tmp' };
  for (const [bad, code] of [
    [{ name: '../x' }, 'ERR_INVALID_ARG'],
    [{ timeoutMs: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ memoryMiB: 64 }, 'ERR_OUT_OF_RANGE'],
    [{ workDir: 'relative' }, 'ERR_INVALID_ARG'],
    [{ env: { 'A B': '1' } }, 'ERR_INVALID_ARG'],
    [{ files: { '../escape': 'x' } }, 'ERR_INVALID_ARG'],
    [{ modules: ['base'] }, 'ERR_INVALID_ARG'],
  ] as const) {
    try {
      await Vm.start({ ...base, ...(bad as object) });
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.ok(isRingwireError(err, code), `${JSON.stringify(bad)} gave ${String(err)}`);
    }
  }
});

test('QEMU refusing its arguments is reported with its stderr and logs', async () => {
  if (!ready()) return;
  await withVms(async (vms) => {
    const vm = await vms.start({ name: 'refused', script: 'true', timeoutMs: 30_000, extraArgs: ['-device', 'no-such-device'] });
    const r = await vm.wait();
    assert.is(r.exitCode, null);
    assert.is(r.qemuExit, 1);
    assert.ok(r.logsDir && /no-such-device/.test(readFileSync(join(r.logsDir, 'qemu.log'), 'utf8')));
    try {
      await vm.waitSuccess();
      assert.unreachable('waitSuccess accepted a guest that never ran');
    } catch (err) {
      assert.match(String(err), /no-such-device/);
    }
    // This failure was the point of the test: keep the log directory for real failures only.
    rmSync(r.logsDir, { recursive: true, force: true });
  });
});

test('a guest runs the host node against the repository over read-only 9p', async () => {
  if (!ready()) return;
  const image = await ensureGuestImage();
  await withVms(async (vms) => {
    const t0 = Date.now();
    const vm = await vms.start({ name: 'probe', script: 'node "$RINGWIRE_JOB/probe.mjs"', files: { 'probe.mjs': PROBE }, env: { PROBE_ENV: "it's here" }, timeoutMs: VM_TIMEOUT_MS });
    await vm.waitForLine(/^node-ready/, VM_TIMEOUT_MS);
    const nodeReadyMs = Date.now() - t0;
    const r = await vm.waitSuccess();
    const result = JSON.parse(readFileSync(join(vm.jobDir, 'result.json'), 'utf8')) as Record<string, unknown>;
    assert.equal((result.versions as NodeJS.ProcessVersions).node, process.versions.node);
    assert.is(result.release, image.kernelRelease);
    assert.is(result.cwd, REPO_ROOT);
    assert.is(result.packageSha256, createHash('sha256').update(readFileSync(join(REPO_ROOT, 'package.json'))).digest('hex'));
    assert.is(result.write, 'EROFS', 'the host tree must be read-only inside the guest');
    assert.is(result.env, "it's here");
    assert.match(r.output, /^node-ready$/m);
    const init = r.marks.get('init'), start = r.marks.get('job-start'), exit = r.marks.get('job-exit');
    assert.ok(init && start && exit, `missing /init marks: ${[...r.marks.keys()].join(', ')}`);
    console.log(`  ${vm.accel}: /init at ${init.uptimeS} s guest (${init.wallMs} ms wall), job start ${start.uptimeS} s (${start.wallMs} ms), node ready ${nodeReadyMs} ms wall, powered off ${r.wallMs} ms`);
  });
});

test('a guest that overruns its timeout is killed and its logs are kept', async () => {
  if (!ready()) return;
  const timeoutMs = 30_000;
  await withVms(async (vms) => {
    const vm = await vms.start({ name: 'hang', script: 'echo about-to-hang; exec sleep 3600', timeoutMs });
    await vm.waitForLine(/^about-to-hang/, timeoutMs);
    const r = await withTimeout('the killed guest to be reported', timeoutMs + 15_000, () => vm.wait());
    assert.ok(r.timedOut);
    assert.is(r.exitCode, null);
    assert.is(r.qemuExit, 'SIGKILL');
    assert.ok(r.wallMs >= timeoutMs, `killed after ${r.wallMs} ms, before its ${timeoutMs} ms limit`);
    assert.ok(r.logsDir && existsSync(join(r.logsDir, 'qemu-cmd.txt')));
    assert.match(readFileSync(join(r.logsDir, 'console.log'), 'latin1'), /about-to-hang/);
    assert.throws(() => process.kill(vm.pid ?? -1, 0), 'QEMU must be gone');
    rmSync(r.logsDir, { recursive: true, force: true });
    await vm.kill();
  });
});

test('user-mode networking reaches a TCP server on the host loopback', async () => {
  if (!ready()) return;
  const nonce = randomBytes(8).toString('hex');
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.setEncoding('utf8');
    sock.on('data', (line: string) => {
      seen.push(`${sock.remoteAddress} ${line.trim()}`);
      sock.end(`pong ${line.trim().split(' ')[1]}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = `
    const net = require('node:net');
    const s = net.connect(${port}, '10.0.2.2', () => s.write('ping ${nonce}\\n'));
    s.setEncoding('utf8');
    s.on('data', (d) => process.stdout.write('reply ' + d));
    s.on('error', (err) => { console.error(err); process.exitCode = 2; });`;
  try {
    await withVms(async (vms) => {
      const vm = await vms.start({ name: 'net', net: true, script: 'node "$RINGWIRE_JOB/client.cjs"', files: { 'client.cjs': client }, timeoutMs: VM_TIMEOUT_MS });
      const r = await vm.waitSuccess();
      assert.match(r.output, new RegExp(`^reply pong ${nonce}$`, 'm'));
      assert.equal(seen, [`127.0.0.1 ping ${nonce}`]);
    });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
});

test.run();
