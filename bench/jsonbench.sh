#!/bin/sh
# bench/jsonbench.sh [jsonbench options: -t SECONDS_PER_RUN -r RUNS]
#
# The JSON validation of published bodies alone, in MB/s on one core:
# builds bench/jsonbench.c under build/jsonbench/ with the module's
# src/core/ngx_omnibus_json.c compiled as the module compiles it (CC_OPT's
# -O2, the headers NGINX's configure made under build/nginx by `make`),
# once more without __SSE2__ (the fallback), NGINX's ngx_string.c for
# ngx_snprintf() (from Debian's source, unpacked under build/fuzz/src as
# for the fuzzers), yajl for the old path and, when libsimdjson-dev is or
# can be installed, simdjson; then prints a markdown table.  About 20 s.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/jsonbench
cc=${CC:-cc}
cxx=${CXX:-c++}
cflags="-O2 -g -Wall -Wextra -Wno-unused-parameter"

"$root/scripts/deps.sh" libyajl-dev dpkg-dev make

# NGINX's configured headers: the module's build makes them
[ -f "$root/build/nginx/objs/ngx_auto_config.h" ] \
    || make -C "$root" >/dev/null

ngx=$root/build/nginx
src=$("$root/scripts/nginx-source.sh" "$root/build/fuzz/src" | tail -1)
incs="-I$ngx/src/core -I$ngx/src/event -I$ngx/src/event/modules
      -I$ngx/src/os/unix -I$ngx/objs -I$root/src -I$root/src/core
      -I$root/src/delivery -I$root/src/backends"

mkdir -p "$out"

# shellcheck disable=SC2086
{
    $cc -c $cflags $incs -o "$out/json.o" "$root/src/core/ngx_omnibus_json.c"

    # the same file with the eight bytes at a time scan, renamed
    $cc -c $cflags $incs -U__SSE2__ \
        -Dngx_omnibus_json_valid=ngx_omnibus_json_valid_swar \
        -Dngx_omnibus_json_escape=ngx_omnibus_json_escape_swar \
        -Dngx_omnibus_json_escaped_len=ngx_omnibus_json_escaped_len_swar \
        -Dngx_omnibus_ndjson_next=ngx_omnibus_ndjson_next_swar \
        -o "$out/json-swar.o" "$root/src/core/ngx_omnibus_json.c"

    $cc -c $cflags -Wno-sign-compare $incs -o "$out/ngx_string.o" \
        "$src/src/core/ngx_string.c"
}

simd=
libs=
if "$root/scripts/deps.sh" libsimdjson-dev >/dev/null 2>&1 \
   && [ -f /usr/include/simdjson.h ] && command -v "$cxx" >/dev/null
then
    $cxx -c -O2 -g -o "$out/simdjson.o" "$root/bench/jsonbench-simdjson.cc"
    simd="-DJSONBENCH_SIMDJSON=1"
    libs="$out/simdjson.o -lsimdjson -lstdc++"
else
    echo "jsonbench: no libsimdjson-dev, no simdjson column" >&2
fi

# shellcheck disable=SC2086
$cc $cflags $simd $incs -o "$out/jsonbench" "$root/bench/jsonbench.c" \
    "$out/json.o" "$out/json-swar.o" "$out/ngx_string.o" $libs -lyajl

echo "cpu: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)," \
     "$($cc --version | head -1), $cflags"
echo
"$out/jsonbench" "$@"
