#!/usr/bin/env bash
# bench/prepare-root.sh ROOT: the root file system every launcher of the benchmark uses. Empty
# mount points for the host's /usr and /etc (bound read-only on them) and /proc, the
# merged-/usr symlinks, and a /dev that crun fills with the OCI default device nodes (bind
# targets it creates there as the container's root, 100000).
set -euo pipefail
root=$1
mkdir -p "$root"/{usr,etc,proc,dev}
for link in bin sbin lib lib64; do ln -sfn "usr/$link" "$root/$link"; done
chown 100000:100000 "$root/dev"
