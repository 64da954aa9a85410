/**
 * A real vhost-user front-end nobody here wrote, without a VM: DPDK's virtio_user PMD in
 * dpdk-testpmd (Debian 12's DPDK 22.11), two ports, one on each of two switch sockets. testpmd
 * sends a first burst on both ports and then forwards whatever it receives back out of the other
 * port, so frames circulate through the switch until we stop it.
 *
 * Provisioning: if `dpdk-testpmd` is installed (Debian `dpdk-dev`) it is used; otherwise the
 * `dpdk-dev` package and the libraries it links are fetched with `apt-get download` and unpacked
 * into $RINGWIRE_DPDK_CACHE (default ~/.cache/ringwire-dpdk; ~25 MB, about a minute once), because
 * installing dpdk-dev pulls 225 packages including systemd. It must not live under /tmp: EAL
 * refuses to load plugins from a world-writable directory tree.
 *
 * Memory: `--no-huge` works for virtio_user here (EAL backs its memory with memfds it can pass in
 * SET_MEM_TABLE), so the test reserves no hugepages on a shared machine. Those memfds are not
 * sealed, so the switch runs with allowUnsealedMemory (which trusts testpmd not to shrink them). `--no-pci` keeps DPDK
 * away from the host's own NICs.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VhostUserSwitch } from '../virtio/devices/switch.js';
import { Children, makeTempDir, requireOrSkip, withTimeout } from './helpers/index.js';

interface Dpdk {
  testpmd: string;
  pmdDir: string;
  env: NodeJS.ProcessEnv;
}

const LIB_PACKAGES = /^(dpdk-dev|librte|libdpdk|libnuma|libfdt|libjansson|libpcap|libibverbs|ibverbs|libbsd|libelf|libmd|libipsec|libisal|libxdp|libbpf|libnl|libmlx)/;

function pmdDirUnder(libDir: string): string | undefined {
  const base = join(libDir, 'dpdk');
  if (!existsSync(base)) return undefined;
  const d = readdirSync(base).find((n) => n.startsWith('pmds-'));
  return d ? join(base, d) : undefined;
}

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 4).join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).slice(-1000)}`);
  return r.stdout;
}

/** Finds or provisions dpdk-testpmd; undefined when this host cannot get it (no apt, no network). */
function findDpdk(): Dpdk | undefined {
  const libDir = '/usr/lib/x86_64-linux-gnu';
  const system = pmdDirUnder(libDir);
  if (existsSync('/usr/bin/dpdk-testpmd') && system) return { testpmd: '/usr/bin/dpdk-testpmd', pmdDir: system, env: process.env };
  const cache = process.env.RINGWIRE_DPDK_CACHE || join(homedir(), '.cache', 'ringwire-dpdk');
  const root = join(cache, 'root');
  if (!existsSync(join(root, 'usr/bin/dpdk-testpmd'))) {
    try {
      const t0 = Date.now();
      const plan = run('apt-get', ['install', '-s', '--no-install-recommends', 'dpdk-dev']);
      const pkgs = [...plan.matchAll(/^Inst (\S+)/gm)].map((m) => m[1]!).filter((p) => LIB_PACKAGES.test(p));
      const debs = join(cache, 'debs');
      const tmp = join(cache, 'root.tmp');
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(debs, { recursive: true, mode: 0o755 });
      mkdirSync(tmp, { mode: 0o755 });
      run('apt-get', ['download', ...pkgs], debs);
      for (const f of readdirSync(debs).filter((n) => n.endsWith('.deb'))) run('dpkg-deb', ['-x', join(debs, f), tmp]);
      rmSync(debs, { recursive: true, force: true });
      renameSync(tmp, root);
      console.log(`  provisioned DPDK from ${pkgs.length} packages into ${root} in ${Date.now() - t0} ms`);
    } catch (err) {
      console.warn(`  cannot provision DPDK: ${(err as Error).message}`);
      return undefined;
    }
  }
  const lib = join(root, 'usr/lib/x86_64-linux-gnu');
  const pmdDir = pmdDirUnder(lib);
  if (!pmdDir) return undefined;
  // Some of the libraries (libnl-3-200) unpack under /lib rather than /usr/lib.
  const libPath = [lib, join(root, 'lib/x86_64-linux-gnu')].join(':');
  return { testpmd: join(root, 'usr/bin/dpdk-testpmd'), pmdDir, env: { ...process.env, LD_LIBRARY_PATH: libPath } };
}

const dpdk = findDpdk();

/** Starts an interactive testpmd with one virtio_user port per socket. */
function testpmd(d: Dpdk, children: Children, prefix: string, sockets: string[], macs: string[]): { child: ChildProcessWithoutNullStreams; output: () => string; command(line: string): void } {
  const args = [
    '-l', '0-1', '--no-pci', '--no-huge', '-m', '256', `--file-prefix=${prefix}`,
    '-d', join(d.pmdDir, 'librte_net_virtio.so'), '-d', join(d.pmdDir, 'librte_mempool_ring.so'),
    ...sockets.map((s, i) => `--vdev=net_virtio_user${i},path=${s},queue_size=256,mac=${macs[i]}`),
    '--', '-i', '--total-num-mbufs=4096', '--no-lsc-interrupt', '--nb-cores=1',
  ];
  const child = children.add(spawn(d.testpmd, args, { env: d.env, stdio: ['pipe', 'pipe', 'pipe'] }));
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  child.stderr.on('data', (b: Buffer) => (out += b));
  return { child, output: () => out, command: (line) => child.stdin.write(`${line}\n`) };
}

async function until(what: string, cond: () => boolean, failIf?: () => string | undefined): Promise<void> {
  await withTimeout(what, 30_000, async () => {
    while (!cond()) {
      const bad = failIf?.();
      if (bad) throw new Error(`${what}: ${bad}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
}

test('dpdk-testpmd (virtio_user) forwards frames both ways through the switch; killed, it is dropped; restarted, it switches again', async () => {
  if (!requireOrSkip('dpdk-testpmd (Debian dpdk-dev, or apt-get download access to provision it)', dpdk !== undefined)) return;
  const { dir, cleanup } = makeTempDir();
  const children = new Children();
  const logs: string[] = [];
  const socks = [join(dir, 'a.sock'), join(dir, 'b.sock')];
  // EAL's --no-huge memfds carry no seals: this front-end is trusted not to shrink its memory.
  const sw = VhostUserSwitch.start({ ports: socks, log: (m) => logs.push(m), allowUnsealedMemory: true });
  const [a, b] = sw.ports as [typeof sw.ports[0], typeof sw.ports[0]];
  const macs = ['02:00:00:00:aa:01', '02:00:00:00:aa:02'];
  try {
    const prefix = `rw${process.pid}`;
    let pmd = testpmd(dpdk!, children, prefix, socks, macs);
    const exited = (): string | undefined => (pmd.child.exitCode !== null || pmd.child.signalCode !== null ? `testpmd exited: ${pmd.output().slice(-2000)}` : undefined);
    await until('testpmd to connect both ports', () => sw.l2.ports.length === 2, exited);
    // mac mode rewrites each frame's source to the port's MAC and its destination to the peer's,
    // so after the first frames the switch forwards unicast instead of flooding.
    pmd.command('set fwd mac');
    pmd.command(`set eth-peer 0 ${macs[1]}`);
    pmd.command(`set eth-peer 1 ${macs[0]}`);
    pmd.command('start tx_first');
    const target = 20_000;
    await until(`${target} frames each way`, () => a.stats.rxFrames >= target && b.stats.rxFrames >= target, exited);
    const fwd = sw.l2.stats;
    assert.ok(fwd.forwarded > fwd.flooded, `learned unicast forwarding: ${JSON.stringify(fwd)}`);
    assert.is(sw.l2.lookup(Uint8Array.from([2, 0, 0, 0, 0xaa, 1])), a);
    assert.is(sw.l2.lookup(Uint8Array.from([2, 0, 0, 0, 0xaa, 2])), b);
    assert.is(a.stats.txDropped + b.stats.txDropped, 0);
    console.log(`  switch: ${JSON.stringify(sw.l2.stats)}; port a ${JSON.stringify(a.stats)}`);

    // Killed mid-traffic: both ports leave the switch.
    pmd.child.kill('SIGKILL');
    await until('both ports dropped', () => sw.l2.ports.length === 0);
    assert.is(sw.l2.lookup(Uint8Array.from([2, 0, 0, 0, 0xaa, 1])), undefined);
    // Restarted on the same sockets: switching resumes from clean back-ends.
    const before = a.stats.rxFrames;
    pmd = testpmd(dpdk!, children, prefix, socks, macs);
    await until('testpmd to reconnect', () => sw.l2.ports.length === 2, exited);
    pmd.command('set fwd mac');
    pmd.command(`set eth-peer 0 ${macs[1]}`);
    pmd.command(`set eth-peer 1 ${macs[0]}`);
    pmd.command('start tx_first');
    const beforeB = b.stats.rxFrames;
    await until('frames after the restart', () => a.stats.rxFrames >= before + target && b.stats.rxFrames >= beforeB + target, exited);
    pmd.command('stop');
    pmd.command('quit');
    await withTimeout('testpmd to quit', 30_000, () => new Promise((r) => (pmd.child.exitCode !== null ? r(null) : pmd.child.once('exit', r))));
    // testpmd's stdout is block-buffered into our pipe: its own counters are readable once it has exited.
    const rx = /Accumulated forward statistics[\s\S]*?RX-packets: (\d+)/.exec(pmd.output());
    // In mac mode testpmd sends only what it received, plus its tx_first burst of 32 per port:
    // the switch saw at least 2 * target frames from it, so it received at least that minus 64.
    assert.ok(rx && Number(rx[1]) >= 2 * target - 64, `testpmd received ${rx?.[1]}: ${pmd.output().slice(-1500)}`);
    assert.not.match(logs.join('\n'), /broken|dropping the front-end/, 'no protocol errors or broken queues');
  } finally {
    await children.killAll();
    await sw.close();
    cleanup();
  }
});

test.run();
