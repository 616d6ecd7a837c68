#!/usr/bin/env bash
# Fuzz every target for SECONDS each (default 30), two at a time (CI has two cores), starting
# from the seed corpus in fuzz/corpus/<target> (read only: what a run discovers goes to a
# scratch directory). Fails on the first crash, leak of a panic, hang (> 10 s for one input)
# or memory blow-up (> 2 GB), with the input that caused it in fuzz/artifacts/<target>/.
#   bash fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
# -s none: the sanitizers need a nightly toolchain; coverage instrumentation does not
cargo fuzz build -s none
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
bin=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
run() {
    local t=$1
    mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
    if "$bin/$t" "$scratch/$t" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$t/" >"$scratch/$t.log" 2>&1; then
        echo "fuzz $t: ok, $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$scratch/$t.log"), $(grep -o 'cov: [0-9]*' "$scratch/$t.log" | tail -1)"
    else
        echo "fuzz $t: FAILED"; tail -40 "$scratch/$t.log"; return 1
    fi
}
failed=0
pids=()
for t in "${targets[@]}"; do
    run "$t" & pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || failed=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
