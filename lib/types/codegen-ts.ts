/**
 * TypeScript generator: for each type of a schema, a view class that reads fields in place from a
 * ring's bytes, a plain value type, and writer functions that measure a value and write it in place.
 *
 *   view.wrap(consumer.data, consumer.offset, consumer.length).name   // decodes one string, nothing else
 *   PersonCodec.send(producer, value)   // claim(exactly measure(value)), write in place, commit()
 *
 * Views are meant to be reused: wrap() rebinds one object to the next message, and nested records,
 * variants and lists are child views cached in their parent, so reading a message allocates nothing
 * but the strings it decodes (and bigints for s64/u64, which have xAsNumber() twins).
 */
import { ringwireError } from '../errors.js';
import { Layouts, isFlat } from './layout.js';
import { camel, pascal, typeKey } from './names.js';
import type { TypeRef, WitDocument } from './wit.js';

export interface TsOptions {
  /** Module the generated code imports its runtime from. */
  runtime?: string;
}

const READ: Record<string, (a: string) => string> = {
  bool: (a) => `this._m.u8[${a}] !== 0`,
  u8: (a) => `this._m.u8[${a}]!`,
  s8: (a) => `this._m.i8[${a}]!`,
  u16: (a) => `this._m.u16[(${a}) >>> 1]!`,
  s16: (a) => `this._m.i16[(${a}) >>> 1]!`,
  u32: (a) => `this._m.u32[(${a}) >>> 2]!`,
  s32: (a) => `this._m.i32[(${a}) >>> 2]!`,
  f32: (a) => `this._m.f32[(${a}) >>> 2]!`,
  f64: (a) => `this._m.f64[(${a}) >>> 3]!`,
  u64: (a) => `this._m.u64[(${a}) >>> 3]!`,
  s64: (a) => `this._m.i64[(${a}) >>> 3]!`,
  char: (a) => `readChar(this._m, ${a})`,
};

const WRITE: Record<string, (a: string, v: string) => string> = {
  bool: (a, v) => `m.u8[${a}] = ${v} ? 1 : 0;`,
  u8: (a, v) => `m.u8[${a}] = ${v};`,
  s8: (a, v) => `m.i8[${a}] = ${v};`,
  u16: (a, v) => `m.u16[(${a}) >>> 1] = ${v};`,
  s16: (a, v) => `m.i16[(${a}) >>> 1] = ${v};`,
  u32: (a, v) => `m.u32[(${a}) >>> 2] = ${v};`,
  s32: (a, v) => `m.i32[(${a}) >>> 2] = ${v};`,
  f32: (a, v) => `m.f32[(${a}) >>> 2] = ${v};`,
  f64: (a, v) => `m.f64[(${a}) >>> 3] = ${v};`,
  u64: (a, v) => `write64(m, ${a}, ${v});`,
  s64: (a, v) => `write64(m, ${a}, ${v});`,
  char: (a, v) => `m.u32[(${a}) >>> 2] = checkChar(${v});`,
};

const VALUE: Record<string, string> = {
  bool: 'boolean', u8: 'number', s8: 'number', u16: 'number', s16: 'number', u32: 'number', s32: 'number',
  f32: 'number', f64: 'number', u64: 'bigint | number', s64: 'bigint | number', char: 'number',
};

class TsGen {
  readonly l: Layouts;
  readonly out: string[] = [];
  readonly #done = new Set<string>();
  #cache = 0;

  constructor(doc: WitDocument) {
    this.l = new Layouts(doc);
  }

  key(t: TypeRef): string {
    return typeKey(this.l, t);
  }

  valueType(t: TypeRef): string {
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': return VALUE[s.name]!;
      case 'string': return 'string';
      case 'list': return s.elem.kind === 'prim' && s.elem.name === 'u8' ? 'ArrayLike<number>' : `readonly ${this.#paren(this.valueType(s.elem))}[]`;
      case 'flags': return 'number';
      case 'record': return this.key(t);
      case 'variant':
        if (s.flavor === 'enum') return 'number';
        return this.key(t);
    }
  }

  #paren(s: string): string {
    return /[ |]/.test(s) ? `(${s})` : s;
  }

  /** Emits everything `t` needs, once. */
  ensure(t: TypeRef): void {
    const k = this.key(t);
    if (this.#done.has(k)) return;
    this.#done.add(k);
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': case 'string': return;
      case 'flags': return this.#flags(t, s.flags);
      case 'list': return this.#list(t, s.elem);
      case 'record': return this.#record(t, s.fields);
      case 'variant': return s.flavor === 'enum' ? this.#enum(t, s.cases.map((c) => c.name)) : this.#variant(t, s.cases, s.flavor);
    }
  }

  /** An expression reading `t` at `at` inside a view (this._m, this._base, this._len), and the child-view cache it needs. */
  read(t: TypeRef, at: string): { expr: string; cache?: string } {
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': return { expr: READ[s.name]!(at) };
      case 'string': return { expr: `readString(this._m, this._base, this._len, ${at})` };
      case 'flags': return { expr: READ[`u${this.l.size(t) * 8}`]!(at) };
      default: {
        if (s.kind === 'variant' && s.flavor === 'enum') return { expr: `tag${this.l.variant(s.cases).discriminant * 8}(this._m, ${at}, ${s.cases.length})` };
        this.ensure(t);
        const c = `#c${this.#cache++}`;
        return { expr: `(this.${c} ??= new ${this.key(t)}View()).bind(this._m, this._base, this._len, ${at})`, cache: `  ${c}?: ${this.key(t)}View;` };
      }
    }
  }

  /** Statements writing value `v` of `t` at `at` (function scope: m, base, c). */
  write(t: TypeRef, at: string, v: string): string {
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': return WRITE[s.name]!(at, v);
      case 'string': return `c = writeString(m, base, ${at}, ${v}, c);`;
      case 'flags': return WRITE[`u${this.l.size(t) * 8}`]!(at, v);
      default:
        if (s.kind === 'variant' && s.flavor === 'enum') return WRITE[`u${this.l.variant(s.cases).discriminant * 8}`]!(at, `checkTag(${v}, ${s.cases.length})`);
        this.ensure(t);
        return isFlat(this.l, t) ? `w${this.key(t)}(${v}, m, base, ${at}, c);` : `c = w${this.key(t)}(${v}, m, base, ${at}, c);`;
    }
  }

  /** Statements adding the out-of-line bytes of `v` to `c` (nothing for flat types). */
  measure(t: TypeRef, v: string): string {
    if (isFlat(this.l, t)) return '';
    const s = this.l.shape(t);
    if (s.kind === 'string') return `c += utf8Length(${v});`;
    this.ensure(t);
    return `c = m${this.key(t)}(${v}, c);`;
  }

  /** An expression decoding `t` at `at` to a plain value (function scope: m, base, len). */
  decode(t: TypeRef, at: string): string {
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': return READ[s.name]!(at).replace(/this\._m/g, 'm').replace('readChar(m', 'readChar(m');
      case 'string': return `readString(m, base, len, ${at})`;
      case 'flags': return READ[`u${this.l.size(t) * 8}`]!(at).replace(/this\._m/g, 'm');
      default:
        if (s.kind === 'variant' && s.flavor === 'enum') return `tag${this.l.variant(s.cases).discriminant * 8}(m, ${at}, ${s.cases.length})`;
        this.ensure(t);
        return `${s.kind === 'list' ? 'd' : 'r'}${this.key(t)}(m, base, len, ${at})`;
    }
  }

  #flags(t: TypeRef, flags: readonly string[]): void {
    const k = this.key(t);
    this.out.push(`/** flags ${k}: bit i is label i. */`, `export const ${k} = { ${flags.map((f, i) => `${camel(f)}: ${2 ** i >>> 0}`).join(', ')} } as const;`, `export type ${k} = number;`, '');
  }

  #enum(t: TypeRef, cases: readonly string[]): void {
    const k = this.key(t);
    this.out.push(`/** enum ${k}: the discriminant of each case. */`, `export const ${k} = { ${cases.map((c, i) => `${camel(c)}: ${i}`).join(', ')} } as const;`, `export type ${k} = number;`, `export const ${k}Names = [${cases.map((c) => JSON.stringify(c)).join(', ')}] as const;`, '');
  }

  #record(t: TypeRef, fieldsIn: readonly { name: string; type: TypeRef }[]): void {
    const k = this.key(t);
    const size = this.l.size(t);
    const fields = this.l.recordFields(fieldsIn);
    const flat = isFlat(this.l, t);
    const tuple = t.kind === 'tuple';
    const body: string[] = [];
    const caches: string[] = [];
    for (const f of fields) {
      const r = this.read(f.type, `this._at + ${f.offset}`);
      if (r.cache) caches.push(r.cache);
      const vt = this.#viewType(f.type);
      body.push(`  get ${camel(f.name)}(): ${vt} {`, `    return ${r.expr};`, '  }');
      const sh = this.l.shape(f.type);
      if (sh.kind === 'prim' && (sh.name === 'u64' || sh.name === 's64')) {
        body.push(`  /** ${f.name} as a number: exact up to 2^53, no bigint allocated. */`, `  ${camel(f.name)}AsNumber(): number {`, `    return ${sh.name}AsNumber(this._m, this._at + ${f.offset});`, '  }');
      }
    }
    if (tuple) {
      this.out.push(`export type ${k} = readonly [${fields.map((f) => this.valueType(f.type)).join(', ')}];`);
    } else {
      this.out.push(`export interface ${k} {`, ...fields.map((f) => `  ${camel(f.name)}: ${this.#valueField(f.type)};`), '}');
    }
    const fv = (f: { name: string }, i: number): string => (tuple ? `v[${i}]` : `v.${camel(f.name)}`);
    this.out.push(
      '',
      `/** ${k}: ${size} bytes, align ${this.l.alignment(t)}; fields at ${fields.map((f) => `${f.name}@${f.offset}`).join(', ') || 'none'}. */`,
      `export class ${k}View {`,
      `  static readonly SIZE = ${size};`,
      `  static readonly ALIGN = ${this.l.alignment(t)};`,
      '  _m!: WitMemory;',
      '  _base = 0;',
      '  _len = 0;',
      '  _at = 0;',
      '  #data: Uint8Array | undefined;',
      ...caches,
      '  /** Binds this view to the message of `len` bytes at `data[off]` (a ring record: consumer.data, .offset, .length). */',
      '  wrap(data: Uint8Array, off: number, len: number): this {',
      '    if (data !== this.#data) {',
      '      this._m = witMemory(data);',
      '      this.#data = data;',
      '    }',
      `    checkRoot(this._m, off, len, ${size}, '${k}');`,
      '    this._base = this._at = off;',
      '    this._len = len;',
      '    return this;',
      '  }',
      '  /** @internal Binds to a nested value at `at` of the message [base, base + len). */',
      '  bind(m: WitMemory, base: number, len: number, at: number): this {',
      '    this._m = m;',
      '    this._base = base;',
      '    this._len = len;',
      '    this._at = at;',
      '    return this;',
      '  }',
      ...body,
      `  toValue(): ${k} {`,
      `    return r${k}(this._m, this._base, this._len, this._at);`,
      '  }',
      '}',
      '',
      `export function r${k}(m: WitMemory, base: number, len: number, at: number): ${k} {`,
      tuple ? `  return [${fields.map((f) => this.decode(f.type, `at + ${f.offset}`)).join(', ')}];` : `  return { ${fields.map((f) => `${camel(f.name)}: ${this.decode(f.type, `at + ${f.offset}`)}`).join(', ')} };`,
      '}',
      '',
      `export function w${k}(v: ${k}, m: WitMemory, base: number, at: number, c: number): number {`,
      ...fields.map((f, i) => `  ${this.write(f.type, `at + ${f.offset}`, fv(f, i))}`),
      '  return c;',
      '}',
      '',
    );
    if (!flat) {
      this.out.push(`export function m${k}(v: ${k}, c: number): number {`, ...fields.map((f, i) => this.measure(f.type, fv(f, i))).filter(Boolean).map((s) => `  ${s}`), '  return c;', '}', '');
    }
    if (!tuple) {
      this.out.push(
        `export function measure${k}(v: ${k}): number {`,
        flat ? `  return ${size};` : `  return m${k}(v, ${size});`,
        '}',
        '',
        '/** Writes `v` at data[off] (8-aligned) into exactly `length` bytes (from measure()); returns them. */',
        `export function write${k}(v: ${k}, data: Uint8Array, off: number, length = measure${k}(v)): number {`,
        '  const m = witMemory(data);',
        `  checkRoot(m, off, length, ${size}, '${k}');`,
        '  m.u8.fill(0, off, off + length);',
        `  const end = w${k}(v, m, off, off, ${size});`,
        `  if (end !== length) throw ringwireError('ERR_INVALID_ARG', \`${k}: the value changed between measure() and write() (\${end} != \${length} bytes)\`);`,
        '  return length;',
        '}',
        '',
        '/** Claims exactly the bytes `v` needs, writes it in place and commits. False when the ring is full. */',
        `export function send${k}(p: ClaimingProducer, v: ${k}, type = 0): boolean {`,
        `  const length = measure${k}(v);`,
        '  const off = p.claim(length, type);',
        '  if (off < 0) return false;',
        `  write${k}(v, p.data, off, length);`,
        '  p.commit();',
        '  return true;',
        '}',
        '',
        `/** Builds ${k} messages: measure() the exact bytes, write() them in place, or send() both through a ring. */`,
        `export const ${k}Codec = { SIZE: ${size}, measure: measure${k}, write: write${k}, send: send${k} } as const;`,
        '',
      );
    }
  }

  #viewType(t: TypeRef): string {
    const s = this.l.shape(t);
    if (s.kind === 'prim' || s.kind === 'string' || s.kind === 'flags' || (s.kind === 'variant' && s.flavor === 'enum')) return this.valueType(t);
    return `${this.key(t)}View`;
  }

  #valueField(t: TypeRef): string {
    return this.valueType(t);
  }

  #variant(t: TypeRef, cases: readonly { name: string; type: TypeRef | null }[], flavor: string): void {
    const k = this.key(t);
    const v = this.l.variant(cases);
    const size = this.l.size(t);
    const tag = `tag${v.discriminant * 8}`;
    const caches: string[] = [];
    const body: string[] = [];
    cases.forEach((c, i) => {
      if (!c.type) return;
      const r = this.read(c.type, `this._at + ${v.payloadOffset}`);
      if (r.cache) caches.push(r.cache);
      body.push(`  /** The payload of case ${c.name} (ERR_INVALID_ARG when the value holds another case). */`, `  get ${camel(c.name)}(): ${this.#viewType(c.type)} {`, `    const t = this.tag;`, `    if (t !== ${i}) wrongCase('${c.name}', t);`, `    return ${r.expr};`, '  }');
    });
    if (flavor === 'option') {
      const some = cases[1]!.type!;
      const inner = this.l.shape(some);
      if (inner.kind === 'variant' && inner.flavor === 'option') {
        // some(none) and none would both be `undefined`.
        throw ringwireError('ERR_INVALID_ARG', `${k}: option<option<T>> has no TypeScript value form (T | undefined); wrap the inner option in a record`);
      }
      this.out.push(`export type ${k} = ${this.valueType(some)} | undefined;`);
    } else {
      this.out.push(`export type ${k} =`, ...cases.map((c, i) => `  ${i === 0 ? ' ' : '|'} { tag: '${c.name}'${c.type ? `; val: ${this.valueType(c.type)}` : ''} }`), ';');
    }
    const w = this.#tagWrite(v.discriminant);
    const writeCases = cases.map((c, i) => {
      const payload = c.type ? this.write(c.type, `at + ${v.payloadOffset}`, flavor === 'option' ? 'v' : 'v.val') : '';
      return { i, c, payload };
    });
    const measureCases = cases.map((c, i) => ({ i, c, m: c.type ? this.measure(c.type, flavor === 'option' ? 'v' : 'v.val') : '' }));
    const decodeCase = (c: { name: string; type: TypeRef | null }): string => {
      if (flavor === 'option') return c.type ? this.decode(c.type, `at + ${v.payloadOffset}`) : 'undefined';
      return `{ tag: '${c.name}'${c.type ? `, val: ${this.decode(c.type, `at + ${v.payloadOffset}`)}` : ''} }`;
    };
    this.out.push(
      '',
      `/** ${k}: ${size} bytes, align ${this.l.alignment(t)}; a u${v.discriminant * 8} discriminant, payload at ${v.payloadOffset}. */`,
      `export class ${k}View {`,
      ...cases.map((c, i) => `  static readonly ${camel(c.name)} = ${i};`),
      '  _m!: WitMemory;',
      '  _base = 0;',
      '  _len = 0;',
      '  _at = 0;',
      ...caches,
      '  /** @internal */',
      '  bind(m: WitMemory, base: number, len: number, at: number): this {',
      '    this._m = m;',
      '    this._base = base;',
      '    this._len = len;',
      '    this._at = at;',
      '    return this;',
      '  }',
      '  /** The case index; ERR_MESSAGE_CORRUPT when out of range. */',
      '  get tag(): number {',
      `    return ${tag}(this._m, this._at, ${cases.length});`,
      '  }',
      ...body,
      `  toValue(): ${k} {`,
      `    return r${k}(this._m, this._base, this._len, this._at);`,
      '  }',
      '}',
      '',
      `export function r${k}(m: WitMemory, base: number, len: number, at: number): ${k} {`,
      `  switch (${tag}(m, at, ${cases.length})) {`,
      ...cases.map((c, i) => `    ${i === cases.length - 1 ? 'default' : `case ${i}`}: return ${decodeCase(c)};`),
      '  }',
      '}',
      '',
      `export function w${k}(v: ${k}, m: WitMemory, base: number, at: number, c: number): number {`,
    );
    if (flavor === 'option') {
      const some = writeCases[1]!;
      this.out.push('  if (v === undefined) {', `    ${w('at', '0')}`, '  } else {', `    ${w('at', '1')}`, `    ${some.payload}`, '  }');
    } else {
      this.out.push('  switch (v.tag) {');
      for (const wc of writeCases) {
        this.out.push(`    case '${wc.c.name}':`, `      ${w('at', String(wc.i))}`);
        if (wc.payload) this.out.push(`      ${wc.payload}`);
        this.out.push('      break;');
      }
      this.out.push(`    default: throw ringwireError('ERR_INVALID_ARG', \`${k}: no case \${(v as { tag: unknown }).tag}\`);`, '  }');
    }
    this.out.push('  return c;', '}', '');
    if (!isFlat(this.l, t)) {
      this.out.push(`export function m${k}(v: ${k}, c: number): number {`);
      if (flavor === 'option') this.out.push(`  if (v !== undefined) { ${measureCases[1]!.m} }`);
      else {
        this.out.push('  switch (v.tag) {');
        for (const mc of measureCases) if (mc.m) this.out.push(`    case '${mc.c.name}': ${mc.m} break;`);
        this.out.push('  }');
      }
      this.out.push('  return c;', '}', '');
    }
  }

  #tagWrite(bytes: number): (at: string, v: string) => string {
    return (at, v) => WRITE[`u${bytes * 8}`]!(at, v);
  }

  #list(t: TypeRef, elem: TypeRef): void {
    const k = this.key(t);
    const es = this.l.size(elem);
    const ea = this.l.alignment(elem);
    const r = this.read(elem, `this._start + i * ${es}`);
    const bytes = elem.kind === 'prim' && elem.name === 'u8';
    const flatElem = isFlat(this.l, elem);
    this.out.push(
      `/** list<${k.slice(4)}>: {ptr, len} with ${es}-byte elements aligned to ${ea}. */`,
      `export class ${k}View {`,
      '  _m!: WitMemory;',
      '  _base = 0;',
      '  _len = 0;',
      '  /** Index of the first element in the area. */',
      '  _start = 0;',
      '  length = 0;',
      ...(r.cache ? [r.cache] : []),
      '  /** @internal Binds to the {ptr, len} slot at `slot`, checking the elements lie in the message. */',
      '  bind(m: WitMemory, base: number, len: number, slot: number): this {',
      `    this._start = span(m, base, len, slot, ${es}, ${ea});`,
      '    this._m = m;',
      '    this._base = base;',
      '    this._len = len;',
      '    this.length = m.u32[(slot >>> 2) + 1]!;',
      '    return this;',
      '  }',
      `  /** Element i${r.cache ? ' (one view, rebound by each get)' : ''}; ERR_OUT_OF_RANGE past the end. */`,
      `  get(i: number): ${this.#viewType(elem)} {`,
      '    if ((i >>> 0) !== i || i >= this.length) outOfRange(i, this.length);',
      `    return ${r.expr};`,
      '  }',
      ...(bytes ? ['  /** The bytes, as a view into the ring (valid until the consumer releases the message). */', '  bytes(): Uint8Array {', '    return this._m.u8.subarray(this._start, this._start + this.length);', '  }'] : []),
      `  toValue(): ${this.valueType(elem)}[] {`,
      `    return r${k}(this._m, this._base, this._len, this._start - this._base, this.length);`,
      '  }',
      '}',
      '',
      `function r${k}(m: WitMemory, base: number, len: number, ptr: number, n: number): ${this.valueType(elem)}[] {`,
      `  const out: ${this.valueType(elem)}[] = [];`,
      `  for (let i = 0; i < n; i++) out.push(${this.decode(elem, `base + ptr + i * ${es}`)});`,
      '  return out;',
      '}',
      '',
      `export function ${'d' + k}(m: WitMemory, base: number, len: number, slot: number): ${this.valueType(elem)}[] {`,
      `  const start = span(m, base, len, slot, ${es}, ${ea});`,
      `  return r${k}(m, base, len, start - base, m.u32[(slot >>> 2) + 1]!);`,
      '}',
      '',
      `export function w${k}(v: ${this.valueType(t)}, m: WitMemory, base: number, at: number, c: number): number {`,
      '  const n = v.length;',
      `  c = alignUp(c, ${ea});`,
      '  m.u32[at >>> 2] = c;',
      '  m.u32[(at >>> 2) + 1] = n;',
      '  const start = base + c;',
      `  c += n * ${es};`,
      `  for (let i = 0; i < n; i++) {`,
      `    const e = v[i]!;`,
      `    ${this.write(elem, `start + i * ${es}`, 'e')}`,
      '  }',
      '  return c;',
      '}',
      '',
      `export function m${k}(v: ${this.valueType(t)}, c: number): number {`,
      `  c = alignUp(c, ${ea}) + v.length * ${es};`,
      ...(flatElem ? [] : ['  for (let i = 0; i < v.length; i++) {', '    const e = v[i]!;', `    ${this.measure(elem, 'e')}`, '  }']),
      '  return c;',
      '}',
      '',
    );
  }
}

/** Generates the TypeScript module for a parsed schema. */
export function generateTs(doc: WitDocument, opts: TsOptions = {}): string {
  const g = new TsGen(doc);
  for (const d of doc.types.values()) g.ensure({ kind: 'named', name: d.name });
  const runtime = opts.runtime ?? 'ringwire/types';
  return [
    `// Generated by ringwire gen from WIT${doc.package ? ` (package ${doc.package})` : ''}. Do not edit.`,
    '// Layout: the canonical ABI, pointers relative to the message start (docs/types.md).',
    '/* eslint-disable */',
    `import { type WitMemory, witMemory, checkRoot, wrongCase, outOfRange, span, readString, writeString, utf8Length, alignUp, readChar, tag8, tag16, tag32, u64AsNumber, s64AsNumber, write64, checkChar, checkTag, ringwireError, type ClaimingProducer } from '${runtime}';`,
    '',
    ...g.out,
  ].join('\n');
}

export { pascal };
