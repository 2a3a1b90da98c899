//! `sandbox up` for real: every namespace, mount and process rule checked from inside the
//! sandbox, as root and as an unprivileged user.

mod live;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use live::{Project, Who, eventually, stderr, stdout};

const HOST_ROOT: &str = "[rootfs]\nhost = true\n";

fn project(who: Who, extra: &str) -> Project {
    Project::new(who, &format!("{HOST_ROOT}{extra}"))
}

/// A writable root of the project's, `root/`, with the host's /usr bound in by the manifest's
/// first mount and the usual links to it.
fn usr_root(p: &Project) -> std::path::PathBuf {
    let root = p.mkdir("root");
    for dir in ["usr", "proc", "dev", "tmp"] {
        p.mkdir(&format!("root/{dir}"));
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        p.give(&root.join(link));
    }
    root
}

as_root_and_rootless! {
    fn id_maps_are_the_planned_ones(who) {
        let p = project(who, "");
        let out = p.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g");
        let lines: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        for which in [0, 1] {
            match who {
                Who::Rootless => assert_eq!(lines[which], live::rootless_default_map(which)),
                // A leased block (tests/ids.rs has the rest).
                Who::Root => {
                    let fields: Vec<u64> = lines[which].split(' ').map(|f| f.parse().unwrap()).collect();
                    assert!(fields[0] == 0 && fields[2] == 65536, "{}", lines[which]);
                    assert!(fields[1] >= 65536, "never a host user's ids: {}", lines[which]);
                }
            }
        }
        assert_eq!(&lines[2..], ["0", "0"]);
    }

    fn explicit_maps_and_identity(who) {
        let (outside_uid, outside_gid) = match who {
            Who::Root => ("200000".to_string(), "200000".to_string()),
            Who::Rootless => ("\"self\"".to_string(), "\"self\"".to_string()),
        };
        let p = project(who, &format!(
            "[process]\nuser = 1000\ngroup = 1000\n[[uid_map]]\ninside = 1000\noutside = {outside_uid}\ncount = 1\n[[gid_map]]\ninside = 1000\noutside = {outside_gid}\ncount = 1\n"
        ));
        let out = p.sh("id -u; id -g; cat /proc/self/uid_map");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..2], ["1000", "1000"]);
        let map: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(map[0], "1000");
        assert_eq!(map[2], "1");
    }

    fn hostname_and_domainname_are_the_planned_ones(who) {
        let p = project(who, "[uts]\nhostname = \"jail-host\"\ndomainname = \"jail.example\"\n");
        assert_eq!(p.sh("hostname; cat /proc/sys/kernel/domainname"), "jail-host\njail.example\n");
        let default = Project::new(who, &format!("name = \"named-box\"\n{HOST_ROOT}"));
        assert_eq!(default.sh("hostname"), "named-box\n");
    }

    fn the_command_is_the_child_of_init_and_sees_only_the_sandbox(who) {
        let p = project(who, "");
        let out = p.sh("echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "2", "the command is pid 2, the child of the sandbox's init");
        assert!(lines[1].contains("sandbox"), "pid 1 is the sandbox's init: {}", lines[1]);
        let pids: Vec<i32> = lines[2].split_whitespace().map(|p| p.parse().unwrap()).collect();
        // init, the shell, and the pipeline's four processes
        assert!(pids.len() <= 6 && pids[0] == 1 && pids[1] == 2, "only the sandbox's processes: {pids:?}");
    }

    fn pid_1_is_named_plainly_and_keeps_no_host_path_or_environment(who) {
        let p = Project::new(who, &format!("name = \"plain-name\"\n{HOST_ROOT}"));
        let mut up = p
            .command(&["up", "--trust", p.manifest().to_str().unwrap(), "--", "/bin/sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/1/comm; read _ || true"])
            .env("SECRET_OF_THE_CALLER", "host-only")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(up.stdout.take().unwrap());
        let mut cmdline = Vec::new();
        out.read_until(b'\n', &mut cmdline).unwrap();
        assert_eq!(String::from_utf8_lossy(&cmdline), "sandbox-init plain-name\0\n", "no host path, no arguments");
        let mut comm = String::new();
        out.read_line(&mut comm).unwrap();
        assert_eq!(comm, "sandbox-init\n");
        // The host sees it so too, and what a process allowed to read init's environment
        // would find there is nothing of the caller's.
        let children = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        let init: u32 = children(up.id()).trim().parse().unwrap();
        let environ = std::fs::read(format!("/proc/{init}/environ")).unwrap();
        assert!(environ.iter().all(|b| *b == 0), "{}", String::from_utf8_lossy(&environ));
        drop(up.stdin.take());
        assert!(up.wait().unwrap().success());
    }

    fn the_mount_table_holds_only_planned_mounts(who) {
        let p = project(who, "[[mount]]\ntype = \"bind\"\nsource = \"data\"\ntarget = \"/data\"\n");
        p.mkdir("data");
        let plan = p.command(&["plan", "--json", "--", "true"]).output().unwrap();
        assert!(plan.status.success(), "{}", stderr(&plan));
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let steps = plan["steps"].as_array().unwrap();
        let mount_step = steps.iter().find(|s| s["step"] == "mount").unwrap();
        let security = steps.iter().find(|s| s["step"] == "security").unwrap();
        let mut allowed: BTreeSet<String> = BTreeSet::from(["/".to_string()]);
        for m in mount_step["mounts"].as_array().unwrap() {
            let target = m["target"].as_str().unwrap().to_string();
            if m["type"] == "dev" {
                for sub in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm"] {
                    allowed.insert(format!("{target}/{sub}"));
                }
            }
            if m["type"] != "symlink" {
                allowed.insert(target);
            }
        }
        for list in ["masked_paths", "readonly_paths"] {
            for path in security[list].as_array().unwrap() {
                allowed.insert(path.as_str().unwrap().to_string());
            }
        }
        let mountinfo = p.sh("cat /proc/self/mountinfo");
        let project_dir = p.path().to_str().unwrap().to_string();
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (root, mount_point) = (fields[3], fields[4]);
            assert!(allowed.contains(mount_point), "unplanned mount {mount_point} in\n{mountinfo}");
            for private in ["/root", "/home"] {
                assert!(!mount_point.starts_with(private) && !root.starts_with(private), "host path {private} leaked: {line}");
            }
            if mount_point != "/data" {
                assert!(!root.starts_with(&project_dir), "the project leaked at {mount_point}: {line}");
            }
        }
        assert!(mountinfo.lines().any(|l| l.split(' ').nth(4) == Some("/data")));
    }

    fn the_root_is_read_only_and_writable_when_asked(who) {
        let p = project(who, "");
        let out = p.up(&["/bin/sh", "-c", "touch /newfile"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
        let rw = Project::new(who, "[rootfs]\nhost = true\nreadonly = false\n");
        assert_eq!(rw.sh("touch /newfile && echo ok"), "ok\n");
    }

    fn a_read_only_bind_refuses_writes_with_erofs(who) {
        // idmap: as root, the sandbox's root is an unprivileged host id that could not write
        // the root-owned folder; the id-mapped bind shows the caller's files as its own.
        let p = project(who, "[[mount]]\ntype = \"bind\"\nsource = \"data\"\ntarget = \"/data\"\n[[mount]]\ntype = \"bind\"\nsource = \"out\"\ntarget = \"/out\"\nreadonly = false\nidmap = true\n");
        p.mkdir("data");
        p.mkdir("out");
        let out = p.up(&["/bin/sh", "-c", "echo x > /data/f"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("Read-only file system"), "{}", stderr(&out));
        assert_eq!(p.sh("echo hello > /out/f && cat /out/f && stat -c %u /out/f"), "hello\n0\n");
        let written = p.path().join("out/f");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), "hello\n");
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&written).unwrap());
        let caller = if who == Who::Root { 0 } else { live::rootless_ids().unwrap().0 };
        assert_eq!(owner, caller, "written as the caller on the host");
    }

    fn a_tmpfs_size_limit_holds(who) {
        let p = project(who, "[[mount]]\ntype = \"tmpfs\"\ntarget = \"/scratch\"\nsize = \"1M\"\n");
        let out = p.up(&["/bin/sh", "-c", "dd if=/dev/zero of=/scratch/big bs=64k count=32 2>&1; echo status=$?"]);
        let text = stdout(&out);
        assert!(text.contains("No space left on device"), "{text}");
        assert!(text.contains("status=1"), "{text}");
        assert_eq!(p.sh("dd if=/dev/zero of=/scratch/small bs=64k count=8 2>/dev/null && echo fits"), "fits\n");
    }

    fn the_network_namespace_has_only_lo_and_it_is_up(who) {
        let p = project(who, "");
        let out = p.sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
        assert_eq!(out, "lo\n");
        // With lo down, connecting to 127.0.0.1 fails with "Network is unreachable".
        let out = p.up(&["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9"]);
        assert!(stderr(&out).contains("Connection refused"), "{}", stderr(&out));
    }

    fn the_ipc_namespace_has_no_host_objects(who) {
        let created = std::process::Command::new("ipcmk").args(["-M", "4096"]).output().unwrap();
        let id = stdout(&created).split_whitespace().last().unwrap_or_default().to_string();
        let p = project(who, "");
        let inside = p.sh("tail -n +2 /proc/sysvipc/shm | wc -l");
        let _ = std::process::Command::new("ipcrm").args(["-m", &id]).status();
        assert!(created.status.success() && !id.is_empty());
        assert_eq!(inside.trim(), "0");
    }

    fn exit_statuses_propagate(who) {
        let p = project(who, "");
        for (script, expected) in [("exit 0", 0), ("exit 1", 1), ("exit 42", 42), ("kill -9 $$", 137)] {
            let out = p.up(&["/bin/sh", "-c", script]);
            assert_eq!(out.status.code(), Some(expected), "{script}: {}", stderr(&out));
        }
        let missing = p.up(&["no-such-program"]);
        assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));
        assert!(stderr(&missing).contains("no-such-program"), "{}", stderr(&missing));
        let not_executable = p.up(&["/etc/hostname"]);
        assert_eq!(not_executable.status.code(), Some(126), "{}", stderr(&not_executable));
        let timeout = project(who, "[process]\ntimeout = \"300ms\"\n");
        // Ended by the timeout, long before sleep would end (a bound loose enough for a launch
        // under software emulation, which takes seconds).
        let started = Instant::now();
        let out = timeout.up(&["sleep", "300"]);
        assert_eq!(out.status.code(), Some(124));
        assert!(stderr(&out).contains("sandbox: timed out: the command ran past process.timeout (300ms)"), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(120));
        let stubborn = timeout.up(&["/bin/sh", "-c", "trap '' TERM; sleep 300"]);
        assert_eq!(stubborn.status.code(), Some(124), "SIGKILL after the grace");
    }

    fn a_launcher_failure_is_125_with_a_diagnostic(who) {
        let invalid = project(who, "[cgroup]\nmemory = \"12 MB\"\n");
        let out = invalid.up(&["true"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(stderr(&out).contains("invalid size"), "{}", stderr(&out));
        let missing_cwd = project(who, "[process]\ncwd = \"/no/such/dir\"\n");
        let out = missing_cwd.up(&["true"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(stderr(&out).contains("chdir(/no/such/dir)"), "{}", stderr(&out));
        assert!(stderr(&out).contains("sandbox.toml"), "points at the manifest: {}", stderr(&out));
    }

    fn a_failing_setup_step_is_named_and_leaves_nothing_behind(who) {
        // mqueue needs the sandbox's own IPC namespace: the kernel refuses it at the mount step.
        let p = project(who, "[namespaces]\nipc = false\n[[mount]]\ntype = \"mqueue\"\ntarget = \"/dev/mqueue\"\n");
        let marker = p.path().to_str().unwrap().to_string();
        let out = p.up(&["true"]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("step `mount` failed") && err.contains("mqueue on /dev/mqueue"), "{err}");
        assert!(err.contains("sandbox.toml:5"), "underlines the [[mount]] entry: {err}");
        assert!(live::processes_with(&marker).is_empty(), "no process left");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&marker), "no mount left on the host");
    }

    fn what_the_command_left_running_is_gone_when_up_returns(who) {
        let p = project(who, "");
        // Unique to this run and variant: the root and the rootless one run at the same time.
        let marker = format!("{}.{}", 3000 + std::process::id() % 1000, if who == Who::Root { 1 } else { 2 });
        let mut up = p
            .command(&["up", p.manifest().to_str().unwrap(), "--", "/bin/sh", "-c", &format!("sleep {marker} & echo started; cat > /dev/null")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "started");
        // The launcher's, init's and the shell's command lines hold the marker too.
        let sleep = format!("sleep\0{marker}\0");
        let leftover = || live::processes_with(&marker).into_iter().find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == sleep.as_bytes()));
        assert!(eventually(|| leftover().is_some()), "the leftover started");
        let leftover = format!("/proc/{}", leftover().unwrap());
        drop(up.stdin.take());
        assert!(up.wait().unwrap().success());
        // At once, not eventually: `up` returned only once its init had killed and reaped it.
        assert!(!std::path::Path::new(&leftover).exists(), "{leftover} still runs after up returned");
    }

    fn zombies_are_reaped(who) {
        let p = project(who, "");
        let out = p.sh("sh -c 'sleep 0.1 &'; sleep 0.5; grep -l '^State:.*Z' /proc/[0-9]*/status; echo done");
        assert_eq!(out, "done\n", "a zombie was left: {out}");
    }

    fn no_descriptor_beyond_stdio_reaches_the_command(who) {
        let p = project(who, "");
        // fd 7 is open (without CLOEXEC) in the launcher's caller.
        let script = format!("exec 7</dev/null; exec {} up {} -- /bin/sh -c 'ls /proc/self/fd'", live::binary().display(), p.manifest().display());
        let out = p.as_user(std::path::Path::new("/bin/sh")).args(["-c", &script]).output().unwrap();
        // `ls` itself holds one descriptor on the directory it lists.
        let fds: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().split_whitespace().collect();
        assert_eq!(fds, ["0", "1", "2", "3"], "{}", stderr(&out));
    }

    fn a_standard_descriptor_the_caller_closed_is_dev_null_not_a_file_of_the_launcher(who) {
        let p = project(who, "");
        let script = format!("exec {} up {} -- /bin/sh -c 't=$(readlink /proc/$$/fd/1); echo $t >&2' >&-", live::binary().display(), p.manifest().display());
        let out = p.as_user(std::path::Path::new("/bin/sh")).args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "/dev/null\n");
    }

    fn sigterm_to_the_launcher_reaches_the_command(who) {
        let p = project(who, "");
        let mut child = p
            .command(&["up", p.manifest().to_str().unwrap(), "--", "/bin/sh", "-c", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "got-term");
        assert_eq!(child.wait().unwrap().code(), Some(7));
    }

    fn sigkill_of_the_launcher_leaves_no_process(who) {
        let p = project(who, "");
        let marker = format!("{}.{}", 1000 + std::process::id() % 1000, p.path().file_name().unwrap().len());
        let mut child = p.command(&["up", p.manifest().to_str().unwrap(), "--", "sleep", &marker]).spawn().unwrap();
        assert!(eventually(|| !live::processes_with(&marker).is_empty()), "the command started");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        let dir = p.path().to_str().unwrap().to_string();
        assert!(eventually(|| live::processes_with(&marker).is_empty() && live::processes_with(&dir).is_empty()), "processes left: {:?}", live::processes_with(&dir));
    }

    fn a_hostile_symlink_cannot_send_a_mount_onto_the_host(who) {
        // A root directory whose /evil and /evil2 point at a host folder, absolutely and through
        // `..`. Inside the sandbox both resolve below its own root: where that path exists there,
        // the mounts land there; where it does not, the mount step refuses. Either way nothing
        // reaches the host folder.
        // Not under /tmp: the sandbox has its own /tmp, which would hide the path inside.
        let canary = tempfile::Builder::new().prefix("sandbox-canary-").tempdir_in("/var/tmp").unwrap();
        let mounts = "[[mount]]\ntype = \"bind\"\nsource = \"/usr\"\ntarget = \"/usr\"\n[[mount]]\ntype = \"dir\"\ntarget = \"/evil/made-by-sandbox\"\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/evil2/tmpfs-by-sandbox\"\n[[mount]]\ntype = \"file\"\ntarget = \"/evil/file-by-sandbox\"\ncontent = \"x\"\n";
        let p = Project::new(who, &format!("[rootfs]\npath = \"root\"\nreadonly = false\n{mounts}"));
        let root = usr_root(&p);
        std::os::unix::fs::symlink(canary.path(), root.join("evil")).unwrap();
        std::os::unix::fs::symlink(format!("../../../../../../..{}", canary.path().display()), root.join("evil2")).unwrap();
        for entry in ["evil", "evil2"] {
            p.give(&root.join(entry));
        }

        let refused = p.up(&["true"]);
        assert_eq!(refused.status.code(), Some(125), "{}", stderr(&refused));
        assert!(stderr(&refused).contains("step `mount` failed"), "{}", stderr(&refused));

        // The same path inside the root: the mounts land there.
        p.mkdir(&format!("root{}", canary.path().display()));
        let out = p.sh("ls -d /evil/made-by-sandbox /evil2/tmpfs-by-sandbox /evil/file-by-sandbox");
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(root.join(canary.path().strip_prefix("/").unwrap()).join("made-by-sandbox").is_dir());
        let leaked: Vec<_> = std::fs::read_dir(canary.path()).unwrap().collect();
        assert!(leaked.is_empty(), "the sandbox wrote into the host folder: {leaked:?}");
    }

    fn a_lookup_through_dotdot_holds_while_the_machine_renames(who) {
        // openat2 fails a lookup that went through `..` with EAGAIN when anything was renamed
        // or mounted anywhere meanwhile; a busy machine must not fail the mount step.
        let p = Project::new(who, "[rootfs]\npath = \"root\"\nreadonly = false\n[[mount]]\ntype = \"bind\"\nsource = \"/usr\"\ntarget = \"/usr\"\n[[mount]]\ntype = \"tmpfs\"\ntarget = \"/far/tmpfs\"\n");
        let root = usr_root(&p);
        p.mkdir("root/a/b/c/d/e/f/g");
        std::os::unix::fs::symlink("a/b/c/d/e/f/g/../../../../../../../tmp", root.join("far")).unwrap();
        p.give(&root.join("far"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let stop = stop.clone();
            let dir = tempfile::tempdir().unwrap();
            std::thread::spawn(move || {
                let (one, other) = (dir.path().join("one"), dir.path().join("other"));
                std::fs::write(&one, "").unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&one, &other).unwrap();
                    std::fs::rename(&other, &one).unwrap();
                }
            })
        };
        let failed: Vec<String> = (0..40).map(|_| p.up(&["true"])).filter(|run| !run.status.success()).map(|run| stderr(&run)).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert!(failed.is_empty(), "{} of 40 launches failed, first: {}", failed.len(), failed[0]);
    }

    fn verbose_prints_each_step_with_its_duration(who) {
        let p = project(who, "");
        let out = p.command(&["up", "-v", p.manifest().to_str().unwrap(), "--", "true"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        for step in ["user", "mount", "pid", "net", "chroot", "cgroup"] {
            assert!(err.lines().any(|l| l.contains(step) && l.trim_end().ends_with(" ms")), "no timing for {step}: {err}");
        }
        // The sandbox took its steps in the order `sandbox plan` prints them.
        let plan = p.command(&["plan", "--json", p.manifest().to_str().unwrap(), "--", "true"]).output().unwrap();
        assert!(plan.status.success(), "{}", stderr(&plan));
        let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
        let printed: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
        let taken: Vec<&str> = err
            .lines()
            .filter_map(|l| l.strip_prefix("sandbox: ")?.split("  ").next())
            .filter(|step| printed.contains(step))
            .collect();
        let in_plan_order: Vec<&str> = printed.iter().copied().filter(|step| taken.contains(step)).collect();
        assert_eq!(taken, in_plan_order, "{err}");
        assert!(taken.len() >= 6, "{err}");
    }

    fn environment_cwd_and_umask_are_the_planned_ones(who) {
        let p = project(who, "[process]\ncwd = \"/tmp\"\numask = \"077\"\nenv = { GREETING = \"hi\" }\ninherit_env = []\n");
        let out = p.sh("pwd; umask; env | sort");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "/tmp");
        assert_eq!(lines[1], "0077");
        let env: Vec<&str> = lines[2..].iter().copied().filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL=") && !l.starts_with("_=")).collect();
        // USER and LOGNAME: the name /etc/passwd gives the command's uid (0).
        assert_eq!(env, ["GREETING=hi", "LOGNAME=root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "USER=root"]);
    }

    fn capabilities_are_dropped_and_no_new_privs_is_set(who) {
        let p = project(who, "");
        let out = p.sh("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status");
        for line in out.lines() {
            let value = line.split_whitespace().nth(1).unwrap();
            if line.starts_with("NoNewPrivs") {
                assert_eq!(value, "1");
            } else {
                assert_eq!(value, "0000000000000000", "{line}");
            }
        }
    }
}

as_root_and_rootless! {
    fn every_mount_type_is_made(who) {
        let p = project(who, r#"
[[mount]]
type = "sysfs"
target = "/sys"
[[mount]]
type = "mqueue"
target = "/dev/mqueue"
[[mount]]
type = "devpts"
target = "/mnt/pts"
[[mount]]
type = "symlink"
source = "/etc/hostname"
target = "/mnt/link"
[[mount]]
type = "file"
target = "/etc/motd"
content = "hello from the manifest\n"
mode = "0600"
[[mount]]
type = "dir"
target = "/srv/data"
mode = "0700"
[[mount]]
type = "bind"
source = "no-such-dir"
target = "/maybe"
optional = true
[[mount]]
type = "overlay"
source = ["upper-layer", "lower-layer"]
target = "/layers"
"#);
        p.write("lower-layer/a", "from lower\n");
        p.write("lower-layer/b", "lower b\n");
        p.write("upper-layer/b", "upper b\n");
        let out = p.sh(concat!(
            "awk '$2 == \"/sys\" || $2 == \"/dev/mqueue\" || $2 == \"/mnt/pts\" || $2 == \"/layers\" {print $2, $3, substr($4, 1, 2)}' /proc/mounts; ",
            "readlink /mnt/link; cat /etc/motd; stat -c %a /etc/motd /srv/data; test -e /maybe || echo no-maybe; ",
            "cat /layers/a /layers/b; echo new > /layers/c && cat /layers/c"
        ));
        assert_eq!(out, "/sys sysfs ro\n/dev/mqueue mqueue rw\n/mnt/pts devpts rw\n/layers overlay rw\n/etc/hostname\nhello from the manifest\n600\n700\nno-maybe\nfrom lower\nupper b\nnew\n");
        assert!(!p.path().join("lower-layer/c").exists() && !p.path().join("upper-layer/c").exists(), "the overlay's writes stay in its tmpfs layer");
    }

    fn an_overlay_root_is_thrown_away_or_kept(who) {
        let root = |upper: &str| format!("[rootfs]\npath = \"root\"\noverlay = {upper}\n[[mount]]\ntype = \"bind\"\nsource = \"/usr\"\ntarget = \"/usr\"\n");
        for (overlay, kept) in [("true", false), ("{ upper = \"changes\" }", true)] {
            let p = Project::new(who, &root(overlay));
            for dir in ["root/usr", "root/proc", "root/dev", "root/tmp", "root/etc"] {
                p.mkdir(dir);
            }
            // As root, the directory is id-mapped: root-owned files are root's inside.
            let base = p.path().join("root");
            for (link, target) in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
                std::os::unix::fs::symlink(target, base.join(link)).unwrap();
                p.give(&base.join(link));
            }
            assert_eq!(p.sh("echo written > /etc/new-file && cat /etc/new-file && stat -c %u /etc"), "written\n0\n");
            assert!(!base.join("etc/new-file").exists(), "the source stays untouched");
            assert_eq!(p.path().join("changes/etc/new-file").exists(), kept, "overlay = {overlay}");
            // `up` returned only once the kept upper was free: the next run mounts it again,
            // its files still the sandbox's root's (as root, a new run may lease other host
            // ids: the kept layer stores the ids files have inside).
            let next = if kept { "written\nagain\n0\n" } else { "" };
            assert_eq!(
                p.sh("test -e /etc/new-file && echo again >> /etc/new-file && cat /etc/new-file && stat -c %u /etc/new-file || true"),
                next,
                "overlay = {overlay}"
            );
        }
    }

    fn a_terminal_is_a_new_pty_in_the_sandbox(who) {
        let p = project(who, "[process]\ntty = \"always\"\n");
        let out = p.up(&["/bin/sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out).replace('\r', "");
        assert_eq!(text, "/dev/pts/0\nstdin-is-a-tty\n");
    }

    fn without_a_terminal_the_command_has_no_controlling_tty(who) {
        let p = project(who, "");
        let out = p.up(&["/bin/sh", "-c", "tty; cat /proc/self/stat | cut -d' ' -f6,7"]);
        // tty(1) fails without one; session id = own pid; tty_nr = 0
        let text = stdout(&out);
        assert!(text.starts_with("not a tty\n"), "{text}");
        assert!(text.ends_with(" 0\n"), "no controlling terminal: {text}");
    }
}

#[test]
fn a_map_the_caller_may_not_write_is_refused_before_anything_starts() {
    if !live::available(Who::Rootless) {
        return;
    }
    let p = project(
        Who::Rootless,
        "[[uid_map]]\ninside = 0\noutside = 0\ncount = 1\n",
    );
    let marker = p.path().to_str().unwrap().to_string();
    let out = p.up(&["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("sandbox::idmap::not-permitted") && err.contains("sandbox.toml:3"),
        "{err}"
    );
    assert!(live::processes_with(&marker).is_empty());
}

as_root_and_rootless! {
    fn the_hosts_root_only_files_stay_unreadable(who) {
        let p = project(who, "");
        let out = p.up(&["/bin/cat", "/etc/shadow"]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(stderr(&out).contains("Permission denied"), "{}", stderr(&out));
    }
}

as_root_and_rootless! {
    fn a_deterministic_jail_prints_the_same_twice(who) {
        let p = project(who, "[process]\ndeterministic = true\n");
        let script = "hostname; domainname; cat /etc/machine-id; env | sort; cat /proc/uptime | cut -d. -f1";
        // The uptime is the seconds since the sandbox started: 0 unless the machine is slow
        // (software emulation), and never more than the whole run took.
        let timed = || {
            let started = std::time::Instant::now();
            let out = p.sh(script);
            let (rest, uptime) = out.trim_end().rsplit_once('\n').expect("lines");
            let uptime: u64 = uptime.parse().expect("seconds");
            assert!(uptime <= started.elapsed().as_secs(), "uptime starts at zero: {out}");
            rest.to_string()
        };
        let first = timed();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(first, timed());
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines[1], "(none)");
        assert_eq!(lines[2].len(), 32);
        assert!(lines.contains(&"TZ=UTC") && lines.contains(&"LANG=C.UTF-8"), "{first}");
    }
}

as_root_and_rootless! {
    // A program given after `--` that cannot run is pointed at on the command line, not at
    // the manifest's `command`, which it replaced.
    fn an_exec_failure_after_the_double_dash_points_at_the_command_line(who) {
        let p = project(who, "[process]\ncommand = [\"/bin/true\"]\n");
        let out = p.up(&["no-such-program", "an argument"]);
        assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("command line:1:4: step `exec` failed: executing no-such-program"), "{err}");
        assert!(err.contains("-- no-such-program 'an argument'"), "{err}");
        assert!(!err.contains("sandbox.toml"), "{err}");
    }
}

as_root_and_rootless! {
    fn a_writable_project_bind_is_the_callers_as_the_command(who) {
        // As root, the everyday case of a CI runner: its sandboxes run as unprivileged host
        // ids, yet the project is writable, its files are the command's inside and what the
        // command makes is the caller's; under a folder only the caller may enter, too.
        let caller = match who {
            Who::Root => (0, 0),
            Who::Rootless => live::rootless_ids().unwrap(),
        };
        for (user, extra) in [(0, ""), (1000, "user = 1000\ngroup = 1000\n")] {
            let p = project(who, &format!(
                "[[mount]]\ntype = \"bind\"\nsource = \"private/work\"\ntarget = \"/work\"\nreadonly = false\n[process]\ncwd = \"/work\"\n{extra}"
            ));
            p.mkdir("private");
            p.mkdir("private/work");
            p.write("private/work/mine", "x\n");
            std::fs::set_permissions(p.path().join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
            let out = p.sh("stat -c '%u %g' mine; id -u; echo made > made && stat -c '%u %g' made");
            assert_eq!(out, format!("{user} {user}\n{user}\n{user} {user}\n"), "user {user}");
            let made = std::fs::metadata(p.path().join("private/work/made")).unwrap();
            assert_eq!((made.uid(), made.gid()), caller, "made inside, the caller's on the host");
        }
    }
}

/// A tmpfs of the test's own on a temporary folder, unmounted when dropped: root's, on tmpfs,
/// and outside /dev (whose folders root's sandboxes never id-map by default).
struct OwnTmpfs(tempfile::TempDir);

impl OwnTmpfs {
    fn mount() -> OwnTmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0700,size=16m", "sandbox-test"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs on {}",
            dir.path().display()
        );
        OwnTmpfs(dir)
    }
}

impl Drop for OwnTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.0.path())
            .status();
    }
}

/// tmpfs can be id-mapped from Linux 6.3 on: root's sandbox on a root directory of its own on
/// tmpfs runs there, and is refused by validation before, with the fix.
#[test]
fn a_root_on_tmpfs_runs_where_the_kernel_id_maps_tmpfs_and_is_refused_where_not() {
    if !live::available(Who::Root) {
        return;
    }
    let tmpfs = OwnTmpfs::mount();
    let root = tmpfs.0.path();
    for dir in ["usr", "proc", "dev", "tmp"] {
        std::fs::create_dir(root.join(dir)).unwrap();
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    let p = Project::new(
        Who::Root,
        &format!(
            "[rootfs]\npath = \"{}\"\n[[mount]]\ntype = \"bind\"\nsource = \"/usr\"\ntarget = \"/usr\"\n",
            root.display()
        ),
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut version = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = version.next().unwrap().parse().unwrap();
    let minor: u32 = version.next().unwrap().parse().unwrap();
    let output = p.up(&["/bin/sh", "-c", "echo ran"]);
    if (major, minor) >= (6, 3) {
        assert_eq!(stdout(&output), "ran\n", "{}", stderr(&output));
        return;
    }
    assert_eq!(output.status.code(), Some(125), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("sandbox::mount::idmap-unsupported"), "{err}");
    assert!(
        err.contains(&format!(
            "is on tmpfs, which Linux {major}.{minor} cannot id-map"
        )),
        "{err}"
    );
    assert!(err.contains("upgrade to Linux 6.3 or later"), "{err}");
}
