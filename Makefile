# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLARIN_DATA_DIR ?= .clarin-data

# One stamp per dependency set: `make run` installs the runtime only; `make test` / `make bench` add their
# extras on top (so `make test` after `make run` adds the extras, `make run` after `make test` does nothing).
RUN_STAMP   := $(VENV)/.installed-run
TEST_STAMP  := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

# Quiet by default: a first start shows a few progress lines, not hundreds of pip and compiler lines.
# LOG_LEVEL=DEBUG shows every command and all of pip's and the compiler's output.
ifeq ($(LOG_LEVEL),DEBUG)
Q :=
PIP_QUIET :=
else
Q := @
PIP_QUIET := -qq
endif
# --no-compile: pip byte-compiles every file of every package (half of the install time); Python compiles
# the modules actually imported on first use instead.
PIP := $(BIN)/python -m pip install $(PIP_QUIET) --no-compile --disable-pip-version-check
say = @printf '==> %s\n' $(1)

.PHONY: run test lint bench bench-growth fuzz build clean distclean stop services

$(BIN)/python:
	$(call say,"creating the virtualenv $(VENV)")
	$(Q)$(PYTHON) -m venv $(VENV)

# Re-install when the project definition or a Cython source changes. The build tools live in the venv
# (here, not at venv creation, so a venv made by hand or by an older Makefile gets them too): the project
# is installed without build isolation, which would install them into a throw-away environment on every
# install. The editable install builds no extension (CLARIN_NO_CYTHON=1); build_ext compiles them once,
# in place, both at a time.
$(RUN_STAMP): $(BIN)/python pyproject.toml setup.py $(wildcard clarin/_speedups/*.pyx)
	$(call say,"installing the runtime dependencies (about 20 s the first time)")
	$(Q)$(PIP) 'setuptools>=68' wheel 'Cython>=3.0'
	$(Q)CLARIN_NO_CYTHON=1 $(PIP) --no-build-isolation -e .
	$(call say,"compiling the Cython speed-ups")
	$(Q)$(BIN)/python setup.py $(if $(Q),--quiet) build_ext --inplace --parallel 2
	@touch $@

# An extra's own requirements, not `-e .[test]`: that would rebuild and re-install the project itself.
$(VENV)/.installed-%: $(RUN_STAMP)
	$(call say,"installing the $* extras")
	$(Q)$(BIN)/python -c 'import sys, tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][sys.argv[1]]))' $* > $(VENV)/requirements-$*.txt
	$(Q)$(PIP) -r $(VENV)/requirements-$*.txt
	@touch $@

build: $(RUN_STAMP)

run: $(RUN_STAMP)
	@$(BIN)/clarin serve

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check clarin tests bench

# Benchmark + regression gate (not part of `make test`): micro-benchmarks, EXPLAIN check of the hot queries,
# three load profiles on the seeded `clarin_bench` database (created and seeded on first use, ~2-3 min) —
# cached, uncached (PAGE_CACHE_TTL=0) and busy_account — then the gate against bench/baseline.json.
# About 10 min on the 2-core project machine. Knobs: BENCH_WORKERS, BENCH_DURATION, BENCH_CONCURRENCY, ...
# (bench/load.py); `python -m bench.gate --profiles cached,busy_account` runs a subset.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.gate

# Growth profile (issue 17, not part of `make test`): every dashboard read at 10k and at 1M leads (databases
# clarin_bench_g01 / clarin_bench_g10, seeded on first use), PostgreSQL blocks per request and p95, page cache
# off; fails when 1M costs more than 3x the blocks of 10k or p95 > 50 ms. See bench/growth.py.
bench-growth: $(BENCH_STAMP)
	$(BIN)/python -m bench.growth

# Longer schemathesis run (not part of `make test`): tests/test_fuzz.py against its own test server with
# FUZZ_MAX_EXAMPLES requests per operation (default 200; `make test` uses 10) and longer stateful walks.
# FUZZ_SEED changes the (otherwise fixed) generation seed.
FUZZ_MAX_EXAMPLES ?= 200
fuzz: $(TEST_STAMP)
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_STATEFUL_EXAMPLES=$${FUZZ_STATEFUL_EXAMPLES:-150} \
	FUZZ_STATEFUL_STEPS=$${FUZZ_STATEFUL_STEPS:-15} $(BIN)/python -m pytest -q -o timeout=3600 tests/test_fuzz.py

services:
	bash .ci/services.sh

# The embedded PostgreSQL of this checkout's CLARIN_DATA_DIR, if one is still running (`clarin serve` stops
# it on exit unless CLARIN_KEEP_DB=1; a killed server leaves it). Standard library only: works without .venv.
stop:
	@$(PYTHON) -m clarin.db.embedded stop '$(CLARIN_DATA_DIR)'

# Stops the embedded PostgreSQL first: its binaries live in .venv.
clean: stop
	rm -rf $(VENV) build *.egg-info clarin/_speedups/*.c clarin/_speedups/*.so
	@if [ -e '$(CLARIN_DATA_DIR)' ]; then echo "kept $(CLARIN_DATA_DIR) (embedded database, media, WhatsApp sessions, dev JWT secret): \`make distclean\` removes it"; fi

# Also deletes the data: asks first, or `make distclean CONFIRM=yes`.
distclean: clean
	@if [ ! -e '$(CLARIN_DATA_DIR)' ]; then exit 0; fi; \
	if [ "$(CONFIRM)" != yes ]; then \
	  if [ -t 0 ]; then printf 'delete %s (database, media, WhatsApp sessions)? [y/N] ' '$(CLARIN_DATA_DIR)'; read -r answer; \
	  else answer=; fi; \
	  case "$$answer" in y|Y|yes) ;; *) echo "kept $(CLARIN_DATA_DIR) (make distclean CONFIRM=yes deletes it without asking)"; exit 1;; esac; \
	fi; \
	rm -rf '$(CLARIN_DATA_DIR)' && echo "deleted $(CLARIN_DATA_DIR)"
