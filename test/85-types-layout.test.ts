/**
 * Golden layouts: every WIT type's size, alignment, field offsets and discriminant width, written
 * out by hand from the canonical ABI's rules (CanonicalABI.md: alignment, elem_size,
 * discriminant_type, flags), and one message's exact bytes. Plus the WIT subset's parse errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isRingwireError } from '../lib/errors.js';
import { Layouts } from '../lib/types/layout.js';
import { parseWit } from '../lib/types/wit.js';
import { generate } from '../lib/types/index.js';
import { typesGenCommand } from '../lib/types/cli.js';

function layouts(wit: string): Layouts {
  return new Layouts(parseWit(wit));
}

function sa(l: Layouts, name: string): [number, number] {
  const d = l.describe(name);
  return [d.size, d.align];
}

test('primitives, strings and lists: size and alignment', () => {
  const prims: Array<[string, number]> = [
    ['bool', 1], ['u8', 1], ['s8', 1], ['u16', 2], ['s16', 2], ['u32', 4], ['s32', 4], ['f32', 4], ['char', 4],
    ['u64', 8], ['s64', 8], ['f64', 8], ['float32', 4], ['float64', 8],
  ];
  const l = layouts(prims.map(([t], i) => `type t${i} = ${t};`).join('\n') + '\ntype s = string;\ntype l = list<u64>;\ntype ll = list<list<u8>>;');
  prims.forEach(([t, n], i) => assert.equal(sa(l, `t${i}`), [n, n], t));
  assert.equal(sa(l, 's'), [8, 4], 'string: {ptr u32, len u32}');
  assert.equal(sa(l, 'l'), [8, 4], 'list<u64> is a pointer pair whatever its element');
  assert.equal(sa(l, 'll'), [8, 4]);
});

test('records: fields at the next multiple of their alignment, size rounded to the largest', () => {
  const l = layouts(`
    record r1 { a: u8, b: u32, c: u8 }
    record r2 { a: u8, b: u64 }
    record r3 { p: r2, q: u8 }
    record r4 { a: u8, b: u8, c: u16 }
    record r5 { s: string, b: bool }
  `);
  assert.equal(sa(l, 'r1'), [12, 4]);
  assert.equal(l.recordFields((l.decl('r1') as unknown as { fields: [] }).fields).map((f) => f.offset), [0, 4, 8]);
  assert.equal(sa(l, 'r2'), [16, 8]);
  assert.equal(sa(l, 'r3'), [24, 8]);
  assert.equal(l.recordFields((l.decl('r3') as unknown as { fields: [] }).fields).map((f) => f.offset), [0, 16]);
  assert.equal(sa(l, 'r4'), [4, 2]);
  assert.equal(sa(l, 'r5'), [12, 4]);
});

test('variants, enums, options, results: discriminant width and payload offset', () => {
  const many = (n: number): string => Array.from({ length: n }, (_, i) => `c${i}`).join(', ');
  const l = layouts(`
    variant v { a, b(u64), c(u8) }
    variant w { a(u8), b(u16) }
    enum e3 { x, y, z }
    enum e256 { ${many(256)} }
    enum e257 { ${many(257)} }
    variant big { ${Array.from({ length: 300 }, (_, i) => `c${i}(u8)`).join(', ')} }
    type o8 = option<u8>;
    type o32 = option<u32>;
    type os = option<string>;
    type oo = option<option<u8>>;
    type r = result<u32, string>;
    type r0 = result;
    type re = result<_, u8>;
    type ro = result<u64>;
  `);
  assert.equal(sa(l, 'v'), [16, 8], 'u8 tag, payload at 8 (u64 alignment)');
  assert.equal(l.variant((l.shape({ kind: "named", name: "v" }) as unknown as { cases: [] }).cases), { discriminant: 1, payloadOffset: 8 });
  assert.equal(sa(l, 'w'), [4, 2]);
  assert.equal(sa(l, 'e3'), [1, 1]);
  assert.equal(sa(l, 'e256'), [1, 1], '256 cases still fit a u8');
  assert.equal(sa(l, 'e257'), [2, 2], '257 cases need a u16');
  assert.equal(sa(l, 'big'), [4, 2], 'u16 tag, u8 payload at 2');
  assert.equal(sa(l, 'o8'), [2, 1]);
  assert.equal(sa(l, 'o32'), [8, 4]);
  assert.equal(sa(l, 'os'), [12, 4]);
  assert.equal(sa(l, 'oo'), [3, 1]);
  assert.equal(sa(l, 'r'), [12, 4]);
  assert.equal(sa(l, 'r0'), [1, 1]);
  assert.equal(sa(l, 're'), [2, 1]);
  assert.equal(sa(l, 'ro'), [16, 8]);
});

test('the discriminant of 65537 cases is a u32', () => {
  const l = layouts(`enum huge { ${Array.from({ length: 65537 }, (_, i) => `c${i}`).join(', ')} }`);
  assert.equal(sa(l, 'huge'), [4, 4]);
});

test('flags: u8 up to 8 labels, u16 up to 16, u32 up to 32, more is refused', () => {
  const f = (n: number): string => `{ ${Array.from({ length: n }, (_, i) => `f${i}`).join(', ')} }`;
  const l = layouts(`flags a ${f(1)}\nflags b ${f(8)}\nflags c ${f(9)}\nflags d ${f(16)}\nflags e ${f(17)}\nflags g ${f(32)}`);
  assert.equal(['a', 'b', 'c', 'd', 'e', 'g'].map((n) => sa(l, n)), [[1, 1], [1, 1], [2, 2], [2, 2], [4, 4], [4, 4]]);
  assert.throws(() => parseWit(`flags h ${f(33)}`), /at most 32/);
});

test('tuples are records with fields f0, f1, ...', () => {
  const l = layouts('type t = tuple<u8, s16, u8>;\ntype u = tuple<u8, f64>;');
  assert.equal(sa(l, 't'), [6, 2]);
  assert.equal(sa(l, 'u'), [16, 8]);
});

test('golden bytes: one message of every kind of field, pointers relative to its start', async () => {
  const wit = `
    enum e3 { x, y, z }
    flags f3 { a, b, c }
    record g { a: u8, s: string, l: list<u16>, e: e3, f: f3, o: option<u32>, c: char }
  `;
  const l = layouts(wit);
  assert.equal(sa(l, 'g'), [36, 4]);
  const dir = await import('node:fs').then((fs) => fs.mkdtempSync('/tmp/ringwire-85-'));
  const { writeFileSync, rmSync } = await import('node:fs');
  const runtime = new URL('../lib/types/index.js', import.meta.url).href;
  const file = `${dir}/g.mjs`;
  const ts = await import('typescript');
  writeFileSync(file, ts.default.transpileModule(generate(wit, { lang: 'ts', runtime }), { compilerOptions: { module: ts.default.ModuleKind.ESNext, target: ts.default.ScriptTarget.ES2022 } }).outputText);
  try {
    const g = await import(file);
    const area = new Uint8Array(64).fill(0xee);
    const value = { a: 0x11, s: 'hé', l: [1, 0x0203], e: 2, f: 0b101, o: 0xdeadbeef, c: 0x20ac };
    assert.is(g.measureG(value), 44);
    // The area starts at 8 here: pointers are the same wherever the message sits.
    assert.is(g.writeG(value, area, 8), 44);
    const hex = Buffer.from(area.subarray(8, 8 + 44)).toString('hex').match(/.{8}/g)!.join(' ');
    assert.is(hex, [
      '11000000', // a, 3 padding bytes (zeroed)
      '24000000', '03000000', // s: ptr 36, len 3
      '28000000', '02000000', // l: ptr 40 (u16-aligned), 2 elements
      '02050000', // e = 2 (u8), f = 0b101 (u8), padding
      '01000000', 'efbeadde', // o: tag 1 (some), payload at 4
      'ac200000', // c: U+20AC
      '68c3a900', // "hé" in UTF-8, then a padding byte to align the list
      '01000302', // [1, 0x0203]
    ].join(' '));
    assert.is(area[7], 0xee, 'nothing written before the message');
    assert.is(area[52], 0xee, 'nothing written after it');
    const v = new g.GView().wrap(area, 8, 44);
    assert.equal(v.toValue(), value);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parse errors carry line and column, and unsupported WIT is refused, not ignored', () => {
  const bad: Array<[string, RegExp]> = [
    ['record a { x: u32 }\nrecord b { y: nope }', /'nope', which is not declared/],
    ['record a { x: a }', /contains itself/],
    ['record a { x: list<b> }\nrecord b { y: option<a> }', /contains itself/],
    ['resource r;', /not supported/],
    ['record a { f: func() }', /expected a type|not supported/],
    ['use x.{y};', /not supported/],
    ['record a { x: u32, x: u8 }', /appears twice/],
    ['record a { x: u32 }\nrecord a { y: u8 }', /declared twice/],
    ['record a {\n  x: u32\n  y: u8 }', /WIT 3:3: expected '}'/],
    ['record a { x: own<r> }', /handle/],
    ['record a { x: list<u8, 4> }', /fixed-size/],
    ['variant v {}', /at least one case/],
    ['record Bad_Name { x: u8 }', /kebab-case/],
  ];
  for (const [src, re] of bad) {
    try {
      parseWit(src);
      assert.unreachable(src);
    } catch (err) {
      assert.ok(isRingwireError(err, 'ERR_INVALID_ARG'), `${src}: ${String(err)}`);
      assert.match((err as Error).message, re, src);
    }
  }
});

test('option<option<T>> lays out (above) but has no TypeScript value form: generate says so', () => {
  assert.throws(() => generate('record r { o: option<option<u8>> }', { lang: 'ts' }), /option<option<T>>/);
  assert.ok(generate('record r { o: option<option<u8>> }', { lang: 'c' }).includes('rw_option_option_u8_t'));
});

test('accepted syntax: package, interfaces, comments, %keywords, trailing commas', () => {
  const doc = parseWit(`
    package a:b@1.0.0;
    /// doc comment
    interface one { record %record { %type: u8, } }
    /* block
       comment */
    interface two { type x = %record; }
  `);
  assert.is(doc.package, 'a:b@1.0.0');
  assert.equal([...doc.types.keys()], ['record', 'x']);
});

test('the gen command: --lang, --out, --help, and typed errors for bad arguments', async () => {
  const { mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
  const dir = mkdtempSync('/tmp/ringwire-85-gen-');
  try {
    writeFileSync(`${dir}/s.wit`, 'record point { x: f64, y: f64 }');
    assert.is(await typesGenCommand([`${dir}/s.wit`, '--lang', 'c', '--out', `${dir}/s.h`]), 0);
    assert.match(readFileSync(`${dir}/s.h`, 'utf8'), /_Static_assert\(sizeof\(rw_point_t\) == 16/);
    let printed = '';
    assert.is(await typesGenCommand([`${dir}/s.wit`], (s) => (printed += s)), 0);
    assert.match(printed, /export class PointView/);
    printed = '';
    assert.is(await typesGenCommand(['--help'], (s) => (printed += s)), 0);
    assert.match(printed, /usage: ringwire gen/);
    for (const bad of [[], [`${dir}/s.wit`, '--lang', 'cobol'], [`${dir}/s.wit`, 'extra.wit']]) {
      await typesGenCommand(bad).then(() => assert.unreachable(bad.join(' ')), (err) => assert.ok(isRingwireError(err, 'ERR_INVALID_ARG'), String(err)));
    }
    writeFileSync(`${dir}/bad.wit`, 'record r { x: resource }');
    await typesGenCommand([`${dir}/bad.wit`]).then(() => assert.unreachable(), (err) => assert.match(String(err), /WIT 1:15/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
