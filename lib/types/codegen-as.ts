/**
 * AssemblyScript generator: the same canonical ABI layout as plain loads and stores at fixed
 * offsets, for a WebAssembly module whose linear memory holds the rings. Every accessor takes the
 * message (`base`, `len`) and the address `at` of the record it reads; a corrupt field never traps
 * or reads outside the message: enum and variant tags come back as -1, strings and lists as
 * address 0, chars as -1 (the caller answers RW_ECORRUPT).
 *
 * Supported field types: the integer and float types, bool, char, enum, flags, string, list<T>,
 * nested records, and variant/option/result (tag + payload address). Names are snake_case:
 * `order_get_price(at)`, `order_set_price(at, v)`, `order_symbol(base, len, at)` (checked address),
 * `order_symbol_len(at)`, `order_set_symbol(base, at, address, len)`.
 */
import { Layouts } from './layout.js';
import { snake, typeKey } from './names.js';
import type { TypeRef, WitDocument } from './wit.js';

const AS_TYPE: Record<string, string> = {
  bool: 'u8', u8: 'u8', s8: 'i8', u16: 'u16', s16: 'i16', u32: 'u32', s32: 'i32', u64: 'u64', s64: 'i64', f32: 'f32', f64: 'f64', char: 'u32',
};

function lower(pascalKey: string): string {
  return pascalKey.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

export function generateAs(doc: WitDocument): string {
  const l = new Layouts(doc);
  const out: string[] = [];
  const tagWidth = (n: number): string => (n === 1 ? 'u8' : n === 2 ? 'u16' : 'u32');
  for (const d of doc.types.values()) {
    const t: TypeRef = { kind: 'named', name: d.name };
    const s = l.shape(t);
    const n = lower(typeKey(l, t));
    if (d.kind === 'enum') {
      out.push(...d.cases.map((c, i) => `export const ${n.toUpperCase()}_${snake(c).toUpperCase()}: i32 = ${i};`), '');
      continue;
    }
    if (d.kind === 'flags') {
      out.push(...d.flags.map((f, i) => `export const ${n.toUpperCase()}_${snake(f).toUpperCase()}: u32 = ${2 ** i >>> 0};`), '');
      continue;
    }
    if (s.kind !== 'record' || d.kind !== 'record') continue;
    out.push(`export const ${n.toUpperCase()}_SIZE: u32 = ${l.size(t)};`, `export const ${n.toUpperCase()}_ALIGN: u32 = ${l.alignment(t)};`);
    for (const f of l.recordFields(s.fields)) {
      const fn = `${n}_${snake(f.name)}`;
      const fs = l.shape(f.type);
      const o = f.offset;
      switch (fs.kind) {
        case 'prim': {
          const at = AS_TYPE[fs.name]!;
          if (fs.name === 'char') {
            out.push(`/** ${f.name}: a Unicode scalar value, or -1 when corrupt. */`, `@inline export function ${n}_get_${snake(f.name)}(at: usize): i32 { const c = load<u32>(at, ${o}); return c < 0x110000 && (c < 0xd800 || c >= 0xe000) ? <i32>c : -1; }`);
          } else {
            out.push(`@inline export function ${n}_get_${snake(f.name)}(at: usize): ${at} { return load<${at}>(at, ${o}); }`);
          }
          out.push(`@inline export function ${n}_set_${snake(f.name)}(at: usize, v: ${at}): void { store<${at}>(at, v, ${o}); }`);
          break;
        }
        case 'flags': {
          const w = tagWidth(l.size(f.type));
          out.push(`@inline export function ${n}_get_${snake(f.name)}(at: usize): u32 { return <u32>load<${w}>(at, ${o}); }`, `@inline export function ${n}_set_${snake(f.name)}(at: usize, v: u32): void { store<${w}>(at, <${w}>v, ${o}); }`);
          break;
        }
        case 'variant': {
          const v = l.variant(fs.cases);
          const w = tagWidth(v.discriminant);
          out.push(
            `/** ${f.name}: the case index, or -1 when the discriminant names no case. */`,
            `@inline export function ${n}_get_${snake(f.name)}(at: usize): i32 { const t = <u32>load<${w}>(at, ${o}); return t < ${fs.cases.length} ? <i32>t : -1; }`,
            `@inline export function ${n}_set_${snake(f.name)}(at: usize, v: i32): void { store<${w}>(at, <${w}>v, ${o}); }`,
          );
          if (fs.flavor !== 'enum') out.push(`@inline export function ${n}_${snake(f.name)}_payload(at: usize): usize { return at + ${o + v.payloadOffset}; }`);
          break;
        }
        case 'record':
          out.push(`@inline export function ${fn}(at: usize): usize { return at + ${o}; }`);
          break;
        case 'string': case 'list': {
          const es = fs.kind === 'string' ? 1 : l.size(fs.elem);
          const ea = fs.kind === 'string' ? 1 : l.alignment(fs.elem);
          const check = fs.kind === 'string' ? ` && rw_utf8_valid(base + p, n)` : '';
          out.push(
            `/** ${f.name}: the address of its ${fs.kind === 'string' ? 'UTF-8 bytes' : 'elements'}, or 0 when it leaves the message${fs.kind === 'string' ? ' or is not UTF-8' : ' or is misaligned'}. */`,
            `export function ${fn}(base: usize, len: u32, at: usize): usize {`,
            `  const p = load<u32>(at, ${o});`,
            `  const n = load<u32>(at, ${o + 4});`,
            `  return <u64>p + <u64>n * ${es} <= <u64>len && (p & ${ea - 1}) == 0${check} ? base + p : 0;`,
            '}',
            `@inline export function ${fn}_len(at: usize): u32 { return load<u32>(at, ${o + 4}); }`,
            `/** Points ${f.name} at \`n\` ${fs.kind === 'string' ? 'bytes' : 'elements'} at address \`p\` inside the message at \`base\`. */`,
            `@inline export function ${n}_set_${snake(f.name)}(base: usize, at: usize, p: usize, n: u32): void { store<u32>(at, <u32>(p - base), ${o}); store<u32>(at, n, ${o + 4}); }`,
          );
          break;
        }
      }
    }
    out.push('');
  }
  return [
    `// Generated by ringwire gen --lang as from WIT${doc.package ? ` (package ${doc.package})` : ''}. Do not edit.`,
    '// Layout: the canonical ABI, pointers relative to the message start (docs/types.md).',
    '',
    '/** Strict UTF-8 (no overlong forms, surrogates, > U+10FFFF or truncation). */',
    'export function rw_utf8_valid(p: usize, n: u32): bool {',
    '  let i: u32 = 0;',
    '  while (i < n) {',
    '    const b = <u32>load<u8>(p + i);',
    '    if (b < 0x80) { i++; continue; }',
    '    let need: u32, cp: u32, min: u32;',
    '    if (b >= 0xc2 && b <= 0xdf) { need = 1; cp = b & 0x1f; min = 0x80; }',
    '    else if (b >= 0xe0 && b <= 0xef) { need = 2; cp = b & 0x0f; min = 0x800; }',
    '    else if (b >= 0xf0 && b <= 0xf4) { need = 3; cp = b & 0x07; min = 0x10000; }',
    '    else return false;',
    '    if (n - i <= need) return false;',
    '    for (let k: u32 = 1; k <= need; k++) {',
    '      const c = <u32>load<u8>(p + i + k);',
    '      if ((c & 0xc0) != 0x80) return false;',
    '      cp = (cp << 6) | (c & 0x3f);',
    '    }',
    '    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return false;',
    '    i += need + 1;',
    '  }',
    '  return true;',
    '}',
    '',
    ...out,
  ].join('\n');
}
