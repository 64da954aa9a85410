/**
 * `npm run bench`: measures every registered transport side by side in one process run and prints
 * ratios against uds; --json and --svg write the same results for machines and for the README.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs, USAGE, UsageError, type Options } from './cli.js';
import { captureEnv } from './env.js';
import { timerOverheadNs } from './measure.js';
import './peers/index.js';
import { busyCores, setUpPinning } from './pin.js';
import { aggregate, checkFloor, type Report } from './results.js';
import { runAll } from './run.js';
import { renderSvg } from './svg.js';
import { formatReport } from './table.js';
import { BASELINE, registeredTransports, type Transport } from './transport.js';

function choose(opts: Options): Transport[] {
  const all = registeredTransports();
  if (!opts.only) return [...all];
  const unknown = opts.only.filter((n) => !all.some((t) => t.name === n));
  if (unknown.length) throw new UsageError(`unknown transport ${unknown.join(', ')}; known: ${all.map((t) => t.name).join(', ')}`);
  // The baseline always runs, or no row could carry a ratio.
  return all.filter((t) => t.name === BASELINE || opts.only!.includes(t.name));
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (opts.list) {
    for (const t of registeredTransports()) console.log(`${t.name.padEnd(28)} ${t.distance.padEnd(8)} ${t.description}`);
    return 0;
  }
  const transports = choose(opts);
  const busy = await busyCores();
  const pinning = setUpPinning(opts.pin, busy);
  const env = captureEnv({ pinning, busyCores: busy, mode: opts.quick ? 'quick' : 'full', repeat: opts.repeat, timerOverheadNs: timerOverheadNs() });
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  if (busy >= 0.5) log(`warning: other work kept ${busy} cores busy just before the run, so figures are noisy`);
  const started = Date.now();
  const { measurements, failures } = await runAll(transports, opts, pinning.peerCore, log);
  const results = aggregate(measurements);
  checkFloor(results, new Set(transports.filter((t) => t.busyPoll).map((t) => t.name)));
  const report: Report = { env, results };
  log(`measured in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(formatReport(report));
  if (opts.json) writeFileSync(opts.json, `${JSON.stringify(report, null, 2)}\n`);
  if (opts.svg) writeFileSync(opts.svg, renderSvg(report));
  for (const f of failures) console.error(`FAILED ${f.transport}: ${f.message}`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      process.exit(2);
    }
    console.error(err);
    process.exit(1);
  },
);
