# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench fuzz build clean services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# Re-install when the project definition or a Cython source changes.
$(STAMP): $(BIN)/python pyproject.toml setup.py $(wildcard clarin/_speedups/*.pyx)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $(STAMP)

build: $(STAMP)

run: $(STAMP)
	$(BIN)/clarin serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check clarin tests bench

# Benchmark + regression gate (not part of `make test`): micro-benchmarks, EXPLAIN check of the hot queries,
# load test on the seeded `clarin_bench` database (created and seeded on first use, ~2-3 min), then the gate
# against bench/baseline.json. Knobs: BENCH_WORKERS, BENCH_DURATION, BENCH_CONCURRENCY, ... (bench/load.py).
bench: $(STAMP)
	$(BIN)/python -m bench.gate

# Longer schemathesis run (not part of `make test`): tests/test_fuzz.py against its own test server with
# FUZZ_MAX_EXAMPLES requests per operation (default 200; `make test` uses 10) and longer stateful walks.
# FUZZ_SEED changes the (otherwise fixed) generation seed.
FUZZ_MAX_EXAMPLES ?= 200
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) FUZZ_STATEFUL_EXAMPLES=$${FUZZ_STATEFUL_EXAMPLES:-150} \
	FUZZ_STATEFUL_STEPS=$${FUZZ_STATEFUL_STEPS:-15} $(BIN)/python -m pytest -q -o timeout=3600 tests/test_fuzz.py

services:
	bash .ci/services.sh

clean:
	rm -rf $(VENV) build *.egg-info clarin/_speedups/*.c clarin/_speedups/*.so
