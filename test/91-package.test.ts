// The npm package holds what users need and nothing else: the compiled library, virtio and CLI with
// their type declarations, the prebuilds, the addon sources and binding.gyp for the source-build
// fallback, README and docs. No tests, benchmarks, bench results, CI scripts or source maps (they
// point at TypeScript sources the package does not ship). Every "exports" target, "main", "types"
// and "bin" is in it. Read from `npm pack --dry-run --json` (no scripts run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../lib/native/native.js';

interface PackEntry { path: string; size: number }
const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as {
  main: string; types: string; bin: Record<string, string>; exports: Record<string, { types: string; default: string }>;
};
const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
  cwd: packageRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'],
})) as Array<{ files: PackEntry[] }>;
const files = new Set(packed[0]!.files.map((f) => f.path));

const allowed = [
  /^package\.json$/, /^README\.md$/, /^LICENSE$/, /^binding\.gyp$/, /^docs\/[^/]+\.md$/,
  /^addon\/[a-z_]+\.(cc|h)$/, /^addon\/install\.cjs$/,
  /^dist\/(lib|virtio|bin)\/.+\.(js|d\.ts)$/,
  /^prebuilds\/linux-(x64|arm64)\/ringwire\.(abi\d+\.)?glibc\.node$/,
];

test('every packed file is one users need', () => {
  const stray = [...files].filter((f) => !allowed.some((re) => re.test(f)));
  assert.equal(stray, [], `unexpected files in the package: ${stray.join(', ')}`);
});

test('the library, its types, the CLI, the addon sources and the install script are in it', () => {
  const need = [pkg.main, pkg.types, ...Object.values(pkg.bin), 'binding.gyp', 'addon/install.cjs', 'addon/shared_buffer.cc', 'README.md'];
  for (const spec of Object.values(pkg.exports)) need.push(spec.types, spec.default);
  for (const f of need.map((p) => p.replace(/^\.\//, ''))) assert.ok(files.has(f), `${f} is not packed`);
  for (const source of readdirSync(join(packageRoot, 'addon')).filter((f) => /\.(cc|h)$/.test(f))) {
    assert.ok(files.has(`addon/${source}`), `addon/${source} is not packed: the source build needs it`);
  }
});

test('the prebuilds on disk are all packed; in CI both architectures are there', () => {
  const dir = join(packageRoot, 'prebuilds');
  const onDisk = existsSync(dir) ? readdirSync(dir).flatMap((d) => readdirSync(join(dir, d)).map((f) => `prebuilds/${d}/${f}`)) : [];
  for (const f of onDisk) assert.ok(files.has(f), `${f} is not packed`);
  if (process.env.CI) {
    for (const arch of ['x64', 'arm64']) {
      for (const name of ['ringwire.glibc.node', 'ringwire.abi115.glibc.node']) {
        assert.ok(files.has(`prebuilds/linux-${arch}/${name}`), `prebuilds/linux-${arch}/${name} missing (.ci/prebuilds.sh builds it)`);
      }
    }
  }
});

test.run();
