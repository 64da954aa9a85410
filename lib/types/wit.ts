/**
 * A recursive-descent parser for the subset of WIT (the WebAssembly Component Model's interface
 * language) that describes messages: records, enums, flags, variants and type aliases over the
 * integer and float types, bool, char, string, list, option, result and tuple.
 *
 * Why not a parser from npm: the Bytecode Alliance's maintained WIT parser is the Rust crate
 * `wit-parser`; in npm it reaches Node only inside `@bytecodealliance/jco`, compiled to a
 * component together with componentize-js, binaryen, rolldown and two TypeScript compilers, and
 * jco exposes WIT as a component binary or generated bindings, not as a syntax tree. This subset
 * is ~250 lines, and its errors point at line and column.
 *
 * Not supported (rejected with a message, never silently ignored): resources, handles, funcs,
 * worlds' imports and exports, `use`, fixed-size lists, recursive types.
 */
import { ringwireError } from '../errors.js';

export type PrimName = 'bool' | 's8' | 'u8' | 's16' | 'u16' | 's32' | 'u32' | 's64' | 'u64' | 'f32' | 'f64' | 'char';

export type TypeRef =
  | { readonly kind: 'prim'; readonly name: PrimName }
  | { readonly kind: 'string' }
  | { readonly kind: 'list'; readonly elem: TypeRef }
  | { readonly kind: 'option'; readonly some: TypeRef }
  | { readonly kind: 'result'; readonly ok: TypeRef | null; readonly err: TypeRef | null }
  | { readonly kind: 'tuple'; readonly items: readonly TypeRef[] }
  | { readonly kind: 'named'; readonly name: string };

export interface NamedField { readonly name: string; readonly type: TypeRef }
export interface Case { readonly name: string; readonly type: TypeRef | null }

export type TypeDecl =
  | { readonly kind: 'record'; readonly name: string; readonly fields: readonly NamedField[] }
  | { readonly kind: 'variant'; readonly name: string; readonly cases: readonly Case[] }
  | { readonly kind: 'enum'; readonly name: string; readonly cases: readonly string[] }
  | { readonly kind: 'flags'; readonly name: string; readonly flags: readonly string[] }
  | { readonly kind: 'alias'; readonly name: string; readonly type: TypeRef };

export interface WitDocument {
  readonly package: string | null;
  /** Every type, in declaration order, across the document's interfaces (names must be unique). */
  readonly types: ReadonlyMap<string, TypeDecl>;
}

/** The WIT spec caps flags at 32 labels (canonical ABI: one u8, u16 or u32). */
export const MAX_FLAGS = 32;

const PRIMS: Record<string, PrimName> = {
  bool: 'bool', s8: 's8', u8: 'u8', s16: 's16', u16: 'u16', s32: 's32', u32: 'u32', s64: 's64', u64: 'u64',
  f32: 'f32', f64: 'f64', float32: 'f32', float64: 'f64', char: 'char',
};

interface Token { readonly text: string; readonly kind: 'id' | 'punct' | 'eof'; readonly line: number; readonly col: number }

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '\n') {
      line++;
      i++;
      lineStart = i;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (src.startsWith('//', i)) {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) throw witError('unterminated block comment', line, i - lineStart + 1);
      for (let j = i; j < end; j++) if (src[j] === '\n') { line++; lineStart = j + 1; }
      i = end + 2;
    } else if (/[A-Za-z%]/.test(c)) {
      const start = i;
      i++;
      while (i < src.length && /[A-Za-z0-9-]/.test(src[i]!)) i++;
      out.push({ text: src.slice(start, i), kind: 'id', line, col: start - lineStart + 1 });
    } else if ('{}<>(),;:=@./*_'.includes(c) || c === '-' && src[i + 1] === '>') {
      const text = c === '-' ? '->' : c;
      out.push({ text, kind: 'punct', line, col: i - lineStart + 1 });
      i += text.length;
    } else if (/[0-9]/.test(c)) {
      const start = i;
      while (i < src.length && /[0-9.]/.test(src[i]!)) i++;
      out.push({ text: src.slice(start, i), kind: 'id', line, col: start - lineStart + 1 });
    } else {
      throw witError(`unexpected character ${JSON.stringify(c)}`, line, i - lineStart + 1);
    }
  }
  out.push({ text: '', kind: 'eof', line, col: i - lineStart + 1 });
  return out;
}

function witError(msg: string, line: number, col: number): Error {
  return ringwireError('ERR_INVALID_ARG', `WIT ${line}:${col}: ${msg}`);
}

const KEBAB = /^%?[a-z][a-z0-9]*(-([a-z][a-z0-9]*|[A-Z][A-Z0-9]*))*$|^%?[A-Z][A-Z0-9]*(-([a-z][a-z0-9]*|[A-Z][A-Z0-9]*))*$/;

class Parser {
  #toks: Token[];
  #pos = 0;
  readonly types = new Map<string, TypeDecl>();
  pkg: string | null = null;

  constructor(src: string) {
    this.#toks = tokenize(src);
  }

  get #tok(): Token {
    return this.#toks[this.#pos]!;
  }

  #fail(msg: string, t = this.#tok): never {
    throw witError(msg, t.line, t.col);
  }

  #eat(text: string): boolean {
    if (this.#tok.text === text && this.#tok.kind !== 'eof') {
      this.#pos++;
      return true;
    }
    return false;
  }

  #expect(text: string): void {
    if (!this.#eat(text)) this.#fail(`expected '${text}', found '${this.#tok.text || 'end of input'}'`);
  }

  /** A kebab-case identifier; a leading % (which lets a keyword be a name) is dropped. */
  #ident(what: string): string {
    const t = this.#tok;
    if (t.kind !== 'id' || !KEBAB.test(t.text)) this.#fail(`expected ${what} (a kebab-case name), found '${t.text || 'end of input'}'`);
    this.#pos++;
    return t.text.startsWith('%') ? t.text.slice(1) : t.text;
  }

  document(): WitDocument {
    if (this.#eat('package')) {
      const start = this.#pos;
      while (this.#tok.text !== ';' && this.#tok.kind !== 'eof') this.#pos++;
      this.pkg = this.#toks.slice(start, this.#pos).map((t) => t.text).join('');
      this.#expect(';');
    }
    while (this.#tok.kind !== 'eof') {
      if (this.#eat('interface')) {
        this.#ident('an interface name');
        this.#expect('{');
        while (!this.#eat('}')) this.#item();
      } else {
        this.#item();
      }
    }
    this.#checkNames();
    return { package: this.pkg, types: this.types };
  }

  #item(): void {
    const t = this.#tok;
    if (t.kind === 'eof') this.#fail("expected '}'");
    switch (t.text) {
      case 'record': return this.#record();
      case 'variant': return this.#variant();
      case 'enum': return this.#enum();
      case 'flags': return this.#flags();
      case 'type': {
        this.#pos++;
        const name = this.#ident('a type name');
        this.#expect('=');
        const type = this.#type();
        this.#expect(';');
        return this.#declare({ kind: 'alias', name, type }, t);
      }
      case 'resource': case 'use': case 'world': case 'func': case 'import': case 'export': case 'include':
        return this.#fail(`'${t.text}' is not supported in message schemas (only records, variants, enums, flags and type aliases)`);
      default:
        if (this.#toks[this.#pos + 1]?.text === ':') this.#fail(`functions ('${t.text}: func') are not supported in message schemas`);
        return this.#fail(`unexpected '${t.text || 'end of input'}'`);
    }
  }

  #declare(d: TypeDecl, at: Token): void {
    if (this.types.has(d.name)) this.#fail(`type '${d.name}' is declared twice`, at);
    this.types.set(d.name, d);
  }

  #block<T>(item: () => T): T[] {
    this.#expect('{');
    const items: T[] = [];
    while (!this.#eat('}')) {
      items.push(item());
      if (!this.#eat(',')) {
        this.#expect('}');
        break;
      }
    }
    return items;
  }

  #unique(names: readonly string[], what: string, at: Token): void {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) this.#fail(`${what} '${n}' appears twice`, at);
      seen.add(n);
    }
  }

  #record(): void {
    const at = this.#tok;
    this.#pos++;
    const name = this.#ident('a record name');
    const fields = this.#block(() => {
      const f = this.#ident('a field name');
      this.#expect(':');
      return { name: f, type: this.#type() };
    });
    this.#unique(fields.map((f) => f.name), 'field', at);
    this.#declare({ kind: 'record', name, fields }, at);
  }

  #variant(): void {
    const at = this.#tok;
    this.#pos++;
    const name = this.#ident('a variant name');
    const cases = this.#block(() => {
      const c = this.#ident('a case name');
      let type: TypeRef | null = null;
      if (this.#eat('(')) {
        type = this.#type();
        this.#expect(')');
      }
      return { name: c, type };
    });
    if (cases.length === 0) this.#fail(`variant '${name}' needs at least one case`, at);
    this.#unique(cases.map((c) => c.name), 'case', at);
    this.#declare({ kind: 'variant', name, cases }, at);
  }

  #enum(): void {
    const at = this.#tok;
    this.#pos++;
    const name = this.#ident('an enum name');
    const cases = this.#block(() => this.#ident('an enum case'));
    if (cases.length === 0) this.#fail(`enum '${name}' needs at least one case`, at);
    this.#unique(cases, 'case', at);
    this.#declare({ kind: 'enum', name, cases }, at);
  }

  #flags(): void {
    const at = this.#tok;
    this.#pos++;
    const name = this.#ident('a flags name');
    const flags = this.#block(() => this.#ident('a flag name'));
    if (flags.length > MAX_FLAGS) this.#fail(`flags '${name}' has ${flags.length} labels; the canonical ABI allows at most ${MAX_FLAGS}`, at);
    this.#unique(flags, 'flag', at);
    this.#declare({ kind: 'flags', name, flags }, at);
  }

  #type(): TypeRef {
    const t = this.#tok;
    if (t.kind !== 'id') this.#fail(`expected a type, found '${t.text || 'end of input'}'`);
    const prim = PRIMS[t.text];
    if (prim) {
      this.#pos++;
      return { kind: 'prim', name: prim };
    }
    switch (t.text) {
      case 'string':
        this.#pos++;
        return { kind: 'string' };
      case 'list': {
        this.#pos++;
        this.#expect('<');
        const elem = this.#type();
        if (this.#eat(',')) this.#fail('fixed-size lists (list<T, N>) are not supported');
        this.#expect('>');
        return { kind: 'list', elem };
      }
      case 'option': {
        this.#pos++;
        this.#expect('<');
        const some = this.#type();
        this.#expect('>');
        return { kind: 'option', some };
      }
      case 'result': {
        this.#pos++;
        if (!this.#eat('<')) return { kind: 'result', ok: null, err: null };
        const ok = this.#eat('_') ? null : this.#type();
        const err = this.#eat(',') ? this.#type() : null;
        this.#expect('>');
        return { kind: 'result', ok, err };
      }
      case 'tuple': {
        this.#pos++;
        this.#expect('<');
        const items: TypeRef[] = [];
        do items.push(this.#type()); while (this.#eat(','));
        this.#expect('>');
        return { kind: 'tuple', items };
      }
      case 'func': case 'resource':
        return this.#fail(`'${t.text}' is not supported in message schemas`);
      case 'own': case 'borrow': case 'future': case 'stream': case 'error-context':
        return this.#fail(`'${t.text}' (a handle or async type) has no meaning in shared memory`);
      default:
        return { kind: 'named', name: this.#ident('a type name') };
    }
  }

  /** Every named reference resolves, and no type contains itself (the canonical ABI has no recursive types). */
  #checkNames(): void {
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (ref: TypeRef, from: string): void => {
      switch (ref.kind) {
        case 'named': {
          const d = this.types.get(ref.name);
          if (!d) throw witError(`type '${from}' uses '${ref.name}', which is not declared`, 0, 0);
          return visitDecl(d);
        }
        case 'list': return visit(ref.elem, from);
        case 'option': return visit(ref.some, from);
        case 'result':
          if (ref.ok) visit(ref.ok, from);
          if (ref.err) visit(ref.err, from);
          return;
        case 'tuple': return ref.items.forEach((i) => visit(i, from));
        default: return;
      }
    };
    const visitDecl = (d: TypeDecl): void => {
      const s = state.get(d.name);
      if (s === 'done') return;
      if (s === 'visiting') throw witError(`type '${d.name}' contains itself; recursive types are not supported`, 0, 0);
      state.set(d.name, 'visiting');
      if (d.kind === 'record') d.fields.forEach((f) => visit(f.type, d.name));
      else if (d.kind === 'variant') d.cases.forEach((c) => c.type && visit(c.type, d.name));
      else if (d.kind === 'alias') visit(d.type, d.name);
      state.set(d.name, 'done');
    };
    for (const d of this.types.values()) visitDecl(d);
  }
}

/** Parses WIT text; throws ERR_INVALID_ARG with line and column for anything outside the subset. */
export function parseWit(src: string): WitDocument {
  if (typeof src !== 'string') throw ringwireError('ERR_INVALID_ARG', 'WIT source must be a string');
  return new Parser(src).document();
}
