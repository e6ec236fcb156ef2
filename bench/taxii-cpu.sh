#!/usr/bin/env bash
# One bench/taxii-load.sh run with the server's CPU time per request beside wrk's figures: on
# this VM the request rate of one binary drifts by +-15-25% within the hour, the CPU time per
# request less. Compare builds by alternating them in one session (bench/taxii-ab.sh does):
#   for i in 1 2 3; do for b in /tmp/old /tmp/new; do bench/taxii-cpu.sh $b random 8; done; done
#   bench/taxii-cpu.sh BINARY [MODE=random] [SECONDS=8] [OBJECTS=100000]
# Prints: binary, req/s, p99, server CPU microseconds per request (user + system, whole process,
# over the measured wrk run only: not the start, the index build or a WARMUP run).
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
TEARLINE=$BIN WRK_OUT=$OUT bench/taxii-load.sh "$N" "$SECS" "$MODE" >"$OUT.run" 2>&1 || { cat "$OUT.run"; exit 1; }
awk -v b="$(basename "$BIN")" \
  '/Requests\/sec/ {rate=$2} $1=="99%" {p99=$2} /^server_cpu_us_per_request/ {cpu=$2}
   END {printf "%s %s req/s p99 %s server %s us/req\n", b, rate, p99, cpu}' "$OUT"
