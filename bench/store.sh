# Section 8 of bench/run.sh, the durable store (PostgreSQL): sourced by
# run.sh (it uses its helpers: say, calc, now, cmd, cmd_env, cmd_record,
# wrk_parse, common_main, common_http, body, start_nginx, stop_nginx,
# free_port, cpu, and $TMP $DATA $BENCH $ROOT $MODULE $NGINX $DUR $CONNS
# $ROUNDS $PORT $RPORT $NPORT $LPORT).
#
# One PostgreSQL server for the whole section, initdb'd into
# bench/tmp/store/pg (as the user postgres when run as root), on a free
# port of 127.0.0.1, with its durability defaults written out: fsync=on,
# synchronous_commit=on, full_page_writes=on. Three databases: omnibus_sync
# and omnibus_async (one per store, so the sizes measured after a sync run
# are the sync store's own) and baseline (pgbench's table). One nginx (2
# workers) with three zones of the same settings, no routes (a message is
# queued, committed to the retain ring at dispatch and done; nothing
# backpressures, the queue stays empty): `mem` (memory only), `sync`
# (omnibus_store mode=sync) and `async` (mode=async), both stores with
# BENCH_STORE_SETTINGS (the module's defaults written out).
#
#   a. throughput, in BENCH_ROUNDS rounds in rotating order, BENCH_DURATION
#      each, 1 KiB JSON bodies: wrk -c BENCH_CONNS with bench/pub.lua to
#      each zone (req/s, 2xx only), and pgbench -c BENCH_CONNS -j 2 -M
#      prepared running one INSERT of a 1 KiB row per transaction into a
#      plain table (transactions/s). After an async run the store's backlog
#      is waited for (rows written / time until all written). Around each
#      run /metrics is read: commit latency (message_bus_store_commit_
#      seconds) and rows per commit (message_bus_store_batch_rows).
#      CPU: the nginx workers' and the PostgreSQL server's (every process
#      of the postmaster, exited backends included).
#   b. after each sync run: size of the tables and their indexes
#      (pg_total_relation_size, pg_indexes_size over omnibus_messages_N and
#      omnibus_done_N), their rows and n_dead_tup.
#   c. latency: h2load, BENCH_STORE_LAT_CLIENTS connections at a fixed
#      rate (--rps), half the median sync rate of a, for
#      BENCH_STORE_LAT_DURATION s to the sync zone; publish -> 202 per
#      request from h2load's --log-file (bench/store-lat.pl), commit
#      latency and rows per commit from the histograms around it.
#
# Writes data/store-meta.tsv, store-runs.tsv, store-sizes.tsv,
# store-latency.tsv and store-errors.txt.
#
# Knobs: BENCH_STORE=0 skips the section; BENCH_STORE_SETTINGS (the
# stores' parameters, "pool=4 batch=512 flush=2ms"), BENCH_STORE_LAT_
# DURATION (10), BENCH_STORE_LAT_CLIENTS (BENCH_CONNS), BENCH_STORE_LAT_RATE
# (requests/s of c; default half the median sync rate), BENCH_STORE_PG_BIN
# (initdb, pg_ctl, psql, pgbench: the highest /usr/lib/postgresql/*/bin).

BENCH_STORE=${BENCH_STORE:-1}
STORE_SETTINGS=${BENCH_STORE_SETTINGS:-"pool=4 batch=512 flush=2ms"}
STORE_LAT_DUR=${BENCH_STORE_LAT_DURATION:-10}
STORE_LAT_CLIENTS=${BENCH_STORE_LAT_CLIENTS:-$CONNS}
STORE_PG_BIN=${BENCH_STORE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null \
                                    | sort -V | tail -1)}
STORE_WORKERS=2
STORE_TOPICS=100
STORE_SIZE=1024
STORE_ZONES="mem sync async"

# before anything runs: what the section needs, or a clear refusal
store_require() {
    local missing=() t
    for t in initdb pg_ctl pg_isready psql pgbench; do
        [ -x "$STORE_PG_BIN/$t" ] \
            || missing+=("PostgreSQL's $t in '$STORE_PG_BIN' (Debian: postgresql; BENCH_STORE_PG_BIN names the directory)")
    done
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        missing+=("a user postgres to run the server as (we are root)")
    fi
    grep -qa omnibus_store "$MODULE" 2>/dev/null \
        || missing+=("a module built with libpq ($MODULE has no omnibus_store: install libpq-dev, make clean && make)")
    if [ "${#missing[@]}" -gt 0 ]; then
        for t in "${missing[@]}"; do
            echo "bench: store section: missing $t" >&2
        done
        echo "bench: BENCH_STORE=0 skips the store section" >&2
        return 1
    fi
}

# ------------------------------------------------------------- PostgreSQL

STORE_PG=$TMP/store/pg          # the server's directory (data/, socket)

store_pg_as() {  # the server's commands: as postgres when we are root
    if [ "$(id -u)" -eq 0 ]; then
        (cd "$STORE_PG" && runuser -u postgres -- "$@")
    else
        (cd "$STORE_PG" && "$@")
    fi
}

spsql() {  # spsql DB SQL: as the superuser over the unix socket; TSV rows
    "$STORE_PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -F $'\t' \
        -h "$STORE_PG" -p "$STPGPORT" -U postgres -d "$1" -c "$2"
}

store_pg_start() {
    local d=$STORE_PG
    rm -rf "$d"
    mkdir -p "$d"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$d"
    STORE_PASSWORD=bench-$RANDOM$RANDOM$RANDOM
    # initdb syncs its files as usual (no --no-sync)
    store_pg_as "$STORE_PG_BIN/initdb" -D "$d/data" -U postgres -E UTF8 \
        --locale=C --auth-local=trust --auth-host=scram-sha-256 \
        > "$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; return 1; }
    cmd_record store-initdb "$STORE_PG_BIN/initdb" -D bench/tmp/store/pg/data \
        -U postgres -E UTF8 --locale=C --auth-local=trust --auth-host=scram-sha-256
    # durability as shipped, written out: every commit waits for its WAL
    # to be flushed to the disk
    cat >> "$d/data/postgresql.conf" <<EOF

# bench/store.sh
listen_addresses = '127.0.0.1'
port = $STPGPORT
unix_socket_directories = '$d'
max_connections = 200
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
EOF
    store_pg_as "$STORE_PG_BIN/pg_ctl" -w -t 60 -D "$d/data" -l "$d/server.log" \
        start > "$d/pg_ctl.log" 2>&1 \
        || { cat "$d/pg_ctl.log" "$d/server.log" >&2; return 1; }
    STORE_PG_STARTED=1
    local i
    for ((i = 0; i < 100; i++)); do
        "$STORE_PG_BIN/pg_isready" -q -h "$d" -p "$STPGPORT" && break
        sleep 0.1
    done
    STORE_PG_PID=$(head -1 "$d/data/postmaster.pid")
    spsql postgres "CREATE ROLE omnibus LOGIN PASSWORD '$STORE_PASSWORD'" >/dev/null
    for db in omnibus_sync omnibus_async baseline; do
        spsql postgres "CREATE DATABASE $db OWNER omnibus" >/dev/null
    done
    spsql baseline "CREATE TABLE baseline (id bigserial PRIMARY KEY,
                        topic text NOT NULL, payload bytea NOT NULL);
                    ALTER TABLE baseline OWNER TO omnibus;
                    ALTER SEQUENCE baseline_id_seq OWNER TO omnibus" >/dev/null
    cmd_record store-baseline-table psql -d baseline -c \
        "CREATE TABLE baseline (id bigserial PRIMARY KEY, topic text NOT NULL, payload bytea NOT NULL)"
    (umask 077; echo "$STORE_PASSWORD" > "$TMP/store/password")
}

store_pg_stop() {
    [ "${STORE_PG_STARTED:-0}" = 1 ] || return 0
    store_pg_as "$STORE_PG_BIN/pg_ctl" -w -t 60 -D "$STORE_PG/data" -m fast \
        stop >/dev/null 2>&1 \
        || store_pg_as "$STORE_PG_BIN/pg_ctl" -w -t 30 -D "$STORE_PG/data" \
               -m immediate stop >/dev/null 2>&1 || true
    STORE_PG_STARTED=0
}

# CPU seconds of the server: the postmaster, its live children, and the
# children it has reaped (the backends of pgbench's connections exit)
store_pg_cpu() {
    perl -e '
        my $pm = shift;
        my $clk = 100;
        my $t = 0;
        opendir(my $d, "/proc") or die;
        for my $pid (grep { /^\d+$/ } readdir $d) {
            open(my $f, "<", "/proc/$pid/stat") or next;
            my $s = <$f> // next;
            $s =~ s/^.*\)\s+//s;
            my @f = split " ", $s;
            if ($pid == $pm) { $t += $f[11] + $f[12] + $f[13] + $f[14] }
            elsif ($f[1] == $pm) { $t += $f[11] + $f[12] }
        }
        printf "%.2f\n", $t / $clk' "$STORE_PG_PID"
}

# how long one synced 8 KiB write takes on the server's file system
store_disk_probe() {
    local f=$STORE_PG/probe.dat out
    out=$(dd if=/dev/zero of="$f" bs=8k count=200 oflag=dsync 2>&1 | tail -1)
    rm -f "$f"
    echo "$out" | perl -ne 'printf "%.3f", $1 * 1000 / 200 if /copied, ([\d.]+) s/'
}

# ------------------------------------------------------------------ nginx

write_store_conf() {
    local p=$TMP/store z url
    {
        echo "load_module $MODULE;"
        common_main "$p" "$STORE_WORKERS"
        echo "http {"
        common_http "$p"
        echo "    omnibus_node bench;"
        for z in $STORE_ZONES; do
            cat <<EOF
    omnibus_zone zone=$z:256m shards=8 min_shards=2 max_shards=16
                 queue_size=100000 retain=100 backpressure=100%:99%;
EOF
        done
        for z in sync async; do
            url="postgresql://omnibus@127.0.0.1:$STPGPORT/omnibus_$z"
            echo "    omnibus_store $z $url"
            echo "                  password_file=$p/password mode=$z $STORE_SETTINGS;"
        done
        cat <<EOF

    server {
        listen 127.0.0.1:$STPORT backlog=4096;
        client_max_body_size 1m;
        client_body_buffer_size 32k;
        location = /metrics { omnibus_metrics; }
EOF
        for z in $STORE_ZONES; do
            echo "        location /$z/ { omnibus_publish $z; }"
            echo "        location /admin/$z/ { omnibus_admin $z; }"
        done
        for z in sync async; do
            echo "        location = /ready/$z { omnibus_health $z ready; }"
        done
        echo "    }"
        echo "}"
    } > "$p/nginx.conf"
}

smetrics() { curl -s "http://127.0.0.1:$STPORT/metrics"; }

# smetric FILE NAME LABEL_REGEX: a family summed over its matching series
smetric() {
    perl -ne 'BEGIN { ($n, $re) = splice @ARGV, 0, 2 }
              if (/^\Q$n\E\{([^}]*)\} (\S+)$/) {
                  my ($l, $v) = ($1, $2);
                  $s += $v if $l =~ /$re/;
              }
              END { printf "%.0f\n", $s }' "$2" "$3" "$1"
}

squeued() {  # queued + in flight, over the shards of a zone
    curl -s "http://127.0.0.1:$STPORT/admin/$1/" | perl -MJSON::PP -e '
        local $/; my $j = decode_json(<STDIN>); my $n = 0;
        $n += $_->{queued} + ($_->{inflight} // 0) for @{$j->{shards}}; print $n'
}

# wait until the store of zone $1 has nothing left to write; sets
# SWAIT_T (when it was seen empty); 1 on timeout
store_wait_written() {  # store_wait_written ZONE TIMEOUT
    local end b
    end=$(calc "$(now) + $2" 3)
    while :; do
        b=$(smetrics | perl -ne 'print $1 if /^message_bus_store_backlog\{zone="'"$1"'"\} (\d+)/')
        SWAIT_T=$(now)
        [ "${b:-1}" -eq 0 ] && return 0
        [ "$(calc "$SWAIT_T > $end")" = 1 ] && return 1
        sleep 0.02
    done
}

store_wait_ready() {
    local i z ok
    for ((i = 0; i < 600; i++)); do
        ok=1
        for z in sync async; do
            [ "$(curl -s -o /dev/null -w '%{http_code}' \
                 "http://127.0.0.1:$STPORT/ready/$z")" = 200 ] || ok=0
        done
        [ "$ok" = 1 ] && return 0
        sleep 0.1
    done
    echo "store: the stores are not ready after 60 s:" >&2
    curl -s "http://127.0.0.1:$STPORT/ready/sync" >&2
    tail -20 "$TMP/store/error.log" >&2
    return 1
}

# commit latency and rows per commit of zone $3 between two snapshots:
# prints "commits mean_ms p50_ms p99_ms rows_per_commit msgs_per_commit
# rows_p50 rows_p99" (n/a when nothing was committed)
store_hist() {  # store_hist BEFORE AFTER ZONE
    local c r ins0 ins1
    c=$(perl "$BENCH/kafka-hist.pl" "$1" "$2" message_bus_store_commit_seconds \
        "zone=\"$3\"")
    # the rows histogram has integer buckets: kafka-hist.pl's "ms" / 1000
    r=$(perl "$BENCH/kafka-hist.pl" "$1" "$2" message_bus_store_batch_rows \
        "zone=\"$3\"")
    ins0=$(smetric "$1" message_bus_store_rows_total "zone=\"$3\",op=\"insert\"")
    ins1=$(smetric "$2" message_bus_store_rows_total "zone=\"$3\",op=\"insert\"")
    C="$c" R="$r" perl -e '
        my %c = $ENV{C} =~ /(\w+)=(\S+)/g;
        my %r = $ENV{R} =~ /(\w+)=(\S+)/g;
        my $rows = sub { $_[0] =~ /^[\d.]+$/ ? sprintf("%.1f", $_[0] / 1000) : "n/a" };
        print join(" ", $c{count}, $c{mean_ms}, $c{p50_ms}, $c{p99_ms},
                   $rows->($r{mean_ms}),
                   $c{count} ? sprintf("%.1f", $ARGV[0] / $c{count}) : "n/a",
                   $rows->($r{p50_ms}), $rows->($r{p99_ms})), "\n"' $((ins1 - ins0))
}

# -------------------------------------------------------------- the runs

# one wrk run into ZONE; appends a row to store-runs.tsv
store_pub_run() {  # store_pub_run ROUND ZONE
    local r=$1 z=$2 s=$TMP/store out m0 m1 c0 c1 p0 p1 t0 t1 drain= wrate= q
    local acc ins done_rows full hist master
    master=$(cat "$s/nginx.pid")
    out=$s/wrk-$r-$z.out
    m0=$s/metrics-$r-$z-0.txt
    m1=$s/metrics-$r-$z-1.txt
    smetrics > "$m0"
    c0=$(cpu "$master")
    p0=$(store_pg_cpu)
    t0=$(now)
    cmd_env "store-publish-$z" BODY_SIZE=$STORE_SIZE PATH_PREFIX=/$z/ \
        TOPICS=$STORE_TOPICS -- wrk -t1 -c"$CONNS" -d"${DUR}s" \
        -s "$BENCH/pub.lua" "http://127.0.0.1:$STPORT" > "$out" 2>&1
    t1=$(now)
    if [ "$z" = async ]; then
        # write-behind: until every accepted row is in PostgreSQL
        store_wait_written async 300 \
            || say "      round $r async: rows left to write after 300 s"
        drain=$(calc "$SWAIT_T - $t1" 3)
    fi
    smetrics > "$m1"
    c1=$(cpu "$master")
    p1=$(store_pg_cpu)
    wrk_parse "$out"
    q=$(squeued "$z")
    acc=$(( $(smetric "$m1" message_bus_published_total "zone=\"$z\"")
            - $(smetric "$m0" message_bus_published_total "zone=\"$z\"") ))
    ins=$(( $(smetric "$m1" message_bus_store_rows_total "zone=\"$z\",op=\"insert\"")
            - $(smetric "$m0" message_bus_store_rows_total "zone=\"$z\",op=\"insert\"") ))
    done_rows=$(( $(smetric "$m1" message_bus_store_rows_total "zone=\"$z\",op=\"done\"")
                  - $(smetric "$m0" message_bus_store_rows_total "zone=\"$z\",op=\"done\"") ))
    full=$(( $(smetric "$m1" message_bus_store_errors_total "zone=\"$z\"")
             - $(smetric "$m0" message_bus_store_errors_total "zone=\"$z\"") ))
    if [ "$z" = mem ]; then
        hist="0 n/a n/a n/a n/a n/a n/a n/a"
        ins=0 done_rows=0
    else
        hist=$(store_hist "$m0" "$m1" "$z")
    fi
    [ "$z" = async ] && wrate=$(calc "$ins / ($SWAIT_T - $t0)")
    local ngx_cpu pg_cpu
    ngx_cpu=$(calc "$W_REQ > 0 ? ($c1 - $c0) * 1e6 / $W_REQ : 0" 1)
    pg_cpu=$(calc "$ins > 0 ? ($p1 - $p0) * 1e6 / $ins : 0" 1)
    # round target rate requests non2xx sockerr p50_ms p99_ms accepted
    # rows_inserted rows_done store_errors commits commit_mean_ms
    # commit_p50_ms commit_p99_ms rows_per_commit msgs_per_commit rows_p50
    # rows_p99 drain_s written_rate queued_after nginx_cpu_us pg_cpu_us
    printf '%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n' \
        "$r" "$z" "$W_RATE" "$W_REQ" "$W_NON2XX" "$W_SOCKERR" "$W_P50" "$W_P99" \
        "$acc" "$ins" "$done_rows" "$full" \
        "$(echo "$hist" | tr ' ' '\t')" "${drain:-}" "${wrate:-}" \
        "$q	$ngx_cpu	$pg_cpu" >> "$DATA/store-runs.tsv"
    local extra=""
    [ "$z" != mem ] && extra=", $ins rows inserted; commit p50/p99 $(echo "$hist" | cut -d' ' -f3,4 | tr ' ' /) ms, $(echo "$hist" | cut -d' ' -f5) rows/commit"
    [ "$z" = async ] && extra+="; all written ${drain}s after wrk = $wrate rows/s"
    say "      round $r $z: $W_RATE req/s (non-2xx $W_NON2XX), p99 $W_P99 ms$extra"
    STORE_LAST_M1=$m1
}

# pgbench: one INSERT of a 1 KiB row per transaction; a row likewise
store_pgbench_run() {  # store_pgbench_run ROUND
    local r=$1 s=$TMP/store out p0 p1 tps n fail lat payload
    out=$s/pgbench-$r.out
    payload=$(cat "$STORE_BODY")
    local pb=("$STORE_PG_BIN/pgbench" -n -M prepared -c "$CONNS" -j 2 -T "$DUR"
              -f "$s/baseline.sql" -h 127.0.0.1 -p "$STPGPORT" -U omnibus baseline)
    cmd_record store-pgbench env PGPASSWORD=... "${pb[@]}" -D 'payload=<the 1 KiB JSON body>'
    p0=$(store_pg_cpu)
    PGPASSWORD=$STORE_PASSWORD "${pb[@]}" -D "payload=$payload" > "$out" 2>&1 \
        || { echo "store: pgbench failed:" >&2; cat "$out" >&2; return 1; }
    sleep 0.3   # its backends exit
    p1=$(store_pg_cpu)
    tps=$(perl -ne 'printf "%.0f", $1 if /^tps = ([\d.]+) \(without initial/' "$out")
    n=$(perl -ne 'print $1 if /^number of transactions actually processed: (\d+)/' "$out")
    fail=$(perl -ne 'print $1 if /^number of failed transactions: (\d+)/' "$out")
    lat=$(perl -ne 'print $1 if /^latency average = ([\d.]+) ms/' "$out")
    [ -n "$tps" ] || { echo "store: no tps from pgbench:" >&2; cat "$out" >&2; return 1; }
    # as store_pub_run's rows: a transaction is a request, a row and a
    # commit; commit_mean_ms is pgbench's latency average
    printf '%d\tpgbench\t%d\t%d\t%d\t0\t\t\t%d\t%d\t0\t0\t%d\t%s\t\t\t1\t1\t\t\t\t\t\t\t%s\n' \
        "$r" "$tps" "$n" "${fail:-0}" "$n" "$n" "$n" "$lat" \
        "$(calc "$n > 0 ? ($p1 - $p0) * 1e6 / $n : 0" 1)" >> "$DATA/store-runs.tsv"
    say "      round $r pgbench: $tps transactions/s (latency average $lat ms, failed ${fail:-0})"
}

# the table and index sizes of the sync store, after a sync run
store_sizes() {  # store_sizes ROUND
    local r=$1 fam line rows ins
    sleep 1   # the backends report their table statistics every second
    ins=$(smetric "$STORE_LAST_M1" message_bus_store_rows_total 'zone="sync",op="insert"')
    for fam in messages done; do
        line=$(spsql omnibus_sync "
            SELECT count(*), coalesce(sum(pg_total_relation_size(c.oid)), 0),
                   coalesce(sum(pg_indexes_size(c.oid)), 0),
                   coalesce(sum(s.n_live_tup), 0), coalesce(sum(s.n_dead_tup), 0)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
            LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE c.relkind = 'r' AND c.relname ~ '^omnibus_${fam}_[0-9]+\$'")
        rows=$(spsql omnibus_sync "SELECT count(*) FROM omnibus_$fam")
        printf '%d\t%s\t%s\t%d\t%d\n' "$r" "$fam" "$line" "$rows" "$ins" \
            >> "$DATA/store-sizes.tsv"
    done
    say "      after it: $(awk -F'\t' -v r="$r" '$1 == r { printf "%s%s %d rows, %.1f MiB (indexes %.1f MiB), %d dead", n++ ? "; " : "", $2, $8, $4 / 1048576, $5 / 1048576, $7 }' "$DATA/store-sizes.tsv")"
}

store_section_throughput() {
    local r k t targets=(mem sync async pgbench)
    say "   a. throughput: $ROUNDS rounds x {memory only, sync, async, pgbench}, ${DUR}s each, 1 KiB, $CONNS clients"
    printf 'round\ttarget\trate\trequests\tnon2xx\tsockerr\tp50_ms\tp99_ms\taccepted\trows_inserted\trows_done\tstore_errors\tcommits\tcommit_mean_ms\tcommit_p50_ms\tcommit_p99_ms\trows_per_commit\tmsgs_per_commit\trows_p50\trows_p99\tdrain_s\twritten_rate\tqueued_after\tnginx_cpu_us_per_req\tpg_cpu_us_per_row\n' \
        > "$DATA/store-runs.tsv"
    printf 'round\ttable\tpartitions\ttotal_bytes\tindex_bytes\tn_live_tup\tn_dead_tup\trows\tsync_rows_inserted_so_far\n' \
        > "$DATA/store-sizes.tsv"
    for ((r = 1; r <= ROUNDS; r++)); do
        for ((k = 0; k < 4; k++)); do
            t=${targets[$(( (k + r) % 4 ))]}
            case $t in
                pgbench) store_pgbench_run "$r" ;;
                sync)    store_pub_run "$r" sync; store_sizes "$r" ;;
                *)       store_pub_run "$r" "$t" ;;
            esac
            sleep 0.5
        done
    done
}

store_section_latency() {
    local s=$TMP/store rate rps clients=$STORE_LAT_CLIENTS out m0 m1 hist
    rate=${BENCH_STORE_LAT_RATE:-$(perl -e '
        my @r; <STDIN>;
        while (<STDIN>) { my @f = split /\t/; push @r, $f[2] if $f[1] eq "sync" }
        my @s = sort { $a <=> $b } @r; print int(($s[$#s / 2] // 2000) / 2)' \
        < "$DATA/store-runs.tsv")}
    rps=$(calc "$rate / $clients")
    [ "$rps" -ge 1 ] || rps=1
    say "   c. sync latency: h2load $clients x $rps/s = $((rps * clients))/s for ${STORE_LAT_DUR}s"
    m0=$s/metrics-lat-0.txt
    m1=$s/metrics-lat-1.txt
    out=$s/h2load-lat.out
    smetrics > "$m0"
    cmd store-latency h2load --h1 -c "$clients" --rps="$rps" -D "$STORE_LAT_DUR" \
        -d "$STORE_BODY" -H 'Content-Type: application/json' \
        -i "$s/uris-sync.txt" --log-file="$s/h2load-lat.log" > "$out" 2>&1 || true
    smetrics > "$m1"
    hist=$(store_hist "$m0" "$m1" sync)
    {
        perl "$BENCH/store-lat.pl" "$s/h2load-lat.log"
        echo "target_rate	$((rps * clients))"
        echo "clients	$clients"
        echo "rps_per_client	$rps"
        echo "duration_s	$STORE_LAT_DUR"
        echo "$hist" | perl -ne '
            my @k = qw(commits commit_mean_ms commit_p50_ms commit_p99_ms
                       rows_per_commit msgs_per_commit rows_p50 rows_p99);
            my @v = split; print "$k[$_]\t$v[$_]\n" for 0 .. $#k'
        echo "h2load	$(grep -E '^requests:' "$out" | head -1)"
        echo "h2load_status	$(grep -E '^status codes:' "$out" | head -1)"
    } > "$DATA/store-latency.tsv"
    sed 's/^/      /' "$DATA/store-latency.tsv"
}

store_cleanup() {
    stop_nginx store
    store_pg_stop
    return 0
}

# run in a subshell by run.sh: any failure ends the section, not the bench
store_main() {
    trap store_cleanup EXIT
    local s=$TMP/store meta=$DATA/store-meta.tsv i
    unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE \
          PGSERVICE PGOPTIONS PGSSLMODE
    rm -f "$DATA"/store*.tsv "$DATA/store-errors.txt"
    [ -f "$DATA/commands.tsv" ] && sed -i '/^store-/d' "$DATA/commands.tsv"
    rm -rf "$s"
    mkdir -p "$s"
    STPORT=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT")
    STPGPORT=$(free_port "$PORT" "$RPORT" "$NPORT" "$LPORT" "$STPORT")
    {
        echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "loadavg	$(cut -d' ' -f1-3 /proc/loadavg)"
        echo "rounds	$ROUNDS"
        echo "duration	$DUR"
        echo "conns	$CONNS"
        echo "workers	$STORE_WORKERS"
        echo "topics	$STORE_TOPICS"
        echo "size	$STORE_SIZE"
        echo "settings	$STORE_SETTINGS"
        echo "postgres	$("$STORE_PG_BIN/postgres" --version 2>/dev/null || "$STORE_PG_BIN/pg_ctl" --version)"
        echo "pgbench	$("$STORE_PG_BIN/pgbench" --version)"
        echo "filesystem	$(df -T "$s" | awk 'NR == 2 { print $2 " on " $1 }')"
        echo "status	started"
    } > "$meta"

    local t0
    t0=$(now)
    store_pg_start || return 1
    echo "dsync_8k_write_ms	$(store_disk_probe)" >> "$meta"
    echo "pg_settings	$(spsql postgres "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'commit_delay', 'shared_buffers', 'max_wal_size', 'wal_level')")" >> "$meta"
    write_store_conf
    echo "store_directive	$(grep -A1 'omnibus_store sync' "$s/nginx.conf" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')" >> "$meta"
    start_nginx store "$STPORT" || return 1
    store_wait_ready || return 1
    echo "setup_s	$(calc "$(now) - $t0" 1)" >> "$meta"
    say "8. durable store: PostgreSQL $(spsql postgres 'SHOW server_version') on :$STPGPORT ($(sed -n 's/^pg_settings\t//p' "$meta" | grep -o 'fsync=[a-z]*\|synchronous_commit=[a-z]*\|wal_sync_method=[a-z_]*' | paste -sd' ')), nginx on :$STPORT, one synced 8 KiB write: $(sed -n 's/^dsync_8k_write_ms\t//p' "$meta") ms"

    STORE_BODY=$(body "$STORE_SIZE")
    {
        echo '\set t random(0, 99)'
        echo "INSERT INTO baseline (topic, payload) VALUES ('bench.t' || :t, :payload);"
    } > "$s/baseline.sql"
    local z
    for z in $STORE_ZONES; do
        for ((i = 0; i < STORE_TOPICS; i++)); do
            printf 'http://127.0.0.1:%s/%s/bench.t%d\n' "$STPORT" "$z" "$i"
        done > "$s/uris-$z.txt"
        # warm-up: connections, prepared statements, first pages
        h2load --h1 -n 2000 -c 8 -d "$STORE_BODY" -H 'Content-Type: application/json' \
            -i "$s/uris-$z.txt" > "$s/h2load-warm-$z.out" 2>&1
    done
    store_wait_written async 60 || true

    store_section_throughput
    store_section_latency

    stop_nginx store
    grep -E '\[(alert|crit|emerg)\]|exited on signal' "$s/error.log" \
        | head -20 > "$DATA/store-errors.txt" || true
    # and the store's own errors, but for the connections closed at the end
    grep -E '\[error\].*omnibus store' "$s/error.log" | grep -v 'worker exits' \
        | head -10 >> "$DATA/store-errors.txt" || true
    echo "status	done" >> "$meta"
}
