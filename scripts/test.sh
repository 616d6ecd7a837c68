#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
# Needs only the Rust toolchain (cargo, rustfmt, clippy) and a C compiler for aws-lc-sys;
# later issues add their installs (PostgreSQL, Chromium) here, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== fuzz targets build (fuzz/ is its own workspace)"
cargo build --manifest-path fuzz/Cargo.toml --bins

echo "== doc tests"
cargo test --workspace --doc --locked 2>&1 | tee -a "$log"

echo "== unit, integration, property and CLI tests (benches run once in test mode)"
cargo test --workspace --all-targets --locked 2>&1 | tee -a "$log"

read -r passed failed < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
  } END { print p + 0, f + 0 }' "$log")
echo
echo "tests: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
