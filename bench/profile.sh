#!/bin/bash
# Where the publish path spends its CPU (run after make; see bench/PROFILE.md).
#
# Starts nginx (2 workers) with the bench's publish zone and a `return 202`
# location, drives one of them with wrk for PROFILE_DURATION seconds while
# `perf record` samples both workers, and prints the hottest symbols.
#
#   bench/profile.sh [omnibus|raw|plain|nchan] [body bytes]  (omnibus 16384)
#
# raw is omnibus_publish with `omnibus_json off`; plain is `return 202`;
# nchan is nchan_publisher (Debian's libnginx-mod-nchan, NCHAN_MODULE).
#
# Knobs: PROFILE_DURATION (10), PROFILE_CALLGRAPH=1 (perf -g), PROFILE_STAT=1
# (count syscalls, context switches and CPU per request instead),
# PROFILE_CALLGRIND=N (N requests to one process under callgrind: exact
# instruction counts per request), PROFILE_MODULE (another build of the
# module, to compare), NGINX_BIN.
# Needs perf (Debian: linux-perf) and permission to sample the workers, or
# valgrind and h2load (nghttp2-client) for PROFILE_CALLGRIND.

set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
. "$BENCH/common.sh"

TARGET=${1:-omnibus}
SIZE=${2:-16384}
DUR=${PROFILE_DURATION:-10}
TMP=$BENCH/tmp/profile

case $TARGET in
    omnibus) PREFIX=/publish/ ;;
    raw)     PREFIX=/raw/ ;;
    plain)   PREFIX=/plain/ ;;
    nchan)   PREFIX=/nchan/pub/ ;;
    *) echo "profile: target is omnibus, raw, plain or nchan" >&2; exit 1 ;;
esac

if [ -n "${PROFILE_CALLGRIND:-}" ]; then
    TOOLS="valgrind callgrind_annotate h2load curl"
else
    TOOLS="wrk perf"
fi
for tool in "$NGINX" $TOOLS; do
    command -v "$tool" >/dev/null \
        || { echo "profile: $tool is missing" >&2; exit 1; }
done

PORT=$(free_port)

rm -rf "$TMP"
mkdir -p "$TMP/logs"

cat > "$TMP/nginx.conf" <<EOF
load_module ${PROFILE_MODULE:-$ROOT/objs/ngx_omnibus_module.so};
$([ "$TARGET" = nchan ] && echo "load_module $NCHAN_MODULE;")
$(if [ -n "${PROFILE_CALLGRIND:-}" ]; then
    echo "master_process off; daemon off; worker_processes 1;"
  else
    echo "worker_processes 2;"
  fi)
pid $TMP/nginx.pid;
error_log $TMP/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/body;
$(publish_zone_conf)
    server {
        listen 127.0.0.1:$PORT backlog=4096;
$(publish_locations)
$([ "$TARGET" = nchan ] && nchan_locations)
    }
}
EOF

# callgrind: one process, a fixed number of requests, instructions counted
# exactly (the figures do not depend on the load of the machine)
if [ -n "${PROFILE_CALLGRIND:-}" ]; then
    N=$PROFILE_CALLGRIND
    json_body "$SIZE" "$TMP/body.json"
    valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
        "$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/logs/error.log" \
        2> "$TMP/valgrind.log" &
    VG=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/plain/x" && break
        sleep 0.2
    done
    h2load --h1 -n "$N" -c 4 -d "$TMP/body.json" \
        -H 'Content-Type: application/json' \
        "http://127.0.0.1:$PORT${PREFIX}bench.t1" | grep -E '^(requests|status)'
    kill -QUIT $VG
    wait $VG || true
    echo "# $TARGET, $SIZE B bodies, $N requests, callgrind, 1 process"
    callgrind_annotate --inclusive=yes "$TMP/callgrind.out" 2>/dev/null \
        | perl -ne '
            BEGIN { $n = shift }
            if (/^([\d,]+) .*PROGRAM TOTALS/) { ($t = $1) =~ tr/,//d;
                printf "%-50s %10.0f Ir per request\n", "total", $t / $n }
            if (/^\s*([\d,]+) \([^)]*\)\s+\S*:(\S+)/) {
                ($v = $1) =~ tr/,//d;
                printf "%-50s %10.0f\n", $2, $v / $n
                    if $v / $n >= 100 && $c++ < 40 }' "$N"
    exit 0
fi

stop() {
    [ -f "$TMP/nginx.pid" ] && kill -QUIT "$(cat "$TMP/nginx.pid")" 2>/dev/null
    sleep 0.5
}
trap stop EXIT

"$NGINX" -p "$TMP" -c "$TMP/nginx.conf" -e "$TMP/logs/error.log"
sleep 0.5
WORKERS=$(pgrep -d, -P "$(cat "$TMP/nginx.pid")")

# warm up: connections, the zone's slab pages, each worker's topic cache
BODY_SIZE=$SIZE PATH_PREFIX=$PREFIX TOPICS=100 \
    wrk -t1 -c32 -d2s -s "$BENCH/pub.lua" "http://127.0.0.1:$PORT" >/dev/null

if [ "${PROFILE_STAT:-0}" = 1 ]; then
    perf stat -e raw_syscalls:sys_enter,context-switches,task-clock \
        -x, -o "$TMP/stat.csv" -p "$WORKERS" -- sleep "$DUR" &
else
    G=()
    [ "${PROFILE_CALLGRAPH:-0}" = 1 ] && G=(-g)
    perf record "${G[@]}" -F 2999 -o "$TMP/perf.data" -p "$WORKERS" \
        -- sleep "$DUR" 2>"$TMP/perf-record.log" &
fi
PERF=$!
sleep 0.2
BODY_SIZE=$SIZE PATH_PREFIX=$PREFIX TOPICS=100 \
    wrk -t1 -c32 -d"$((DUR - 1))s" -s "$BENCH/pub.lua" \
    "http://127.0.0.1:$PORT" > "$TMP/wrk.out"
wait "$PERF"

echo "# $TARGET, $SIZE B bodies, wrk -t1 -c32 -d$((DUR - 1))s, 2 workers"
grep '^RESULT ' "$TMP/wrk.out"
if [ "${PROFILE_STAT:-0}" = 1 ]; then
    # counted over the whole sleep, wrk ran for all but ~1 s of it
    REQ=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' "$TMP/wrk.out")
    awk -F, -v req="$REQ" '/^[0-9]/ {
        printf "%-26s %12.0f  %8.3f per request\n", $3, $1, $1 / req }' \
        "$TMP/stat.csv"
    exit 0
fi
perf report -i "$TMP/perf.data" --no-children --sort dso,symbol \
    --percent-limit 0.7 --stdio 2>/dev/null | grep -v '^$'
