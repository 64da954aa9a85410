/**
 * Typed messages (issue 16): WIT schemas laid out as the canonical ABI, read and written in place.
 * `generate(wit, {lang})` is the API behind `ringwire gen`; the runtime exports are what generated
 * TypeScript imports (as `ringwire/types`).
 */
import { ringwireError } from '../errors.js';
import { generateAs } from './codegen-as.js';
import { generateC } from './codegen-c.js';
import { generateTs, type TsOptions } from './codegen-ts.js';
import { parseWit } from './wit.js';

export * from './runtime.js';
export { parseWit, type WitDocument, type TypeDecl, type TypeRef } from './wit.js';
export { Layouts, discriminantSize, flagsSize, alignTo } from './layout.js';

export type Lang = 'ts' | 'c' | 'as';

export interface GenerateOptions extends TsOptions {
  lang: Lang;
  /** C: prefix of generated identifiers (default 'rw_'). */
  prefix?: string;
}

/** Generates accessors for every type in `witText`. */
export function generate(witText: string, opts: GenerateOptions): string {
  const doc = parseWit(witText);
  switch (opts.lang) {
    case 'ts': return generateTs(doc, opts);
    case 'c': return generateC(doc, opts);
    case 'as': return generateAs(doc);
    default: throw ringwireError('ERR_INVALID_ARG', `unknown language ${String((opts as { lang: unknown }).lang)} (ts, c or as)`);
  }
}
