# Two entry points for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-output
PYTEST_ARGS ?=

.PHONY: demo test install install-dev benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(VENV)/.core-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.core-installed

install: $(VENV)/.core-installed
install-dev: $(VENV)/.dev-installed

## demo: build aigi-mini, train fredect and the format-shortcut auditor, evaluate both, write the leaderboard
demo: install
	$(BIN)/harness train fredect --task aigi-mini --out $(DEMO)/checkpoints/fredect
	$(BIN)/harness train format-shortcut --task aigi-mini --out $(DEMO)/checkpoints/format-shortcut
	$(BIN)/harness run --model fredect --model-args checkpoint=$(DEMO)/checkpoints/fredect \
		--tasks aigi-mini --output-dir $(DEMO)/results
	$(BIN)/harness run --model format-shortcut --model-args checkpoint=$(DEMO)/checkpoints/format-shortcut \
		--tasks aigi-mini --output-dir $(DEMO)/results
	$(BIN)/harness leaderboard $(DEMO)/results -o $(DEMO)/leaderboard.md
	@cat $(DEMO)/leaderboard.md

## test: install everything the tests need, run the suite
test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## benchmark: runner throughput on this machine, recorded in benchmarks/results/
benchmark: install
	$(BIN)/python benchmarks/runner_throughput.py --n 10000 --output benchmarks/results/runner-cpu.json

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
