#!/usr/bin/env bash
# Style checks that need no build: C formatting (clang-format, .clang-format),
# the size limits (.ci/limits.mjs), and ESLint and Prettier for the JavaScript
# of the page and the tests. Part of `make test`; `make lint` alone.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t c_files < <(git ls-files '*.c' '*.h')
clang-format --dry-run -Werror "${c_files[@]}"
echo "clang-format: ${#c_files[@]} files formatted"
node .ci/limits.mjs
npx --no-install eslint .
echo "eslint: clean"
npx --no-install prettier --check --log-level warn 'web/**/*.{js,mjs}' 'tests/**/*.{js,mjs}' 'agents/**/*.mjs' '.ci/*.mjs' '*.js'
echo "prettier: clean"
