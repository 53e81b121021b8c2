# Two set-up commands on a fresh machine: `make book` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The optional extras the book and the tests need (torch: text embeddings and neural models; grn: GRNBoost2;
# models: the published models GEARS, biolord, scGen).
EXTRAS ?= dev,torch,text,grn,models
# A local wheel directory (e.g. a CPU-only torch wheel) is used when the machine has one.
WHEELS ?= /opt/wheels
# Published models that run in their own environment (.envs/<model>), created by `make env-models` and `make book`.
OWN_ENV_MODELS ?= cpa cellflow scpram
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS),)

# Keep every cache inside the project: nothing is written to the home directory.
export VCC_CACHE_DIR ?= $(CURDIR)/.cache
export UV_CACHE_DIR ?= $(VCC_CACHE_DIR)/uv
export PIP_CACHE_DIR ?= $(VCC_CACHE_DIR)/pip
export XDG_CACHE_HOME ?= $(VCC_CACHE_DIR)/tool-state/xdg-cache
export XDG_CONFIG_HOME ?= $(VCC_CACHE_DIR)/tool-state/xdg-config
export MPLCONFIGDIR ?= $(VCC_CACHE_DIR)/tool-state/matplotlib
export IPYTHONDIR ?= $(VCC_CACHE_DIR)/tool-state/ipython
export JUPYTER_CONFIG_DIR ?= $(VCC_CACHE_DIR)/tool-state/jupyter/config
export JUPYTER_DATA_DIR ?= $(VCC_CACHE_DIR)/tool-state/jupyter/data
export JUPYTER_RUNTIME_DIR ?= $(VCC_CACHE_DIR)/tool-state/jupyter/runtime
export NUMBA_CACHE_DIR ?= $(VCC_CACHE_DIR)/tool-state/numba
export LAMIN_SETTINGS_DIR ?= $(VCC_CACHE_DIR)/catalog/settings
export LAMIN_CACHE_DIR ?= $(VCC_CACHE_DIR)/catalog/lamin-cache
export PLAYWRIGHT_BROWSERS_PATH ?= $(VCC_CACHE_DIR)/playwright
export PRE_COMMIT_HOME ?= $(VCC_CACHE_DIR)/pre-commit

.PHONY: chronos-env env data book book-smoke test test-all test-browser browser-deps lint hooks clean

env: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode $(FIND_LINKS) -e ".[$(EXTRAS)]"
	@touch $(STAMP)

data: env
	$(BIN)/vcc data fetch --embedded

# The book trains every published model, the own-environment ones too: their environments are created first
# (once; `make book OWN_ENV_MODELS=` skips them, and the chapter then lists them as not installed).
book: data env-models
	$(BIN)/vcc book

book-smoke: data
	$(BIN)/vcc book --smoke

test: env
	$(BIN)/python -m pytest

test-all: env
	$(BIN)/python -m pytest -m "slow or not slow"

browser-deps: env
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -q && apt-get install -y -q chromium) || \
	  (echo "install Debian's chromium (apt-get install chromium) for the browser test" && exit 1)

test-browser: browser-deps
	@test -f _build/html/index.html || (echo "build the book first: make book" && exit 1)
	$(BIN)/python -m pytest -m browser tests/test_book_browser.py

# The same checks as the pre-commit hooks (.pre-commit-config.yaml), over every file.
LINT_PATHS := vcclib tests benchmarks notebooks
lint: env
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

# Install the pre-commit hooks (ruff check + format, notebooks without outputs) into .git/hooks.
hooks: env
	$(BIN)/pre-commit install

clean:
	rm -rf _build book/chapters/*.ipynb

# Chronos (crispr-chronos needs tensorflow) in its own environment, used by the guides chapter as a subprocess.
chronos-env:
	scripts/env_chronos.sh

# Published models that cannot share the project's pins, each in its own environment .envs/<model> created from
# the lock envs/<model>.txt (envs/install.sh; recompile a lock with envs/lock.sh <model>); the wrappers in
# vcclib/models/external/ run them as subprocesses. `make env-models` creates all three.
.PHONY: env-model env-models $(addprefix env-,$(OWN_ENV_MODELS))

env-model: env
	@test -n "$(MODEL)" || (echo "usage: make env-model MODEL=<one of: $(OWN_ENV_MODELS)>" && exit 2)
	UV=$(BIN)/uv envs/install.sh $(MODEL)

$(addprefix env-,$(OWN_ENV_MODELS)): env-%: env
	UV=$(BIN)/uv envs/install.sh $*

env-models: $(addprefix env-,$(OWN_ENV_MODELS))
