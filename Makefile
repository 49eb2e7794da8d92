# pytracker: one entry point for building, testing, demos and benchmarks.
# Every target installs what it needs (virtualenv, maturin, pytest, tmux).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
MATURIN := $(VENV)/bin/maturin
BIN := target/release

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.ready: tracker-py/pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "maturin>=1.9.4,<2" "pytest>=8" "mypy>=1.18"
	touch $@

.PHONY: venv
venv: $(VENV)/.ready ## create the virtualenv with maturin, pytest and mypy

.PHONY: system-deps
system-deps: ## install Debian packages the tests use (tmux)
	@command -v tmux >/dev/null 2>&1 || { \
	  echo "installing tmux"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq tmux >/dev/null; }

.PHONY: build
build: venv ## build the Rust binaries and install pytracker into the virtualenv
	cargo build --release --workspace --exclude tracker-py --bins
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
	  $(MATURIN) develop --release --quiet -m tracker-py/Cargo.toml

.PHONY: test
test: build system-deps ## build, then run every test (cargo and pytest)
	cargo test --release --workspace --exclude tracker-py
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) -m pytest tests/python -q -p no:cacheprovider

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: demo
demo: build ## run the built-in tracked workload and show its inventory
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) examples/demo.py

.PHONY: bench
bench: build system-deps ## benchmarks: hot path as ratios to a plain class, reader costs (BENCHMARKS.md)
	$(PIP) install --quiet "pympler>=1.0"
	cargo build --release -p tracker-shm --examples
	$(PY) bench/hotpath.py
	@echo
	$(PY) bench/instructions.py
	@echo
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) bench/readers.py

.PHONY: clean
clean: ## remove build products and the virtualenv
	cargo clean
	rm -rf $(VENV)
