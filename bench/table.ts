/** The console report: one table per pattern and size, every row with its ratio to the baseline. */
import { PACED, patternKind, ratioToBaseline, sameCase, type Report, type ResultRow } from './results.js';
import { BASELINE } from './transport.js';

export function formatSize(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes >> 20} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes >> 10} KiB`;
  return `${bytes} B`;
}

/** Three significant digits, no exponent: 0.632, 14.3, 1234. */
export function fmt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  if (n >= 1000) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(3);
}

function fmtRate(n: number | null): string {
  if (n === null) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function ratio(r: number | null): string {
  return r === null ? '—' : `${r < 10 ? r.toFixed(2) : r.toFixed(1)}×`;
}

function grid(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** A row no ratio should be read against is marked where its name is. */
function name(r: ResultRow): string {
  return r.invalid ? `${r.transport} (invalid)` : r.transport;
}

function pingpongTable(all: readonly ResultRow[], rows: readonly ResultRow[]): string {
  const paced = rows.some((r) => r.ratePerSec !== undefined);
  return grid(
    ['transport', 'p50 µs', 'p90', 'p99', 'p99.9', 'max', 'samples', ...(paced ? ['req/s'] : []), 'cpu µs/rt', `p50 vs ${BASELINE}`, `p99 vs ${BASELINE}`, `cpu vs ${BASELINE}`, 'p50 runs min..max'],
    rows.map((r) => [
      name(r), fmt(r.rttP50Us), fmt(r.rttP90Us), fmt(r.rttP99Us), fmt(r.rttP999Us), fmt(r.rttMaxUs),
      r.samples === undefined ? '—' : String(Math.round(r.samples)),
      ...(paced ? [fmtRate(r.achievedPerSec ?? null)] : []),
      fmt(r.cpuUsPerMsg),
      ratio(ratioToBaseline(all, r, 'rttP50Us')), ratio(ratioToBaseline(all, r, 'rttP99Us')), ratio(ratioToBaseline(all, r, 'cpuUsPerMsg')),
      `${fmt(r.runs.min)}..${fmt(r.runs.max)} (${r.runs.n})`,
    ]),
  );
}

function streamTable(all: readonly ResultRow[], rows: readonly ResultRow[]): string {
  return grid(
    ['transport', 'msgs/s', 'bytes/s', '±rme', 'cpu µs/msg', `rate vs ${BASELINE}`, `cpu vs ${BASELINE}`, 'msgs/s runs min..max'],
    rows.map((r) => [
      name(r), fmtRate(r.msgsPerSec), `${fmtRate(r.bytesPerSec)}B`,
      r.rmePct === undefined ? '—' : `${r.rmePct.toFixed(1)}%`, fmt(r.cpuUsPerMsg), ratio(ratioToBaseline(all, r, 'msgsPerSec')),
      ratio(ratioToBaseline(all, r, 'cpuUsPerMsg')),
      `${fmtRate(r.runs.min)}..${fmtRate(r.runs.max)} (${r.runs.n})`,
    ]),
  );
}

export function formatReport(report: Report): string {
  const out: string[] = [];
  const env = report.env;
  const load = env.busyCores === undefined ? '' : ` | other work: ${String(env.busyCores)} cores busy`;
  out.push(`node ${env.node} | ${env.cpu} | ${env.cores} cores | linux ${env.kernel} | ${env.date}${load}`);
  const pin = env.pinning as { used?: boolean; mainCore?: number; peerCore?: number; reason?: string } | undefined;
  if (pin) out.push(pin.used ? `pinned: harness on core ${pin.mainCore}, peers on core ${pin.peerCore}` : `not pinned: ${pin.reason}`);
  const seen = new Set<string>();
  for (const r of report.results) {
    const key = `${r.pattern}\0${r.size}\0${r.ratePerSec ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const rows = report.results.filter((x) => sameCase(x, r));
    const kind = patternKind(r.pattern);
    const title = r.pattern === PACED ? `round trip, ${fmtRate(r.ratePerSec!)} requests/s asked, one in flight` : kind === 'pingpong' ? 'round trip' : 'one way';
    out.push('', `${r.pattern} ${formatSize(r.size)} (${title})`);
    out.push(kind === 'pingpong' ? pingpongTable(report.results, rows) : streamTable(report.results, rows));
    for (const bad of rows.filter((x) => x.invalid)) out.push(`  ${bad.transport} invalid: ${bad.invalid}`);
  }
  out.push(
    '',
    `Ratios compare transports measured in this same run: "p50 vs ${BASELINE}" below 1× means faster than ${BASELINE};`,
    `"rate vs ${BASELINE}" above 1× means more messages per second. "cpu" is user + system time of every thread of`,
    `both sides per message (round trip): below 1× vs ${BASELINE} is cheaper. Absolute figures drift between runs.`,
  );
  return out.join('\n');
}
