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

.PHONY: test check lint typecheck docs demo bench services reliability compat-oldest clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

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
	$(OLDEST)/bin/python -m pytest -p no:cacheprovider tests/middleware/test_matrix.py $(PYTEST_ARGS)

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

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OLDEST) .mypy_cache .pytest_cache .ruff_cache build dist
