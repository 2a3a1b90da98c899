//! `[cgroup]` for real: limits enforced by the kernel and seen from inside, out-of-memory kills
//! reported, `--stats` from the group's own accounting, and no group left behind, not even by
//! a launcher killed with SIGKILL. The host's own layout is used (cgroup v1 or v2); the v2
//! backend also runs for real in a private mount namespace where the host's cgroup2 hierarchy
//! is mounted on /sys/fs/cgroup alone.
//!
//! Each test uses its own `parent`, so parallel runs never share a group, and checks at the
//! end that no directory of that name is left under any controller.

mod live;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use live::{Project, Who, stderr, stdout};
use sandbox::plan::CgroupVersion;

/// A parent no other test (or run of the tests) uses.
fn unique_parent() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "sandbox-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every directory named `name` in every mounted cgroup hierarchy.
fn groups_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if entry.file_name() == name {
                    found.push(entry.path());
                }
                pending.push(entry.path());
            }
        }
    }
    found
}

/// A project whose manifest has `[cgroup]` with `cgroup` and a unique parent, plus `extra`.
struct Limited {
    project: Project,
    parent: String,
}

impl Limited {
    fn new(cgroup: &str, extra: &str) -> Limited {
        let parent = unique_parent();
        let project = Project::new(
            Who::Root,
            &format!("[rootfs]\nhost = true\n{extra}\n[cgroup]\nparent = \"{parent}\"\n{cgroup}\n"),
        );
        Limited { project, parent }
    }

    fn up(&self, flags: &[&str], command: &[&str]) -> Output {
        let manifest = self.project.manifest();
        let mut args = vec!["up", "--trust"];
        args.extend_from_slice(flags);
        args.extend([manifest.to_str().unwrap(), "--"]);
        args.extend_from_slice(command);
        self.project.command(&args).output().expect("run sandbox")
    }

    /// `--stats --json`: the command's output and the accounting.
    fn up_stats(&self, command: &[&str]) -> (Output, serde_json::Value) {
        let output = self.up(&["--stats", "--json"], command);
        let err = stderr(&output);
        let line = err
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no stats in:\n{err}"));
        (output, serde_json::from_str(line).expect("stats JSON"))
    }

    /// The group of a run in progress: `<parent>/<name>-<pid>-<start>` directories.
    fn running_groups(&self) -> Vec<PathBuf> {
        groups_named(&self.parent)
            .iter()
            .flat_map(|parent| std::fs::read_dir(parent).unwrap().flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    }

    fn assert_clean(&self) {
        let left = groups_named(&self.parent);
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }
}

impl Drop for Limited {
    /// A failed assertion must not leave groups for the next engineer: remove ours, deepest
    /// first (the test's own parent only).
    fn drop(&mut self) {
        for parent in groups_named(&self.parent) {
            for group in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(group.path());
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

/// The host's backend, as `sandbox` would pick it for root.
fn host_version() -> CgroupVersion {
    sandbox::cgroup::probe()
        .version
        .expect("these tests need a mounted cgroup hierarchy")
}

fn root_only() -> bool {
    live::available(Who::Root)
}

fn status(output: &Output) -> Option<i32> {
    output.status.code()
}

fn explain(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    )
}

#[test]
fn allocating_past_the_memory_limit_is_an_oom_kill_reported_with_137() {
    if !root_only() {
        return;
    }
    let box64 = Limited::new("memory = \"64M\"\nmemory_swap = \"0\"", "");
    // dd allocates its block and fills it.
    let output = box64.up(
        &[],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
    );
    assert_eq!(status(&output), Some(137), "{}", explain(&output));
    assert!(
        stderr(&output).contains("sandbox: killed: out of memory (limit 64M)"),
        "{}",
        explain(&output)
    );
    box64.assert_clean();
}

#[test]
fn allocating_under_the_memory_limit_succeeds() {
    if !root_only() {
        return;
    }
    let box64 = Limited::new("memory = \"64M\"\nmemory_swap = \"0\"", "");
    let (output, stats) =
        box64.up_stats(&["dd", "if=/dev/zero", "of=/dev/null", "bs=32M", "count=1"]);
    assert_eq!(status(&output), Some(0), "{}", explain(&output));
    assert!(
        !stderr(&output).contains("out of memory"),
        "{}",
        explain(&output)
    );
    assert_eq!(stats["oom_kills"], 0);
    let peak = stats["peak_memory_bytes"].as_u64().expect("peak memory");
    assert!(
        (32 << 20..=64 << 20).contains(&peak),
        "peak {peak} should hold dd's 32M block and stay under the limit"
    );
    box64.assert_clean();
}

#[test]
fn a_fork_bomb_stays_within_pids_and_the_sandbox_ends_cleanly() {
    if !root_only() {
        return;
    }
    let marker = unique_parent();
    let bomb = Limited::new(
        "pids = 32",
        "[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n",
    );
    let pids = match host_version() {
        CgroupVersion::V1 => "/sys/fs/cgroup/pids",
        CgroupVersion::V2 => "/sys/fs/cgroup",
    };
    // Only shell builtins after the bomb starts: a saturated group cannot fork a `cat`.
    let script = format!(
        "sleep 2 & s=$!; (b() {{ b & b; }}; b) 2>/dev/null & wait $s; \
         read peak < {pids}/pids.peak; read event count < {pids}/pids.events; \
         echo \"$peak $count\" # {marker}"
    );
    let (output, stats) = bomb.up_stats(&["/bin/sh", "-c", &script]);
    assert_eq!(status(&output), Some(0), "{}", explain(&output));
    let out = stdout(&output);
    let fields: Vec<u64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    let [peak, refused] = fields[..] else {
        panic!("unexpected output {out:?}");
    };
    assert!(peak <= 32, "the group reached {peak} tasks");
    assert!(refused > 0, "the bomb never hit the limit: {out}");
    assert!(stats["task_peak"].as_u64().unwrap() <= 32, "{stats}");
    // The end of the sandbox took the whole bomb with it.
    assert!(live::processes_with(&marker).is_empty());
    bomb.assert_clean();
}

#[test]
fn a_quarter_cpu_gets_a_quarter_of_a_core() {
    if !root_only() {
        return;
    }
    let quarter = Limited::new("cpus = 0.25", "");
    let started = Instant::now();
    let (output, stats) = quarter.up_stats(&["timeout", "2", "sh", "-c", "while :; do :; done"]);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(status(&output), Some(124), "{}", explain(&output));
    let cpu = stats["cpu_usec"].as_u64().expect("cpu time") as f64 / 1e6;
    // 0.25 of 2 s is 0.5 s; the bound is loose (this is no benchmark), but far below the
    // 2 s a busy loop takes without the quota.
    assert!(cpu > 0.1, "the loop hardly ran: {cpu} s in {wall} s");
    assert!(cpu < 0.25 * wall + 0.25, "{cpu} s of CPU in {wall} s");
    eprintln!("cpus = 0.25: {cpu:.3} s of CPU over {wall:.3} s");
    quarter.assert_clean();
}

#[test]
fn inside_the_group_is_the_root_and_the_limits_are_readable() {
    if !root_only() {
        return;
    }
    let limits = "memory = \"64M\"\nmemory_swap = \"16M\"\ncpus = 0.5\ncpu_weight = 100\npids = 40";
    let view = Limited::new(limits, "[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n");
    let expected: &[(&str, &str)] = match host_version() {
        CgroupVersion::V1 => &[
            ("memory/memory.limit_in_bytes", "67108864"),
            ("memory/memory.memsw.limit_in_bytes", "83886080"),
            ("cpu/cpu.cfs_quota_us", "50000"),
            ("cpu/cpu.cfs_period_us", "100000"),
            ("cpu/cpu.shares", "1024"),
            ("pids/pids.max", "40"),
        ],
        CgroupVersion::V2 => &[
            ("memory.max", "67108864"),
            ("memory.swap.max", "16777216"),
            ("cpu.max", "50000 100000"),
            ("cpu.weight", "100"),
            ("pids.max", "40"),
        ],
    };
    let files: Vec<String> = expected
        .iter()
        .map(|(f, _)| format!("/sys/fs/cgroup/{f}"))
        .collect();
    let out = view.project.sh(&format!(
        "cat /proc/self/cgroup; echo; cat {}",
        files.join(" ")
    ));
    let (cgroups, values) = out.split_once("\n\n").expect("two parts");
    for line in cgroups.lines() {
        assert!(
            line.ends_with(":/"),
            "not the namespace's root: {line}\n{cgroups}"
        );
    }
    let values: Vec<&str> = values.lines().collect();
    let wanted: Vec<&str> = expected.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, wanted, "{files:?}");
    // Read-only: not even the sandbox's root may raise its own limit.
    let raise = view
        .project
        .up(&["/bin/sh", "-c", &format!("echo max > {}", files[0])]);
    assert_ne!(status(&raise), Some(0), "{}", explain(&raise));
    view.assert_clean();
}

/// Whether this kernel weighs the I/O of groups: BFQ (built in or loaded, it is listed among
/// every block device's schedulers), or on v2 also io.cost (its root-only io.cost.model). The
/// test's own reading, not `sandbox::cgroup::kernel_weighs_io`, whose verdict it checks.
fn kernel_weighs_io() -> bool {
    let bfq = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .any(|device| {
            std::fs::read_to_string(device.path().join("queue/scheduler")).is_ok_and(|schedulers| {
                schedulers
                    .split_whitespace()
                    .any(|s| s.trim_matches(['[', ']']) == "bfq")
            })
        });
    bfq || (host_version() == CgroupVersion::V2
        && std::path::Path::new("/sys/fs/cgroup/io.cost.model").exists())
}

#[test]
fn io_weight_is_set_where_the_kernel_weighs_io_and_refused_with_the_fix_where_not() {
    if !root_only() {
        return;
    }
    let view = Limited::new(
        "io_weight = 7475",
        "[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n",
    );
    let file = match host_version() {
        CgroupVersion::V1 => "/sys/fs/cgroup/blkio/blkio.bfq.weight",
        CgroupVersion::V2 => "/sys/fs/cgroup/io.weight /sys/fs/cgroup/io.bfq.weight",
    };
    // One of v2's two files may be missing (io.bfq.weight without BFQ): the sandbox ran if
    // the other was read.
    let output = view.up(
        &[],
        &["/bin/sh", "-c", &format!("cat {file} 2>/dev/null; true")],
    );
    if kernel_weighs_io() {
        assert_eq!(status(&output), Some(0), "{}", explain(&output));
        // v1's blkio.bfq.weight and v2's io.bfq.weight have BFQ's scale (1..1000), v2's
        // io.weight (io.cost) the manifest's.
        let wanted: &[&str] = match host_version() {
            CgroupVersion::V1 => &["750"],
            CgroupVersion::V2 => &["default 7475", "default 750"],
        };
        let shown = stdout(&output);
        assert!(
            shown.lines().any(|line| wanted.contains(&line)),
            "{}",
            explain(&output)
        );
    } else {
        // Refused before anything starts, at the key, with the fix.
        assert_eq!(status(&output), Some(125), "{}", explain(&output));
        let err = stderr(&output);
        assert!(err.contains("sandbox::cgroup::unavailable"), "{err}");
        assert!(err.contains("modprobe bfq"), "{err}");
        assert!(err.contains("io_weight = 7475"), "not pointed at: {err}");
        // `required = false`: the sandbox runs, the weight is said not to be applied.
        let optional = Limited::new("required = false\nio_weight = 7475\nmemory = \"64M\"", "");
        let output = optional.up(&[], &["/bin/sh", "-c", "echo ran"]);
        assert_eq!(stdout(&output), "ran\n", "{}", explain(&output));
        assert!(
            stderr(&output).contains("`io_weight` is not applied"),
            "{}",
            explain(&output)
        );
        optional.assert_clean();
    }
    view.assert_clean();
}

#[test]
fn without_a_pid_namespace_what_is_left_in_the_group_is_killed() {
    if !root_only() {
        return;
    }
    let marker = unique_parent();
    let leaky = Limited::new("pids = 16", "[namespaces]\npid = false\n");
    // The command exits at once, leaving a shell behind that no pid namespace takes along.
    let output = leaky.up(
        &[],
        &[
            "/bin/sh",
            "-c",
            &format!("/bin/sh -c 'sleep 300 # {marker}' & echo started"),
        ],
    );
    assert_eq!(status(&output), Some(0), "{}", explain(&output));
    assert!(
        live::processes_with(&marker).is_empty(),
        "the left-over process survived the sandbox"
    );
    leaky.assert_clean();
}

#[test]
fn a_group_left_by_a_killed_launcher_is_removed_by_the_next_run() {
    if !root_only() {
        return;
    }
    let marker = unique_parent();
    let victim = Limited::new("pids = 16", "");
    let manifest = victim.project.manifest();
    let mut launcher = victim
        .project
        .command(&[
            "up",
            "--trust",
            manifest.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            &format!("sleep 300 # {marker}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sandbox");
    let deadline = Instant::now() + Duration::from_secs(20);
    while (victim.running_groups().is_empty() || live::processes_with(&marker).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stale = victim.running_groups();
    assert!(!stale.is_empty(), "the sandbox never got its group");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    launcher.wait().unwrap();
    // The sandbox dies with its launcher (parent-death signal, then the pid namespace)...
    let deadline = Instant::now() + Duration::from_secs(20);
    while !live::processes_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        live::processes_with(&marker).is_empty(),
        "the sandbox outlived its launcher"
    );
    // ...but nobody removed its group.
    assert!(stale.iter().all(|g| g.exists()), "{stale:?}");

    let next = victim.up(&[], &["true"]);
    assert_eq!(status(&next), Some(0), "{}", explain(&next));
    assert!(stale.iter().all(|g| !g.exists()), "still there: {stale:?}");
    // The killed run made the parent, so the next run, which emptied it, removed it too.
    victim.assert_clean();
}

/// Two runs share a parent: the first makes it and ends while the second's group is in it.
#[test]
fn the_last_of_overlapping_runs_removes_the_parent_the_first_made() {
    if !root_only() {
        return;
    }
    let shared = Limited::new("pids = 16", "");
    let manifest = shared.project.manifest();
    let start = |name: &str| {
        let mut run = shared
            .project
            .command(&[
                "up",
                "--trust",
                "--name",
                name,
                manifest.to_str().unwrap(),
                "--",
                "/bin/sh",
                "-c",
                "echo ready; cat > /dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sandbox");
        let mut ready = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(run.stdout.as_mut().unwrap()),
            &mut ready,
        )
        .unwrap();
        assert_eq!(ready, "ready\n");
        run
    };
    let end = |mut run: std::process::Child| {
        drop(run.stdin.take());
        assert!(run.wait().unwrap().success());
    };
    let first = start(&format!("{}-first", shared.parent));
    let second = start(&format!("{}-second", shared.parent));
    end(first);
    assert_eq!(shared.running_groups().len(), 1, "the second run's group");
    end(second);
    shared.assert_clean();
}

/// Rootless limits need a subtree delegated to the user (cgroup v2, as systemd delegates
/// user@UID.service): there the kernel enforces them, as for root; elsewhere (cgroup v1, or the
/// harness running the user from root's own group) they are refused before anything starts,
/// with the fix.
#[test]
fn rootless_limits_hold_in_a_delegated_subtree_and_are_refused_with_the_fix_elsewhere() {
    if !live::available(Who::Rootless) {
        return;
    }
    let parent = unique_parent();
    let p = Project::new(
        Who::Rootless,
        &format!(
            "[rootfs]\nhost = true\n[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n\
             [cgroup]\nparent = \"{parent}\"\nmemory = \"64M\"\nmemory_swap = \"0\"\npids = 24\ncpus = 0.5\n"
        ),
    );
    let delegated = live::delegated_to_rootless();
    if !["memory", "pids", "cpu"]
        .iter()
        .all(|c| delegated.iter().any(|d| d == c))
    {
        let output = p.up(&["true"]);
        assert_eq!(status(&output), Some(125), "{}", explain(&output));
        let err = stderr(&output);
        assert!(err.contains("sandbox::cgroup::unavailable"), "{err}");
        assert!(err.contains("needs the memory controller"), "{err}");
        assert!(err.contains("help:"), "{err}");
        assert!(groups_named(&parent).is_empty());
        return;
    }
    // The limits are the group's, read back from inside.
    let out = p.sh("cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max");
    assert_eq!(out, "67108864\n24\n50000 100000\n");
    // ...and the kernel holds them: past the memory limit is an out-of-memory kill.
    let output = p.up(&["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]);
    assert_eq!(status(&output), Some(137), "{}", explain(&output));
    assert!(
        stderr(&output).contains("sandbox: killed: out of memory (limit 64M)"),
        "{}",
        explain(&output)
    );
    assert!(groups_named(&parent).is_empty(), "cgroups left behind");
}

/// Run `sandbox` as root in a private mount namespace whose /sys/fs/cgroup is the host's
/// cgroup2 hierarchy alone, so the launcher sees a pure v2 host. On a hybrid host that
/// hierarchy has no controllers, which still leaves CLONE_INTO_CGROUP, cpu.stat, cgroup.kill
/// and cgroup.events to test for real.
fn on_pure_v2(project: &Project, args: &[&str]) -> Output {
    let script = "mount --make-rprivate / && umount -l /sys/fs/cgroup && \
                  mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"";
    Command::new("unshare")
        .args(["-m", "/bin/sh", "-c", script])
        .arg(live::binary())
        .args(args)
        .current_dir(project.path())
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

/// The cgroup2 hierarchy's directory on this host, where a group made through
/// [`on_pure_v2`] shows up.
fn unified_root() -> PathBuf {
    let layout = sandbox::cgroup::detect(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        &std::fs::read_to_string("/proc/self/cgroup").unwrap(),
    );
    layout.v2.expect("a cgroup2 mount").mount_point
}

#[test]
fn the_v2_backend_for_real() {
    if !root_only() {
        return;
    }
    let parent = unique_parent();
    let manifest_with = |extra: &str| {
        format!(
            "[rootfs]\nhost = true\n{extra}\n[[mount]]\ntype = \"sysfs\"\ntarget = \"/sys\"\n[cgroup]\nparent = \"{parent}\"\n"
        )
    };
    let p = Project::new(Who::Root, &manifest_with(""));
    let manifest = p.manifest();
    let up = |command: &str| {
        on_pure_v2(
            &p,
            &[
                "up",
                "--trust",
                "--stats",
                "--json",
                manifest.to_str().unwrap(),
                "--",
                "/bin/sh",
                "-c",
                command,
            ],
        )
    };
    let output = up(
        "cat /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.procs | wc -l; \
         i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done",
    );
    assert_eq!(status(&output), Some(0), "{}", explain(&output));
    let out = stdout(&output);
    assert!(out.contains("0::/\n"), "not the namespace's root:\n{out}");
    // The view shows the group's own members only: init, the shell, its `cat` and `wc`.
    let members: u32 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!((2..=4).contains(&members), "{out}");
    let err = stderr(&output);
    let stats: serde_json::Value =
        serde_json::from_str(err.lines().rev().find(|l| l.starts_with('{')).unwrap()).unwrap();
    // cpu.stat counts the group's processes only: the loop above, cloned into it.
    assert!(stats["cpu_usec"].as_u64().unwrap() > 20_000, "{stats}");
    assert!(!unified_root().join(&parent).exists());

    // Without a pid namespace, a process left behind goes with cgroup.kill.
    let marker = unique_parent();
    std::fs::write(&manifest, manifest_with("[namespaces]\npid = false")).unwrap();
    let output = up(&format!("/bin/sh -c 'sleep 300 # {marker}' & echo started"));
    assert_eq!(status(&output), Some(0), "{}", explain(&output));
    assert!(
        live::processes_with(&marker).is_empty(),
        "the left-over process survived"
    );
    assert!(!unified_root().join(&parent).exists());

    // A limit needs a controller this hierarchy does not have (a hybrid host's cgroup2 has
    // none): refused before anything starts, with the controller and the fix.
    if !std::fs::read_to_string(unified_root().join("cgroup.controllers"))
        .unwrap()
        .contains("memory")
    {
        std::fs::write(&manifest, manifest_with("") + "memory = \"64M\"\n").unwrap();
        let output = on_pure_v2(
            &p,
            &["up", "--trust", manifest.to_str().unwrap(), "--", "true"],
        );
        assert_eq!(status(&output), Some(125), "{}", explain(&output));
        let err = stderr(&output);
        assert!(
            err.contains("the memory controller is not delegated"),
            "{err}"
        );
        assert!(err.contains("cgroup.subtree_control"), "{err}");
    }
    assert!(!unified_root().join(&parent).exists());
}

#[test]
fn no_limits_no_cgroup() {
    if !root_only() {
        return;
    }
    // A parent alone asks for nothing.
    let idle = Limited::new("", "");
    let output = idle.up(&["-v"], &["true"]);
    assert_eq!(status(&output), Some(0), "{}", explain(&output));
    assert!(
        !stderr(&output).contains("cgroup (parent)"),
        "{}",
        explain(&output)
    );
    idle.assert_clean();
}

/// Where the rootless user has no usable controller (cgroup v1, or no subtree delegated to it),
/// `required = false` makes the limits fall back to rlimits, stated as such, instead of refusing
/// the sandbox; from a delegated subtree the cgroup applies them and nothing falls back.
#[test]
fn rootless_required_false_falls_back_to_rlimits_without_a_usable_controller() {
    if !live::available(live::Who::Rootless) {
        return;
    }
    let p = live::Project::new(
        live::Who::Rootless,
        "[rootfs]\nhost = true\n[cgroup]\nmemory = \"64M\"\npids = 64\ncpus = 0.5\nrequired = false\n[process]\ncommand = [\"/bin/true\"]\n",
    );
    let output = p.up(&["/bin/bash", "-c", "ulimit -d; ulimit -u"]);
    assert_eq!(output.status.code(), Some(0), "{}", live::stderr(&output));
    let plan = p.command(&["plan", "--", "true"]).output().unwrap();
    let text = live::stdout(&plan);
    let delegated = live::delegated_to_rootless();
    if ["memory", "pids", "cpu"]
        .iter()
        .all(|c| delegated.iter().any(|d| d == c))
    {
        assert!(!text.contains("falls back"), "{text}");
        assert!(!text.contains("is not applied"), "{text}");
        let shown = live::stdout(&output);
        assert!(
            shown.starts_with("unlimited\n"),
            "no RLIMIT_DATA stands in: {shown}"
        );
        return;
    }
    assert_eq!(
        live::stdout(&output),
        "65536\n64\n",
        "RLIMIT_DATA in KiB, then RLIMIT_NPROC"
    );
    assert!(
        text.contains("`memory` falls back to RLIMIT_DATA"),
        "{text}"
    );
    assert!(text.contains("`cpus` is not applied"), "{text}");

    // One line on each run says it all; -v (before or after the command) says why, at each key.
    let summary = "sandbox.toml:7:12: warning: cgroup: `memory` falls back to RLIMIT_DATA, `cpus` is not applied, `pids` falls back to RLIMIT_NPROC: their controllers cannot be used here (required = false; `-v` says why and how to fix it)\n";
    let manifest = p.manifest();
    let manifest = manifest.to_str().unwrap();
    let stderr_of = |args: &[&str]| live::stderr(&p.command(args).output().unwrap());
    assert_eq!(live::stderr(&output), summary, "up");
    assert_eq!(live::stderr(&plan), summary, "plan");
    assert_eq!(
        stderr_of(&["check", manifest]),
        format!("{summary}{manifest}: valid, 1 warning\n"),
        "check"
    );
    for verbose in [
        &["check", "-v", manifest][..],
        &["-v", "check", manifest],
        &["up", "-v", "--trust", manifest, "--", "true"],
    ] {
        let err = stderr_of(verbose);
        assert_eq!(
            err.matches("sandbox::cgroup::fallback").count(),
            3,
            "{verbose:?}: {err}"
        );
        assert!(!err.contains(summary), "{verbose:?}: {err}");
        // Why, by layout: v1 has no delegation; on v2 this user's group is not its own.
        let why = match host_version() {
            CgroupVersion::V1 => "cgroup v1 has no delegation",
            CgroupVersion::V2 => "this user may not create groups in",
        };
        assert!(err.contains(why), "{verbose:?}: {err}");
    }
}
