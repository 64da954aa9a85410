/**
 * `ringwire gen <schema.wit> [--lang ts|c|as] [--out FILE] [--runtime MODULE] [--prefix P]`: writes
 * the generated accessors to FILE (or stdout). bin/ wires this command in as `gen`.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ringwireError } from '../errors.js';
import { generate, type Lang } from './index.js';

export const GEN_SUMMARY = 'generate typed-message accessors (TypeScript, C, AssemblyScript) from a WIT schema';
export const GEN_USAGE = `usage: ringwire gen <schema.wit> [--lang ts|c|as] [--out FILE] [--runtime MODULE] [--prefix P]
  --lang     ts (default): view classes and builders; c: a header on include/ringwire.h; as: AssemblyScript loads/stores
  --out      write to FILE instead of stdout
  --runtime  (ts) the module generated code imports its runtime from (default ringwire/types)
  --prefix   (c) prefix of generated identifiers (default rw_)
Layout and validation rules: docs/types.md.`;

/** Runs `ringwire gen`; resolves with the exit code. Bad arguments or schemas throw ERR_INVALID_ARG. */
export async function typesGenCommand(argv: string[], out: (s: string) => void = (s) => void process.stdout.write(s)): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { lang: { type: 'string' }, out: { type: 'string' }, runtime: { type: 'string' }, prefix: { type: 'string' }, help: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    out(`${GEN_USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw ringwireError('ERR_INVALID_ARG', `one schema file, please\n${GEN_USAGE}`);
  const lang = values.lang ?? 'ts';
  if (lang !== 'ts' && lang !== 'c' && lang !== 'as') throw ringwireError('ERR_INVALID_ARG', `--lang must be ts, c or as, got ${lang}`);
  const code = generate(readFileSync(positionals[0]!, 'utf8'), {
    lang: lang as Lang,
    ...(values.runtime ? { runtime: values.runtime } : {}),
    ...(values.prefix ? { prefix: values.prefix } : {}),
  });
  if (values.out) writeFileSync(values.out, code);
  else out(code);
  return 0;
}
