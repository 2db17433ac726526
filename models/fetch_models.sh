#!/usr/bin/env bash
# Fetches the pinned face-api model package with `npm pack`, verifies the
# tarball and every file listed in models/face-api.manifest (SHA-256 and
# size), and unpacks those files into the model cache:
#   $1, else $PRIVID_MODELS, else <repo>/build/models/face-api-<version>.
# Re-running is cheap: a cache whose files all verify is left alone; any
# changed, truncated or missing file makes the script fail loudly.
# `fetch_models.sh --verify DIR` only checks DIR against the manifest.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest="$here/face-api.manifest"
die() { echo "fetch_models: error: $*" >&2; exit 1; }

pkg=$(awk '$1=="package"{print $2}' "$manifest")
ver=$(awk '$1=="version"{print $2}' "$manifest")
tarsum=$(awk '$1=="tarball"{print $2}' "$manifest")
[ -n "$pkg" ] && [ -n "$ver" ] && [ -n "$tarsum" ] || die "malformed manifest $manifest"

# verify DIR: checks every listed file; prints the first problem and returns 1.
verify() {
    local dir=$1 sum size path actual
    while read -r kind sum size path; do
        [ "$kind" = file ] || continue
        [ -f "$dir/$path" ] || { echo "missing $path"; return 1; }
        actual=$(stat -c %s "$dir/$path")
        [ "$actual" = "$size" ] || { echo "$path has $actual bytes, expected $size (truncated or changed)"; return 1; }
        actual=$(sha256sum "$dir/$path" | cut -d' ' -f1)
        [ "$actual" = "$sum" ] || { echo "$path has SHA-256 $actual, expected $sum (changed)"; return 1; }
    done < "$manifest"
}

if [ "${1:-}" = "--verify" ]; then
    [ -n "${2:-}" ] || die "usage: fetch_models.sh --verify DIR"
    problem=$(verify "$2") || die "$2 does not match the manifest: $problem"
    echo "fetch_models: $2 verified"
    exit 0
fi

dest=${1:-${PRIVID_MODELS:-$here/../build/models/face-api-$ver}}
if [ -d "$dest" ]; then
    if problem=$(verify "$dest"); then
        echo "fetch_models: $pkg@$ver verified in $dest"
        exit 0
    fi
    echo "fetch_models: cache $dest does not verify ($problem); fetching again" >&2
fi

command -v npm >/dev/null || die "npm is needed (apt-get install npm, or Node.js with npm)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch_models: npm pack $pkg@$ver"
if ! (cd "$work" && npm pack "$pkg@$ver" >"$work/npm.log" 2>&1); then
    tail -n 5 "$work/npm.log" >&2
    die "npm pack $pkg@$ver failed (npm's last lines above)"
fi
tgz=$(ls "$work"/*.tgz 2>/dev/null | head -1)
[ -n "$tgz" ] || die "npm pack produced no tarball"
actual=$(sha256sum "$tgz" | cut -d' ' -f1)
[ "$actual" = "$tarsum" ] || die "tarball SHA-256 is $actual, expected $tarsum"

mkdir -p "$work/x"
tar -xzf "$tgz" -C "$work/x" --strip-components=1 --no-same-owner
problem=$(verify "$work/x") || die "package content does not match the manifest: $problem"

mkdir -p "$(dirname "$dest")"
stage="$dest.tmp.$$"
rm -rf "$stage"
awk '$1=="file"{print $4}' "$manifest" | while read -r path; do
    mkdir -p "$stage/$(dirname "$path")"
    cp "$work/x/$path" "$stage/$path"
done
verify "$stage" >/dev/null || die "copy into $stage failed verification"
rm -rf "$dest"
mv "$stage" "$dest"
echo "fetch_models: $pkg@$ver fetched and verified into $dest"
