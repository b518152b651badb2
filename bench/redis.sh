# Section 9 of bench/run.sh, Redis (omnibus_redis): sourced by run.sh (it
# uses its helpers: say, calc, now, cmd, cmd_env, cmd_record, wrk_parse,
# common_main, common_http, publish_zone_conf, publish_locations,
# nchan_locations, body, start_nginx, stop_nginx, free_port, cpu, and
# $TMP $DATA $BENCH $ROOT $MODULE $NCHAN_MODULE $NGINX $DUR $CONNS $ROUNDS
# $FAN_SUBS $FAN_MSGS $PORT $RPORT $NPORT $LPORT).
#
# One redis-server for the whole section, started by the bench on a free
# port of 127.0.0.1 without persistence (`--save '' --appendonly no`, its
# directory bench/tmp/redis/server), killed at the end. Every nginx has
# 2 workers and the zone `bus` of section 1 (publish_zone_conf: 8 shards,
# queue_size=100000, retain=100, no routes: a message is queued,
# dispatched to the retain ring and done, nothing backpressures).
#
#   a. publish with key dedup: wrk as in section 1 (-t1 -c BENCH_CONNS,
#      BENCH_DURATION, 1 KiB JSON bodies, 100 topics, bench/pub.lua) with
#      KEY_PREFIX set, so that every request carries its own
#      Idempotency-Key (never a duplicate), to four nginx:
#        local    the zone only (dedup in the zone's shared memory)
#        cluster  the same plus `omnibus_node bench-a; omnibus_redis bus
#                 redis://... dedup=on rate_limit=off fanout=off;` (every
#                 key also claimed in Redis: SET NX GET)
#        nchan-memory, nchan-redis   nchan's publisher (section 1's
#                 locations) in memory, and on the same Redis through an
#                 upstream { nchan_redis_server } and nchan_redis_pass
#                 (storage mode distributed, the default), for context
#      BENCH_ROUNDS rounds in rotating order; req/s count 2xx answers; the
#      claims, duplicates, fallbacks and errors of the cluster nginx from
#      /metrics around each run; CPU of the nginx workers and of
#      redis-server per request.
#   b. cross-pod fan-out: three nginx (`omnibus_node pod-a|pod-b|pod-c`,
#      `omnibus_redis bus redis://... fanout=on dedup=off rate_limit=off`)
#      on the same Redis (FLUSHALL'd after a); bench/fanout.pl opens
#      BENCH_FANOUT_SUBS SSE subscribers to one topic, split in turn
#      between pods B and C, and h2load publishes BENCH_FANOUT_MSGS
#      messages of 256 B on pod A, as section 3 does; against three nginx
#      with nchan on the same Redis (publish on one, eventsource
#      subscribers on the two others). Deliveries/s, events missing per
#      subscriber, the relay counters, CPU of the nine workers and of
#      redis-server. Rounds alternate the order.
#
# Writes data/redis-meta.tsv, redis-publish.tsv, redis-fanout.tsv and
# redis-errors.txt.
#
# Knobs: BENCH_REDIS=0 skips the section; BENCH_REDIS_SERVER (the
# redis-server binary, `redis-server` from the PATH; redis-cli is taken
# from the same directory, else from the PATH). It uses BENCH_ROUNDS,
# BENCH_DURATION, BENCH_CONNS, BENCH_FANOUT_SUBS and BENCH_FANOUT_MSGS.

BENCH_REDIS=${BENCH_REDIS:-1}
REDIS_SERVER_BIN=${BENCH_REDIS_SERVER:-$(command -v redis-server || echo redis-server)}
REDIS_CLI_BIN=$(dirname "$REDIS_SERVER_BIN")/redis-cli
[ -x "$REDIS_CLI_BIN" ] || REDIS_CLI_BIN=$(command -v redis-cli || echo redis-cli)
REDIS_WORKERS=2
REDIS_TOPICS=100
REDIS_SIZE=1024
REDIS_FAN_SIZE=256
REDIS_PUB_TARGETS="local cluster nchan-memory nchan-redis"
REDIS_CLUSTER_SETTINGS="dedup=on rate_limit=off fanout=off"
REDIS_FAN_SETTINGS="fanout=on dedup=off rate_limit=off"

# before anything runs: what the section needs, or a clear refusal
redis_require() {
    local missing=() m
    [ -x "$(command -v "$REDIS_SERVER_BIN" 2>/dev/null)" ] \
        || missing+=("redis-server ('$REDIS_SERVER_BIN'; Debian: redis-server; BENCH_REDIS_SERVER names the binary)")
    [ -x "$(command -v "$REDIS_CLI_BIN" 2>/dev/null)" ] \
        || missing+=("redis-cli (Debian: redis-tools, a dependency of redis-server)")
    grep -qa redisAsyncConnect "$MODULE" 2>/dev/null \
        || missing+=("a module built with hiredis ($MODULE has no omnibus_redis: install libhiredis-dev, make clean && make)")
    [ -f "$NCHAN_MODULE" ] || missing+=("$NCHAN_MODULE (libnginx-mod-nchan)")
    if [ "${#missing[@]}" -gt 0 ]; then
        for m in "${missing[@]}"; do
            echo "bench: Redis section: missing $m" >&2
        done
        echo "bench: BENCH_REDIS=0 skips the Redis section" >&2
        return 1
    fi
}

# ------------------------------------------------------------------ Redis

REDIS_DIR=$TMP/redis

rcli() { "$REDIS_CLI_BIN" -h 127.0.0.1 -p "$RDPORT" "$@"; }

redis_server_start() {
    local d=$REDIS_DIR/server i
    local args=(--port "$RDPORT" --bind 127.0.0.1 --save '' --appendonly no
                --dir "$d")
    mkdir -p "$d"
    cmd_record redis-server "$REDIS_SERVER_BIN" --port PORT --bind 127.0.0.1 \
        --save "''" --appendonly no --dir bench/tmp/redis/server
    "$REDIS_SERVER_BIN" "${args[@]}" > "$d/redis.log" 2>&1 &
    REDIS_PID=$!
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$REDIS_PID" 2>/dev/null; then
            echo "redis: redis-server exited at start:" >&2
            tail -20 "$d/redis.log" >&2
            REDIS_PID=
            return 1
        fi
        [ "$(rcli PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    echo "redis: redis-server does not answer on 127.0.0.1:$RDPORT:" >&2
    tail -20 "$d/redis.log" >&2
    return 1
}

redis_server_stop() {
    local i
    [ -n "${REDIS_PID:-}" ] || return 0
    kill -TERM "$REDIS_PID" 2>/dev/null || { REDIS_PID=; return 0; }
    for ((i = 0; i < 50; i++)); do
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
}

# redis-server still there and answering, else the section ends: a run
# against a dead server (an interrupt reaches it too: it is in our process
# group) would record nonsense
redis_check() {  # redis_check WHEN
    if [ -n "${REDIS_PID:-}" ] && kill -0 "$REDIS_PID" 2>/dev/null \
       && [ "$(rcli PING 2>/dev/null)" = PONG ]; then
        return 0
    fi
    echo "redis: redis-server (pid ${REDIS_PID:-?}, port $RDPORT) is gone $1:" >&2
    tail -5 "$REDIS_DIR/server/redis.log" >&2 2>/dev/null || true
    return 1
}

redis_cpu() {  # CPU seconds of redis-server (all its threads)
    perl -MPOSIX -e '
        my $clk = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
        open(my $f, "<", "/proc/$ARGV[0]/stat") or do { print "0\n"; exit };
        my $s = <$f>;
        $s =~ s/^.*\)\s+//s;
        my @f = split " ", $s;
        printf "%.2f\n", ($f[11] + $f[12]) / $clk' "$REDIS_PID"
}

tsv_row() {  # tsv_row FIELD...: one line of a TSV (empty fields allowed)
    local IFS=$'\t'
    printf '%s\n' "$*"
}

redis_info() {  # redis_info FIELD: one field of INFO
    rcli INFO 2>/dev/null | tr -d '\r' | sed -n "s/^$1://p"
}

# ------------------------------------------------------------------ nginx

# the instances: name -> port; every one is $REDIS_DIR/NAME, started as
# redis/NAME
declare -A REDIS_PORTS=()
REDIS_STARTED=()
REDIS_TAKEN=()

redis_port() {  # redis_port NAME: a free port for it
    local p
    p=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT" "${REDIS_TAKEN[@]}")
    REDIS_TAKEN+=("$p")
    REDIS_PORTS[$1]=$p
}

# an omnibus nginx: section 1's zone and locations, plus a subscribe
# location; NODE and the omnibus_redis parameters when given
redis_omnibus_conf() {  # redis_omnibus_conf NAME [NODE REDIS_PARAMETERS]
    local p=$REDIS_DIR/$1 node=${2:-} params=${3:-}
    mkdir -p "$p"
    {
        echo "load_module $MODULE;"
        common_main "$p" "$REDIS_WORKERS"
        echo "http {"
        common_http "$p"
        if [ -n "$node" ]; then
            echo "    omnibus_node $node;"
        fi
        publish_zone_conf
        if [ -n "$params" ]; then
            echo "    omnibus_redis bus redis://127.0.0.1:$RDPORT $params;"
        fi
        cat <<EOF

    server {
        listen 127.0.0.1:${REDIS_PORTS[$1]} backlog=4096;
$(publish_locations)
        location /subscribe/ { omnibus_subscribe bus; }
        location /admin/bus/ { omnibus_admin bus; }
        location = /metrics { omnibus_metrics; }
    }
}
EOF
    } > "$p/nginx.conf"
}

# an nchan nginx: section 1's locations, in memory or on the Redis
redis_nchan_conf() {  # redis_nchan_conf NAME memory|redis
    local p=$REDIS_DIR/$1
    mkdir -p "$p"
    {
        echo "load_module $NCHAN_MODULE;"
        common_main "$p" "$REDIS_WORKERS"
        echo "http {"
        common_http "$p"
        echo "    nchan_shared_memory_size 256m;"
        if [ "$2" = redis ]; then
            cat <<EOF
    upstream bench_redis {
        nchan_redis_server redis://127.0.0.1:$RDPORT;
    }
EOF
        fi
        cat <<EOF

    server {
        listen 127.0.0.1:${REDIS_PORTS[$1]} backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
EOF
        if [ "$2" = redis ]; then
            # in each location: a server-level nchan_redis_pass is not
            # inherited by them (nchan 1.3), they would stay in memory
            nchan_locations | sed 's/nchan_channel_id \$1;/& nchan_redis_pass bench_redis;/'
        else
            nchan_locations
        fi
        echo "    }"
        echo "}"
    } > "$p/nginx.conf"
}

redis_start() {  # redis_start NAME
    REDIS_STARTED+=("redis/$1")
    start_nginx "redis/$1" "${REDIS_PORTS[$1]}"
}

redis_stop_all() {  # all at once: each stop_nginx waits for its master
    local n pids=()
    for n in "${REDIS_STARTED[@]}"; do
        stop_nginx "$n" &
        pids+=($!)
    done
    [ "${#pids[@]}" -eq 0 ] || wait "${pids[@]}" || true
    REDIS_STARTED=()
}

radmin() {  # radmin NAME PERL_EXPRESSION over $j (the zone's admin status)
    curl -s "http://127.0.0.1:${REDIS_PORTS[$1]}/admin/bus/" | perl -MJSON::PP -e '
        local $/; my $j = eval { decode_json(<STDIN>) } or do { print ""; exit };
        my $v = eval $ARGV[0]; print $v // ""' "$2"
}

# until the zone's Redis is up (and, with `stream`, its reader knows where
# the stream is): a publish before that would be a fallback
redis_wait_omnibus() {  # redis_wait_omnibus NAME [stream]
    local i expr='$j->{redis}{up} ? 1 : 0'
    if [ "${2:-}" = stream ]; then
        expr='$j->{redis}{up} && length $j->{redis}{stream_last} ? 1 : 0'
    fi
    for ((i = 0; i < 300; i++)); do
        [ "$(radmin "$1" "$expr")" = 1 ] && return 0
        sleep 0.1
    done
    echo "redis: $1 is not connected to Redis after 30 s:" >&2
    curl -s "http://127.0.0.1:${REDIS_PORTS[$1]}/admin/bus/" | head -c 600 >&2
    echo >&2
    tail -20 "$REDIS_DIR/$1/error.log" >&2
    return 1
}

# until every worker logged its Redis upstream ready and a publish passes
redis_wait_nchan() {  # redis_wait_nchan NAME
    local i n code
    for ((i = 0; i < 300; i++)); do
        n=$(grep -c 'Redis upstream bench_redis: ready' "$REDIS_DIR/$1/error.log" || true)
        if [ "${n:-0}" -ge "$REDIS_WORKERS" ]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"seq":0}' \
                   "http://127.0.0.1:${REDIS_PORTS[$1]}/nchan/pub/bench.ready")
            if [ "${code:0:1}" = 2 ]; then
                # the probe must be in Redis, else nchan kept it in memory
                [ -n "$(rcli --scan --pattern '*bench.ready*' | head -1)" ] && return 0
                echo "redis: nchan $1 accepts a publish but does not store it in Redis:" >&2
                cat "$REDIS_DIR/$1/nginx.conf" >&2
                return 1
            fi
        fi
        sleep 0.1
    done
    echo "redis: nchan $1 is not ready on Redis after 30 s:" >&2
    tail -20 "$REDIS_DIR/$1/error.log" >&2
    return 1
}

rmetrics() { curl -s "http://127.0.0.1:${REDIS_PORTS[$1]}/metrics"; }

# rmetric FILE NAME LABEL_REGEX: a family summed over its matching series
rmetric() {
    perl -ne 'BEGIN { ($n, $re) = splice @ARGV, 0, 2 }
              if (/^\Q$n\E\{([^}]*)\} (\S+)$/) {
                  my ($l, $v) = ($1, $2);
                  $s += $v if $l =~ /$re/;
              }
              END { printf "%.0f\n", $s }' "$2" "$3" "$1"
}

rdelta() {  # rdelta BEFORE AFTER NAME LABEL_REGEX
    echo $(( $(rmetric "$2" "$3" "$4") - $(rmetric "$1" "$3" "$4") ))
}

# ----------------------------------------------------- a. publish, dedup

redis_master() { cat "$REDIS_DIR/$1/nginx.pid"; }

# one wrk run to TARGET; appends a row to redis-publish.tsv
redis_pub_run() {  # redis_pub_run ROUND TARGET
    local r=$1 t=$2 s=$REDIS_DIR prefix out m0 m1 c0 c1 k0 k1 master
    local acc= claimed= dups= fb= errs= q= ncpu kcpu
    case $t in
        nchan-*) prefix=/nchan/pub/ ;;
        *) prefix=/publish/ ;;
    esac
    redis_check "before round $r $t" || return 1
    master=$(redis_master "$t")
    out=$s/wrk-a-$r-$t.out
    m0=$s/metrics-a-$r-$t-0.txt
    m1=$s/metrics-a-$r-$t-1.txt
    case $t in nchan-*) ;; *) rmetrics "$t" > "$m0" ;; esac
    c0=$(cpu "$master")
    k0=$(redis_cpu)
    cmd_env "redis-publish-$t" BODY_SIZE=$REDIS_SIZE PATH_PREFIX=$prefix \
        TOPICS=$REDIS_TOPICS KEY_PREFIX="r$r-$t-" -- wrk -t1 -c"$CONNS" \
        -d"${DUR}s" -s "$BENCH/pub.lua" "http://127.0.0.1:${REDIS_PORTS[$t]}" \
        > "$out" 2>&1
    c1=$(cpu "$master")
    k1=$(redis_cpu)
    redis_check "after round $r $t" || return 1
    wrk_parse "$out" || return 1
    case $t in
        nchan-*)
            acc=$((W_REQ - W_NON2XX))
            ;;
        *)
            rmetrics "$t" > "$m1"
            acc=$(rdelta "$m0" "$m1" message_bus_published_total 'zone="bus"')
            q=$(radmin "$t" 'my $n = 0; $n += $_->{queued} + ($_->{inflight} // 0) for @{$j->{shards}}; $n')
            if [ "$t" = cluster ]; then
                claimed=$(rdelta "$m0" "$m1" message_bus_redis_answers_total 'result="claimed"')
                dups=$(rdelta "$m0" "$m1" message_bus_redis_answers_total 'result="duplicate"')
                fb=$(rdelta "$m0" "$m1" message_bus_redis_fallbacks_total 'feature="dedup"')
                errs=$(rdelta "$m0" "$m1" message_bus_redis_errors_total '.')
            fi
            ;;
    esac
    ncpu=$(calc "$W_REQ > 0 ? ($c1 - $c0) * 1e6 / $W_REQ : 0" 1)
    kcpu=$(calc "$W_REQ > 0 ? ($k1 - $k0) * 1e6 / $W_REQ : 0" 1)
    tsv_row "$r" "$t" "$W_RATE" "$W_REQ" "$W_NON2XX" "$W_SOCKERR" "$W_P50" \
        "$W_P99" "$acc" "$claimed" "$dups" "$fb" "$errs" "$q" "$ncpu" "$kcpu" \
        >> "$DATA/redis-publish.tsv"
    local extra=""
    [ "$t" != cluster ] || extra=", $claimed claimed in Redis, $dups duplicates, $fb fallbacks, $errs errors"
    say "      round $r $t: $W_RATE req/s (non-2xx $W_NON2XX), p99 $W_P99 ms, $ncpu + $kcpu (redis) CPU us/req$extra"
}

redis_section_publish() {
    local r k t wp targets=($REDIS_PUB_TARGETS) n=4
    say "   a. publish with a distinct Idempotency-Key per request: $ROUNDS rounds x {zone only, zone + Redis dedup, nchan memory, nchan Redis}, ${DUR}s each, 1 KiB, $CONNS connections"
    for t in "${targets[@]}"; do
        redis_port "$t"
    done
    redis_omnibus_conf local
    redis_omnibus_conf cluster bench-a "$REDIS_CLUSTER_SETTINGS"
    redis_nchan_conf nchan-memory memory
    redis_nchan_conf nchan-redis redis
    for t in "${targets[@]}"; do
        redis_start "$t" || return 1
    done
    redis_wait_omnibus cluster || return 1
    redis_wait_nchan nchan-redis || return 1
    {
        echo "cluster_directive	omnibus_node bench-a; omnibus_redis bus redis://127.0.0.1:PORT $REDIS_CLUSTER_SETTINGS;"
        echo "nchan_redis	upstream bench_redis { nchan_redis_server redis://127.0.0.1:PORT; } + nchan_redis_pass bench_redis;"
    } >> "$DATA/redis-meta.tsv"

    # warm-up: connections, Redis scripts, nchan's channels
    for t in "${targets[@]}"; do
        case $t in nchan-*) wp=/nchan/pub/ ;; *) wp=/publish/ ;; esac
        BODY_SIZE=$REDIS_SIZE PATH_PREFIX=$wp TOPICS=$REDIS_TOPICS \
            KEY_PREFIX="warm-$t-" wrk -t1 -c"$CONNS" -d1s -s "$BENCH/pub.lua" \
            "http://127.0.0.1:${REDIS_PORTS[$t]}" > "$REDIS_DIR/wrk-warm-$t.out" 2>&1
    done

    printf 'round\ttarget\trate\trequests\tnon2xx\tsockerr\tp50_ms\tp99_ms\taccepted\tclaimed\tduplicates\tfallbacks\tredis_errors\tqueued_after\tnginx_cpu_us_per_req\tredis_cpu_us_per_req\n' \
        > "$DATA/redis-publish.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < n; k++)); do
            t=${targets[$(( (k + r) % n ))]}
            redis_pub_run "$r" "$t" || return 1
            sleep 0.5
        done
    done
    {
        echo "keys_after_a	$(rcli DBSIZE)"
        echo "used_memory_after_a	$(redis_info used_memory_human)"
    } >> "$DATA/redis-meta.tsv"
    redis_stop_all
}

# ------------------------------------------------------ b. cross-pod fan-out

# one fan-out run; appends a row to redis-fanout.tsv
redis_fan_run() {  # redis_fan_run ROUND omnibus|nchan
    local r=$1 t=$2 s=$REDIS_DIR a b c sub pub out line rate per kper
    local pods m i sent= recv= dropped= skipped= fb= errs=
    if [ "$t" = omnibus ]; then
        pods=(pod-a pod-b pod-c)
        sub=/subscribe/fan.r$r pub=/publish/fan.r$r
    else
        pods=(nchan-a nchan-b nchan-c)
        sub=/nchan/sub/fan.r$r pub=/nchan/pub/fan.r$r
    fi
    a=${REDIS_PORTS[${pods[0]}]} b=${REDIS_PORTS[${pods[1]}]} c=${REDIS_PORTS[${pods[2]}]}
    redis_check "before round $r $t" || return 1
    out=$s/fanout-$r-$t.out
    if [ "$t" = omnibus ]; then
        for i in 0 1 2; do rmetrics "${pods[$i]}" > "$s/metrics-b-$r-$i-0.txt"; done
    fi
    cmd "redis-fanout-$t" perl "$BENCH/fanout.pl" --port "$b" --port "$c" \
        --path "$sub" --conns "$FAN_SUBS" --messages "$FAN_MSGS" \
        --master-pid "$(redis_master "${pods[0]}")" \
        --master-pid "$(redis_master "${pods[1]}")" \
        --master-pid "$(redis_master "${pods[2]}")" --pid "$REDIS_PID" \
        -- h2load --h1 -n "$FAN_MSGS" -c 1 -d "$REDIS_FAN_BODY" \
        -H 'Content-Type: application/json' \
        "http://127.0.0.1:$a$pub" > "$out" 2>&1 || true
    redis_check "after round $r $t" || return 1
    if [ "$t" = omnibus ]; then
        for i in 0 1 2; do rmetrics "${pods[$i]}" > "$s/metrics-b-$r-$i-1.txt"; done
        m=$s/metrics-b-$r
        sent=$(rdelta "$m-0-0.txt" "$m-0-1.txt" message_bus_redis_relay_total 'outcome="sent"')
        dropped=$(rdelta "$m-0-0.txt" "$m-0-1.txt" message_bus_redis_relay_total 'outcome="dropped"')
        recv=0 skipped=0 fb=0 errs=0
        for i in 0 1 2; do
            recv=$((recv + $(rdelta "$m-$i-0.txt" "$m-$i-1.txt" message_bus_redis_relay_total 'outcome="received"')))
            skipped=$((skipped + $(rdelta "$m-$i-0.txt" "$m-$i-1.txt" message_bus_redis_relay_total 'outcome="skipped"')))
            fb=$((fb + $(rdelta "$m-$i-0.txt" "$m-$i-1.txt" message_bus_redis_fallbacks_total 'feature="fanout"')))
            errs=$((errs + $(rdelta "$m-$i-0.txt" "$m-$i-1.txt" message_bus_redis_errors_total '.')))
        done
    fi
    line=$(grep '^RESULT ' "$out" || true)
    if [ -z "$line" ]; then
        say "      round $r $t: failed: $(head -3 "$out" | tr '\n' ' ')"
        # every event missing; the columns of a measure left empty
        tsv_row "$r" "$t" "$FAN_SUBS" 0 0 "$((FAN_SUBS * FAN_MSGS))" \
            "$((FAN_SUBS * FAN_MSGS))" "" "" "" "" "" "" "" "" "" "" "" "" \
            "$sent" "$recv" "$dropped" "$skipped" "$fb" "$errs" \
            "failed: $(head -1 "$out" | tr '\t' ' ')" >> "$DATA/redis-fanout.tsv"
        return 0
    fi
    local F_conns F_connected F_events F_expected F_elapsed_s F_cpu_s F_first_event_s
    local F_pub_rc F_closed F_min_per_conn F_max_per_conn F_missing F_short_conns
    local F_over_conns F_pid_cpu_s F_ports F_port_events F_port_short
    eval "$(echo "${line#RESULT }" | tr ' ' '\n' | grep -E '^[a-z_]+=[0-9.,-]*$' | sed 's/^/F_/')"
    rate=$(calc "$F_elapsed_s > 0 ? $F_events / $F_elapsed_s : 0")
    per=$(calc "$F_events > 0 ? $F_cpu_s / ($F_events / 100000) : 0" 3)
    kper=$(calc "$F_events > 0 ? $F_pid_cpu_s / ($F_events / 100000) : 0" 3)
    # round target subscribers connected events expected missing short_conns
    # over_conns elapsed_s deliveries_per_s first_event_s nginx_cpu_s
    # nginx_cpu_s_per_100k redis_cpu_s redis_cpu_s_per_100k pub_rc
    # events_b/events_c short_b/short_c relay_sent relay_received
    # relay_dropped relay_skipped fallbacks redis_errors result
    tsv_row "$r" "$t" "$F_conns" "$F_connected" "$F_events" "$F_expected" \
        "$F_missing" "$F_short_conns" "$F_over_conns" "$F_elapsed_s" "$rate" \
        "$F_first_event_s" "$F_cpu_s" "$per" "$F_pid_cpu_s" "$kper" "$F_pub_rc" \
        "${F_port_events//,//}" "${F_port_short//,//}" \
        "$sent" "$recv" "$dropped" "$skipped" "$fb" "$errs" ok \
        >> "$DATA/redis-fanout.tsv"
    local extra=""
    [ "$t" != omnibus ] || extra="; relayed $sent, received $recv (B+C), dropped $dropped, fallbacks $fb"
    say "      round $r $t: $F_events/$F_expected events in ${F_elapsed_s}s = $rate/s, missing $F_missing ($F_short_conns subscribers short), per pod B/C ${F_port_events//,//}; $per + $kper (redis) CPU s per 100k$extra"
}

redis_section_fanout() {
    local r t i order
    say "   b. cross-pod fan-out: publish on pod A, $FAN_SUBS SSE subscribers on pods B and C, $FAN_MSGS messages of $REDIS_FAN_SIZE B, $ROUNDS rounds x {omnibus, nchan}"
    rcli FLUSHALL > /dev/null
    for t in pod-a pod-b pod-c nchan-a nchan-b nchan-c; do
        redis_port "$t"
    done
    for t in a b c; do
        redis_omnibus_conf "pod-$t" "pod-$t" "$REDIS_FAN_SETTINGS"
        redis_nchan_conf "nchan-$t" redis
    done
    echo "fanout_directive	omnibus_node pod-a|pod-b|pod-c; omnibus_redis bus redis://127.0.0.1:PORT $REDIS_FAN_SETTINGS;" \
        >> "$DATA/redis-meta.tsv"
    for t in pod-a pod-b pod-c nchan-a nchan-b nchan-c; do
        redis_start "$t" || return 1
    done
    for t in pod-a pod-b pod-c; do
        redis_wait_omnibus "$t" stream || return 1
    done
    for t in nchan-a nchan-b nchan-c; do
        redis_wait_nchan "$t" || return 1
    done

    # one message through the stream: pods B and C must receive it
    curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
        -d '{"seq":0}' "http://127.0.0.1:${REDIS_PORTS[pod-a]}/publish/bench.warm" \
        || true
    for ((i = 0; i < 100; i++)); do
        [ "$(radmin pod-b '$j->{redis}{received}')" -ge 1 ] 2>/dev/null \
            && [ "$(radmin pod-c '$j->{redis}{received}')" -ge 1 ] 2>/dev/null && break
        sleep 0.1
    done
    if [ "$i" -ge 100 ]; then
        echo "redis: a message published on pod A did not reach pods B and C in 10 s" >&2
        return 1
    fi

    REDIS_FAN_BODY=$(body "$REDIS_FAN_SIZE")
    printf 'round\ttarget\tsubscribers\tconnected\tevents\texpected\tmissing\tshort_conns\tover_conns\telapsed_s\tdeliveries_per_s\tfirst_event_s\tnginx_cpu_s\tnginx_cpu_s_per_100k\tredis_cpu_s\tredis_cpu_s_per_100k\tpub_rc\tevents_b_c\tshort_b_c\trelay_sent\trelay_received\trelay_dropped\trelay_skipped\tfallbacks\tredis_errors\tresult\n' \
        > "$DATA/redis-fanout.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        order=(omnibus nchan)
        [ $((r % 2)) = 0 ] && order=(nchan omnibus)
        for t in "${order[@]}"; do
            redis_fan_run "$r" "$t" || return 1
            sleep 0.5
        done
    done
    redis_stop_all
}

# [alert]/[crit]/[emerg] lines, workers exiting on a signal, and the
# errors of omnibus_redis, of every nginx of the section: once they are
# all stopped (a worker that fails at its exit says so last)
redis_collect_errors() {
    local d n
    : > "$DATA/redis-errors.txt"
    for d in "$REDIS_DIR"/*/; do
        n=$(basename "$d")
        [ -f "$d/error.log" ] || continue
        {
            grep -E '\[(alert|crit|emerg)\]|exited on signal' "$d/error.log" | head -10
            grep -E '\[error\].*omnibus_redis' "$d/error.log" | head -5
        } | sed "s/^/$n: /" >> "$DATA/redis-errors.txt" || true
    done
    sort -u -o "$DATA/redis-errors.txt" "$DATA/redis-errors.txt"
}

redis_cleanup() {
    redis_stop_all
    redis_server_stop
    redis_collect_errors
    return 0
}

# run in a subshell by run.sh: any failure ends the section, not the bench
redis_main() {
    trap redis_cleanup EXIT
    trap 'exit 130' INT TERM
    local meta=$DATA/redis-meta.tsv t0
    rm -f "$DATA"/redis*.tsv "$DATA/redis-errors.txt"
    [ -f "$DATA/commands.tsv" ] && sed -i '/^redis-/d' "$DATA/commands.tsv"
    rm -rf "$REDIS_DIR"
    mkdir -p "$REDIS_DIR"
    : > "$DATA/redis-errors.txt"
    RDPORT=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT")
    REDIS_TAKEN=("$RDPORT")
    {
        echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "rounds	$ROUNDS"
        echo "duration	$DUR"
        echo "conns	$CONNS"
        echo "workers	$REDIS_WORKERS"
        echo "topics	$REDIS_TOPICS"
        echo "size	$REDIS_SIZE"
        echo "fan_subs	$FAN_SUBS"
        echo "fan_msgs	$FAN_MSGS"
        echo "fan_size	$REDIS_FAN_SIZE"
        echo "redis	$("$REDIS_SERVER_BIN" --version | sed -n 's/.* v=\([^ ]*\).* malloc=\([^ ]*\).*/\1 (malloc \2)/p')"
        echo "nchan	$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo unknown)"
        echo "status	started"
    } > "$meta"

    t0=$(now)
    redis_server_start || return 1
    echo "redis_settings	$(rcli CONFIG GET save | tr -d '\r' | paste -sd' ' | sed 's/^save $/save ""/') $(rcli CONFIG GET appendonly | tr -d '\r' | paste -sd' ') $(rcli CONFIG GET io-threads | tr -d '\r' | paste -sd' ')" >> "$meta"
    say "9. Redis: redis-server $(redis_info redis_version) on 127.0.0.1:$RDPORT (pid $REDIS_PID, no persistence)"

    # called plainly: `f || return 1` would turn set -e off inside them
    redis_section_publish
    redis_section_fanout

    echo "elapsed_s	$(calc "$(now) - $t0" 0)" >> "$meta"
    echo "status	done" >> "$meta"
}
