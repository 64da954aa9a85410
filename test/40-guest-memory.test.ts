import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { GuestMemory } from '../virtio/index.js';

function throwsCode(fn: () => unknown, code: Parameters<typeof isRingwireError>[1], what: string): void {
  try {
    fn();
  } catch (err) {
    assert.ok(isRingwireError(err, code), `${what}: expected ${code}, got ${String(err)}`);
    return;
  }
  assert.unreachable(`${what}: did not throw`);
}

const PAGE = 4096;

function twoRegions(): { mem: GuestMemory; a: Uint8Array; b: Uint8Array } {
  const a = new Uint8Array(new SharedArrayBuffer(2 * PAGE));
  const b = new Uint8Array(new SharedArrayBuffer(3 * PAGE));
  const mem = new GuestMemory([
    { guestPhysAddr: 0x10000, size: PAGE, userspaceAddr: 0x7f0000000000, mmapOffset: PAGE, bytes: a },
    // Adjacent to the first in guest-physical space, backed by a different mapping.
    { guestPhysAddr: 0x11000, size: 3 * PAGE, userspaceAddr: 0x7f0000100000n, bytes: b },
  ]);
  return { mem, a, b };
}

test('translates guest-physical and user addresses into the right mapping, honouring mmapOffset', () => {
  const { mem, a, b } = twoRegions();
  a[PAGE + 5] = 0xaa;
  b[7] = 0xbb;
  const v1 = mem.translateGpa(0x10005, 1);
  assert.is(v1[0], 0xaa);
  assert.is(v1.buffer, a.buffer);
  assert.is(v1.byteOffset, PAGE + 5);
  assert.is(mem.translateUva(0x7f0000000005n, 1)[0], 0xaa);
  assert.is(mem.translateGpa(0x11007n, 1)[0], 0xbb);
  assert.is(mem.translateUva(0x7f0000100007, 1)[0], 0xbb);
  assert.is(mem.uvaToGpa(0x7f0000100007), 0x11007n);
  assert.is(mem.uvaToGpa(0x1234), undefined);
  // A whole region, and an empty range at its very end.
  assert.is(mem.translateGpa(0x11000, 3 * PAGE).byteLength, 3 * PAGE);
  assert.is(mem.translateGpa(0x14000, 0).byteLength, 0);
});

test('rejects misses, overruns and ranges spanning two regions with ERR_GUEST_MEMORY', () => {
  const { mem } = twoRegions();
  throwsCode(() => mem.translateGpa(0xffff, 1), 'ERR_GUEST_MEMORY', 'below the first region');
  throwsCode(() => mem.translateGpa(0x14000, 1), 'ERR_GUEST_MEMORY', 'past the last region');
  throwsCode(() => mem.translateGpa(0x10fff, 2), 'ERR_GUEST_MEMORY', 'spans the two adjacent regions');
  throwsCode(() => mem.translateGpa(0x11000, 3 * PAGE + 1), 'ERR_GUEST_MEMORY', 'one byte too long');
  throwsCode(() => mem.translateUva(0x10000, 1), 'ERR_GUEST_MEMORY', 'a gpa is not a uva');
  assert.is(mem.lookup('guest-physical', 0x10fff, 2), undefined);
  assert.is(mem.lookup('guest-physical', 2 ** 53 - 1, 2 ** 32), undefined);
  assert.is(mem.lookup('guest-physical', 0xffffffffffffffffn, 0xffffffff), undefined);
});

test('rejects bad arguments with typed errors, never a crash', () => {
  const { mem } = twoRegions();
  throwsCode(() => mem.translateGpa(-1, 1), 'ERR_INVALID_ARG', 'negative address');
  throwsCode(() => mem.translateGpa(1.5, 1), 'ERR_INVALID_ARG', 'fractional address');
  throwsCode(() => mem.translateGpa(2 ** 53, 1), 'ERR_INVALID_ARG', 'unsafe number address');
  throwsCode(() => mem.translateGpa(1n << 64n, 1), 'ERR_OUT_OF_RANGE', 'address past u64');
  throwsCode(() => mem.translateGpa(0x10000, -1), 'ERR_INVALID_ARG', 'negative length');
});

test('regions above 2^53 translate exactly with bigint addresses, and a u64 wrap is a miss', () => {
  const bytes = new Uint8Array(2 * PAGE);
  const top = (1n << 64n) - BigInt(2 * PAGE);
  const high = (1n << 53n) + 0x1000n; // not representable as an exact number one byte later
  const mem = new GuestMemory([
    { guestPhysAddr: top, size: PAGE, userspaceAddr: high, bytes },
    { guestPhysAddr: 0, size: PAGE, mmapOffset: PAGE, bytes },
  ]);
  bytes[3] = 0x33;
  bytes[PAGE + 9] = 0x99;
  assert.is(mem.translateGpa(top + 3n, 1)[0], 0x33);
  assert.is(mem.translateUva(high + 3n, 1)[0], 0x33);
  assert.is(mem.translateGpa(9, 1)[0], 0x99);
  throwsCode(() => mem.translateGpa(top + BigInt(PAGE) - 1n, 2), 'ERR_GUEST_MEMORY', 'runs off the region');
  throwsCode(() => mem.translateGpa((1n << 64n) - 1n, 2), 'ERR_GUEST_MEMORY', 'wraps past 2^64');
  throwsCode(() => mem.translateUva(high + 1n + BigInt(PAGE), 1), 'ERR_GUEST_MEMORY', 'one past the high region');
  assert.is(mem.lookup('user-virtual', Number.MAX_SAFE_INTEGER, 1), undefined);
});

test('construction rejects empty, overlapping, wrapping and oversized regions', () => {
  const bytes = new Uint8Array(PAGE);
  throwsCode(() => new GuestMemory([{ guestPhysAddr: 0, size: 0, bytes }]), 'ERR_OUT_OF_RANGE', 'empty');
  throwsCode(() => new GuestMemory([{ guestPhysAddr: 0, size: PAGE + 1, bytes }]), 'ERR_OUT_OF_RANGE', 'larger than the mapping');
  throwsCode(() => new GuestMemory([{ guestPhysAddr: 0, size: PAGE, mmapOffset: 1, bytes }]), 'ERR_OUT_OF_RANGE', 'offset pushes it past the mapping');
  throwsCode(() => new GuestMemory([{ guestPhysAddr: (1n << 64n) - 16n, size: 32, bytes }]), 'ERR_OUT_OF_RANGE', 'wraps u64');
  throwsCode(
    () => new GuestMemory([
      { guestPhysAddr: 0, size: 64, bytes },
      { guestPhysAddr: 32, size: 64, userspaceAddr: 0x100000, bytes },
    ]),
    'ERR_OUT_OF_RANGE',
    'gpa overlap',
  );
  throwsCode(
    () => new GuestMemory([
      { guestPhysAddr: 0, size: 64, userspaceAddr: 0x1000, bytes },
      { guestPhysAddr: 0x100, size: 64, userspaceAddr: 0x1020, bytes },
    ]),
    'ERR_OUT_OF_RANGE',
    'uva overlap',
  );
  throwsCode(() => new GuestMemory([{ guestPhysAddr: 0, size: 1, bytes: [] as unknown as Uint8Array }]), 'ERR_INVALID_ARG', 'not a Uint8Array');
});

test.run();
