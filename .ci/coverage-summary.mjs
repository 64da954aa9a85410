#!/usr/bin/env node
// Prints c8's json-summary by folder (lib/ring, lib/native, ..., virtio/vhost-user, bin) and lists the
// files under 80% line coverage. Information for the closing notes, not a gate.
// Usage: node .ci/coverage-summary.mjs coverage/coverage-summary.json
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const file = process.argv[2] ?? 'coverage/coverage-summary.json';
const summary = JSON.parse(readFileSync(file, 'utf8'));
const root = process.cwd();
const kinds = ['lines', 'branches', 'functions'];
const folders = new Map();
const low = [];
const typeOnly = [];
// A module of interfaces and types compiles to `export {};`: it never runs, yet --all counts its lines.
function isTypeOnly(rel) {
  const js = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
  if (!existsSync(js)) return false;
  const code = readFileSync(js, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '').trim();
  return /^export \{\};?$/.test(code);
}
const total = { files: 0, lines: [0, 0], branches: [0, 0], functions: [0, 0] };
for (const [path, s] of Object.entries(summary)) {
  if (path === 'total') continue;
  const rel = relative(root, path);
  if (isTypeOnly(rel)) {
    typeOnly.push(rel);
    continue;
  }
  total.files++;
  for (const k of kinds) { total[k][0] += s[k].covered; total[k][1] += s[k].total; }
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
console.log(`${'all'.padEnd(24)} ${String(total.files).padStart(5)} ${pct(total.lines)} ${pct(total.branches)} ${pct(total.functions)}`);
console.log(`\ntype-only modules, not counted (${typeOnly.length}): ${typeOnly.sort().join(', ')}`);
console.log(`\nfiles under 80% of lines (${low.length}):`);
for (const l of low.sort()) console.log(`  ${l}`);
