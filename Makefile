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
	$(PIP) install --quiet "maturin>=1.9.4,<2" "pytest>=8" "mypy>=1.18" "ruff>=0.8,<1" \
	  "prometheus-client>=0.20" "gunicorn>=22"
	touch $@

.PHONY: venv
venv: $(VENV)/.ready ## create the virtualenv with maturin, pytest and mypy

.PHONY: system-deps
system-deps: ## install Debian packages the tests use (tmux; prometheus, for promtool and a real server)
	@command -v tmux >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
	  echo "installing tmux and prometheus"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends tmux prometheus >/dev/null; }

.PHONY: toolchain
toolchain: ## make the Rust toolchain pinned in rust-toolchain.toml available
	@scripts/toolchain.sh

# The extension is rebuilt and reinstalled only when a Rust source, a
# manifest or the virtualenv changed (maturin develop takes about 13 s even
# when cargo has nothing to do). The Python sources are installed editable.
EXT_SUFFIX := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
EXTENSION := tracker-py/python/pytracker/_native$(EXT_SUFFIX)
RUST_SOURCES := $(shell find tracker-core tracker-shm tracker-cli tracker-py \
  -name target -prune -o \( -name '*.rs' -o -name Cargo.toml -o -name pyproject.toml \) -print) \
  Cargo.toml Cargo.lock rust-toolchain.toml

$(EXTENSION): $(VENV)/.ready $(RUST_SOURCES)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
	  $(MATURIN) develop --release --quiet -m tracker-py/Cargo.toml
	touch $@

.PHONY: build
build: toolchain venv $(EXTENSION) ## build the Rust binaries and install pytracker into the virtualenv (only what changed)
	cargo build --release --workspace --exclude tracker-py --bins

.PHONY: test
test: build system-deps ## build, then run every test (cargo and pytest)
	cargo test --release --workspace --exclude tracker-py
	# Again with overflow checks and debug assertions (release builds wrap
	# silently: a forged value must never get that far).
	cargo test --workspace --exclude tracker-py
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) -m pytest tests/python -q -p no:cacheprovider
	# Whole services against real servers (Prometheus), on one interpreter:
	# what they check is the tools', not the interpreter's.
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) -m pytest tests/fleet -q -p no:cacheprovider

.PHONY: lint
lint: toolchain venv ## cargo fmt --check, clippy with warnings denied, ruff check and ruff format --check on the Python code
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

.PHONY: msrv
msrv: toolchain ## no std API newer than the declared rust-version (clippy's incompatible_msrv, denied)
	cargo clippy --workspace --all-targets --quiet -- -A clippy::all -D clippy::incompatible_msrv

.PHONY: memcheck
memcheck: toolchain ## the Rust tests of the crates with unsafe memory code, under valgrind memcheck
	scripts/memcheck.sh

.PHONY: miri
miri: ## Miri over the unsafe and atomic code it can run (needs a nightly toolchain; says so loudly if none)
	scripts/nightly.sh miri

.PHONY: tsan
tsan: ## ThreadSanitizer over the racing writer/reader tests (needs a nightly toolchain; says so loudly if none)
	scripts/nightly.sh tsan

# cargo-deny, built once per pinned version into .tools/ (a few minutes).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := .tools/cargo-deny-$(CARGO_DENY_VERSION)/bin/cargo-deny

$(CARGO_DENY):
	cargo install cargo-deny --version $(CARGO_DENY_VERSION) --locked --quiet --root .tools/cargo-deny-$(CARGO_DENY_VERSION)

.PHONY: audit
audit: toolchain $(CARGO_DENY) ## dependency audit: licences, bans and sources (deny.toml)
	$(CARGO_DENY) check bans licenses sources

.PHONY: demo
demo: build ## run the built-in tracked workload and show its inventory
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) examples/demo.py

.PHONY: test-matrix
test-matrix: toolchain ## build and run the Python suite on every supported CPython (tests/matrix/interpreters)
	tests/matrix/run.sh

# Optimized interpreters, as users run them: Debian's 3.11 on the host and
# Debian's 3.14 in the sid chroot of the matrix.
BENCH_HOST := debian-3.11
BENCH_CHROOT := sid-3.14

.PHONY: bench
bench: build system-deps ## benchmarks on the default, Debian 3.11 and Debian 3.14 interpreters (BENCHMARKS.md)
	$(PIP) install --quiet "pympler>=1.0"
	@command -v valgrind >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -qq valgrind >/dev/null; }
	cargo build --release -p tracker-shm --examples
	tests/matrix/run.sh --build-only $(BENCH_HOST) $(BENCH_CHROOT)
	$(PY) bench/hotpath.py
	@echo
	.matrix/$(BENCH_HOST)/venv/bin/python bench/hotpath.py
	@echo
	tests/matrix/chroot.sh run sid -- .matrix/$(BENCH_CHROOT)/venv/bin/python bench/hotpath.py
	@echo
	$(PY) bench/instructions.py
	@echo
	.matrix/$(BENCH_HOST)/venv/bin/python bench/instructions.py
	@echo
	tests/matrix/chroot.sh run sid -- .matrix/$(BENCH_CHROOT)/venv/bin/python bench/instructions.py
	@echo
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) bench/readers.py
	@echo
	PYTRACKER_BIN_DIR=$(abspath $(BIN)) $(PY) bench/serve.py

# What a change costs per object: BASE (a revision) built for Debian's 3.11
# in a worktree, against the working tree's build, in alternating processes
# (bench/ab.py). For instance: make bench-ab BASE=1509ab7
.PHONY: bench-ab
bench-ab: build system-deps ## per-object cost of the working tree against BASE=<revision> (bench/ab.py)
	@test -n "$(BASE)" || { echo "make bench-ab needs BASE=<revision>, for instance BASE=HEAD~1"; exit 2; }
	@command -v valgrind >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -qq valgrind >/dev/null; }
	tests/matrix/run.sh --build-only $(BENCH_HOST)
	rm -rf .bench-base && git worktree prune
	git worktree add --detach .bench-base $(BASE)
	cd .bench-base && tests/matrix/run.sh --build-only $(BENCH_HOST)
	$(PY) bench/ab.py .bench-base/.matrix/$(BENCH_HOST)/venv/bin/python .matrix/$(BENCH_HOST)/venv/bin/python

# What the leak hunter's per-object counts cost (ages, peaks, sampled
# creation sites): the working tree built for Debian's 3.11 as it is and
# with the measurement-only feature bare-counts, in alternating processes.
.PHONY: bench-ages
bench-ages: build system-deps ## per-object cost of ages, peaks and site sampling (bench/ab.py against a bare-counts build)
	@command -v valgrind >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -qq valgrind >/dev/null; }
	tests/matrix/run.sh --build-only $(BENCH_HOST)
	scripts/bare-build.sh $(BENCH_HOST)
	$(PY) bench/ab.py .matrix/$(BENCH_HOST)-bare/venv/bin/python .matrix/$(BENCH_HOST)/venv/bin/python

.PHONY: clean
clean: ## remove build products and the virtualenv
	cargo clean
	rm -rf $(VENV)
