// Imported FIRST by every fault test (before ../integration/harness.mjs, which
// reads TETHER_BIN when it is evaluated): the fault suite runs against the
// ASan+UBSan build unless TETHER_BIN says otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
if (!process.env.TETHER_BIN) {
  const asan = path.join(repo, 'build-asan', 'tether');
  process.env.TETHER_BIN = fs.existsSync(asan) ? asan : path.join(repo, 'build', 'tether');
}
// Inherited by every server the harness spawns (it only strips TETHER_*).
process.env.ASAN_OPTIONS ??= 'detect_leaks=1:abort_on_error=1';
process.env.UBSAN_OPTIONS ??= 'print_stacktrace=1';
