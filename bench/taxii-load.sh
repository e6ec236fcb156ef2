#!/usr/bin/env bash
# TAXII load test on loopback with wrk (Debian package), 64 connections.
#   bench/taxii-load.sh [OBJECTS=1000000] [SECONDS=10] [all|policy|post|post-full|pages|random|paging|first|one|mixed]
# "post-full" POSTs into the generated collection (its N objects there already) instead of an empty one.
# "mixed" runs random pages and POSTs at the same time (32 connections each); MIXED_READER=partner
# reads the pages as the partner while the POSTs go into the collection it reads; MIXED_READER=local
# reads them as a local reader while the POSTs go into the collection it reads.
# "policy" compares GETs by a local reader with the same GETs by a principal acting for a
# partner (sharing rules, reference resolution, release history and audit on): the ratio is
# the cost of the policy (issue #4 target >= 0.8), over ROUNDS (default 3) interleaved rounds.
# TEARLINE=path runs that binary (default build/tearline), e.g. an older build for an A/B in one run.
# WARMUP=S runs each measured load for S seconds first, unmeasured (row cache filled).
# Each line ends with the server's CPU time (user + system) per request of the measured run,
# and the p50 and p99 of the same requests as the server timed them (its access log).
# THREADS=N sets [server] threads (default 0: the server's own default).
# CHECKPOINT_EVERY=N sets [audit] checkpoint_every (default 1000, the server's default: a signed
# checkpoint of the audit chain every 1000 audited releases).
# RATE=R: the GET routes at R requests/s (over the 64 connections, bench/taxii-pace.lua) instead
# of as fast as the server answers: the latency at that load (e.g. RATE=10000, issue #3's
# target rate). Without RATE every connection sends again as soon as it has its answer (the
# server saturated; the latency then is mostly the queue: mean = 64 / rate). POSTs are not paced.
# WRK_THREADS=N: wrk's threads (default 2). One thread sends these rates with a third of a core;
# a second one is one more runnable thread on the two cores the server uses too.
# READER=partner reads as the partner (below) instead of a local reader.
# OBJECT_CACHE_MB=N sets [limits] object_cache_mb (default: the server's, an eighth of the memory).
# Generates the collection once (build/bench-taxii/), starts `tearline serve`, runs:
#   GET objects (limit=100: the first page, and random pages through bench/taxii-pages.lua), GET objects
#   by type (first and random pages), GET one object, GET manifest, POST 100-object envelopes.
set -euo pipefail
cd "$(dirname "$0")/.."
TEARLINE=${TEARLINE:-build/tearline}
N=${1:-1000000}
SECS=${2:-10}
MODE=${3:-all}
WRK_THREADS=${WRK_THREADS:-2}
[[ "$WRK_THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/taxii-load.sh: WRK_THREADS must be a positive integer"; exit 2; }
[[ "${READER:-local}" =~ ^(local|partner)$ ]] || { echo "bench/taxii-load.sh: READER must be local or partner"; exit 2; }
[[ -z "${RATE:-}" || "$RATE" =~ ^[1-9][0-9]*$ ]] || { echo "bench/taxii-load.sh: RATE must be a positive integer (requests/s)"; exit 2; }
command -v wrk >/dev/null || { echo "bench/taxii-load.sh: install wrk (apt-get install wrk)"; exit 2; }
DIR=build/bench-taxii
mkdir -p "$DIR"
# The generated collection is kept pristine; every run works on a fresh copy of it, so the
# audit log and the POSTed objects of earlier runs (gigabytes after a while) do not weigh on
# the next one. BENCH_DB: run on that database instead, as it is.
PRISTINE=$DIR/bench-$N.db
[ -f "$PRISTINE" ] || build/bench_taxii_gen --db "$PRISTINE" --objects "$N"
if [ -n "${BENCH_DB:-}" ]; then
  DB=$BENCH_DB
else
  DB=$DIR/run-$N.db
  rm -f "$DB" "$DB"-wal "$DB"-shm "$DB".audit "$DB".audit-wal "$DB".audit-shm "$DB".audit-chain "$DB".key
  cp "$PRISTINE" "$DB"
  [ -f "$PRISTINE".audit ] && cp "$PRISTINE".audit "$DB".audit
  [ -f "$PRISTINE".audit-chain ] && cp "$PRISTINE".audit-chain "$DB".audit-chain
  # The copy's pages (63 MB for 100,000 objects) would otherwise be written back by the kernel
  # ~30 s later, in the middle of the measured runs, beside the server's audit syncs. (Not the
  # cause of the occasional p99 stalls, docs/benchmarks.md, eighteenth session: they remain.)
  sync
fi
PORT=18555
# Each wrk thread sends its share of RATE.
[ -n "${RATE:-}" ] && export RATE_PER_THREAD=$(awk -v r="$RATE" -v t="$WRK_THREADS" 'BEGIN {print r / t}')
PACE=()
[ -n "${RATE:-}" ] && PACE=(-s bench/taxii-rate.lua)
cat > "$DIR/bench.toml" <<TOML
[server]
port = $PORT
log_format = "json"
threads = ${THREADS:-0}
[database]
path = "$DB"
[audit]
checkpoint_every = ${CHECKPOINT_EVERY:-1000}
${OBJECT_CACHE_MB:+[limits]
object_cache_mb = $OBJECT_CACHE_MB}
[[api_roots]]
path = "api"
  [[api_roots.collections]]
  name = "bench"
  [[api_roots.collections]]
  name = "posted"
TOML
echo 'bench password 2026' | "$TEARLINE" principal add --db "$DB" bench --read bench,posted --write posted,bench --password-stdin >/dev/null
TOKEN=$("$TEARLINE" principal token --db "$DB" bench)
# A partner in a trust group the collection is shared with (objects are TLP:GREEN; unmarked ones default to GREEN).
PARTNER=identity--0b0e0c00-0000-4000-8000-00000000bec0
"$TEARLINE" principal add --db "$DB" partner --read bench >/dev/null
PTOKEN=$("$TEARLINE" principal token --db "$DB" partner)
"$TEARLINE" group add --db "$DB" bench-group >/dev/null
"$TEARLINE" partner add --db "$DB" "$PARTNER" --name "Bench partner" --principal partner --group bench-group --tier 1 >/dev/null
"$TEARLINE" collection share --db "$DB" bench --group bench-group --default-tlp green >/dev/null
${SERVE_PRELOAD:+env LD_PRELOAD=$SERVE_PRELOAD} "$TEARLINE" serve --config "$DIR/bench.toml" >"$DIR/serve.out" 2>"$DIR/serve.err" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT
for _ in $(seq 50); do grep -q serving "$DIR/serve.out" && break; sleep 0.1; done
AUTH="Authorization: Bearer $TOKEN"
# READER=partner: the GET routes (not the policy mode's, which compares both) as the partner's
# principal (sharing rules, release history, audit as a partner's).
READ_AUTH=$AUTH
[ "${READER:-local}" = partner ] && READ_AUTH="Authorization: Bearer $PTOKEN"
ACCEPT="Accept: application/taxii+json;version=2.1"
BASE=http://127.0.0.1:$PORT/api/collections
COLL=$(curl -s -H "$AUTH" "$BASE/" | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4)
POSTED=$(curl -s -H "$AUTH" "$BASE/" | grep -o '"id":"[^"]*"' | sed -n 2p | cut -d'"' -f4)
ONE=$(curl -s -H "$AUTH" "$BASE/$COLL/objects/?limit=1&match%5Btype%5D=indicator" | grep -o '"id":"indicator--[^"]*"' | head -1 | cut -d'"' -f4)
LAST=0
# Posted ids differ from one run to the next (bench/taxii-post.lua).
export POST_RUN_ID=$(( $(date +%s) % 100000000 ))
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
run() {
  local name=$1; shift
  local out t0 t1
  # WARMUP=S: the same load for S seconds first, not measured (a large collection's rows reach
  # the row cache; what a node that has been serving for a while is like).
  [ "${WARMUP:-0}" -gt 0 ] && wrk -t"$WRK_THREADS" -c64 -d"${WARMUP}s" -H "${RUN_AUTH:-$READ_AUTH}" -H "$ACCEPT" "$@" >/dev/null
  local logged
  logged=$(wc -l <"$DIR/serve.err")
  t0=$(ticks)
  out=$(wrk -t"$WRK_THREADS" -c64 -d"${SECS}s" --latency -H "${RUN_AUTH:-$READ_AUTH}" -H "$ACCEPT" "$@")
  t1=$(ticks)
  # The same requests as the server timed them (its JSON access log: from the request read to
  # the response written, the audit's durability included): wrk's latency adds the time requests
  # and responses wait in the sockets while threads wait for a core (the cores are shared).
  local served
  served=$(tail -n +"$((logged + 1))" "$DIR/serve.err" | grep -o '"micros":[0-9]*' | cut -d: -f2 | sort -n |
    awk '{a[NR] = $1} END {if (NR) printf "%.2fms %.2fms", a[int(NR * 0.5) + 1] / 1000, a[int(NR * 0.99) + 1] / 1000}')
  # The server's CPU time (user + system, all its threads) per request of the measured run.
  out="$out
server_cpu_us_per_request $(echo "$out" | awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '/requests in/ {printf "%.1f", t * 1e6 / hz / $1}')"
  [ -n "${WRK_OUT:-}" ] && echo "$out" > "$WRK_OUT"
  LAST=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  # Errors count against a run: wrk reports them, we must not hide them.
  if echo "$out" | grep -qE "Non-2xx|Socket errors"; then echo "$out" | grep -E "Non-2xx|Socket errors" | sed "s/^/  $name: /"; fi
  printf '%-34s %10s req/s  p50 %8s  p99 %8s  server %6s us/req  (server-timed p50 p99: %s)\n' "$name" "$LAST" \
    "$(echo "$out" | awk '$1=="50%" {print $2}')" "$(echo "$out" | awk '$1=="99%" {print $2}')" \
    "$(echo "$out" | awk '/^server_cpu_us_per_request/ {print $2}')" "${served:-none}"
}
# Random pages (bench/taxii-pages.lua): where a page starts at each object of the collection
# (the last versions: what a page holds by default), one drawn uniformly per request.
PAGES_STARTS=$DIR/starts-$N.txt
sqlite3 "$DB" "SELECT date_added - 1 FROM objects WHERE coll=(SELECT pk FROM collections WHERE name='bench') AND latest=1 ORDER BY date_added" >"$PAGES_STARTS"
export PAGES_STARTS
if [ "$MODE" = policy ]; then
  echo "collection: $N objects; wrk -t$WRK_THREADS -c64 -d${SECS}s on loopback; policy cost (same run)"
  # Interleaved rounds (read, partner, read, partner, ...): this VM drifts by +-15% between
  # runs, so the ratio is the sum of the partner rates over the sum of the read rates.
  ROUNDS=${ROUNDS:-3}
  # "random pages": pages of 100 from random objects (bench/taxii-pages.lua), each a new one:
  # no response cache helps (the first page is served from it after its first request).
  for route in "objects/?limit=100" "random pages" "objects/$ONE/" "manifest/?limit=100"; do
    READ_SUM=0; PARTNER_SUM=0
    if [ "$route" = "random pages" ]; then target=(-s bench/taxii-pages.lua "$BASE/$COLL/objects/"); else target=("$BASE/$COLL/$route"); fi
    for _ in $(seq "$ROUNDS"); do
      RUN_AUTH="$AUTH" run "read permission: GET $route" "${target[@]}"
      READ_SUM=$(awk -v a="$READ_SUM" -v b="$LAST" 'BEGIN {print a+b}')
      RUN_AUTH="Authorization: Bearer $PTOKEN" run "partner policy+audit: GET $route" "${target[@]}"
      PARTNER_SUM=$(awk -v a="$PARTNER_SUM" -v b="$LAST" 'BEGIN {print a+b}')
    done
    echo "ratio partner/read over $ROUNDS rounds: $(awk -v a="$PARTNER_SUM" -v b="$READ_SUM" 'BEGIN {printf "%.2f", a/b}')"
  done
  exit 0
fi
echo "collection: $N objects; wrk -t$WRK_THREADS -c64 -d${SECS}s on loopback (server and wrk share the cores)${RATE:+; GETs paced at $RATE req/s}"
if [ "$MODE" = post ]; then  # the POST route alone (e.g. to profile it)
  RUN_AUTH="$AUTH" run "POST 100 objects" -s bench/taxii-post.lua -H "Content-Type: application/taxii+json;version=2.1" "$BASE/$POSTED/objects/"
  exit 0
fi
if [ "$MODE" = post-full ]; then  # POST into the generated collection (N objects already there)
  RUN_AUTH="$AUTH" run "POST 100 objects (into $N)" -s bench/taxii-post.lua -H "Content-Type: application/taxii+json;version=2.1" "$BASE/$COLL/objects/"
  exit 0
fi
if [ "$MODE" = first ]; then  # the first page alone (served from the response cache after the second request)
  run "GET objects limit=100 (first page)" "${PACE[@]}" "$BASE/$COLL/objects/?limit=100"
  exit 0
fi
if [ "$MODE" = one ]; then  # GET one object alone
  run "GET one object" "${PACE[@]}" "$BASE/$COLL/objects/$ONE/"
  exit 0
fi
if [ "$MODE" = random ]; then  # random pages alone (e.g. to profile them)
  run "GET objects limit=100 (random pages)" -s bench/taxii-pages.lua "$BASE/$COLL/objects/"
  exit 0
fi
if [ "$MODE" = paging ]; then  # clients paging through the collection from random objects
  PAGES_FOLLOW=1 run "GET objects limit=100 (paging)" -s bench/taxii-pages.lua "$BASE/$COLL/objects/"
  exit 0
fi
if [ "$MODE" = mixed ]; then  # random pages and POSTs at once (32 connections each): reads and writes share the store
  # MIXED_READER=partner: the pages are read by the partner's principal (the sharing rules) and the
  # POSTs go into the collection it reads, so every new version empties the Releaser's caches
  # (what partners reading during ingest cost); otherwise a local reader, POSTs elsewhere, or
  # with MIXED_READER=local into the collection it reads (a client polling a collection under ingest).
  GET_AUTH=$AUTH
  INTO=$POSTED
  if [ "${MIXED_READER:-}" = partner ]; then GET_AUTH="Authorization: Bearer $PTOKEN"; INTO=$COLL; fi
  if [ "${MIXED_READER:-}" = local ]; then INTO=$COLL; fi
  wrk -t1 -c32 -d"${SECS}s" --latency -H "$GET_AUTH" -H "$ACCEPT" -s bench/taxii-pages.lua "$BASE/$COLL/objects/" >"$DIR/mixed-get.out" &
  WRK_GET=$!
  wrk -t1 -c32 -d"${SECS}s" --latency -H "$AUTH" -H "$ACCEPT" -s bench/taxii-post.lua \
    -H "Content-Type: application/taxii+json;version=2.1" "$BASE/$INTO/objects/" >"$DIR/mixed-post.out"
  wait $WRK_GET
  for f in get post; do
    out=$(cat "$DIR/mixed-$f.out")
    if echo "$out" | grep -qE "Non-2xx|Socket errors"; then echo "$out" | grep -E "Non-2xx|Socket errors" | sed "s/^/  $f: /"; fi
    printf '%-34s %10s req/s  p50 %8s  p99 %8s\n' "mixed: $( [ $f = get ] && echo 'GET random pages' || echo 'POST 100 objects')" \
      "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" "$(echo "$out" | awk '$1=="50%" {print $2}')" "$(echo "$out" | awk '$1=="99%" {print $2}')"
  done
  exit 0
fi
if [ "$MODE" = pages ]; then  # GET objects limit=100 alone
  run "GET objects limit=100 (first page)" "${PACE[@]}" "$BASE/$COLL/objects/?limit=100"
  run "GET objects limit=100 (random pages)" -s bench/taxii-pages.lua "$BASE/$COLL/objects/"
  exit 0
fi
run "GET objects limit=100 (first page)" "${PACE[@]}" "$BASE/$COLL/objects/?limit=100"
run "GET objects limit=100 (random pages)" -s bench/taxii-pages.lua "$BASE/$COLL/objects/"
PAGES_FOLLOW=1 run "GET objects limit=100 (paging)" -s bench/taxii-pages.lua "$BASE/$COLL/objects/"
run "GET objects type=indicator" "${PACE[@]}" "$BASE/$COLL/objects/?limit=100&match%5Btype%5D=indicator"
PAGES_QUERY="&match%5Btype%5D=indicator" run "GET type=indicator (random pages)" -s bench/taxii-pages.lua "$BASE/$COLL/objects/"
run "GET one object" "${PACE[@]}" "$BASE/$COLL/objects/$ONE/"
run "GET manifest limit=100" "${PACE[@]}" "$BASE/$COLL/manifest/?limit=100"
RUN_AUTH="$AUTH" run "POST 100 objects" -s bench/taxii-post.lua -H "Content-Type: application/taxii+json;version=2.1" "$BASE/$POSTED/objects/"
echo "POST objects/s = 100 x the POST req/s"
