import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CACHE_LINE, CONSUMER_BLOCK_SIZE, CONSUMER_FIELDS, PRODUCER_DATA, PRODUCER_FIELDS, type Field,
  RingKind, SPSC_SLACK, maxMessageSize, recordBytes,
} from '../lib/ring/layout.js';

function checkTable(name: string, fields: readonly Field[], blockEnd: number): void {
  const sorted = [...fields].sort((a, b) => a.offset - b.offset);
  for (let i = 0; i < sorted.length; i++) {
    const f = sorted[i]!;
    if (f.size > 0) assert.is(f.offset % f.size, 0, `${name}.${f.name} is not naturally aligned`);
    const next = sorted[i + 1];
    if (next) assert.ok(f.offset + f.size <= next.offset, `${name}.${f.name} overlaps ${next.name}`);
    else if (f.size > 0) assert.ok(f.offset + f.size <= blockEnd, `${name}.${f.name} runs past the block`);
  }
  assert.is(new Set(fields.map((f) => f.name)).size, fields.length, `${name} has duplicate field names`);
}

const line = (f: Field): number => Math.floor(f.offset / CACHE_LINE);
const field = (fields: readonly Field[], name: string): Field => fields.find((f) => f.name === name)!;

test('producer block fields do not overlap and are aligned', () => {
  checkTable('producer', PRODUCER_FIELDS, PRODUCER_DATA + 1);
});

test('consumer block fields do not overlap, are aligned, and fit the block', () => {
  checkTable('consumer', CONSUMER_FIELDS, CONSUMER_BLOCK_SIZE);
});

test('hot fields each own a cache line', () => {
  const hot = [field(PRODUCER_FIELDS, 'tail'), field(PRODUCER_FIELDS, 'producerWaiting')];
  const header = PRODUCER_FIELDS.filter((f) => f.ordering.startsWith('immutable'));
  for (const h of hot) {
    for (const other of PRODUCER_FIELDS) {
      if (other !== h && other.size > 0) assert.is.not(line(other), line(h), `${h.name} shares a line with ${other.name}`);
    }
  }
  for (const f of header) assert.is(line(f), 0);
  const head = field(CONSUMER_FIELDS, 'head');
  const waiting = field(CONSUMER_FIELDS, 'consumerWaiting');
  assert.is.not(line(head), line(waiting));
  assert.is.not(line(head), 0);
  assert.is(PRODUCER_DATA % CACHE_LINE, 0, 'records start on a cache line');
});

test('owners: each block is written only by its own side', () => {
  for (const f of PRODUCER_FIELDS) assert.is(f.owner, 'producer', f.name);
  for (const f of CONSUMER_FIELDS) assert.is(f.owner, 'consumer', f.name);
});

test('record sizes are 8-byte aligned and include the header', () => {
  assert.is(recordBytes(0), 8);
  assert.is(recordBytes(1), 16);
  assert.is(recordBytes(8), 16);
  assert.is(recordBytes(9), 24);
  // SPSC keeps one header slot free after every batch (SPSC_SLACK); MPSC uses the whole area.
  assert.is(maxMessageSize(1024), 1008);
  assert.is(recordBytes(maxMessageSize(1024)) + SPSC_SLACK, 1024);
  assert.is(maxMessageSize(1024, RingKind.Mpsc), 1016);
  assert.is(recordBytes(maxMessageSize(1024, RingKind.Mpsc)), 1024);
});

test.run();
