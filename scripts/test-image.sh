#!/bin/sh
# scripts/test-image.sh (make test-image): build docker/Dockerfile, run the
# image, publish a message, read /healthz, /readyz, /metrics and the admin
# status, stop it with docker stop (SIGQUIT) and check that nginx quit
# gracefully: exit code 0, the shutdown lines in its log, no [alert],
# [emerg] or [crit]. Also: the image's module has the PostgreSQL store
# (omnibus_store rendered from OMNIBUS_STORE_* passes nginx -t, which
# connects to no server; no PostgreSQL container is run), and Redis
# (omnibus_redis from OMNIBUS_REDIS_*, the same way).
#
# Uses the Docker daemon that answers (DOCKER_HOST or the default socket);
# when none does, starts a private dockerd (root only) with its own data
# root (OMNIBUS_DOCKER_ROOT, default /var/tmp/omnibus-docker, kept as a
# cache between runs), exec root, pid file and socket, and stops it by its
# pid at the end. When debian:12 can be neither found nor pulled, makes it
# with mmdebstrap from this machine's apt sources.
#
# Environment: DOCKER (the client, default docker), OMNIBUS_IMAGE (the tag
# built, default ngx-omnibus:test), OMNIBUS_DOCKER_ROOT.
set -eu

cd "$(dirname "$0")/.."
started=$(date +%s)

DOCKER=${DOCKER:-docker}
IMAGE=${OMNIBUS_IMAGE:-ngx-omnibus:test}
DATA_ROOT=${OMNIBUS_DOCKER_ROOT:-/var/tmp/omnibus-docker}

passed=0
failed=0
dockerd_pid=
container=
# short: dockerd's and containerd's unix sockets live below it
run=$(mktemp -d /tmp/omnibus-image.XXXXXX)

say() { echo "test-image: $*"; }

ok() {
    if [ "$1" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok - $2"
    else
        failed=$((failed + 1))
        echo "not ok - $2"
    fi
}

# fatal: what went wrong, the totals, and a failed exit
fail() {
    echo "test-image: FAILED: $*" >&2
    failed=$((failed + 1))
    exit 1
}

cleanup() {
    rc=$?
    set +e
    if [ -n "$container" ]; then
        $DOCKER rm -f "$container" >/dev/null 2>&1
    fi
    if [ -n "$dockerd_pid" ]; then
        kill "$dockerd_pid" 2>/dev/null
        i=0
        while kill -0 "$dockerd_pid" 2>/dev/null && [ $i -lt 30 ]; do
            sleep 1
            i=$((i + 1))
        done
        if kill -0 "$dockerd_pid" 2>/dev/null; then
            echo "test-image: dockerd $dockerd_pid did not stop, killing it" >&2
            kill -KILL "$dockerd_pid" 2>/dev/null
        fi
    fi
    rm -rf "$run"
    say "$passed passed, $failed failed, in $(( $(date +%s) - started )) s"
    [ "$failed" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools: CI starts on a clean machine
./scripts/deps.sh docker.io mmdebstrap curl \
    || fail "cannot install docker.io, mmdebstrap and curl"

# --- a daemon: the one that answers, else our own
if $DOCKER info >/dev/null 2>&1; then
    say "using the Docker daemon at ${DOCKER_HOST:-the default socket}"
else
    if [ "$(id -u)" -ne 0 ]; then
        fail "no Docker daemon answers, and starting one (dockerd) needs" \
             "root: run as root, or set DOCKER_HOST to a running daemon"
    fi
    command -v dockerd >/dev/null || fail "dockerd not found (docker.io)"
    mkdir -p "$DATA_ROOT"
    say "no Docker daemon answers: starting dockerd (data root $DATA_ROOT)"
    dockerd --data-root "$DATA_ROOT" --exec-root "$run/exec" \
        --pidfile "$run/dockerd.pid" -H "unix://$run/docker.sock" \
        > "$run/dockerd.log" 2>&1 &
    dockerd_pid=$!
    DOCKER_HOST=unix://$run/docker.sock
    export DOCKER_HOST
    i=0
    until $DOCKER info >/dev/null 2>&1; do
        if ! kill -0 "$dockerd_pid" 2>/dev/null; then
            dockerd_pid=
            tail -n 15 "$run/dockerd.log" >&2
            fail "dockerd exited at start (log above): this machine does" \
                 "not let it run (it needs root with the capabilities to" \
                 "mount, make network namespaces and set iptables rules)"
        fi
        i=$((i + 1))
        if [ $i -ge 60 ]; then
            tail -n 15 "$run/dockerd.log" >&2
            fail "dockerd does not answer after 60 s (log above)"
        fi
        sleep 1
    done
    say "dockerd $dockerd_pid answers on $DOCKER_HOST"
fi

# --- the base image: present, pulled, or made here
if ! $DOCKER image inspect debian:12 >/dev/null 2>&1; then
    # shellcheck disable=SC2086 # DOCKER may be a command with arguments
    if timeout 120 $DOCKER pull -q debian:12 >/dev/null 2>&1; then
        say "pulled debian:12"
    else
        # this machine's own sources when they are bookworm's (a mirror or
        # proxy that works here), else Debian's
        src=http://deb.debian.org/debian
        for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list
        do
            if [ -f "$f" ] && grep -qs '^[^#]*bookworm' "$f"; then
                src=$f
                break
            fi
        done
        say "debian:12 cannot be pulled: making it with mmdebstrap ($src)"
        t=$(date +%s)
        # the merged-usr hook sets up merged /usr as Debian's images have
        # it, without the usrmerge package and the perl it pulls in (46 MB)
        mmdebstrap --quiet --variant=minbase \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            bookworm "$run/debian12.tar" "$src" > "$run/mmdebstrap.log" 2>&1 \
            || { tail -n 30 "$run/mmdebstrap.log" >&2;
                 fail "mmdebstrap failed (log above)"; }
        $DOCKER import -c 'CMD ["bash"]' "$run/debian12.tar" debian:12 \
            >/dev/null || fail "docker import failed"
        rm -f "$run/debian12.tar"
        say "debian:12 made in $(( $(date +%s) - t )) s"
    fi
fi

# --- build from a context of just what the Dockerfile copies: the work
# tree's build/ (hundreds of MB) stays out
ctx=$run/context
mkdir -p "$ctx"
cp -a Makefile config ngx_omnibus_module.c src scripts docker "$ctx"/
t=$(date +%s)
say "building $IMAGE"
if ! $DOCKER build -f "$ctx/docker/Dockerfile" -t "$IMAGE" "$ctx" \
        > "$run/build.log" 2>&1; then
    tail -n 40 "$run/build.log" >&2
    fail "docker build failed (log above)"
fi
build_s=$(( $(date +%s) - t ))
size=$($DOCKER image inspect -f '{{.Size}}' "$IMAGE")
base_size=$($DOCKER image inspect -f '{{.Size}}' debian:12)
say "built in $build_s s; image $IMAGE is $((size / 1000000)) MB" \
    "($size bytes), of which debian:12 $((base_size / 1000000)) MB"

# --- run it: a route that delivers orders.* back to the bus itself, as
# audit.orders, exercises the webhook client without another container
container=omnibus-test-$$
$DOCKER run -d --name "$container" --hostname omnibus-test \
    -p 127.0.0.1::8080 --health-interval 1s \
    -e OMNIBUS_ADMIN_ALLOW=all \
    -e 'OMNIBUS_ROUTES=orders.> http://127.0.0.1:8080/publish/audit.orders retries=2' \
    "$IMAGE" >/dev/null || fail "docker run failed"

port=$($DOCKER port "$container" 8080/tcp | head -n 1)
port=${port##*:}
[ -n "$port" ] || fail "no published port"
base=http://127.0.0.1:$port

i=0
until curl -fsS -m 2 -o /dev/null "$base/healthz" 2>/dev/null; do
    state=$($DOCKER inspect -f '{{.State.Status}}' "$container")
    if [ "$state" != running ] || [ $i -ge 30 ]; then
        $DOCKER logs "$container" 2>&1 | tail -n 30 >&2
        fail "the container does not answer /healthz (state $state)"
    fi
    i=$((i + 1))
    sleep 1
done

# the checks count failures instead of stopping at the first
set +e

# the store: the variables rendered, the module built with libpq, libpq5
# in the image (nginx -t resolves the host and reads the password file,
# and connects to nothing)
$DOCKER run --rm -e OMNIBUS_STORE_URL=postgresql://omnibus@127.0.0.1:5432/omnibus \
    -e OMNIBUS_STORE_PASSWORD_FILE=/etc/hostname \
    -e 'OMNIBUS_STORE_PARAMS=pool=2 overflow=1' \
    "$IMAGE" -t > "$run/store-t.log" 2>&1 \
    && grep -q 'test is successful' "$run/store-t.log"
rc=$?
ok $rc "omnibus_store from OMNIBUS_STORE_*: nginx -t in the image passes"
[ $rc -eq 0 ] || cat "$run/store-t.log" >&2

# Redis the same: the module built with hiredis, libhiredis0.14 in the
# image (nginx -t resolves the host and reads the password file)
$DOCKER run --rm -e OMNIBUS_REDIS_URL=redis://127.0.0.1:6379/0 \
    -e OMNIBUS_REDIS_PASSWORD_FILE=/etc/hostname \
    -e 'OMNIBUS_REDIS_PARAMS=timeout=500ms fanout=on' \
    "$IMAGE" -t > "$run/redis-t.log" 2>&1 \
    && grep -q 'test is successful' "$run/redis-t.log"
rc=$?
ok $rc "omnibus_redis from OMNIBUS_REDIS_*: nginx -t in the image passes"
[ $rc -eq 0 ] || cat "$run/redis-t.log" >&2

# req METHOD PATH [CURL-ARG...]: status in $code, body in $run/body,
# headers in $run/headers
req() {
    m=$1 p=$2
    shift 2
    code=$(curl -sS -m 10 -X "$m" -o "$run/body" -D "$run/headers" \
               -w '%{http_code}' "$@" "$base$p") || code=000
}

req POST /publish/orders.created -H 'Content-Type: application/json' \
    --data-binary '{"order":42}'
[ "$code" = 202 ] && grep -q '"id":"' "$run/body"
ok $? "POST /publish/orders.created: 202 with an id ($code $(cat "$run/body"))"
grep -qi '^X-Omnibus-Node: omnibus-test' "$run/headers"
ok $? "X-Omnibus-Node is the container's host name"

req GET /healthz
[ "$code" = 200 ] && grep -q '"status":"ok"' "$run/body"
ok $? "GET /healthz: 200 ok ($code)"

req GET /readyz
[ "$code" = 200 ]
ok $? "GET /readyz: 200 ($code)"

req GET /omnibus/
[ "$code" = 200 ] && grep -q '"shards"' "$run/body"
ok $? "GET /omnibus/ (admin status): 200 with the shards ($code)"

# the route delivered the message to audit.orders: 2 published, 1 delivered
i=0
while :; do
    req GET /metrics
    if grep -q '^message_bus_delivered_total{zone="bus"} 1$' "$run/body" \
        && grep -q '^message_bus_published_total{zone="bus"} 2$' "$run/body"
    then
        break
    fi
    i=$((i + 1))
    [ $i -lt 20 ] || break
    sleep 0.5
done
[ "$code" = 200 ] && grep -q '^message_bus_delivered_total{zone="bus"} 1$' \
    "$run/body"
ok $? "GET /metrics: the route delivered the message (delivered_total 1)"

i=0
health=
while [ $i -lt 30 ]; do
    health=$($DOCKER inspect -f '{{.State.Health.Status}}' "$container")
    [ "$health" = healthy ] && break
    i=$((i + 1))
    sleep 1
done
[ "$health" = healthy ]
ok $? "docker's HEALTHCHECK says healthy ($health)"

# every process of the container (master and workers) runs as uid 10001
uids=$($DOCKER top "$container" -o pid,uid,args | awk 'NR > 1 { print $2 }' \
       | sort -u | tr '\n' ' ')
[ "$uids" = "10001 " ]
ok $? "nginx runs as uid 10001 only (uids: $uids)"

# --- docker stop sends the image's STOPSIGNAL (SIGQUIT)
t=$(date +%s)
$DOCKER stop -t 30 "$container" >/dev/null
stop_s=$(( $(date +%s) - t ))
code=$($DOCKER inspect -f '{{.State.ExitCode}}' "$container")
$DOCKER logs "$container" > "$run/container.log" 2>&1
[ "$code" = 0 ]
ok $? "docker stop: exit code 0 after $stop_s s ($code)"
grep -q 'signal 3 (SIGQUIT) received' "$run/container.log" \
    && grep -q 'gracefully shutting down' "$run/container.log" \
    && grep -q 'exited with code 0' "$run/container.log" \
    && grep -q '\[notice\] 1#1: exit$' "$run/container.log"
ok $? "the log shows the SIGQUIT, gracefully shutting down and exit lines"
if grep -E '\[(alert|emerg|crit)\]' "$run/container.log" >&2; then
    ok 1 "the log has no [alert], [emerg] or [crit]"
else
    ok 0 "the log has no [alert], [emerg] or [crit]"
fi
if [ "$failed" -gt 0 ]; then
    echo "--- container log:" >&2
    cat "$run/container.log" >&2
fi

say "image $IMAGE: $((size / 1000000)) MB" \
    "(debian:12 $((base_size / 1000000)) MB); build $build_s s"
