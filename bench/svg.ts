/**
 * A self-contained SVG of a report, drawn by hand: latency percentiles by transport at one size,
 * median round trip by size, and stream throughput by size. All value axes are logarithmic, since
 * transports differ by orders of magnitude.
 */
import { patternKind, type Report, type ResultRow } from './results.js';
import { formatSize } from './table.js';

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const PERCENTILES = [
  { label: 'p50', pick: (r: ResultRow) => r.rttP50Us, shade: 1 },
  { label: 'p90', pick: (r: ResultRow) => r.rttP90Us ?? null, shade: 0.75 },
  { label: 'p99', pick: (r: ResultRow) => r.rttP99Us, shade: 0.5 },
  { label: 'p99.9', pick: (r: ResultRow) => r.rttP999Us, shade: 0.3 },
];
const W = 960;
const PANEL_H = 300;
const M = { left: 80, right: 190, top: 40, bottom: 50 };

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

/** Maps [lo, hi] (whole decades around the data) onto a pixel range, logarithmically. */
function logScale(values: number[], p0: number, p1: number): { at: (v: number) => number; ticks: number[] } {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.floor(Math.log10(Math.min(...pos)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...pos))));
  const at = (v: number): number => p0 + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (p1 - p0);
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
  return { at, ticks };
}

function si(v: number, unit: string): string {
  const steps: [number, string][] = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [f, p] of steps) if (v >= f) return `${v / f}${p}${unit}`;
  return v >= 1 ? `${v}${unit}` : `${v.toPrecision(1)}${unit}`;
}

function frame(top: number, title: string, yLabel: string, y: ReturnType<typeof logScale>, fmtTick: (v: number) => string): string[] {
  const x0 = M.left, x1 = W - M.right, yBottom = top + PANEL_H - M.bottom;
  const out = [text(x0, top + 22, title, 'font-size="15" font-weight="bold"')];
  for (const t of y.ticks) {
    const yy = y.at(t);
    out.push(`<line x1="${x0}" x2="${x1}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#ddd"/>`);
    out.push(text(x0 - 6, yy + 4, fmtTick(t), 'text-anchor="end" font-size="11"'));
  }
  out.push(`<line x1="${x0}" x2="${x1}" y1="${yBottom}" y2="${yBottom}" stroke="#333"/>`);
  out.push(text(16, (top + M.top + yBottom) / 2, yLabel, `font-size="12" transform="rotate(-90 16 ${((top + M.top + yBottom) / 2).toFixed(1)})" text-anchor="middle"`));
  return out;
}

function legend(top: number, entries: { label: string; color: string; dashed?: boolean }[]): string[] {
  const x = W - M.right + 16;
  return entries.flatMap((e, i) => {
    const y = top + M.top + 6 + i * 18;
    return [
      `<line x1="${x}" x2="${x + 22}" y1="${y}" y2="${y}" stroke="${e.color}" stroke-width="3"${e.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      text(x + 28, y + 4, e.label, 'font-size="11"'),
    ];
  });
}

function percentilePanel(top: number, rows: ResultRow[], color: (t: string) => string): string[] {
  const sizes = [...new Set(rows.map((r) => r.size))];
  const size = sizes.includes(64) ? 64 : sizes.sort((a, b) => a - b)[0];
  const at = rows.filter((r) => r.size === size);
  if (!at.length) return [text(M.left, top + 22, 'no ping-pong results', 'font-size="15"')];
  const values = at.flatMap((r) => PERCENTILES.map((p) => p.pick(r) ?? 0));
  const y = logScale(values, top + PANEL_H - M.bottom, top + M.top);
  const out = frame(top, `Round-trip latency percentiles, ${formatSize(size!)} messages (lower is better)`, 'µs, log scale', y, (v) => si(v, ''));
  const groupW = (W - M.left - M.right) / at.length;
  const barW = Math.min(28, (groupW - 16) / PERCENTILES.length);
  at.forEach((r, g) => {
    const gx = M.left + g * groupW + (groupW - barW * PERCENTILES.length) / 2;
    PERCENTILES.forEach((p, i) => {
      const v = p.pick(r);
      if (v === null) return;
      const yy = y.at(v), base = top + PANEL_H - M.bottom;
      out.push(`<rect x="${(gx + i * barW).toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(base - yy).toFixed(1)}" fill="${color(r.transport)}" fill-opacity="${p.shade}"><title>${esc(`${r.transport} ${p.label} ${v.toPrecision(3)} µs`)}</title></rect>`);
    });
    out.push(text(M.left + g * groupW + groupW / 2, top + PANEL_H - M.bottom + 16, r.transport, 'text-anchor="middle" font-size="11"'));
  });
  out.push(...PERCENTILES.map((p, i) => text(W - M.right + 16, top + M.top + 8 + i * 18, `${'█'} ${p.label}`, `font-size="12" fill="#444" fill-opacity="${p.shade}"`)));
  return out;
}

/** Lines of `pick(row)` against message size, one per transport and pattern. */
function bySizePanel(top: number, title: string, yLabel: string, rows: ResultRow[], pick: (r: ResultRow) => number | null, fmtTick: (v: number) => string, color: (t: string) => string): string[] {
  const points = rows.filter((r) => (pick(r) ?? 0) > 0);
  if (!points.length) return [text(M.left, top + 22, `${title}: no results`, 'font-size="15"')];
  const sizes = [...new Set(points.map((r) => r.size))].sort((a, b) => a - b);
  const y = logScale(points.map((r) => pick(r)!), top + PANEL_H - M.bottom, top + M.top);
  const lo = Math.log2(sizes[0]!), hi = Math.max(lo + 1, Math.log2(sizes[sizes.length - 1]!));
  const x = (s: number): number => M.left + 20 + ((Math.log2(s) - lo) / (hi - lo)) * (W - M.left - M.right - 40);
  const out = frame(top, title, yLabel, y, fmtTick);
  for (const s of sizes) out.push(text(x(s), top + PANEL_H - M.bottom + 16, formatSize(s), 'text-anchor="middle" font-size="11"'));
  out.push(text((M.left + W - M.right) / 2, top + PANEL_H - 12, 'message size (log scale)', 'text-anchor="middle" font-size="12"'));
  const series = [...new Set(points.map((r) => `${r.transport}\0${r.pattern}`))];
  const entries: { label: string; color: string; dashed?: boolean }[] = [];
  for (const key of series) {
    const [transport, pattern] = key.split('\0') as [string, string];
    const pts = points.filter((r) => r.transport === transport && r.pattern === pattern).sort((a, b) => a.size - b.size);
    const dashed = pattern !== 'pingpong' && pattern !== 'stream';
    const d = pts.map((r, i) => `${i ? 'L' : 'M'}${x(r.size).toFixed(1)} ${y.at(pick(r)!).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color(transport)}" stroke-width="2"${dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    for (const r of pts) out.push(`<circle cx="${x(r.size).toFixed(1)}" cy="${y.at(pick(r)!).toFixed(1)}" r="3" fill="${color(transport)}"><title>${esc(`${transport} ${pattern} ${formatSize(r.size)}: ${pick(r)!.toPrecision(3)}`)}</title></circle>`);
    entries.push({ label: dashed ? `${transport} ${pattern}` : transport, color: color(transport), dashed });
  }
  out.push(...legend(top, entries));
  return out;
}

export function renderSvg(report: Report): string {
  const names = [...new Set(report.results.map((r) => r.transport))];
  const color = (t: string): string => PALETTE[names.indexOf(t) % PALETTE.length]!;
  const ping = report.results.filter((r) => patternKind(r.pattern) === 'pingpong');
  const stream = report.results.filter((r) => patternKind(r.pattern) === 'stream');
  const e = report.env;
  const body = [
    text(M.left, 24, `ringwire bench — node ${e.node}, ${e.cpu}, ${e.cores} cores, linux ${e.kernel}, ${e.date}`, 'font-size="13" fill="#444"'),
    ...percentilePanel(30, ping, color),
    ...bySizePanel(30 + PANEL_H, 'Median round trip by message size (lower is better)', 'p50 µs, log scale', ping, (r) => r.rttP50Us, (v) => si(v, ''), color),
    ...bySizePanel(30 + 2 * PANEL_H, 'One-way stream throughput by message size (higher is better)', 'bytes/s, log scale', stream, (r) => r.bytesPerSec, (v) => si(v, 'B/s'), color),
  ];
  const h = 30 + 3 * PANEL_H + 10;
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
${body.join('\n')}
</svg>
`;
}
