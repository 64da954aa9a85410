#!/usr/bin/env node
// Runs every compiled *.test.js under dist/<tier>/ in its own process with a hard timeout, sums
// uvu's per-file totals and ends with the line `N passed, N failed` (`, N skipped` when any were;
// the passes of a file that skipped anything for a missing dependency count as skipped).
// A file that crashes, times out or prints no uvu summary counts as failed. Under CI a skip is a failure.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const tier = process.argv[2] ?? 'test';
const filters = process.argv.slice(3); // substrings of the path: a file runs if it matches any
const root = join(import.meta.dirname, '..', 'dist', tier);
const fileTimeoutMs = Number(process.env.RINGWIRE_FILE_TIMEOUT_MS ?? (tier === 'qemu-test' ? 900_000 : 180_000));

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js') && (filters.length === 0 || filters.some((f) => p.includes(f)))) out.push(p);
  }
  return out;
}

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout kills grandchildren too
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, fileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* group already empty */ }
      const clean = out.replace(/\x1b\[[0-9;]*m/g, '');
      const num = (label) => { const m = clean.match(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm')); return m ? Number(m[1]) : undefined; };
      const total = num('Total');
      let passed = num('Passed'), skipped = num('Skipped') ?? 0;
      let failed = total !== undefined && passed !== undefined ? total - passed - skipped : 1;
      // A test whose dependency is missing returns early (requireOrSkip printed SKIPPING), which
      // uvu counts as a pass. Count every pass of such a file as skipped: a skip is never a pass.
      if (/^\s*SKIPPING:/m.test(clean) && passed) {
        skipped += passed;
        passed = 0;
      }
      let reason = '';
      if (timedOut) reason = `timed out after ${fileTimeoutMs} ms`;
      else if (code !== 0) reason = `exited with ${signal ?? code}`;
      else if (total === undefined) reason = 'printed no uvu summary';
      if (reason && failed === 0) failed = 1;
      resolve({ passed: passed ?? 0, failed, skipped, reason });
    });
  });
}

const files = find(root);
if (files.length === 0) {
  console.error(`no test files under ${root}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
let passed = 0, failed = 0, skipped = 0;
const broken = [];
for (const file of files) {
  const name = relative(root, file);
  console.log(`\n# ${tier}/${name}`);
  const t0 = Date.now();
  const r = await runFile(file);
  console.log(`# ${name}: ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''} (${((Date.now() - t0) / 1000).toFixed(1)} s)${r.reason ? ` — ${r.reason}` : ''}`);
  passed += r.passed; failed += r.failed; skipped += r.skipped;
  if (r.failed) broken.push(`${name}${r.reason ? ` (${r.reason})` : ''}`);
}
if (broken.length) console.log(`\nfailed files:\n  ${broken.join('\n  ')}`);
if (skipped && process.env.CI) {
  console.log(`\n${skipped} test(s) skipped under CI: a tier's dependency is missing, which CI treats as failure`);
  failed += skipped;
}
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
