#!/usr/bin/env bash
# Make (once) a Debian chroot holding optimized CPython builds for the
# interpreter matrix, and run a command inside it with the host's Rust
# toolchain and this checkout bind-mounted.
#
#   tests/matrix/chroot.sh ensure SUITE             create the chroot if missing
#   tests/matrix/chroot.sh run SUITE -- CMD ARGS... run CMD in it (cwd: the checkout)
#
# Chroots live in $PYTRACKER_CHROOTS (default /var/cache/pytracker/chroots) and
# are reused across runs: a stamp file records the package list they were made
# with, so a changed list makes them anew. Needs root (debootstrap, mount).
set -euo pipefail

ROOT_DIR=${PYTRACKER_CHROOTS:-/var/cache/pytracker/chroots}
MIRROR=${PYTRACKER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CHECKOUT=$(cd "$(dirname "$0")/../.." && pwd)

die() { echo "matrix: $*" >&2; exit 1; }

packages_for() {
    local common="ca-certificates,gcc,libc6-dev,make,tmux,procps,util-linux"
    case "$1" in
        trixie) echo "$common,python3.13,python3.13-dev,python3.13-venv" ;;
        sid) echo "$common,valgrind,python3.14,python3.14-dev,python3.14-venv,python3.15,python3.15-dev,python3.15-venv" ;;
        *) die "unknown suite '$1' (known: trixie, sid)" ;;
    esac
}

ensure() {
    local suite=$1 dir="$ROOT_DIR/$1" pkgs
    pkgs=$(packages_for "$suite")
    if [ -f "$dir/.pytracker-stamp" ] && [ "$(cat "$dir/.pytracker-stamp")" = "$pkgs" ]; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "making the $suite chroot needs root (debootstrap)"
    if ! command -v debootstrap >/dev/null 2>&1; then
        echo "matrix: installing debootstrap" >&2
        apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null \
            || die "cannot install debootstrap: the $suite interpreters are missing"
    fi
    echo "matrix: creating the $suite chroot in $dir (once; a few minutes)" >&2
    rm -rf "$dir.tmp"
    mkdir -p "$ROOT_DIR"
    # sid's Release file may carry an expired Valid-Until: checking it
    # would refuse the current archive.
    debootstrap --variant=minbase --include="$pkgs" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        "$suite" "$dir.tmp" "$MIRROR" >"$ROOT_DIR/$suite.log" 2>&1 \
        || { tail -n 20 "$ROOT_DIR/$suite.log" >&2; die "debootstrap $suite failed (log: $ROOT_DIR/$suite.log)"; }
    echo 'Acquire::Check-Valid-Until "false";' >"$dir.tmp/etc/apt/apt.conf.d/99pytracker"
    echo "$pkgs" >"$dir.tmp/.pytracker-stamp"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
}

run() {
    local suite=$1; shift
    [ "${1:-}" = "--" ] && shift
    local dir="$ROOT_DIR/$suite"
    ensure "$suite"
    local rustup=${RUSTUP_HOME:-$HOME/.rustup} cargo=${CARGO_HOME:-$HOME/.cargo}
    # A private mount namespace: every mount below goes away with the command.
    unshare --mount --propagation private -- bash -euo pipefail -c '
        dir=$1 rustup=$2 cargo=$3 checkout=$4; shift 4
        mount -t proc proc "$dir/proc"
        mount --rbind /dev "$dir/dev"
        mkdir -p "$dir/dev/shm"
        mount -t tmpfs -o mode=1777,size=512m tmpfs "$dir/dev/shm"
        mount -t tmpfs -o mode=1777 tmpfs "$dir/tmp"
        for p in "$rustup" "$cargo" "$checkout"; do
            mkdir -p "$dir$p"; mount --bind "$p" "$dir$p"
        done
        cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
        # The host may reach the registries through a proxy with its own
        # certificate authority: the chroot trusts what the host trusts.
        bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
        ca=
        if [ -f "$bundle" ]; then
            cp "$bundle" "$dir/etc/ssl/certs/host-ca-bundle.crt"
            ca=/etc/ssl/certs/host-ca-bundle.crt
        fi
        exec chroot "$dir" /usr/bin/env -i HOME=/root TERM="${TERM:-xterm}" \
            PATH="$cargo/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
            RUSTUP_HOME="$rustup" CARGO_HOME="$cargo" CI="${CI:-}" \
            ${ca:+PIP_CERT=$ca SSL_CERT_FILE=$ca REQUESTS_CA_BUNDLE=$ca CARGO_HTTP_CAINFO=$ca} \
            ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} \
            ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
            ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} \
            PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            bash -c "cd \"\$0\" && exec \"\$@\"" "$checkout" "$@"
    ' _ "$dir" "$rustup" "$cargo" "$CHECKOUT" "$@"
}

case "${1:-}" in
    ensure) shift; for s in "$@"; do ensure "$s"; done ;;
    run) shift; run "$@" ;;
    *) die "usage: $0 ensure SUITE... | run SUITE -- CMD..." ;;
esac
