#!/bin/bash
# ngx_omnibus_module benchmark suite: `make bench` (or bench/run.sh after make).
#
# Starts its own nginx instances on 127.0.0.1 under bench/tmp/, runs
#   1. publish throughput: omnibus (JSON validated, and `omnibus_json off`)
#      vs `return 202` vs nchan's publisher, at 256 B, 1 KiB and 16 KiB,
#      each with two body shapes: "padded" ({"seq":0,"pad":"xxx..."}) and
#      "orders" (realistic documents: bench/gen-orders.pl, BENCH_ORDERS_DOCS
#      (16) different ones per size, exactly the size each); then 1b, the
#      JSON validation alone (bench/jsonbench.sh's table; BENCH_JSONBENCH=0
#      skips it). With both shapes section 1 takes twice as many wrk runs:
#      2 x 3 sizes x 4 targets x BENCH_ROUNDS x BENCH_DURATION (3 x 5 s:
#      6 minutes, plus about half a minute for 1b)
#   2. end to end: publish -> webhook to a local nginx, rate and latency
#   3. fan-out: 1 publisher, 1000 SSE subscribers, omnibus vs nchan
#   4. memory: shared memory bytes per queued message
#   5. scaling: 1 vs 2 workers, empty bus vs 50,000 queued messages
#   6. soak (bench/soak.sh): SOAK_SECONDS (600) at half the maximum rate,
#      one webhook route and 100 SSE subscribers, sampled every minute
#   7. Kafka (bench/kafka.sh): kafka:// routes against librdkafka's mock
#      cluster (3 brokers): a backlog drained into Kafka against `kcat -P`,
#      steady publish -> Kafka, publish-to-ack latency
#   8. durable store (bench/store.sh): omnibus_store into a PostgreSQL it
#      starts (fsync on): publish req/s memory-only vs mode=sync vs
#      mode=async against pgbench's one-INSERT-per-commit baseline, commit
#      and publish latency, table sizes (BENCH_STORE=0 skips it; knobs
#      BENCH_STORE_SETTINGS, BENCH_STORE_LAT_DURATION, ..._LAT_CLIENTS,
#      ..._LAT_RATE, ..._PG_BIN in bench/store.sh)
#   9. Redis (bench/redis.sh): omnibus_redis against a redis-server it
#      starts: publish with a distinct Idempotency-Key per request, zone
#      only vs the zone plus Redis dedup (nchan's publisher in memory vs
#      on Redis for context), and fan-out across three pods (publish on
#      one, SSE subscribers on the two others) against nchan on Redis
#      (BENCH_REDIS=0 skips it; knob BENCH_REDIS_SERVER in bench/redis.sh)
#  10. cluster (bench/cluster.sh, bench/cluster.pl): the cluster of
#      t/90-cluster.t (t/lib/Omnibus/Cluster.pm: redis-server with AOF,
#      PostgreSQL, the mock Kafka cluster, pods with omnibus_store
#      mode=sync, omnibus_redis and a webhook and a Kafka route, a front
#      nginx): accepted messages/s through the front with 1, 2 and 3 pods
#      and the CPU of every component, publish-to-webhook latency
#      (BENCH_CLUSTER=0 skips it; knobs in bench/cluster.sh)
# and writes bench/RESULTS.md, bench/results.png and the data files
# they come from (bench/data/). Needs nginx, wrk, h2load, gnuplot, curl,
# perl (core modules) and Debian's libnginx-mod-nchan; section 7 needs
# kcat and librdkafka-dev too (BENCH_KAFKA=0 skips it), section 8
# PostgreSQL's server binaries and pgbench (BENCH_STORE=0 skips it),
# section 9 redis-server and redis-cli (BENCH_REDIS=0 skips it), section
# 10 all of these but nchan (BENCH_CLUSTER=0 skips it).
#
# Knobs (environment): BENCH_DURATION (seconds per wrk run, 5),
# BENCH_ROUNDS (3), BENCH_CONNS (wrk connections, 32), BENCH_FANOUT_SUBS
# (1000), BENCH_FANOUT_MSGS (500), BENCH_LATENCY_DURATION (10),
# BENCH_LOWLAT_MSGS (2000), BENCH_ORDERS_DOCS (16), BENCH_JSONBENCH (1),
# NGINX_BIN, BENCH_MODULE (the module to load, objs/ngx_omnibus_module.so),
# NCHAN_MODULE, BENCH_KEEP=1 (keep bench/tmp); the soak's in
# bench/soak.sh (SOAK_SECONDS=0 skips it), the Kafka section's in
# bench/kafka.sh (BENCH_KAFKA=0 skips it), the store section's in
# bench/store.sh (BENCH_STORE=0 skips it), the Redis section's in
# bench/redis.sh (BENCH_REDIS=0 skips it), the cluster section's in
# bench/cluster.sh (BENCH_CLUSTER=0 skips it).
# `bench/run.sh publish` or PUBLISH_ONLY=1 runs only section 1 (and 1b),
# `bench/run.sh soak` or SOAK_ONLY=1 only the soak, `bench/run.sh
# kafka` or KAFKA_ONLY=1 only the Kafka section, `bench/run.sh store` or
# STORE_ONLY=1 only the store section, `bench/run.sh redis` or
# REDIS_ONLY=1 only the Redis section, `bench/run.sh cluster` or
# CLUSTER_ONLY=1 only the cluster section, `bench/run.sh fanout` or
# FANOUT_ONLY=1 only section 3; each writes the report again with the
# other sections' data files of the last full run.

set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
. "$BENCH/common.sh"
MODULE=${BENCH_MODULE:-$ROOT/objs/ngx_omnibus_module.so}

DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-32}
FAN_SUBS=${BENCH_FANOUT_SUBS:-1000}
FAN_MSGS=${BENCH_FANOUT_MSGS:-500}
LAT_DUR=${BENCH_LATENCY_DURATION:-10}
ORDERS_DOCS=${BENCH_ORDERS_DOCS:-16}
JSONBENCH=${BENCH_JSONBENCH:-1}
SIZES="256 1024 16384"
SHAPES="padded orders"
MEM_SIZES="100 1024 16384"
TOPICS=100
PREFILL=50000

TMP=$BENCH/tmp
DATA=$BENCH/data
WRK=(wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/pub.lua")

START=$(date +%s.%N)
PUBLISH_ONLY=${PUBLISH_ONLY:-0}
SOAK_ONLY=${SOAK_ONLY:-0}
KAFKA_ONLY=${KAFKA_ONLY:-0}
STORE_ONLY=${STORE_ONLY:-0}
REDIS_ONLY=${REDIS_ONLY:-0}
CLUSTER_ONLY=${CLUSTER_ONLY:-0}
FANOUT_ONLY=${FANOUT_ONLY:-0}
[ "${1:-}" = publish ] && PUBLISH_ONLY=1
[ "${1:-}" = soak ] && SOAK_ONLY=1
[ "${1:-}" = kafka ] && KAFKA_ONLY=1
[ "${1:-}" = store ] && STORE_ONLY=1
[ "${1:-}" = redis ] && REDIS_ONLY=1
[ "${1:-}" = cluster ] && CLUSTER_ONLY=1
[ "${1:-}" = fanout ] && FANOUT_ONLY=1

. "$BENCH/kafka.sh"
. "$BENCH/store.sh"
. "$BENCH/redis.sh"
. "$BENCH/cluster.sh"

for tool in "$NGINX" wrk h2load gnuplot curl perl; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "bench: $MODULE is missing: run make" >&2; exit 1; }
[ -f "$NCHAN_MODULE" ] || { echo "bench: $NCHAN_MODULE is missing (libnginx-mod-nchan)" >&2; exit 1; }
if [ "$KAFKA_ONLY" = 1 ] && [ "$BENCH_KAFKA" = 0 ]; then
    echo "bench: BENCH_KAFKA=0 and only the Kafka section asked: nothing to do" >&2
    exit 1
fi
if [ "$STORE_ONLY" = 1 ] && [ "$BENCH_STORE" = 0 ]; then
    echo "bench: BENCH_STORE=0 and only the store section asked: nothing to do" >&2
    exit 1
fi
if [ "$REDIS_ONLY" = 1 ] && [ "$BENCH_REDIS" = 0 ]; then
    echo "bench: BENCH_REDIS=0 and only the Redis section asked: nothing to do" >&2
    exit 1
fi
if [ "$CLUSTER_ONLY" = 1 ] && [ "$BENCH_CLUSTER" = 0 ]; then
    echo "bench: BENCH_CLUSTER=0 and only the cluster section asked: nothing to do" >&2
    exit 1
fi
# KAFKA_ONLY, STORE_ONLY, REDIS_ONLY, CLUSTER_ONLY, SOAK_ONLY,
# PUBLISH_ONLY: the one section run (the first of them set, as below)
ONLY=
for only in kafka:$KAFKA_ONLY store:$STORE_ONLY redis:$REDIS_ONLY \
            cluster:$CLUSTER_ONLY soak:$SOAK_ONLY publish:$PUBLISH_ONLY \
            fanout:$FANOUT_ONLY; do
    if [ "${only#*:}" = 1 ]; then
        ONLY=${only%%:*}
        break
    fi
done
if [ "$BENCH_KAFKA" != 0 ] && { [ -z "$ONLY" ] || [ "$ONLY" = kafka ]; }; then
    kafka_require || exit 1
fi
if [ "$BENCH_STORE" != 0 ] && { [ -z "$ONLY" ] || [ "$ONLY" = store ]; }; then
    store_require || exit 1
fi
if [ "$BENCH_REDIS" != 0 ] && { [ -z "$ONLY" ] || [ "$ONLY" = redis ]; }; then
    redis_require || exit 1
fi
if [ "$BENCH_CLUSTER" != 0 ] && { [ -z "$ONLY" ] || [ "$ONLY" = cluster ]; }; then
    cluster_require || exit 1
fi

if [ -n "$ONLY" ]; then
    rm -rf "$TMP"    # keep the data of the other sections
    if [ "$ONLY" = publish ]; then
        rm -f "$DATA"/publish-*.tsv "$DATA"/publish-errors.txt \
            "$DATA"/orders*.tsv "$DATA"/orders-*.json "$DATA"/jsonbench.md
        [ -f "$DATA/commands.tsv" ] && sed -i '/^publish-/d;/^orders-/d;/^jsonbench	/d' "$DATA/commands.tsv"
    fi
else
    rm -rf "$TMP" "$DATA"
fi
mkdir -p "$TMP" "$DATA"

# ---------------------------------------------------------------- helpers

now() { date +%s.%N; }
say() { printf "[%6.1fs] %s\n" "$(calc "$(now) - $START" 1)" "$*"; }
calc() { perl -e "printf q(%.${2:-0}f), $1"; }

# `cmd LABEL command...`: run a command and record it once per LABEL in
# data/commands.tsv (with bench/tmp paths shortened) for RESULTS.md
cmd_record() {  # cmd_record LABEL command...: record only
    local label=$1; shift
    if ! grep -q "^$label	" "$DATA/commands.tsv" 2>/dev/null; then
        local line="" a
        for a in "$@"; do
            case $a in
                *' '*|*'"'*|*'{'*) line+=" '$a'" ;;
                *) line+=" $a" ;;
            esac
        done
        line=${line# }
        printf '%s\t%s\n' "$label" "${line//$ROOT\//}" >> "$DATA/commands.tsv"
    fi
}

cmd() {
    cmd_record "$@"
    shift
    "$@"
}

# env-prefixed wrk command: `cmd_env LABEL VAR=val ... -- wrk ...`
cmd_env() {
    local label=$1; shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    cmd "$label" env "${envs[@]}" "$@"
}

# parse the RESULT line of pub.lua: sets W_REQ W_DUR W_NON2XX W_SOCKERR
# W_RATE (2xx answers per second) W_P50 W_P99
wrk_parse() {
    local line
    line=$(grep '^RESULT ' "$1" | tail -1)
    [ -n "$line" ] || { echo "bench: wrk gave no RESULT:" >&2; cat "$1" >&2; return 1; }
    eval "$(echo "${line#RESULT }" | perl -ne '
        my %h = /(\w+)=(\d+)/g;
        printf "W_REQ=%d W_DUR=%.3f W_NON2XX=%d W_SOCKERR=%d W_P50=%.3f W_P99=%.3f W_RATE=%.0f\n",
            $h{requests}, $h{duration_us} / 1e6, $h{non2xx}, $h{sockerr},
            $h{p50_us} / 1000, $h{p99_us} / 1000,
            ($h{requests} - $h{non2xx}) / ($h{duration_us} / 1e6)')"
}

master_of() {  # master_of omnibus|plain|nchan|main|recv: master pid
    local n=$1
    case $n in
        omnibus|raw|plain) n=main ;;
        nchan) n=main; [ "$NCHAN_SEPARATE" = 1 ] && n=nchan ;;
    esac
    cat "$TMP/$n/nginx.pid"
}

cpu() { perl "$BENCH/cpu.pl" "$1"; }  # cpu MASTER_PID: workers' CPU seconds

metric() {  # metric NAME ZONE
    curl -s "http://127.0.0.1:$PORT/metrics" \
        | perl -ne "print \$1 if /^$1\\{zone=\"$2\"\\} (\\d+)/" | grep . || echo 0
}

admin() {  # admin ZONE [perl expression over $j, default: bytes_used]
    local expr='$j->{bytes_used}'
    [ -n "${2:-}" ] && expr=$2
    curl -s "http://127.0.0.1:$PORT/admin/$1/" \
        | perl -MJSON::PP -e 'local $/; my $j = decode_json(<STDIN>);
                              my $v = eval $ARGV[0]; die $@ if $@; print $v' "$expr"
}

queued() {  # total queued messages of a zone
    admin "$1" 'my $n = 0; $n += $_->{queued} for @{$j->{shards}}; $n'
}

shards() {  # shards ZONE pause|resume
    local n i
    n=$(admin "$1" 'scalar @{$j->{shards}}')
    for ((i = 0; i < n; i++)); do
        curl -sf -X POST "http://127.0.0.1:$PORT/admin/$1/shards/$i/$2" >/dev/null
    done
}

wait_drained() {  # wait_drained ZONE [timeout]
    local end
    end=$(calc "$(now) + ${2:-60}" 3)
    while [ "$(queued "$1")" -ne 0 ]; do
        [ "$(calc "$(now) > $end")" = 1 ] && { say "zone $1 did not drain"; return 1; }
        sleep 0.1
    done
}

body() {  # body SIZE [raw]: a JSON body of exactly SIZE bytes
    local f=$TMP/body-$1${2:+-raw}.dat
    if [ -n "${2:-}" ]; then
        perl -e 'print "x" x $ARGV[0]' "$1" > "$f"
    else
        json_body "$1" "$f"
    fi
    echo "$f"
}

uris() {  # uris PREFIX TOPIC_PREFIX: the 100 topic URIs for h2load
    local i
    for ((i = 0; i < TOPICS; i++)); do
        printf 'http://127.0.0.1:%s%s%s%d\n' "$PORT" "$1" "$2" "$i"
    done
}

# ------------------------------------------------------------- nginx setup

PORT=$(free_port)
RPORT=$(free_port "$PORT")
NPORT=$(free_port "$PORT" "$RPORT")
LPORT=$(free_port "$PORT" "$RPORT" "$NPORT")   # lowlat.pl's webhook receiver

USER_LINE=
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"

common_main() {  # common_main PREFIX WORKERS
    cat <<EOF
$USER_LINE
worker_processes $2;
worker_rlimit_nofile 20000;
error_log $1/error.log notice;
pid $1/nginx.pid;
events { worker_connections 8192; }
EOF
}

common_http() {  # common_http PREFIX
    cat <<EOF
    access_log off;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
EOF
}

# the bench nginx: every omnibus zone of the suite, the `return 202`
# ceiling and (when both modules load together) nchan
write_main_conf() {  # write_main_conf WORKERS
    local p=$TMP/main
    mkdir -p "$p"
    {
        echo "load_module $MODULE;"
        [ "$NCHAN_SEPARATE" = 0 ] && echo "load_module $NCHAN_MODULE;"
        common_main "$p" "$1"
        echo "http {"
        common_http "$p"
        [ "$NCHAN_SEPARATE" = 0 ] && echo "    nchan_shared_memory_size 256m;"
        cat <<EOF
    log_format pubid '\$msec \$omnibus_message_id \$status';

    # 1, 3, 5: publish and fan-out; no routes, nothing backpressures
$(publish_zone_conf)

    # 2: end to end, webhooks to the receiver nginx
    omnibus_zone zone=e2e:1024m shards=8 min_shards=2 max_shards=16
                 queue_size=200000 retain=100 backpressure=100%:99%;
    omnibus_route e2e e2e.> http://127.0.0.1:$RPORT/hook name=hook;
    omnibus_route e2e lat.> http://127.0.0.1:$RPORT/hooklat name=hooklat;
    omnibus_route e2e lowlat.> http://127.0.0.1:$LPORT/hook name=lowlat;

    # 4: memory per queued message, one shard each
    omnibus_zone zone=mem100:16m shards=1 min_shards=1 max_shards=1
                 queue_size=10000000 retain=0 backpressure=100%:99%;
    omnibus_zone zone=mem1024:16m shards=1 min_shards=1 max_shards=1
                 queue_size=10000000 retain=0 backpressure=100%:99%;
    omnibus_zone zone=mem16384:16m shards=1 min_shards=1 max_shards=1
                 queue_size=10000000 retain=0 backpressure=100%:99%;

    # 5: empty vs 50,000 queued (paused shards)
    omnibus_zone zone=fill:1536m shards=8 min_shards=2 max_shards=16
                 queue_size=1000000 retain=100 backpressure=100%:99%;

    server {
        listen 127.0.0.1:$PORT backlog=4096;
$(publish_locations)
        location /subscribe/ { omnibus_subscribe bus; }
        location /e2e/ { omnibus_publish e2e; }
        location /lat/ {
            omnibus_publish e2e;
            access_log $p/publish-lat.log pubid buffer=256k flush=1s;
        }
        location /lowlat/ { omnibus_publish e2e; }
        location /fill/ { omnibus_publish fill; }
EOF
        local s
        for s in $MEM_SIZES; do
            echo "        location /mem$s/ { omnibus_publish mem$s; omnibus_json off; omnibus_dedup off; }"
        done
        for s in bus e2e fill $(for m in $MEM_SIZES; do echo mem$m; done); do
            echo "        location /admin/$s/ { omnibus_admin $s; }"
        done
        echo "        location = /metrics { omnibus_metrics; }"
        echo "        location = /healthz { omnibus_health bus; }"
        [ "$NCHAN_SEPARATE" = 0 ] && nchan_locations
        echo "    }"
        echo "}"
    } > "$p/nginx.conf"
}

# nchan in its own nginx, only if it cannot share one with omnibus
write_nchan_conf() {
    local p=$TMP/nchan
    mkdir -p "$p"
    {
        echo "load_module $NCHAN_MODULE;"
        common_main "$p" 2
        echo "http {"
        common_http "$p"
        cat <<EOF
    nchan_shared_memory_size 256m;
    server {
        listen 127.0.0.1:$NPORT backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
EOF
        nchan_locations
        echo "    }"
        echo "}"
    } > "$p/nginx.conf"
}

# the webhook receiver: `return 200`, logging the receipt time per id
write_recv_conf() {
    local p=$TMP/recv
    mkdir -p "$p"
    {
        common_main "$p" 1
        echo "http {"
        common_http "$p"
        cat <<EOF
    log_format recv '\$msec \$http_x_omnibus_id \$http_x_omnibus_attempt';
    server {
        listen 127.0.0.1:$RPORT backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
        location /hook { return 200; }
        location /hooklat {
            access_log $p/recv-lat.log recv buffer=256k flush=1s;
            return 200;
        }
    }
}
EOF
    } > "$p/nginx.conf"
}

STARTED=()

start_nginx() {  # start_nginx NAME PORT
    local p=$TMP/$1 i
    # nchan tells its shared memory size on stderr: keep it out of the way
    "$NGINX" -p "$p" -c nginx.conf -t -q 2>>"$p/start.log" \
        || { cat "$p/start.log" >&2; return 1; }
    "$NGINX" -p "$p" -c nginx.conf 2>>"$p/start.log" \
        || { cat "$p/start.log" >&2; return 1; }
    STARTED+=("$1")
    for ((i = 0; i < 50; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$2/" && return 0
        sleep 0.1
    done
    echo "bench: nginx $1 does not answer on $2" >&2
    return 1
}

stop_nginx() {  # stop_nginx NAME
    local f=$TMP/$1/nginx.pid pid i
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local n
    for n in "${STARTED[@]}"; do stop_nginx "$n"; done
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check_errors() {  # report [alert]/[crit]/[emerg] lines and signalled workers
    local n
    for n in main recv nchan; do
        [ -f "$TMP/$n/error.log" ] || continue
        grep -E '\[(alert|crit|emerg)\]|exited on signal' "$TMP/$n/error.log" \
            | head -20 | sed "s/^/$n: /" || true
    done
}

# ------------------------------------------------------------------- soak

. "$BENCH/soak.sh"

# an optional section (soak, kafka) in a subshell: when it fails, the
# report is still written without it. run_section N LABEL NAME [SKIPPED]:
# NAME_main runs it; SKIPPED, when given, says why it does not run
run_section() {
    local num=$1 label=$2 name=$3 skipped=${4:-} rc
    if [ -n "$skipped" ]; then
        say "$num. $label skipped ($skipped)"
        rm -f "$DATA/$name"*.tsv "$DATA/$name-errors.txt"
        return 0
    fi
    set +e
    ( set -e; "${name}_main" )
    rc=$?
    set -e
    if [ "$rc" -ne 0 ]; then
        say "$num. $label failed (exit $rc): the report is written without it"
        printf 'status\tfailed (exit %d)\n' "$rc" >> "$DATA/$name-meta.tsv"
    fi
    stop_nginx "$name"
}

run_soak() {
    run_section 6 soak soak \
        "$([ "$SOAK_SECONDS" -le 0 ] && echo "SOAK_SECONDS=$SOAK_SECONDS")"
}

# ------------------------------------------------------------------ kafka

# the Kafka section's helpers are in bench/kafka.sh
run_kafka() {
    run_section 7 Kafka kafka \
        "$([ "$BENCH_KAFKA" = 0 ] && echo "BENCH_KAFKA=0")"
}

# ------------------------------------------------------------------ store

# the store section's helpers are in bench/store.sh
run_store() {
    run_section 8 "durable store" store \
        "$([ "$BENCH_STORE" = 0 ] && echo "BENCH_STORE=0")"
}

# ------------------------------------------------------------------ redis

# the Redis section's helpers are in bench/redis.sh
run_redis() {
    run_section 9 Redis redis \
        "$([ "$BENCH_REDIS" = 0 ] && echo "BENCH_REDIS=0")"
}

# ---------------------------------------------------------------- cluster

# the cluster section's helpers are in bench/cluster.sh, its driver is
# bench/cluster.pl
run_cluster() {
    run_section 10 cluster cluster \
        "$([ "$BENCH_CLUSTER" = 0 ] && echo "BENCH_CLUSTER=0")"
}

write_report() {
    perl "$BENCH/report.pl" "$DATA" "$BENCH/RESULTS.md"
    (cd "$BENCH" && gnuplot chart.gp)
    say "wrote bench/RESULTS.md and bench/results.png"
}

if [ "$KAFKA_ONLY" = 1 ]; then
    run_kafka
    write_report
    echo "bench: Kafka only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

if [ "$STORE_ONLY" = 1 ]; then
    run_store
    write_report
    echo "bench: store only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

if [ "$REDIS_ONLY" = 1 ]; then
    run_redis
    write_report
    echo "bench: Redis only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

if [ "$CLUSTER_ONLY" = 1 ]; then
    run_cluster
    write_report
    echo "bench: cluster only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

if [ "$SOAK_ONLY" = 1 ]; then
    write_recv_conf
    start_nginx recv "$RPORT"
    run_soak
    stop_nginx recv
    write_report
    echo "bench: soak only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

# do both modules load into one nginx?
NCHAN_SEPARATE=0
write_main_conf 2
if ! "$NGINX" -p "$TMP/main" -c nginx.conf -t -q 2>"$TMP/nchan-check.log"; then
    NCHAN_SEPARATE=1
    say "omnibus and nchan do not load together: nchan runs in its own nginx"
    cat "$TMP/nchan-check.log"
    write_main_conf 2
fi
NCHAN_PORT=$PORT
if [ "$NCHAN_SEPARATE" = 1 ]; then
    NCHAN_PORT=$NPORT
    write_nchan_conf
fi
write_recv_conf

# ----------------------------------------------------------- machine info

commit_id() {  # the module's commit, and whether src/ has local changes
    echo "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src config ngx_omnibus_module.c 2>/dev/null || echo ' (with local changes)')"
}

# a publish-only or fan-out-only run keeps the full run's machine and run
# data (sections 1 and 3 have their own in data/{publish,fanout}-meta.tsv)
if { [ "$PUBLISH_ONLY" != 1 ] && [ "$FANOUT_ONLY" != 1 ]; } \
   || [ ! -s "$DATA/meta.tsv" ]; then
{
    echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "uname	$(uname -a)"
    echo "nproc	$(nproc)"
    echo "cpu	$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    echo "memory	$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx	$("$NGINX" -v 2>&1 | sed 's/.*: //')"
    echo "nchan	$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo unknown)"
    echo "wrk	$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo "h2load	$(h2load --version 2>&1 | head -1)"
    echo "commit	$(commit_id)"
    echo "nchan_separate	$NCHAN_SEPARATE"
    echo "duration	$DUR"
    echo "rounds	$ROUNDS"
    echo "conns	$CONNS"
    echo "fan_subs	$FAN_SUBS"
    echo "fan_msgs	$FAN_MSGS"
    echo "lat_dur	$LAT_DUR"
} > "$DATA/meta.tsv"
fi

start_nginx main "$PORT"
[ "$PUBLISH_ONLY" = 1 ] || start_nginx recv "$RPORT"
[ "$NCHAN_SEPARATE" = 1 ] && start_nginx nchan "$NCHAN_PORT"
say "nginx on 127.0.0.1:$PORT$([ "$PUBLISH_ONLY" = 1 ] || echo " (receiver $RPORT)")$([ "$NCHAN_SEPARATE" = 1 ] && echo ", nchan on $NCHAN_PORT")"

# ----------------------------------------------- 1. publish throughput

if [ "$FANOUT_ONLY" != 1 ]; then

target_url() {  # target_url omnibus|raw|plain|nchan -> base URL, path prefix
    case $1 in
        omnibus) echo "http://127.0.0.1:$PORT /publish/" ;;
        raw)     echo "http://127.0.0.1:$PORT /raw/" ;;
        plain)   echo "http://127.0.0.1:$PORT /plain/" ;;
        nchan)   echo "http://127.0.0.1:$NCHAN_PORT /nchan/pub/" ;;
    esac
}

# the "orders" bodies: BENCH_ORDERS_DOCS documents per size, one a line,
# each exactly the size and checked valid JSON by bench/gen-orders.pl
for size in $SIZES; do
    cmd "orders-$size" perl "$BENCH/gen-orders.pl" -n "$ORDERS_DOCS" \
        -s "$DATA/orders.tsv" "$size" > "$TMP/orders-$size.ndjson"
done
head -1 "$TMP/orders-256.ndjson" | tr -d '\n' > "$DATA/orders-256.json"

P1_START=$(now)
{
    echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit	$(commit_id)"
    echo "nchan_separate	$NCHAN_SEPARATE"
    echo "duration	$DUR"
    echo "rounds	$ROUNDS"
    echo "conns	$CONNS"
    echo "orders_docs	$ORDERS_DOCS"
    echo "only	$PUBLISH_ONLY"
} > "$DATA/publish-meta.tsv"

say "1. publish throughput: $ROUNDS rounds x {omnibus, raw, plain, nchan} x {$SIZES} B x {$SHAPES}, ${DUR}s each"
printf 'round\tsize\tshape\ttarget\trequests\tduration_s\tnon2xx\tsockerr\trate\tp50_ms\tp99_ms\tcpu_us_per_req\n' \
    > "$DATA/publish-runs.tsv"
TARGETS=(omnibus raw plain nchan)
for ((r = 1; r <= ROUNDS; r++)); do
    for size in $SIZES; do
        # both shapes, one after the other, in alternating order
        read -r -a shapes <<< "$SHAPES"
        [ $((r % 2)) = 0 ] && shapes=("${shapes[1]}" "${shapes[0]}")
        for shape in "${shapes[@]}"; do
            so=0 envs=(BODY_SIZE="$size")
            if [ "$shape" = orders ]; then
                so=1 envs+=(BODY_FILE="$TMP/orders-$size.ndjson")
            fi
            for ((k = 0; k < 4; k++)); do
                # rotate the order every round, size and shape
                t=${TARGETS[$(( (k + r + size / 1024 + so) % 4 ))]}
                read -r url prefix < <(target_url "$t")
                out=$TMP/wrk-1-$r-$size-$shape-$t.out
                m=$(master_of "$t")
                c0=$(cpu "$m")
                cmd_env "publish-$t-$size-$shape" "${envs[@]}" PATH_PREFIX="$prefix" \
                    TOPICS=$TOPICS -- "${WRK[@]}" "$url" > "$out" 2>&1
                c1=$(cpu "$m")
                wrk_parse "$out"
                cus=$(calc "($c1 - $c0) * 1e6 / $W_REQ" 1)
                printf '%d\t%d\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n' "$r" "$size" \
                    "$shape" "$t" "$W_REQ" "$W_DUR" "$W_NON2XX" "$W_SOCKERR" "$W_RATE" \
                    "$W_P50" "$W_P99" "$cus" >> "$DATA/publish-runs.tsv"
                say "   round $r $size B $shape $t: $W_RATE req/s (non-2xx $W_NON2XX), $cus CPU us/req"
            done
        done
    done
done
echo "elapsed_s	$(calc "$(now) - $P1_START" 0)" >> "$DATA/publish-meta.tsv"
say "   section 1: $(calc "$(now) - $P1_START" 0)s"

# 1b. the JSON validation alone, on one core: bench/jsonbench.sh's table
# (it builds bench/jsonbench.c under build/jsonbench/ first)
if [ "$JSONBENCH" = 0 ]; then
    echo "jsonbench	skipped (BENCH_JSONBENCH=0)" >> "$DATA/publish-meta.tsv"
    say "1b. JSON validation alone: skipped (BENCH_JSONBENCH=0)"
else
    say "1b. JSON validation alone: bench/jsonbench.sh"
    j0=$(now)
    cmd_record jsonbench bench/jsonbench.sh
    if "$BENCH/jsonbench.sh" > "$TMP/jsonbench.out" 2> "$TMP/jsonbench.err"; then
        cp "$TMP/jsonbench.out" "$DATA/jsonbench.md"
        echo "jsonbench	done in $(calc "$(now) - $j0" 0) s" >> "$DATA/publish-meta.tsv"
        grep '^| orders\|^| padded' "$DATA/jsonbench.md" | sed 's/^/   /' || true
    else
        rc=$?
        echo "jsonbench	failed (exit $rc): $(tail -1 "$TMP/jsonbench.err")" \
            >> "$DATA/publish-meta.tsv"
        say "   jsonbench.sh failed (exit $rc):"
        tail -5 "$TMP/jsonbench.err" | sed 's/^/   /'
    fi
fi

if [ "$PUBLISH_ONLY" = 1 ]; then
    for n in "${STARTED[@]}"; do stop_nginx "$n"; done
    check_errors > "$DATA/publish-errors.txt"
    if [ -s "$DATA/publish-errors.txt" ]; then
        say "error log lines worth a look (data/publish-errors.txt):"
        sed 's/^/   /' "$DATA/publish-errors.txt"
    fi
    write_report
    echo "bench: publish only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

fi    # FANOUT_ONLY

# ---------------------------------------------------- 4. memory per message

if [ "$FANOUT_ONLY" != 1 ]; then

say "4. memory: shared memory per queued message at {$MEM_SIZES} B"
printf 'payload\tqueued\tbytes_used_delta\tbytes_per_msg\tzone_full\trefused\n' \
    > "$DATA/memory.tsv"
for size in $MEM_SIZES; do
    zone=mem$size
    shards "$zone" pause
    b0=$(admin "$zone")
    q0=$(queued "$zone")
    out=$TMP/wrk-4-$size.out
    cmd_env "memory-$size" BODY_SIZE="$size" JSON=0 PATH_PREFIX="/$zone/" \
        TOPICS=$TOPICS -- wrk -t1 -c8 -d3s -s "$BENCH/pub.lua" \
        "http://127.0.0.1:$PORT" > "$out" 2>&1
    wrk_parse "$out"
    # one more publish: 503 zone_full shows the zone is full
    code=$(curl -s -o "$TMP/full-$size.json" -w '%{http_code}' -X POST \
        --data-binary @"$(body "$size" raw)" "http://127.0.0.1:$PORT/$zone/bench.t0")
    full=no
    [ "$code" = 503 ] && grep -q zone_full "$TMP/full-$size.json" && full=yes
    b1=$(admin "$zone")
    q1=$(queued "$zone")
    per=$(calc "($b1 - $b0) / ($q1 - $q0)" 1)
    printf '%d\t%d\t%d\t%s\t%s\t%d\n' "$size" $((q1 - q0)) $((b1 - b0)) "$per" \
        "$full" "$W_NON2XX" >> "$DATA/memory.tsv"
    say "   $size B: $((q1 - q0)) queued, $per bytes each (zone full: $full)"
    shards "$zone" resume
    wait_drained "$zone" 30
done

fi    # FANOUT_ONLY

# --------------------------------------------------------------- 3. fan-out

F3_START=$(now)

say "3. fan-out: 1 publisher x $FAN_MSGS messages, $FAN_SUBS SSE subscribers, $ROUNDS rounds"
printf 'round\ttarget\tsubscribers\tevents\texpected\telapsed_s\tdeliveries_per_s\tcpu_s\tcpu_s_per_100k\n' \
    > "$DATA/fanout-runs.tsv"
fbody=$(body 256)
for ((r = 1; r <= ROUNDS; r++)); do
    order=(omnibus nchan)
    [ $((r % 2)) = 0 ] && order=(nchan omnibus)
    for t in "${order[@]}"; do
        if [ "$t" = omnibus ]; then
            port=$PORT sub=/subscribe/fan.r$r pub=/publish/fan.r$r
            master=$(master_of omnibus)
        else
            port=$NCHAN_PORT sub=/nchan/sub/fan.r$r pub=/nchan/pub/fan.r$r
            master=$(master_of nchan)
        fi
        out=$TMP/fanout-$r-$t.out
        cmd "fanout-$t" perl "$BENCH/fanout.pl" --port "$port" --path "$sub" \
            --conns "$FAN_SUBS" --messages "$FAN_MSGS" --master-pid "$master" \
            -- h2load --h1 -n "$FAN_MSGS" -c 1 -d "$fbody" \
            -H 'Content-Type: application/json' \
            "http://127.0.0.1:$port$pub" > "$out" 2>&1 || true
        line=$(grep '^RESULT ' "$out" || true)
        if [ -z "$line" ]; then
            say "   round $r $t: failed: $(head -3 "$out")"
            continue
        fi
        eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/F_/')"
        rate=$(calc "$F_events / $F_elapsed_s")
        per=$(calc "$F_events > 0 ? $F_cpu_s / ($F_events / 100000) : 0" 3)
        printf '%d\t%s\t%d\t%d\t%d\t%s\t%d\t%s\t%s\n' "$r" "$t" "$F_connected" \
            "$F_events" "$F_expected" "$F_elapsed_s" "$rate" "$F_cpu_s" "$per" \
            >> "$DATA/fanout-runs.tsv"
        say "   round $r $t: $F_events/$F_expected events in ${F_elapsed_s}s = $rate/s, $per CPU s per 100k"
        sleep 0.5
    done
done

{
    echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit	$(commit_id)"
    echo "only	$FANOUT_ONLY"
    echo "elapsed_s	$(calc "$(now) - $F3_START" 0)"
} > "$DATA/fanout-meta.tsv"

if [ "$FANOUT_ONLY" = 1 ]; then
    for n in "${STARTED[@]}"; do stop_nginx "$n"; done
    write_report
    echo "bench: fan-out only, total time $(calc "$(now) - $START" 0)s"
    exit 0
fi

# ------------------------------------------------------------ 2. end to end

say "2. end to end: publish -> webhook, closed loop ${DUR}s x $ROUNDS, then open loop"
printf 'round\taccepted\tpublish_s\tpublish_rate\tdelivered\tdrain_s\tdelivered_rate\tdelivered_in_window_rate\tbus_cpu_us_per_msg\trecv_cpu_us_per_msg\n' \
    > "$DATA/e2e-runs.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    d0=$(metric message_bus_delivered_total e2e)
    p0=$(metric message_bus_published_total e2e)
    out=$TMP/wrk-2-$r.out
    mc0=$(cpu "$(master_of main)")
    rc0=$(cpu "$(master_of recv)")
    t0=$(now)
    cmd_env e2e-closed BODY_SIZE=1024 PATH_PREFIX=/e2e/ TOPICS=$TOPICS \
        TOPIC_PREFIX=e2e.t -- "${WRK[@]}" "http://127.0.0.1:$PORT" > "$out" 2>&1
    t1=$(now)
    d1=$(metric message_bus_delivered_total e2e)
    wrk_parse "$out"
    p1=$(metric message_bus_published_total e2e)
    accepted=$((p1 - p0))
    end=$(calc "$t1 + 60" 3)
    while :; do
        d2=$(metric message_bus_delivered_total e2e)
        t2=$(now)
        [ $((d2 - d0)) -ge "$accepted" ] && break
        [ "$(calc "$t2 > $end")" = 1 ] && { say "   delivery did not catch up"; break; }
        sleep 0.05
    done
    mc1=$(cpu "$(master_of main)")
    rc1=$(cpu "$(master_of recv)")
    mcpu=$(calc "$d2 > $d0 ? ($mc1 - $mc0) * 1e6 / ($d2 - $d0) : 0" 1)
    rcpu=$(calc "$d2 > $d0 ? ($rc1 - $rc0) * 1e6 / ($d2 - $d0) : 0" 1)
    drain=$(calc "$t2 - $t0" 3)
    drate=$(calc "($d2 - $d0) / ($t2 - $t0)")
    wrate=$(calc "($d1 - $d0) / ($t1 - $t0)")
    printf '%d\t%d\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%s\n' "$r" "$accepted" "$W_DUR" "$W_RATE" \
        $((d2 - d0)) "$drain" "$drate" "$wrate" "$mcpu" "$rcpu" >> "$DATA/e2e-runs.tsv"
    say "   round $r: published $W_RATE/s, delivered $((d2 - d0)) of $accepted in ${drain}s = $drate/s ($mcpu + $rcpu CPU us/msg)"
    sleep 0.5
done

# open loop at 50% of the end-to-end maximum (the lower of the median
# publish and delivery rates of the closed-loop runs)
max_rate=$(perl -e '
    my (@p, @d);
    <STDIN>;
    while (<STDIN>) { my @f = split /\t/; push @p, $f[3]; push @d, $f[6] }
    my $med = sub { my @s = sort { $a <=> $b } @_; $s[$#s / 2] };
    my ($p, $d) = ($med->(@p), $med->(@d));
    print $p < $d ? $p : $d' < "$DATA/e2e-runs.tsv")
LAT_CLIENTS=8
rps=$(calc "$max_rate * 0.5 / $LAT_CLIENTS" 0)
echo "max_rate	$max_rate" >> "$DATA/meta.tsv"
echo "lat_rate	$((rps * LAT_CLIENTS))" >> "$DATA/meta.tsv"
echo "lat_clients	$LAT_CLIENTS" >> "$DATA/meta.tsv"
say "   open loop: h2load $LAT_CLIENTS clients x $rps req/s = $((rps * LAT_CLIENTS))/s for ${LAT_DUR}s"
lbody=$(body 1024)
uris /lat/ lat.t > "$TMP/lat-uris.txt"
d0=$(metric message_bus_delivered_total e2e)
out=$TMP/h2load-lat.out
cmd e2e-open h2load --h1 -c $LAT_CLIENTS --rps="$rps" -D "$LAT_DUR" -d "$lbody" \
    -H 'Content-Type: application/json' -i "$TMP/lat-uris.txt" > "$out" 2>&1 || true
grep -E '^(finished|requests|status codes):' "$out" | sed 's/^/   /'
wait_drained e2e 30 || true
sleep 2.5   # the access logs flush every second
perl "$BENCH/latency.pl" "$TMP/main/publish-lat.log" "$TMP/recv/recv-lat.log" \
    > "$DATA/latency.tsv"
{
    echo "lat_h2load	$(grep -E '^requests:' "$out" | head -1)"
    echo "lat_h2load_status	$(grep -E '^status codes:' "$out" | head -1)"
    echo "lat_h2load_finished	$(grep -E '^finished in' "$out" | head -1)"
} >> "$DATA/meta.tsv"
sed 's/^/   /' "$DATA/latency.tsv"

# low load: one message every 5 ms on one connection, timed in
# microseconds by a single process that is publisher and webhook
LOW_MSGS=${BENCH_LOWLAT_MSGS:-2000}
say "   low load: lowlat.pl, $LOW_MSGS messages at 200/s, receiver on $LPORT"
cmd e2e-lowlat perl "$BENCH/lowlat.pl" --port "$PORT" --path /lowlat/lowlat.t \
    --listen "$LPORT" --messages "$LOW_MSGS" --interval 5 --size 1024 \
    > "$DATA/lowlat.tsv"
wait_drained e2e 30 || true
sed 's/^/   /' "$DATA/lowlat.tsv"

# ----------------------------------------------------------------- 5. scaling

say "5b. empty bus vs $PREFILL queued (all shards paused), $ROUNDS rounds"
printf 'round\tbacklog\tqueued_before\trate\tnon2xx\n' > "$DATA/backlog-runs.tsv"
fbody=$(body 1024)
uris /fill/ fill.t > "$TMP/fill-uris.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    order=(0 $PREFILL)
    [ $((r % 2)) = 0 ] && order=($PREFILL 0)
    for backlog in "${order[@]}"; do
        shards fill pause
        if [ "$backlog" -gt 0 ]; then
            cmd prefill h2load --h1 -n "$PREFILL" -c 8 -d "$fbody" \
                -H 'Content-Type: application/json' -i "$TMP/fill-uris.txt" \
                > "$TMP/h2load-fill-$r.out" 2>&1
        fi
        qb=$(queued fill)
        out=$TMP/wrk-5b-$r-$backlog.out
        cmd_env "backlog" BODY_SIZE=1024 PATH_PREFIX=/fill/ TOPICS=$TOPICS \
            TOPIC_PREFIX=fill.t -- "${WRK[@]}" "http://127.0.0.1:$PORT" > "$out" 2>&1
        wrk_parse "$out"
        printf '%d\t%d\t%d\t%d\t%d\n' "$r" "$backlog" "$qb" "$W_RATE" "$W_NON2XX" \
            >> "$DATA/backlog-runs.tsv"
        say "   round $r: $qb queued before: $W_RATE req/s (non-2xx $W_NON2XX)"
        shards fill resume
        wait_drained fill 60
    done
done

check_errors > "$DATA/errors-main.txt"

say "5a. 1 vs 2 worker processes (nginx restarted each run), $ROUNDS rounds"
printf 'round\tworkers\ttarget\trate\tnon2xx\tcpu_us_per_req\n' > "$DATA/workers-runs.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    order=(1 2)
    [ $((r % 2)) = 0 ] && order=(2 1)
    for w in "${order[@]}"; do
        stop_nginx main
        mv "$TMP/main/error.log" "$TMP/main/error-$r-$w.log.prev" 2>/dev/null || true
        write_main_conf "$w"
        start_nginx main "$PORT"
        for t in omnibus plain; do
            read -r url prefix < <(target_url "$t")
            out=$TMP/wrk-5a-$r-$w-$t.out
            c0=$(cpu "$(master_of main)")
            cmd_env "workers-$t" BODY_SIZE=1024 PATH_PREFIX="$prefix" \
                TOPICS=$TOPICS -- "${WRK[@]}" "$url" > "$out" 2>&1
            c1=$(cpu "$(master_of main)")
            wrk_parse "$out"
            cus=$(calc "($c1 - $c0) * 1e6 / $W_REQ" 1)
            printf '%d\t%d\t%s\t%d\t%d\t%s\n' "$r" "$w" "$t" "$W_RATE" "$W_NON2XX" \
                "$cus" >> "$DATA/workers-runs.tsv"
            say "   round $r, $w worker(s), $t: $W_RATE req/s, $cus CPU us/req"
        done
    done
done

# ------------------------------------------------------------------ 6. soak

stop_nginx main
[ "$NCHAN_SEPARATE" = 1 ] && stop_nginx nchan
run_soak

# ----------------------------------------------------------------- 7. kafka

run_kafka

# ----------------------------------------------------------------- 8. store

run_store

# ----------------------------------------------------------------- 9. redis

run_redis

# --------------------------------------------------------------- 10. cluster

run_cluster

# ------------------------------------------------------------------ report

for n in "${STARTED[@]}"; do stop_nginx "$n"; done
{
    cat "$DATA/errors-main.txt"
    check_errors
    for f in "$TMP"/main/error-*.log.prev; do
        [ -f "$f" ] && grep -E '\[(alert|crit|emerg)\]|exited on signal' "$f" | head -5
    done
} | sort -u > "$DATA/errors.txt" || true
rm -f "$DATA/errors-main.txt"
if [ -s "$DATA/errors.txt" ]; then
    say "error log lines worth a look (data/errors.txt):"
    sed 's/^/   /' "$DATA/errors.txt"
fi

ELAPSED=$(calc "$(now) - $START" 0)
echo "elapsed	$ELAPSED" >> "$DATA/meta.tsv"
write_report
echo "bench: total time ${ELAPSED}s"
