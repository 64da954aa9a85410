// The benchmark picture (bench/svg.ts) laid out as a reader sees it: with many transports with long
// names, paced rows and invalid rows, no two text boxes overlap, nothing falls outside the canvas,
// each group has one colour of its own, and every bar carries its ratio to uds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GROUP_COLOR, groupOf, layoutSvg, MAX_LABEL, renderSvg, WIDTH, type Shape, type TextBox } from '../bench/svg.js';
import type { Report, ResultRow } from '../bench/results.js';

function row(transport: string, pattern: string, i: number, extra: Partial<ResultRow> = {}): ResultRow {
  const ping = pattern !== 'stream';
  const p50 = 0.3 * 1.9 ** i;
  return {
    transport, pattern, size: 64,
    rttP50Us: ping ? p50 : null, rttP99Us: ping ? p50 * 7 : null, rttP999Us: ping ? p50 * 20 : null,
    msgsPerSec: ping ? null : 3e3 * 1.8 ** i, bytesPerSec: ping ? null : 64 * 3e3 * 1.8 ** i,
    runs: { min: 1, median: 1, max: 1, n: 1 }, cpuUsPerMsg: 0.05 * 1.7 ** i, ...extra,
  };
}

function report(names: string[]): Report {
  const results: ResultRow[] = [];
  for (const pattern of ['pingpong', 'paced', 'stream']) {
    names.forEach((n, i) => results.push(row(n, pattern, i, {
      ...(pattern === 'paced' ? { ratePerSec: 10_000, achievedPerSec: 9_800 } : {}),
      ...(i === 3 ? { invalid: 'its polling threads waited for a core 40% of the window' } : {}),
    })));
  }
  return {
    env: { node: 'v20.20.2', cpu: 'AMD EPYC 7B13 64-Core Processor with a very long model string', cores: 2, kernel: '6.18.44-fc-v1272-an-unusually-long-kernel-release-name', date: '2026-12-04T17:00:00.000Z' },
    results,
  };
}

const LONG = [
  'uds', 'tcp', 'worker-postmessage', 'message-channel', 'atomics-floor', 'eventfd-floor', 'memcpy',
  'ringwire-thread', 'ringwire-process', 'ringwire-process-doorbell', 'ringwire-channel', 'ringwire-channel-doorbell',
  'ringwire-channel-adaptive', 'ringwire-channel-hybrid', 'http2-uds', 'http2-ringwire',
  'undici-over-ringwire-channel-with-keepalive-and-pipelining', 'fastify-inject-baseline-with-a-long-name',
  'grpc-js-unary-over-unix-domain-socket-baseline', 'ringwire-agent-brokered-channel-through-the-node-agent',
  'codec-wit-canonical-abi-roundtrip-of-a-record-with-strings', 'a'.repeat(70), 'b'.repeat(300),
];

function overlaps(a: TextBox, b: TextBox): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

test('layout: many long names, no two text boxes overlap and nothing leaves the canvas', () => {
  for (const names of [LONG, LONG.slice(0, 3), ['uds', 'ringwire-thread']]) {
    const l = layoutSvg(report(names));
    assert.is(l.width, WIDTH);
    const texts = l.items.filter((i): i is TextBox => i.kind === 'text');
    for (const t of texts) {
      assert.ok(t.x >= 0 && t.x + t.w <= l.width, `"${t.text}" spans x ${t.x.toFixed(0)}..${(t.x + t.w).toFixed(0)} of ${l.width}`);
      assert.ok(t.y >= 0 && t.y + t.h <= l.height, `"${t.text}" spans y ${t.y.toFixed(0)}..${(t.y + t.h).toFixed(0)} of ${l.height}`);
    }
    for (const s of l.items) {
      if (s.kind === 'text') continue;
      const [x0, x1] = [Math.min(s.x, s.x + s.w), Math.max(s.x, s.x + s.w)];
      assert.ok(x0 >= 0 && x1 <= l.width && s.y >= 0 && s.y + s.h <= l.height, `a ${s.kind} at ${s.x},${s.y} leaves the canvas`);
    }
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        assert.not.ok(overlaps(texts[i]!, texts[j]!), `"${texts[i]!.text}" overlaps "${texts[j]!.text}"`);
      }
    }
    // Every name is written where its bars are (once per chart it appears in).
    for (const n of names) {
      const shown = n.length > MAX_LABEL ? `${n.slice(0, MAX_LABEL - 1)}…` : n;
      assert.ok(texts.some((t) => t.text === shown || t.text === `${shown} (invalid)`), `label ${n}`);
    }
  }
});

test('layout: one colour per group, different groups never share one, and each bar states its ratio to uds', () => {
  const l = layoutSvg(report(LONG));
  const colours = new Set(Object.values(GROUP_COLOR));
  assert.is(colours.size, 3);
  const bars = l.items.filter((i): i is Shape => i.kind === 'rect' && i.title !== undefined);
  const byGroup = new Map<string, Set<string>>();
  for (const b of bars) {
    const name = b.title!.split(':')[0]!;
    if (!LONG.includes(name)) continue;
    const g = groupOf(name);
    if (!byGroup.has(g)) byGroup.set(g, new Set());
    byGroup.get(g)!.add(b.fill!);
  }
  assert.equal([...byGroup.keys()].sort(), ['baselines', 'floors', 'ringwire']);
  for (const [g, fills] of byGroup) {
    const valid = [...fills].filter((f) => f !== '#bbbbbb');
    assert.equal(valid, [GROUP_COLOR[g as keyof typeof GROUP_COLOR]], `group ${g} is drawn in its own colour only`);
  }
  const texts = l.items.filter((i): i is TextBox => i.kind === 'text');
  assert.ok(texts.filter((t) => / · [\d.]+× uds$/.test(t.text)).length >= LONG.length * 3, 'ratio to uds on the bars');
  assert.ok(texts.some((t) => t.text.startsWith('Paced 10 k requests/s')), 'the paced chart');
  assert.ok(texts.some((t) => t.text === 'invalid: the machine got in the way'), 'the legend explains grey bars');
});

test('renderSvg: a well-formed document with every text escaped', () => {
  const svg = renderSvg(report(['uds', 'a<b&"c"']));
  assert.ok(svg.startsWith('<?xml') && svg.trimEnd().endsWith('</svg>'));
  assert.ok(svg.includes('a&#60;b&#38;&#34;c&#34;'));
  assert.not.ok(svg.includes('a<b'));
});

test.run();
