#!/usr/bin/env bash
# The VM lane: the live tests that depend on the kernel and the cgroup hierarchy, run under
# Debian's 6.1 kernel on a pure cgroup v2 hierarchy (cgroup_no_v1=all), as root and rootless
# (from a subtree delegated the way systemd delegates user@UID.service). The VM's root is this
# machine's own file system, shared read-only over 9p with copy-on-write overlays in the guest
# (virtme-ng), so the test binaries are built here and run there.
#
#   bash tests/vm/run.sh            the lane (.ci/run runs it after `cargo test`)
#   bash tests/vm/run.sh systemd    systemd as init: rootless limits from a real user@UID.service
#                                   (does not run through yet: docs/testing.md)
#
# Environment: SANDBOX_VM_KERNEL (default: the newest /boot/vmlinuz-6.1.*), SANDBOX_VM_ACCEL
# (kvm or tcg; default: KVM when a probe boot shows it works, software emulation otherwise),
# SANDBOX_VM_THREADS (test threads in the guest, default 4: most tests wait more than they compute).
# A failure inside the VM fails the script.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
mode=${1:-lane}
started=$(date +%s)

# virtme-ng from PyPI, pinned, in a venv of its own.
VIRTME_NG_VERSION=1.42

# What the VM needs beyond what .ci/run installs for the tests themselves.
packages=(qemu-system-x86 linux-image-amd64 python3-venv e2fsprogs busybox-static gcc libc6-dev
  uidmap util-linux iproute2 nftables passt binutils)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

venv=${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-vm/virtme-ng-$VIRTME_NG_VERSION
if [ ! -x "$venv/bin/vng" ]; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION"
fi
# vng runs its helpers (virtme-run) from PATH.
export PATH="$venv/bin:$PATH"

kernel=${SANDBOX_VM_KERNEL:-$(ls -1v /boot/vmlinuz-6.1.* 2>/dev/null | tail -n1)}
[ -n "$kernel" ] || { echo "vm: no 6.1 kernel in /boot (apt install linux-image-amd64 on Debian 12)" >&2; exit 1; }

# KVM where it works: nested KVM on some hosts hangs or fails ("failed to set MSR") instead of
# refusing, so a kernel boot that panics at once (no root) must finish within seconds.
accel=${SANDBOX_VM_ACCEL:-}
if [ -z "$accel" ]; then
  accel=tcg
  if [ -w /dev/kvm ] && timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 256M -nodefaults \
      -display none -no-reboot -serial none -kernel "$kernel" -append "panic=-1" </dev/null >/dev/null 2>&1; then
    accel=kvm
  fi
fi
kvm_flag=()
[ "$accel" = kvm ] || kvm_flag=(--disable-kvm)

# The test binaries, built here (the guest runs them from the shared root).
lane=$repo/target/vm
mkdir -p "$lane"
tests=(cgroup exec security lifecycle network)
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
cargo test --no-run --message-format=json "${test_args[@]}" 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' >"$lane/binaries"
[ "$(wc -l <"$lane/binaries")" -eq "${#tests[@]}" ] || { echo "vm: building the test binaries failed" >&2; cargo test --no-run "${test_args[@]}"; exit 1; }
# The launcher without its debug information (118 MB otherwise, which each test binary would
# copy over 9p under emulation), and the probe compiled here rather than in each test binary.
objcopy --strip-debug target/debug/sandbox "$lane/sandbox"
gcc -static -O1 -Wall -o "$lane/probe" tests/probe/probe.c

echo "vm: $(basename "$kernel") with ${accel}, virtme-ng $VIRTME_NG_VERSION, setup took $(( $(date +%s) - started )) s"
booted=$(date +%s)
# The guest's output goes through a pipe: qemu writes its console to a file from offset 0,
# over what the host wrote there before (CI's log, for one).
case "$mode" in
  lane)
    status=0
    vng --run "$kernel" "${kvm_flag[@]}" --force-9p --cpus 2 --memory 4G \
      --append cgroup_no_v1=all -- \
      "bash $repo/tests/vm/guest.sh $lane ${SANDBOX_VM_THREADS:-4}" 2>&1 | cat || status=$?
    ;;
  systemd)
    # systemd as init on the shared root (read-only: no copy-on-write overlays then). The
    # checks run as a transient unit from the kernel command line (systemd-run-generator),
    # which powers the VM off when done; their output goes to the console, shown with
    # --verbose. What this machine runs besides (a database, timers, gettys) stays masked.
    status=0
    masks=(postgresql.service postgresql@15-main.service apt-daily.timer
      apt-daily-upgrade.timer man-db.timer e2scrub_all.timer dpkg-db-backup.timer fstrim.timer
      logrotate.timer console-getty.service getty@tty1.service serial-getty@ttyS0.service)
    mask_args=()
    for unit in "${masks[@]}"; do mask_args+=(--append "systemd.mask=$unit"); done
    vng --run "$kernel" "${kvm_flag[@]}" --force-9p --cpus 2 --memory 2G --systemd --verbose \
      --append cgroup_no_v1=all --append "systemd.run=$repo/tests/vm/systemd.sh" \
      --append systemd.run_success_action=poweroff --append systemd.run_failure_action=poweroff \
      "${mask_args[@]}" </dev/null 2>&1 | tee "$lane/systemd.log" || status=$?
    grep -q '^vm: [0-9]* passed, 0 failed' "$lane/systemd.log" || status=1
    ;;
  *) echo "usage: $0 [lane|systemd]" >&2; exit 2 ;;
esac
echo "vm: the VM ran $(( $(date +%s) - booted )) s (boot included); the lane took $(( $(date +%s) - started )) s in all; exit status $status"
exit "$status"
