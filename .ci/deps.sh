#!/usr/bin/env bash
# Installs what Tether needs from Debian's packages, only when missing.
#   .ci/deps.sh run    build and run the server (Node.js and npm included: the
#                      build makes the tokenizer ranks from the npm package
#                      package-lock.json locks; -DTETHER_TOKENIZER_RANKS=OFF
#                      builds without them, with estimated token counts)
#   .ci/deps.sh test   also what the tests need
set -euo pipefail

run_pkgs=(gcc make cmake pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev
          liblmdb-dev libjansson-dev libssl-dev libcurl4-openssl-dev libpcre2-dev
          libexif-dev libpq-dev poppler-utils)
test_pkgs=(libcmocka-dev lmdb-utils curl libjpeg62-turbo-dev chromium fonts-liberation
           clang clang-format libclang-rt-14-dev postgresql-15 haproxy
           iproute2 openssl util-linux)

want=("${run_pkgs[@]}")
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)
if [ "${1:-run}" = test ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing from Debian: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
