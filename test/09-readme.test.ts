/**
 * The README's examples are promises: extract every ```js block, point its `ringwire` imports at
 * this build (and other packages at this checkout's node_modules), run it in a child process, and
 * check what it prints.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeTempDir } from './helpers/index.js';

const root = new URL('../../', import.meta.url);
const readme = readFileSync(new URL('README.md', root), 'utf8');
const entry = pathToFileURL(join(new URL('dist/lib/index.js', root).pathname)).href;
const agentEntry = pathToFileURL(join(new URL('dist/lib/agent/index.js', root).pathname)).href;
const httpEntry = pathToFileURL(join(new URL('dist/lib/http/index.js', root).pathname)).href;

/** Points the example's imports at this build and at the packages this checkout installed. */
function localize(code: string): string {
  return code
    .replaceAll("'ringwire'", `'${entry}'`)
    .replaceAll("'ringwire/agent'", `'${agentEntry}'`)
    .replaceAll("'ringwire/http'", `'${httpEntry}'`)
    .replace(/from '([a-z@][^':]*)'/g, (m, name: string) => (name.startsWith('node:') ? m : `from '${import.meta.resolve(name)}'`));
}
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** What each example must print, in order of the blocks. */
const expected: RegExp[][] = [
  [/^7 hello, ring$/m, /^record 0 1$/m],
  [/^doubled \[ 2, 4, 6 \]$/m, /messages: 2/],
  [/^peer is this process$/m, /^message fire and forget$/m, /^reply HELLO$/m, /^2 messages sent$/m],
  [/^hi \/over-ringwire$/m],
  [/^invoice for order 42$/m, /^order 43 accepted$/m, /^identity spiffe:\/\/cluster.local\/ns\/shop\/sa\/app$/m],
  [/^\{ id: '42' \}$/m, /^\{ hello: 'world' \}$/m],
];

function run(file: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

test('the README has the examples this test knows about', () => {
  assert.is(blocks.length, expected.length, 'a README example was added or removed: update expected');
});

blocks.forEach((code, i) => {
  test(`README example ${i + 1} runs and prints what it says`, async () => {
    const tmp = makeTempDir();
    try {
      const file = join(tmp.dir, `example-${i + 1}.mjs`);
      writeFileSync(file, localize(code));
      const { code: exit, out } = await run(file);
      assert.is(exit, 0, out);
      for (const re of expected[i] ?? []) assert.match(out, re);
    } finally {
      tmp.cleanup();
    }
  });
});

test.run();
