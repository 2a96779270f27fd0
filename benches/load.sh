#!/usr/bin/env bash
# Load benchmarks of issue "loadgen": server and loadgen as separate release
# processes on loopback, durability on (--fsync always). Usage:
#   bash benches/load.sh [quick|long]
# Each scenario starts a fresh server on a fresh data dir; results are the
# loadgen report tables (also written as JSON under target/load/).
# `long` adds the 10-minute runs: the 10,000-visitor hold and the churn soak.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchboard -p loadgen
out=target/load; mkdir -p "$out"
scale=1; [ "${1:-}" = quick ] && scale=10
hold=60s; [ "${1:-}" = long ] && hold=600s
ulimit -n 20000
server_pid=""
start_server() {
  rm -rf "$out/data"
  SWITCHBOARD_ADMIN_PASSWORD=bench ./target/release/switchboard --data-dir "$out/data" --bind 127.0.0.1:18090 \
    --max-connections 60000 --visitor-sessions-per-minute 0 > "$out/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/healthz > /dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" || true; }
run() {
  local name=$1; shift
  echo; echo "### $name"; echo; echo "\`loadgen run $*\`"; echo
  ./target/release/loadgen run --server http://127.0.0.1:18090 --admin-password bench --server-pid "$server_pid" \
    --json "$out/$name.json" "$@" 2> "$out/$name.progress"
}
./target/release/loadgen echo-server --bind 127.0.0.1:19090 > /dev/null 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true; [ -n "$server_pid" ] && kill $server_pid 2>/dev/null || true' EXIT

start_server
run throughput --operators 100 --visitors $((2000 / scale)) --ramp 2s --messages 40 --think 0ms --duration 40s \
  --echo-url ws://127.0.0.1:19090
stop_server

start_server
run time-to-operator --operators 100 --visitors $((3000 / scale)) --ramp $((30 / scale))s --messages 1 --think 10ms --duration 60s
stop_server

start_server
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$server_pid/status)
run hold-10k --operators 100 --visitors $((10000 / scale)) --ramp 2s --messages 1 --think 10ms --stay --duration $hold
echo; echo "server RSS before the visitors: $((idle_rss / 1024)) MB"
stop_server

# 10,000 connected visitors, each answered after 4 s and answering at once:
# 10,000 × 2 messages / 4 s = 5,000 inbound messages/s. No calls for help: at
# this scale the default 5 % makes thousands of them, and the whole board is
# pushed to every operator (see BENCHMARKS.md) — that is another measurement.
latency_5k=(--operators 100 --visitors $((10000 / scale)) --ramp 2s --messages 15 --think 4s --help-rate 0 --duration 75s)
start_server
run latency-5k "${latency_5k[@]}"
stop_server

# The same with each think time spread over 2-6 s: a fixed think time sends
# the start's connection burst back every cycle; spread, the messages arrive at
# a steady 5,000/s once set-up is over (the report's "sent once every visitor
# was through set-up" row).
start_server
run latency-5k-spread "${latency_5k[@]}" --think-jitter 0.5
stop_server

churn() {
  local name=$1; shift
  echo; echo "### $name"; echo; echo "\`loadgen churn $*\`"; echo
  ./target/release/loadgen churn --server http://127.0.0.1:18090 --admin-password bench --server-pid "$server_pid" \
    --json "$out/$name.json" "$@" 2> "$out/$name.progress"
}
start_server
churn churn-cycles --sessions $((10000 / scale)) --cycles 5
stop_server

if [ "${1:-}" = long ]; then
  start_server
  churn soak --sessions 2000 --duration 600s --rate 200
  stop_server
fi
