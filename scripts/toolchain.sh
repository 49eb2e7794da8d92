#!/usr/bin/env bash
# Makes the Rust toolchain pinned in rust-toolchain.toml available to
# rustup. When the installed stable toolchain is exactly the pinned version
# it is used as is: rustup finds toolchains by directory name, so the
# pinned name is made to point at it (rustup's own `toolchain link` refuses
# names of official releases). Otherwise rustup installs the pin. Anything
# else fails with what to do. Machines of CI's kind have one toolchain and
# cannot fetch others, so the first case is theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
pin=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
[ -n "$pin" ] || { echo "toolchain: no channel in rust-toolchain.toml" >&2; exit 1; }
command -v rustup >/dev/null || {
    echo "toolchain: rustup not found; install Rust $pin with rustup (https://rustup.rs)" >&2
    exit 1
}
if rustup toolchain list | grep -q "^$pin-"; then
    exit 0
fi
stable=$(RUSTUP_TOOLCHAIN=stable rustc --version 2>/dev/null | awk '{print $2}' || true)
if [ "$stable" = "$pin" ]; then
    sysroot=$(RUSTUP_TOOLCHAIN=stable rustc --print sysroot)
    host=$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')
    ln -sfn "$sysroot" "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$pin-$host"
    rustup toolchain list | grep -q "^$pin-" || { echo "toolchain: rustup does not see $pin" >&2; exit 1; }
    echo "toolchain: using the installed stable Rust $pin (the pin in rust-toolchain.toml)"
    exit 0
fi
echo "toolchain: installing Rust $pin (pinned in rust-toolchain.toml)"
rustup toolchain install "$pin" --profile minimal --component rustfmt,clippy || {
    echo "toolchain: cannot install Rust $pin (installed stable: ${stable:-none})." >&2
    echo "toolchain: install it with 'rustup toolchain install $pin', or change the pin deliberately" >&2
    exit 1
}
