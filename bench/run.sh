#!/usr/bin/env bash
# bench/run.sh: the launch latency of `sandbox up`, side by side with bubblewrap, crun, runc,
# plain unshare and a floor program that makes only the syscalls, in one session, on one root
# file system, all doing the same work (see docs/performance.md for what each one does).
#
#     bench/run.sh             # as root: prints the table; writes bench/results/ (hyperfine's
#                              # JSON, summary.md), docs/performance.svg and the table in
#                              # docs/performance.md
#     bench/run.sh --profile   # the same, then where case (a)'s time goes: start-up alone,
#                              # perf stat, strace -c -f, `up -v` steps, a cpu-clock profile
#                              # and where the processes sleep (bench/results/profile/)
#
# Tunables (environment): RUNS (timed launches per launcher, default 500), ROUNDS (50: the
# runs are split in interleaved rounds), WARMUP (30), RSS_RUNS (peak RSS samples per
# launcher, 11), BATCH_RUNS (timed runs of each 50-launch batch, 10), LEFTOVER_RUNS (launches
# of case (c) back to back before counting what they left, 1000).
#
# Root is required: crun, runc and cgroup limits need it, and running every launcher as root
# makes each one write the same kind of id map (0..65535 -> 65536 unprivileged host ids:
# 100000.. for the others, the block sandbox leases for each of root's sandboxes). The machine is shared and noisy: compare ratios within one run, never across runs.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=false
case "${1:-}" in
  "") ;;
  --profile) profile=true ;;
  *) echo "usage: bench/run.sh [--profile]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: run it as root (crun, runc and cgroup limits need root)" >&2
  exit 1
fi

RUNS="${RUNS:-500}"
ROUNDS="${ROUNDS:-50}"
WARMUP="${WARMUP:-30}"
RSS_RUNS="${RSS_RUNS:-11}"
BATCH_RUNS="${BATCH_RUNS:-10}"
BATCH=50
PARALLEL=8

# command -> Debian package providing it
declare -A needs=(
  [hyperfine]=hyperfine
  [bwrap]=bubblewrap
  [crun]=crun
  [runc]=runc
  [gnuplot]=gnuplot-nox
  [/usr/bin/time]=time
  [gcc]=gcc
  # the C compiler for the C parts (zstd, xz) of the musl release build
  [musl-gcc]=musl-tools
  [unshare]=util-linux
  [python3]=python3
  [xargs]=findutils
)
if $profile; then
  needs[perf]=linux-perf
  needs[strace]=strace
fi
missing=()
for command in "${!needs[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${needs[$command]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi

OUT="$PWD/bench/results"
MANIFESTS="$PWD/bench/manifests"
ROOT="$OUT/root"
rm -rf "$OUT/json" "$OUT/profile"
mkdir -p "$OUT/json" "$OUT/rss"
log() { printf '\n== %s\n' "$*" >&2; }

log "building sandbox twice (cargo release-static, see .cargo/config.toml, and cargo build --release) and the floor program"
rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
  rustup target add x86_64-unknown-linux-musl
cargo --quiet release-static
# What `cargo install --path .` builds: the host's target (.cargo/config.toml: static against
# glibc on a glibc host), the release profile and build.rs; no target to add, nothing to
# install. Its path from cargo's own messages (the target's folder, CARGO_TARGET_DIR).
installed_built="$(cargo build --quiet --release --locked --bin sandbox --message-format=json-render-diagnostics |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])
')"
# Copies, as an installer or a package writes them. The linker leaves its output in the page
# cache in small pieces, which costs every launch of target/release/sandbox about ten more page
# faults (0.1 ms here) than an installed binary has.
SANDBOX="$OUT/sandbox"
INSTALLED="$OUT/sandbox-installed"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cp "$target_dir/x86_64-unknown-linux-musl/release/sandbox" "$SANDBOX.new" && mv "$SANDBOX.new" "$SANDBOX"
cp "$installed_built" "$INSTALLED.new" && mv "$INSTALLED.new" "$INSTALLED"
gcc -O2 -Wall -Wextra -o "$OUT/floor" bench/floor.c
# The same program with next to no libc start-up (the release build of sandbox is static
# against musl): what the kernel's work alone costs.
musl-gcc -O2 -static -Wall -Wextra -o "$OUT/floor-musl" bench/floor.c

log "preparing the root file system $ROOT"
bench/prepare-root.sh "$ROOT"

# An OCI bundle doing the same work: every namespace sandbox makes, the same id map, the root
# read-only, /usr and /etc bound read-only, a fresh /proc with the paths sandbox masks masked,
# no capabilities, no_new_privs, no seccomp. $1: extra "linux.resources" JSON, or nothing.
oci_bundle() {
  local dir="$OUT/oci/$1" resources="${2:-}"
  mkdir -p "$dir"
  cat >"$dir/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": ["/usr/bin/true"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": { "bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": [] },
    "rlimits": [{ "type": "RLIMIT_CORE", "hard": 0, "soft": 0 }],
    "noNewPrivileges": true
  },
  "root": { "path": "$ROOT", "readonly": true },
  "hostname": "bench",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/usr", "type": "bind", "source": "/usr", "options": ["bind", "ro", "nosuid", "nodev"] },
    { "destination": "/etc", "type": "bind", "source": "/etc", "options": ["bind", "ro", "nosuid", "nodev"] }
  ],
  "linux": {
    ${resources:+\"resources\": $resources,}
    "uidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }],
    "gidMappings": [{ "containerID": 0, "hostID": 100000, "size": 65536 }],
    "namespaces": [
      { "type": "user" }, { "type": "mount" }, { "type": "pid" }, { "type": "network" },
      { "type": "uts" }, { "type": "ipc" }, { "type": "cgroup" }
    ],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
EOF
}
oci_bundle full
oci_bundle limits '{ "memory": { "limit": 536870912 }, "pids": { "limit": 256 } }'

# crun 1.8 refuses a hybrid cgroup layout (v1 controllers and a cgroup2 at
# /sys/fs/cgroup/unified): it runs in a private mount namespace where that cgroup2 is
# unmounted. A private tmpfs takes its place, because crun then treats `unified` as one more
# v1 hierarchy and makes a directory per container there, which would otherwise land in the
# host's /sys/fs/cgroup tmpfs, hidden under the cgroup2 mount, and stay. The wrapper is outside
# what is measured: the timer (hyperfine, time, the batch's xargs) runs inside the namespace.
in_crun_ns() {
  unshare --mount --propagation private -- sh -c \
    'if mountpoint -q /sys/fs/cgroup/unified; then
       umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=1M,mode=755 crun-ns /sys/fs/cgroup/unified
     fi
     exec "$@"' in-crun-ns "$@"
}

# name -> command line (split on spaces: no path here has one), and which namespace it runs in.
names=()
declare -A cmd crun_ns
add() {
  names+=("$1")
  cmd[$1]="$2"
  crun_ns[$1]="${3:-}"
}
bwrap_common="bwrap --unshare-all --unshare-user --uid 0 --gid 0 --cap-drop ALL --new-session --clearenv \
--ro-bind $ROOT / --ro-bind /usr /usr --ro-bind /etc /etc --proc /proc"
add floor "$OUT/floor $ROOT"
add floor-nonet "$OUT/floor --share-net $ROOT"
add floor-musl "$OUT/floor-musl $ROOT"
add sandbox-a "$SANDBOX up --trust $MANIFESTS/full.toml"
add sandbox-b-nonet "$SANDBOX up --trust $MANIFESTS/nonet.toml"
add sandbox-c-limits "$SANDBOX up --trust $MANIFESTS/limits.toml"
add sandbox-d-seccomp-landlock "$SANDBOX up --trust $MANIFESTS/security.toml"
add sandbox-a-rootfs-host "$SANDBOX up --trust $MANIFESTS/host.toml"
add sandbox-a-seccomp "$SANDBOX up --trust $MANIFESTS/seccomp.toml"
add sandbox-installed-a-seccomp "$INSTALLED up --trust $MANIFESTS/seccomp.toml"
add bwrap "$bwrap_common /usr/bin/true"
add bwrap-nonet "${bwrap_common/--unshare-all/--unshare-all --share-net} /usr/bin/true"
add crun "crun run --bundle $OUT/oci/full bench-crun-$$" yes
add crun-limits "crun run --bundle $OUT/oci/limits bench-crun-limits-$$" yes
add runc "runc run --bundle $OUT/oci/full bench-runc-$$"
add runc-limits "runc run --bundle $OUT/oci/limits bench-runc-limits-$$"
add unshare "unshare --user --map-root-user --mount --pid --fork --net --uts --ipc --cgroup /usr/bin/true"
# Rootless, as most developers run it: both as nobody through setpriv (whose own start, about
# 1.3 ms here, is in both rows), each with its default rootless id map (nobody as 0), and the
# same root: a tmpfs with /usr and /etc bound read-only and the merged-/usr links.
as_nobody="setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env"
add sandbox-rootless "$as_nobody $SANDBOX up --trust $MANIFESTS/host.toml"
add bwrap-rootless "$as_nobody bwrap --unshare-all --uid 0 --gid 0 --cap-drop ALL --new-session --clearenv \
--ro-bind /usr /usr --ro-bind /etc /etc --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib \
--symlink usr/lib64 /lib64 --proc /proc /usr/bin/true"

run_named() { # name [prefix...]: run a launcher once in its namespace, output kept
  local name=$1
  shift
  if [ -n "${crun_ns[$name]}" ]; then
    in_crun_ns "$@" ${cmd[$name]}
  else
    "$@" ${cmd[$name]}
  fi
}

log "checking that each launcher works"
declare -A failed
: >"$OUT/failures.txt"
for name in "${names[@]}"; do
  if ! error=$(run_named "$name" 2>&1 >/dev/null); then
    failed[$name]=1
    printf '%s\t%s\n' "$name" "$(printf '%s' "$error" | tr '\n' ' ' | cut -c1-300)" >>"$OUT/failures.txt"
    echo "  $name FAILED: $error" >&2
  fi
done

# Whether the limits and the security of cases (c), (d) and (a) with seccomp were in force, from outside the
# sandbox (cgroup membership of the command) and from inside (what the kernel refuses).
log "checking what cases (c) and (d) enforce"
{
  "$SANDBOX" up --trust "$MANIFESTS/limits.toml" -- /usr/bin/sleep 2 &
  launcher=$!
  sleep 0.5
  # The sandbox's init, forked by the launcher; the command inherits its groups. In force
  # means: the group's limits are the manifest's (512M, 256), not the caller's group.
  init=$(pgrep -P "$launcher" | head -1 || true)
  groups=$(grep -E '^[0-9]+:(memory|pids):|^0::' "/proc/${init:-0}/cgroup" 2>/dev/null | tr '\n' ' ' || true)
  memory=$(cat "/sys/fs/cgroup/memory$(printf '%s' "$groups" | grep -oE '[0-9]+:memory:[^ ]*' | cut -d: -f3)/memory.limit_in_bytes" 2>/dev/null || true)
  pids=$(cat "/sys/fs/cgroup/pids$(printf '%s' "$groups" | grep -oE '[0-9]+:pids:[^ ]*' | cut -d: -f3)/pids.max" 2>/dev/null || true)
  v2=$(printf '%s' "$groups" | grep -oE '(^| )0::[^ ]*' | cut -d: -f3 || true)
  if [ -n "$v2" ] && [ -f "/sys/fs/cgroup/unified$v2/memory.max" ]; then
    memory=$(cat "/sys/fs/cgroup/unified$v2/memory.max")
    pids=$(cat "/sys/fs/cgroup/unified$v2/pids.max")
  fi
  wait "$launcher" || true
  if [ "$memory" = 536870912 ] && [ "$pids" = 256 ]; then
    echo "limits.toml: in force (memory limit $memory bytes, pids.max $pids; cgroups: ${groups% })"
  else
    echo "limits.toml: NOT in force (the command's memory limit ${memory:-?}, pids.max ${pids:-?}; cgroups: ${groups% })"
  fi
  if "$SANDBOX" up --trust "$MANIFESTS/security.toml" -- /usr/bin/cat /proc/self/status >/dev/null 2>&1; then
    echo "security.toml: landlock NOT in force (/proc, outside the ruleset, was readable)"
  else
    echo "security.toml: landlock in force (/proc, outside the ruleset, was refused)"
  fi
  for manifest in security seccomp; do
    if "$SANDBOX" up --trust "$MANIFESTS/$manifest.toml" -- /usr/bin/unshare --user /usr/bin/true >/dev/null 2>&1; then
      echo "$manifest.toml: seccomp NOT in force (a new user namespace was allowed)"
    else
      echo "$manifest.toml: seccomp in force (a new user namespace was refused)"
    fi
  done
} >"$OUT/enforced.txt"
cat "$OUT/enforced.txt" >&2

ok_names() { # [filter]: names that work, in crun's namespace (yes) or not ("")
  for name in "${names[@]}"; do
    [ -z "${failed[$name]:-}" ] && [ "${crun_ns[$name]}" = "$1" ] && echo "$name"
  done
}

# hyperfine over named launchers, in crun's namespace when the first one needs it.
hyperfine_named() { # json warmup runs names...
  local json=$1 warmup=$2 runs=$3 args=() runner=() name
  shift 3
  [ "$#" -gt 0 ] || return 0
  for name in "$@"; do args+=(--command-name "$name" "${cmd[$name]}"); done
  [ -z "${crun_ns[$1]:-}" ] || runner=(in_crun_ns)
  "${runner[@]}" hyperfine -N --style basic --warmup "$warmup" --runs "$runs" \
    --export-json "$json" "${args[@]}"
}

# The load on a shared machine drifts over minutes: every launcher is measured in each of
# ROUNDS rounds, so a busy spell hits them all alike; the summary merges the rounds' runs.
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "kernel: $(uname -srmv)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores, hypervisor: $(lscpu | sed -n 's/^Hypervisor vendor: *//p')"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "sandbox: $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "bwrap: $(bwrap --version)"
  echo "crun: $(crun --version | head -1)"
  echo "runc: $(runc --version | head -1)"
  echo "unshare: $(unshare --version)"
  echo "hyperfine: $(hyperfine --version)"
  echo "latency: $ROUNDS rounds of $((RUNS / ROUNDS)) runs each (warm-up: $WARMUP runs in the first round, 2 in the others); RSS: median of $RSS_RUNS; 50-launch batches: $BATCH_RUNS runs"
  echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
  # With no parent group there, each launch of (c) makes and removes it (about 0.35 ms here;
  # docs/manifest.md, "The end"); a parent left by another run, or made by an admin, stays.
  present=()
  for base in $("$SANDBOX" plan "$MANIFESTS/limits.toml" | sed -n 's/.*made by the launcher in //p' | tr ',' ' '); do
    [ -d "$base/sandbox" ] && present+=("$base/sandbox")
  done
  echo "cgroup parents of (c) there at the start: ${present[*]:-none (each launch makes and removes them)}"
} >"$OUT/machine.txt"

log "launch latency: $ROUNDS rounds of $((RUNS / ROUNDS)) runs"
mapfile -t host_names < <(ok_names "")
mapfile -t ns_names < <(ok_names yes)
for round in $(seq "$ROUNDS"); do
  warmup=$((round == 1 ? WARMUP : 2))
  hyperfine_named "$OUT/json/latency-$round.json" "$warmup" "$((RUNS / ROUNDS))" "${host_names[@]}"
  hyperfine_named "$OUT/json/latency-crun-$round.json" "$warmup" "$((RUNS / ROUNDS))" "${ns_names[@]}"
done

log "peak RSS: median of $RSS_RUNS runs of /usr/bin/time -f %M"
rm -f "$OUT"/rss/*
for name in "${host_names[@]}" "${ns_names[@]}"; do
  # time(1) reports the tree's largest process, which through setpriv may be setpriv.
  case $name in *-rootless) continue ;; esac
  for _ in $(seq "$RSS_RUNS"); do
    run_named "$name" /usr/bin/time -a -o "$OUT/rss/$name" -f %M >/dev/null
  done
done

log "$BATCH launches back to back and $PARALLEL at a time, $BATCH_RUNS runs each"
for name in sandbox-a bwrap crun; do
  [ -z "${failed[$name]:-}" ] || continue
  for jobs in 1 "$PARALLEL"; do
    line="seq $BATCH | xargs -P$jobs -I{} ${cmd[$name]}"
    # crun needs a container id per concurrent launch, and so does sandbox a name (full.toml
    # gives one, and a given name runs once at a time).
    [ -z "${crun_ns[$name]}" ] || line+="-{}"
    [ "$name" != sandbox-a ] || line+=" --name bench-a-{}"
    batch="$name-x$BATCH-P$jobs"
    cmd[$batch]="sh -c '$line'"
    crun_ns[$batch]="${crun_ns[$name]}"
  done
done
# Rounds of 2 runs (hyperfine's least), interleaved as above. A launcher whose batch fails (a
# launch in it exited non-zero: crun 1.8 did once in a run, 8 at a time) keeps the rounds it
# finished and runs no more; the summary says so.
declare -A batch_failed
for round in $(seq $(((BATCH_RUNS + 1) / 2))); do
  for name in sandbox-a bwrap crun; do
    [ -z "${failed[$name]:-}${batch_failed[$name]:-}" ] || continue
    json="$OUT/json/batch-$name-$round.json"
    if ! hyperfine_named "$json" 0 2 "$name-x$BATCH-P1" "$name-x$BATCH-P$PARALLEL"; then
      batch_failed[$name]=1
      rm -f "$json"
      printf '%s\t%s\n' "$name-x$BATCH" "a launch failed in round $round of the batches; \
the rounds before it are kept" >>"$OUT/failures.txt"
      echo "  $name: a launch of its 50-launch batch failed in round $round" >&2
    fi
  done
done

# Case (c) has every kind of thing a launch makes and must remove: namespaces, mounts, its own
# cgroup in each controller, a state record. Counted on the host before and after; the
# launcher's peak RSS of the first and the last launch tells whether its memory grows.
export LEFTOVER_RUNS="${LEFTOVER_RUNS:-1000}"
log "$LEFTOVER_RUNS launches of case (c) back to back: what they leave behind"
snapshot() {
  echo "cgroups $(find /sys/fs/cgroup -type d -name 'bench-limits-*' 2>/dev/null | wc -l)"
  echo "host-mounts $(wc -l </proc/self/mountinfo)"
  echo "netns-with-processes $(find /proc/[0-9]*/ns/net -maxdepth 0 -exec readlink {} + 2>/dev/null | sort -u | wc -l)"
  echo "named-netns $(ip netns list 2>/dev/null | wc -l)"
  echo "veth $(ip -o link show type veth 2>/dev/null | wc -l)"
  echo "state-records $(find /run/sandbox -maxdepth 1 -type f 2>/dev/null | wc -l)"
}
snapshot >"$OUT/leftovers-before.txt"
/usr/bin/time -o "$OUT/leftovers-rss-first.txt" -f %M ${cmd[sandbox-c-limits]} >/dev/null
for _ in $(seq $((LEFTOVER_RUNS - 2))); do ${cmd[sandbox-c-limits]} >/dev/null; done
/usr/bin/time -o "$OUT/leftovers-rss-last.txt" -f %M ${cmd[sandbox-c-limits]} >/dev/null
snapshot >"$OUT/leftovers-after.txt"

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

declare -p cmd | sed 's/^declare -A cmd=//' >"$OUT/commands.txt"
python3 bench/summarize.py "$OUT"
gnuplot -e "datafile='$OUT/latency.dat'; floor='$(cat "$OUT/floor.txt")'; output='docs/performance.svg'" \
  bench/latency.gp
echo "wrote $OUT/summary.md, docs/performance.svg and the table in docs/performance.md" >&2

$profile || exit 0

# Where case (a)'s time goes. Hardware counters (cycles, instructions) are not offered on
# this VM: perf stat reports them "not supported"; software events and cpu-clock sampling work.
P="$OUT/profile"
mkdir -p "$P"
case_a="$SANDBOX up --trust $MANIFESTS/full.toml"
log "profile: start-up and planning alone (no sandbox made)"
cmd[true]=/usr/bin/true
cmd[version]="$SANDBOX --version"
cmd[check]="$SANDBOX check $MANIFESTS/full.toml"
cmd[dry-run]="$case_a --dry-run"
for round in $(seq 10); do
  hyperfine_named "$P/startup-$round.json" 3 30 true version check dry-run
done
for args in "--version" "check $MANIFESTS/full.toml" "up --trust --dry-run $MANIFESTS/full.toml"; do
  for _ in $(seq "$RSS_RUNS"); do
    /usr/bin/time -a -o "$P/rss-$(echo "$args" | cut -d' ' -f1)" -f %M "$SANDBOX" $args >/dev/null
  done
done
log "profile: perf stat, strace -c -f, up -v, perf record (case a)"
for name in sandbox-a bwrap floor; do
  perf stat -r 200 -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions \
    -o "$P/perf-stat-$name.txt" -- ${cmd[$name]}
done
# -w: wall-clock time in each system call (time blocked counts), summed over 100 launches.
strace -c -f -w -o "$P/strace-c-wall-a.txt" sh -c "for i in \$(seq 100); do $case_a; done"
strace -c -f -o "$P/strace-c-a.txt" sh -c "for i in \$(seq 100); do $case_a; done"
strace -f -tt -T -o "$P/strace-a.txt" $case_a
for _ in $(seq 200); do $case_a -v 2>&1 >/dev/null; done >"$P/up-v-a.txt"
for _ in $(seq 100); do ${cmd[sandbox-c-limits]} -v 2>&1 >/dev/null; done >"$P/up-v-c.txt"
# Off-CPU time: every context switch on the machine (-a: the switch back in happens in other
# tasks' context) with the stack the launcher's processes slept in.
perf record -q -a -e sched:sched_switch -g -o "$P/sched-a.data" -- \
  sh -c "for i in \$(seq 100); do $case_a; done" 2>/dev/null
perf script -i "$P/sched-a.data" >"$P/sched-a.txt" 2>/dev/null
perf record -q -a -e sched:sched_switch -g -o "$P/sched-c.data" -- \
  sh -c "for i in \$(seq 50); do ${cmd[sandbox-c-limits]}; done" 2>/dev/null
perf script -i "$P/sched-c.data" >"$P/sched-c.txt" 2>/dev/null
perf record -q -e cpu-clock -F 20000 -g -o "$P/perf-a.data" -- \
  sh -c "for i in \$(seq 300); do $case_a; done" 2>/dev/null
perf report -i "$P/perf-a.data" --stdio --no-children --sort comm,dso -g none \
  >"$P/perf-report-comm-a.txt" 2>/dev/null
perf report -i "$P/perf-a.data" --stdio --children --sort sym -g none --percent-limit 0.3 \
  >"$P/perf-report-children-a.txt" 2>/dev/null
python3 bench/summarize.py --profile "$P"
