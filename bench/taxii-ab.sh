#!/usr/bin/env bash
# A/B of two tearline binaries on one TAXII route, in one run: the VM this project is measured on
# drifts by +-20-35% within the hour, so only pairs measured back to back compare. Alternates the
# order (old-new, new-old, ...) so a drift within a pair does not favour one side, and prints each
# run (bench/taxii-cpu.sh: req/s, p99, server CPU per request), each pair's ratios new/old, and
# their medians.
#   bench/taxii-ab.sh OLD_BINARY NEW_BINARY [MODE=random] [PAIRS=5] [SECONDS=8] [OBJECTS=100000]
# MODE: a bench/taxii-load.sh mode that runs one wrk load (random, first, one, post, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/taxii-ab.sh OLD_BINARY NEW_BINARY [MODE] [PAIRS] [SECONDS] [OBJECTS]}
NEW=${2:?usage: bench/taxii-ab.sh OLD_BINARY NEW_BINARY [MODE] [PAIRS] [SECONDS] [OBJECTS]}
MODE=${3:-random}
PAIRS=${4:-5}
SECS=${5:-8}
N=${6:-100000}
[ "$(realpath "$OLD")" != "$(realpath "$NEW")" ] || echo "bench/taxii-ab.sh: the same binary twice (a null test)" >&2
# Each runs from a copy of its own: a rebuild during the run changes neither side.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp "$OLD" "$TMP/tl-old"
cp "$NEW" "$TMP/tl-new"
run() { bench/taxii-cpu.sh "$TMP/tl-$1" "$MODE" "$SECS" "$N"; }
RATIOS=$TMP/ratios
for i in $(seq "$PAIRS"); do
  if [ $((i % 2)) -eq 1 ]; then a=$(run old); b=$(run new); else b=$(run new); a=$(run old); fi
  echo "$a"
  echo "$b"
  # Fields: name rate "req/s" "p99" p99 "server" cpu "us/req", then the same for b from $9.
  # (wrk prints the p99 in us, ms or s: kept in ms.)
  echo "$a $b" | awk 'function ms(v) { return v ~ /ms$/ ? v + 0 : v ~ /us$/ ? v / 1000 : v * 1000 }
                      {print $10/$2, $15/$7, ms($5), ms($13)}' >>"$RATIOS"
  tail -1 "$RATIOS" | awk -v i="$i" '{printf "pair %d: req/s new/old %.3f, server CPU per request new/old %.3f\n", i, $1, $2}'
done
median() { sort -n | awk '{r[NR]=$1} END {printf "%.3f", NR % 2 ? r[(NR+1)/2] : (r[NR/2]+r[NR/2+1])/2}'; }
echo "median over $PAIRS pairs ($MODE): req/s new/old $(cut -d' ' -f1 "$RATIOS" | median)," \
  "server CPU per request new/old $(cut -d' ' -f2 "$RATIOS" | median)," \
  "p99 old $(cut -d' ' -f3 "$RATIOS" | median) ms, new $(cut -d' ' -f4 "$RATIOS" | median) ms"
