#!/usr/bin/env bash
# Make the local base image dynamo-base:bookworm with debootstrap + docker import, for machines
# that cannot pull from a registry. Then `harness image build --base dynamo-base:bookworm`.
# Idempotent: an existing image is kept unless FORCE=1. Needs root, debootstrap and a Docker engine.
set -euo pipefail

IMAGE="${BASE_IMAGE:-dynamo-base:bookworm}"
SUITE=bookworm
# Python and the tools the platform runs inside a container: iptables, iproute2 (tc), procps,
# faketime. What the node imports (httptools, yarl, msgpack) comes as wheels (harness image build).
PACKAGES=python3,python3-msgpack,iptables,iproute2,procps,faketime

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE already exists (FORCE=1 to rebuild)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install -y debootstrap" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

# The mirror this machine's apt already uses (the first deb URI serving the suite), so that no
# host name is written here; MIRROR overrides it.
mirror="${MIRROR:-}"
if [ -z "$mirror" ]; then
    mirror="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / '"$SUITE"'( |$)/ && u {print u; exit}' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror="$(awk '$1=="deb" && $3=="'"$SUITE"'" {print $2; exit}' /etc/apt/sources.list)"
fi
[ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources; set MIRROR" >&2; exit 1; }

dir="$(mktemp -d /tmp/dynamo-base.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
start=$(date +%s)
echo "debootstrap $SUITE from $mirror into $dir"
timeout 900 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" "$mirror" \
    >"$dir.log" 2>&1 || { tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; exit 1; }
rm -f "$dir.log"
# apt caches are not needed in the image
rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
tar -C "$dir" -c . | docker import - "$IMAGE" >/dev/null
echo "made $IMAGE in $(( $(date +%s) - start )) s"
