#!/usr/bin/env bash
# Builds the working tree's extension with the measurement-only feature
# `bare-counts` (objects counted, not their ages, peaks or creation sites)
# for the interpreter of matrix cell CELL, into .matrix/CELL-bare/venv.
# The cell must have been built first (tests/matrix/run.sh --build-only CELL).
#   scripts/bare-build.sh CELL
set -euo pipefail
cell=${1:?usage: scripts/bare-build.sh CELL}
cd "$(dirname "$0")/.."
src=$PWD/.matrix/$cell/venv
[ -x "$src/bin/maturin" ] || { echo "bare-build: $src has no maturin: run tests/matrix/run.sh --build-only $cell first" >&2; exit 2; }
dir=$PWD/.matrix/$cell-bare
python=$(readlink -f "$src/bin/python")
if [ ! -x "$dir/venv/bin/python" ] || [ "$(readlink -f "$dir/venv/bin/python")" != "$python" ]; then
    rm -rf "$dir/venv"
    "$python" -m venv "$dir/venv"
fi
export CARGO_TARGET_DIR=$dir/target PYO3_PYTHON=$dir/venv/bin/python
rm -rf "$dir/wheels"
"$src/bin/maturin" build --release --quiet -m tracker-py/Cargo.toml -i "$dir/venv/bin/python" \
    -o "$dir/wheels" --features bare-counts
"$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$dir"/wheels/*.whl
echo "bare-build: $dir/venv (feature bare-counts)"
