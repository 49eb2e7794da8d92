#!/usr/bin/env bash
# The interpreter matrix: builds pytracker's extension for every supported
# CPython (tests/matrix/interpreters) and runs the whole Python suite on it.
#
#   tests/matrix/run.sh              every interpreter
#   tests/matrix/run.sh sid-3.14 ... only these
#   tests/matrix/run.sh --build-only NAME...   build, no tests (for benchmarks)
#
# An interpreter that is missing, or cannot be installed, fails the matrix:
# it never passes by skipping. Per interpreter, .matrix/NAME/ keeps a
# virtualenv, a cargo target directory and the log, so repeat runs are quick.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi

mapfile -t rows < <(grep -vE '^\s*(#|$)' tests/matrix/interpreters)
want=("$@")
selected=()
for row in "${rows[@]}"; do
    read -r name _ _ <<<"$row"
    if [ ${#want[@]} -eq 0 ] || printf '%s\n' "${want[@]}" | grep -qx "$name"; then
        selected+=("$row")
    fi
done
for w in "${want[@]}"; do
    printf '%s\n' "${rows[@]}" | awk '{print $1}' | grep -qx "$w" \
        || { echo "matrix: unknown interpreter '$w' (see tests/matrix/interpreters)" >&2; exit 2; }
done

# The suite runs the Rust binaries from target/release.
if [ "$build_only" = 0 ]; then
    cargo build --release --workspace --exclude tracker-py --bins --quiet || exit 1
fi

host_python() {
    # Expands a pattern like ~/.pyenv/versions/3.10.*/bin/python3.10 to the
    # newest match; installs Debian's interpreter when it is the one missing.
    local pattern=${1/#\~/$HOME} found
    found=$(compgen -G "$pattern" | sort -V | tail -n 1)
    if [ -z "$found" ] && [[ "$pattern" == /usr/bin/python3.* ]] && [ "$(id -u)" = 0 ]; then
        local v=${pattern#/usr/bin/python}
        echo "matrix: installing python$v, python$v-dev and python$v-venv (Debian)" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq "python$v" "python$v-dev" "python$v-venv" >/dev/null
        found=$(compgen -G "$pattern" | tail -n 1)
    fi
    # venv needs ensurepip, which Debian ships in pythonX.Y-venv.
    if [ -n "$found" ] && [[ "$found" == /usr/bin/* ]] && ! "$found" -c 'import ensurepip' 2>/dev/null \
        && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq "$(basename "$found")-venv" >/dev/null
    fi
    echo "$found"
}

declare -A result
failed=0
for row in "${selected[@]}"; do
    read -r name where python <<<"$row"
    mkdir -p ".matrix/$name"
    log=".matrix/$name/log"
    start=$(date +%s)
    echo "matrix: $name ($where) ..." >&2
    case "$where" in
        host)
            py=$(host_python "$python")
            if [ -z "$py" ]; then
                echo "matrix: $name: no interpreter matches $python: install it (pyenv install) — the matrix does not pass without it" | tee "$log" >&2
                result[$name]="MISSING"; failed=1; continue
            fi
            tests/matrix/one.sh "$name" "$py" "$build_only" >"$log" 2>&1
            ;;
        chroot:*)
            suite=${where#chroot:}
            if ! tests/matrix/chroot.sh ensure "$suite" >"$log" 2>&1; then
                cat "$log" >&2
                echo "matrix: $name: the $suite chroot cannot be made — the matrix does not pass without it" >&2
                result[$name]="MISSING"; failed=1; continue
            fi
            tests/matrix/chroot.sh run "$suite" -- tests/matrix/one.sh "$name" "$python" "$build_only" >"$log" 2>&1
            ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    summary=$(grep -E '^[0-9]+ (passed|failed)|^(=+ )?[0-9]+ (passed|failed)' "$log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
    if [ $rc -eq 0 ]; then
        result[$name]="ok (${secs}s) ${summary}"
    else
        result[$name]="FAILED (${secs}s) ${summary}"; failed=1
        echo "matrix: $name failed; the end of $log:" >&2
        tail -n 40 "$log" >&2
    fi
done

total_passed=0 total_failed=0
for row in "${selected[@]}"; do
    read -r name _ _ <<<"$row"
    line=$(grep -E '[0-9]+ (passed|failed)' ".matrix/$name/log" 2>/dev/null | tail -n 1)
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
    f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$line" | awk '{s += $1} END {print s + 0}')
    total_passed=$((total_passed + ${p:-0}))
    total_failed=$((total_failed + ${f:-0}))
done

echo
echo "interpreter matrix:"
for row in "${selected[@]}"; do
    read -r name where python <<<"$row"
    printf '  %-12s %-14s %s\n' "$name" "$where" "${result[$name]:-not run}"
done
if [ "$build_only" = 1 ]; then
    [ $failed -eq 0 ] && echo "matrix: built" && exit 0
    echo "matrix: build FAILED" >&2; exit 1
fi
if [ $failed -ne 0 ]; then
    # A cell that failed before its tests ran counts as one failure.
    [ $total_failed -eq 0 ] && total_failed=1
    echo "matrix: $total_passed passed, $total_failed failed"
    exit 1
fi
echo "matrix: $total_passed passed, 0 failed"
