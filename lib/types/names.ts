/** Names shared by the code generators: WIT kebab-case to each language's conventions. */
import type { Layouts } from './layout.js';
import type { TypeRef } from './wit.js';

const RESERVED = new Set(['wrap', 'bind', 'toValue', 'tag', 'get', 'length', 'bytes', 'constructor', 'prototype', 'size', 'align']);

export function camel(kebab: string): string {
  const s = kebab.toLowerCase().replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  return RESERVED.has(s) ? `${s}_` : s;
}

export function pascal(kebab: string): string {
  return kebab.toLowerCase().split('-').map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join('');
}

export function snake(kebab: string): string {
  return kebab.toLowerCase().replace(/-/g, '_');
}

/**
 * A type's identity for generated code: a declared record, variant, enum or flags keeps its name
 * (aliases are followed); anonymous types get a structural name (ListU32, OptionString, ...).
 */
export function typeKey(l: Layouts, t: TypeRef): string {
  switch (t.kind) {
    case 'prim': return pascal(t.name);
    case 'string': return 'String';
    case 'list': return `List${typeKey(l, t.elem)}`;
    case 'option': return `Option${typeKey(l, t.some)}`;
    case 'result': return `Result${t.ok ? typeKey(l, t.ok) : 'Void'}${t.err ? typeKey(l, t.err) : 'Void'}`;
    case 'tuple': return `Tuple${t.items.map((i) => typeKey(l, i)).join('')}`;
    case 'named': {
      const d = l.decl(t.name);
      return d.kind === 'alias' ? typeKey(l, d.type) : pascal(d.name);
    }
  }
}
