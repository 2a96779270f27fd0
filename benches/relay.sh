#!/usr/bin/env bash
# Issue 14's relay table: N visitor ↔ operator pairs, both sides sending with
# W messages in flight, the echo baseline (same sockets, same window) in the
# same run. A fresh server and data dir per run, `--fsync always` (the
# default) unless FSYNC=batch. Usage:
#   bash benches/relay.sh [RUNS]      (default 3 runs of each row; quote medians)
# Results: one report table per run, also as JSON under target/relay/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchboard -p loadgen
out=target/relay; mkdir -p "$out"
runs=${1:-3}
fsync=${FSYNC:-always}
ulimit -n 20000
server_pid=""
./target/release/loadgen echo-server --bind 127.0.0.1:19091 > /dev/null 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true; [ -n "$server_pid" ] && kill $server_pid 2>/dev/null || true' EXIT
relay() {
  local name=$1; shift
  rm -rf "$out/data"
  SWITCHBOARD_ADMIN_PASSWORD=bench ./target/release/switchboard --data-dir "$out/data" --bind 127.0.0.1:18091 \
    --max-connections 60000 --visitor-sessions-per-minute 0 --fsync "$fsync" > "$out/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18091/healthz > /dev/null && break; sleep 0.1; done
  echo; echo "### $name ($fsync)"; echo; echo "\`loadgen relay $*\`"; echo
  ./target/release/loadgen relay --server http://127.0.0.1:18091 --admin-password bench --server-pid "$server_pid" \
    --json "$out/$name.json" "$@" 2> "$out/$name.progress"
  kill "$server_pid"; wait "$server_pid" || true; server_pid=""
}
for run in $(seq "$runs"); do
  relay "max-50-$run" --pairs 50 --window 8 --duration 10s --echo-url ws://127.0.0.1:19091
  relay "max-200-$run" --pairs 200 --window 8 --duration 10s --echo-url ws://127.0.0.1:19091
  relay "max-1000-$run" --pairs 1000 --window 8 --duration 10s --echo-url ws://127.0.0.1:19091
  relay "fixed-4000-$run" --pairs 1000 --window 8 --rate 4000 --duration 20s
done
