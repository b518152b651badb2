#!/bin/sh
# Entry point of the ngx_omnibus_module image (POSIX sh).
#
#   entrypoint.sh [NGINX-OPTION...]  render nginx.conf, then exec nginx in
#                                    the foreground (-t, -T, -q pass on)
#   entrypoint.sh render             print the rendered nginx.conf
#   entrypoint.sh healthcheck        exit 0 when /healthz answers 200
#   entrypoint.sh COMMAND [ARG...]   run COMMAND instead (sh, nginx -V, ...)
#
# nginx.conf comes from the template (OMNIBUS_TEMPLATE) and the OMNIBUS_*
# variables (docker/README.md), or as is from OMNIBUS_CONFIG when that
# names a file. Every value is checked against what its directive takes
# before it is rendered, so that a bad variable fails here with its name
# instead of as a confusing nginx error, and cannot inject directives.
set -eu
set -f      # topic patterns hold * and >: no globbing of split words

prog=omnibus-entrypoint
nl='
'
tab='	'
cr=$(printf '\r')

die() {
    echo "$prog: $*" >&2
    exit 1
}

# get VAR NAME DEFAULT: VAR = $NAME, or DEFAULT when that is unset or empty
get() {
    eval "_g=\${$2:-}"
    [ -n "$_g" ] || _g=$3
    eval "$1=\$_g"
}

# want NAME VALUE ERE WHAT: VALUE must match ERE whole. The checks are
# queued and run by one awk (validate): a process per value made
# rendering slow. (mawk's ERE has no {n,m}: lengths are checked in sh.)
checks=
fallbacks=
want() {
    case $2 in
        *"$nl"* | *"$cr"* | *"$tab"*) die "$1 must be one line, no tabs" ;;
    esac
    checks="$checks$1$tab$3$tab$4$tab$2$nl"
}

validate() {
    awk -F "$tab" -v prog="$prog" '
        $4 !~ ("^(" $2 ")$") {
            printf "%s: %s=\"%s\": expected %s\n", prog, $1, $4, $3 \
                > "/dev/stderr"
            bad = 1
            exit 1
        }
        END { exit bad }
    ' <<EOF || exit 1
$checks
EOF
    checks=
}

# one VAR NAME DEFAULT ERE WHAT: VAR = $NAME or DEFAULT, checked
one() {
    get _o "$2" "$3"
    want "$2" "$_o" "$4" "$5"
    eval "$1=\$_o"
}

NUM='[1-9][0-9]*'
SIZE='[1-9][0-9]*[kKmMgG]?'
TIME='([0-9]+(ms|s|m|h|d|w|M|y)?)+'
ADDR='[0-9A-Fa-f.:/]+'
URLCH='[A-Za-z0-9._~%/:@!&+,=?-]'
HTTP_URL="http://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]+)?(/$URLCH*)?"
ROUTE_PARAMS='timeout|retries|backoff|max_backoff|breaker|concurrency|name'
ROUTE_PARAMS_WHAT='timeout=, retries=, backoff=, max_backoff=, breaker=, concurrency= or name='
# Kafka: brokers as librdkafka takes them (resolved by it, in the
# workers, not when nginx starts), topic templates with {topic}
BROKER='(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]+)?'
BROKERS="$BROKER(,$BROKER)*"
BROKERS_WHAT='HOST:PORT[,HOST:PORT...]'
KAFKA_TOPIC='([A-Za-z0-9._-]|[{]topic[}])+'
KT_WHAT=' (TOPIC of A-Za-z0-9._- and {topic})'
FILE_PATH='([A-Za-z0-9._-]*/)*[A-Za-z0-9._-]+'
KAFKA_PARAMS="acks=(all|1|0)|linger=$TIME|batch=$SIZE"
KAFKA_PARAMS="$KAFKA_PARAMS|compression=(none|gzip|snappy|lz4|zstd)"
KAFKA_PARAMS="$KAFKA_PARAMS|idempotence=(on|off)"
KAFKA_PARAMS="$KAFKA_PARAMS|key=(topic|id|idempotency_key)"
KAFKA_PARAMS="$KAFKA_PARAMS|fallback=$FILE_PATH"
KAFKA_PARAMS_WHAT='acks=all|1|0, linger=TIME, batch=SIZE,'
KAFKA_PARAMS_WHAT="$KAFKA_PARAMS_WHAT compression=none|gzip|snappy|lz4|zstd,"
KAFKA_PARAMS_WHAT="$KAFKA_PARAMS_WHAT idempotence=on|off,"
KAFKA_PARAMS_WHAT="$KAFKA_PARAMS_WHAT key=topic|id|idempotency_key"
KAFKA_PARAMS_WHAT="$KAFKA_PARAMS_WHAT or fallback=PATH"
CONSUME_PARAMS="topics=[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*"
CONSUME_PARAMS="$CONSUME_PARAMS|group=[A-Za-z0-9._:-]+"
CONSUME_PARAMS="$CONSUME_PARAMS|topic=([A-Za-z0-9._:-]|[{]topic[}])+"
CONSUME_PARAMS="$CONSUME_PARAMS|offset_reset=(latest|earliest)"
CONSUME_PARAMS="$CONSUME_PARAMS|max_poll=$NUM|session_timeout=$TIME"
CONSUME_PARAMS_WHAT='topics=NAME[,NAME...], group=NAME, topic=TEMPLATE,'
CONSUME_PARAMS_WHAT="$CONSUME_PARAMS_WHAT offset_reset=latest|earliest,"
CONSUME_PARAMS_WHAT="$CONSUME_PARAMS_WHAT max_poll=N or session_timeout=TIME"
# PostgreSQL (omnibus_store): one TCP host, a user, no password (that
# comes from OMNIBUS_STORE_PASSWORD_FILE or libpq's PGPASSWORD), libpq's
# query parameters (?sslmode=require&connect_timeout=5)
PG_HOST='(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)'
PG_QPARAM='[a-z_]+=[A-Za-z0-9._/:-]+'
PG_URL="postgres(ql)?://[A-Za-z0-9._-]+@$PG_HOST(:[0-9]+)?/[A-Za-z0-9._-]+"
PG_URL="$PG_URL(\?$PG_QPARAM(&$PG_QPARAM)*)?"
PG_URL_WHAT='postgresql://USER@HOST[:PORT]/DB[?PARAM=VALUE&...] (one host,'
PG_URL_WHAT="$PG_URL_WHAT no password)"
STORE_PARAMS="pool=$NUM|overflow=[0-9]+|batch=$NUM|recycle=$TIME|flush=$TIME"
STORE_PARAMS="$STORE_PARAMS|timeout=$TIME|retention=$TIME|adopt_after=$TIME"
STORE_PARAMS="$STORE_PARAMS|breaker=$NUM:$TIME:$NUM"
STORE_PARAMS_WHAT='pool=N, overflow=N, recycle=TIME, batch=N, flush=TIME,'
STORE_PARAMS_WHAT="$STORE_PARAMS_WHAT timeout=TIME, retention=TIME,"
STORE_PARAMS_WHAT="$STORE_PARAMS_WHAT adopt_after=TIME or"
STORE_PARAMS_WHAT="$STORE_PARAMS_WHAT breaker=FAILURES:TIME:SUCCESSES (the mode"
STORE_PARAMS_WHAT="$STORE_PARAMS_WHAT and the password file have variables"
STORE_PARAMS_WHAT="$STORE_PARAMS_WHAT of their own)"
# Redis (omnibus_redis): one host, resolved when nginx starts, an optional
# ACL user and database number, no password (that comes from
# OMNIBUS_REDIS_PASSWORD_FILE)
REDIS_URL="redis://([A-Za-z0-9._-]+@)?$PG_HOST(:[0-9]+)?(/[0-9]+)?"
REDIS_URL_WHAT='redis://[USER@]HOST[:PORT][/DB] (one host, no password)'
REDIS_PARAMS="prefix=[A-Za-z0-9._:-]+|timeout=$TIME|lock=$TIME|stream=$NUM"
REDIS_PARAMS="$REDIS_PARAMS|breaker=$NUM:$TIME:$NUM"
REDIS_PARAMS="$REDIS_PARAMS|(dedup|rate_limit|fanout)=(on|off)"
REDIS_PARAMS_WHAT='prefix=PREFIX (A-Za-z0-9._:-), timeout=TIME, lock=TIME,'
REDIS_PARAMS_WHAT="$REDIS_PARAMS_WHAT stream=N, breaker=FAILURES:TIME:SUCCESSES,"
REDIS_PARAMS_WHAT="$REDIS_PARAMS_WHAT dedup=on|off, rate_limit=on|off or"
REDIS_PARAMS_WHAT="$REDIS_PARAMS_WHAT fanout=on|off (the password file has a"
REDIS_PARAMS_WHAT="$REDIS_PARAMS_WHAT variable of its own)"

# routes ROUTES: tpl_routes = one omnibus_route line per "PATTERN URL
# [PARAM=VALUE...]" entry of ROUTES, entries separated by ";" or newlines.
# URL: http://... (a webhook) or kafka://BROKERS/TOPIC, rendered quoted
# ({topic} has braces); kafka:///TOPIC takes OMNIBUS_KAFKA_BROKERS.
# fallbacks = the fallback= paths, one a line, for run_nginx.
routes() {
    tpl_routes=
    fallbacks=
    n=0
    IFS=";$nl"
    # shellcheck disable=SC2086 # split on the separators, globbing is off
    for entry in $1; do
        n=$((n + 1))
        IFS=" $tab"
        # shellcheck disable=SC2086
        set -- $entry
        [ $# -gt 0 ] || continue
        [ $# -ge 2 ] || die "OMNIBUS_ROUTES entry $n \"$entry\":" \
            "expected PATTERN URL [PARAM=VALUE ...]"
        want "OMNIBUS_ROUTES entry $n pattern" "$1" \
            '[A-Za-z0-9_.:*>-]+' 'a topic pattern (orders.>, a.*.b)'
        url=$2
        case $url in
            kafka:///*)
                [ -n "$kafka_brokers" ] || die "OMNIBUS_ROUTES entry $n" \
                    "\"$url\": kafka:///TOPIC takes its brokers from" \
                    "OMNIBUS_KAFKA_BROKERS, which is not set"
                url="kafka://$kafka_brokers/${url#kafka:///}" ;;
        esac
        want "OMNIBUS_ROUTES entry $n URL" "$url" \
            "$HTTP_URL|kafka://$BROKERS/$KAFKA_TOPIC" \
            "http://HOST[:PORT][/PATH] or kafka://$BROKERS_WHAT/TOPIC$KT_WHAT"
        case $url in
            kafka:*)
                line="    omnibus_route $zone $1 \"$url\""
                params="($ROUTE_PARAMS)=[A-Za-z0-9._:%>*-]+|$KAFKA_PARAMS"
                what="$ROUTE_PARAMS_WHAT, or $KAFKA_PARAMS_WHAT" ;;
            *)
                line="    omnibus_route $zone $1 $url"
                params="($ROUTE_PARAMS)=[A-Za-z0-9._:%>*-]+"
                what="$ROUTE_PARAMS_WHAT (acks=, linger=, batch=,"
                what="$what compression=, idempotence=, key= and fallback="
                what="$what are for kafka:// routes)" ;;
        esac
        shift 2
        for p in "$@"; do
            want "OMNIBUS_ROUTES entry $n parameter" "$p" "$params" "$what"
            case $p in
                fallback=*) fallbacks="$fallbacks${p#fallback=}$nl" ;;
            esac
            line="$line $p"
        done
        tpl_routes="$tpl_routes$line;$nl"
    done
    IFS=" $tab$nl"
    tpl_routes=${tpl_routes%"$nl"}
}

# consumers CONSUMERS: tpl_kafka_consume = one omnibus_kafka_consume line
# per "[BROKERS] topics=A[,B...] [PARAM=VALUE...]" entry, entries
# separated by ";" or newlines; without BROKERS, OMNIBUS_KAFKA_BROKERS
consumers() {
    tpl_kafka_consume=
    n=0
    IFS=";$nl"
    # shellcheck disable=SC2086 # split on the separators, globbing is off
    for entry in $1; do
        n=$((n + 1))
        IFS=" $tab"
        # shellcheck disable=SC2086
        set -- $entry
        [ $# -gt 0 ] || continue
        case $1 in
            *=*)
                [ -n "$kafka_brokers" ] || die "OMNIBUS_KAFKA_CONSUME entry" \
                    "$n \"$entry\": no brokers: give them first, or set" \
                    "OMNIBUS_KAFKA_BROKERS"
                line="    omnibus_kafka_consume $zone $kafka_brokers" ;;
            *)
                want "OMNIBUS_KAFKA_CONSUME entry $n brokers" "$1" \
                    "$BROKERS" "$BROKERS_WHAT"
                line="    omnibus_kafka_consume $zone $1"
                shift ;;
        esac
        topics=
        for p in "$@"; do
            want "OMNIBUS_KAFKA_CONSUME entry $n parameter" "$p" \
                "$CONSUME_PARAMS" "$CONSUME_PARAMS_WHAT"
            case $p in
                topics=*) topics=$p ;;
                # quoted: {topic} has braces
                topic=*) p="\"$p\"" ;;
            esac
            line="$line $p"
        done
        [ -n "$topics" ] || die "OMNIBUS_KAFKA_CONSUME entry $n" \
            "\"$entry\": expected [BROKERS] topics=NAME[,NAME...]" \
            "[PARAM=VALUE ...]"
        tpl_kafka_consume="$tpl_kafka_consume$line;$nl"
    done
    IFS=" $tab$nl"
    tpl_kafka_consume=${tpl_kafka_consume%"$nl"}
}

# store: tpl_store = omnibus_store from OMNIBUS_STORE_URL and the other
# OMNIBUS_STORE_* variables, empty without a URL; tpl_env = the "env" lines
# that keep libpq's PGPASSWORD / PGPASSFILE for the workers (nginx clears
# the rest of the environment); store_password_file for run_nginx
store() {
    tpl_store=
    tpl_env=
    store_password_file=
    get url OMNIBUS_STORE_URL ''
    if [ -z "$url" ]; then
        for v in OMNIBUS_STORE_PASSWORD_FILE OMNIBUS_STORE_MODE \
                 OMNIBUS_STORE_PARAMS; do
            eval "_v=\${$v:-}"
            [ -z "$_v" ] || die "$v is set, but OMNIBUS_STORE_URL is not" \
                "(no store without it)"
        done
        return 0
    fi
    # a password in the URL, USER:PASSWORD@ or ?password=: said plainly
    # (the module refuses it too, less helpfully for a container)
    auth=${url#*://}
    auth=${auth%%/*}
    case $auth in *@*) auth=${auth%@*} ;; *) auth= ;; esac
    pw=
    case $auth in *:*) pw=1 ;; esac
    case $url in *[?\&]password=*) pw=1 ;; esac
    if [ -n "$pw" ]; then
        die "OMNIBUS_STORE_URL has a password: give it in" \
            "OMNIBUS_STORE_PASSWORD_FILE (a file) or PGPASSWORD instead"
    fi
    want OMNIBUS_STORE_URL "$url" "$PG_URL" "$PG_URL_WHAT"
    tpl_store="    omnibus_store $zone $url"

    get f OMNIBUS_STORE_PASSWORD_FILE ''
    if [ -n "$f" ]; then
        want OMNIBUS_STORE_PASSWORD_FILE "$f" "/?$FILE_PATH" \
            'a file path (/run/secrets/pg-password)'
        store_password_file=$f
        tpl_store="$tpl_store password_file=$f"
    fi

    one m OMNIBUS_STORE_MODE sync 'sync|async' 'sync or async'
    tpl_store="$tpl_store mode=$m"

    get a OMNIBUS_STORE_PARAMS ''
    # shellcheck disable=SC2086 # split on blanks, globbing is off
    for p in $a; do
        want OMNIBUS_STORE_PARAMS "$p" "$STORE_PARAMS" "$STORE_PARAMS_WHAT"
        tpl_store="$tpl_store $p"
    done
    tpl_store="$tpl_store;"

    [ -z "${PGPASSWORD:-}" ] || tpl_env="env PGPASSWORD;"
    if [ -n "${PGPASSFILE:-}" ]; then
        tpl_env="${tpl_env:+$tpl_env$nl}env PGPASSFILE;"
    fi
}

# redis: tpl_redis = omnibus_redis from OMNIBUS_REDIS_URL and the other
# OMNIBUS_REDIS_* variables, empty without a URL; redis_password_file for
# run_nginx
redis() {
    tpl_redis=
    redis_password_file=
    get url OMNIBUS_REDIS_URL ''
    if [ -z "$url" ]; then
        for v in OMNIBUS_REDIS_PASSWORD_FILE OMNIBUS_REDIS_PARAMS; do
            eval "_v=\${$v:-}"
            [ -z "$_v" ] || die "$v is set, but OMNIBUS_REDIS_URL is not" \
                "(no Redis without it)"
        done
        return 0
    fi
    # a password in the URL, [USER]:PASSWORD@ or ?password=: said plainly
    # (the module refuses it too, less helpfully for a container)
    auth=${url#*://}
    auth=${auth%%/*}
    case $auth in *@*) auth=${auth%@*} ;; *) auth= ;; esac
    pw=
    case $auth in *:*) pw=1 ;; esac
    case $url in *[?\&]password=*) pw=1 ;; esac
    if [ -n "$pw" ]; then
        die "OMNIBUS_REDIS_URL has a password: give it in" \
            "OMNIBUS_REDIS_PASSWORD_FILE (a file) instead"
    fi
    want OMNIBUS_REDIS_URL "$url" "$REDIS_URL" "$REDIS_URL_WHAT"
    tpl_redis="    omnibus_redis $zone $url"

    get f OMNIBUS_REDIS_PASSWORD_FILE ''
    if [ -n "$f" ]; then
        want OMNIBUS_REDIS_PASSWORD_FILE "$f" "/?$FILE_PATH" \
            'a file path (/run/secrets/redis-password)'
        redis_password_file=$f
        tpl_redis="$tpl_redis password_file=$f"
    fi

    get a OMNIBUS_REDIS_PARAMS ''
    # shellcheck disable=SC2086 # split on blanks, globbing is off
    for p in $a; do
        want OMNIBUS_REDIS_PARAMS "$p" "$REDIS_PARAMS" "$REDIS_PARAMS_WHAT"
        tpl_redis="$tpl_redis $p"
    done
    tpl_redis="$tpl_redis;"
}

# addrs VAR NAME VALUE DIRECTIVE INDENT: VAR = one "DIRECTIVE ADDR;" line
# per address of VALUE, a blank- or comma-separated list
addrs() {
    _a=
    IFS=", $tab"
    for a in $3; do
        want "$2" "$a" "$ADDR" 'IP addresses or CIDR ranges'
        _a="$_a$5$4 $a;$nl"
    done
    IFS=" $tab$nl"
    eval "$1=\${_a%\"\$nl\"}"
}

render() {
    case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
    get template OMNIBUS_TEMPLATE "$here/nginx.conf.template"
    [ -r "$template" ] || die "cannot read the template $template"

    one zone OMNIBUS_ZONE bus '[A-Za-z0-9_-]+' 'a zone name'
    [ ${#zone} -le 64 ] || die "OMNIBUS_ZONE is longer than 64 bytes"
    tpl_zone=$zone

    one tpl_module OMNIBUS_MODULE \
        /usr/lib/nginx/modules/ngx_omnibus_module.so \
        '[A-Za-z0-9._/+-]+' 'the path of ngx_omnibus_module.so'
    get u OMNIBUS_USER ''
    tpl_user=
    if [ -n "$u" ]; then
        want OMNIBUS_USER "$u" '[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?' \
            'USER [GROUP] (only when nginx starts as root)'
        tpl_user="user $u;"
    fi
    one tpl_worker_processes OMNIBUS_WORKER_PROCESSES 2 "auto|$NUM" \
        'a number or auto'
    one tpl_worker_connections OMNIBUS_WORKER_CONNECTIONS 1024 "$NUM" \
        'a number'
    one tpl_error_log OMNIBUS_ERROR_LOG stderr 'stderr|/[A-Za-z0-9._/-]+' \
        'stderr or an absolute path'
    one tpl_log_level OMNIBUS_LOG_LEVEL notice \
        'debug|info|notice|warn|error|crit|alert|emerg' 'an error_log level'
    one a OMNIBUS_ACCESS_LOG /dev/stdout 'off|/[A-Za-z0-9._/-]+' \
        'off or an absolute path'
    if [ "$a" = off ]; then
        tpl_access_log=off
    else
        tpl_access_log="$a omnibus"
    fi
    [ -n "${OMNIBUS_NODE:-}" ] || OMNIBUS_NODE=$(uname -n)
    one tpl_node OMNIBUS_NODE '' '[A-Za-z0-9][A-Za-z0-9._-]*' 'a host name'
    [ ${#tpl_node} -le 253 ] || die "OMNIBUS_NODE is longer than 253 bytes"
    one tpl_listen OMNIBUS_LISTEN 8080 \
        '([0-9.]+:|\[[0-9A-Fa-f:.]+\]:)?[0-9]+' 'PORT or ADDRESS:PORT'

    one tpl_zone_size OMNIBUS_ZONE_SIZE 64m "$SIZE" 'a size (64m)'
    one tpl_shards OMNIBUS_SHARDS 8 "$NUM" 'a number'
    one tpl_min_shards OMNIBUS_MIN_SHARDS 2 "$NUM" 'a number'
    one tpl_max_shards OMNIBUS_MAX_SHARDS 16 "$NUM" 'a number'
    one tpl_queue_size OMNIBUS_QUEUE_SIZE 10000 "$NUM" 'a number'
    one tpl_concurrency OMNIBUS_CONCURRENCY 4 "$NUM" 'a number'
    one tpl_dedup_ttl OMNIBUS_DEDUP_TTL 3600s "$TIME" 'a time (3600s)'
    one tpl_dlq_size OMNIBUS_DLQ_SIZE 10000 "$NUM" 'a number'
    one tpl_retain OMNIBUS_RETAIN 1000 '[0-9]+' 'a number'
    one tpl_backpressure OMNIBUS_BACKPRESSURE 80%:50% '[0-9]+%:[0-9]+%' \
        'HIGH%:LOW% (80%:50%)'

    get kafka_brokers OMNIBUS_KAFKA_BROKERS ''
    [ -z "$kafka_brokers" ] || want OMNIBUS_KAFKA_BROKERS "$kafka_brokers" \
        "$BROKERS" "$BROKERS_WHAT"
    routes "${OMNIBUS_ROUTES:-}"
    consumers "${OMNIBUS_KAFKA_CONSUME:-}"
    store
    redis

    get a OMNIBUS_AUTOSCALE off
    tpl_autoscale=
    case $a in
        off) ;;
        on) tpl_autoscale="    omnibus_autoscale $zone;" ;;
        *)
            for p in $a; do
                want OMNIBUS_AUTOSCALE "$p" \
                    "interval=$TIME|(up|down)=[0-9]+%" \
                    'on, off or interval=TIME up=N% down=N%'
            done
            # shellcheck disable=SC2086 # one blank between parameters
            set -- $a
            tpl_autoscale="    omnibus_autoscale $zone $*;" ;;
    esac

    get r OMNIBUS_RATE_LIMIT ''
    tpl_rate_limit=
    if [ -n "$r" ]; then
        want OMNIBUS_RATE_LIMIT "$r" "$NUM"'r/[sm]' 'Nr/s or Nr/m'
        # shellcheck disable=SC2016 # nginx variables, not the shell's
        one k OMNIBUS_RATE_LIMIT_KEY '$binary_remote_addr' \
            '(\$[A-Za-z_][A-Za-z0-9_]*)+' 'nginx variables ($http_x_api_key)'
        tpl_rate_limit="    omnibus_rate_limit $k rate=$r;"
    fi

    one tpl_max_message_size OMNIBUS_MAX_MESSAGE_SIZE 1m "$SIZE" 'a size (1m)'
    one tpl_dedup OMNIBUS_DEDUP key 'off|key|content' 'off, key or content'
    one tpl_json OMNIBUS_JSON on 'on|off' 'on or off'
    one hb OMNIBUS_SUBSCRIBE_HEARTBEAT 15s "$TIME" 'a time (15s)'
    one buf OMNIBUS_SUBSCRIBE_BUFFER 1m "$SIZE" 'a size (1m)'

    get a OMNIBUS_ADMIN_ALLOW '127.0.0.1 ::1'
    case $a in
        all) tpl_admin_acl='            allow all;' ;;
        none) tpl_admin_acl='            deny all;' ;;
        *)
            addrs tpl_admin_acl OMNIBUS_ADMIN_ALLOW "$a" allow '            '
            tpl_admin_acl="$tpl_admin_acl
            deny all;" ;;
    esac

    get a OMNIBUS_REAL_IP_FROM ''
    tpl_real_ip=
    if [ -n "$a" ]; then
        addrs ips OMNIBUS_REAL_IP_FROM "$a" set_real_ip_from '    '
        tpl_real_ip="
    # the client address from X-Forwarded-For of these proxies: for the
    # rate limit key, the admin allow list and the access log
$ips
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;"
    fi

    # every value checked: from here on they are what they claim to be
    validate

    # subscribers read the retain rings: none without them
    tpl_subscribe=
    if [ "$tpl_retain" -gt 0 ]; then
        tpl_subscribe="        location /subscribe/ {
            omnibus_subscribe $zone heartbeat=$hb buffer=$buf;
        }"
    fi

    export tpl_module tpl_user tpl_worker_processes tpl_worker_connections \
        tpl_error_log tpl_log_level tpl_access_log tpl_node tpl_listen \
        tpl_zone tpl_zone_size tpl_shards tpl_min_shards tpl_max_shards \
        tpl_queue_size tpl_concurrency tpl_dedup_ttl tpl_dlq_size \
        tpl_retain tpl_backpressure tpl_routes tpl_kafka_consume \
        tpl_store tpl_env tpl_redis tpl_autoscale \
        tpl_rate_limit tpl_max_message_size tpl_dedup tpl_json \
        tpl_subscribe tpl_admin_acl tpl_real_ip

    # values are spliced in, never scanned again, so an @ in one is text
    awk -v prog="$prog" '
        {
            line = $0
            out = ""
            alone = line ~ /^[ \t]*@[a-z_]+@[ \t]*$/
            while (match(line, /@[a-z_]+@/)) {
                name = "tpl_" substr(line, RSTART + 1, RLENGTH - 2)
                if (!(name in ENVIRON)) {
                    printf "%s: %s:%d: unknown placeholder %s\n", prog,
                           FILENAME, FNR, substr(line, RSTART, RLENGTH) \
                           > "/dev/stderr"
                    failed = 1
                    exit 1
                }
                out = out substr(line, 1, RSTART - 1) ENVIRON[name]
                line = substr(line, RSTART + RLENGTH)
            }
            out = out line
            if (!(alone && out ~ /^[ \t]*$/))
                print out
        }
        END { exit failed }
    ' "$template"
}

# fallback_dirs PREFIX: the directory of each fallback= file must be
# there and writable when nginx starts (nginx -t checks only that it is
# there); relative paths are under the prefix, and their directories are
# made. PREFIX/kafka, the default place, is always made.
fallback_dirs() {
    mkdir -p "$1/kafka" 2>/dev/null || true
    IFS=$nl
    for f in $fallbacks; do
        IFS=" $tab$nl"
        case $f in
            /*) d=${f%/*} ;;
            */*) d=$1/${f%/*}; mkdir -p "$d" 2>/dev/null || true ;;
            *) d=$1 ;;
        esac
        [ -n "$d" ] || d=/
        if ! [ -d "$d" ] || ! [ -w "$d" ]; then
            die "OMNIBUS_ROUTES: fallback=$f: $d is not a writable" \
                "directory (running as uid $(id -u))"
        fi
    done
    IFS=" $tab$nl"
}

# password_file PREFIX NAME FILE: the master reads the password files
# (OMNIBUS_STORE_PASSWORD_FILE, OMNIBUS_REDIS_PASSWORD_FILE) when it loads
# the configuration; say so here, naming the variable NAME, when it cannot
# read FILE (a Secret or compose secret not mounted, or not readable by
# this uid). Relative paths are under the prefix.
password_file() {
    f=$3
    [ -n "$f" ] || return 0
    case $f in /*) ;; *) f=$1/$f ;; esac
    if ! [ -f "$f" ] || ! [ -r "$f" ]; then
        die "$2: $f is not a readable file (running as uid $(id -u))"
    fi
}

# the prefix is the only directory nginx writes: the rendered
# configuration, the pid file, the temp dirs and, by default, the Kafka
# fallback files (PREFIX/kafka)
run_nginx() {
    get prefix OMNIBUS_PREFIX /var/lib/omnibus
    get nginx OMNIBUS_NGINX /usr/sbin/nginx
    get conf OMNIBUS_CONFIG ''
    if [ -z "$conf" ]; then
        if ! [ -d "$prefix" ] || ! [ -w "$prefix" ]; then
            die "OMNIBUS_PREFIX $prefix is not a writable directory" \
                "(running as uid $(id -u))"
        fi
        conf=$prefix/nginx.conf
        # not in an || list: set -e must stay on inside render
        render > "$conf.tmp"
        mv -f "$conf.tmp" "$conf"
    fi
    fallback_dirs "${prefix%/}"
    password_file "${prefix%/}" OMNIBUS_STORE_PASSWORD_FILE \
        "${store_password_file:-}"
    password_file "${prefix%/}" OMNIBUS_REDIS_PASSWORD_FILE \
        "${redis_password_file:-}"
    # PID 1: docker stop's SIGQUIT reaches nginx itself, which quits
    # gracefully
    exec "$nginx" -p "$prefix/" -c "$conf" -g 'daemon off;' "$@"
}

# bash's /dev/tcp: no HTTP client in the image for this alone
healthcheck() {
    get listen OMNIBUS_LISTEN 8080
    port=${listen##*:}
    host=${listen%"$port"}
    host=${host%:}
    host=${host#\[}
    host=${host%\]}
    case $host in ''|0.0.0.0|'*') host=127.0.0.1 ;; ::) host=::1 ;; esac
    exec bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
        IFS= read -r status <&3 || exit 1
        case $status in "HTTP/1."?" 200 "*) exit 0 ;; esac
        echo "healthz: $status" >&2
        exit 1
    ' healthcheck "$host" "$port"
}

case ${1:-} in
    render) render ;;
    healthcheck) healthcheck ;;
    '' | -*) run_nginx "$@" ;;
    *) exec "$@" ;;
esac
