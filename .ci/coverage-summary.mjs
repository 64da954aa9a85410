#!/usr/bin/env node
// Prints c8's json-summary by folder (lib/ring, lib/native, ..., virtio/vhost-user, bin) and lists the
// files under 80% line coverage. Information for the closing notes, not a gate.
// Usage: node .ci/coverage-summary.mjs coverage/coverage-summary.json
import { readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';

const file = process.argv[2] ?? 'coverage/coverage-summary.json';
const summary = JSON.parse(readFileSync(file, 'utf8'));
const root = process.cwd();
const kinds = ['lines', 'branches', 'functions'];
const folders = new Map();
const low = [];
for (const [path, s] of Object.entries(summary)) {
  if (path === 'total') continue;
  const rel = relative(root, path);
  const folder = dirname(rel);
  const f = folders.get(folder) ?? { files: 0, lines: [0, 0], branches: [0, 0], functions: [0, 0] };
  f.files++;
  for (const k of kinds) { f[k][0] += s[k].covered; f[k][1] += s[k].total; }
  folders.set(folder, f);
  if (s.lines.total > 0 && s.lines.pct < 80) low.push(`${rel}: ${s.lines.pct.toFixed(1)}% of ${s.lines.total} lines`);
}
const pct = ([c, t]) => (t ? ((100 * c) / t).toFixed(1) + '%' : '-').padStart(7);
console.log(`${'folder'.padEnd(24)} files   lines branches functions`);
for (const [folder, f] of [...folders].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`${folder.padEnd(24)} ${String(f.files).padStart(5)} ${pct(f.lines)} ${pct(f.branches)} ${pct(f.functions)}`);
}
const t = summary.total;
console.log(`${'all'.padEnd(24)} ${String(folders.size).padStart(5)} ${pct([t.lines.covered, t.lines.total])} ${pct([t.branches.covered, t.branches.total])} ${pct([t.functions.covered, t.functions.total])}`);
console.log(`\nfiles under 80% of lines (${low.length}):`);
for (const l of low.sort()) console.log(`  ${l}`);
