//! The jail holds: from inside the sandbox, as root and rootless, every escape attempt fails
//! with the expected errno; capabilities, no_new_privs, seccomp, landlock and rlimits are those
//! of the manifest.
//!
//! The attempts are made by tests/probe/probe.c, compiled here with the host's gcc (statically,
//! so it runs in any root) and bound into the sandbox at /opt/probe.

mod live;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use live::{Project, Who, stderr, stdout};

/// A sandbox on the host's /usr with the probe at /opt/probe/probe.
fn project(who: Who, extra: &str) -> Project {
    Project::new(who, &with_probe(extra))
}

/// A manifest of such a sandbox.
fn with_probe(extra: &str) -> String {
    format!(
        "[rootfs]\nhost = true\n\n[[mount]]\ntype = \"bind\"\nsource = \"{}\"\ntarget = \"/opt/probe\"\n\n{extra}",
        live::probe_dir().display()
    )
}

/// Run the probe with `actions`; returns what each printed after its name, in order.
fn probe(p: &Project, actions: &[&str]) -> Vec<String> {
    let mut command = vec!["/opt/probe/probe"];
    command.extend_from_slice(actions);
    let output = p.up(&command);
    assert!(
        output.status.success(),
        "sandbox up failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
        .lines()
        .map(|line| {
            let line = line.trim_end_matches('\r');
            line.split_once(' ')
                .map_or(line, |(_, result)| result)
                .to_string()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// Pairs of (action, expected result), checked all at once so a failure shows every
/// difference.
fn expect(p: &Project, cases: &[(&str, &str)]) {
    let actions: Vec<&str> = cases.iter().map(|(action, _)| *action).collect();
    let results = probe(p, &actions);
    let wrong: Vec<String> = cases
        .iter()
        .zip(
            results
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat("(nothing)")),
        )
        .filter(|((_, want), got)| want != got)
        .map(|((action, want), got)| format!("{action}: expected {want}, got {got}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\nall results: {results:?}",
        wrong.join("\n")
    );
}

as_root_and_rootless! {
    fn the_kernels_sensitive_proc_entries_are_hidden_or_read_only(who) {
        let p = project(who, "");
        // Each entry this kernel has: a masked one reads empty (a file) or lists nothing (a
        // folder); every one is a read-only mount of its own.
        let masked = ["interrupts", "keys", "timer_list", "acpi"];
        let readonly = ["bus", "fs", "irq", "sys"];
        let present: Vec<&str> = masked
            .iter()
            .chain(&readonly)
            .copied()
            .filter(|e| Path::new("/proc").join(e).exists())
            .collect();
        assert!(present.len() >= 5, "this host's /proc has {present:?}");
        let script = format!(
            "for e in {}; do f=/proc/$e; \
             opts=$(awk -v m=$f '$5 == m {{ split($6, o, \",\"); print o[1] }}' /proc/self/mountinfo); \
             if [ -d $f ]; then n=$(ls -A $f | wc -l); else n=$(wc -c < $f); fi; \
             echo $e $opts $n; done",
            present.join(" ")
        );
        let out = p.sh(&script);
        for line in out.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields[1], "ro", "{line} (a mount of its own, read-only)\n{out}");
            if masked.contains(&fields[0]) {
                assert_eq!(fields[2], "0", "{line} (masked)\n{out}");
            } else {
                assert_ne!(fields[2], "0", "{line} (still readable)\n{out}");
            }
        }
        assert_eq!(out.lines().count(), present.len(), "{out}");
    }

    fn with_default_security_every_escape_fails_with_its_errno(who) {
        // A terminal, for TIOCSTI: the command gets a pty as its controlling terminal.
        let p = project(who, "[process]\ntty = \"always\"\n");
        // This kernel may have no sysrq at all; where it has, the file is root's and 0200.
        let sysrq = if Path::new("/proc/sysrq-trigger").exists() { "EACCES" } else { "ENOENT" };
        expect(&p, &[
            ("mount=/tmp", "EPERM"),
            ("remount=/", "EPERM"),
            ("umount", "EPERM"),
            ("fsopen", "EPERM"),
            ("open_tree", "EPERM"),
            // Owned by the host's root, which is nobody here; /proc/sys is also read-only.
            ("write=/proc/sys/kernel/hostname", "EACCES"),
            ("write=/proc/sysrq-trigger", sysrq),
            // The sandbox's /dev has only null, zero, full, random, urandom, tty, pts, shm.
            ("read=/dev/mem", "ENOENT"),
            ("read=/dev/kmsg", "ENOENT"),
            ("mknod=/tmp/mem", "EPERM"),
            ("ptrace", "EPERM"),
            ("process_vm_readv", "EPERM"),
            ("name_to_handle_at", "EPERM"),
            ("open_by_handle_at", "EPERM"),
            ("keyctl", "EPERM"),
            ("add_key", "EPERM"),
            ("unshare-user", "EPERM"),
            ("clone-user", "EPERM"),
            ("clone3", "ENOSYS"),
            // ... and glibc's fork, which tries clone3 first, falls back to clone.
            ("fork", "ok"),
            ("bpf", "EPERM"),
            ("perf_event_open", "EPERM"),
            ("userfaultfd", "EPERM"),
            ("io_uring_setup", "EPERM"),
            ("tiocsti", "EPERM"),
            ("personality", "EPERM"),
            ("raw-socket", "EPERM"),
            ("packet-socket", "EPERM"),
            // i386 mount is number 21, access(2) on x86_64: only the arch check stops it.
            ("i386-mount", "killed SYS"),
            ("x32-getpid", "killed SYS"),
        ]);
    }

    fn without_the_filter_those_calls_go_through(who) {
        // The control for the test above: the same calls, seccomp off. What succeeds here was
        // refused by the filter there, not by missing capabilities.
        let p = project(who, "[security]\nseccomp = \"off\"\n");
        expect(&p, &[
            ("ptrace", "ok"),
            ("process_vm_readv", "ok"),
            ("name_to_handle_at", "ok"),
            ("keyctl", "ok"),
            ("personality", "ok"),
            ("clone3", "ok"),
            // Without the arch check the i386 call is a mount, which only the missing
            // CAP_SYS_ADMIN refuses.
            ("i386-mount", "EPERM"),
        ]);
    }

    fn the_process_has_no_capability_no_new_privs_and_a_filter(who) {
        let p = project(who, "");
        let out = p.sh("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status");
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .unwrap_or_else(|| panic!("no {name} in {out}"))
                .trim()
                .to_string()
        };
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(field(set), "0000000000000000", "{set}");
        }
        assert_eq!(field("NoNewPrivs"), "1");
        assert_eq!(field("Seccomp"), "2", "filter mode");
    }

    fn a_setuid_binary_gains_nothing(who) {
        // uid 1000 inside runs a setuid-root copy of the probe. As root the copy belongs to
        // the sandbox's root (fixed host ids 200000.., so the file can be given to them, and
        // a bind that is not id-mapped); rootless, only one uid can be mapped, so it belongs
        // to the host's root. nosuid mounts, no_new_privs and the unmapped owner each stop it;
        // the test asserts the outcome.
        let (maps, owner) = match who {
            Who::Root => (
                "[[uid_map]]\ninside = 0\noutside = 200000\ncount = 65536\n[[gid_map]]\ninside = 0\noutside = 200000\ncount = 65536\n".to_string(),
                200_000,
            ),
            Who::Rootless => (
                "[[uid_map]]\ninside = 1000\noutside = \"self\"\ncount = 1\n[[gid_map]]\ninside = 1000\noutside = \"self\"\ncount = 1\n".to_string(),
                0,
            ),
        };
        let p = project(who, &format!(
            "[process]\nuser = 1000\ngroup = 1000\n{maps}\n[[mount]]\ntype = \"bind\"\nsource = \"suid\"\ntarget = \"/opt/suid\"\nidmap = false\n"
        ));
        let dir = p.mkdir("suid");
        let setuid = dir.join("probe");
        std::fs::copy(live::probe_dir().join("probe"), &setuid).unwrap();
        // Run unprivileged (the VM lane's rootless pass), the tests cannot give the file away:
        // it stays the caller's, whose one mapped uid is 1000 inside.
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&setuid, Some(owner), Some(owner)).unwrap();
        }
        std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let out = p.up(&["/opt/suid/probe", "ids"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            "ids uid=1000 euid=1000 capeff=0000000000000000 nnp=1 seccomp=2"
        );
    }

    fn net_bind_service_lets_uid_1000_bind_port_80(who) {
        let maps = match who {
            Who::Root => "",
            Who::Rootless => "[[uid_map]]\ninside = 1000\noutside = \"self\"\ncount = 1\n[[gid_map]]\ninside = 1000\noutside = \"self\"\ncount = 1\n",
        };
        let kept = project(who, &format!(
            "[process]\nuser = 1000\ngroup = 1000\n{maps}\n[security]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n"
        ));
        expect(&kept, &[("bind=80", "ok"), ("bind=8080", "ok")]);
        let dropped = project(who, &format!("[process]\nuser = 1000\ngroup = 1000\n{maps}"));
        expect(&dropped, &[("bind=80", "EACCES"), ("bind=8080", "ok")]);
    }

    fn landlock_allows_exactly_its_paths_and_ports(who) {
        // The probe checks /proc/self/uid_map before anything (it refuses to run on the host).
        let rules = r#"
[security.landlock]
read = ["/etc", "/proc/self/uid_map"]
write = ["/tmp"]
execute = ["/opt/probe"]
bind_tcp = [8080]
connect_tcp = [8080, 8081]
"#;
        let files = [
            ("read=/etc/passwd", "ok"),
            ("read=/usr/lib/os-release", "EACCES"),
            ("read=/proc/self/status", "EACCES"),
            ("create=/tmp/allowed", "ok"),
            // Writable for the mounts, not for landlock.
            ("create=/dev/shm/denied", "EACCES"),
        ];
        let ports = [
            ("serve=8080", "ok"),
            // Allowed, and nothing listens: the kernel's answer, not landlock's.
            ("connect=8081", "ECONNREFUSED"),
            ("bind=9090", "EACCES"),
            ("connect=9091", "EACCES"),
        ];
        // Rules the kernel cannot enforce (TCP before ABI 4, truncate before 3, ioctl before 5)
        // are refused with `required = true`, before anything starts.
        let abi = sandbox::sys::raw::landlock_abi();
        let required = project(who, &format!("{rules}required = true\n"));
        if abi >= 5 {
            expect(&required, &[&files[..], &ports[..]].concat());
            return;
        }
        let refused = required.up(&["/opt/probe/probe", "ids"]);
        assert_eq!(refused.status.code(), Some(125), "{}", stderr(&refused));
        let wanted = if abi == 0 {
            "landlock is required but this kernel does not offer it".to_string()
        } else {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            let major_minor: Vec<&str> = release.split('.').take(2).collect();
            format!("this kernel's landlock (Linux {}, ABI {abi}) cannot enforce", major_minor.join("."))
        };
        assert!(stderr(&refused).contains(&wanted), "{}", stderr(&refused));
        // `required = false`: what the kernel knows is enforced, and the plan says what is not.
        let optional = project(who, &format!("{rules}required = false\n"));
        let plan = optional.command(&["plan", "--", "true"]).output().unwrap();
        assert!(stdout(&plan).contains("landlock: this kernel"), "{}", stdout(&plan));
        let unenforced = [
            ("serve=8080", "ok"),
            ("connect=8081", "ECONNREFUSED"),
            ("bind=9090", "ok"),
            ("connect=9091", "ECONNREFUSED"),
        ];
        match abi {
            0 => expect(&optional, &[("read=/usr/lib/os-release", "ok"), ("bind=9090", "ok")]),
            1..=3 => expect(&optional, &[&files[..], &unenforced[..]].concat()),
            _ => expect(&optional, &[&files[..], &ports[..]].concat()),
        }
    }

    fn without_no_new_privs_the_filter_and_landlock_still_hold(who) {
        // The kernel then takes them only from a process with CAP_SYS_ADMIN: they go in before
        // the capabilities are dropped.
        let p = project(who, r#"
[security]
no_new_privileges = false
capabilities = ["CAP_NET_BIND_SERVICE"]

[security.landlock]
read = ["/etc", "/proc"]
execute = ["/opt/probe"]
"#);
        expect(&p, &[
            ("ptrace", "EPERM"),
            ("read=/etc/passwd", "ok"),
            ("read=/usr/lib/os-release", "EACCES"),
            ("ids", "uid=0 euid=0 capeff=0000000000000400 nnp=0 seccomp=2"),
        ]);
        let out = p.up(&["/bin/sh", "-c", "true"]);
        assert_eq!(out.status.code(), Some(126), "/bin/sh is outside the execute rules");
    }

    fn rlimits_are_the_manifests(who) {
        let p = project(who, "[security.rlimits]\nnofile = 64\nnproc = 500\nfsize = \"1M\"\n");
        let results = probe(&p, &["rlimits"]);
        assert_eq!(
            results,
            ["nofile 64 64", "nproc 500 500", "core 0 0", "fsize 1048576 1048576"]
        );
    }

    fn an_rlimit_above_the_callers_hard_limit_is_refused_before_anything_starts(who) {
        // The caller's hard limit, lowered for this run (anyone may lower it); nobody here may
        // raise it again (no CAP_SYS_RESOURCE), not even root.
        let run = |p: &Project, args: &str| {
            let script = format!("ulimit -n 4096 && exec \"$0\" {args} \"$1\" -- /bin/sh -c 'ulimit -Sn; ulimit -Hn'");
            p.as_user(Path::new("/bin/sh"))
                .args(["-c", &script, live::binary().to_str().unwrap(), p.manifest().to_str().unwrap()])
                .output()
                .unwrap()
        };
        let above = Project::new(who, "[rootfs]\nhost = true\n[security.rlimits]\nnofile = 8192\n");
        for (args, status) in [("check", 1), ("up --trust", 125)] {
            let out = run(&above, args);
            assert_eq!(out.status.code(), Some(status), "{args}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains("sandbox::rlimit::above-hard-limit"), "{args}: {err}");
            assert!(err.contains("`nofile = 8192` is above the caller's hard limit (4096)"), "{args}: {err}");
            assert!(err.contains("ulimit -Hn 8192"), "{args}: {err}");
            assert!(stdout(&out).is_empty(), "{args}: nothing ran");
        }
        let at = Project::new(who, "[rootfs]\nhost = true\n[security.rlimits]\nnofile = 4096\n");
        let out = run(&at, "up --trust");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "4096\n4096\n");
    }

    fn custom_profiles_deny_what_they_list(who) {
        let deny = project(who, "[security.seccomp]\ndefault_action = \"allow\"\ndeny = [\"getpid\"]\nerrno = \"EACCES\"\n");
        expect(&deny, &[("getpid", "EACCES"), ("ptrace", "ok")]);
        let allow = project(who, &format!(
            "[security.seccomp]\ndefault_action = \"errno\"\nallow = {PROBE_STARTUP}\nerrno = \"ENOSYS\"\n"
        ));
        expect(&allow, &[("say=hello", "hello"), ("getpid", "ENOSYS")]);
    }

    fn a_kill_profile_kills_and_says_so(who) {
        let p = project(who, &format!(
            "[security.seccomp]\ndefault_action = \"kill\"\nallow = {PROBE_STARTUP}\n"
        ));
        let out = p.up(&["/opt/probe/probe", "say=started", "getpid"]);
        assert_eq!(out.status.code(), Some(128 + libc::SIGSYS), "{}", stderr(&out));
        assert_eq!(stdout(&out), "started\n", "it ran until the forbidden call");
        assert!(
            stderr(&out).contains("killed by seccomp (SIGSYS"),
            "{}",
            stderr(&out)
        );
    }

    fn verbose_shows_what_the_filter_costs(who) {
        let p = project(who, "");
        let out = p.command(&["up", "--trust", "-v", p.manifest().to_str().unwrap(), "--", "true"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        for step in ["seccomp build", "security", "seccomp load"] {
            assert!(
                stderr(&out).lines().any(|l| l.contains(step) && l.trim_end().ends_with(" ms")),
                "no timing for {step}: {}",
                stderr(&out)
            );
        }
    }
}

/// The command, whatever capabilities it keeps and whatever its uid (`user`), cannot reach the
/// sandbox's init: not its memory, nor its /proc files, nor with ptrace or a debugger. And init
/// has locked itself down, which it does right after the command's execve: the probe's
/// SIGUSR1, sent to init and forwarded back by it, says it has. `maps`: the manifest's
/// top-level keys.
fn init_is_out_of_reach(p: &Project, maps: &str, user: u32) {
    for security in live::strongest_security() {
        let user_table = format!("[process]\nuser = {user}\ngroup = {user}\n");
        let manifest = with_probe(&format!("{user_table}{security}"));
        p.write("sandbox.toml", &format!("{maps}{manifest}"));
        let mut command = vec!["/opt/probe/probe", "echo-signal=1", "status=1"];
        command.extend(live::AT_INIT.iter().map(|(action, _)| *action));
        let mut expected = vec![("echo-signal=1", "ok")];
        expected.extend(live::INIT_LOCKED_DOWN);
        expected.extend(live::AT_INIT);
        live::assert_probed(&p.up(&command), &expected, &security);

        // strace and gdb, which sys_ptrace lets the default profile allow, are refused too
        // (an attach that worked would wait for init's end: `timeout` ends it).
        let out = p.up(&[
            "/bin/sh",
            "-c",
            "timeout 10 strace -p 1 -o /dev/null; echo strace $?; \
             gdb -batch -p 1 2>&1 | grep -o 'ptrace: Operation not permitted'",
        ]);
        let out = stdout(&out);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["strace 1", "ptrace: Operation not permitted"],
            "{security}{out}"
        );
    }
}

as_root_and_rootless! {
    fn the_command_cannot_reach_init_whatever_it_keeps(who) {
        init_is_out_of_reach(&project(who, ""), "", 0);
    }
}

/// Rootless with a range of ids and the command under another uid than init's.
#[test]
fn the_command_cannot_reach_init_from_another_uid_of_a_range_map() {
    if live::granted_available() {
        let maps = "uid_map = \"auto\"\ngid_map = \"auto\"\n";
        init_is_out_of_reach(&Project::granted(""), maps, 1000);
    }
}

/// What the static probe calls from execve to exit (found with strace -f), getpid excluded.
const PROBE_STARTUP: &str = r#"["execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "mprotect", "readlink", "readlinkat", "getrandom", "newfstatat", "fstat", "openat", "read", "close", "write", "exit_group"]"#;

/// As root, the host's files are the sandbox's only where they are the caller's own: the host's
/// system dirs and another user's folder are not id-mapped onto the sandbox's ids, overlaid or
/// bound, so the sandbox sees them as a rootless one does (their owners are nobody inside) and
/// what only the host's root or that user may read stays unreadable: /etc/shadow through a
/// writable overlay of the host's /etc, a root-only file and the user's own in their folder.
#[test]
fn as_root_what_is_not_the_callers_own_stays_unreadable() {
    if !live::available(Who::Root) {
        return;
    }
    let (uid, gid) = live::rootless_ids().expect("the test user");
    let theirs = tempfile::Builder::new()
        .prefix("sandbox-theirs-")
        .tempdir()
        .unwrap();
    let dir = theirs.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, owner) in [("root-only", (0, 0)), ("their-own", (uid, gid))] {
        let file = dir.join(name);
        std::fs::write(&file, "secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&file, Some(owner.0), Some(owner.1)).unwrap();
    }
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    let p = Project::new(
        Who::Root,
        &format!(
            "[rootfs]\nhost = true\noverlay = true\n[[mount]]\ntype = \"overlay\"\nsource = \"{0}\"\ntarget = \"/layer\"\n[[mount]]\ntype = \"bind\"\nsource = \"{0}\"\ntarget = \"/bound\"\n",
            dir.display()
        ),
    );
    let files = "/etc/shadow /layer/root-only /layer/their-own /bound/root-only /bound/their-own";
    let out = p.sh(&format!(
        "for f in {files}; do cat $f >/dev/null 2>&1 && echo \"$f read\" || echo \"$f denied\"; done; \
         stat -c %u {files}"
    ));
    let denied: String = files.split(' ').map(|f| format!("{f} denied\n")).collect();
    assert_eq!(out, format!("{denied}{}", "65534\n".repeat(5)));

    let manifest = p.manifest();
    let plan = p
        .command(&["plan", manifest.to_str().unwrap(), "--", "/bin/true"])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    for mount in [
        "overlay /usr over",
        "overlay /etc over",
        "overlay /layer over",
        "-> /bound",
    ] {
        let line = text
            .lines()
            .find(|line| line.contains(mount))
            .unwrap_or_else(|| panic!("no {mount}: {text}"));
        assert!(!line.contains("id-mapped"), "{line}");
    }
}
