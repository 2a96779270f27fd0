#!/usr/bin/env bash
# Issue 14's "1,000 operators connecting": frames the consoles receive as the
# team grows, one `presence` per change (`each`, API.md v1) against gathered
# `presences` frames (`batched`). A fresh server and data dir per run.
# Usage: bash benches/presence.sh [RUNS]   (default 3; quote medians; MODES="batched" for one form)
# Results: one report table per run, also as JSON under target/presence/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchboard -p loadgen
out=target/presence; mkdir -p "$out"
runs=${1:-3}
ulimit -n 20000
server_pid=""
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null || true' EXIT
presence() {
  local name=$1; shift
  rm -rf "$out/data"
  SWITCHBOARD_ADMIN_PASSWORD=bench ./target/release/switchboard --data-dir "$out/data" --bind 127.0.0.1:18094 \
    --visitor-sessions-per-minute 0 > "$out/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18094/healthz > /dev/null && break; sleep 0.1; done
  echo; echo "### $name"; echo; echo "\`loadgen presence $*\`"; echo
  ./target/release/loadgen presence --server http://127.0.0.1:18094 --admin-password bench \
    --json "$out/$name.json" "$@" 2> "$out/$name.progress"
  kill "$server_pid"; wait "$server_pid" || true; server_pid=""
}
for run in $(seq "$runs"); do
  for operators in 250 500 1000; do
    for mode in ${MODES:-each batched}; do
      presence "$mode-$operators-$run" --operators "$operators" --presence "$mode"
    done
  done
done
