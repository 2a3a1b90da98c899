#!/usr/bin/env bash
# Build a small Alpine-style root (busybox and its applets, as Alpine's minirootfs is) from this
# machine's busybox-static package, packed as rootfs.tar.gz beside this script: the `tar` root of
# sandbox.toml. Works as any user:
#   apt-get install busybox-static
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/rootfs.tar.gz"
busybox="${BUSYBOX:-/bin/busybox}"
case "$(ldd "$busybox" 2>&1 || true)" in
  *"not a dynamic executable"*) ;;
  *) echo "$busybox is not statically linked: install busybox-static" >&2; exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,proc,dev,sys,run,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
# Every applet as a link, where busybox itself would install it.
"$busybox" --list-full | while read -r applet; do
  [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$root/$applet"
done
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo "alpine-like" > "$root/etc/hostname"
cat > "$root/etc/os-release" <<'OS'
NAME="busybox root"
ID=busybox
PRETTY_NAME="A busybox root in the style of Alpine's minirootfs"
OS
# Owned by root in the archive, whoever builds it: the sandbox maps them to its own root.
tar --numeric-owner --owner=0 --group=0 -C "$root" -czf "$out" .
sha256sum "$out"
