# Every target creates the virtual environment it needs; a fresh clone needs only
# `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup test test-unit lint demo up down status bench chaos schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -rs

test-unit: setup
	$(BIN)/python -m pytest -q -m "not integration and not e2e"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: setup
	$(BIN)/python scripts/demo.py

up: setup
	$(BIN)/python -m deploy.local up

down: setup
	$(BIN)/python -m deploy.local down

status: setup
	$(BIN)/python -m deploy.local status

bench: setup
	$(BIN)/python -m bench.run

# The chaos run (docs/adr/0021): its size by CHAOS_ARGS, e.g. CHAOS_ARGS="--transfers 300
# --kills 10"; the report in bench/results/chaos.json and chaos.md.
CHAOS_ARGS ?=
chaos: setup
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

schemas: setup
	$(BIN)/python -m shared.contracts.snapshot

clean: down
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
