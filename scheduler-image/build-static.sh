#!/usr/bin/env bash
# Builds the statically linked release binary of datajump-scheduler (glibc linked statically
# with `+crt-static`, so no extra toolchain or musl target is needed) and prints its path.
# Used by the Dockerfile and before `cargo test -p datajump-scheduler --test static_binary`.
set -euo pipefail

target="$(uname -m)-unknown-linux-gnu"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"

cd "$repo_root"
# --target keeps RUSTFLAGS away from build scripts and proc macros, which must stay dynamic.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" -p datajump-scheduler >&2

echo "$target_dir/$target/release/datajump-scheduler"
