# Section 6 of bench/run.sh, the soak: sourced by run.sh (it uses its
# helpers: say, calc, now, cmd_record, common_main, common_http, body,
# start_nginx, stop_nginx, and $TMP $DATA $BENCH $MODULE $RPORT $NGINX).
#
# A fresh nginx (2 workers, its own zone `soak`: one webhook route to the
# receiver nginx of section 2, and SSE subscribers) takes an open-loop
# publish load (h2load --rps) of half the measured maximum publish rate for
# SOAK_SECONDS, while SOAK_SUBS SSE clients (bench/soak-subs.pl, one per
# topic) read their streams. At the start and every SOAK_INTERVAL seconds
# bench/soak-sample.pl records each worker's VmRSS, RssAnon, open fds and
# sockets, the zone's bytes used, the connections (stub_status) and the
# published, delivered and queued messages. After the load the zone must
# drain: a last sample ("drained") is taken once it has.
#
# Writes data/soak.tsv (the samples), data/soak-meta.tsv (rate and how it
# was chosen, h2load's summary, drain) and data/soak-errors.txt.
#
# Knobs: SOAK_SECONDS (600; 0 skips the soak), SOAK_INTERVAL (60),
# SOAK_SUBS (100), SOAK_RATE (messages/s in all: skips the measurement of
# the maximum), SOAK_CLIENTS (h2load connections, 32: over HTTP/1.1 each
# has one request out at a time, so a connection's --rps needs answers
# faster than 1/rps).

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_INTERVAL=${SOAK_INTERVAL:-60}
SOAK_SUBS=${SOAK_SUBS:-100}
SOAK_CLIENTS=${SOAK_CLIENTS:-32}
SOAK_WORKERS=2
SOAK_TOPICS=100
SOAK_SIZE=1024

write_soak_conf() {
    local p=$TMP/soak
    mkdir -p "$p"
    {
        echo "load_module $MODULE;"
        common_main "$p" "$SOAK_WORKERS"
        echo "http {"
        common_http "$p"
        cat <<EOF
    omnibus_zone zone=soak:512m shards=8 min_shards=2 max_shards=16
                 queue_size=200000 retain=100 backpressure=100%:99%;
    omnibus_route soak soak.> http://127.0.0.1:$RPORT/hook name=hook;

    server {
        listen 127.0.0.1:$SPORT backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
        location /publish/ { omnibus_publish soak; }
        location /subscribe/ { omnibus_subscribe soak; }
        location /admin/soak/ { omnibus_admin soak; }
        location = /metrics { omnibus_metrics; }
        location = /stub_status { stub_status; }
    }
}
EOF
    } > "$p/nginx.conf"
}

soak_metric() {  # soak_metric NAME: summed over the series of zone soak
    curl -s "http://127.0.0.1:$SPORT/metrics" | perl -ne '
        $n += $1 if /^message_bus_\Q'"$1"'\E\{zone="soak"[,}][^ ]* (\d+)$/;
        END { print $n + 0 }'
}

# wait until every published message is completed (delivered) and nothing
# is queued or in flight; prints the seconds it took
soak_drain() {  # soak_drain TIMEOUT
    local t0 end p c q i
    t0=$(now)
    end=$(calc "$t0 + $1" 3)
    while :; do
        p=$(soak_metric published_total)
        c=$(soak_metric completed_total)
        q=$(soak_metric queue_size)
        i=$(soak_metric inflight_messages)
        [ "$c" -ge "$p" ] && [ "$q" -eq 0 ] && [ "$i" -eq 0 ] && break
        if [ "$(calc "$(now) > $end")" = 1 ]; then
            calc "$(now) - $t0" 3
            return 1
        fi
        sleep 0.2
    done
    calc "$(now) - $t0" 3
}

soak_status() {  # soak_status KEY: from the SSE client's status file
    perl -ne 'print $1 if /\b'"$1"'=(\d+)/' "$TMP/soak/subs.status" 2>/dev/null \
        | grep . || echo 0
}

# the maximum publish rate into the soak zone (route on, no subscribers):
# closed loop wrk as in section 2, the lower of published/s and delivered/s
soak_measure_max() {
    local out=$TMP/wrk-soak-max.out p0 d0 t0 t1 d2 t2 end
    p0=$(soak_metric published_total)
    d0=$(soak_metric delivered_total)
    t0=$(now)
    cmd_record soak-max env BODY_SIZE=$SOAK_SIZE PATH_PREFIX=/publish/ \
        TOPICS=$SOAK_TOPICS TOPIC_PREFIX=soak.t "${WRK[@]}" "http://127.0.0.1:$SPORT"
    env BODY_SIZE=$SOAK_SIZE PATH_PREFIX=/publish/ TOPICS=$SOAK_TOPICS \
        TOPIC_PREFIX=soak.t "${WRK[@]}" "http://127.0.0.1:$SPORT" > "$out" 2>&1
    t1=$(now)
    wrk_parse "$out"
    accepted=$(( $(soak_metric published_total) - p0 ))
    end=$(calc "$t1 + 60" 3)
    while :; do
        d2=$(soak_metric delivered_total)
        t2=$(now)
        [ $((d2 - d0)) -ge "$accepted" ] && break
        [ "$(calc "$t2 > $end")" = 1 ] && break
        sleep 0.05
    done
    SOAK_MAX_PUB=$W_RATE
    SOAK_MAX_DEL=$(calc "($d2 - $d0) / ($t2 - $t0)")
    SOAK_MAX=$(calc "$SOAK_MAX_PUB < $SOAK_MAX_DEL ? $SOAK_MAX_PUB : $SOAK_MAX_DEL")
}

soak_sample() {  # soak_sample PHASE: one line into data/soak.tsv
    perl "$BENCH/soak-sample.pl" --port "$SPORT" --zone soak \
        --master "$(cat "$TMP/soak/nginx.pid")" --subs "$TMP/soak/subs.status" \
        --t "$(calc "$(now) - $SOAK_T0" 1)" --phase "$1" >> "$DATA/soak.tsv"
    tail -1 "$DATA/soak.tsv" | perl -F'\t' -lane '
        my $w = "";
        for (my $i = 18; $i < @F; $i += 4) {
            $w .= sprintf " %.1f/%.1f MiB %d fds %d socks;",
                $F[$i] / 1024, $F[$i + 1] / 1024, $F[$i + 2], $F[$i + 3] }
        printf "   %5.1f min %-7s published %d delivered %d queued %d sse %d"
             . " zone %.2f MiB conns %d; workers (rss/anon):%s\n",
             $F[1], $F[2], @F[3, 4], $F[6] + $F[7], $F[14], $F[15] / 1048576,
             $F[16], $w'
}

SOAK_PIDS=()
soak_cleanup() {
    local p
    for p in "${SOAK_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    stop_nginx soak
}

# run in a subshell by run.sh: any failure ends the soak, not the bench
soak_main() {
    trap soak_cleanup EXIT
    local meta=$DATA/soak-meta.tsv src rate rps out k target left subs_pid h2_pid
    SPORT=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT")
    write_soak_conf
    rm -f "$DATA"/soak*.tsv "$DATA/soak-errors.txt"
    [ -f "$DATA/commands.tsv" ] && sed -i '/^soak-/d' "$DATA/commands.tsv"
    {
        echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "seconds	$SOAK_SECONDS"
        echo "interval	$SOAK_INTERVAL"
        echo "subs	$SOAK_SUBS"
        echo "workers	$SOAK_WORKERS"
        echo "topics	$SOAK_TOPICS"
        echo "size	$SOAK_SIZE"
        echo "clients	$SOAK_CLIENTS"
        echo "status	started"
    } > "$meta"

    # the rate: SOAK_RATE, else half of section 2's end-to-end maximum of
    # this run, else half of a quick measurement on the soak nginx
    if [ -n "${SOAK_RATE:-}" ]; then
        rate=$SOAK_RATE src="SOAK_RATE"
    elif [ "$SOAK_ONLY" = 0 ] && max=$(perl -ne 'print $1 if /^max_rate\t(\d+)/' \
            "$DATA/meta.tsv" 2>/dev/null) && [ -n "$max" ] && [ "$max" -gt 0 ]; then
        src="section 2" rate=$(calc "$max / 2")
        echo "max_rate	$max" >> "$meta"
    else
        say "   measuring the maximum: wrk ${DUR}s into the soak zone (route on)"
        start_nginx soak "$SPORT"
        soak_measure_max
        say "   maximum: published $SOAK_MAX_PUB/s, delivered $SOAK_MAX_DEL/s"
        soak_drain 60 > /dev/null || true
        stop_nginx soak
        src="measured" rate=$(calc "$SOAK_MAX / 2")
        {
            echo "max_rate	$SOAK_MAX"
            echo "max_published	$SOAK_MAX_PUB"
            echo "max_delivered	$SOAK_MAX_DEL"
        } >> "$meta"
    fi
    rps=$(calc "$rate / $SOAK_CLIENTS")
    [ "$rps" -ge 1 ] || { echo "soak: rate $rate is too low" >&2; return 1; }
    {
        echo "rate_source	$src"
        echo "rate	$((rps * SOAK_CLIENTS))"
        echo "rps_per_client	$rps"
    } >> "$meta"

    # a fresh nginx for the soak itself
    rm -rf "$TMP/soak/error.log"
    start_nginx soak "$SPORT"
    rm -f "$TMP/soak/subs.status"
    cmd_record soak-subscribers perl "$BENCH/soak-subs.pl" --port "$SPORT" \
        --path /subscribe/ --topic soak.t --topics "$SOAK_TOPICS" \
        --conns "$SOAK_SUBS" --status "$TMP/soak/subs.status"
    perl "$BENCH/soak-subs.pl" --port "$SPORT" --path /subscribe/ --topic soak.t \
        --topics "$SOAK_TOPICS" --conns "$SOAK_SUBS" \
        --status "$TMP/soak/subs.status" 2> "$TMP/soak/subs.err" &
    subs_pid=$!
    SOAK_PIDS+=("$subs_pid")
    for ((k = 0; k < 300; k++)); do
        [ "$(soak_status connected)" -ge "$SOAK_SUBS" ] \
            && [ "$(soak_metric subscribers)" -ge "$SOAK_SUBS" ] && break
        kill -0 "$subs_pid" 2>/dev/null \
            || { cat "$TMP/soak/subs.err" >&2; return 1; }
        sleep 0.1
    done
    [ "$(soak_status connected)" -ge "$SOAK_SUBS" ] \
        || { echo "soak: only $(soak_status connected) subscribers" >&2; return 1; }

    say "6. soak: ${SOAK_SECONDS}s at $((rps * SOAK_CLIENTS)) msg/s ($src), h2load $SOAK_CLIENTS x $rps/s, $SOAK_SUBS SSE subscribers, webhook to :$RPORT"
    body "$SOAK_SIZE" > /dev/null
    for ((k = 0; k < SOAK_TOPICS; k++)); do
        printf 'http://127.0.0.1:%s/publish/soak.t%d\n' "$SPORT" "$k"
    done > "$TMP/soak-uris.txt"
    perl "$BENCH/soak-sample.pl" --header --workers "$SOAK_WORKERS" > "$DATA/soak.tsv"
    SOAK_T0=$(now)
    soak_sample start
    out=$TMP/h2load-soak.out
    local h2=(h2load --h1 -c "$SOAK_CLIENTS" --rps="$rps" -D "$SOAK_SECONDS"
              -d "$TMP/body-$SOAK_SIZE.dat" -H 'Content-Type: application/json'
              -i "$TMP/soak-uris.txt")
    cmd_record soak-load "${h2[@]}"
    "${h2[@]}" > "$out" 2>&1 &
    h2_pid=$!
    SOAK_PIDS+=("$h2_pid")
    for ((k = 1; k * SOAK_INTERVAL <= SOAK_SECONDS; k++)); do
        target=$(calc "$SOAK_T0 + $k * $SOAK_INTERVAL" 3)
        left=$(calc "$target - $(now)" 3)
        [ "$(calc "$left > 0")" = 1 ] && sleep "$left"
        soak_sample load
    done
    wait "$h2_pid" || true
    grep -E '^(finished|requests|status codes):' "$out" | sed 's/^/   /'
    {
        echo "h2load	$(grep -E '^requests:' "$out" | head -1)"
        echo "h2load_status	$(grep -E '^status codes:' "$out" | head -1)"
        echo "h2load_finished	$(grep -E '^finished in' "$out" | head -1)"
    } >> "$meta"

    # the queue drains, then the SSE client gets the last events
    local drain ok=1
    drain=$(soak_drain 120) || ok=0
    echo "drain_s	$drain" >> "$meta"
    echo "drained	$ok" >> "$meta"
    local p
    p=$(soak_metric published_total)
    for ((k = 0; k < 100; k++)); do
        [ "$(soak_status events)" -ge "$p" ] && break
        sleep 0.1
    done
    sleep 1.1   # the client writes its counts every second
    soak_sample drained
    kill "$subs_pid" 2>/dev/null || true
    wait "$subs_pid" 2>/dev/null || true
    stop_nginx soak
    grep -E '\[(alert|crit|emerg)\]|exited on signal' "$TMP/soak/error.log" \
        | head -20 > "$DATA/soak-errors.txt" || true
    echo "status	done" >> "$meta"
    say "   drained: $ok after ${drain}s"
}
