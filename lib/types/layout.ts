/**
 * The canonical ABI's memory layout (WebAssembly Component Model, CanonicalABI.md, "Alignment" and
 * "Element Size"), for a 32-bit memory, with one difference: the pointer of a string or list is an
 * offset from the start of the message, not an address (docs/types.md).
 *
 *   bool, s8, u8: 1     s16, u16: 2     s32, u32, f32, char: 4     s64, u64, f64: 8
 *   string, list<T>: { ptr: u32, len: u32 }, size 8, align 4 (string len in UTF-8 bytes; list len in elements)
 *   record, tuple: fields in order, each at the next multiple of its alignment; align = the largest
 *                  field alignment (1 when empty); size rounded up to it
 *   variant, enum, option, result: a discriminant (u8 up to 256 cases, u16 up to 65536, else u32),
 *                  then the payload at the next multiple of the largest case alignment; size rounded
 *                  up to max(discriminant, cases) alignment
 *   flags: u8 up to 8 labels, u16 up to 16, u32 up to 32 (bit i is label i)
 */
import { ringwireError } from '../errors.js';
import type { Case, NamedField, PrimName, TypeDecl, TypeRef, WitDocument } from './wit.js';

export const PRIM_SIZE: Readonly<Record<PrimName, number>> = {
  bool: 1, s8: 1, u8: 1, s16: 2, u16: 2, s32: 4, u32: 4, f32: 4, char: 4, s64: 8, u64: 8, f64: 8,
};

/** A type with names and aliases resolved and option/result/tuple/enum despecialized to their shapes. */
export type Shape =
  | { readonly kind: 'prim'; readonly name: PrimName }
  | { readonly kind: 'string' }
  | { readonly kind: 'list'; readonly elem: TypeRef }
  | { readonly kind: 'record'; readonly fields: readonly NamedField[]; readonly tuple: boolean }
  | { readonly kind: 'variant'; readonly cases: readonly Case[]; readonly flavor: 'variant' | 'option' | 'result' | 'enum' }
  | { readonly kind: 'flags'; readonly flags: readonly string[] };

export function alignTo(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** Bytes of a variant's discriminant: CanonicalABI.md `discriminant_type`. */
export function discriminantSize(cases: number): 1 | 2 | 4 {
  return cases <= 1 << 8 ? 1 : cases <= 1 << 16 ? 2 : 4;
}

/** Bytes of a flags value: CanonicalABI.md `elem_size_flags` (at most 32 labels). */
export function flagsSize(n: number): 1 | 2 | 4 {
  return n <= 8 ? 1 : n <= 16 ? 2 : 4;
}

export interface FieldLayout { readonly name: string; readonly type: TypeRef; readonly offset: number }
export interface VariantLayout { readonly discriminant: 1 | 2 | 4; readonly payloadOffset: number }

/** Layout queries over one parsed document. Results are memoised per named type. */
export class Layouts {
  readonly doc: WitDocument;
  #memo = new Map<string, { size: number; align: number }>();

  constructor(doc: WitDocument) {
    this.doc = doc;
  }

  decl(name: string): TypeDecl {
    const d = this.doc.types.get(name);
    if (!d) throw ringwireError('ERR_INVALID_ARG', `no type named '${name}' in the schema`);
    return d;
  }

  /** Follows aliases and despecializes. */
  shape(t: TypeRef): Shape {
    switch (t.kind) {
      case 'prim': case 'string': case 'list': return t;
      case 'tuple': return { kind: 'record', fields: t.items.map((type, i) => ({ name: `f${i}`, type })), tuple: true };
      case 'option': return { kind: 'variant', cases: [{ name: 'none', type: null }, { name: 'some', type: t.some }], flavor: 'option' };
      case 'result': return { kind: 'variant', cases: [{ name: 'ok', type: t.ok }, { name: 'err', type: t.err }], flavor: 'result' };
      case 'named': {
        const d = this.decl(t.name);
        switch (d.kind) {
          case 'alias': return this.shape(d.type);
          case 'record': return { kind: 'record', fields: d.fields, tuple: false };
          case 'variant': return { kind: 'variant', cases: d.cases, flavor: 'variant' };
          case 'enum': return { kind: 'variant', cases: d.cases.map((name) => ({ name, type: null })), flavor: 'enum' };
          case 'flags': return { kind: 'flags', flags: d.flags };
        }
      }
    }
  }

  alignment(t: TypeRef): number {
    return this.#sizeAlign(t).align;
  }

  /** CanonicalABI.md `elem_size`: the bytes one value takes in a record field or a list element. */
  size(t: TypeRef): number {
    return this.#sizeAlign(t).size;
  }

  #sizeAlign(t: TypeRef): { size: number; align: number } {
    const key = t.kind === 'named' ? t.name : null;
    const hit = key === null ? undefined : this.#memo.get(key);
    if (hit) return hit;
    const s = this.shape(t);
    let r: { size: number; align: number };
    switch (s.kind) {
      case 'prim': r = { size: PRIM_SIZE[s.name], align: PRIM_SIZE[s.name] }; break;
      case 'string': case 'list': r = { size: 8, align: 4 }; break;
      case 'flags': { const n = flagsSize(s.flags.length); r = { size: n, align: n }; break; }
      case 'record': {
        const fields = this.recordFields(s.fields);
        const align = Math.max(1, ...s.fields.map((f) => this.alignment(f.type)));
        const last = fields[fields.length - 1];
        r = { size: alignTo(last ? last.offset + this.size(last.type) : 0, align), align };
        break;
      }
      case 'variant': {
        const v = this.variant(s.cases);
        const align = Math.max(v.discriminant, this.#caseAlign(s.cases));
        const payload = Math.max(0, ...s.cases.map((c) => (c.type ? this.size(c.type) : 0)));
        r = { size: alignTo(v.payloadOffset + payload, align), align };
        break;
      }
    }
    if (key !== null) this.#memo.set(key, r);
    return r;
  }

  #caseAlign(cases: readonly Case[]): number {
    return Math.max(1, ...cases.map((c) => (c.type ? this.alignment(c.type) : 1)));
  }

  /** Offsets of a record's fields from the record's start. */
  recordFields(fields: readonly NamedField[]): FieldLayout[] {
    let at = 0;
    return fields.map((f) => {
      at = alignTo(at, this.alignment(f.type));
      const out = { name: f.name, type: f.type, offset: at };
      at += this.size(f.type);
      return out;
    });
  }

  variant(cases: readonly Case[]): VariantLayout {
    const discriminant = discriminantSize(cases.length);
    return { discriminant, payloadOffset: alignTo(discriminant, this.#caseAlign(cases)) };
  }

  /** A named type's size and alignment, for docs, C static asserts and tests. */
  describe(name: string): { size: number; align: number } {
    const t: TypeRef = { kind: 'named', name };
    return { size: this.size(t), align: this.alignment(t) };
  }
}

/** True when values of the type hold no string or list: the message is its fixed part alone. */
export function isFlat(l: Layouts, t: TypeRef): boolean {
  const s = l.shape(t);
  switch (s.kind) {
    case 'string': case 'list': return false;
    case 'record': return s.fields.every((f) => isFlat(l, f.type));
    case 'variant': return s.cases.every((c) => !c.type || isFlat(l, c.type));
    default: return true;
  }
}
