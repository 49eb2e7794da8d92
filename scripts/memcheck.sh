#!/usr/bin/env bash
# The Rust tests of the crates holding unsafe memory code, run under
# valgrind's memcheck: any invalid read or write, use of uninitialised
# memory or definite leak fails the run. (Miri would be the finer tool; it
# needs a nightly toolchain, which machines of CI's kind cannot fetch.)
#
# LeakyCell leaks its replaced values on purpose (readers may still hold
# them), so its own test runs with the leak check off.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || {
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get install -y -qq valgrind >/dev/null
}
binaries() {
    cargo test --release -p "$1" "${@:2}" --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p'
}
run() {
    echo "memcheck: $*"
    valgrind -q --fair-sched=yes --error-exitcode=99 "$@"
}
leaks=(--leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)
for bin in $(binaries tracker-core --lib --tests) $(binaries tracker-shm --lib --tests); do
    run "${leaks[@]}" "$bin" --test-threads=1 --skip leaky:: -q
done
for bin in $(binaries tracker-shm --lib); do
    run --leak-check=no "$bin" --test-threads=1 leaky:: -q
done
echo "memcheck: no errors"
