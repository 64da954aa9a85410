/** Command-line options of `npm run bench`; parsing is pure so the test can check it. */
import type { BurstBudget, PingPongBudget } from './measure.js';
import type { PinMode } from './pin.js';

export interface Options {
  quick: boolean;
  json?: string;
  svg?: string;
  only?: string[];
  sizes: number[];
  repeat: number;
  pin: PinMode;
  list: boolean;
  help: boolean;
  pingpong: PingPongBudget;
  bursts: BurstBudget;
  /** Paced round trips: requests per second (none: no paced rows) and seconds of sampling per rate. */
  paced: { rates: number[]; seconds: number };
}

export const FULL_SIZES = [8, 64, 1024, 16384, 65536, 1 << 20];
export const QUICK_SIZES = [64, 4096];
export const FULL_RATES = [1000, 10_000, 100_000];
export const QUICK_RATES = [10_000];
/** Paced rows are measured at this size (or the smallest size asked for, when it is not there). */
export const PACED_SIZE = 64;

export const USAGE = `usage: npm run bench -- [options]
  --quick          small sample counts and sizes ${QUICK_SIZES.join(', ')} (about two minutes for the 30 transports)
  --json FILE      write { env, results } as in the design's benchmark output contract
  --svg FILE       write a self-contained SVG of latency percentiles and throughput by size
  --only a,b       measure only these transports (uds is always kept as the baseline)
  --sizes 64,4096  message sizes in bytes (default: ${FULL_SIZES.join(', ')}; --quick: ${QUICK_SIZES.join(', ')})
  --repeat N       run everything N times, interleaved; rows carry min/median/max over runs
  --rates 1000,... paced round trips per second, one in flight (default: ${FULL_RATES.join(', ')}; --quick: ${QUICK_RATES.join(', ')}; 0: none)
  --pin            pin the harness and its peers to separate cores even when other work keeps them busy
  --no-pin         never pin (default: pin when taskset, 2 cores and idle cores are there)
  --list           list the registered transports and exit`;

export class UsageError extends Error {}

function positiveInt(flag: string, v: string | undefined, max: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} needs an integer from 1 to ${max}, got ${v ?? 'nothing'}`);
  return n;
}

export function parseArgs(argv: readonly string[]): Options {
  let quick = false, pin: PinMode = 'auto', list = false, help = false, repeat = 1;
  let json: string | undefined, svg: string | undefined, only: string[] | undefined, sizes: number[] | undefined, rates: number[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--quick': quick = true; break;
      case '--pin': pin = 'on'; break;
      case '--no-pin': pin = 'off'; break;
      case '--list': list = true; break;
      case '--help': case '-h': help = true; break;
      case '--json': json = value(); break;
      case '--svg': svg = value(); break;
      case '--only': only = value().split(',').filter(Boolean); break;
      case '--repeat': repeat = positiveInt(a, value(), 100); break;
      case '--sizes': sizes = value().split(',').map((s) => positiveInt('--sizes', s, 64 << 20)); break;
      case '--rates': { const v = value(); rates = v === '0' ? [] : v.split(',').map((s) => positiveInt('--rates', s, 1_000_000)); break; }
      default: throw new UsageError(`unknown option ${a}`);
    }
  }
  return {
    quick, json, svg, only, repeat, pin, list, help,
    sizes: sizes ?? (quick ? QUICK_SIZES : FULL_SIZES),
    // Quick: 2-6 s per transport; the 30 registered take about two minutes.
    pingpong: quick ? { warmup: 2000, samples: 20_000, maxMs: 800 } : { warmup: 10_000, samples: 100_000, maxMs: 20_000 },
    bursts: quick ? { maxTime: 0.25, minSamples: 5 } : { maxTime: 2, minSamples: 10 },
    paced: { rates: rates ?? (quick ? QUICK_RATES : FULL_RATES), seconds: quick ? 0.5 : 2 },
  };
}
