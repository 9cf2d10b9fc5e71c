# Tether's front door. The README's two commands:
#   make run    install what is missing, build, serve on http://127.0.0.1:8080
#   make test   install what is missing, build, run every test (unit, sanitizers, integration)
JOBS ?= $(shell nproc)

.PHONY: run test deps deps-test build build-debug build-asan build-release-tests build-clang \
	unit unit-asan unit-release unit-clang lint integration browser faults fake-provider \
	fuzz-smoke fuzz bench bench-smoke clean

# Warnings are errors in every build the tests make (a user's `make run` is spared).
WERROR = -DTETHER_WERROR=ON

# The binary finds the page, prompts and tokenizer ranks itself (server/paths.h).
run: deps build
	./build/tether --data-dir ./data $(ARGS)

test: deps-test lint build unit unit-asan unit-release unit-clang integration browser faults \
	fake-provider fuzz-smoke bench-smoke
	@echo "all test suites passed"

deps:
	@.ci/deps.sh run

deps-test:
	@.ci/deps.sh test

# Every build makes the tokenizer ranks from the locked npm package
# (agents/llm/tokenizer_ranks.mjs), hence npm ci first.
build: deps node_modules/.package-lock.json
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_TESTS=OFF >/dev/null
	cmake --build build -j$(JOBS)

build-debug: node_modules/.package-lock.json
	cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug $(WERROR) >/dev/null
	cmake --build build-debug -j$(JOBS)

build-asan: node_modules/.package-lock.json
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTETHER_SANITIZE=ON $(WERROR) >/dev/null
	cmake --build build-asan -j$(JOBS)

# The optimiser finds warnings a Debug build does not (GCC's -Wdangling-pointer,
# -Wmaybe-uninitialized), and clang warns where GCC does not: both build the
# tests too, and run them.
build-release-tests: node_modules/.package-lock.json
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release $(WERROR) >/dev/null
	cmake --build build-release -j$(JOBS)

build-clang: node_modules/.package-lock.json
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR) >/dev/null
	cmake --build build-clang -j$(JOBS)

unit: build-debug node_modules/.package-lock.json
	cd build-debug && ctest --output-on-failure

unit-asan: build-asan node_modules/.package-lock.json
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure

unit-release: build-release-tests node_modules/.package-lock.json
	cd build-release && ctest --output-on-failure

unit-clang: build-clang node_modules/.package-lock.json
	cd build-clang && ctest --output-on-failure

# Formatting and the size limits of STYLE (files <= 800 lines, functions <= 80).
lint: node_modules/.package-lock.json
	.ci/lint.sh

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The real binary over real sockets, built with ASan + UBSan: a leak or any
# undefined behaviour fails the run (a server must exit 0 on SIGTERM).
integration: build-asan build-debug node_modules/.package-lock.json
	TETHER_BIN=$(CURDIR)/build-asan/tether ASAN_OPTIONS=detect_leaks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  node --test --test-concurrency=1 tests/integration/

# The web UI and the JS client in real Chromium (Debian's), driven by playwright-core.
browser: build-debug node_modules/.package-lock.json
	TETHER_BIN=$(CURDIR)/build-debug/tether node --test --test-concurrency=1 tests/browser/

# Crash loops, provider faults under load, slow clients, hostile inputs and a
# leak check, against the AddressSanitizer + UBSan build (tests/faults/).
faults: build-asan node_modules/.package-lock.json
	node --test --test-concurrency=1 tests/faults/

fake-provider: node_modules/.package-lock.json
	node --test tests/fake-provider/

# libFuzzer targets (clang): a short run in the test command, a long one on demand.
fuzz-smoke:
	tests/fuzz/run.sh 10

fuzz:
	tests/fuzz/run.sh $(or $(SECONDS_PER_TARGET),300)

# Benchmarks are not tests: each prints JSON figures (see tests/bench/README.md).
bench: build build-debug node_modules/.package-lock.json
	node tests/bench/run.mjs

# build-debug: photos.mjs makes its library with tests/unit/make_photo_library.
bench-smoke: build build-debug node_modules/.package-lock.json
	node tests/bench/run.mjs --smoke

clean:
	rm -rf build build-debug build-asan build-release build-clang build-fuzz
