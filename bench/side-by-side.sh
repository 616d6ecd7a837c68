#!/usr/bin/env bash
# Side by side: keybound (`serve`, SQLite, demo data) and panva's oidc-provider (DPoP, ES256,
# non-evicting memory adapter: interop/peer-oidc-provider.mjs) on loopback, driven by the same
# keybound-load binary with the same settings, one after the other, on this machine.
#
#   bash bench/side-by-side.sh                 # defaults: 20000 requests, concurrency 32
#   REQUESTS=5000 CONCURRENCY=16 bash bench/side-by-side.sh
#
# Writes one JSON report per run and summary.md into $OUT (default target/side-by-side).
# The peer cannot do Key Binding: against it the tool sends dpop_jkt without bound_key and
# DPoP proofs without c_s256 (--plain-dpop), so keybound does strictly more work per request.
# Needs: cargo, node >= 20 (npm ci in interop/ is run if node_modules is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

REQUESTS=${REQUESTS:-20000}
CONCURRENCY=${CONCURRENCY:-32}
RATE_REQUESTS=${RATE_REQUESTS:-10000} # fixed-rate runs: 10 s at 1000 req/s
KB_PORT=${KB_PORT:-18080}
PEER_PORT=${PEER_PORT:-18100}
OUT=${OUT:-$root/target/side-by-side}
PASSWORD=side-by-side-demo-password

mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/summary.md
data=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$data"
}
trap cleanup EXIT

echo "== build (release)"
cargo build --release --locked -q -p keybound -p keybound-load
if [ ! -d interop/node_modules/oidc-provider ]; then (cd interop && npm ci --no-audit --no-fund --silent); fi
kb=$root/target/release/keybound
load=$root/target/release/keybound-load

# healthy PORT: true once GET /healthz answers 200 (bash's /dev/tcp: no curl needed)
healthy() {
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  local status
  read -r _ status _ <&3 || status=0
  exec 3<&-
  [ "$status" = 200 ]
}
wait_healthy() {
  for _ in $(seq 1 2000); do healthy "$1" && return 0; sleep 0.005; done
  echo "port $1 never became healthy" >&2
  return 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

echo "== keybound: first start (creates keys, demo user and clients)"
KEYBOUND_DEMO_PASSWORD=$PASSWORD "$kb" serve --demo --data-dir "$data" --listen "127.0.0.1:$KB_PORT" >"$OUT/keybound-first.log" 2>&1 &
first=$!
pids+=("$first")
wait_healthy "$KB_PORT"
kill "$first"
wait "$first" 2>/dev/null || true

echo "== keybound: start to ready on the existing data directory"
t0=$(now_ms)
"$kb" serve --data-dir "$data" --listen "127.0.0.1:$KB_PORT" >"$OUT/keybound.log" 2>&1 &
kb_pid=$!
pids+=("$kb_pid")
wait_healthy "$KB_PORT"
ready_ms=$(($(now_ms) - t0))
sleep 1
idle_kb=$(awk '/VmRSS/ {print $2}' "/proc/$kb_pid/status")
echo "ready after ${ready_ms} ms, idle RSS ${idle_kb} kB"
printf '{"start_to_ready_ms": %s, "rss_idle_after_start_kb": %s}\n' "$ready_ms" "$idle_kb" >"$OUT/keybound-start.json"

echo "== peer: oidc-provider $(node -p "require('$root/interop/node_modules/oidc-provider/package.json').version")"
PORT=$PEER_PORT node interop/peer-oidc-provider.mjs >"$OUT/peer.log" 2>&1 &
peer_pid=$!
pids+=("$peer_pid")
wait_healthy "$PEER_PORT"

# run NAME ARGS...: one keybound-load run, JSON into $OUT/NAME.json, summary to the terminal
run() {
  local name=$1
  shift
  echo "-- $name: keybound-load $*"
  KEYBOUND_LOAD_PASSWORD=$PASSWORD "$load" --json "$@" >"$OUT/$name.json"
  node -e '
    const r = require(process.argv[1]);
    const e = Object.keys(r.errors).length ? JSON.stringify(r.errors) : "none";
    console.log(`   ${r.ok}/${r.requests} ok, ${r.rps.toFixed(0)} req/s, p50 ${r.latency_ms.p50.toFixed(2)} p99 ${r.latency_ms.p99.toFixed(2)} ms, errors ${e}, efficiency ${r.efficiency.toFixed(2)}`);
  ' "$OUT/$name.json"
}

kb_args=(--issuer "http://127.0.0.1:$KB_PORT" --server-pid "$kb_pid")
peer_args=(--issuer "http://127.0.0.1:$PEER_PORT" --server-pid "$peer_pid" --plain-dpop)

echo "== closed loop: $REQUESTS requests, concurrency $CONCURRENCY"
for mode in code refresh userinfo; do
  run "keybound-$mode" --mode "$mode" --requests "$REQUESTS" --concurrency "$CONCURRENCY" "${kb_args[@]}"
  run "peer-$mode" --mode "$mode" --requests "$REQUESTS" --concurrency "$CONCURRENCY" "${peer_args[@]}"
done
# the peer script does not enable oidc-provider's device flow pages; keybound only
run keybound-device --mode device --requests "$((REQUESTS / 4))" --concurrency "$CONCURRENCY" "${kb_args[@]}"

echo "== open loop: $RATE_REQUESTS requests at 1000 req/s"
for mode in code refresh; do
  run "keybound-$mode-rate1000" --mode "$mode" --requests "$RATE_REQUESTS" --rate 1000 "${kb_args[@]}"
  run "peer-$mode-rate1000" --mode "$mode" --requests "$RATE_REQUESTS" --rate 1000 "${peer_args[@]}"
done

echo "== consuming component in process"
run verify --mode verify --requests "$REQUESTS" --concurrency 2

node - "$OUT" >"$OUT/summary.md" <<'EOF'
const fs = require('fs');
const out = process.argv[2];
const get = (n) => { try { return JSON.parse(fs.readFileSync(`${out}/${n}.json`)); } catch { return null; } };
const mb = (kb) => (kb == null ? '' : (kb / 1024).toFixed(1));
const fix = (x, d) => (x == null ? '' : x.toFixed(d));
const row = (name, r) => r && `| ${name} | ${r.ok}/${r.requests} | ${Object.keys(r.errors).length ? JSON.stringify(r.errors) : 'none'} | ${r.rps.toFixed(0)} | ${r.latency_ms.p50.toFixed(2)} | ${r.latency_ms.p90.toFixed(2)} | ${r.latency_ms.p99.toFixed(2)} | ${r.latency_ms.max.toFixed(1)} | ${r.crypto.bound_rps.toFixed(0)} | ${r.efficiency.toFixed(2)} | ${fix(r.server_cpu_us_per_request, 0)} | ${fix(r.crypto_share_of_server_cpu, 2)} | ${fix(r.client_cpu_seconds, 1)} | ${mb(r.rss_idle_kb)} | ${mb(r.rss_peak_kb)} |`;
const lines = [
  '| run | ok | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | crypto bound req/s | efficiency | server CPU µs/req | crypto share of server CPU | load tool CPU s | RSS before MB | RSS peak MB |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
const names = ['code', 'refresh', 'userinfo', 'device', 'code-rate1000', 'refresh-rate1000'];
for (const n of names) for (const who of ['keybound', 'peer']) { const l = row(`${who} ${n}`, get(`${who}-${n}`)); if (l) lines.push(l); }
const v = get('verify'); if (v) lines.push(row('verify (in process)', v));
lines.push('');
for (const n of ['code', 'refresh', 'userinfo']) {
  const k = get(`keybound-${n}`), p = get(`peer-${n}`);
  if (k && p) lines.push(`- ${n}: keybound ÷ peer = ${(k.rps / p.rps).toFixed(2)}`);
}
const s = get('keybound-start');
if (s) lines.push(`- keybound start to ready on the existing data directory: ${s.start_to_ready_ms} ms; RSS 1 s after start: ${mb(s.rss_idle_after_start_kb)} MB`);
console.log(lines.join('\n'));
EOF
echo "== summary ($OUT/summary.md)"
cat "$OUT/summary.md"
