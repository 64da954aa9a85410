/**
 * Every relative link in the README, docs/ and the folders' READMEs resolves: the file exists, and
 * an `#anchor` names a heading of that file (GitHub's slugs).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const SKIP = new Set(['node_modules', 'dist', 'build', '.git']);

function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...markdownFiles(p));
    else if (name.endsWith('.md')) out.push(p);
  }
  return out;
}

/** GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1]!)));
}

/** Links outside code blocks and code spans: [text](target). */
function linksOf(text: string): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

const files = markdownFiles('.');

test('the checker finds the documents and their links (it can fail)', () => {
  assert.ok(files.includes('README.md') && files.includes('docs/architecture.md'), files.join(', '));
  assert.ok(linksOf(readFileSync(join(root, 'README.md'), 'utf8')).length > 5, 'README has links');
  assert.is(slug('One message, from `send()` to the peer'), 'one-message-from-send-to-the-peer');
});

test('every relative link and anchor resolves', () => {
  const broken: string[] = [];
  for (const file of files) {
    for (const link of linksOf(readFileSync(join(root, file), 'utf8'))) {
      if (/^[a-z]+:/i.test(link)) continue; // http:, https:, mailto:
      const [path, anchor] = link.split('#') as [string, string | undefined];
      const target = path === '' ? join(root, file) : resolve(root, dirname(file), path);
      if (!existsSync(target)) {
        broken.push(`${file}: ${link} (no such file)`);
        continue;
      }
      if (anchor && target.endsWith('.md') && !anchorsOf(target).has(anchor)) {
        broken.push(`${file}: ${link} (no heading #${anchor} in ${relative(root, target)})`);
      }
    }
  }
  assert.equal(broken, [], `broken links:\n  ${broken.join('\n  ')}`);
});

test.run();
