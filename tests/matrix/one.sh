#!/usr/bin/env bash
# One cell of the interpreter matrix (run by run.sh, on the host or inside a
# chroot): NAME PYTHON BUILD_ONLY. Makes .matrix/NAME/venv, builds the
# extension there with PYTHON, then runs the Python suite.
set -euo pipefail
name=$1 python=$2 build_only=${3:-0}
cd "$(dirname "$0")/../.."
dir=$PWD/.matrix/$name
venv=$dir/venv
"$python" -c 'import sys; print("interpreter:", sys.version.replace("\n", " "))'
if [ ! -x "$venv/bin/python" ] || [ "$(readlink -f "$venv/bin/python")" != "$(readlink -f "$python")" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
if [ ! -f "$venv/.ready" ] || [ tracker-py/pyproject.toml -nt "$venv/.ready" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "maturin>=1.9.4,<2" "pytest>=8" "mypy>=1.18" "pympler>=1.0"
    touch "$venv/.ready"
fi
export CARGO_TARGET_DIR=$dir/target PYO3_PYTHON=$venv/bin/python
# A wheel installed into the venv, not an editable install: that would put
# this interpreter's build into the source tree, where two builds for the
# same Python version (pyenv's and Debian's 3.11) would replace each other.
rm -rf "$dir/wheels"
"$venv/bin/maturin" build --release --quiet -m tracker-py/Cargo.toml -i "$venv/bin/python" -o "$dir/wheels"
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$dir"/wheels/*.whl
# Warnings are errors on every interpreter: deprecations differ per version.
cargo clippy --quiet --release -p tracker-py -- -D warnings
[ "$build_only" = 1 ] && exit 0
PYTRACKER_BIN_DIR=$PWD/target/release "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider
