#!/bin/sh
# fuzz/build.sh [OUT]
#
# Builds the libFuzzer harnesses of fuzz/ into OUT (default build/fuzz):
# installs what is missing (clang-14, its runtimes, yajl), unpacks Debian's
# NGINX source with scripts/nginx-source.sh, configures it once with the
# sanitizers (core, event and os/unix only: --without-http), compiles its
# objects, then fuzz/fuzz.mk builds the module's core and the harnesses.
# Each step is skipped when its result is already there: a rebuild after
# a change of src/ or fuzz/ takes seconds.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/fuzz}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cc=${FUZZ_CC:-clang-14}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

"$root/scripts/deps.sh" clang-14 libclang-rt-14-dev libyajl-dev dpkg-dev \
    make

src=$("$root/scripts/nginx-source.sh" "$out/src" | tail -1)
[ -x "$src/configure" ] || { echo "$0: no NGINX source at $src" >&2; exit 1; }

# as fuzz/fuzz.mk compiles the module; the link needs them too (configure
# links and runs its test programs with them)
cflags='-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined'
ldflags='-fsanitize=address,undefined'
ngx="$out/ngx"
conf="$src $cc $cflags $ldflags"

if [ ! -f "$ngx/Makefile" ] || [ "$(cat "$ngx/.configured" 2>/dev/null)" != "$conf" ]
then
    echo "fuzz: configuring NGINX ($src) in $ngx"
    rm -rf "$ngx"
    mkdir -p "$ngx"
    (cd "$src" && ./configure --with-compat --with-debug --with-cc="$cc" \
         --builddir="$ngx" --without-http --without-pcre \
         --with-cc-opt="$cflags" --with-ld-opt="$ldflags") \
        > "$ngx/configure.log" 2>&1 \
        || { tail -30 "$ngx/configure.log"; exit 1; }
    echo "$conf" > "$ngx/.configured"
fi

echo "fuzz: compiling NGINX's objects"
(cd "$src" && make -s -j"$jobs" -f "$ngx/Makefile" binary) \
    > "$ngx/make.log" 2>&1 || { tail -30 "$ngx/make.log"; exit 1; }

echo "fuzz: compiling the module's core and the harnesses"
make -s -j"$jobs" -f "$root/fuzz/fuzz.mk" ROOT="$root" OUT="$out" \
    NGX_SRC="$src" NGX_OBJS="$ngx" CC="$cc"

ls "$out"/bin/fuzz_*
