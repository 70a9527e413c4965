# Setup and everyday commands. `make run` and `make test` install first, into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed before the package so pip does not pull a large CUDA build where a local
# CPU build exists. Override for your machine, e.g. `make install TORCH=torch` (any version).
TORCH ?= $(shell $(PYTHON) -c "import pathlib,sys; print('torch==2.13.0' if any(pathlib.Path('/opt/wheels').glob('torch-2.13.0*')) or pathlib.Path('/etc/xdg/pip').exists() else 'torch')")
ARGS ?=

.PHONY: install run test test-all lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/mtlrun $(ARGS)

# the suite runs on every core (pytest-xdist); tests use one torch thread each
test: install
	$(PY) -m pytest -q -n auto --dist worksteal

test-all: install
	$(PY) -m pytest -q -n auto --dist worksteal -m "slow or not slow"

lint: install
	$(VENV)/bin/ruff check mtlrun tests bench
	$(VENV)/bin/ruff format --check mtlrun tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/balancers.py
	$(PY) bench/diagnostics.py
	$(PY) bench/baselines.py
	$(PY) bench/datapath.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
