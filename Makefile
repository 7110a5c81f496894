# Every target creates the virtual environment it needs; a fresh clone needs only
# `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup test test-unit fuzz lint demo up down status bench chaos schemas clean replay-demo \
        conformance conformance-steps

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Two workers, each taking whole test modules (a module shares one stack); PYTEST_ARGS
# adds options, e.g. PYTEST_ARGS="-n 0" for one process.
PYTEST_ARGS ?=
test: setup
	$(BIN)/python -m pytest -q -rs -n 2 --dist loadfile $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/python -m pytest -q -m "not integration and not e2e"

# The fuzzing of tests/e2e/fuzzing, longer: a random seed (printed; FUZZ_SEED=<seed>
# make fuzz replays a run), every coverage case, FUZZ_API_CASES drawn cases per
# service and FUZZ_MESSAGES messages.
FUZZ_API_CASES ?= 2000
FUZZ_MESSAGES  ?= 10000
fuzz: setup
	@seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "fuzzing with FUZZ_SEED=$$seed (replay: FUZZ_SEED=$$seed make fuzz)"; \
	FUZZ_SEED=$$seed FUZZ_API_CASES=$(FUZZ_API_CASES) FUZZ_MESSAGES=$(FUZZ_MESSAGES) \
	FUZZ_COVERAGE_ALL=1 $(BIN)/python -m pytest -q -rs tests/e2e/fuzzing; \
	status=$$?; echo "FUZZ_SEED=$$seed"; exit $$status

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

demo: setup
	$(BIN)/python scripts/demo.py

# The demo's recording and books (scripts/demo.py writes both), made again when any
# Python source is newer than the books: a replay of a recording made by older code
# would compare that code with this one.
DEMO_SOURCES := $(shell find services shared deploy scripts -name '*.py' 2>/dev/null)
var/demo/books.json: $(STAMP) $(DEMO_SOURCES)
	$(BIN)/python scripts/demo.py

# Replay the demo's recording into a fresh stack (identical: exit 0), then again with
# the ITL knowing no JP (ITL.REGISTRIES): the transfer to JP is refused with 1201 where
# the recording has 4006, so that replay must diverge (exit 1). Reports in var/replay/.
REPLAY_DIR := var/replay
replay-demo: setup var/demo/books.json
	@mkdir -p $(REPLAY_DIR)
	$(BIN)/kyoto-sim replay var/demo/recording.jsonl.gz --books var/demo/books.json \
	  --report $(REPLAY_DIR)/identical.html --recording-out $(REPLAY_DIR)/identical.jsonl.gz
	@status=0; $(BIN)/kyoto-sim replay var/demo/recording.jsonl.gz --books var/demo/books.json \
	  --set ITL.REGISTRIES=KZ,CH,CDM --wait-seconds 3 --report $(REPLAY_DIR)/changed.html \
	  --recording-out $(REPLAY_DIR)/changed.jsonl.gz || status=$$?; \
	if [ $$status -ne 1 ]; then echo "the changed replay should diverge (exit 1), not $$status"; exit 1; fi
	@status=0; $(BIN)/kyoto-sim diff var/demo/recording.jsonl.gz $(REPLAY_DIR)/changed.jsonl.gz \
	  --report $(REPLAY_DIR)/diff.html > $(REPLAY_DIR)/diff.txt || status=$$?; \
	if [ $$status -ne 1 ]; then echo "the diff should find the divergence (exit 1), not $$status"; exit 1; fi
	@head -12 $(REPLAY_DIR)/diff.txt
	@echo "reports: $(REPLAY_DIR)/identical.html (identical), $(REPLAY_DIR)/changed.html and $(REPLAY_DIR)/diff.html (divergent), $(REPLAY_DIR)/diff.txt"

# The conformance plan (conformance/features, README "The conformance plan"): every
# numbered scenario against a stack it starts, or against a running one with
# CONFORMANCE_STACK=var/stack/stack.json (make up); a progress bar, the verdicts and the
# time; JUnit XML and the HTML report in var/conformance/. CONFORMANCE_ARGS adds pytest
# options, e.g. CONFORMANCE_ARGS="-k H-26" for the external transfers.
# CONFORMANCE_REGISTRY=<code> puts another Party's registry, built elsewhere, through the
# plan's registry-under-test part instead (README "Put another registry through it").
CONFORMANCE_DIR      ?= var/conformance
CONFORMANCE_STACK    ?=
CONFORMANCE_ARGS     ?=
CONFORMANCE_REGISTRY ?=
conformance: setup
	@mkdir -p $(CONFORMANCE_DIR)
	@start=$$(date +%s); status=0; \
	$(BIN)/python -m pytest conformance -p no:terminal -p no:cacheprovider --plan-progress \
	  --plan-report $(CONFORMANCE_DIR) --junitxml $(CONFORMANCE_DIR)/junit.xml \
	  $(if $(CONFORMANCE_STACK),--stack $(CONFORMANCE_STACK)) \
	  $(if $(CONFORMANCE_REGISTRY),--registry-under-test $(CONFORMANCE_REGISTRY)) \
	  $(CONFORMANCE_ARGS) || status=$$?; \
	echo "make conformance took $$(( $$(date +%s) - start )) s; JUnit XML $(CONFORMANCE_DIR)/junit.xml, report $(CONFORMANCE_DIR)/report.html"; \
	exit $$status

# The step library's steps as Markdown, for the README's list
conformance-steps: setup
	$(BIN)/python -m conformance.library_doc

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
