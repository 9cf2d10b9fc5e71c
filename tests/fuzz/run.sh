#!/usr/bin/env bash
# Build the libFuzzer targets in build-fuzz/ and run each for N seconds
# (default 20) on a copy of its checked-in corpus. Exits non-zero when any
# target crashes, leaks or breaks an invariant; the input that did it is kept
# in build-fuzz/artifacts/<target>/. See tests/fuzz/README.md.
#
#   tests/fuzz/run.sh [seconds_per_target]
#   TARGETS="fuzz_sse" tests/fuzz/run.sh 60     # just one target
set -euo pipefail

secs="${1:-20}"
case "$secs" in
'' | *[!0-9]*)
    echo "usage: $0 [seconds_per_target]" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/build-fuzz"
targets="${TARGETS:-fuzz_sse fuzz_frame fuzz_jwt fuzz_provider fuzz_config fuzz_eventstream fuzz_limits fuzz_extract}"

# clang and its libFuzzer runtime: install them when a trivial fuzzer will not link.
can_fuzz() {
    command -v clang >/dev/null 2>&1 || return 1
    local t
    t="$(mktemp -d)"
    echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' \
        >"$t/probe.c"
    clang -fsanitize=fuzzer,address,undefined "$t/probe.c" -o "$t/probe" >/dev/null 2>&1
    local rc=$?
    rm -rf "$t"
    return $rc
}
if ! can_fuzz; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "== installing clang and libclang-rt-14-dev"
    $sudo apt-get update
    $sudo apt-get install -y clang libclang-rt-14-dev
    can_fuzz || {
        echo "clang still cannot link a libFuzzer target" >&2
        exit 1
    }
fi

echo "== building in $build"
CC=clang cmake -S "$root/tests/fuzz" -B "$build" -DTETHER_FUZZ=ON -DTETHER_TESTS=OFF -DTETHER_WERROR="${TETHER_WERROR:-ON}" >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=""
summary=""
for t in $targets; do
    echo "== $t: ${secs}s"
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    # A copy, so what the fuzzer finds does not land in the checked-in corpus.
    cp -R "$root/tests/fuzz/corpus/$t/." "$work/$t/corpus/"
    set +e
    "$build/$t" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$work/$t/artifacts/" "$work/$t/corpus" >"$work/$t/log" 2>&1
    rc=$?
    set -e
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log")"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$t/log")"
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$work/$t/log" | tail -n 1 || true)"
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$work/$t/log"
        mkdir -p "$build/artifacts/$t"
        cp "$work/$t/artifacts/"* "$build/artifacts/$t/" 2>/dev/null || true
        cp "$work/$t/log" "$build/artifacts/$t/log"
        echo "!! $t failed (exit $rc); input and log kept in $build/artifacts/$t/"
        failed="$failed $t"
        summary="$summary$t: FAILED, ${execs:-?} execs, ${speed:-?} exec/s, $cov"$'\n'
    else
        summary="$summary$t: ok, ${execs:-?} execs, ${speed:-?} exec/s, $cov"$'\n'
    fi
done

echo "== summary"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "failed:$failed" >&2
    exit 1
fi
