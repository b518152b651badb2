#!/bin/sh
# Install the Debian packages given as arguments that are missing.
# Idempotent and quiet when everything is present.
missing=
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=
[ "$(id -u)" -ne 0 ] && sudo=sudo
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# another apt (a package timer, a parallel job) may hold the lock a while
lock="-o DPkg::Lock::Timeout=300"
$sudo apt-get $lock update -qq || exit 1
# the packaged nginx must not keep port 80 busy or run as a service
$sudo apt-get $lock install -y -qq --no-install-recommends $missing \
    >/dev/null \
    || exit 1
