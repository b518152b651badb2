# Section 7 of bench/run.sh, Kafka: sourced by run.sh (it uses its helpers:
# say, calc, now, cmd, cmd_env, cmd_record, wrk_parse, common_main,
# common_http, body, start_nginx, stop_nginx, free_port, cpu, and $TMP
# $DATA $BENCH $ROOT $MODULE $NGINX $DUR $CONNS $ROUNDS $PORT $RPORT $NPORT
# $LPORT).
#
# One librdkafka mock cluster (t/tools/kafka-mock.c, 3 brokers, built into
# bench/tmp/kafka/) and one nginx (2 workers) whose zone `kafka` routes
# every topic kafka.> to "kafka://<the mock>/bench" with acks=all,
# idempotence=on, compression=gzip, linger=5ms, batch=16384 (the route's
# defaults, written out). Every record is a 1 KiB JSON body; the Kafka
# topics have BENCH_KAFKA_PARTITIONS partitions and the bus topics are
# kafka.t0 .. kafka.t99 (the route's key is the bus topic).
#
#   a. backlog drain: every shard paused, N messages queued (h2load), the
#      shards resumed; records/s = N / time until message_bus_kafka_
#      produced_total has grown by N. Against `kcat -P` producing the
#      same N records (same keys, three headers like the module's, same
#      settings) into another topic of the same cluster, the whole kcat run
#      timed. Rounds alternate which goes first.
#   b. steady: wrk publishes at full speed for BENCH_DURATION; the
#      acknowledged records are counted during the run and until all the
#      accepted ones are in.
#   c. latency: an open loop (h2load --rps) at half the median drain rate
#      for BENCH_KAFKA_LAT_DURATION s, percentiles from the bucket deltas
#      of message_bus_kafka_delivery_seconds (produce -> acknowledged
#      delivery report, per attempt) and message_bus_message_age_seconds
#      (publish -> dispatch); then bench/kafka-lowlat.pl, one message at a
#      time, publish -> produced_total +1 read from /metrics.
#   d. consumer: the same records read into the bus by
#      omnibus_kafka_consume (2 workers in one group) against kcat -C
#
# Writes data/kafka-meta.tsv, kafka-drain.tsv, kafka-steady.tsv,
# kafka-latency.tsv, kafka-lowlat.tsv and kafka-errors.txt.
#
# Knobs: BENCH_KAFKA=0 skips the section; BENCH_KAFKA_MSGS (backlog N,
# 50000), BENCH_KAFKA_ROUNDS (rounds of a and b, 3), BENCH_KAFKA_PARTITIONS
# (6), BENCH_KAFKA_LAT_DURATION (10), BENCH_KAFKA_LAT_RATE (messages/s of
# the open loop; default half the median drain rate), BENCH_KAFKA_LOWLAT_MSGS
# (300, one every 20 ms), BENCH_KAFKA_MOCK (a kafka-mock binary to use
# instead of building one).

BENCH_KAFKA=${BENCH_KAFKA:-1}
KAFKA_MSGS=${BENCH_KAFKA_MSGS:-50000}
KAFKA_ROUNDS=${BENCH_KAFKA_ROUNDS:-3}
KAFKA_PARTITIONS=${BENCH_KAFKA_PARTITIONS:-6}
KAFKA_LAT_DUR=${BENCH_KAFKA_LAT_DURATION:-10}
KAFKA_LOWLAT_MSGS=${BENCH_KAFKA_LOWLAT_MSGS:-300}
KAFKA_BROKERS=3
KAFKA_WORKERS=2
KAFKA_TOPICS=100
KAFKA_SIZE=1024
KAFKA_SETTINGS=${BENCH_KAFKA_SETTINGS:-"acks=all idempotence=on compression=gzip linger=5ms batch=16384"}
KAFKA_KCAT_SETTINGS=(-X acks=all -X enable.idempotence=true
                     -X compression.codec=gzip -X linger.ms=5
                     -X batch.size=16384)

# before anything runs: what the section needs, or a clear refusal
kafka_require() {
    local missing=()
    command -v kcat >/dev/null && kcat -V >/dev/null 2>&1 \
        || missing+=("kcat (Debian: kcat)")
    if [ -z "${BENCH_KAFKA_MOCK:-}" ]; then
        command -v cc >/dev/null || missing+=("cc")
        printf '#include <librdkafka/rdkafka.h>\n#include <librdkafka/rdkafka_mock.h>\n' \
            | cc -E -x c - >/dev/null 2>&1 \
            || missing+=("librdkafka's headers (Debian: librdkafka-dev)")
    fi
    grep -qa rd_kafka_producev "$MODULE" 2>/dev/null \
        || missing+=("a module built with librdkafka ($MODULE has no kafka:// sink: install librdkafka-dev, make clean && make)")
    if [ "${#missing[@]}" -gt 0 ]; then
        local m
        for m in "${missing[@]}"; do
            echo "bench: Kafka section: missing $m" >&2
        done
        echo "bench: BENCH_KAFKA=0 skips the Kafka section" >&2
        return 1
    fi
}

KAFKA_PIDS=()
kafka_cleanup() {
    local p
    stop_nginx kafka
    stop_nginx kafka-consume
    for p in "${KAFKA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KMOCK_PID:-}" ] && { kill "$KMOCK_PID" 2>/dev/null || true; }
    return 0
}

# the mock cluster: a coprocess; its first line is the bootstrap list
kafka_mock_start() {
    local k=$TMP/kafka mock=${BENCH_KAFKA_MOCK:-} line
    if [ -z "$mock" ]; then
        mock=$k/kafka-mock
        cc -O2 -o "$mock" "$ROOT/t/tools/kafka-mock.c" -lrdkafka \
            2> "$k/kafka-mock.build.log" \
            || { cat "$k/kafka-mock.build.log" >&2; return 1; }
    fi
    coproc KMOCK { exec "$mock" "$KAFKA_BROKERS" "bench:$KAFKA_PARTITIONS" \
                        "bench.kcat:$KAFKA_PARTITIONS" 2> "$k/kafka-mock.err"; }
    KMOCK_PID=$KMOCK_PID
    IFS= read -r -t 20 line <&"${KMOCK[0]}" \
        || { echo "kafka: the mock cluster printed no bootstrap list" >&2
             cat "$k/kafka-mock.err" >&2; return 1; }
    KAFKA_BOOTSTRAP=$line
    cmd_record kafka-mock "$mock" "$KAFKA_BROKERS" "bench:$KAFKA_PARTITIONS" \
        "bench.kcat:$KAFKA_PARTITIONS"
}

kafka_mock_cmd() {  # kafka_mock_cmd LINE: a command of the mock, "ok" or fail
    local reply
    echo "$1" >&"${KMOCK[1]}"
    IFS= read -r -t 10 reply <&"${KMOCK[0]}" || reply="(no answer)"
    [ "${reply#ok}" != "$reply" ] || { echo "kafka-mock: '$1': $reply" >&2; return 1; }
}

write_kafka_conf() {
    local p=$TMP/kafka
    {
        echo "load_module $MODULE;"
        common_main "$p" "$KAFKA_WORKERS"
        echo "http {"
        common_http "$p"
        cat <<EOF
    omnibus_zone zone=kafka:1024m shards=8 min_shards=2 max_shards=16
                 queue_size=1000000 retain=100 backpressure=100%:99%;
    omnibus_route kafka kafka.> "kafka://$KAFKA_BOOTSTRAP/bench" name=kafka
                  $KAFKA_SETTINGS;

    server {
        listen 127.0.0.1:$KPORT backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
        location /publish/ { omnibus_publish kafka; }
        location /admin/kafka/ { omnibus_admin kafka; }
        location = /metrics { omnibus_metrics; }
    }
}
EOF
    } > "$p/nginx.conf"
}

kmetrics() { curl -s "http://127.0.0.1:$KPORT/metrics"; }

kmetric() {  # kmetric NAME: summed over the series of zone kafka
    kmetrics | perl -ne '
        $n += $1 if /^\Q'"$1"'\E\{zone="kafka"[,}][^ ]* (\d+)$/;
        END { print $n + 0 }'
}

kproduced() { kmetric message_bus_kafka_produced_total; }

kqueued() {
    curl -s "http://127.0.0.1:$KPORT/admin/kafka/" | perl -MJSON::PP -e '
        local $/; my $j = decode_json(<STDIN>); my $n = 0;
        $n += $_->{queued} + $_->{inflight} for @{$j->{shards}}; print $n'
}

kshards() {  # kshards pause|resume
    local i
    for ((i = 0; i < 8; i++)); do
        curl -sf -X POST "http://127.0.0.1:$KPORT/admin/kafka/shards/$i/$1" \
            > /dev/null || return 1
    done
}

proc_cpu() {  # proc_cpu PID: utime + stime in seconds, threads included
    perl -e 'open my $f, "<", "/proc/$ARGV[0]/stat" or do { print 0; exit };
             my @f = split / /, (<$f> =~ s/^.*\) //r);
             printf "%.2f", ($f[11] + $f[12]) / 100' "$1"
}

# wait until produced_total reached TARGET; sets KWAIT_P (produced) and
# KWAIT_T (when it was read: one perl process polls /metrics every 10 ms,
# so the time is good to about 10 ms plus one read); 1 on timeout
kafka_wait_produced() {  # kafka_wait_produced TARGET TIMEOUT
    read -r KWAIT_P KWAIT_T < <(perl -MIO::Socket::INET -MTime::HiRes=time,sleep -e '
        my ($port, $target, $timeout) = @ARGV;
        my $end = time + $timeout;
        while (1) {
            my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
                                          PeerPort => $port) or die "$!\n";
            print $s "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            my $n = 0;
            while (<$s>) {
                $n += $1 if /^message_bus_kafka_produced_total\{zone="kafka"[,}][^ ]* (\d+)/;
            }
            close $s;
            my $t = time;
            if ($n >= $target || $t > $end) { printf "%d %.6f\n", $n, $t; last }
            sleep 0.01;
        }' "$KPORT" "$1" "$2")
    [ "${KWAIT_P:-0}" -ge "$1" ]
}

# the sum of the end offsets of a topic's partitions
kafka_end_offsets() {  # kafka_end_offsets TOPIC
    local args=() i
    for ((i = 0; i < KAFKA_PARTITIONS; i++)); do args+=(-t "$1:$i:-1"); done
    kcat -Q -b "$KAFKA_BOOTSTRAP" "${args[@]}" 2>/dev/null \
        | perl -ne '$n += $1 if /offset (\d+)/; END { print $n + 0 }'
}

# kcat's input: N lines "kafka.tI<TAB>1 KiB JSON", keys as the module's
kafka_kcat_input() {
    perl -e 'my ($n, $t, $size) = @ARGV;
             my ($h, $e) = (q({"seq":0,"pad":"), q("}));
             my $v = $h . ("x" x ($size - length($h) - length($e))) . $e;
             print "kafka.t", $_ % $t, "\t$v\n" for 0 .. $n - 1' \
        "$KAFKA_MSGS" "$KAFKA_TOPICS" "$KAFKA_SIZE" > "$TMP/kafka/kcat.in"
}

# a. one kcat run: sets KC_S (seconds), KC_RATE, KC_CPU, KC_ACKED
kafka_kcat_run() {
    local k=$TMP/kafka o0 o1 tf
    # headers as the module's: a 36-byte id, the bus topic, the priority
    local kc=(kcat -P -b "$KAFKA_BOOTSTRAP" -t bench.kcat -K $'\t'
              -H id=0000000000000000000a-0000-0000000001 -H topic=kafka.t0
              -H priority=0 "${KAFKA_KCAT_SETTINGS[@]}")
    # (recorded with <TAB> for the tab; its input: N lines "kafka.tI<TAB>body")
    cmd_record kafka-kcat-produce "${kc[@]//$'\t'/<TAB>}"
    o0=$(kafka_end_offsets bench.kcat)
    tf=$k/kcat.time
    local TIMEFORMAT='%R %U %S'
    { time "${kc[@]}" < "$k/kcat.in" 2>> "$k/kcat.err" ; } 2> "$tf" \
        || { echo "kafka: kcat -P failed:" >&2; cat "$k/kcat.err" >&2; return 1; }
    o1=$(kafka_end_offsets bench.kcat)
    read -r KC_S u s < "$tf"
    KC_RATE=$(calc "$KAFKA_MSGS / $KC_S")
    KC_CPU=$(calc "($u + $s) * 1e6 / $KAFKA_MSGS" 1)
    KC_ACKED=$((o1 - o0))
}

# a. one backlog drain: sets KD_S KD_RATE KD_CPU KD_MOCK_CPU KD_QUEUED
kafka_drain_run() {
    local k=$TMP/kafka p0 c0 c1 m0 m1 t0 master
    master=$(cat "$k/nginx.pid")
    kshards pause
    cmd kafka-fill h2load --h1 -n "$KAFKA_MSGS" -c 8 -d "$KBODY" \
        -H 'Content-Type: application/json' -i "$k/uris.txt" \
        > "$k/h2load-fill.out" 2>&1
    KD_QUEUED=$(kqueued)
    p0=$(kproduced)
    c0=$(cpu "$master")
    m0=$(proc_cpu "$KMOCK_PID")
    t0=$(now)
    kshards resume
    if ! kafka_wait_produced $((p0 + KAFKA_MSGS)) 120; then
        say "   drain: only $((KWAIT_P - p0)) of $KAFKA_MSGS acknowledged after 120 s"
    fi
    c1=$(cpu "$master")
    m1=$(proc_cpu "$KMOCK_PID")
    KD_ACKED=$((KWAIT_P - p0))
    KD_S=$(calc "$KWAIT_T - $t0" 3)
    KD_RATE=$(calc "$KD_ACKED / $KD_S")
    KD_CPU=$(calc "$KD_ACKED > 0 ? ($c1 - $c0) * 1e6 / $KD_ACKED : 0" 1)
    KD_MOCK_CPU=$(calc "$KD_ACKED > 0 ? ($m1 - $m0) * 1e6 / $KD_ACKED : 0" 1)
}

kafka_section_drain() {
    local r order t
    say "   a. backlog drain: $KAFKA_MSGS x 1 KiB, $KAFKA_ROUNDS rounds, against kcat -P"
    printf 'round\tgoer\trecords\tqueued\tacked\tseconds\trate\tcpu_us_per_record\tmock_cpu_us_per_record\n' \
        > "$DATA/kafka-drain.tsv"
    kafka_kcat_input
    for ((r = 1; r <= KAFKA_ROUNDS; r++)); do
        order=(kcat omnibus)
        [ $((r % 2)) = 0 ] && order=(omnibus kcat)
        for t in "${order[@]}"; do
            if [ "$t" = kcat ]; then
                kafka_kcat_run
                printf '%d\tkcat\t%d\t\t%d\t%s\t%d\t%s\t\n' "$r" "$KAFKA_MSGS" \
                    "$KC_ACKED" "$KC_S" "$KC_RATE" "$KC_CPU" >> "$DATA/kafka-drain.tsv"
                say "      round $r kcat -P: $KC_ACKED records in ${KC_S}s = $KC_RATE/s ($KC_CPU CPU us/record)"
            else
                kafka_drain_run
                printf '%d\tomnibus\t%d\t%d\t%d\t%s\t%d\t%s\t%s\n' "$r" "$KAFKA_MSGS" \
                    "$KD_QUEUED" "$KD_ACKED" "$KD_S" "$KD_RATE" "$KD_CPU" \
                    "$KD_MOCK_CPU" >> "$DATA/kafka-drain.tsv"
                say "      round $r drain: $KD_ACKED of $KD_QUEUED queued in ${KD_S}s = $KD_RATE/s ($KD_CPU worker CPU us/record)"
            fi
        done
    done
}

# b. steady publish -> Kafka; and, for reference, the same wrk run into
# topics without a route in the same nginx (rounds alternate the order)
kafka_steady_run() {  # kafka_steady_run ROUND
    local r=$1 out p0 p1 d0 d1 t0 t1 c0 c1 accepted wrate drate
    out=$TMP/kafka/wrk-steady-$r.out
    p0=$(kmetric message_bus_published_total)
    d0=$(kproduced)
    c0=$(cpu "$(cat "$TMP/kafka/nginx.pid")")
    t0=$(now)
    cmd_env kafka-steady BODY_SIZE=$KAFKA_SIZE PATH_PREFIX=/publish/ \
        TOPICS=$KAFKA_TOPICS TOPIC_PREFIX=kafka.t -- \
        wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/pub.lua" \
        "http://127.0.0.1:$KPORT" > "$out" 2>&1
    t1=$(now)
    d1=$(kproduced)
    wrk_parse "$out"
    p1=$(kmetric message_bus_published_total)
    accepted=$((p1 - p0))
    kafka_wait_produced $((d0 + accepted)) 120 \
        || say "      round $r: not drained after 120 s"
    c1=$(cpu "$(cat "$TMP/kafka/nginx.pid")")
    wrate=$(calc "($d1 - $d0) / ($t1 - $t0)")
    drate=$(calc "($KWAIT_P - $d0) / ($KWAIT_T - $t0)")
    KS_ROW=$(printf '%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%s\t%d\t%s' "$r" "$W_RATE" \
        "$W_NON2XX" "$accepted" "$W_DUR" $((d1 - d0)) "$wrate" $((KWAIT_P - d0)) \
        "$(calc "$KWAIT_T - $t0" 3)" "$drate" \
        "$(calc "$KWAIT_P > $d0 ? ($c1 - $c0) * 1e6 / ($KWAIT_P - $d0) : 0" 1)")
    say "      round $r: published $W_RATE/s (non-2xx $W_NON2XX); acknowledged $wrate/s during the run, $((KWAIT_P - d0)) of $accepted = $drate/s until all in ($(calc "$KWAIT_T - $t0" 1)s)"
}

kafka_noroute_run() {  # kafka_noroute_run ROUND: sets KS_NOROUTE
    local out=$TMP/kafka/wrk-noroute-$1.out
    cmd_env kafka-steady-noroute BODY_SIZE=$KAFKA_SIZE PATH_PREFIX=/publish/ \
        TOPICS=$KAFKA_TOPICS TOPIC_PREFIX=none.t -- \
        wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH/pub.lua" \
        "http://127.0.0.1:$KPORT" > "$out" 2>&1
    wrk_parse "$out"
    KS_NOROUTE=$W_RATE
    say "      round $1: no route (topics none.t*): published $W_RATE/s"
}

kafka_section_steady() {
    local r
    say "   b. steady: wrk ${DUR}s x $KAFKA_ROUNDS, 1 KiB to kafka.t0..99 (and to none.t0..99, no route)"
    printf 'round\tpublish_rate\tnon2xx\taccepted\tpublish_s\tacked_in_window\twindow_rate\tacked\tdrain_s\tdrained_rate\tcpu_us_per_record\tnoroute_publish_rate\n' \
        > "$DATA/kafka-steady.tsv"
    for ((r = 1; r <= KAFKA_ROUNDS; r++)); do
        if [ $((r % 2)) = 1 ]; then
            kafka_steady_run "$r"
            kafka_noroute_run "$r"
        else
            kafka_noroute_run "$r"
            kafka_steady_run "$r"
        fi
        printf '%s\t%d\n' "$KS_ROW" "$KS_NOROUTE" >> "$DATA/kafka-steady.tsv"
    done
}

# c. latency: open loop, histograms; then one at a time
kafka_section_latency() {
    local rate rps clients=4 k=$TMP/kafka out p0 acc
    rate=${BENCH_KAFKA_LAT_RATE:-$(perl -e '
        my @r; <STDIN>;
        while (<STDIN>) { my @f = split /\t/; push @r, $f[6] if $f[1] eq "omnibus" }
        my @s = sort { $a <=> $b } @r; print int(($s[$#s / 2] // 2000) / 2)' \
        < "$DATA/kafka-drain.tsv")}
    rps=$(calc "$rate / $clients")
    [ "$rps" -ge 1 ] || rps=1
    say "   c. latency: h2load $clients x $rps/s = $((rps * clients))/s for ${KAFKA_LAT_DUR}s (histograms), then kafka-lowlat.pl"
    kmetrics > "$k/metrics-lat-0.txt"
    p0=$(kmetric message_bus_published_total)
    out=$k/h2load-lat.out
    cmd kafka-latency h2load --h1 -c $clients --rps="$rps" -D "$KAFKA_LAT_DUR" \
        -d "$KBODY" -H 'Content-Type: application/json' -i "$k/uris.txt" \
        > "$out" 2>&1 || true
    acc=$(( $(kmetric message_bus_published_total) - p0 ))
    kafka_wait_produced $(( $(perl -ne 'print $1 if /^message_bus_kafka_produced_total\{zone="kafka"[^}]*\} (\d+)/' \
        "$k/metrics-lat-0.txt") + acc )) 60 || say "      not drained after 60 s"
    kmetrics > "$k/metrics-lat-1.txt"
    {
        printf 'measure\tcount\tmean_ms\tp50_ms\tp90_ms\tp99_ms\tmax_le_ms\n'
        local fam
        for fam in message_bus_kafka_delivery_seconds message_bus_message_age_seconds; do
            perl "$BENCH/kafka-hist.pl" "$k/metrics-lat-0.txt" "$k/metrics-lat-1.txt" \
                "$fam" 'zone="kafka"' | FAM=$fam perl -ne '
                my %h = /(\w+)=(\S+)/g;
                print join("\t", $ENV{FAM}, @h{qw(count mean_ms p50_ms p90_ms p99_ms max_le_ms)}), "\n"'
        done
    } > "$DATA/kafka-latency.tsv"
    {
        echo "lat_rate	$((rps * clients))"
        echo "lat_clients	$clients"
        echo "lat_accepted	$acc"
        echo "lat_h2load	$(grep -E '^requests:' "$out" | head -1)"
        echo "lat_h2load_status	$(grep -E '^status codes:' "$out" | head -1)"
    } >> "$DATA/kafka-meta.tsv"
    sed 's/^/      /' "$DATA/kafka-latency.tsv"

    cmd kafka-lowlat perl "$BENCH/kafka-lowlat.pl" --port "$KPORT" \
        --path /publish/kafka.lat --zone kafka --route kafka \
        --messages "$KAFKA_LOWLAT_MSGS" --interval 20 --size "$KAFKA_SIZE" \
        > "$DATA/kafka-lowlat.tsv"
    perl -ne 'chomp; my @f = split /\t/; push @o, "$f[0] $f[1]";
              END { print "      one at a time: ", join(", ", @o), "\n" }' \
        "$DATA/kafka-lowlat.tsv"
}

# d. the consumer, Kafka -> bus: NOT CALLED YET. It waits for
# omnibus_kafka_consume to be documented in README.md; the directive's
# syntax below is the one of t/61-kafka-consume.t (in progress). It would
# measure records/s into the bus (message_bus_kafka_consumed_total, and
# message_bus_published_total) against `kcat -C` reading the same N
# records, and write data/kafka-consume.tsv:
#   round  goer  records  seconds  rate  cpu_us_per_record
# d. It reads $TMP/kafka/kcat.in, written by kafka_section_drain. The
# mock keeps a few thousand records per partition, so the topic has
# enough partitions for all of them. The omnibus rate runs from the first
# record in the bus to the last (sampled every 50 ms), so that the start
# of nginx and the group's join are not in it; they are reported apart.
kafka_consume_bench() {
    local k=$TMP/kafka r t0 t1 c0 n group master CPORT
    CPORT=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT" "$KPORT")
    say "   d. consumer: $KAFKA_MSGS records of 1 KiB, omnibus_kafka_consume vs kcat -C"
    kafka_mock_cmd "topic bench.consume $(( (KAFKA_MSGS + 3999) / 4000 ))"
    kcat -P -b "$KAFKA_BOOTSTRAP" -t bench.consume -K $'\t' \
        "${KAFKA_KCAT_SETTINGS[@]}" < "$k/kcat.in" 2>> "$k/kcat.err"
    n=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t bench.consume -o beginning -e -q \
        -f '%o\n' 2>> "$k/kcat.err" | wc -l)
    [ "$n" -ge "$KAFKA_MSGS" ] || { echo "kafka: bench.consume holds $n records" >&2; return 1; }
    printf 'round\tgoer\trecords\tseconds\trate\tcpu_us_per_record\tstart_s\n' \
        > "$DATA/kafka-consume.tsv"

    # a second nginx that consumes: one zone without routes, big enough
    # to queue every record (nothing is delivered, retain keeps a few)
    mkdir -p "$TMP/kafka-consume"
    for ((r = 1; r <= KAFKA_ROUNDS; r++)); do
        # kcat -C: from the beginning to the end, every record read
        local TIMEFORMAT='%R %U %S'
        cmd_record kafka-kcat-consume kcat -C -b "$KAFKA_BOOTSTRAP" -t bench.consume \
            -o beginning -e -q -c "$KAFKA_MSGS" -f '%o\n'
        { time kcat -C -b "$KAFKA_BOOTSTRAP" -t bench.consume -o beginning -e -q \
              -c "$KAFKA_MSGS" -f '%o\n' > "$k/kcat-consume.out" 2>> "$k/kcat.err"; } \
            2> "$k/kcat-consume.time"
        read -r s u sy < "$k/kcat-consume.time"
        printf '%d\tkcat\t%d\t%s\t%d\t%s\t0\n' "$r" "$(wc -l < "$k/kcat-consume.out")" \
            "$s" "$(calc "$KAFKA_MSGS / $s")" \
            "$(calc "($u + $sy) * 1e6 / $KAFKA_MSGS" 1)" >> "$DATA/kafka-consume.tsv"

        # omnibus: a fresh consumer group each round, from the earliest
        group=bench-$r-$$
        {
            echo "load_module $MODULE;"
            common_main "$TMP/kafka-consume" "$KAFKA_WORKERS"
            echo "http {"
            common_http "$TMP/kafka-consume"
            cat <<EOF
    omnibus_zone zone=kc:1024m shards=8 min_shards=2 max_shards=16
                 queue_size=1000000 retain=100 backpressure=100%:99%;
    omnibus_kafka_consume kc $KAFKA_BOOTSTRAP topics=bench.consume
                          group=$group offset_reset=earliest;
    server {
        listen 127.0.0.1:$CPORT backlog=4096;
        location = /metrics { omnibus_metrics; }
    }
}
EOF
        } > "$TMP/kafka-consume/nginx.conf"
        cmd_record kafka-consume-conf cat "$TMP/kafka-consume/nginx.conf"
        t0=$(now)
        start_nginx kafka-consume "$CPORT"
        master=$(cat "$TMP/kafka-consume/nginx.pid")
        local end got=0 first= tp=
        end=$(calc "$t0 + 120" 3)
        while :; do
            got=$(curl -s "http://127.0.0.1:$CPORT/metrics" | perl -ne '
                $n += $1 if /^message_bus_kafka_consumed_total\{zone="kc"[,}][^ ]* (\d+)$/;
                END { print $n + 0 }')
            t1=$(now)
            # the previous sample: the first record came after it
            [ -z "$first" ] && [ "$got" -gt 0 ] && first=${tp:-$t0}
            tp=$t1
            [ "$got" -ge "$KAFKA_MSGS" ] && break
            [ "$(calc "$t1 > $end")" = 1 ] && { say "      consumer: $got after 120 s"; break; }
            sleep 0.05
        done
        c0=$(cpu "$master")
        stop_nginx kafka-consume
        first=${first:-$t0}
        printf '%d\tomnibus\t%d\t%s\t%d\t%s\t%s\n' "$r" "$got" "$(calc "$t1 - $first" 3)" \
            "$(calc "$got / ($t1 - $first)")" \
            "$(calc "$got > 0 ? $c0 * 1e6 / $got : 0" 1)" \
            "$(calc "$first - $t0" 2)" >> "$DATA/kafka-consume.tsv"
        say "      round $r: $(tail -2 "$DATA/kafka-consume.tsv" | cut -f2,3,5 | tr '\t\n' ' ')"
    done
}

# run in a subshell by run.sh: any failure ends the section, not the bench
kafka_main() {
    trap kafka_cleanup EXIT
    local k=$TMP/kafka meta=$DATA/kafka-meta.tsv i
    rm -f "$DATA"/kafka*.tsv "$DATA/kafka-errors.txt"
    [ -f "$DATA/commands.tsv" ] && sed -i '/^kafka-/d' "$DATA/commands.tsv"
    rm -rf "$k"
    mkdir -p "$k"
    KPORT=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT")
    {
        echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "records	$KAFKA_MSGS"
        echo "rounds	$KAFKA_ROUNDS"
        echo "partitions	$KAFKA_PARTITIONS"
        echo "brokers	$KAFKA_BROKERS"
        echo "workers	$KAFKA_WORKERS"
        echo "topics	$KAFKA_TOPICS"
        echo "size	$KAFKA_SIZE"
        echo "settings	$KAFKA_SETTINGS"
        echo "duration	$DUR"
        echo "conns	$CONNS"
        echo "lat_dur	$KAFKA_LAT_DUR"
        echo "kcat	$(kcat -V 2>&1 | grep -o 'Version [^ ]*' | head -1 | sed 's/Version //')"
        echo "librdkafka	$(dpkg-query -W -f='${Version}' librdkafka1 2>/dev/null || kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*' | head -1 | sed 's/librdkafka //')"
        echo "status	started"
    } > "$meta"

    kafka_mock_start || return 1
    say "7. Kafka: mock cluster of $KAFKA_BROKERS brokers at $KAFKA_BOOTSTRAP, nginx on :$KPORT ($KAFKA_SETTINGS)"
    write_kafka_conf
    start_nginx kafka "$KPORT" || return 1
    KBODY=$(body "$KAFKA_SIZE")
    for ((i = 0; i < KAFKA_TOPICS; i++)); do
        printf 'http://127.0.0.1:%s/publish/kafka.t%d\n' "$KPORT" "$i"
    done > "$k/uris.txt"

    # both workers' producers up (the idempotent producer's id first)
    local p0
    p0=$(kproduced)
    h2load --h1 -n 400 -c 4 -d "$KBODY" -H 'Content-Type: application/json' \
        -i "$k/uris.txt" > "$k/h2load-warm.out" 2>&1
    kafka_wait_produced $((p0 + 400)) 30 \
        || { echo "kafka: the warm-up records were not acknowledged" >&2; return 1; }

    kafka_section_drain
    kafka_section_steady
    kafka_section_latency
    kafka_consume_bench

    stop_nginx kafka
    grep -E '\[(alert|crit|emerg)\]|exited on signal' "$k/error.log" \
        | head -20 > "$DATA/kafka-errors.txt" || true
    echo "status	done" >> "$meta"
}
