# Sourced by the scripts: one toolchain set-up and build caches outside the clone.
# shellcheck shell=bash
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export MOOR_CACHE=${MOOR_CACHE:-$HOME/.cache/moor}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$MOOR_CACHE/target}
# Installs what rust-toolchain.toml pins (the toolchain, wasm32-wasip2, rustfmt, clippy);
# a no-op when they are present.
rustup toolchain install >&2
