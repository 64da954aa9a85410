/**
 * The tree's layering, checked from the TypeScript sources (so `import type` edges count too):
 * every folder under lib/ imports only the layers below it, nothing under lib/ imports virtio/,
 * bin/, bench/ or test/, and no module graph in lib/, virtio/ or bin/ has a cycle.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const root = resolve(import.meta.dirname, '..', '..');

/**
 * What each lib/ folder may import besides itself; read bottom to top. A new folder must be added
 * here (and to docs/architecture.md), which is the point: its place in the stack is a decision.
 */
const LAYERS: Record<string, readonly string[]> = {
  'lib/errors.ts': [],
  'lib/ring': ['lib/errors.ts'],
  'lib/native': ['lib/errors.ts', 'lib/ring'],
  'lib/process': ['lib/errors.ts', 'lib/ring', 'lib/native'],
  'lib/channel': ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process'],
  'lib/ivshmem': ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process', 'lib/channel'],
  'lib/types': ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process', 'lib/channel'],
  'lib/agent': ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process', 'lib/channel'],
  'lib/http': ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process', 'lib/channel', 'lib/agent'],
  'lib/cni': ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process', 'lib/channel', 'lib/agent'],
  'lib/index.ts': ['lib'],
  virtio: ['lib/errors.ts', 'lib/ring', 'lib/native', 'lib/process', 'lib/channel'],
  bin: ['lib', 'virtio'],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Repository-relative .ts files that `file` imports (static, type-only, re-exports and dynamic). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts'));
}

/** The LAYERS key that owns `file`: the longest matching prefix. */
function layerOf(file: string): string | undefined {
  return Object.keys(LAYERS)
    .filter((k) => file === k || file.startsWith(`${k}/`))
    .sort((a, b) => b.length - a.length)[0];
}

const files = [...sources('lib'), ...sources('virtio'), ...sources('bin')];
const graph = new Map(files.map((f) => [f, importsOf(f)]));

test('every module under lib/, virtio/ and bin/ belongs to a declared layer', () => {
  const homeless = files.filter((f) => layerOf(f) === undefined);
  assert.equal(homeless, [], `add these folders to LAYERS and docs/architecture.md: ${homeless.join(', ')}`);
});

test('imports flow down the stack only', () => {
  const upward: string[] = [];
  for (const [file, deps] of graph) {
    const layer = layerOf(file);
    if (layer === undefined) continue;
    for (const dep of deps) {
      const target = layerOf(dep) ?? dep;
      const allowed = target === layer || LAYERS[layer]!.some((a) => dep === a || dep.startsWith(`${a}/`));
      if (!allowed) upward.push(`${file} -> ${dep}`);
    }
  }
  assert.equal(upward, [], `imports against the layering:\n  ${upward.join('\n  ')}`);
});

test('no import cycles, type-only imports included', () => {
  // Tarjan's strongly connected components; any component of two or more modules is a cycle.
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [], on = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++; stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(scc.sort());
    }
  };
  for (const f of graph.keys()) if (!idx.has(f)) visit(f);
  assert.equal(cycles, [], `import cycles:\n  ${cycles.map((c) => c.join(' <-> ')).join('\n  ')}`);
});

test('the checker sees the edges it must (it can fail)', () => {
  assert.ok(graph.get('lib/channel/channel.ts')!.some((d) => d.startsWith('lib/ring/')), 'channel imports the ring layer');
  assert.equal(layerOf('lib/ring/spsc.ts'), 'lib/ring');
  assert.equal(layerOf('lib/errors.ts'), 'lib/errors.ts');
});

test.run();
