# Thin wrapper around Meson so that the README's commands work.
#   make deps   install the Debian packages the build and the tests need
#   make        build build/sluiced and build/sluice
#   make run    build, create a demo config under ./run/ and run sluiced in the foreground
#   make test   sanitizer build, unit tests, integration tests
#   make bench  side-by-side throughput against Postfix and OpenSMTPD
BUILD    ?= build
TESTDIR  ?= build-test
MESON    ?= meson

.PHONY: all deps build run test unit integration lint bench fuzz clean

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

clean:
	rm -rf $(BUILD) $(TESTDIR) build-fuzz
