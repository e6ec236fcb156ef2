#!/usr/bin/env bash
# One bench/taxii-load.sh run with the server's CPU time per request beside wrk's figures: on
# this VM the request rate of one binary drifts by +-15-25% within the hour, the CPU time per
# request less. Compare builds by alternating them in one session:
#   for i in 1 2 3; do for b in /tmp/old /tmp/new; do bench/taxii-cpu.sh $b random 8; done; done
#   bench/taxii-cpu.sh BINARY [MODE=random] [SECONDS=8] [OBJECTS=100000]
# Prints: binary, req/s, p99, server CPU microseconds per request (user + system, whole process).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: bench/taxii-cpu.sh BINARY [MODE] [SECONDS] [OBJECTS]}
MODE=${2:-random}
SECS=${3:-8}
N=${4:-100000}
OUT=$(mktemp)
trap 'rm -f "$OUT" "$OUT.run"' EXIT
sync  # the previous run's writeback (its audit chain) must not land in this one
sleep 1
TEARLINE=$BIN WRK_OUT=$OUT bench/taxii-load.sh "$N" "$SECS" "$MODE" >"$OUT.run" 2>&1 &
RUN=$!
PID=
for _ in $(seq 200); do
  PID=$(pgrep -f "$BIN serve --config" | head -1 || true)
  [ -n "$PID" ] && break
  sleep 0.05
done
TICKS=0
while [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; do
  T=$(awk '{print $14 + $15}' "/proc/$PID/stat" 2>/dev/null || true)
  [ -n "$T" ] && TICKS=$T
  sleep 0.2
done
wait $RUN || { cat "$OUT.run"; exit 1; }
REQS=$(awk '/requests in/ {print $1}' "$OUT")
awk -v b="$(basename "$BIN")" -v t="$TICKS" -v r="$REQS" -v hz="$(getconf CLK_TCK)" \
  '/Requests\/sec/ {rate=$2} $1=="99%" {p99=$2} END {printf "%s %s req/s p99 %s server %.1f us/req\n", b, rate, p99, t*1e6/hz/r}' "$OUT"
