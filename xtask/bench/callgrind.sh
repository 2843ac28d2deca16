#!/usr/bin/env bash
# Counts the instructions the emitting server spends on the adapter path, repeatably whatever the
# machine is doing (perf samples poorly in these VMs):
#   xtask/bench/callgrind.sh [IMPL] [COUNT] [SIZE]      (default: switchboard-redis 20000 64)
# IMPL: switchboard-redis, switchboard-redis-sharded or switchboard-mesh. Needs a release build
# (`cargo build --release -p xtask-bench --bins -p switchboard-mesh-discovery`), valgrind,
# redis-server and `npm ci` in xtask/interop. Server A runs under callgrind, server B and a client
# on B normally; instrumentation covers COUNT emits until B's client has them all. Prints the
# directory holding the profile (cg.out.1) and its flat top list (top.txt), and the instructions
# per emit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMPL=${1:-switchboard-redis}; COUNT=${2:-20000}; SIZE=${3:-64}
BIN=$ROOT/target/release
OUT=$(mktemp -d "/tmp/callgrind-$IMPL-XXXX")
cd "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 600); do grep -q '^ready' "$1" 2>/dev/null && return; sleep 0.2; done; echo "no ready in $1" >&2; exit 1; }
RPORT=$(free_port)
redis-server --port "$RPORT" --save '' --appendonly no >redis.log 2>&1 & PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
# under valgrind a publish may wait longer than the default max_publish_age of 2 s
ARGS=(--impl "$IMPL" --redis "redis://127.0.0.1:$RPORT" --max-publish-age-ms 600000)
if [[ $IMPL == *mesh* ]]; then
  DPORT=$(free_port)
  "$BIN/mesh-discovery" --port "$DPORT" --host 127.0.0.1 >discovery.log 2>&1 & PIDS+=($!)
  sleep 0.5
  ARGS+=(--discovery "ws://127.0.0.1:$DPORT")
fi
"$BIN/bench-server" "${ARGS[@]}" >b.log 2>&1 & PIDS+=($!)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.out" \
  "$BIN/bench-server" "${ARGS[@]}" >a.log 2>valgrind.log & APID=$!; PIDS+=($APID)
wait_ready b.log; wait_ready a.log
MARK="callgrind_control -i" node "$ROOT/xtask/interop/callgrind-drive.js" \
  "$(awk '/^ready/{print $2}' a.log)" "$(awk '/^ready/{print $2}' b.log)" "$COUNT" "$SIZE"
callgrind_control -d "$APID" >/dev/null
callgrind_annotate --threshold=100 cg.out.1 >top.txt 2>/dev/null
TOTAL=$(awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}' top.txt)
echo "$OUT: $TOTAL instructions, $((TOTAL / COUNT)) per emit"
