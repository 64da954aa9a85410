// A producer process killed with SIGKILL mid-stream must not wedge an MPSC consumer: a reservation
// it never committed is skipped after the abandon timeout, its committed messages arrive as an
// unbroken prefix, and every message of the surviving producers arrives.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonAvailable } from '../lib/native/native.js';
import { attachMpscConsumer, createMpscConsumerHalf, type MpscProcessConsumer } from '../lib/process/process-ring.js';
import { type Children, requireOrSkip, scratch } from './helpers/index.js';
import { CHILD_WAIT_MS, joinProducer, report, startChild, type RingChild } from './helpers/ring-child.js';
import type { ChildParams } from './workers/process-ring-child.js';
import { SequenceChecker } from './workers/ring-worker.js';

const available = requireOrSkip('the ringwire native addon (npm install)', addonAvailable());
// Long enough that a live producer stalled by a loaded 2-core machine is never revoked.
const ABANDON_MS = 1500;
const PER_SURVIVOR = 200_000;

interface Setup {
  consumer: MpscProcessConsumer;
  survivors: RingChild[];
  victim: RingChild;
  forgetVictim: () => void;
}

async function setUp(children: Children, dir: string, victimParams: ChildParams): Promise<Setup> {
  const half = createMpscConsumerHalf(1 << 14, 'parent-mpsc');
  const consumer = attachMpscConsumer(half, { spin: 16, abandonTimeoutMs: ABANDON_MS });
  children.onCleanup(consumer.close);
  const [s0, s1, victim] = await Promise.all([
    startChild(children, dir, 'survivor-0', 'mpsc-producer', { producerId: 0, count: PER_SURVIVOR }),
    startChild(children, dir, 'survivor-1', 'mpsc-producer', { producerId: 1, count: PER_SURVIVOR }),
    startChild(children, dir, 'victim', 'mpsc-producer', { producerId: 2, ...victimParams }),
  ]);
  const forgetVictim = await joinProducer(victim!, half.fds, consumer.addProducer);
  for (const s of [s0!, s1!]) await joinProducer(s, half.fds, consumer.addProducer);
  return { consumer, survivors: [s0!, s1!], victim: victim!, forgetVictim };
}

/** Consumes until `done()`, sleeping on the data bell between bursts. */
async function consumeUntil(consumer: MpscProcessConsumer, check: SequenceChecker, done: () => boolean, onIdle?: () => void): Promise<void> {
  while (!done()) {
    if (consumer.ring.drain(check.onRecord, 512) > 0) {
      onIdle?.();
      continue;
    }
    if (!(await consumer.ring.waitForData({ timeoutMs: CHILD_WAIT_MS }))) throw new Error(`wedged at ${JSON.stringify(check.next)}; consumer ${JSON.stringify(consumer.ring.stats())}`);
  }
}

test('MPSC: a producer killed while holding an uncommitted record is skipped; the others lose nothing', async () => {
  if (!available) return;
  await scratch('killed holding a reservation', 120_000, async ({ dir, children }) => {
    const stallAfter = 20_000;
    const { consumer, survivors, victim, forgetVictim } = await setUp(children, dir, { count: 10_000_000, stallAfter });
    const check = new SequenceChecker(3);
    const killed = report<{ claimed: number }>(victim).then(async (r) => {
      assert.ok(r.claimed >= 0, 'the victim holds a reservation');
      victim.proc.kill('SIGKILL');
      const end = await victim.exited;
      forgetVictim();
      return end.signal;
    });
    await consumeUntil(consumer, check, () => check.next[0] === PER_SURVIVOR && check.next[1] === PER_SURVIVOR);
    assert.is(await killed, 'SIGKILL');
    assert.equal(check.next, [PER_SURVIVOR, PER_SURVIVOR, stallAfter], 'everything committed arrived, in order');
    assert.is(consumer.ring.stats().abandoned, 1, 'the dead reservation was skipped once');
    assert.not.ok(consumer.ring.available(), 'nothing is left behind the skipped record');
    for (const s of survivors) {
      await report(s);
      assert.is((await s.exited).code, 0);
    }
  });
});

test('MPSC: a producer killed at an arbitrary point mid-stream leaves an unbroken prefix and no wedge', async () => {
  if (!available) return;
  await scratch('killed mid-stream', 120_000, async ({ dir, children }) => {
    const { consumer, survivors, victim, forgetVictim } = await setUp(children, dir, { count: 10_000_000 });
    const check = new SequenceChecker(3);
    let exited: Promise<unknown> | undefined;
    const killOnce = (): void => {
      if (exited || (check.next[2] ?? 0) < 30_000) return;
      victim.proc.kill('SIGKILL');
      exited = victim.exited.then((e) => {
        forgetVictim();
        return e.signal;
      });
    };
    await consumeUntil(consumer, check, () => check.next[0] === PER_SURVIVOR && check.next[1] === PER_SURVIVOR && exited !== undefined, killOnce);
    assert.is(await exited, 'SIGKILL');
    // What the victim committed before it died may still sit in the ring: take it all.
    while (consumer.ring.drain(check.onRecord) > 0 || (await consumer.ring.waitForData({ timeoutMs: ABANDON_MS * 3 })));
    const victimSent = check.next[2]!;
    assert.ok(victimSent >= 30_000, `the victim's ${victimSent} messages form an unbroken prefix`);
    assert.equal(check.next.slice(0, 2), [PER_SURVIVOR, PER_SURVIVOR]);
    assert.ok(consumer.ring.stats().abandoned <= 1, 'at most the one record it was writing is lost');
    for (const s of survivors) assert.is((await s.exited).code, 0);
  });
});

test.run();
