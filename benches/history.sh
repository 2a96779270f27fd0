#!/usr/bin/env bash
# History benchmarks of issue "history" (BENCHMARKS.md, "History"): a million
# archived messages, search latency, memory after archiving, archive rate, and
# restart time with 1,000 live conversations. Release builds, loopback,
# durability on (--fsync always). Usage: bash benches/history.sh [quick]
# `bash benches/history.sh memory` measures only RSS after archiving, after a
# warm-up of 4 rounds (the allocator keeps a share of each peak for a few
# rounds): 3 fresh servers in turn, about 20 minutes each.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchboard -p loadgen
out=target/history; rm -rf "$out"; mkdir -p "$out"
scale=1; [ "${1:-}" = quick ] && scale=20
ulimit -n 20000
server_pid=""
# Starts the server; `startup_ms` is how long until /healthz answered.
startup_ms=0
start_server() {
  local started=$(date +%s%N)
  SWITCHBOARD_ADMIN_PASSWORD=bench ./target/release/switchboard --data-dir "$out/data" --bind 127.0.0.1:18092 \
    --visitor-sessions-per-minute 0 >> "$out/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 2000); do
    if curl -sf http://127.0.0.1:18092/healthz > /dev/null; then
      startup_ms=$(( ($(date +%s%N) - started) / 1000000 ))
      return
    fi
    sleep 0.005
  done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" || true; }
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null || true' EXIT

if [ "${1:-}" = memory ]; then
  for run in 1 2 3; do
    rm -rf "$out/data"
    start_server
    echo "### RSS after archiving, run $run"; echo
    ./target/release/loadgen history --server http://127.0.0.1:18092 --admin-password bench --server-pid "$server_pid" \
      --conversations 20000 --warm-up 20000 --warm-up-rounds 4 --live 100 --rounds 1 --queries 20 \
      --json "$out/memory-$run.json" 2> "$out/memory-$run.progress"
    stop_server
  done
  exit 0
fi

start_server
echo "### loadgen history"; echo
./target/release/loadgen history --server http://127.0.0.1:18092 --admin-password bench --server-pid "$server_pid" \
  --conversations $((20000 / scale)) --warm-up $((20000 / scale)) --live 1000 --json "$out/history.json" 2> "$out/history.progress"
stop_server

echo; echo "### restart with that history and 1,000 live conversations"; echo
echo "| run | ms to /healthz | RSS after start (MB) |"; echo "|---|---|---|"
for run in 1 2 3; do
  start_server
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$server_pid/status)
  echo "| $run | $startup_ms | $rss |"
  stop_server
done
echo
snapshot=$(ls -t "$out"/data/snapshot-*.bin | head -1)
echo "newest snapshot: $(stat -c %s "$snapshot") bytes; archive: $(stat -c %s "$out/data/history.sqlite3") bytes"
