#!/bin/sh
# scripts/nginx-source.sh DIR
#
# Make sure Debian's source of the installed nginx (1.22.1, with
# debian/patches applied, as the packaged binary is built) is unpacked
# under DIR, and print the path of its source root (the directory with
# ./configure) as the last line on stdout. Adds deb-src entries mirroring
# the machine's deb ones and runs apt-get update only when apt has no
# source for nginx yet. Idempotent and quiet when DIR already has it.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)

# the version of the installed package, so that the tree matches it
ver=$(dpkg-query -W -f='${source:Version}' nginx 2>/dev/null || true)
[ -n "$ver" ] || ver=$(dpkg-query -W -f='${source:Version}' nginx-common \
                          2>/dev/null || true)
upstream=${ver%%-*}
upstream=${upstream#*:}
[ -n "$upstream" ] || upstream=1.22.1
root="$dir/nginx-$upstream"
stamp="$root/.omnibus-source"

if [ -f "$stamp" ] && [ -x "$root/configure" ] && [ -d "$root/src" ]; then
    echo "$root"
    exit 0
fi

sudo=
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive

for p in dpkg-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || { $sudo apt-get update -qq && \
             $sudo apt-get install -y -qq --no-install-recommends "$p" \
                 >/dev/null; } >&2
done

# deb-src lines for every deb line of the machine (deb822 .sources files
# and one-line .list files), unless apt already knows nginx's source
if ! apt-cache showsrc nginx 2>/dev/null | grep -q '^Package: nginx'; then
    list=/etc/apt/sources.list.d/omnibus-src.list
    tmp=$(mktemp)
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            awk '
                function flush() {
                    if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "") {
                        n = split(uris, u, /[ \t]+/)
                        m = split(suites, s, /[ \t]+/)
                        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
                            if (u[i] != "" && s[j] != "")
                                printf "deb-src %s%s %s %s\n", opts, u[i],
                                       s[j], comps
                    }
                    types = uris = suites = comps = opts = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                {
                    k = $1; sub(/:$/, "", k); v = $0
                    sub(/^[^:]*:[ \t]*/, "", v)
                    if (k == "Types") types = v
                    else if (k == "URIs") uris = v
                    else if (k == "Suites") suites = v
                    else if (k == "Components") comps = v
                    else if (k == "Signed-By" && v !~ /^-/ && v != "")
                        opts = "[signed-by=" v "] "
                }
                END { flush() }
            ' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] && [ "$f" != "$list" ] || continue
            sed -n 's/^[ \t]*deb[ \t]/deb-src /p' "$f"
        done
    } | sort -u > "$tmp"
    if [ ! -s "$tmp" ]; then
        rm -f "$tmp"
        echo "$0: no deb lines to derive deb-src lines from" >&2
        exit 1
    fi
    echo "adding $list and running apt-get update" >&2
    $sudo install -m 644 "$tmp" "$list"
    rm -f "$tmp"
    $sudo apt-get update -qq >&2
fi

# apt-get source downloads .dsc and tarballs and runs dpkg-source -x,
# which applies debian/patches (3.0 (quilt))
work=$(mktemp -d "$dir/.src-XXXXXX")
trap 'rm -rf "$work" "$work.log"' EXIT
# the installed version first, then the others apt knows, newest first: a
# mirror may lack the newest security upload's source (404), and the
# versions of one upstream release differ only by Debian's patches
versions=$( { echo "$ver"; apt-cache showsrc nginx 2>/dev/null \
              | sed -n 's/^Version: //p' | sort -u -r -V; } \
            | awk 'NF && !seen[$0]++')
ok=
for v in $versions; do
    if (cd "$work" && apt-get source -qq "nginx=$v" >"$work.log" 2>&1); then
        ok=$v
        break
    fi
    rm -rf "$work"/nginx-*/
done
[ -n "$ok" ] || { cat "$work.log" >&2; rm -f "$work.log";
                  echo "$0: apt-get source nginx failed" >&2; exit 1; }
rm -f "$work.log"
[ "$ok" = "$ver" ] || echo "note: nginx $ver's source is not available," \
    "unpacked $ok instead" >&2

got=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'nginx-*' | head -1)
[ -n "$got" ] && [ -x "$got/configure" ] \
    || { echo "$0: no unpacked nginx tree in $work" >&2; exit 1; }
# the tree says which version it is (in case apt had another one)
v=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' \
        "$got/src/core/nginx.h")
root="$dir/nginx-$v"
rm -rf "$root"
mv "$got" "$root"
echo "$ok" > "$root/.omnibus-source"
echo "$root"
