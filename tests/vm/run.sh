#!/usr/bin/env bash
# The VM lane: the live tests that depend on the kernel and the cgroup hierarchy, run under
# Debian's 6.1 kernel on a pure cgroup v2 hierarchy (cgroup_no_v1=all), as root and rootless
# (from a subtree delegated the way systemd delegates user@UID.service). The VM's root is this
# machine's own file system, shared read-only over 9p with copy-on-write overlays in the guest
# (virtme-ng), so the test binaries are built here and run there.
#
#   bash tests/vm/run.sh            the lane (.ci/run runs it after `cargo test`)
#   bash tests/vm/run.sh systemd    a Debian 12 host with systemd as init, on the same kernel:
#                                   rootless limits from a real user@UID.service (.ci/run
#                                   runs it after the lane; docs/testing.md)
#
# Environment: SANDBOX_VM_KERNEL (default: the newest /boot/vmlinuz-6.1.*), SANDBOX_VM_ACCEL
# (kvm or tcg; default: KVM when a probe boot shows it works, software emulation otherwise),
# SANDBOX_VM_THREADS (test threads in the guest, default 4: most tests wait more than they
# compute), SANDBOX_VM_MIRROR (the Debian mirror the systemd host's image comes from).
# A failure inside the VM fails the script.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
mode=${1:-lane}
started=$(date +%s)

# virtme-ng from PyPI, pinned, in a venv of its own.
VIRTME_NG_VERSION=1.42

# The systemd host's disk image, made once with Debian's own tools and kept in the cache: a
# minimal Debian 12 with systemd as init, logind and the system bus, and a user with a home
# (uid 1000, subordinate ids from useradd). At boot, a unit of its own mounts the second disk
# (what this run built: the launcher and tests/vm/systemd.sh), runs the checks with their
# output on the serial console, and powers the VM off.
systemd_image() {
  local include=systemd,systemd-sysv,dbus,libpam-systemd,passwd,uidmap,procps,kmod
  # Named by this function's text: a change to how the image is made makes a new one.
  image=$cache/debian-12-systemd-$(declare -f systemd_image | sha256sum | cut -c1-12).img
  [ -f "$image" ] && return
  [ "$(id -u)" -eq 0 ] || { echo "vm: making the systemd host's image ($image) takes root (debootstrap)" >&2; exit 1; }
  local root
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/image-XXXXXX")
  # shellcheck disable=SC2064 # what this call makes
  trap "rm -rf '$root' '$root.log' '$image.new'" EXIT
  debootstrap --variant=minbase --include="$include" bookworm "$root" \
    "${SANDBOX_VM_MIRROR:-http://deb.debian.org/debian}" >"$root.log" 2>&1 ||
    { cat "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  chroot "$root" useradd --create-home --shell /bin/bash sandbox-test
  echo sandbox-vm >"$root/etc/hostname"
  # The console is the checks' output: no login prompt on it.
  ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
  cat >"$root/etc/systemd/system/sandbox-vm-checks.service" <<'UNIT'
[Unit]
Description=sandbox: the checks on the second disk (tests/vm/systemd.sh)
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /run/sandbox-vm && mount -o ro /dev/vdb /run/sandbox-vm && exec bash /run/sandbox-vm/systemd.sh /run/sandbox-vm'
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
ExecStopPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
UNIT
  chroot "$root" systemctl enable sandbox-vm-checks.service
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  mkfs.ext4 -q -F -L sandbox-vm -d "$root" "$image.new" 1G
  mv "$image.new" "$image"
  rm -rf "$root"
  trap - EXIT
}

# What the VM needs beyond what .ci/run installs for the tests themselves.
case "$mode" in
  lane) packages=(qemu-system-x86 linux-image-amd64 python3-venv e2fsprogs busybox-static gcc
    libc6-dev uidmap util-linux iproute2 nftables passt binutils) ;;
  systemd) packages=(qemu-system-x86 linux-image-amd64 debootstrap e2fsprogs binutils) ;;
  *) echo "usage: $0 [lane|systemd]" >&2; exit 2 ;;
esac
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-vm

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
lane=$repo/target/vm
mkdir -p "$lane"

# The test binaries and the launcher, built as `cargo test` builds them (a plain `cargo build`
# resolves the dependencies' features without the dev-dependencies, and rebuilds them).
tests=(cgroup exec security lifecycle network doctor)
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
# Their paths from cargo's own messages, wherever CARGO_TARGET_DIR puts them.
cargo test --no-run --message-format=json "${test_args[@]}" 2>/dev/null \
  | python3 -c '
import json, sys
tests = open(sys.argv[1], "w")
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"], file=tests)
    elif m["target"]["kind"] == ["bin"] and m["target"]["name"] == "sandbox":
        print(m["executable"])
' "$lane/binaries" >"$lane/launcher"
[ "$(wc -l <"$lane/binaries")" -eq "${#tests[@]}" ] || { echo "vm: building the test binaries failed" >&2; cargo test --no-run "${test_args[@]}"; exit 1; }

if [ "$mode" = lane ]; then
  # virtme-ng from PyPI, pinned, in a venv of its own.
  venv=$cache/virtme-ng-$VIRTME_NG_VERSION
  if [ ! -x "$venv/bin/vng" ]; then
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q "virtme-ng==$VIRTME_NG_VERSION"
  fi
  # vng runs its helpers (virtme-run) from PATH.
  export PATH="$venv/bin:$PATH"
  kvm_flag=()
  [ "$accel" = kvm ] || kvm_flag=(--disable-kvm)
  # The probe compiled here rather than in each test binary.
  gcc -static -O1 -Wall -o "$lane/probe" tests/probe/probe.c
else
  systemd_image
fi
# The launcher without its debug information (118 MB otherwise, which each test binary would
# copy over 9p under emulation).
objcopy --strip-debug "$(cat "$lane/launcher")" "$lane/sandbox"

booted=$(date +%s)
status=0
case "$mode" in
  lane)
    echo "vm: $(basename "$kernel") with ${accel}, virtme-ng $VIRTME_NG_VERSION, setup took $(( booted - started )) s"
    # The guest's output goes through a pipe: qemu writes its console to a file from offset 0,
    # over what the host wrote there before (CI's log, for one).
    vng --run "$kernel" "${kvm_flag[@]}" --force-9p --cpus 2 --memory 4G \
      --append cgroup_no_v1=all -- \
      "bash $repo/tests/vm/guest.sh $lane ${SANDBOX_VM_THREADS:-4}" 2>&1 | cat || status=$?
    ;;
  systemd)
    echo "vm: $(basename "$kernel") with ${accel}, $(basename "$image"), setup took $(( booted - started )) s"
    initrd=/boot/initrd.img-${kernel#*/vmlinuz-}
    [ -f "$initrd" ] || { echo "vm: no $initrd, which loads the root's disk driver (apt install initramfs-tools)" >&2; exit 1; }
    # The image stays as made (-snapshot: the guest's writes go to a temporary file); Debian's
    # initramfs for this kernel loads virtio_blk and ext4 for the root.
    payload=$lane/systemd-payload
    rm -rf "$payload" "$payload.img"
    mkdir -p "$payload"
    cp "$lane/sandbox" tests/vm/systemd.sh "$payload/"
    mkfs.ext4 -q -d "$payload" "$payload.img" 64M
    accel_flags=(-accel tcg)
    [ "$accel" = tcg ] || accel_flags=(-accel kvm -cpu host)
    timeout 1200 qemu-system-x86_64 "${accel_flags[@]}" -smp 2 -m 2G -nodefaults -no-reboot \
      -display none -serial stdio -snapshot \
      -kernel "$kernel" -initrd "$initrd" \
      -append "root=/dev/vda rw console=ttyS0 quiet panic=-1 cgroup_no_v1=all" \
      -drive "file=$image,if=virtio,format=raw" -drive "file=$payload.img,if=virtio,format=raw,readonly=on" \
      </dev/null 2>&1 | tee "$lane/systemd.log" || status=$?
    grep -q '^vm: [0-9]* passed, 0 failed' "$lane/systemd.log" || status=1
    ;;
esac
echo "vm: the VM ran $(( $(date +%s) - booted )) s (boot included); $mode took $(( $(date +%s) - started )) s in all; exit status $status"
exit "$status"
