#!/usr/bin/env bash
# Build a minimal Debian root with debootstrap from this machine's own Debian mirror and release,
# packed as debian.tar.zst beside this script: the `tar` root of sandbox.toml.
# Needs root (debootstrap makes device nodes and chowns), debootstrap and zstd:
#   apt-get install debootstrap zstd
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/debian.tar.zst"

# The mirror and release apt uses here (deb822 .sources first, then the one-line format).
mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
fi
mirror="${MIRROR:-${mirror:-http://deb.debian.org/debian}}"
. /etc/os-release
suite="${SUITE:-${VERSION_CODENAME:-bookworm}}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase "$suite" "$work/root" "$mirror"
# apt's caches are of no use in a read-only root.
rm -rf "$work/root/var/cache/apt/archives"/*.deb "$work/root/var/lib/apt/lists"/*
tar --numeric-owner --xattrs --xattrs-include='*' -C "$work/root" -cf - . | zstd -q -T0 -19 -o "$out" -f
sha256sum "$out"
