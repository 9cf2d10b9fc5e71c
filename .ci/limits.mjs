#!/usr/bin/env node
// The size limits of our style: no C file over 800 lines, no function over 80.
// Functions are found the way clang-format (BreakBeforeBraces: Linux) lays
// them out: a body opens with "{" alone in column 0 and closes with "}" in
// column 0. Known violations waiting for their split are listed in
// .ci/limits-known.txt; the check fails on a new one, and on a listed one that
// is gone (so the list only shrinks).
//
//   node .ci/limits.mjs            check every tracked .c/.h file
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const MAX_FILE_LINES = 800;
const MAX_FUNCTION_LINES = 80;
const root = new URL('..', import.meta.url).pathname;

const files = execFileSync('git', ['ls-files', '*.c', '*.h'], { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);

function functionName(lines, open) {
  for (let i = open - 1; i >= Math.max(0, open - 6); i--) {
    const m = /([A-Za-z_][A-Za-z0-9_]*)\s*\(/.exec(lines[i]);
    if (m && !/^\s/.test(lines[i])) return m[1];
  }
  return `line ${open + 1}`;
}

function violations(path) {
  const lines = readFileSync(`${root}/${path}`, 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const found = [];
  if (lines.length > MAX_FILE_LINES) found.push(`${path}: file ${lines.length} lines`);
  let open = -1;
  lines.forEach((line, i) => {
    if (line === '{') open = i;
    else if (line.startsWith('}') && open >= 0) {
      const body = i - open + 1; // braces included
      if (body > MAX_FUNCTION_LINES) found.push(`${path}: ${functionName(lines, open)}() ${body} lines`);
      open = -1;
    }
  });
  return found;
}

const known = new Set(
  readFileSync(`${root}/.ci/limits-known.txt`, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.replace(/ \d+ lines$/, '')),
);
let failed = false;
const seen = new Set();
for (const f of files) {
  for (const v of violations(f)) {
    const key = v.replace(/ \d+ lines$/, '');
    seen.add(key);
    if (!known.has(key)) {
      console.error(`over the limit: ${v}`);
      failed = true;
    }
  }
}
for (const k of known) {
  if (!seen.has(k)) {
    console.error(`now within the limit, remove it from .ci/limits-known.txt: ${k}`);
    failed = true;
  }
}
if (failed) process.exit(1);
console.log(`limits: ${files.length} files checked, ${known.size} known violations left`);
