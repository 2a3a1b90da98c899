#!/usr/bin/env bash
# Inside the VM (tests/vm/run.sh boots it): make the guest look like a plain Debian 12 host,
# then run the kernel-dependent live tests as root, then rootless from a delegated subtree.
# Usage: guest.sh LANE_DIR THREADS, LANE_DIR holding what run.sh built on the host.
set -euo pipefail
lane=$1
threads=$2
boot_done=$(date +%s)
echo "vm: $(uname -r) up for $(cut -d' ' -f1 /proc/uptime) s, cgroup $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

# The tests' temporary folders on ext4, as /tmp is on a Debian 12 install (the tests make
# their roots there; tmpfs could not be id-mapped before Linux 6.3, which `check` refuses on
# its own: a test covers that). Through TMPDIR, not over /tmp: the checkout and the test
# binaries may be in the host's /tmp, which virtme-ng shows there (copy-on-write).
truncate -s 6G /run/vm-tmp.img
mkfs.ext4 -q -F /run/vm-tmp.img
modprobe loop
mkdir -p /run/vm-tmp
mount -o loop /run/vm-tmp.img /run/vm-tmp
chmod 1777 /run/vm-tmp
export TMPDIR=/run/vm-tmp

# virtme-ng binds generated files over /etc/{fstab,shadow,sudoers,hosts}: the host's own are
# what a sandbox of this machine should see (its /etc/shadow is root's only).
for file in fstab shadow sudoers hosts; do
  umount "/etc/$file" 2>/dev/null || true
done

# pasta (rootless networking) opens /dev/net/tun as the caller, and needs a routable
# interface to copy into the sandbox: a dummy one with a documentation-range address, so that
# nothing can leave the VM (the guest has no network device at all).
[ -c /dev/net/tun ] || { mkdir -p /dev/net; mknod -m 0666 /dev/net/tun c 10 200; }
chmod 0666 /dev/net/tun
ip link set lo up
ip link add vm0 type dummy
ip address add 192.0.2.2/24 dev vm0
ip link set vm0 up
ip route add default via 192.0.2.1

# The stripped launcher in place of the debug one (the harness copies it into each test's
# temporary folder), and the probe compiled on the host.
binaries=$(cat "$lane/binaries")
debug_sandbox=$(dirname "$(dirname "$(echo "$binaries" | head -n1 | cut -d' ' -f2)")")/sandbox
cp "$lane/sandbox" /run/vm-sandbox-bin
mount --bind /run/vm-sandbox-bin "$debug_sandbox"
export SANDBOX_TEST_PROBE=$lane/probe
export CI=true

passed=0
failed=0
failures=()
# run NAME WHO COMMAND...: one test binary; its usual output goes straight through.
run() {
  local name=$1 who=$2 start status=0 out result count
  shift 2
  start=$(date +%s)
  out=$(mktemp)
  "$@" 2>&1 | tee "$out" || status=$?
  result=$(grep -E '^test result: ' "$out" | tail -n1 || true)
  count=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$result")
  passed=$(( passed + ${count:-0} ))
  count=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$result")
  failed=$(( failed + ${count:-0} ))
  if [ "$status" -ne 0 ] || [ -z "$result" ]; then
    failures+=("$name ($who)")
  fi
  echo "vm: $name ($who) took $(( $(date +%s) - start )) s"
  rm -f "$out"
}

# The tests that depend on the kernel and the cgroup hierarchy, by the words their names hold
# (none: every test of the binary): among them the egress rules (nftables over netlink,
# conntrack for replies, the refused counts read back) and doctor's report of the kernel and
# of v2 delegation. Left to `cargo test` on the host: what only the launcher decides (exit
# statuses, logs, records, leases, the cleanup after a failed step, plan and verbose output)
# and the stress tests (40 launches racing renames, twenty or ten sandboxes at once), which
# take minutes each under software emulation.
declare -A tests=(
  [cgroup]=""
  [doctor]="doctor_reports_what_the_kernel_files_say"
  [security]="the_kernels_sensitive_proc_entries with_default_security_every_escape_fails
    without_the_filter_those_calls_go_through the_process_has_no_capability
    a_setuid_binary_gains_nothing net_bind_service_lets_uid_1000_bind_port_80
    landlock_allows_exactly_its_paths_and_ports without_no_new_privs_the_filter_and_landlock
    rlimits_are_the_manifests custom_profiles_deny_what_they_list a_kill_profile_kills
    the_command_cannot_reach_init as_root_what_is_not_the_callers_own_stays_unreadable"
  [exec]="id_maps_are_the_planned_ones explicit_maps_and_identity the_command_is_the_child_of_init
    the_mount_table_holds_only_planned_mounts the_root_is_read_only_and_writable_when_asked
    a_read_only_bind_refuses_writes_with_erofs a_tmpfs_size_limit_holds
    the_network_namespace_has_only_lo the_ipc_namespace_has_no_host_objects
    a_hostile_symlink_cannot_send_a_mount_onto_the_host capabilities_are_dropped
    every_mount_type_is_made an_overlay_root_is_thrown_away_or_kept a_terminal_is_a_new_pty
    the_hosts_root_only_files_stay_unreadable a_deterministic_jail_prints_the_same_twice
    sigkill_of_the_launcher_leaves_no_process a_root_on_tmpfs_runs_where_the_kernel_id_maps
    a_writable_project_bind_is_the_callers_as_the_command"
  [lifecycle]="exec_joins_everything_and_is_as_confined a_running_name_is_refused_and_a_killed
    a_locked_down_sandbox"
  [network]="none_has_only_lo bridge_sandboxes_talk isolated_sandboxes_cannot_reach_each_other
    a_published_loopback_port pasta_reaches_the_hosts_loopback egress"
)

# picked BIN PASS NAME: the exact names of the tests of BIN (NAME in the lane) that hold one of
# its words: for the rootless pass the rootless halves (`::rootless`) and the cgroup tests of
# rootless limits (`rootless_*`), for the root pass the others. A rootless half runs once,
# from the delegated subtree; the cgroup tests of rootless limits run from both, as root runs
# them (the user from root's group, where they are refused with the fix) and as the user.
picked() {
  local bin=$1 pass=$2 name word
  "$bin" --list --format terse 2>/dev/null | sed -n 's/: test$//p' | while read -r name; do
    if [ "$pass" = rootless ]; then [[ $name == *::rootless || $name == rootless_* ]] || continue
    else [[ $name != *::rootless ]] || continue; fi
    [ -n "${tests[$3]}" ] || { echo "$name"; continue; }
    for word in ${tests[$3]}; do
      [[ $name == *"$word"* ]] && { echo "$name"; break; }
    done
  done
}

# Root, from the root group.
while read -r name bin; do
  mapfile -t names < <(picked "$bin" root "$name")
  [ "${#names[@]}" -gt 0 ] || continue
  run "$name" root "$bin" --exact "${names[@]}" --test-threads="$threads"
done <<<"$binaries"

# Rootless, from a subtree delegated as systemd delegates user@UID.service (Delegate=pids
# memory cpu): the controllers enabled at each level above it, the service's directory and its
# cgroup.procs, cgroup.threads and cgroup.subtree_control owned by the user, and the user's
# processes in a scope below it that the user's own manager would have made. The test
# binaries run as the user, who runs `sandbox` itself.
user=sandbox-test
id "$user" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$user"
uid=$(id -u "$user")
gid=$(id -g "$user")
cg=/sys/fs/cgroup
service=$cg/user.slice/user-$uid.slice/user@$uid.service
mkdir -p "$service/app.slice/vm-tests.scope"
for level in "$cg" "$cg/user.slice" "$cg/user.slice/user-$uid.slice"; do
  echo "+cpu +memory +pids" >"$level/cgroup.subtree_control"
done
chown "$uid:$gid" "$service" "$service/cgroup.procs" "$service/cgroup.threads" "$service/cgroup.subtree_control"
chown -R "$uid:$gid" "$service/app.slice"
echo "vm: rootless from ${service#"$cg"}/app.slice/vm-tests.scope, delegated: $(cat "$service/cgroup.controllers")"
# The user runs the test binaries and reads the checkout's files: a folder on the way that
# only its owner may enter (a `mktemp -d` checkout) is opened to others here, in the guest's
# copy-on-write view of it; the host's stays as it was.
open_to_others() {
  local dir=$1
  while [ "$dir" != / ]; do
    if [ $((8#$(stat -c %a "$dir") & 1)) -eq 0 ] && ! chmod o+x "$dir"; then
      echo "vm: the rootless tests run as $user, who cannot enter $dir (mode $(stat -c %a "$dir")), which the guest cannot open: check out below folders others may traverse" >&2
      exit 1
    fi
    dir=$(dirname "$dir")
  done
}
for path in "$(dirname "$(dirname "$lane")")" $(cut -d' ' -f2 <<<"$binaries" | xargs -n1 dirname | sort -u); do
  open_to_others "$path"
done
while read -r name bin; do
  mapfile -t names < <(picked "$bin" rootless "$name")
  [ "${#names[@]}" -gt 0 ] || continue
  # Root moves the shell (migrating from the root group takes root), which then becomes the user.
  run "$name" rootless sh -c 'scope=$0 uid=$1 gid=$2; shift 2; echo $$ >"$scope/cgroup.procs" &&
      exec setpriv --reuid "$uid" --regid "$gid" --clear-groups -- env HOME="$TMPDIR" "$@"' \
    "$service/app.slice/vm-tests.scope" "$uid" "$gid" "$bin" --exact "${names[@]}" --test-threads="$threads"
done <<<"$binaries"

echo "vm: the tests took $(( $(date +%s) - boot_done )) s"
if [ "${#failures[@]}" -gt 0 ]; then
  echo "vm: failed: ${failures[*]}"
fi
echo "vm: $passed passed, $failed failed"
[ "${#failures[@]}" -eq 0 ]
