/**
 * `ringwire gen <schema.wit> [--lang ts|c|as] [--out FILE] [--runtime MODULE] [--prefix P]`: writes
 * the generated accessors to FILE (or stdout). bin/ wires this command in.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ringwireError } from '../errors.js';
import { generate, type Lang } from './index.js';

export const genUsage = 'usage: ringwire gen <schema.wit> [--lang ts|c|as] [--out FILE] [--runtime MODULE] [--prefix P]';

/** Runs `ringwire gen`; returns the exit code. */
export function typesGenCommand(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s)): number {
  let file: string | undefined;
  let lang: Lang = 'ts';
  let outFile: string | undefined;
  let runtime: string | undefined;
  let prefix: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw ringwireError('ERR_INVALID_ARG', `${a} needs a value; ${genUsage}`);
      return v;
    };
    if (a === '--lang') {
      const v = value();
      if (v !== 'ts' && v !== 'c' && v !== 'as') throw ringwireError('ERR_INVALID_ARG', `--lang must be ts, c or as, got ${v}`);
      lang = v;
    } else if (a === '--out') outFile = value();
    else if (a === '--runtime') runtime = value();
    else if (a === '--prefix') prefix = value();
    else if (a.startsWith('-')) throw ringwireError('ERR_INVALID_ARG', `unknown option ${a}; ${genUsage}`);
    else if (file === undefined) file = a;
    else throw ringwireError('ERR_INVALID_ARG', `one schema at a time; ${genUsage}`);
  }
  if (file === undefined) throw ringwireError('ERR_INVALID_ARG', genUsage);
  const code = generate(readFileSync(file, 'utf8'), { lang, ...(runtime ? { runtime } : {}), ...(prefix ? { prefix } : {}) });
  if (outFile) writeFileSync(outFile, code);
  else out(code);
  return 0;
}
