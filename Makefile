# Two commands for a fresh machine: `make demo` and `make test`. Each creates .venv,
# installs what it needs (services included) and runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
PYTEST_ARGS ?=
# `make reliability` runs the reliability suite this many times longer than `make test` does.
RELIABILITY_SCALE ?= 10

.PHONY: test check lint typecheck docs demo bench services reliability compat-oldest clean mutate

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

MUTATE_STAMP := $(VENV)/.installed-mutate
# `make mutate`: mutation testing of the sans-IO cores ([tool.mutmut] in pyproject.toml,
# docs/development.md). MUTATE_JOBS workers; the whole run is stopped after MUTATE_LIMIT
# (mutants not reached by then count as survivors in the report).
MUTATE_JOBS ?= 2
MUTATE_LIMIT ?= 30m
MUTATE_ARGS ?=

$(MUTATE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[mutate]'
	@touch $@

mutate: $(MUTATE_STAMP) services
	rm -rf mutants
	HYPOTHESIS_PROFILE=derandomized timeout $(MUTATE_LIMIT) \
		$(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(MUTATE_ARGS) || test $$? = 124
	$(BIN)/python scripts/mutation_report.py

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	@touch $@

services:
	@scripts/install-services.sh

test: $(STAMP) services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The compatibility matrix again, in a second venv holding the oldest versions pyproject
# allows (every ">=" bound pinned by scripts/lower-bounds.py).
OLDEST := .venv-oldest
compat-oldest: services
	@test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(PYTHON) scripts/lower-bounds.py > $(OLDEST)/constraints.txt
	$(OLDEST)/bin/python -m pip install -q --upgrade pip
	$(OLDEST)/bin/python -m pip install -q -c $(OLDEST)/constraints.txt -e '.[test]'
	$(OLDEST)/bin/python -m pytest -p no:cacheprovider tests/middleware/test_matrix.py tests/telemetry/test_sampling.py $(PYTEST_ARGS)

reliability: $(STAMP) services
	RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(BIN)/python -m pytest -m reliability \
		-o timeout=3600 tests/reliability $(PYTEST_ARGS)

check: lint typecheck docs

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BENCH_STAMP)
	$(BIN)/mypy

demo: $(STAMP)
	$(BIN)/buttress demo $(DEMO_ARGS)

# `make bench BENCH_ARGS=e2e` runs one benchmark; `BENCH_ARGS="e2e --quick"` a smoke run.
bench: $(BENCH_STAMP)
	@scripts/install-bench-tools.sh
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OLDEST) .mypy_cache .pytest_cache .ruff_cache build dist mutants
