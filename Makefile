# Two commands set up everything: `make run` and `make test`.
# Both create .venv if needed, install the CPU torch wheel first (a plain `torch`
# requirement would pull a multi-GB CUDA build), then the project with its extras.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KEDRO := $(VENV)/bin/kedro
TORCH_WHEEL := torch==2.13.0

export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test test-fast lint bench viz e2e clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_WHEEL)
	$(PY) -m pip install -q -e ".[test,bench,scale]"
	@touch $@

install: $(VENV)/.installed

run: install
	$(KEDRO) run --pipelines full_cycle

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache  # the layer contracts of pyproject.toml, docs/architecture.md

# Speed, measured against a peer in the same run; env and training figures go to docs/benchmarks.md.
bench: install
	$(PY) benchmarks/bench_env.py
	$(PY) benchmarks/bench_training.py --write  # ours vs stable-baselines3 like for like, docs/benchmarks.md
	$(PY) benchmarks/bench_paper.py
	$(PY) benchmarks/bench_paper_loop.py  # the N = 1 paper-account bar loop alone, bars/s (docs/paper_trading.md)
	$(PY) benchmarks/bench_cli.py --write      # start-up of kedro --help / models list / paper status vs python and import torch, docs/benchmarks.md
	$(PY) benchmarks/bench_markets.py --write   # planted-market figures, docs/markets.md
	$(PY) benchmarks/bench_learning.py --write  # learning power on the planted suite, docs/learning.md
	$(PY) benchmarks/bench_walk_forward.py --write  # walk-forward wall time and figures, docs/walk_forward.md
	$(PY) benchmarks/bench_compute.py --write  # per-job overhead of the compute backends, docs/scaling.md
	$(PY) benchmarks/bench_tracking.py --write # MLflow tracking on vs off on the default full_cycle, docs/tracking.md
	$(PY) benchmarks/bench_portfolio_env.py    # portfolio env steps/s at N=20, B=1024 vs the single-asset core, docs/benchmarks.md
	$(PY) benchmarks/bench_portfolio_agents.py # portfolio PPO training on the 20 stocks vs single-asset PPO, docs/benchmarks.md

viz: install
	$(KEDRO) viz run

# Newcomer path on a fresh clone of HEAD: make run, README registry/paper commands, artifact and report checks.
e2e:
	bash tests/e2e/newcomer.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
