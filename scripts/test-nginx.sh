#!/bin/sh
# scripts/test-nginx.sh SUITE SERIES: `make test-nginx-1.26` (trixie 1.26).
#
# Builds NGINX from Debian SUITE's source (scripts/nginx-source.sh DIR
# SUITE, which leaves the machine's apt state as it was) and the module
# against it, with the module's usual flags (CC_OPT, from the Makefile:
# -Werror), under build/nginx-SERIES/, then runs the whole suite
# (prove -r t/) on that nginx and module. Fails unless the source is
# NGINX SERIES.x. The unpacked source and the build are kept: a second
# run configures nothing and only recompiles what changed.
#
# Configure options: --with-compat --with-debug as the Makefile's build
# (t/07-debug.t needs the debug log), --with-threads and the realip module
# (the image's nginx.conf uses it) as Debian builds;
# --error-log-path=stderr because the default (logs/error.log under the
# prefix) does not exist in a test's -p dir, so every start and `nginx -t`
# would print an [alert] before nginx.conf's error_log takes over; no
# gzip (no zlib1g-dev: no test uses it). PCRE stays: the rewrite module
# (`return`) needs it. The other paths do not matter: the harness passes
# -p and -c, and sets pid, error_log, access_log and every temp path.
#
# Environment: CC_OPT (required), JOBS (make -j, default 2), TESTS (test
# files instead of -r t/).
set -eu

[ $# -eq 2 ] || { echo "usage: $0 SUITE SERIES" >&2; exit 2; }
suite=$1
series=$2
: "${CC_OPT:?CC_OPT not set: run make test-nginx-$series}"

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/nginx-$series
tree=$out/nginx
jobs=${JOBS:-2}
conf_args="--with-compat --with-debug --with-threads
 --with-http_realip_module
 --error-log-path=stderr --without-http_gzip_module"

now() { date +%s; }
t0=$(now)

# gcc, make and libc for NGINX, PCRE for its rewrite module, yajl and
# librdkafka for the module, dpkg-dev for apt-get source
"$root/scripts/deps.sh" gcc make libc6-dev libpcre2-dev libyajl-dev \
    librdkafka-dev dpkg-dev

src=$("$root/scripts/nginx-source.sh" "$out/src" "$suite" | tail -1)
case ${src##*/} in
    nginx-"$series".*) ;;
    *) echo "$0: $suite has ${src##*/}, not NGINX $series" >&2; exit 1 ;;
esac

# configure again when the arguments or the module's build scripts change
# (as the Makefile does for the default build)
# shellcheck disable=SC2086
sig=$(printf '%s\n' "$src" "$CC_OPT" $conf_args | cksum)
if [ ! -f "$tree/objs/Makefile" ] \
    || [ "$(cat "$tree/.omnibus-configure" 2>/dev/null)" != "$sig" ] \
    || [ -n "$(find "$root/config" "$root/src" -name config \
                   -newer "$tree/objs/Makefile")" ]
then
    echo "nginx-$series: configuring ${src##*/}"
    rm -rf "$tree"
    cp -a "$src" "$tree"
    # shellcheck disable=SC2086
    (cd "$tree" && ./configure $conf_args --with-cc-opt="$CC_OPT" \
         --add-dynamic-module="$root" > configure.log 2>&1) \
        || { tail -30 "$tree/configure.log"; exit 1; }
    echo "$sig" > "$tree/.omnibus-configure"
fi
echo "nginx-$series: building NGINX and the module (make -j$jobs)"
make -s -C "$tree" -f objs/Makefile -j"$jobs" binary modules \
    > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }

nginx=$tree/objs/nginx
module=$tree/objs/ngx_omnibus_module.so
t1=$(now)
echo "nginx-$series: $("$nginx" -v 2>&1) ($(cat "$src/.omnibus-source")):" \
     "ready in $((t1 - t0)) s"

rc=0
# shellcheck disable=SC2086
(cd "$root" && OMNIBUS_NGINX="$nginx" OMNIBUS_MODULE="$module" \
     prove -I t/lib ${TESTS:--r t/}) || rc=$?
echo "nginx-$series: suite took $(($(now) - t1)) s"
[ $rc -eq 0 ] || echo "nginx-$series: FAILED on $("$nginx" -v 2>&1)"
exit $rc
