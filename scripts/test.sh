#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
# Needs the Rust toolchain (cargo, rustfmt, clippy), a C compiler (aws-lc-sys, SQLite), Node.js
# and npm; installs what else it needs, idempotently: Debian's chromium (browser test) and
# openssl (its https app's certificate), libssl-dev and pkg-config (Token Binding listener),
# postgresql (throwaway clusters for the PostgreSQL conformance and two-node tests),
# python3-cryptography (an independent Token Binding implementation for one test), the
# interop packages pinned in interop/package-lock.json and cargo-deny (pinned, from crates.io).
set -euo pipefail
cd "$(dirname "$0")/.."

# a clean build needs no incremental state (smaller and no slower from scratch); set
# CARGO_INCREMENTAL=1 to keep it between local runs
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi
}

echo "== installs (idempotent)"
# Debian packages: OpenSSL headers + pkg-config (keybound-tls links the system libssl for the
# Token Binding listener), Chromium (browser tests), pyca/cryptography (the independent Token
# Binding message in keybound-tls's tests)
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# the openssl command: the browser test's https app (rp.test) gets a throwaway certificate
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# PostgreSQL server binaries: the tests start their own throwaway clusters on loopback
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# the Python with pyca/cryptography for that test: python3 on PATH if it has it, else Debian's
export KEYBOUND_PYTHON=python3
if ! python3 -c 'import cryptography' >/dev/null 2>&1; then
  KEYBOUND_PYTHON=/usr/bin/python3
  "$KEYBOUND_PYTHON" -c 'import cryptography' >/dev/null 2>&1 || need+=(python3-cryptography)
fi
if [ "${#need[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
(cd interop && npm ci --no-audit --no-fund --loglevel=error)
# cargo-deny for the supply-chain check (a pinned version, built once per machine)
DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $DENY_VERSION"; then
  cargo install cargo-deny --locked --version "$DENY_VERSION" --quiet
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== the dependency graph says what runs where"
# the binary runs no test fixtures; the server without Token Binding needs no OpenSSL
if cargo tree -p keybound -e normal --locked | grep -q keybound-testkit; then
  echo "the keybound binary links keybound-testkit"; exit 1
fi
if cargo tree -p keybound-server --no-default-features -e normal --locked | grep -q openssl; then
  echo "keybound-server without its token-binding feature links OpenSSL"; exit 1
fi
cargo build -p keybound-server --no-default-features --locked

echo "== supply chain: licenses, banned and duplicate crates, sources (cargo deny, offline)"
cargo deny --offline check licenses bans sources

echo "== the library crates package and build as published (cargo publish --dry-run)"
# keybound-jose, keybound-proto, keybound-rp and keybound-verify: complete metadata, no
# path-only dependency; each packaged crate is built from its own package
cargo publish --dry-run --locked -p keybound-jose -p keybound-proto -p keybound-rp -p keybound-verify

echo "== the library crates' documentation builds without a warning"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked -p keybound-jose -p keybound-proto -p keybound-rp -p keybound-verify

echo "== doc tests"
cargo test --workspace --doc --locked 2>&1 | tee -a "$log"

echo "== unit, integration, property and CLI tests (benches run once in test mode)"
cargo test --workspace --all-targets --locked 2>&1 | tee -a "$log"

echo "== interop (openid-client + jose) and browser (headless Chromium) tests against the real binary"
# the binaries they start: keybound, and the step-up API of examples/api
cargo build --locked -p keybound -p example-api 2>&1 | tee -a "$log"
(cd interop && KEYBOUND_BIN="$PWD/../target/debug/keybound" node --test --test-reporter=tap 2>&1) | tee -a "$log"

echo "== the browser package (clients/browser): unit tests with node's runner, npm pack"
(cd clients/browser && node --test --test-reporter=tap test/ 2>&1 && npm pack --dry-run --silent >/dev/null) | tee -a "$log"

echo "== fuzzing: every target 30 s from its seed corpus (fuzz/ is its own workspace)"
bash fuzz/run.sh 30 2>&1 | tee -a "$log"

read -r passed failed < <(awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
  }
  /^# pass / { p += $3 }
  /^# fail / { f += $3 }
  END { print p + 0, f + 0 }' "$log")
echo
echo "tests: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
