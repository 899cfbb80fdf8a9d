# Two entry points for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := demo-output
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint install install-dev benchmark leaderboards fakescope-demo clean

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
	$(BIN)/harness leaderboard $(DEMO)/results --significance -o $(DEMO)/leaderboard.md
	@cat $(DEMO)/leaderboard.md
	$(BIN)/harness compare $(DEMO)/results/fredect-*/aigi-mini $(DEMO)/results/format-shortcut-*/aigi-mini

## test: install everything the tests need, run the suite
test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: the suite without the tests marked slow (training, end-to-end runs; about two minutes on 2 cores)
test-fast: install-dev
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## lint: ruff (pyflakes, pycodestyle, import order, bugbear, pyupgrade, simplify, complexity <= 15; formatting) and mypy on harness, plugins, tasks and trainers, as in pyproject.toml
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## leaderboards: the published aigi-mini boards (leaderboards/*.md, *.png) from a fresh real run
RUNS := leaderboards/runs
leaderboards: install-dev
	$(BIN)/harness train fredect --task aigi-mini --out $(RUNS)/checkpoints/fredect --quiet
	$(BIN)/harness train format-shortcut --task aigi-mini --out $(RUNS)/checkpoints/format-shortcut --quiet
	$(BIN)/harness train cnnspot --task aigi-mini --out $(RUNS)/checkpoints/cnnspot --quiet \
		--args arch=resnet18,crop=64,resize=none,lr=0.001,max_epochs=8,batch_size=32
	for m in fredect format-shortcut cnnspot; do \
		$(BIN)/harness run --model $$m --model-args checkpoint=$(RUNS)/checkpoints/$$m --tasks aigi-mini \
			--output-dir $(RUNS)/results --quiet || exit 1; done
	for b in aigi-mini-detection aigi-mini-generators; do \
		$(BIN)/harness leaderboard --board leaderboards/$$b.yaml --results $(RUNS)/results -o leaderboards/$$b.md \
			|| exit 1; done

## board-screenshots: the published boards and the paper layouts as GitHub shows them, photographed by headless Chromium (apt-get install chromium) into leaderboards/screenshots/: look at them when a board or the board code changes
board-screenshots: install-dev
	mkdir -p $(RUNS)/empty $(RUNS)/paper
	for t in iii iv v vi; do $(BIN)/harness leaderboard $(RUNS)/empty --board leaderboards/paper-table-$$t.yaml \
		-o $(RUNS)/paper/paper-table-$$t.md || exit 1; done
	$(BIN)/python leaderboards/screenshots.py leaderboards/aigi-mini-*.md $(RUNS)/paper/*.md --out leaderboards/screenshots

## fakescope-demo: tiny FakeScope instruction-tuned with DeepSpeed ZeRO-2 on the CPU, evaluated (a few minutes)
fakescope-demo: install-dev
	$(BIN)/python -m harness.trainers.fakescope_demo --out $(DEMO)/fakescope

## benchmark: the runner's cost per sample against a plain loop, 1k-64k samples (~10 min), written to
## benchmarks/results/local/ (untracked); `make benchmark RECORD=1` replaces the recorded results/runner-cpu.json
BENCH_OUT := $(if $(RECORD),benchmarks/results/runner-cpu.json,benchmarks/results/local/runner-cpu.json)
benchmark: install
	@mkdir -p benchmarks/results/local
	$(BIN)/python benchmarks/runner_throughput.py --output $(BENCH_OUT)
	@echo "written to $(BENCH_OUT)$(if $(RECORD),, (make benchmark RECORD=1 records it in benchmarks/results/))"

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
