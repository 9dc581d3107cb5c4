# Thin wrapper around Meson so that the README's commands work.
#   make deps   install the Debian packages the build and the tests need
#   make        build build/sluiced and build/sluice
#   make run    build, create a demo config under ./run/ and run sluiced in the foreground
#   make test   sanitizer build, unit tests, integration tests
#   make bench  side-by-side throughput against Postfix and OpenSMTPD, and with a milter
#   make fuzz-run  every libFuzzer target for a bounded time (CI)
BUILD    ?= build
TESTDIR  ?= build-test
MESON    ?= meson

.PHONY: all deps build run test unit integration lint bench fuzz fuzz-run clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: deps build
	@sh scripts/run-demo.sh $(BUILD)

$(TESTDIR)/build.ninja:
	$(MESON) setup $(TESTDIR) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

test: deps lint $(TESTDIR)/build.ninja
	ninja -C $(TESTDIR)
	$(MAKE) unit integration BUILD=$(TESTDIR)

unit:
	$(MESON) test -C $(BUILD) --print-errorlogs

integration:
	SLUICE_BUILD=$(abspath $(BUILD)) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    /usr/bin/python3 -m pytest -q tests/integration

lint:
	@sh scripts/lint.sh

bench: deps build
	@sh bench/run.sh $(BUILD)

fuzz:
	CC=clang $(MESON) setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false || true
	ninja -C build-fuzz

# Each target FUZZ_TIME seconds (fuzz_dissect FUZZ_TIME_DISSECT), starting
# from a copy of its corpus so the tree is not written to; a crash fails
# the run and leaves its input and log in the scratch directory.
FUZZ_TIME ?= 15
FUZZ_TIME_DISSECT ?= 60
fuzz-run: fuzz
	@scratch=$$(mktemp -d /tmp/sluice-fuzz.XXXXXX); \
	for t in build-fuzz/tests/fuzz/fuzz_*; do \
		[ -x "$$t" ] && [ -f "$$t" ] || continue; \
		n=$${t##*/fuzz_}; w=$$scratch/$$n; mkdir -p $$w/corpus; \
		for c in tests/fuzz/corpus/$$n tests/unit/golden/$$n; do \
			[ -d $$c ] && cp $$c/* $$w/corpus/ 2>/dev/null || true; \
		done; \
		s=$(FUZZ_TIME); [ $$n = dissect ] && s=$(FUZZ_TIME_DISSECT); \
		echo "fuzz: fuzz_$$n for $${s}s"; \
		(cd $$w && $(CURDIR)/$$t -max_total_time=$$s -timeout=10 \
		    -rss_limit_mb=2048 corpus > log 2>&1) || \
		{ tail -40 $$w/log; echo "fuzz: fuzz_$$n failed, see $$w"; \
		  exit 1; }; \
	done; rm -rf $$scratch; echo "fuzz: ok"

clean:
	rm -rf $(BUILD) $(TESTDIR) build-fuzz
