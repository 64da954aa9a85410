/**
 * A self-contained SVG of a report, drawn by hand, one question per chart: how long a round trip
 * takes (p50 bar, p99 tick), what a round trip costs in CPU when requests come at a steady rate,
 * and how many messages per second a one-way stream moves. Each chart is horizontal bars labelled
 * with the transport's name, grouped as baselines / floors / ringwire, one colour per group, the
 * ratio to uds written on each bar. Value axes are logarithmic (transports differ by orders of
 * magnitude).
 *
 * Layout first, drawing second: layoutSvg() places every text as a box (monospace, so a box's
 * width is its length times 0.6 em, whatever font the viewer picks), so a test can check that no
 * two boxes overlap and that nothing leaves the canvas; renderSvg() only prints the layout.
 */
import { PACED, ratioToBaseline, type Report, type ResultRow } from './results.js';
import { formatSize } from './table.js';
import { BASELINE } from './transport.js';

export type Group = 'baselines' | 'floors' | 'ringwire';
export const GROUPS: readonly Group[] = ['baselines', 'floors', 'ringwire'];
/** One colour per group, far apart in hue and lightness (colour-blind safe: blue, orange, teal). */
export const GROUP_COLOR: Readonly<Record<Group, string>> = { baselines: '#5b7fa6', floors: '#d98c1f', ringwire: '#1b9e77' };

export function groupOf(transport: string): Group {
  if (transport.endsWith('-floor') || transport === 'memcpy') return 'floors';
  if (transport.includes('ringwire')) return 'ringwire';
  return 'baselines';
}

export const WIDTH = 1000;
const PAD = 12;
const ROW_H = 20;
const BAR_H = 13;
const GROUP_GAP = 8;
/** Longest label, in characters; longer transport names are cut. */
export const MAX_LABEL = 44;
/** Advance of one monospace character, in em. */
const CHAR_EM = 0.6;

export interface TextBox {
  kind: 'text';
  x: number;
  /** Top of the box; the baseline sits at y + size * 0.8. */
  y: number;
  w: number;
  h: number;
  size: number;
  text: string;
  anchor: 'start' | 'end';
  weight?: 'bold';
  fill?: string;
}

export interface Shape {
  kind: 'rect' | 'line';
  x: number;
  y: number;
  w: number;
  h: number;
  fill?: string;
  stroke?: string;
  opacity?: number;
  dash?: boolean;
  title?: string;
}

export interface Layout {
  width: number;
  height: number;
  items: Array<TextBox | Shape>;
}

/** A text box whose x is its anchor: the left edge ('start') or the right edge ('end'). */
function textBox(x: number, y: number, text: string, size: number, opts: { anchor?: 'start' | 'end'; weight?: 'bold'; fill?: string } = {}): TextBox {
  const w = text.length * CHAR_EM * size;
  const anchor = opts.anchor ?? 'start';
  return { kind: 'text', x: anchor === 'start' ? x : x - w, y, w, h: size, size, text, anchor, ...(opts.weight ? { weight: opts.weight } : {}), ...(opts.fill ? { fill: opts.fill } : {}) };
}

/** Logarithmic axis over whole decades around the values, onto [x0, x1]. */
function logAxis(values: number[], x0: number, x1: number): { at: (v: number) => number; ticks: number[] } {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.floor(Math.log10(Math.min(...pos)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...pos))));
  const at = (v: number): number => x0 + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (x1 - x0);
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
  return { at, ticks };
}

function si(v: number, unit: string): string {
  if (unit === 'µs' && v >= 1000) return si(v / 1000, 'ms');
  for (const [f, p] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) if (v >= f) return `${+(v / f).toPrecision(3)} ${p}${unit}`;
  return `${+v.toPrecision(3)} ${unit}`.trimEnd();
}

function ratioText(r: number | null): string {
  if (r === null) return '';
  return `${r < 10 ? r.toFixed(2) : r.toFixed(1)}× ${BASELINE}`;
}

/** Rows in group order (baselines, floors, ringwire), registration order inside a group. */
function byGroup(rows: readonly ResultRow[]): ResultRow[] {
  return GROUPS.flatMap((g) => rows.filter((r) => groupOf(r.transport) === g));
}

interface Chart {
  title: string;
  rows: ResultRow[];
  value: (r: ResultRow) => number | null;
  /** A second mark per row (p99), drawn as a tick. */
  tick?: (r: ResultRow) => number | null;
  unit: string;
  ratio: (r: ResultRow) => number | null;
}

/** Lays out one chart from `top`; returns its items and the y where the next one may start. */
function chart(top: number, c: Chart, all: readonly ResultRow[]): { items: Array<TextBox | Shape>; bottom: number } {
  const items: Array<TextBox | Shape> = [textBox(PAD, top, c.title, 14, { weight: 'bold' })];
  const rows = byGroup(c.rows).filter((r) => (c.value(r) ?? 0) > 0);
  if (!rows.length) {
    items.push(textBox(PAD, top + 22, 'no results', 12, { fill: '#666' }));
    return { items, bottom: top + 44 };
  }
  // Names longer than MAX_LABEL are cut with an ellipsis (the bar's tooltip keeps the whole name).
  const cut = (n: string): string => (n.length > MAX_LABEL ? `${n.slice(0, MAX_LABEL - 1)}…` : n);
  const names = rows.map((r) => (r.invalid ? `${cut(r.transport)} (invalid)` : cut(r.transport)));
  const labelW = Math.max(...names.map((n) => n.length)) * CHAR_EM * 12;
  const valueTexts = rows.map((r) => {
    const v = c.value(r)!;
    const ratio = ratioText(c.ratio(r));
    return ratio ? `${si(v, c.unit)} · ${ratio}` : si(v, c.unit);
  });
  const valueW = Math.max(...valueTexts.map((t) => t.length)) * CHAR_EM * 11;
  const x0 = PAD + labelW + 8;
  // The longest value text fits right of the longest bar.
  const x1 = Math.max(x0 + 120, WIDTH - PAD - valueW - 6);
  const axis = logAxis(rows.flatMap((r) => [c.value(r)!, ...(c.tick ? [c.tick(r) ?? 0] : [])]), x0, x1);
  const axisY = top + 22;
  // Tick labels centred on their lines, skipped where they would touch the previous one.
  let lastRight = -Infinity;
  const gridTop = axisY + 14;
  // A gap of GROUP_GAP between groups: row i sits below every group change before it.
  const rowY = (i: number): number => {
    let gaps = 0;
    for (let k = 1; k <= i; k++) if (groupOf(rows[k]!.transport) !== groupOf(rows[k - 1]!.transport)) gaps++;
    return gridTop + i * ROW_H + gaps * GROUP_GAP;
  };
  const gridBottom = rowY(rows.length - 1) + ROW_H;
  for (const t of axis.ticks) {
    const x = axis.at(t);
    items.push({ kind: 'line', x, y: gridTop, w: 0, h: gridBottom - gridTop, stroke: '#ddd' });
    const label = si(t, c.unit);
    const w = label.length * CHAR_EM * 10;
    const left = Math.min(Math.max(x - w / 2, PAD), WIDTH - PAD - w);
    if (left < lastRight + 6) continue;
    items.push(textBox(left, axisY, label, 10, { fill: '#555' }));
    lastRight = left + w;
  }
  rows.forEach((r, i) => {
    const y = rowY(i);
    const group = groupOf(r.transport);
    const color = r.invalid ? '#bbbbbb' : GROUP_COLOR[group];
    items.push(textBox(PAD, y + (ROW_H - 12) / 2, names[i]!, 12, r.invalid ? { fill: '#888' } : {}));
    const end = Math.max(x0 + 2, axis.at(c.value(r)!));
    items.push({ kind: 'rect', x: x0, y: y + (ROW_H - BAR_H) / 2, w: end - x0, h: BAR_H, fill: color, title: `${r.transport}: ${valueTexts[i]}` });
    let right = end;
    const tv = c.tick?.(r) ?? null;
    if (tv !== null && tv > 0) {
      const tx = axis.at(tv);
      items.push({ kind: 'line', x: tx, y: y + 2, w: 0, h: ROW_H - 4, stroke: color, title: `${r.transport}: p99 ${si(tv, c.unit)}` });
      items.push({ kind: 'line', x: end, y: y + ROW_H / 2, w: tx - end, h: 0, stroke: color, dash: true });
      right = Math.max(right, tx);
    }
    items.push(textBox(right + 6, y + (ROW_H - 11) / 2, valueTexts[i]!, 11, { fill: '#222' }));
  });
  return { items, bottom: gridBottom + 18 };
}

/** The legend: one swatch per group present, plus the p99 tick; laid out left to right, wrapping inside the canvas. */
function legend(top: number, groups: Group[]): { items: Array<TextBox | Shape>; bottom: number } {
  const items: Array<TextBox | Shape> = [];
  const entries: Array<{ color: string; label: string; tick?: boolean }> = [
    ...groups.map((g) => ({ color: GROUP_COLOR[g], label: g })),
    { color: '#444', label: 'p99 (round trips)', tick: true },
    { color: '#bbbbbb', label: 'invalid: the machine got in the way' },
  ];
  let x = PAD, y = top;
  for (const e of entries) {
    const w = 18 + e.label.length * CHAR_EM * 11;
    if (x + w > WIDTH - PAD) {
      x = PAD;
      y += 18;
    }
    if (e.tick) items.push({ kind: 'line', x: x + 7, y, w: 0, h: 12, stroke: e.color });
    else items.push({ kind: 'rect', x, y, w: 14, h: 12, fill: e.color });
    items.push(textBox(x + 18, y, e.label, 11));
    x += w + 16;
  }
  return { items, bottom: y + 24 };
}

export function layoutSvg(report: Report): Layout {
  const rows = report.results;
  const e = report.env;
  const items: Array<TextBox | Shape> = [];
  let y = PAD;
  const head = `ringwire bench · node ${e.node} · ${e.cores} cores · linux ${e.kernel} · ${e.date}`;
  // Long environment strings are cut, not allowed past the edge.
  const maxChars = Math.floor((WIDTH - 2 * PAD) / (CHAR_EM * 11));
  items.push(textBox(PAD, y, head.length > maxChars ? `${head.slice(0, maxChars - 1)}…` : head, 11, { fill: '#444' }));
  y += 20;
  const present = GROUPS.filter((g) => rows.some((r) => groupOf(r.transport) === g));
  const lg = legend(y, present);
  items.push(...lg.items);
  y = lg.bottom;
  const sizes = [...new Set(rows.map((r) => r.size))].sort((a, b) => a - b);
  const size = sizes.includes(64) ? 64 : sizes[0];
  const pp = rows.filter((r) => r.pattern === 'pingpong' && r.size === size);
  const paced = rows.filter((r) => r.pattern === PACED);
  const rate = paced.length ? [...new Set(paced.map((r) => r.ratePerSec!))].sort((a, b) => Math.abs(a - 10_000) - Math.abs(b - 10_000))[0] : undefined;
  const charts: Chart[] = [
    {
      title: `Round trip, ${size === undefined ? '' : formatSize(size)}: median (bar) and p99 (tick), lower is better`,
      rows: pp, value: (r) => r.rttP50Us, tick: (r) => r.rttP99Us, unit: 'µs', ratio: (r) => ratioToBaseline(rows, r, 'rttP50Us'),
    },
    {
      title: `CPU per round trip, ${size === undefined ? '' : formatSize(size)}, full speed (both sides), lower is better`,
      rows: pp, value: (r) => r.cpuUsPerMsg, unit: 'µs', ratio: (r) => ratioToBaseline(rows, r, 'cpuUsPerMsg'),
    },
  ];
  if (rate !== undefined) {
    const at = paced.filter((r) => r.ratePerSec === rate);
    charts.push(
      { title: `Paced ${si(rate, '')} requests/s, ${formatSize(at[0]!.size)}: median round trip, lower is better`, rows: at, value: (r) => r.rttP50Us, tick: (r) => r.rttP99Us, unit: 'µs', ratio: (r) => ratioToBaseline(rows, r, 'rttP50Us') },
      { title: `Paced ${si(rate, '')} requests/s: CPU per request (both sides), lower is better`, rows: at, value: (r) => r.cpuUsPerMsg, unit: 'µs', ratio: (r) => ratioToBaseline(rows, r, 'cpuUsPerMsg') },
    );
  }
  charts.push({
    title: `One-way stream, ${size === undefined ? '' : formatSize(size)}, one send per message: messages/s, higher is better`,
    rows: rows.filter((r) => r.pattern === 'stream' && r.size === size), value: (r) => r.msgsPerSec, unit: '', ratio: (r) => ratioToBaseline(rows, r, 'msgsPerSec'),
  });
  for (const c of charts) {
    const out = chart(y, c, rows);
    items.push(...out.items);
    y = out.bottom + 10;
  }
  return { width: WIDTH, height: Math.ceil(y), items };
}

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function draw(it: TextBox | Shape): string {
  const n = (v: number): string => v.toFixed(1);
  if (it.kind === 'text') {
    const x = it.anchor === 'start' ? it.x : it.x + it.w;
    return `<text x="${n(x)}" y="${n(it.y + it.size * 0.8)}" font-size="${it.size}"${it.anchor === 'end' ? ' text-anchor="end"' : ''}${it.weight ? ' font-weight="bold"' : ''}${it.fill ? ` fill="${it.fill}"` : ''}>${esc(it.text)}</text>`;
  }
  const title = it.title ? `<title>${esc(it.title)}</title>` : '';
  if (it.kind === 'rect') return `<rect x="${n(it.x)}" y="${n(it.y)}" width="${n(it.w)}" height="${n(it.h)}" fill="${it.fill}">${title}</rect>`;
  return `<line x1="${n(it.x)}" y1="${n(it.y)}" x2="${n(it.x + it.w)}" y2="${n(it.y + it.h)}" stroke="${it.stroke}" stroke-width="${it.h > 0 && it.w === 0 && !it.title ? 1 : 2}"${it.dash ? ' stroke-dasharray="3 3"' : ''}>${title}</line>`;
}

export function renderSvg(report: Report): string {
  const l = layoutSvg(report);
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${l.width}" height="${l.height}" viewBox="0 0 ${l.width} ${l.height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">
<rect width="100%" height="100%" fill="#fff"/>
${l.items.map(draw).join('\n')}
</svg>
`;
}
