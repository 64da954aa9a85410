/**
 * One soak client in its own process: `node peer.js <address> <json job>`. It connects with the
 * name `soak-<mode>-<id>` (the server checks honest peers' streams by it) and, until its lifetime
 * ends or it is SIGKILLed:
 *
 *   honest:  sends numbered messages (u32 seq, then bytes derived from it) and, now and then, a
 *            request whose echo it checks; at the end closes gracefully and prints {sent, requests}.
 *   corrupt: does the same, but also scribbles seeded garbage over its own producer block (memory
 *            it owns and the server only reads): record headers where the server reads next, and
 *            header words. The server must meet ERR_RING_CORRUPT (or garbage payload), never crash.
 *
 * Prints one JSON line at the end: { id, mode, sent, requests, error? }. Exit code 0, or 2 when it
 * caught the server misbehaving (an echo that differs): a crash of ours is any other code.
 */
import { connect } from '../../lib/index.js';
import { SpscProducer } from '../../lib/ring/spsc.js';
import { isRingwireError } from '../../lib/errors.js';
import { PW } from '../../lib/ring/layout.js';

interface Job {
  id: number;
  mode: 'honest' | 'corrupt';
  seed: number;
  lifetimeMs: number;
}

const address = process.argv[2]!;
const job = JSON.parse(process.argv[3]!) as Job;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Message `seq`: u32 seq, then (seq * 31 + i) & 0xff for i in [4, len). The server checks the same. */
function soakMessage(seq: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(Math.max(4, len));
  b.writeUInt32LE(seq, 0);
  for (let i = 4; i < b.length; i++) b[i] = (seq * 31 + i) & 0xff;
  return b;
}

async function main(): Promise<void> {
  const rand = rng(job.seed);
  // The channel's producer is private; catch it as it commits (test 59 does the same).
  let producer: SpscProducer | undefined;
  if (job.mode === 'corrupt') {
    const commit = SpscProducer.prototype.commit;
    SpscProducer.prototype.commit = function (this: SpscProducer): void {
      producer ??= this;
      commit.call(this);
    };
  }
  const ch = await connect(address, { name: `soak-${job.mode}-${job.id}`, sendRingBytes: 1 << 16, receiveRingBytes: 1 << 16 });
  let sent = 0;
  let requests = 0;
  const deadline = Date.now() + job.lifetimeMs;
  let error: string | undefined;
  try {
    while (Date.now() < deadline && !ch.closed) {
      const len = 4 + Math.floor(rand() * 2000);
      await ch.send(soakMessage(sent, len));
      sent++;
      if (rand() < 0.05) {
        const body = soakMessage(requests, 8 + Math.floor(rand() * 200));
        const echo = await ch.request(body, { timeoutMs: 3000 });
        if (!echo.equals(body)) {
          process.stdout.write(`${JSON.stringify({ id: job.id, mode: job.mode, sent, requests, error: 'echo differs' })}\n`);
          process.exit(2);
        }
        requests++;
      }
      if (producer && rand() < 0.02) {
        // Garbage into our own block: header words, the tail, or record bytes.
        const { ctl, words } = producer as unknown as { ctl: Int32Array; words: Int32Array };
        if (rand() < 0.5) {
          // A "published" record header where the server reads next: garbage length, present bit set.
          const next = (Atomics.load(ctl, PW.tail) >>> 0) % (words.length * 4);
          Atomics.store(words, next >> 2, (0x80000000 | (rand() * 0x100000000)) | 0);
        } else {
          Atomics.store(ctl, Math.floor(rand() * ctl.length), (rand() * 0x100000000) | 0);
        }
        // Our next commit may overwrite it: give the server a moment to look at the garbage first.
        await new Promise((r) => setTimeout(r, 5));
      }
      if (sent % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    if (!ch.closed) await ch.close();
  } catch (err) {
    // A corrupt ring, or the server gone: typed errors are what a hostile run expects.
    error = isRingwireError(err) ? err.code : `untyped: ${String(err)}`;
    ch.destroy();
  }
  process.stdout.write(`${JSON.stringify({ id: job.id, mode: job.mode, sent, requests, error })}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stdout.write(`${JSON.stringify({ id: job.id, mode: job.mode, sent: 0, requests: 0, error: isRingwireError(err) ? err.code : `untyped: ${String(err)}` })}\n`);
    process.exit(isRingwireError(err) ? 0 : 1);
  },
);
