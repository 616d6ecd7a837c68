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
WRK_CODES=${WRK_CODES:-10000}         # pre-minted code exchanges replayed by wrk
WRK_REFRESHES=${WRK_REFRESHES:-3000}  # pre-minted refreshes (each its own grant, one consent each)
IDLE=${IDLE:-10000}                   # idle keep-alive connections held through the last runs
KB_PORT=${KB_PORT:-18080}
B_PORT=${B_PORT:-18090} # a second keybound: the resource AS of identity chaining
PEER_PORT=${PEER_PORT:-18100}
OUT=${OUT:-$root/target/side-by-side}
PASSWORD=side-by-side-demo-password
SVC_SECRET=side-by-side-svc-secret-at-a
AS_SECRET=side-by-side-svc-secret-at-b

# both processes hold the idle connections' descriptors
ulimit -n $((IDLE * 2 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/summary.md
data=$(mktemp -d)
b_data=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$data" "$b_data"
}
trap cleanup EXIT

echo "== build (release)"
cargo build --release --locked -q -p keybound -p keybound-load
if [ ! -d interop/node_modules/oidc-provider ]; then (cd interop && npm ci --no-audit --no-fund --silent); fi
# wrk (Debian's package): the independent C load generator that replays pre-minted requests
if ! command -v wrk >/dev/null; then
  { apt-get install -y -q wrk || { apt-get update -q && apt-get install -y -q wrk; }; } >/dev/null 2>&1 ||
    echo "wrk could not be installed: the replay runs are skipped" >&2
fi
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

echo "== identity chaining: token exchange at keybound, jwt-bearer at a second keybound (B)"
a_iss="http://127.0.0.1:$KB_PORT"
b_iss="http://127.0.0.1:$B_PORT"
"$kb" --data-dir "$data" admin client add --client-id svc --auth-method client_secret_basic \
  --secret "$SVC_SECRET" --redirect-uri http://127.0.0.1:8081/callback \
  --exchange-audience "$b_iss=svc-at-b" >/dev/null
"$kb" --data-dir "$b_data" serve --listen "127.0.0.1:$B_PORT" >"$OUT/keybound-b.log" 2>&1 &
b_pid=$!
pids+=("$b_pid")
wait_healthy "$B_PORT"
"$kb" --data-dir "$b_data" admin client add --client-id svc-at-b --auth-method client_secret_basic \
  --secret "$AS_SECRET" --redirect-uri http://127.0.0.1:8081/callback --grant-type jwt-bearer >/dev/null
"$kb" --data-dir "$b_data" admin issuer add --issuer "$a_iss" --subject email >/dev/null
"$kb" --data-dir "$b_data" admin user add --username demo-at-b --password unused-password-at-b \
  --email demo@example.com >/dev/null
chain_args=(--client-id svc --client-secret "$SVC_SECRET" --audience "$b_iss")
run keybound-exchange --mode exchange --requests "$((REQUESTS / 2))" --concurrency "$CONCURRENCY" "${chain_args[@]}" "${kb_args[@]}"
run keybound-jwt-bearer --mode jwt-bearer --requests "$((REQUESTS / 2))" --concurrency "$CONCURRENCY" "${chain_args[@]}" \
  --issuer "$b_iss" --server-pid "$b_pid" --idp-issuer "$a_iss" --as-client-id svc-at-b --as-client-secret "$AS_SECRET"

# replay NAME MODE N ISSUER ARGS...: pre-mint N requests with keybound-load, replay them with
# wrk (2 threads, $CONCURRENCY connections); wrk runs for -d whatever happens, so -d is sized
# from the load tool's rate of the same mode ($OUT/NAME-with-the-load-tool.json) with room to spare
replay() {
  local name=$1 mode=$2 n=$3 issuer=$4 who=$5
  shift 5
  command -v wrk >/dev/null || return 0
  local reqs="$OUT/$name.requests"
  KEYBOUND_LOAD_PASSWORD=$PASSWORD "$load" --mode "$mode" --requests "$n" --issuer "$issuer" "$@" --emit-requests "$reqs" 2>/dev/null
  local secs
  secs=$(node -e 'const r=require(process.argv[1]); console.log(Math.ceil(2 * process.argv[2] / r.rps) + 1)' "$OUT/$who-$mode.json" "$n")
  echo "-- $name: wrk -t 2 -c $CONCURRENCY -d ${secs}s, $n pre-minted requests"
  wrk -t 2 -c "$CONCURRENCY" -d "${secs}s" -s bench/wrk-replay.lua "$issuer" -- "$reqs" 2 >"$OUT/$name.wrk.txt"
  sed -n 's/^wrk-replay //p' "$OUT/$name.wrk.txt" >"$OUT/$name.json"
  echo "   $(cat "$OUT/$name.json")"
  rm -f "$reqs"
}
echo "== wrk replaying pre-minted requests (an independent C load generator)"
replay keybound-code-wrk code "$WRK_CODES" "$a_iss" keybound
replay peer-code-wrk code "$WRK_CODES" "http://127.0.0.1:$PEER_PORT" peer --plain-dpop
replay keybound-refresh-wrk refresh "$WRK_REFRESHES" "$a_iss" keybound
replay peer-refresh-wrk refresh "$WRK_REFRESHES" "http://127.0.0.1:$PEER_PORT" peer --plain-dpop

echo "== open loop: $RATE_REQUESTS requests at 1000 req/s"
for mode in code refresh; do
  run "keybound-$mode-rate1000" --mode "$mode" --requests "$RATE_REQUESTS" --rate 1000 "${kb_args[@]}"
  run "peer-$mode-rate1000" --mode "$mode" --requests "$RATE_REQUESTS" --rate 1000 "${peer_args[@]}"
done

echo "== many connections: $IDLE idle keep-alive connections held through a closed-loop run"
# a fresh keybound on the same data, allowed the connections and not closing them while idle
# (header_read_timeout is also hyper's keep-alive idle limit)
kill "$kb_pid" && wait "$kb_pid" 2>/dev/null || true
KEYBOUND_MAX_CONNECTIONS=$((IDLE + 1000)) KEYBOUND_HEADER_READ_TIMEOUT=600 \
  "$kb" serve --data-dir "$data" --listen "127.0.0.1:$KB_PORT" >"$OUT/keybound-idle.log" 2>&1 &
kb_pid=$!
pids+=("$kb_pid")
wait_healthy "$KB_PORT"
kb_args=(--issuer "http://127.0.0.1:$KB_PORT" --server-pid "$kb_pid")
for mode in code refresh; do
  run "keybound-$mode-idle" --mode "$mode" --requests "$REQUESTS" --concurrency "$CONCURRENCY" --idle-connections "$IDLE" "${kb_args[@]}"
done

# the servers go first: an idle Node.js heap of hundreds of MB still collects garbage, and the
# in-process run needs both cores
echo "== consuming component in process (servers stopped)"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
sleep 1
run verify --mode verify --requests "$REQUESTS" --concurrency 2

node - "$OUT" >"$OUT/summary.md" <<'EOF'
const fs = require('fs');
const out = process.argv[2];
const get = (n) => { try { return JSON.parse(fs.readFileSync(`${out}/${n}.json`)); } catch { return null; } };
const mb = (kb) => (kb == null ? '' : (kb / 1024).toFixed(1));
const fix = (x, d) => (x == null ? '' : x.toFixed(d));
// server CPU per request as a multiple of its crypto (ES256 work timed in the same run)
const crypto_us = (r) => r.crypto.verifies * r.crypto.verify_us + r.crypto.signs * r.crypto.sign_us;
const times = (r) => (r.server_cpu_us_per_request == null ? '' : (r.server_cpu_us_per_request / crypto_us(r)).toFixed(2));
const row = (name, r) => r && `| ${name} | ${r.ok}/${r.requests} | ${Object.keys(r.errors).length ? JSON.stringify(r.errors) : 'none'} | ${r.rps.toFixed(0)} | ${r.latency_ms.p50.toFixed(2)} | ${r.latency_ms.p90.toFixed(2)} | ${r.latency_ms.p99.toFixed(2)} | ${r.latency_ms.max.toFixed(1)} | ${r.crypto.bound_rps.toFixed(0)} | ${r.efficiency.toFixed(2)} | ${fix(r.server_cpu_us_per_request, 0)} | ${crypto_us(r).toFixed(0)} | ${times(r)} | ${fix(r.client_cpu_seconds, 1)} | ${mb(r.rss_idle_kb)} | ${mb(r.rss_peak_kb)} |`;
const lines = [
  '| run | ok | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | crypto bound req/s | efficiency | server CPU µs/req | its crypto µs | CPU ÷ crypto | load tool CPU s | RSS before MB | RSS peak MB |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
];
const names = ['code', 'refresh', 'userinfo', 'device', 'exchange', 'jwt-bearer', 'code-rate1000', 'refresh-rate1000'];
for (const n of names) for (const who of ['keybound', 'peer']) { const l = row(`${who} ${n}`, get(`${who}-${n}`)); if (l) lines.push(l); }
const v = get('verify'); if (v) lines.push(row('verify (in process)', v));
lines.push('');
for (const n of ['code', 'refresh', 'userinfo']) {
  const k = get(`keybound-${n}`), p = get(`peer-${n}`);
  if (k && p) lines.push(`- ${n}: keybound ÷ peer = ${(k.rps / p.rps).toFixed(2)}`);
}
for (const n of ['code', 'refresh']) {
  const k = get(`keybound-${n}-wrk`), p = get(`peer-${n}-wrk`);
  if (k && p) lines.push(`- ${n} replayed by wrk: keybound ${k.ok} ok at ${k.rps.toFixed(0)} req/s (p50 ${k.p50_ms} ms, p99 ${k.p99_ms} ms, answers ${JSON.stringify(k.statuses)}), peer ${p.ok} ok at ${p.rps.toFixed(0)} req/s (p50 ${p.p50_ms}, p99 ${p.p99_ms}, answers ${JSON.stringify(p.statuses)}): keybound ÷ peer = ${(k.rps / p.rps).toFixed(2)}`);
}
if (v && v.interleaved_efficiency != null) lines.push(`- consuming component in process, each presentation alternated with its two signature checks alone: efficiency ${v.interleaved_efficiency.toFixed(2)}`);
for (const n of ['code', 'refresh']) {
  const i = get(`keybound-${n}-idle`), k = get(`keybound-${n}`);
  if (i && i.rss_with_idle_connections_kb != null) lines.push(`- ${n} with ${i.idle_connections} idle keep-alive connections held (a fresh server): RSS ${mb(i.rss_idle_kb)} MB at start, ${mb(i.rss_with_idle_connections_kb)} MB with the connections open, ${mb(i.rss_peak_kb)} MB peak; ${i.rps.toFixed(0)} req/s, p99 ${i.latency_ms.p99.toFixed(2)} ms, ${fix(i.server_cpu_us_per_request, 0)} µs CPU/req (CPU ÷ crypto ${times(i)})` + (k ? `; without them ${k.rps.toFixed(0)} req/s, p99 ${k.latency_ms.p99.toFixed(2)} ms, ${fix(k.server_cpu_us_per_request, 0)} µs (${times(k)})` : ''));
}
const s = get('keybound-start');
if (s) lines.push(`- keybound start to ready on the existing data directory: ${s.start_to_ready_ms} ms; RSS 1 s after start: ${mb(s.rss_idle_after_start_kb)} MB`);
console.log(lines.join('\n'));
EOF
echo "== summary ($OUT/summary.md)"
cat "$OUT/summary.md"
