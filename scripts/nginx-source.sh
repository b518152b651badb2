#!/bin/sh
# scripts/nginx-source.sh DIR [SUITE]
#
# Make sure Debian's source of the installed nginx (1.22.1, with
# debian/patches applied, as the packaged binary is built) is unpacked
# under DIR, and print the path of its source root (the directory with
# ./configure) as the last line on stdout. Adds deb-src entries mirroring
# the machine's deb ones and runs apt-get update only when apt has no
# source for nginx yet. Idempotent and quiet when DIR already has it.
#
# With SUITE (another Debian release, e.g. trixie): the newest nginx
# source of that release instead, for a build against a newer NGINX
# (make test-nginx-1.26). apt reads a sources list of SUITE's deb-src
# lines and keeps its lists in a private dir under DIR, removed on exit:
# the machine's apt state is not changed. The mirror may answer 404 for
# the .dsc and .debian.tar.xz while the .orig.tar.gz arrives: then the
# upstream tree is unpacked without Debian's patches (its SHA-256 checked
# against the signed Sources index), and a note says so.
set -eu

[ $# -eq 1 ] || [ $# -eq 2 ] \
    || { echo "usage: $0 DIR [SUITE]" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd)
suite=${2:-}

if [ -n "$suite" ]; then
    # the tree that an earlier run unpacked for SUITE
    root="$dir/$(cat "$dir/.omnibus-$suite" 2>/dev/null || echo none)"
else
    # the version of the installed package, so that the tree matches it
    ver=$(dpkg-query -W -f='${source:Version}' nginx 2>/dev/null || true)
    [ -n "$ver" ] || ver=$(dpkg-query -W -f='${source:Version}' \
                              nginx-common 2>/dev/null || true)
    upstream=${ver%%-*}
    upstream=${upstream#*:}
    [ -n "$upstream" ] || upstream=1.22.1
    root="$dir/nginx-$upstream"
fi
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

list=/etc/apt/sources.list.d/omnibus-src.list

# deb-src lines for every deb line of the machine (deb822 .sources files
# and one-line .list files)
src_lines() {
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
}

work=
apt_dir=
trap 'rm -rf ${work:+"$work" "$work.log"} ${apt_dir:+"$apt_dir"}' EXIT
apt_opts=

if [ -n "$suite" ]; then
    # the machine's lines for its own release, renamed to SUITE (its
    # -updates and -security suites, and other repositories, left out:
    # the upstream tree is what is wanted); Debian's mirror when none
    apt_dir=$(mktemp -d "$dir/.apt-XXXXXX")
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
             "$apt_dir/sources.list.d"
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    src_lines | awk -v from="$codename" -v to="$suite" '
        { i = ($2 ~ /^\[/) ? 4 : 3 }
        from != "" && $i == from { $i = to; print }
    ' | sort -u > "$apt_dir/sources.list"
    [ -s "$apt_dir/sources.list" ] \
        || echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
               > "$apt_dir/sources.list"
    # downloads as this user, not apt's _apt: it cannot write to the
    # private dirs
    apt_opts="-o Dir::Etc::SourceList=$apt_dir/sources.list
              -o Dir::Etc::SourceParts=$apt_dir/sources.list.d
              -o Dir::State::Lists=$apt_dir/lists
              -o Dir::Cache=$apt_dir/cache
              -o APT::Sandbox::User=$(id -un)"
    echo "apt-get update of $suite's sources (private lists in $apt_dir)" >&2
    # shellcheck disable=SC2086
    apt-get $apt_opts update -qq >&2
# unless apt already knows nginx's source
elif ! apt-cache showsrc nginx 2>/dev/null | grep -q '^Package: nginx'; then
    tmp=$(mktemp)
    src_lines | sort -u > "$tmp"
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
# the installed version first (none for SUITE), then the others apt knows,
# newest first: a mirror may lack the newest security upload's source
# (404), and the versions of one upstream release differ only by Debian's
# patches
# shellcheck disable=SC2086
versions=$( { echo "${ver:-}"; apt-cache $apt_opts showsrc nginx 2>/dev/null \
              | sed -n 's/^Version: //p' | sort -u -r -V; } \
            | awk 'NF && !seen[$0]++')

# SUITE: the version's .orig tarball alone, when that is all that came,
# provided it has the SHA-256 of the signed Sources index
orig_only() {
    v=${1#*:}
    orig=$(find "$work" -maxdepth 1 -name "nginx_${v%-*}.orig.tar.*" | head -1)
    [ -n "$orig" ] || return 1
    # shellcheck disable=SC2086
    want=$(apt-cache $apt_opts showsrc nginx | awk -v f="${orig##*/}" '
        /^Checksums-Sha256:/ { on = 1; next }
        /^[^ ]/ { on = 0 }
        on && $3 == f { print $1; exit }')
    [ -n "$want" ] && [ "$(sha256sum < "$orig" | cut -d' ' -f1)" = "$want" ] \
        || { echo "$0: ${orig##*/}: no or wrong SHA-256" >&2; return 1; }
    tar -C "$work" --no-same-owner -xf "$orig"
}

ok=
for v in $versions; do
    if [ -z "$suite" ]; then
        if (cd "$work" && apt-get source -qq "nginx=$v" >"$work.log" 2>&1)
        then
            ok=$v
            break
        fi
    else
        # shellcheck disable=SC2086
        (cd "$work" && apt-get $apt_opts source -qq --download-only \
                           "nginx=$v" >"$work.log" 2>&1) || true
        if (cd "$work" && dpkg-source --no-check -x "nginx_${v#*:}.dsc" \
                              >>"$work.log" 2>&1); then
            ok=$v
            break
        fi
        if orig_only "$v"; then
            ok="$v (upstream tree only: no .dsc or .debian.tar.xz)"
            echo "note: nginx $v: the .dsc or .debian.tar.xz is not" \
                 "available, unpacked the upstream .orig tarball" \
                 "without Debian's patches" >&2
            break
        fi
    fi
    rm -rf "$work"/nginx-*/
done
[ -n "$ok" ] || { cat "$work.log" >&2; rm -f "$work.log";
                  echo "$0: apt-get source nginx failed" >&2; exit 1; }
rm -f "$work.log"
[ -n "$suite" ] || [ "$ok" = "$ver" ] \
    || echo "note: nginx $ver's source is not available," \
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
[ -z "$suite" ] || echo "nginx-$v" > "$dir/.omnibus-$suite"
echo "$root"
