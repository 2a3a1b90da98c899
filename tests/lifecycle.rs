//! Named sandboxes: `up -d`, `ps`, `exec`, `logs`, `down`, as root and rootless.

mod live;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use live::{Project, Who, stderr, stdout};

/// A project whose sandboxes keep their records in their own state folder.
struct Named {
    project: Project,
    state: PathBuf,
}

impl Named {
    fn new(who: Who, manifest: &str) -> Named {
        let project = Project::new(who, manifest);
        let state = project.mkdir("state");
        Named { project, state }
    }

    fn sandbox(&self, args: &[&str]) -> Output {
        self.project
            .command(args)
            .env("SANDBOX_STATE_DIR", &self.state)
            .output()
            .expect("run sandbox")
    }

    fn up_detached(&self, name: &str) -> Output {
        let manifest = self.project.manifest();
        self.sandbox(&[
            "up",
            "-d",
            "--trust",
            "--name",
            name,
            manifest.to_str().unwrap(),
        ])
    }

    fn ps(&self) -> Vec<serde_json::Value> {
        let out = self.sandbox(&["ps", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }

    fn exec(&self, name: &str, script: &str) -> String {
        let out = self.sandbox(&["exec", name, "--", "/bin/sh", "-c", script]);
        assert!(out.status.success(), "exec failed: {}", stderr(&out));
        stdout(&out)
    }

    fn record(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read(self.state.join(format!("{name}.json"))).unwrap();
        serde_json::from_slice(&text).unwrap()
    }
}

/// A small tmpfs over a folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, owner: (u32, u32), size: &str) -> Tmpfs {
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700,uid={},gid={}", owner.0, owner.1).as_str()),
        )
        .expect("mount a tmpfs");
        Tmpfs(dir.to_path_buf())
    }

    /// Fill it to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.write_all(&[0]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The uid and gid that run `who`'s sandboxes.
fn ids(who: Who) -> (u32, u32) {
    match who {
        Who::Root => (0, 0),
        Who::Rootless => live::rootless_ids().unwrap(),
    }
}

/// Wait (bounded) for `done`; the bound only keeps a broken test from hanging.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The sandbox's command prints its own view, then waits.
const VIEW: &str = "cat /proc/self/uid_map; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; cut -d' ' -f5 /proc/self/mountinfo | sort | tr '\\n' ' '; echo; echo view-done";

fn manifest(extra: &str) -> String {
    format!(
        "[rootfs]\nhost = true\n[uts]\nhostname = \"jailed\"\n[process]\ncommand = [\"/bin/sh\", \"-c\", \"{}; exec sleep 1000\"]\n{extra}",
        VIEW.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

as_root_and_rootless! {
    fn exec_joins_everything_and_is_as_confined(who) {
        let extra = if who == Who::Root { "[cgroup]\nmemory = \"256M\"\npids = 64\n" } else { "" };
        let n = Named::new(who, &manifest(extra));
        let up = n.up_detached("joined");
        assert!(up.status.success(), "{}", stderr(&up));
        assert_eq!(stdout(&up), "joined\n");

        let listed = n.ps();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["name"], "joined");
        assert_eq!(listed[0]["status"], "running");
        assert!(listed[0]["memory_bytes"].is_null() == (who == Who::Rootless), "{:?}", listed[0]);

        assert!(eventually(|| stdout(&n.sandbox(&["logs", "joined"])).contains("view-done")));
        let original = stdout(&n.sandbox(&["logs", "joined"]));
        let joined = n.exec("joined", VIEW);
        assert_eq!(joined, original, "exec sees what the sandbox's command sees");
        assert_eq!(n.exec("joined", "hostname"), "jailed\n");
        let pids = n.exec("joined", "cat /proc/2/cmdline | tr '\\0' ' '");
        assert!(pids.starts_with("sleep 1000"), "the same pid namespace: {pids}");
        let status = n.sandbox(&["exec", "joined", "--", "/bin/sh", "-c", "exit 9"]);
        assert_eq!(status.status.code(), Some(9));

        let record = n.record("joined");
        let cgroups: Vec<PathBuf> = record["cgroups"].as_array().unwrap().iter().map(|c| PathBuf::from(c.as_str().unwrap())).collect();
        assert_eq!(cgroups.is_empty(), who == Who::Rootless);
        let marker = n.project.path().to_str().unwrap().to_string();

        let started = Instant::now();
        let down = n.sandbox(&["down", "joined", "--timeout", "5s"]);
        assert!(down.status.success(), "{}", stderr(&down));
        assert!(started.elapsed() < Duration::from_secs(5), "sleep dies of SIGTERM at once");
        assert!(n.ps().is_empty());
        assert!(std::fs::read_dir(&n.state).unwrap().next().is_none(), "no record left");
        assert!(live::processes_with(&marker).is_empty(), "no process left");
        for group in cgroups {
            assert!(!group.exists(), "cgroup {} left", group.display());
        }
    }

    fn a_running_name_is_refused_and_a_killed_supervisor_is_cleaned(who) {
        let n = Named::new(who, &manifest(""));
        assert!(n.up_detached("once").status.success());
        let again = n.up_detached("once");
        assert_eq!(again.status.code(), Some(125));
        assert!(stderr(&again).contains("already running"), "{}", stderr(&again));

        let supervisor = n.record("once")["supervisor_pid"].as_i64().unwrap() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
        let marker = n.project.path().to_str().unwrap().to_string();
        assert!(eventually(|| live::processes_with(&marker).is_empty()), "the sandbox died with its supervisor");
        assert!(n.ps().is_empty(), "ps lists nothing");
        assert!(std::fs::read_dir(&n.state).unwrap().next().is_none(), "and cleaned the stale record");
        assert!(n.up_detached("once").status.success(), "the name is free again");
        assert!(n.sandbox(&["down", "once"]).status.success());
    }

    fn ten_sandboxes_started_in_parallel_get_ten_records(who) {
        let n = Named::new(who, &manifest(""));
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let manifest = n.project.manifest();
                let mut command = n.project.command(&["up", "-d", "--trust", "--name", &format!("par{i}"), manifest.to_str().unwrap()]);
                command.env("SANDBOX_STATE_DIR", &n.state);
                command.spawn().unwrap()
            })
            .collect();
        for mut handle in handles {
            assert!(handle.wait().unwrap().success());
        }
        let listed = n.ps();
        let mut ids: Vec<&str> = listed.iter().map(|r| r["id"].as_str().unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10, "{listed:?}");
        let down = n.sandbox(&["down", "--all", "--timeout", "5s"]);
        assert!(down.status.success(), "{}", stderr(&down));
        assert!(n.ps().is_empty());
    }

    fn logs_follow_until_the_sandbox_ends(who) {
        let n = Named::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\", \"-c\", \"echo one; sleep 0.3; echo two\"]\n");
        assert!(n.up_detached("brief").status.success());
        let followed = n.sandbox(&["logs", "-f", "brief"]);
        assert_eq!(stdout(&followed), "one\ntwo\n", "{}", stderr(&followed));
    }

    fn a_stderr_nobody_reads_any_more_ends_no_run_halfway(who) {
        // `sandbox up -v ... 2>&1 | grep -m1 ...`: the reader is gone before the launcher's
        // last words. The run still ends as its command did, and removes its record.
        let n = Named::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/true\"]\n");
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let manifest = n.project.manifest();
        let status = n
            .project
            .command(&["up", "-v", "--trust", "--name", "unread", manifest.to_str().unwrap()])
            .env("SANDBOX_STATE_DIR", &n.state)
            .stderr(std::process::Stdio::from(write_end))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
        assert!(std::fs::read_dir(&n.state).unwrap().next().is_none(), "no record left");
    }
    fn a_sandbox_whose_record_cannot_be_written_does_not_start(who) {
        // Mounting the full folder needs root; the sandbox runs as `who`.
        if !live::available(Who::Root) {
            return;
        }
        let n = Named::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"sleep\", \"1000.0625\"]\n");
        let full = Tmpfs::mount(&n.state, ids(who), "64k");
        full.fill();
        let up = n.up_detached("full");
        assert_eq!(up.status.code(), Some(125), "{}", stderr(&up));
        assert!(stdout(&up).is_empty(), "no name: nobody could see it");
        let said = stderr(&up);
        assert!(said.contains("was not started") && said.contains("No space left on device"), "{said}");
        let manifest = n.project.manifest();
        let foreground = n.sandbox(&["up", "--trust", "--name", "fg", manifest.to_str().unwrap()]);
        assert_eq!(foreground.status.code(), Some(125), "{}", stderr(&foreground));
        assert!(stderr(&foreground).contains("was not started"), "{}", stderr(&foreground));
        let marker = n.project.path().to_str().unwrap().to_string();
        assert!(eventually(|| live::processes_with(&marker).is_empty()), "a supervisor is left");
        assert!(live::processes_with("1000.0625").is_empty(), "the command ran");
        let left: Vec<_> = std::fs::read_dir(&n.state).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["filler"], "a record or log is left");
        drop(full);
        assert!(n.up_detached("full").status.success(), "with room, it starts");
        assert!(n.sandbox(&["down", "full"]).status.success());
    }

    fn a_detached_start_that_fails_says_what_the_foreground_one_says(who) {
        // A bind onto a path under a file: the mount step fails, after every check passed.
        let n = Named::new(who, "[rootfs]\nhost = true\n[[mount]]\ntype = \"bind\"\nsource = \".\"\ntarget = \"/etc/passwd/sub\"\n[process]\ncommand = [\"sleep\", \"1000.125\"]\n");
        let good = n.project.write("good.toml", "[rootfs]\nhost = true\n[process]\ncommand = [\"sleep\", \"1000.125\"]\n");
        let (bad, good) = (n.project.manifest(), good);
        let (bad, good) = (bad.to_str().unwrap(), good.to_str().unwrap());
        for (manifest, command, status, said) in [
            (bad, None, 125, "step `mount` failed"),
            (good, Some("nosuchcmd"), 127, "executing nosuchcmd"),
        ] {
            let mut args = vec!["up", "--trust", "--name", "broken", manifest];
            args.extend(command.map(|c| ["--", c]).iter().flatten());
            let foreground = n.sandbox(&args);
            args.insert(1, "-d");
            let detached = n.sandbox(&args);
            assert_eq!(foreground.status.code(), Some(status), "{}", stderr(&foreground));
            assert_eq!(detached.status.code(), Some(status), "{}", stderr(&detached));
            assert!(stderr(&foreground).contains(said), "{}", stderr(&foreground));
            assert_eq!(stderr(&detached), stderr(&foreground), "the same diagnostic");
            assert!(stdout(&detached).is_empty(), "no name: it does not run");
            assert!(n.ps().is_empty());
            assert!(std::fs::read_dir(&n.state).unwrap().next().is_none(), "a record is left");
        }
        assert!(live::processes_with("1000.125").is_empty(), "the command ran");
        // Exit 0 means it runs, at once, not eventually.
        let up = n.sandbox(&["up", "-d", "--trust", "--name", "fine", good]);
        assert!(up.status.success(), "{}", stderr(&up));
        let listed = n.ps();
        assert_eq!((listed.len(), &listed[0]["status"]), (1, &"running".into()), "{listed:?}");
        assert!(n.sandbox(&["down", "fine"]).status.success());
    }
}
