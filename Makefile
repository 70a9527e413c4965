# Setup and everyday commands. `make run` and `make test` install first, into .venv (`make run`
# only what running needs, `make test` the test tools too).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed before the package so pip does not pull a large CUDA build where a local
# CPU build exists. Override for your machine, e.g. `make install TORCH=torch` (any version).
TORCH ?= $(shell $(PYTHON) -c "import pathlib,sys; print('torch==2.13.0' if any(pathlib.Path('/opt/wheels').glob('torch-2.13.0*')) or pathlib.Path('/etc/xdg/pip').exists() else 'torch')")
ARGS ?=

.PHONY: install install-run run test test-all test-oldest-torch lint bench clean

# `make run` installs what running needs (torch, then mtlrun and its dependencies); `make test`
# adds the [dev] extra (test tools, launchers, trackers, torchjd) on top.
$(VENV)/.installed-run: pyproject.toml
	@if [ -f $(VENV)/.installed ] && [ $(VENV)/.installed -nt pyproject.toml ]; then :; else \
		$(PYTHON) -m venv $(VENV) && \
		$(PY) -m pip install --quiet --upgrade pip && \
		$(PY) -m pip install --quiet "$(TORCH)" && \
		$(PY) -m pip install --quiet -e . ; fi
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-run

install-run: $(VENV)/.installed-run

install: $(VENV)/.installed

run: install-run
	$(VENV)/bin/mtlrun $(ARGS)

# the suite runs on every core (pytest-xdist); tests use one torch thread each
test: install
	$(PY) -m pytest -q -n auto --dist worksteal

test-all: install
	$(PY) -m pytest -q -n auto --dist worksteal -m "slow or not slow"

# torch's private paths that start-up relies on (mtlrun/train/optimizers.py, seeding.py), checked on
# the oldest torch pyproject.toml allows; a separate venv, since that torch is a CUDA build of about 2.6 GB
OLDEST_TORCH ?= $(shell sed -n 's/^ *"torch>=\([0-9.]*\)",/\1/p' pyproject.toml)
OLDEST_VENV ?= .venv-oldest-torch
$(OLDEST_VENV)/.installed: pyproject.toml
	@test -n "$(OLDEST_TORCH)" || { echo "no torch lower bound found in pyproject.toml"; exit 1; }
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet "torch==$(OLDEST_TORCH)" "numpy<2" pytest
	touch $@

test-oldest-torch: $(OLDEST_VENV)/.installed
	PYTHONPATH=$(CURDIR) $(OLDEST_VENV)/bin/python -m pytest -q -p no:cacheprovider -o addopts="" \
		tests/train/test_optimizers.py tests/train/test_torch_private_paths.py

lint: install
	$(VENV)/bin/ruff check mtlrun tests bench
	$(VENV)/bin/ruff format --check mtlrun tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# rewrites BENCHMARKS.md above its marker line; the other scripts in bench/
# (balancers, diagnostics, baselines, datapath, dense) are run by hand, see BENCHMARKS.md
bench: install-run
	$(PY) bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) build dist *.egg-info .pytest_cache .ruff_cache
