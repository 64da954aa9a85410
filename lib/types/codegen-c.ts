/**
 * C generator: one header with a struct per type, laid out by the C compiler exactly as the
 * canonical ABI lays it out (natural alignment; a variant is { tag; union } and C puts the union at
 * the next multiple of its alignment, which is the canonical payload offset), proven by static
 * asserts on every size, alignment and field offset. Strings and lists are rw_str_t / rw_list_t
 * {ptr, len} pairs whose ptr is an offset from the message start; the checked accessors in
 * include/ringwire.h turn them into pointers. `<prefix>T_validate()` walks a whole message and
 * returns RW_ECORRUPT for anything out of bounds, a bad discriminant, char or UTF-8 string.
 */
import { ringwireError } from '../errors.js';
import { Layouts } from './layout.js';
import { snake, typeKey } from './names.js';
import type { TypeRef, WitDocument } from './wit.js';

export interface COptions {
  prefix?: string;
}

const CTYPE: Record<string, string> = {
  bool: 'uint8_t', u8: 'uint8_t', s8: 'int8_t', u16: 'uint16_t', s16: 'int16_t', u32: 'uint32_t', s32: 'int32_t',
  u64: 'uint64_t', s64: 'int64_t', f32: 'float', f64: 'double', char: 'uint32_t',
};

function cName(pascalKey: string): string {
  return pascalKey.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

class CGen {
  readonly l: Layouts;
  readonly out: string[] = [];
  readonly #done = new Set<string>();
  readonly p: string;

  constructor(doc: WitDocument, prefix: string) {
    this.l = new Layouts(doc);
    this.p = prefix;
  }

  name(t: TypeRef): string {
    return `${this.p}${cName(typeKey(this.l, t))}`;
  }

  ctype(t: TypeRef): string {
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': return CTYPE[s.name]!;
      case 'string': return 'rw_str_t';
      case 'list': this.ensure(t); return 'rw_list_t';
      default: this.ensure(t); return `${this.name(t)}_t`;
    }
  }

  ensure(t: TypeRef): void {
    const k = typeKey(this.l, t);
    if (this.#done.has(k)) return;
    this.#done.add(k);
    const s = this.l.shape(t);
    const n = this.name(t);
    const size = this.l.size(t);
    const align = this.l.alignment(t);
    switch (s.kind) {
      case 'prim': case 'string': return;
      case 'flags': {
        this.out.push(`typedef ${CTYPE[`u${size * 8}`]} ${n}_t;`, ...s.flags.map((f, i) => `#define ${n.toUpperCase()}_${snake(f).toUpperCase()} ${2 ** i >>> 0}u`), '');
        return this.#asserts(n, size, align, []);
      }
      case 'list': {
        this.ctype(s.elem);
        const et = this.ctype(s.elem);
        this.out.push(
          `/** list<${typeKey(this.l, s.elem)}>: the elements, checked to lie in the message and be aligned. */`,
          `static inline int ${n}_get(const rw_msg_t *m, const rw_list_t *l, const ${et} **out, uint32_t *n) {`,
          `  return rw_list_view(m, l, ${this.l.size(s.elem)}, ${this.l.alignment(s.elem)}, (const void **)out, n);`,
          '}',
          `static inline int ${n}_validate(const rw_msg_t *m, const rw_list_t *l) {`,
          `  const ${et} *e;`,
          '  uint32_t n;',
          `  int r = ${n}_get(m, l, &e, &n);`,
          '  if (r) return r;',
          ...(this.#needsCheck(s.elem) ? ['  for (uint32_t i = 0; i < n; i++) {', `    r = ${this.#check(s.elem, '&e[i]')};`, '    if (r) return r;', '  }'] : ['  (void)e;']),
          '  return 0;',
          '}',
          '',
        );
        return;
      }
      case 'record': {
        const fields = this.l.recordFields(s.fields);
        if (fields.length === 0) throw ringwireError('ERR_INVALID_ARG', `C has no empty structs: record ${k} needs a field`);
        for (const f of fields) this.ctype(f.type);
        this.out.push(`/** ${k}: ${size} bytes, align ${align}. */`, `typedef struct ${n} {`, ...fields.map((f) => `  ${this.ctype(f.type)} ${snake(f.name)};`), `} ${n}_t;`);
        this.#asserts(n, size, align, fields.map((f) => [snake(f.name), f.offset]));
        this.out.push(`static inline int ${n}_validate(const rw_msg_t *m, const ${n}_t *v) {`, '  int r = 0;', '  (void)m;', '  (void)v;');
        for (const f of fields) if (this.#needsCheck(f.type)) this.out.push(`  if ((r = ${this.#check(f.type, `&v->${snake(f.name)}`)})) return r;`);
        this.out.push('  return r;', '}', '');
        this.out.push(
          `/** The ${k} at the start of a message, or NULL when the message is too short or misaligned. Fields are not yet validated. */`,
          `static inline const ${n}_t *${n}_root(const rw_msg_t *m) {`,
          `  return m->len >= sizeof(${n}_t) && ((uintptr_t)m->base & 7) == 0 ? (const ${n}_t *)m->base : NULL;`,
          '}',
          `/** The ${k} at the start of a message after validating all of it, or NULL. */`,
          `static inline const ${n}_t *${n}_check(const rw_msg_t *m) {`,
          `  const ${n}_t *v = ${n}_root(m);`,
          `  return v && ${n}_validate(m, v) == 0 ? v : NULL;`,
          '}',
          '',
        );
        return;
      }
      case 'variant': {
        const v = this.l.variant(s.cases);
        const tagT = CTYPE[`u${v.discriminant * 8}`]!;
        if (s.flavor === 'enum') {
          this.out.push(`typedef ${tagT} ${n}_t;`, `enum { ${s.cases.map((c, i) => `${n.toUpperCase()}_${snake(c.name).toUpperCase()} = ${i}`).join(', ')} };`);
          this.#asserts(n, size, align, []);
          this.out.push(`static inline int ${n}_validate(const rw_msg_t *m, const ${n}_t *v) {`, '  (void)m;', `  return *v < ${s.cases.length} ? 0 : RW_ECORRUPT;`, '}', '');
          return;
        }
        for (const c of s.cases) if (c.type) this.ctype(c.type);
        const payload = s.cases.filter((c) => c.type);
        this.out.push(`/** ${k}: ${size} bytes, align ${align}; tag ${s.cases.map((c, i) => `${i} ${c.name}`).join(', ')}. */`, `typedef struct ${n} {`, `  ${tagT} tag;`);
        if (payload.length > 0) this.out.push('  union {', ...payload.map((c) => `    ${this.ctype(c.type!)} ${snake(c.name)};`), '  } val;');
        this.out.push(`} ${n}_t;`, `enum { ${s.cases.map((c, i) => `${n.toUpperCase()}_${snake(c.name).toUpperCase()} = ${i}`).join(', ')} };`);
        this.#asserts(n, size, align, payload.length > 0 ? [['val', v.payloadOffset]] : []);
        this.out.push(`static inline int ${n}_validate(const rw_msg_t *m, const ${n}_t *v) {`, '  (void)m;', '  switch (v->tag) {');
        s.cases.forEach((c, i) => {
          const chk = c.type && this.#needsCheck(c.type) ? `return ${this.#check(c.type, `&v->val.${snake(c.name)}`)};` : 'return 0;';
          this.out.push(`  case ${i}: ${chk}`);
        });
        this.out.push('  default: return RW_ECORRUPT;', '  }', '}', '');
        return;
      }
    }
  }

  #needsCheck(t: TypeRef): boolean {
    const s = this.l.shape(t);
    if (s.kind === 'prim') return s.name === 'char';
    if (s.kind === 'flags') return false;
    if (s.kind === 'record') return s.fields.some((f) => this.#needsCheck(f.type));
    return true;
  }

  /** A call validating the value at pointer expression `ptr`. */
  #check(t: TypeRef, ptr: string): string {
    const s = this.l.shape(t);
    switch (s.kind) {
      case 'prim': return `rw_char_check(*${ptr})`;
      case 'string': return `rw_str_validate(m, ${ptr})`;
      default: return `${this.name(t)}_validate(m, ${ptr})`;
    }
  }

  #asserts(n: string, size: number, align: number, fields: Array<[string, number]>): void {
    this.out.push(
      `_Static_assert(sizeof(${n}_t) == ${size}, "${n}: canonical ABI size");`,
      `_Static_assert(_Alignof(${n}_t) == ${align}, "${n}: canonical ABI alignment");`,
      ...fields.map(([f, o]) => `_Static_assert(offsetof(${n}_t, ${f}) == ${o}, "${n}.${f}: canonical ABI offset");`),
    );
  }
}

export function generateC(doc: WitDocument, opts: COptions = {}): string {
  const g = new CGen(doc, opts.prefix ?? 'rw_');
  for (const d of doc.types.values()) g.ensure({ kind: 'named', name: d.name });
  const guard = `${(opts.prefix ?? 'rw_').toUpperCase()}TYPES_H`;
  return [
    `/* Generated by ringwire gen from WIT${doc.package ? ` (package ${doc.package})` : ''}. Do not edit. */`,
    '/* Layout: the canonical ABI, pointers relative to the message start (docs/types.md). */',
    `#ifndef ${guard}`,
    `#define ${guard}`,
    '#include <stddef.h>',
    '#include <stdint.h>',
    '#include "ringwire.h"',
    '',
    ...g.out,
    `#endif /* ${guard} */`,
    '',
  ].join('\n');
}
