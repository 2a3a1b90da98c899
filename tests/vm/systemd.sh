#!/usr/bin/env bash
# Inside a Debian 12 VM with systemd as init (tests/vm/run.sh systemd): rootless limits the way
# users run them. A login shell (su -l, through pam_systemd) sits in its session's scope, which
# systemd does not delegate: `sandbox up` with limits is refused with the exact systemd-run
# command, and that command, run as given, puts the sandbox in a transient scope of the user's
# own user@UID.service whose cgroup is delegated, where the kernel enforces the limits.
# Usage: systemd.sh DIR, DIR holding the launcher run.sh built (the image's own unit runs this
# with its output on the serial console, then powers the VM off).
set -uo pipefail
payload=$1
passed=0
failed=0
check() { # check WHAT CONDITION-EXIT-STATUS
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

echo "vm: $(uname -r), $(systemctl --version | head -n1), up for $(cut -d' ' -f1 /proc/uptime) s, system state: $(systemctl is-system-running)"
echo "vm: cgroup $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
# The launcher installed as a user would.
install -m 0755 "$payload/sandbox" /usr/local/bin/sandbox

user=sandbox-test
uid=$(id -u "$user")
project=$(mktemp -d /tmp/vm-systemd-XXXXXX) # /tmp: the image's ext4 root
cat >"$project/sandbox.toml" <<'EOF'
[rootfs]
host = true

[[mount]]
type = "sysfs"
target = "/sys"

[cgroup]
memory = "64M"
memory_swap = "0"
pids = 32
EOF
# The same without a cgroup namespace: the sandbox's own /proc/self/cgroup names its group.
sed 's/^\[cgroup\]/[namespaces]\ncgroup = false\n\n&/' "$project/sandbox.toml" >"$project/placement.toml"
chown -R "$user:" "$project"
chmod 0755 "$project"

# A login shell of the user: pam_systemd registers a session with logind, which starts the
# user's manager, user@UID.service (Delegate=pids memory cpu), and puts the shell in the
# session's scope.
as_login() { su -l -s /bin/bash "$user" -c "cd $project && $1" 2>&1; }

started=$(date +%s)
out=$(as_login 'cat /proc/self/cgroup')
echo "login shell: $out ($(( $(date +%s) - started )) s to log in)"
[[ $out == *"/user.slice/user-$uid.slice/session-"*".scope"* ]]
check "the login shell is in its session's scope" $?
systemctl is-active --quiet "user@$uid.service"
check "user@$uid.service runs" $?
service=/sys/fs/cgroup/user.slice/user-$uid.slice/user@$uid.service
echo "user@$uid.service delegates: $(cat "$service/cgroup.controllers"), owned by $(stat -c %U "$service")"

doctor=$(as_login 'sandbox doctor sandbox.toml')
echo "$doctor" | grep -A1 ' cgroups '
[[ $doctor == *"systemd-run --user --scope -p Delegate=yes"* ]]
check "doctor gives the systemd-run fix" $?

refused=$(as_login 'sandbox up --trust sandbox.toml -- true; echo "status $?"')
echo "$refused"
[[ $refused == *"status 125"* ]]
check "up with limits from the login shell is refused (125)" $?
command=$(grep -o 'systemd-run --user --scope -p Delegate=yes -- sandbox up --trust sandbox.toml -- true' <<<"$refused" | head -n1)
[ -n "$command" ]
check "the refusal gives the exact command: $command" $?

# The command as given works (with a command that shows where it ran and what it got).
ran=$(as_login "${command% -- true} -- /bin/sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max'; echo \"status \$?\"")
echo "$ran"
[[ $ran == *"0::/"*"67108864"*"32"*"status 0"* ]]
check "the systemd-run command runs the sandbox with its limits" $?
placed=$(as_login "${command% --trust sandbox.toml -- true} --trust placement.toml -- cat /proc/self/cgroup")
echo "$placed"
[[ $placed == *"0::/user.slice/user-$uid.slice/user@$uid.service/"* ]]
check "the sandbox's group is in user@$uid.service" $?
oom=$(as_login "${command% -- true} -- dd if=/dev/zero of=/dev/null bs=100M count=1; echo \"status \$?\"")
echo "$oom"
[[ $oom == *"killed: out of memory (limit 64M)"*"status 137"* ]]
check "the kernel enforces the memory limit (out-of-memory kill, 137)" $?
left=$(find "$service" -mindepth 1 -type d -name 'sandbox*' 2>/dev/null)
[ -z "$left" ]
check "no group is left under user@$uid.service ($left)" $?

echo "vm: systemd checks took $(( $(date +%s) - started )) s"
echo "vm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
