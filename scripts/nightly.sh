#!/usr/bin/env bash
# Miri and ThreadSanitizer over the Rust code they can run: both need a
# nightly toolchain (with the miri and rust-src components), which the
# pinned stable toolchain cannot replace.
#
#   scripts/nightly.sh miri   the unit tests of tracker-core and of
#                             tracker-shm's memory, class, ring, history,
#                             naming and layout modules (Miri cannot map
#                             files, lock them or catch SIGBUS, so the
#                             segment-file tests are left to memcheck)
#   scripts/nightly.sh tsan   tracker-core's and tracker-shm's tests,
#                             racing writers and readers included, built
#                             with -Zsanitizer=thread (the SIGBUS guard's
#                             test is left out: it swaps mappings under a
#                             signal handler, which TSan does not model)
#
# Any finding fails. A machine where no nightly toolchain can be installed
# cannot run either: that is said loudly and the script exits 0, so CI on
# such a machine still runs everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: scripts/nightly.sh miri|tsan}
components=(rust-src)
[ "$what" = miri ] && components+=(miri)
if ! rustup toolchain list | grep -q '^nightly-' ||
   ! rustup component add --toolchain nightly "${components[@]}" >/dev/null 2>&1; then
    echo "=================================================================="
    echo "NOT RUN: $what needs a nightly toolchain with ${components[*]},"
    echo "which this machine does not have and cannot install."
    echo "=================================================================="
    exit 0
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
case "$what" in
miri)
    cargo +nightly miri setup >/dev/null
    MIRIFLAGS="-Zmiri-disable-isolation" cargo +nightly miri test -p tracker-core --lib
    # mounts:: walks real directories (Miri's isolation has no file system).
    cargo +nightly miri test -p tracker-shm --lib -- \
        --skip leaky:: --skip fault:: --skip proc:: --skip mounts::
    # LeakyCell leaks replaced values on purpose.
    MIRIFLAGS="-Zmiri-ignore-leaks" cargo +nightly miri test -p tracker-shm --lib -- leaky::
    ;;
tsan)
    RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
        cargo +nightly test -Zbuild-std --target "$host" --target-dir target/tsan \
        -p tracker-core -p tracker-shm --lib --tests -- --skip fault::
    ;;
*)
    echo "usage: scripts/nightly.sh miri|tsan" >&2
    exit 2
    ;;
esac
