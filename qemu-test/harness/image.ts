/**
 * Provisions the test guest from Debian packages and caches it: the kernel package that
 * `linux-image-amd64` depends on (apt-get download + dpkg-deb -x), just the modules the guest loads
 * (with their dependencies, from each module's own .modinfo), and a gzipped `cpio -H newc`
 * initramfs holding busybox-static and GUEST_INIT.
 *
 * Cache: `$RINGWIRE_VM_CACHE` or `~/.cache/ringwire-vm`, one directory per kernel package version,
 * holding vmlinuz, modules/ and one initramfs per content hash. Everything is built in a private
 * temp directory and moved in with rename(2), so concurrent provisioners never see half a cache
 * entry; the loser of a race discards its copy and uses the winner's.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { hasPvhEntry, isStaticExecutable, moduleInfo } from './elf.js';
import { GUEST_INIT } from './guest-init.js';

/**
 * Module groups the guest can load, by module name; dependencies are added and ordered
 * automatically. `base` is always loaded (virtio PCI transport and 9p); a VM asks for the others.
 */
export const MODULE_GROUPS = {
  base: ['virtio_pci', '9pnet_virtio', '9p'],
  net: ['virtio_net'],
  rng: ['virtio_rng'],
} as const satisfies Record<string, readonly string[]>;
export type ModuleGroup = Exclude<keyof typeof MODULE_GROUPS, 'base'>;

const META_PACKAGE = 'linux-image-amd64';
const BUSYBOX = '/bin/busybox';
/** Bump when the layout of a cache entry changes, so old entries are not misread. */
const CACHE_FORMAT = 2;
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

export interface GuestImage {
  /** The kernel's release string (uname -r in the guest), e.g. 6.1.0-56-amd64. */
  readonly kernelRelease: string;
  /** Debian package and version the kernel came from. */
  readonly kernelPackage: string;
  readonly kernelPackageVersion: string;
  /** The kernel QEMU boots: the uncompressed PVH vmlinux when it could be extracted, else the bzImage. */
  readonly kernel: string;
  readonly kernelFormat: 'pvh' | 'bzImage';
  readonly initramfs: string;
  /** Load order per group, dependencies first, each list without the modules of `base`. */
  readonly moduleGroups: Readonly<Record<keyof typeof MODULE_GROUPS, readonly string[]>>;
  readonly cacheDir: string;
}

export function vmCacheDir(): string {
  return process.env.RINGWIRE_VM_CACHE || join(homedir(), '.cache', 'ringwire-vm');
}

function runBinary(cmd: string, args: string[], what: string, cwd?: string): Buffer {
  const r = spawnSync(cmd, args, { cwd, maxBuffer: 256 << 20 });
  if (r.error || r.status !== 0) {
    const output = Buffer.concat([r.stderr ?? Buffer.alloc(0), r.stdout ?? Buffer.alloc(0)]).toString().trim().slice(-2000);
    const detail = r.error ? r.error.message : `exit ${r.status ?? r.signal}: ${output}`;
    throw new Error(`provisioning the test guest: ${what} failed (${cmd} ${args.join(' ')}): ${detail}`);
  }
  return r.stdout;
}

function run(cmd: string, args: string[], what: string, cwd?: string): string {
  return runBinary(cmd, args, what, cwd).toString('utf8');
}

let aptUpdated = false;
/** Runs an apt query; on failure refreshes the package lists once (they may be missing or stale). */
function withAptRetry<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (aptUpdated) throw err;
    aptUpdated = true;
    run('apt-get', ['update', '-q'], 'refreshing the package lists after an apt failure');
    return fn();
  }
}

const APT_LISTS = '/var/lib/apt/lists';

/** A stamp of the apt package lists: the resolution below can only change when they do. */
function aptListsStamp(): string {
  if (!existsSync(APT_LISTS)) return 'none';
  return readdirSync(APT_LISTS)
    .filter((f) => f.includes('_Packages'))
    .sort()
    .map((f) => `${f}:${statSync(join(APT_LISTS, f)).mtimeMs}`)
    .join('|');
}

function queryKernelPackage(): { name: string; version: string } {
  return withAptRetry(() => {
    const deps = run('apt-cache', ['depends', META_PACKAGE], `resolving ${META_PACKAGE}`);
    const name = /^\s*Depends:\s*(linux-image-\S+)/m.exec(deps)?.[1];
    if (!name) throw new Error(`provisioning the test guest: ${META_PACKAGE} depends on no linux-image-* package:\n${deps}`);
    const show = run('apt-cache', ['show', '--no-all-versions', name], `looking up ${name}`);
    const version = /^Version:\s*(\S+)/m.exec(show)?.[1];
    if (!version) throw new Error(`provisioning the test guest: apt-cache show ${name} printed no Version`);
    return { name, version };
  });
}

/** The kernel package and version to use; apt-cache takes seconds here, so its answer is cached. */
function resolveKernelPackage(cacheDir: string): { name: string; version: string } {
  const file = join(cacheDir, 'resolved.json');
  const stamp = aptListsStamp();
  if (existsSync(file)) {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as { stamp: string; name: string; version: string };
    if (cached.stamp === stamp) return { name: cached.name, version: cached.version };
  }
  const pkg = queryKernelPackage();
  const tmp = `${file}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify({ stamp: aptListsStamp(), ...pkg }));
  renameSync(tmp, file);
  return pkg;
}

function readModule(path: string): Buffer {
  if (path.endsWith('.ko')) return readFileSync(path);
  if (path.endsWith('.ko.gz')) return gunzipSync(readFileSync(path));
  if (path.endsWith('.ko.xz')) return runBinary('xz', ['-dc', path], `decompressing ${path}`);
  if (path.endsWith('.ko.zst')) return runBinary('zstd', ['-dc', path], `decompressing ${path}`);
  throw new Error(`provisioning the test guest: unknown module format ${path}`);
}

/** Module file name (dashes or underscores, any compression) to the name the kernel uses. */
function moduleName(file: string): string {
  return file.replace(/\.ko(\.(gz|xz|zst))?$/, '').replace(/-/g, '_');
}

function indexModules(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) indexModules(p, out);
    else if (/\.ko(\.(gz|xz|zst))?$/.test(entry.name)) out.set(moduleName(entry.name), p);
  }
  return out;
}

/**
 * Copies the wanted modules and everything they depend on into `dest` as `<name>.ko`
 * (decompressed) and returns each group's load order, dependencies first.
 */
function collectModules(moduleRoot: string, release: string, dest: string): Record<keyof typeof MODULE_GROUPS, string[]> {
  const index = indexModules(join(moduleRoot, 'kernel'));
  const deps = new Map<string, string[]>();
  const visit = (name: string, order: string[], seen: Set<string>, chain: string[]): void => {
    if (seen.has(name)) return;
    if (chain.includes(name)) throw new Error(`provisioning the test guest: module dependency cycle ${[...chain, name].join(' -> ')}`);
    let mine = deps.get(name);
    if (!mine) {
      const file = index.get(name);
      if (!file) throw new Error(`provisioning the test guest: module ${name} (needed by ${chain.join(' -> ') || 'the guest'}) is not in ${moduleRoot}; is it built in or renamed in kernel ${release}?`);
      const tmp = join(dest, `${name}.ko`);
      writeFileSync(tmp, readModule(file));
      const info = moduleInfo(tmp);
      const vermagic = info.get('vermagic')?.split(' ')[0];
      if (vermagic !== release) throw new Error(`provisioning the test guest: ${file} has vermagic ${vermagic}, expected ${release}`);
      mine = (info.get('depends') ?? '').split(',').filter(Boolean);
      deps.set(name, mine);
    }
    for (const d of mine) visit(d, order, seen, [...chain, name]);
    seen.add(name);
    order.push(name);
  };
  const base: string[] = [];
  const baseSeen = new Set<string>();
  for (const m of MODULE_GROUPS.base) visit(m, base, baseSeen, []);
  const groups = { base } as Record<keyof typeof MODULE_GROUPS, string[]>;
  for (const [group, wanted] of Object.entries(MODULE_GROUPS)) {
    if (group === 'base') continue;
    const order: string[] = [];
    const seen = new Set(baseSeen);
    for (const m of wanted) visit(m, order, seen, []);
    groups[group as keyof typeof MODULE_GROUPS] = order;
  }
  return groups;
}

/**
 * Writes the uncompressed kernel next to the bzImage when it is an XZ payload with a PVH entry
 * note: booting it skips SeaBIOS's real-mode path and the in-guest XZ decompression, which under TCG
 * cost several seconds per boot. Returns the format to boot.
 */
function extractPvhKernel(bzImage: string, dest: string): 'pvh' | 'bzImage' {
  const data = readFileSync(bzImage);
  const at = data.indexOf(XZ_MAGIC);
  if (at < 0) return 'bzImage';
  const r = spawnSync('xz', ['-dc', '--single-stream'], { input: data.subarray(at), maxBuffer: 512 << 20 });
  if (r.status !== 0 || !r.stdout || !hasPvhEntry(r.stdout, `vmlinux inside ${bzImage}`)) return 'bzImage';
  writeFileSync(dest, r.stdout);
  return 'pvh';
}

/** Downloads and unpacks the kernel package into a fresh cache entry at `final`. */
function buildKernelEntry(pkg: { name: string; version: string }, cacheDir: string, final: string): void {
  const work = join(cacheDir, `.build-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(work, { recursive: true });
  // apt drops privileges to _apt for downloads; a private 0700 directory makes it warn and fall back.
  chmodSync(work, 0o755);
  try {
    withAptRetry(() => run('apt-get', ['download', '-q', `${pkg.name}=${pkg.version}`], `downloading ${pkg.name}`, work));
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`provisioning the test guest: apt-get download left no .deb in ${work}`);
    const tree = join(work, 'tree');
    run('dpkg-deb', ['-x', join(work, deb), tree], `unpacking ${deb}`);
    const releases = readdirSync(join(tree, 'lib', 'modules'));
    const release = releases[0];
    if (releases.length !== 1 || !release) throw new Error(`provisioning the test guest: expected one kernel in ${deb}, found ${releases.join(', ') || 'none'}`);
    const entry = join(work, 'entry');
    mkdirSync(join(entry, 'modules'), { recursive: true });
    copyFileSync(join(tree, 'boot', `vmlinuz-${release}`), join(entry, 'vmlinuz'));
    const kernelFormat = extractPvhKernel(join(entry, 'vmlinuz'), join(entry, 'vmlinux'));
    const groups = collectModules(join(tree, 'lib', 'modules', release), release, join(entry, 'modules'));
    writeFileSync(join(entry, 'manifest.json'), JSON.stringify({ format: CACHE_FORMAT, release, kernelFormat, package: pkg.name, version: pkg.version, groups }, null, 2));
    try {
      renameSync(entry, final);
    } catch (err) {
      // Another provisioner finished first; its entry is as good as ours.
      if (!existsSync(join(final, 'manifest.json'))) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function buildInitramfs(entry: string, out: string): void {
  if (!existsSync(BUSYBOX)) throw new Error(`provisioning the test guest: ${BUSYBOX} is missing; install the busybox-static package`);
  if (!isStaticExecutable(BUSYBOX)) throw new Error(`provisioning the test guest: ${BUSYBOX} is dynamically linked; install busybox-static (it replaces busybox)`);
  const manifest = JSON.parse(readFileSync(join(entry, 'manifest.json'), 'utf8')) as { groups: Record<string, string[]> };
  const stage = `${out}.stage-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    for (const dir of ['bin', 'dev', 'proc', 'sys', 'lib/modules', 'mnt/host', 'mnt/job']) mkdirSync(join(stage, dir), { recursive: true });
    copyFileSync(BUSYBOX, join(stage, 'bin', 'busybox'));
    writeFileSync(join(stage, 'init'), GUEST_INIT, { mode: 0o755 });
    chmodSync(join(stage, 'bin', 'busybox'), 0o755);
    for (const [group, order] of Object.entries(manifest.groups)) {
      writeFileSync(join(stage, 'lib', 'modules', `${group}.order`), order.join('\n') + '\n');
      for (const m of order) copyFileSync(join(entry, 'modules', `${m}.ko`), join(stage, 'lib', 'modules', `${m}.ko`));
    }
    const list = listTree(stage).join('\n') + '\n';
    const r = spawnSync('cpio', ['-o', '-H', 'newc', '-R', '0:0', '--quiet'], { cwd: stage, input: list, maxBuffer: 256 << 20 });
    if (r.error || r.status !== 0) {
      throw new Error(`provisioning the test guest: cpio -o -H newc failed (is the cpio package installed?): ${r.error?.message ?? r.stderr.toString().trim()}`);
    }
    const tmp = `${out}.${process.pid}-${randomBytes(4).toString('hex')}`;
    writeFileSync(tmp, gzipSync(r.stdout, { level: 6 }));
    renameSync(tmp, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** Paths under `root`, relative, parents before children (cpio must create directories first). */
function listTree(root: string, rel = '.'): string[] {
  const out = [rel];
  for (const entry of readdirSync(join(root, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = rel === '.' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...listTree(root, p));
    else out.push(p);
  }
  return out;
}

/** Drops entries for other kernel versions or cache formats (~80 MB each) once a new one exists. */
function pruneOtherEntries(cacheDir: string, keep: string): void {
  for (const name of readdirSync(cacheDir)) {
    if (name !== keep && name.startsWith('linux-image-')) rmSync(join(cacheDir, name), { recursive: true, force: true });
  }
}

let memo: GuestImage | undefined;

/**
 * Returns the cached guest image, provisioning it first if needed. Safe to call from several
 * processes at once. Throws an Error naming the step that failed (apt, dpkg-deb, a module, busybox).
 */
export async function ensureGuestImage(): Promise<GuestImage> {
  if (memo) return memo;
  const cacheDir = vmCacheDir();
  mkdirSync(cacheDir, { recursive: true });
  const pkg = resolveKernelPackage(cacheDir);
  const entry = join(cacheDir, `${pkg.name}_${pkg.version}-v${CACHE_FORMAT}`);
  if (!existsSync(join(entry, 'manifest.json'))) {
    buildKernelEntry(pkg, cacheDir, entry);
    pruneOtherEntries(cacheDir, basename(entry));
  }
  const manifest = JSON.parse(readFileSync(join(entry, 'manifest.json'), 'utf8')) as { release: string; kernelFormat: GuestImage['kernelFormat']; groups: GuestImage['moduleGroups'] };
  // The initramfs is keyed by what goes into it, so editing GUEST_INIT or busybox rebuilds it.
  const bb = statSync(BUSYBOX, { throwIfNoEntry: false });
  const key = createHash('sha256').update(GUEST_INIT).update(JSON.stringify(manifest.groups)).update(`${bb?.size}:${bb?.mtimeMs}`).digest('hex').slice(0, 16);
  const initramfs = join(entry, `initramfs-${key}.cpio.gz`);
  if (!existsSync(initramfs)) buildInitramfs(entry, initramfs);
  memo = {
    kernelRelease: manifest.release,
    kernelPackage: pkg.name,
    kernelPackageVersion: pkg.version,
    kernel: join(entry, manifest.kernelFormat === 'pvh' ? 'vmlinux' : 'vmlinuz'),
    kernelFormat: manifest.kernelFormat,
    initramfs,
    moduleGroups: manifest.groups,
    cacheDir: entry,
  };
  return memo;
}

/** For reports: the cache entry's files relative to the cache root. */
export function describeImage(image: GuestImage): string {
  const rel = (p: string): string => relative(vmCacheDir(), p);
  const size = (p: string): string => `${(statSync(p).size / 1024).toFixed(0)} KiB`;
  return [
    `kernel ${image.kernelRelease} from ${image.kernelPackage} ${image.kernelPackageVersion}`,
    `  ${rel(image.kernel)} (${size(image.kernel)}, boots as ${image.kernelFormat})`,
    `  ${rel(image.initramfs)} (${size(image.initramfs)}) in ${vmCacheDir()}`,
    ...Object.entries(image.moduleGroups).map(([g, mods]) => `  modules ${g}: ${mods.join(' ') || '(none beyond base)'}`),
    `  ${basename(BUSYBOX)} from ${BUSYBOX}`,
  ].join('\n');
}
