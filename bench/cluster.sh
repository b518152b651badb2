# Section 10 of bench/run.sh, the cluster: sourced by run.sh (it uses its
# helpers: say, calc, now, cmd_record, common_main, common_http,
# start_nginx, stop_nginx, free_port, and $TMP $DATA $BENCH $ROOT $MODULE
# $NGINX $DUR $CONNS $ROUNDS $PORT $RPORT $NPORT $LPORT).
#
# The production picture of t/90-cluster.t, built by the same harness
# (t/lib/Omnibus/Cluster.pm) from bench/cluster.pl: one redis-server (AOF,
# appendfsync always), one PostgreSQL (initdb into a temp dir), librdkafka's
# mock Kafka cluster (3 brokers), BENCH_CLUSTER_PODS (3) omnibus pods of 2
# workers (`omnibus_node pod-x`; zone bus with `omnibus_store ... mode=sync`,
# `omnibus_redis` with dedup, rate limits and fan-out, a webhook and a Kafka
# route for orders.>) and a front nginx without the module whose upstream
# is the pods. The webhook receiver is an nginx started here (`return 200`
# as section 2's, 1 worker), not the harness's Perl receiver, which logs
# each request as JSON in one process and would be the bottleneck; it logs
# the receipt of the latency run's messages only.
#
#   a. accepted messages/s through the front with 1, 2 and 3 pods in its
#      upstream (wrk as in section 9a: 1 KiB, 100 topics orders.t*, an
#      Idempotency-Key per request), BENCH_ROUNDS rounds in rotating
#      order, BENCH_CLUSTER_DURATION s each; CPU of every component
#   b. publish-to-webhook latency with all pods in the front, open loop at
#      BENCH_CLUSTER_LAT_RATE messages/s for BENCH_CLUSTER_LAT_DURATION s
#
# Writes data/cluster-meta.tsv, cluster-runs.tsv, cluster-latency.tsv,
# cluster-pod.conf, cluster-front.conf and cluster-errors.txt.
#
# Knobs: BENCH_CLUSTER=0 skips the section; BENCH_CLUSTER_PODS (3),
# BENCH_CLUSTER_DURATION (10: PostgreSQL and Redis fsync, steadier over
# longer runs), BENCH_CLUSTER_LAT_RATE (200),
# BENCH_CLUSTER_LAT_DURATION (10). It uses BENCH_ROUNDS and BENCH_CONNS;
# the harness's OMNIBUS_PG_BIN and OMNIBUS_REDIS_BIN.

BENCH_CLUSTER=${BENCH_CLUSTER:-1}
CLUSTER_PODS=${BENCH_CLUSTER_PODS:-3}
CLUSTER_DUR=${BENCH_CLUSTER_DURATION:-10}
CLUSTER_LAT_RATE=${BENCH_CLUSTER_LAT_RATE:-200}
CLUSTER_LAT_DUR=${BENCH_CLUSTER_LAT_DURATION:-10}
CLUSTER_LAT_CLIENTS=8
CLUSTER_DIR=$TMP/cluster

# before anything runs: what the harness needs, or a clear refusal
cluster_require() {
    local missing=() t pgbin redisbin
    pgbin=${OMNIBUS_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
    redisbin=${OMNIBUS_REDIS_BIN:-/usr/bin}
    for t in initdb pg_ctl pg_isready psql; do
        [ -x "$pgbin/$t" ] \
            || missing+=("PostgreSQL's $t in '$pgbin' (Debian: postgresql; OMNIBUS_PG_BIN names the directory)")
    done
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1 && ! id nobody >/dev/null 2>&1; then
        missing+=("a user postgres or nobody to run the server as (we are root)")
    fi
    for t in redis-server redis-cli; do
        [ -x "$redisbin/$t" ] || missing+=("$t in '$redisbin' (Debian: redis-server; OMNIBUS_REDIS_BIN names the directory)")
    done
    command -v kcat >/dev/null && kcat -V >/dev/null 2>&1 \
        || missing+=("kcat (Debian: kcat)")
    if [ ! -x "$ROOT/build/kafka-mock" ]; then
        printf '#include <librdkafka/rdkafka.h>\n#include <librdkafka/rdkafka_mock.h>\n' \
            | cc -E -x c - >/dev/null 2>&1 \
            || missing+=("cc and librdkafka's headers for build/kafka-mock (Debian: librdkafka-dev)")
    fi
    for t in omnibus_store redisAsyncConnect rd_kafka_producev; do
        grep -qa "$t" "$MODULE" 2>/dev/null \
            || missing+=("a module built with libpq, hiredis and librdkafka ($MODULE lacks $t)")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        for t in "${missing[@]}"; do
            echo "bench: cluster section: missing $t" >&2
        done
        echo "bench: BENCH_CLUSTER=0 skips the cluster section" >&2
        return 1
    fi
}

# the webhook receiver: section 2's, logging only the latency run's
# messages (orders.lat.*) with their receipt time
cluster_recv_conf() {  # cluster_recv_conf PORT
    local p=$CLUSTER_DIR/recv
    mkdir -p "$p"
    {
        common_main "$p" 1
        echo "http {"
        common_http "$p"
        cat <<EOF
    log_format recv '\$msec \$http_x_omnibus_id \$http_x_omnibus_attempt';
    map \$http_x_omnibus_topic \$lat {
        ~^orders\.lat\.  1;
        default         0;
    }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
        location /hook {
            access_log $p/recv-lat.log recv buffer=256k flush=1s if=\$lat;
            return 200;
        }
    }
}
EOF
    } > "$p/nginx.conf"
}

cluster_cleanup() {
    stop_nginx cluster/recv
    if [ -f "$CLUSTER_DIR/recv/error.log" ]; then
        grep -E '\[(alert|crit|emerg)\]|exited on signal' "$CLUSTER_DIR/recv/error.log" \
            | head -5 | sed 's/^/recv: /' >> "$DATA/cluster-errors.txt" || true
    fi
    return 0
}

# run in a subshell by run.sh: any failure ends the section, not the bench
cluster_main() {
    trap cluster_cleanup EXIT
    trap 'exit 130' INT TERM
    local meta=$DATA/cluster-meta.tsv t0 rport rc
    rm -f "$DATA"/cluster*.tsv "$DATA"/cluster-*.conf "$DATA/cluster-errors.txt"
    [ -f "$DATA/commands.tsv" ] && sed -i '/^cluster-/d' "$DATA/commands.tsv"
    rm -rf "$CLUSTER_DIR"
    mkdir -p "$CLUSTER_DIR"
    : > "$DATA/cluster-errors.txt"
    {
        echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "nproc	$(nproc)"
        echo "commit	$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src config 2>/dev/null || echo ' (with local changes)')"
        echo "module_built	$(date -u -r "$MODULE" '+%Y-%m-%d %H:%M:%S UTC')"
        echo "rounds	$ROUNDS"
        echo "duration	$CLUSTER_DUR"
        echo "conns	$CONNS"
        echo "pods	$CLUSTER_PODS"
        echo "workers	2"
        echo "size	1024"
        echo "topics	100"
        echo "lat_rate	$CLUSTER_LAT_RATE"
        echo "lat_duration	$CLUSTER_LAT_DUR"
        echo "lat_clients	$CLUSTER_LAT_CLIENTS"
        echo "status	started"
    } > "$meta"

    t0=$(now)
    rport=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT")
    cluster_recv_conf "$rport"
    start_nginx cluster/recv "$rport"
    say "10. cluster: Omnibus::Cluster with $CLUSTER_PODS pods, webhook receiver nginx on $rport"

    cmd_record cluster-driver perl bench/cluster.pl --data bench/data \
        --tmp bench/tmp/cluster --receiver PORT --receiver-master PID \
        --recv-log bench/tmp/cluster/recv/recv-lat.log --pods "$CLUSTER_PODS" \
        --rounds "$ROUNDS" --duration "$CLUSTER_DUR" --conns "$CONNS" \
        --lat-rate "$CLUSTER_LAT_RATE" --lat-duration "$CLUSTER_LAT_DUR" \
        --lat-clients "$CLUSTER_LAT_CLIENTS"
    cmd_record cluster-publish env BODY_SIZE=1024 PATH_PREFIX=/publish/ \
        TOPICS=100 TOPIC_PREFIX=orders.t KEY_PREFIX=c'<round>-<pods>-' \
        wrk -t1 -c"$CONNS" -d"${CLUSTER_DUR}s" -s bench/pub.lua http://127.0.0.1:FRONT
    # in our process group: an interrupt reaches it, and it stops the
    # cluster on its way out
    set +e
    OMNIBUS_NGINX=$NGINX OMNIBUS_MODULE=$MODULE perl "$BENCH/cluster.pl" \
        --data "$DATA" --tmp "$CLUSTER_DIR" --receiver "$rport" \
        --receiver-master "$(cat "$CLUSTER_DIR/recv/nginx.pid")" \
        --recv-log "$CLUSTER_DIR/recv/recv-lat.log" --pods "$CLUSTER_PODS" \
        --rounds "$ROUNDS" --duration "$CLUSTER_DUR" --conns "$CONNS" \
        --lat-rate "$CLUSTER_LAT_RATE" --lat-duration "$CLUSTER_LAT_DUR" \
        --lat-clients "$CLUSTER_LAT_CLIENTS" 2> "$CLUSTER_DIR/driver.err" \
        | while IFS= read -r line; do say "   $line"; done
    rc=${PIPESTATUS[0]}
    set -e
    [ "$rc" = 0 ] || echo "driver	exit $rc" >> "$meta"
    if [ -s "$CLUSTER_DIR/driver.err" ]; then
        say "   the driver's stderr (bench/tmp/cluster/driver.err):"
        tail -20 "$CLUSTER_DIR/driver.err" | sed 's/^/   /'
    fi
    if grep -q '^not ok' "$CLUSTER_DIR/cluster-tap.log" 2>/dev/null; then
        say "   the harness's checks failed (bench/tmp/cluster/cluster-tap.log):"
        grep -A5 '^not ok' "$CLUSTER_DIR/cluster-tap.log" | head -20 | sed 's/^/   /'
        echo "harness	$(grep -c '^not ok' "$CLUSTER_DIR/cluster-tap.log") failed check(s): $(grep '^not ok' "$CLUSTER_DIR/cluster-tap.log" | head -3 | paste -sd';')" >> "$meta"
    fi
    [ -s "$DATA/cluster-runs.tsv" ] || return 1

    echo "elapsed_s	$(calc "$(now) - $t0" 0)" >> "$meta"
    echo "status	done" >> "$meta"
}
