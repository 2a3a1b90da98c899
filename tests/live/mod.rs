//! The harness for tests that run `sandbox` for real: as root, and as an unprivileged user the
//! harness creates. Tests start the built binary; they never run the executor in this
//! (multi-threaded) test process.
//!
//! A test that cannot run here (not root, no user namespaces) is skipped with a message, except
//! under CI=true, where it fails: CI must exercise every kernel feature.

#![allow(dead_code)] // each test crate uses its own part of this module

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Who runs `sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    Rootless,
}

/// The unprivileged account the harness creates when it runs as root.
pub const TEST_USER: &str = "sandbox-test";

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Skip the calling test (return false) when `who` cannot run here; under CI, fail instead.
pub fn available(who: Who) -> bool {
    let why = match who {
        Who::Root if euid() != 0 => Some("needs root".to_string()),
        Who::Rootless if euid() == 0 && rootless_ids().is_none() => {
            Some(format!("cannot create the user {TEST_USER}"))
        }
        _ => None,
    };
    match why {
        None => true,
        Some(why) if in_ci() => panic!("this test must run under CI=true but {why}"),
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// A second unprivileged account, for tests where another local user attacks the first.
pub const OTHER_USER: &str = "sandbox-other";

/// uid and gid of the unprivileged test user (created on first use when running as root), or
/// of the current user when the tests themselves run unprivileged.
pub fn rootless_ids() -> Option<(u32, u32)> {
    static IDS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *IDS.get_or_init(|| {
        if euid() != 0 {
            return Some((euid(), nix::unistd::getegid().as_raw()));
        }
        account(TEST_USER)
    })
}

/// uid and gid of [`OTHER_USER`], created on first use; `None` unless the tests run as root.
pub fn other_ids() -> Option<(u32, u32)> {
    static IDS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *IDS.get_or_init(|| (euid() == 0).then(|| account(OTHER_USER)).flatten())
}

/// uid and gid of a system account without a home or a shell, created when missing.
fn account(name: &str) -> Option<(u32, u32)> {
    let lookup = || passwd_entry(|entry| entry.0 == name).map(|(_, uid, gid)| (uid, gid));
    if lookup().is_none() {
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status();
    }
    lookup()
}

/// The first entry `(name, uid, gid)` of /etc/passwd that `pick` takes. Read from the file,
/// not through NSS: the test binaries are static against glibc (.cargo/config.toml), where a
/// name service other than the built-in `files` (nsswitch.conf's `systemd`, asked about a name
/// /etc/passwd lacks) is loaded with dlopen and crashes the process.
pub fn passwd_entry(pick: impl Fn(&(String, u32, u32)) -> bool) -> Option<(String, u32, u32)> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_string();
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((name, uid, gid))
        })
        .find(|entry| pick(entry))
}

/// An unprivileged account with a grant of ids in /etc/subuid and /etc/subgid, for tests of
/// `uid_map = "auto"` (TEST_USER has none, as most tests want the single-id map).
pub const GRANTED_USER: &str = "sandbox-grant";
/// Its grant: far from root's default range (100000-165535), whose files it must not reach.
pub const GRANT: (u32, u32) = (1_000_000, 65_536);

/// uid and gid of [`GRANTED_USER`], created with its grant on first use (as root); `None`
/// when the tests do not run as root or it cannot be made.
pub fn granted_ids() -> Option<(u32, u32)> {
    static IDS: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *IDS.get_or_init(|| {
        if euid() != 0 {
            return None;
        }
        let ids = account(GRANTED_USER)?;
        let granted = |file: &str| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .any(|line| line.starts_with(&format!("{GRANTED_USER}:")))
        };
        if !granted("/etc/subuid") || !granted("/etc/subgid") {
            let range = format!("{}-{}", GRANT.0, GRANT.0 + GRANT.1 - 1);
            let _ = Command::new("usermod")
                .args([
                    "--add-subuids",
                    &range,
                    "--add-subgids",
                    &range,
                    GRANTED_USER,
                ])
                .status();
        }
        (granted("/etc/subuid") && granted("/etc/subgid")).then_some(ids)
    })
}

/// Skip the calling test (return false) when [`GRANTED_USER`] cannot run here; under CI,
/// fail instead.
pub fn granted_available() -> bool {
    match granted_ids() {
        Some(_) => true,
        None if in_ci() => {
            panic!("this test must run under CI=true but cannot create {GRANTED_USER} with a grant")
        }
        None => {
            eprintln!("skipped: needs root to create {GRANTED_USER} with a grant");
            false
        }
    }
}

/// `PROGRAM` as the unprivileged user `ids`, through setpriv (the tests run as root).
pub fn as_ids(ids: (u32, u32), program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid",
        &ids.0.to_string(),
        "--regid",
        &ids.1.to_string(),
        "--clear-groups",
        "--",
    ]);
    command.arg(program);
    command
}

/// Whether the rootless user holds a grant in /etc/subuid and /etc/subgid, for range maps
/// (`uid_map = "auto"`). Running as root, the harness gives its own user one on first use (ids
/// 300000..365535, apart from root's sandboxes' 100000..165535). Skips like [`available`] when
/// there is none.
pub fn subid_grant() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    let granted = *GRANTED.get_or_init(|| {
        let Some((uid, _)) = rootless_ids() else {
            return false;
        };
        let name = passwd_entry(|entry| entry.1 == uid).map(|(name, _, _)| name);
        let granted = || {
            ["/etc/subuid", "/etc/subgid"].iter().all(|file| {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                !sandbox::host::parse_subids(&text, uid, name.as_deref()).is_empty()
            })
        };
        if !granted() && euid() == 0 {
            let _ = Command::new("usermod")
                .args([
                    "--add-subuids",
                    "300000-365535",
                    "--add-subgids",
                    "300000-365535",
                ])
                .arg(name.as_deref().unwrap_or(TEST_USER))
                .status();
        }
        granted()
    });
    match granted {
        true => true,
        false if in_ci() => {
            panic!("this test must run under CI=true but {TEST_USER} has no subuid grant")
        }
        false => {
            eprintln!("skipped: the rootless user has no grant in /etc/subuid and /etc/subgid");
            false
        }
    }
}

/// The binary in a world-readable place: the checkout may sit in a 0700 folder the test user
/// cannot enter. A hard link where the file system allows it, a copy otherwise, in a folder
/// named after this test process. A test process has no teardown, so each one first removes the
/// folders of test processes that are gone.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        const PREFIX: &str = "sandbox-bin-";
        let temp = std::env::temp_dir();
        for entry in std::fs::read_dir(&temp).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let owner = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
            if let Some(pid) = owner.and_then(|pid| pid.parse::<u32>().ok())
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = temp.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let target = dir.join("sandbox");
        let built = env!("CARGO_BIN_EXE_sandbox");
        let _ = std::fs::remove_file(&target);
        if std::fs::hard_link(built, &target).is_err() {
            std::fs::copy(built, &target).expect("copy the binary");
        }
        target
    })
}

/// The folder holding tests/probe/probe.c, compiled (statically, so it runs in any root), next
/// to the copy of `sandbox` the harness runs (a world-readable place, so the rootless user can
/// reach it). Tests bind it into their sandboxes at /opt/probe.
///
/// `SANDBOX_TEST_PROBE` names a probe compiled beforehand, copied instead: the VM lane
/// (tests/vm/run.sh) compiles it once on the host, where gcc takes a second rather than the
/// half minute it takes under software emulation in each test binary.
pub fn probe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = binary().parent().expect("a folder").join("probe");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        if let Some(built) = std::env::var_os("SANDBOX_TEST_PROBE") {
            std::fs::copy(&built, dir.join("probe")).expect("copy SANDBOX_TEST_PROBE");
            return dir;
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c");
        let output = Command::new("gcc")
            .args(["-static", "-O1", "-Wall", "-o"])
            .arg(dir.join("probe"))
            .arg(&source)
            .output()
            .expect("gcc runs (.ci/run installs it)");
        assert!(
            output.status.success(),
            "compiling the probe failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
}

/// A project folder holding a sandbox.toml, readable (and writable) by the user that runs it.
pub struct Project {
    dir: tempfile::TempDir,
    pub who: Who,
    /// Rootless: the account that runs it, when not TEST_USER (see [`Project::granted`]).
    account: Option<(u32, u32)>,
}

impl Project {
    pub fn new(who: Who, manifest: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("sandbox-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let project = Project {
            dir,
            who,
            account: None,
        };
        project.write("sandbox.toml", manifest);
        project
    }

    /// A rootless project run by [`GRANTED_USER`], whose grant `uid_map = "auto"` maps.
    pub fn granted(manifest: &str) -> Project {
        let mut project = Project::new(Who::Root, manifest);
        project.who = Who::Rootless;
        project.account = granted_ids();
        project.give(&project.manifest());
        project
    }

    /// uid and gid of the rootless account that runs the project.
    fn rootless_account(&self) -> (u32, u32) {
        self.account.or_else(rootless_ids).expect("rootless user")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.path().join("sandbox.toml")
    }

    /// Write a file in the project, owned by the user that runs the sandbox.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
        self.give(&path);
        path
    }

    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::create_dir_all(&path).expect("mkdir");
        self.give(&path);
        path
    }

    /// Hand a path (and the project folder) to the rootless user.
    pub fn give(&self, path: &Path) {
        if self.who == Who::Rootless && euid() == 0 {
            let (uid, gid) = self.rootless_account();
            for p in [self.path(), path] {
                std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("chown");
            }
        }
    }

    /// `PROGRAM` as the project's user, in the project folder, with a minimal environment.
    pub fn as_user(&self, program: &Path) -> Command {
        let mut command = match (self.who, euid()) {
            (Who::Rootless, 0) => as_ids(self.rootless_account(), program),
            _ => Command::new(program),
        };
        // Records go in the project, not the machine's state folder: what a test leaves (a
        // SIGKILLed supervisor's record) goes with the project.
        command
            .current_dir(self.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("SANDBOX_STATE_DIR", self.path().join(".state"));
        command.stdin(Stdio::null());
        command
    }

    /// `sandbox ARGS...` as the project's user, in the project folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.as_user(binary());
        command.args(args);
        command
    }

    /// `sandbox up --trust` on the project's manifest, with `command` after `--`. (Trust has its
    /// own tests; the others exercise what runs.)
    pub fn up(&self, command: &[&str]) -> Output {
        let manifest = self.manifest();
        let mut args = vec!["up", "--trust", manifest.to_str().unwrap(), "--"];
        args.extend_from_slice(command);
        self.command(&args).output().expect("run sandbox")
    }

    /// `sh -c SCRIPT` in the sandbox; panics with the output unless it exits 0.
    pub fn sh(&self, script: &str) -> String {
        let output = self.up(&["/bin/sh", "-c", script]);
        assert!(
            output.status.success(),
            "sandbox up failed ({}):\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8 output")
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The uid map (`which` 0) or gid map (1) a rootless caller gets by default, as /proc shows it
/// with the spaces squeezed. (Root's sandboxes each lease a block of their own: see
/// tests/ids.rs.)
pub fn rootless_default_map(which: usize) -> String {
    let ids = rootless_ids().expect("rootless user");
    format!("0 {} 1", if which == 0 { ids.0 } else { ids.1 })
}

/// Wait (bounded) for `done`; the bound only keeps a broken test from hanging.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Processes whose command line contains `marker`, as seen from the host.
pub fn processes_with(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// Run the test body once as root and once rootless: `as_root_and_rootless! { fn name(who) { ... } }`.
#[macro_export]
macro_rules! as_root_and_rootless {
    ($(fn $name:ident($who:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn body($who: live::Who) $body

                #[test]
                fn root() {
                    if live::available(live::Who::Root) {
                        body(live::Who::Root)
                    }
                }

                #[test]
                fn rootless() {
                    if live::available(live::Who::Rootless) {
                        body(live::Who::Rootless)
                    }
                }
            }
        )*
    };
}

/// The `[security]` tables of the two sandboxes whose command reaches furthest: the dev
/// environment's capabilities (`kill` among them) with `sys_ptrace` under the default seccomp
/// profile (which then allows ptrace), and every capability there is, without seccomp or
/// no_new_privs.
pub fn strongest_security() -> [String; 2] {
    let quoted = |names: &mut dyn Iterator<Item = caps::Capability>| {
        let names: std::collections::BTreeSet<String> =
            names.map(|name| format!("\"{name}\"")).collect();
        names.into_iter().collect::<Vec<_>>().join(", ")
    };
    let dev = sandbox::plan::CONTAINER_CAPABILITIES.iter().copied();
    [
        format!(
            "[security]\ncapabilities = [{}]\n",
            quoted(&mut dev.chain([caps::Capability::CAP_SYS_PTRACE]))
        ),
        format!(
            "[security]\ncapabilities = [{}]\nseccomp = \"off\"\nno_new_privileges = false\n",
            quoted(&mut caps::all().into_iter())
        ),
    ]
}

/// What tests/probe/probe.c tries against the sandbox's init (pid 1), and what the kernel must
/// answer whatever the trying process's capabilities and uid: init's memory, its /proc files
/// and ptrace are the host root's alone.
pub const AT_INIT: [(&str, &str); 13] = [
    ("open-rw=/proc/1/mem", "EACCES"),
    ("open=/proc/1/mem", "EACCES"),
    ("ptrace=1", "EPERM"),
    ("process_vm_readv=1", "EPERM"),
    ("process_vm_writev=1", "EPERM"),
    ("pidfd_getfd=1", "EPERM"),
    ("read=/proc/1/environ", "EACCES"),
    ("readlink=/proc/1/exe", "EACCES"),
    ("readlink=/proc/1/cwd", "EACCES"),
    ("readlink=/proc/1/root", "EACCES"),
    ("open=/proc/1/ns/user", "EACCES"),
    ("open=/proc/1/fd", "EACCES"),
    ("open=/proc/1/map_files", "EACCES"),
];

/// Init's own confinement, as /proc/1/status says it once init has locked itself down: no
/// new privileges, an empty bounding set, CAP_KILL alone, and a seccomp filter.
pub const INIT_LOCKED_DOWN: [(&str, &str); 7] = [
    ("NoNewPrivs", "1"),
    ("CapBnd", "0000000000000000"),
    ("CapInh", "0000000000000000"),
    ("CapPrm", "0000000000000020"),
    ("CapEff", "0000000000000020"),
    ("CapAmb", "0000000000000000"),
    ("Seccomp", "2"),
];

/// What the probe printed, by action (`ACTION RESULT` lines) and by status field (`status
/// FIELD VALUE` lines).
pub fn probe_results(out: &str) -> std::collections::BTreeMap<String, String> {
    out.lines()
        .filter_map(|line| {
            let (action, result) = line.split_once(' ')?;
            Some(match action {
                "status" => {
                    let (field, value) = result.split_once(' ')?;
                    (field.to_string(), value.to_string())
                }
                _ => (action.to_string(), result.to_string()),
            })
        })
        .collect()
}

/// Assert that the probe ran and printed `expected`; a failure names every difference at
/// once, after `context`.
pub fn assert_probed(out: &Output, expected: &[(&str, &str)], context: &str) {
    assert!(out.status.success(), "{context}{}", stderr(out));
    let printed = stdout(out);
    let results = probe_results(&printed);
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(key, value)| results.get(*key).map(String::as_str) != Some(*value))
        .map(|(key, value)| format!("{key}: {:?}, expected {value}", results.get(*key)))
        .collect();
    assert!(wrong.is_empty(), "{context}{}\n{printed}", wrong.join("\n"));
}

/// The cgroup v2 controllers delegated to the rootless user where its sandboxes start, the way
/// systemd delegates user@UID.service: the topmost of this process's group and its ancestors
/// that the user owns, and that group's cgroup.controllers. Empty on cgroup v1 (no delegation)
/// and where the user owns no group of its own (the harness as root runs the rootless user
/// from its own group, which root owns). The harness's own reading, not `sandbox`'s.
pub fn delegated_to_rootless() -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Some((uid, _)) = rootless_ids() else {
        return Vec::new();
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    // Pure v2 only: one line, `0::PATH`.
    let [line] = own.lines().collect::<Vec<_>>()[..] else {
        return Vec::new();
    };
    let Some(path) = line.strip_prefix("0::") else {
        return Vec::new();
    };
    let root = Path::new("/sys/fs/cgroup");
    let mut base = None;
    let mut dir = root.join(path.trim_start_matches('/'));
    while dir.starts_with(root) && dir != root {
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.uid() == uid => base = Some(dir.clone()),
            _ => break,
        }
        dir.pop();
    }
    base.and_then(|base| std::fs::read_to_string(base.join("cgroup.controllers")).ok())
        .map(|text| text.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}
