//! The shipped dev environment as a developer meets it on day one, as root and rootless:
//! root-aware tools (tar, chown, setgroups, switching users), the sandbox's own host name
//! resolving in every network mode, USER, LOGNAME and a HOME of its own, and debuggers with the
//! documented setting.

mod live;

use std::path::{Path, PathBuf};

use live::{Project, Who, stderr, stdout};

fn reference(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(name)
}

/// What this host cannot give manifests/dev-env.toml, overridden in sandbox.local.toml as its
/// comments say: rootless, no cgroup controllers on a v1 host.
const LOCAL: &str = "[cgroup]\nrequired = false\n";

/// A project holding manifests/dev-env.toml as its sandbox.toml, and `local` as its
/// sandbox.local.toml (top-level keys first).
fn dev_env(p: Project, local: &str) -> Project {
    p.write(
        "sandbox.toml",
        &std::fs::read_to_string(reference("dev-env.toml")).unwrap(),
    );
    p.write("sandbox.local.toml", &format!("{local}{LOCAL}"));
    p
}

/// A tarball whose one file (src/f) belongs to uid and gid 1000, as archives made on a
/// developer's machine do.
fn owned_archive(p: &Project) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_cksum();
    builder
        .append_data(&mut header, "src/f", &b"hi\n"[..])
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    let path = p.path().join("owned.tar");
    std::fs::write(&path, bytes).unwrap();
    p.give(&path);
}

/// Runs root-aware tools in the dev environment; each prints one line.
const ROOT_AWARE: &str = "set -e; cd /tmp; tar xf /work/owned.tar; stat -c %u:%g src/f; \
    chown 4321:4321 src/f; stat -c %u:%g src/f; \
    python3 -c 'import os; os.setgroups([1, 2]); print(*sorted(os.getgroups()))'; \
    python3 -c 'import os; os.initgroups(\"root\", 0); print(0 in os.getgroups())'; \
    setpriv --reuid 1000 --regid 1000 --clear-groups id -u";

/// The sandbox's init, which keeps CAP_KILL as the dev environment's command does, must stay
/// out of that command's reach: its memory cannot be opened for writing.
const INIT_OUT_OF_REACH: &str =
    "python3 -c 'open(\"/proc/1/mem\", \"r+b\")' 2>&1 | grep -o PermissionError";

fn root_aware_tools_work(p: &Project) {
    owned_archive(p);
    let out = p.sh(&format!("{ROOT_AWARE}; {INIT_OUT_OF_REACH}"));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "1000:1000",
            "4321:4321",
            "1 2",
            "True",
            "1000",
            "PermissionError"
        ],
        "{out}"
    );
    let manifest = p.manifest();
    let check = p
        .command(&["check", manifest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        !stderr(&check).contains("capabilities"),
        "the container capabilities need no trust: {}",
        stderr(&check)
    );
}

#[test]
fn root_aware_tools_work_in_the_dev_environment_as_root() {
    if live::available(Who::Root) {
        root_aware_tools_work(&dev_env(Project::new(Who::Root, ""), ""));
    }
}

/// Rootless, chown to other ids needs a range of them: the grant's, through uid_map = "auto"
/// in sandbox.local.toml, as dev-env.toml says.
#[test]
fn root_aware_tools_work_in_the_dev_environment_rootless_with_a_grant() {
    if live::granted_available() {
        let local = "uid_map = \"auto\"\ngid_map = \"auto\"\n";
        let p = dev_env(Project::granted(""), local);
        root_aware_tools_work(&p);
        // The sandbox's uid 1000 is the grant's 1000th id: nobody else's.
        let (start, _) = live::GRANT;
        let outside = p.sh("cat /proc/self/uid_map | tr -s ' '");
        assert!(outside.contains(&format!(" 1 {start} 65535")), "{outside}");
    }
}

/// Rootless with only the caller's own id, there is no other id to chown to; `plan` says so,
/// and what maps a range.
#[test]
fn a_single_id_map_says_that_chown_cannot_leave_it() {
    if !live::available(Who::Rootless) {
        return;
    }
    let p = dev_env(Project::new(Who::Rootless, ""), "");
    owned_archive(&p);
    let manifest = p.manifest();
    let plan = p
        .command(&["plan", manifest.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stdout(&plan).contains("uid_map = \"auto\""),
        "{}",
        stdout(&plan)
    );
    let tar = p.up(&["/bin/sh", "-c", "cd /tmp && tar xf /work/owned.tar"]);
    assert_eq!(tar.status.code(), Some(2), "{}", stderr(&tar));
}

as_root_and_rootless! {
    // USER and LOGNAME from /etc/passwd, and a HOME of its own: dotfiles stay out of the
    // project.
    fn a_dev_shell_gets_user_logname_and_a_home_of_its_own(who) {
        let p = dev_env(Project::new(who, ""), "");
        let out = p.sh("echo $USER $LOGNAME $HOME; echo x > ~/.history; ls -A ~; ls -A /work");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "root root /root");
        assert_eq!(lines[1], ".history");
        assert!(!lines[2..].contains(&".history"), "{out}");
        assert!(!p.path().join(".history").exists());
    }

    // A command as uid 1000 is named as the root's /etc/passwd names 1000 (the host's, for
    // `rootfs.host`); a name the manifest sets wins.
    fn user_names_come_from_the_roots_passwd(who) {
        let p = Project::new(
            who,
            "[rootfs]\nhost = true\n[process]\nuser = 1000\ngroup = 1000\n",
        );
        let name = live::passwd_entry(|entry| entry.1 == 1000)
            .map(|(name, _, _)| name)
            .unwrap_or_default();
        assert_eq!(p.sh("echo \"$USER:$LOGNAME\""), format!("{name}:{name}\n"));
        p.write(
            "sandbox.toml",
            "[rootfs]\nhost = true\n[process]\nenv = { USER = \"me\" }\n",
        );
        assert_eq!(p.sh("echo \"$USER:$LOGNAME\""), "me:root\n");
    }

    // The root's /etc/passwd and /etc/hosts are read by the launcher, so a hostile root cannot
    // make it block on a FIFO or copy its own environment into the sandbox.
    fn a_hostile_roots_passwd_and_hosts_are_not_followed(who) {
        let p = Project::new(
            who,
            "[rootfs]\npath = \"./root\"\nreadonly = false\n[process]\ncommand = [\"/bin/sh\"]\n",
        );
        let root = p.mkdir("root");
        for dir in ["bin", "etc", "proc", "dev", "tmp"] {
            p.mkdir(&format!("root/{dir}"));
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static (.ci/run)");
        for applet in ["sh", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        nix::unistd::mkfifo(&root.join("etc/passwd"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", root.join("etc/hosts")).unwrap();
        for entry in ["bin", "bin/busybox", "bin/sh", "bin/cat", "bin/echo", "etc", "etc/passwd", "etc/hosts", "proc", "dev", "tmp"] {
            p.give(&root.join(entry));
        }
        let mut command = p.command(&["up", "--trust", "--", "/bin/sh", "-c", "echo \"[$USER]\"; cat /proc/1/mountinfo >/dev/null; cat /etc/hosts"]);
        command.env("SANDBOX_TEST_SECRET", "s3cret");
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let out = stdout(&output);
        assert!(out.starts_with("[]\n"), "a FIFO names nobody: {out}");
        assert!(!out.contains("s3cret"), "the launcher's environment stays out: {out}");
    }

    // The sandbox's host name resolves without a network, and with the host's (a root of the
    // host's /etc keeps the host's own entries), as `getent` and `hostname -f` look it up.
    fn the_host_name_resolves_in_every_network_mode(who) {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
        let names = "hosts = { db = \"10.1.2.3\" }\n";
        for network in [
            format!("[network]\n{names}"),
            format!("[namespaces]\nnet = false\n[network]\n{names}"),
            format!("[network]\nmode = \"pasta\"\n{names}"),
        ] {
            let p = Project::new(
                who,
                &format!("name = \"resolves\"\n[rootfs]\nhost = true\n{network}"),
            );
            let out = p.sh("getent hosts $(hostname) | tr -s ' '; hostname -f; getent hosts db | tr -s ' '; sed -n '/^# the root/,$p' /etc/hosts");
            let (lines, kept) = out.split_once("# the root's own /etc/hosts:\n").unwrap_or((&out, ""));
            assert_eq!(
                lines.lines().collect::<Vec<_>>(),
                ["127.0.1.1 resolves", "resolves", "10.1.2.3 db"],
                "{network}: {out}"
            );
            assert_eq!(kept.trim_end(), hosts.trim_end(), "{network}: the host's entries are kept");
        }
    }

    // strace and gdb work once the sandbox keeps sys_ptrace, as the dev template's comment
    // says; without it the seccomp profile refuses ptrace.
    fn debuggers_work_with_sys_ptrace(who) {
        let p = Project::new(who, "[rootfs]\nhost = true\n");
        let refused = p.up(&["strace", "-o", "/dev/null", "/bin/true"]);
        assert!(!refused.status.success());
        assert!(stderr(&refused).contains("Operation not permitted"), "{}", stderr(&refused));
        p.write(
            "sandbox.toml",
            "[rootfs]\nhost = true\n[security]\ncapabilities = [\"sys_ptrace\"]\n",
        );
        let out = p.sh(
            "strace -f -e trace=execve -o /tmp/trace /bin/true && grep -c execve /tmp/trace; \
             gdb -batch -ex run --args /bin/true 2>&1 | grep -c 'exited normally'",
        );
        assert_eq!(out.lines().collect::<Vec<_>>(), ["1", "1"], "{out}");
    }
}

/// A caller /etc/passwd does not know (a user of LDAP or systemd-homed, a bare uid), without
/// $USER: `${USER}` is an error in the manifest. The build static against glibc asked
/// nsswitch.conf's next service, systemd, whose module glibc loaded with dlopen, and died of
/// SIGSEGV in it; it now asks the built-in `files` only, as the musl build does.
#[test]
fn a_caller_the_password_file_does_not_know_gets_an_error_not_a_crash() {
    if !live::available(Who::Root) {
        return;
    }
    let p = Project::new(
        Who::Root,
        "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/echo\", \"${USER}\"]\n",
    );
    let unknown = (60_000..65_000)
        .find(|&id| live::passwd_entry(|entry| entry.1 == id).is_none())
        .expect("a uid /etc/passwd lacks");
    let out = live::as_ids((unknown, unknown), live::binary())
        .args(["plan", p.manifest().to_str().unwrap()])
        .current_dir(p.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("variable `USER` is not defined"), "{err}");
}

/// `plan` names the notable system calls the seccomp profile blocks, and the key that allows
/// each; keeping sys_ptrace takes ptrace off the list.
#[test]
fn plan_names_what_seccomp_blocks_and_what_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("sandbox.toml");
    let plan = |text: &str| {
        std::fs::write(&manifest, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sandbox"))
            .args(["plan", manifest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    const BASE: &str = "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\n";
    let strict = plan(BASE);
    for line in [
        "seccomp blocks ptrace (strace, gdb): capabilities = [\"sys_ptrace\"] allows it",
        "seccomp blocks the mount API",
        "seccomp blocks bpf: capabilities = [\"bpf\"] allows it",
        "seccomp blocks perf_event_open (perf): capabilities = [\"perfmon\"] allows it",
        "seccomp blocks keyrings (keyctl, add_key, request_key): only a custom `seccomp` table allows it",
        "seccomp blocks kexec",
    ] {
        assert!(strict.contains(line), "{line} in:\n{strict}");
    }
    let debugging = plan(&format!(
        "{BASE}[security]\ncapabilities = [\"sys_ptrace\"]\n"
    ));
    assert!(!debugging.contains("seccomp blocks ptrace"), "{debugging}");
    assert!(debugging.contains("seccomp blocks bpf"));
}
