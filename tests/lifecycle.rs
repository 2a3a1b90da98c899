//! Named sandboxes: `up -d`, `ps`, `exec`, `logs`, `down`, as root and rootless.

mod live;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use live::{Project, Who, stderr, stdout};

/// A project whose sandboxes keep their records in their own state folder.
struct Named {
    project: Project,
    state: PathBuf,
}

impl Named {
    fn new(who: Who, manifest: &str) -> Named {
        Named::of(Project::new(who, manifest))
    }

    fn of(project: Project) -> Named {
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
        let text = std::fs::read_to_string(self.state.join(format!("{name}.json"))).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }

    /// `ps --all --json`.
    fn ps_all(&self) -> Vec<serde_json::Value> {
        let out = self.sandbox(&["ps", "--all", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    }

    /// A process of the project's user that is no sandbox's.
    fn bystander(&self) -> Child {
        self.project
            .as_user(Path::new("/bin/sleep"))
            .arg("1000")
            .spawn()
            .unwrap()
    }

    /// What an attacker writes at `path`: the record of the running `real`, renamed `name`,
    /// naming `pid` as its supervisor and its init. Locked, as a live supervisor's is, by
    /// the file returned.
    fn plant(&self, path: &Path, name: &str, pid: u32) -> std::fs::File {
        let mut record = self.record("real");
        record["name"] = name.into();
        record["supervisor_pid"] = pid.into();
        record["init_pid"] = pid.into();
        let mut text = serde_json::to_vec(&record).unwrap();
        text.push(b'\n');
        std::fs::write(path, text).unwrap();
        self.project.give(path);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        assert!(sandbox::lockfile::ofd::try_lock(&file).unwrap());
        file
    }
}

/// Stops a detached sandbox when dropped, also when a failing test unwinds.
struct Downed<'a>(&'a Named, &'a str);

impl Drop for Downed<'_> {
    fn drop(&mut self) {
        let _ = self.0.sandbox(&["down", self.1, "--timeout", "1s"]);
    }
}

fn alive(process: &mut Child) -> bool {
    process.try_wait().unwrap().is_none()
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

/// `ps`, `exec` and `down` reach a detached sandbox whose command keeps the capabilities that
/// reach furthest (see `live::strongest_security`) as uid `user`, without reaching into its
/// init, which is out of reach of what `exec` runs too. `maps`: the manifest's top-level keys.
fn a_locked_down_sandbox_is_still_reached(n: &Named, maps: &str, user: u32) {
    for security in live::strongest_security() {
        let manifest = format!(
            "{maps}[rootfs]\nhost = true\n[[mount]]\ntype = \"bind\"\nsource = \"{}\"\ntarget = \"/opt/probe\"\n\
             [process]\nuser = {user}\ngroup = {user}\ncommand = [\"/opt/probe/probe\", \"echo-signal=1\", \"pause\"]\n{security}",
            live::probe_dir().display()
        );
        n.project.write("sandbox.toml", &manifest);
        let up = n.up_detached("locked");
        assert!(up.status.success(), "{security}{}", stderr(&up));
        let _down = Downed(n, "locked");
        // Init forwarded the probe's signal back: it has locked itself down.
        assert!(eventually(
            || stdout(&n.sandbox(&["logs", "locked"])).contains("echo-signal=1 ok")
        ));

        let listed = n.ps();
        assert_eq!(
            (listed.len(), &listed[0]["status"]),
            (1, &"running".into()),
            "{listed:?}"
        );
        assert_eq!(listed[0]["pid"], n.record("locked")["init_pid"]);
        assert_eq!(n.exec("locked", "id -u"), format!("{user}\n"));
        let mut probe = vec!["exec", "locked", "--", "/opt/probe/probe", "status=1"];
        probe.extend(live::AT_INIT.iter().map(|(action, _)| *action));
        let expected: Vec<_> = live::INIT_LOCKED_DOWN
            .into_iter()
            .chain(live::AT_INIT)
            .collect();
        live::assert_probed(&n.sandbox(&probe), &expected, &security);

        // `exec`'s own process stays in the sandbox's namespaces beside what it runs: it is
        // undumpable (its /proc files the host root's) and locks itself down as init does.
        let mut joiner = n
            .project
            .command(&["exec", "locked", "--", "/opt/probe/probe", "pause"])
            .env("SANDBOX_STATE_DIR", &n.state)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let status = format!("/proc/{}/status", joiner.id());
        let locked =
            || std::fs::read_to_string(&status).is_ok_and(|s| s.contains("NoNewPrivs:\t1"));
        assert!(
            eventually(locked),
            "{}",
            std::fs::read_to_string(&status).unwrap_or_default()
        );
        let text = std::fs::read_to_string(&status).unwrap();
        for field in ["CapBnd:\t0000000000000000", "CapPrm:\t0000000000000020"] {
            assert!(text.contains(field), "{field} in {text}");
        }
        // (The folder /proc/PID itself shows the euid whatever the setting, for procps.)
        let owner = std::fs::metadata(format!("/proc/{}/environ", joiner.id()))
            .unwrap()
            .uid();
        assert_eq!(owner, 0, "undumpable");

        let down = n.sandbox(&["down", "locked", "--timeout", "30s"]);
        assert!(down.status.success(), "{}", stderr(&down));
        assert!(n.ps().is_empty());
        joiner.wait().unwrap();
    }
}

/// Rootless with a range of ids, the command under another uid than init's.
#[test]
fn a_locked_down_sandbox_of_another_uid_of_a_range_map_is_still_reached() {
    if live::granted_available() {
        let maps = "uid_map = \"auto\"\ngid_map = \"auto\"\n";
        a_locked_down_sandbox_is_still_reached(&Named::of(Project::granted("")), maps, 1000);
    }
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
        // NAME STATUS PID UPTIME MEMORY ADDRESS MANIFEST: memory for people (`10.6M`), and no
        // address without a network of the sandbox's own.
        let table = stdout(&n.sandbox(&["ps"]));
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        let memory = row[4];
        if who == Who::Root {
            let (number, unit) = memory.split_at(memory.len() - 1);
            assert!(["K", "M", "G"].contains(&unit), "{table}");
            let decimals = number.split_once('.').map(|(_, d)| d.len());
            assert_eq!(decimals, Some(1), "{table}");
        } else {
            assert_eq!(memory, "-", "{table}");
        }
        assert_eq!(row[5], "-", "{table}");

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
        // SIGTERM ends sleep: `down` returns long before the timeout would send SIGKILL (a
        // generous one: under software emulation `down` alone takes seconds).
        let down = n.sandbox(&["down", "joined", "--timeout", "60s"]);
        assert!(down.status.success(), "{}", stderr(&down));
        assert!(started.elapsed() < Duration::from_secs(60), "sleep dies of SIGTERM at once");
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

    fn a_locked_down_sandbox_is_still_reached_by_ps_exec_and_down(who) {
        a_locked_down_sandbox_is_still_reached(&Named::new(who, ""), "", 0);
    }

    fn logs_follow_until_the_sandbox_ends(who) {
        // The command prints its second line once the test opens the gate, so `logs -f` is
        // following while it runs, however slow the machine.
        let n = Named::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\", \"-c\", \"echo one; while [ ! -e /gate/open ]; do sleep 0.05; done; echo two\"]\n[[mount]]\ntype = \"bind\"\nsource = \"gate\"\ntarget = \"/gate\"\n");
        n.project.mkdir("gate");
        assert!(n.up_detached("brief").status.success());
        let mut follow = n
            .project
            .command(&["logs", "-f", "brief"])
            .env("SANDBOX_STATE_DIR", &n.state)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run sandbox logs");
        let mut followed = std::io::BufReader::new(follow.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut followed, &mut first).unwrap();
        assert_eq!(first, "one\n");
        n.project.write("gate/open", "");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut followed, &mut rest).unwrap();
        let status = follow.wait().unwrap();
        assert!(status.success(), "{status:?}");
        assert_eq!(rest, "two\n");
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

    fn a_record_naming_a_process_not_the_sandboxs_gets_it_no_signal(who) {
        let n = Named::new(who, &manifest(""));
        assert!(n.up_detached("real").status.success());
        let mut bystander = n.bystander();
        // As a planted record would (or one left by a run whose pids were reused since): it
        // names a process of the same user, with the real record's namespaces, and is locked.
        let _held = n.plant(&n.state.join("fake.json"), "fake", bystander.id());

        let down = n.sandbox(&["down", "fake", "--timeout", "1s"]);
        assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
        assert!(stderr(&down).contains("is not the sandbox's: nothing was signalled"), "{}", stderr(&down));
        assert!(alive(&mut bystander), "down killed a process that is no sandbox's");
        let exec = n.sandbox(&["exec", "fake", "--", "/bin/true"]);
        assert_eq!(exec.status.code(), Some(125), "{}", stderr(&exec));
        assert!(alive(&mut bystander));

        let all = n.sandbox(&["down", "--all", "--timeout", "1s"]);
        assert_eq!(all.status.code(), Some(1), "{}", stderr(&all));
        assert!(stderr(&all).contains("real: stopped"), "{}", stderr(&all));
        assert!(alive(&mut bystander), "down --all killed a process that is no sandbox's");
        bystander.kill().unwrap();
        bystander.wait().unwrap();
    }

    fn a_sandbox_whose_record_cannot_be_written_does_not_start(who) {
        // Mounting the full folder needs root; the sandbox runs as `who`.
        if !live::available(Who::Root) {
            return;
        }
        // A command line of this test's own: the other caller's run of it may be going on.
        let marker = format!("1000.0625{}", who as u8);
        let n = Named::new(who, &format!("[rootfs]\nhost = true\n[process]\ncommand = [\"sleep\", \"{marker}\"]\n"));
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
        let project = n.project.path().to_str().unwrap().to_string();
        assert!(eventually(|| live::processes_with(&project).is_empty()), "a supervisor is left");
        assert!(live::processes_with(&marker).is_empty(), "the command ran");
        let left: Vec<_> = std::fs::read_dir(&n.state).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["filler"], "a record or log is left");
        drop(full);
        assert!(n.up_detached("full").status.success(), "with room, it starts");
        assert!(n.sandbox(&["down", "full"]).status.success());
    }

    fn a_detached_start_that_fails_says_what_the_foreground_one_says(who) {
        // A bind onto a path under a file: the mount step fails, after every check passed.
        // A command line of this test's own: the other caller's run of it may be going on.
        let marker = format!("1000.125{}", who as u8);
        let n = Named::new(who, &format!("[rootfs]\nhost = true\n[[mount]]\ntype = \"bind\"\nsource = \".\"\ntarget = \"/etc/passwd/sub\"\n[process]\ncommand = [\"sleep\", \"{marker}\"]\n"));
        let good = n.project.write("good.toml", &format!("[rootfs]\nhost = true\n[process]\ncommand = [\"sleep\", \"{marker}\"]\n"));
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
            assert!(n.ps_all().is_empty());
            assert!(std::fs::read_dir(&n.state).unwrap().next().is_none(), "a record is left");
        }
        assert!(live::processes_with(&marker).is_empty(), "the command ran");
        // Exit 0 means it runs, at once, not eventually.
        let up = n.sandbox(&["up", "-d", "--trust", "--name", "fine", good]);
        assert!(up.status.success(), "{}", stderr(&up));
        let listed = n.ps();
        assert_eq!((listed.len(), &listed[0]["status"]), (1, &"running".into()), "{listed:?}");
        assert!(n.sandbox(&["down", "fine"]).status.success());
    }

    fn an_exited_detached_sandbox_keeps_its_status_and_log_until_removed(who) {
        let n = Named::new(who, "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\", \"-c\", \"echo out; exit 3\"]\n");
        assert!(n.up_detached("job").status.success());
        let waited = n.sandbox(&["wait", "job"]);
        assert_eq!(waited.status.code(), Some(3), "{}", stderr(&waited));
        assert!(n.ps().is_empty(), "ps lists the running ones");
        let listed = n.ps_all();
        assert_eq!(listed.len(), 1, "{listed:?}");
        let job = &listed[0];
        assert_eq!((&job["name"], &job["status"], &job["exit_code"]), (&"job".into(), &"exited".into(), &3.into()), "{job}");
        assert!(job["ended"].as_u64().unwrap() >= job["started"].as_u64().unwrap(), "{job}");
        assert!(job["memory_bytes"].is_null());
        let table = stdout(&n.sandbox(&["ps", "--all"]));
        assert!(table.lines().any(|l| l.starts_with("job ") && l.contains("exited 3")), "{table}");
        assert_eq!(stdout(&n.sandbox(&["logs", "job"])), "out\n");
        assert_eq!(stdout(&n.sandbox(&["logs", "-f", "job"])), "out\n", "an ended one is not followed");
        assert_eq!(n.sandbox(&["exec", "job", "--", "/bin/true"]).status.code(), Some(125));
        assert_eq!(n.sandbox(&["wait", "job"]).status.code(), Some(3), "waiting again answers at once");

        // A new run of the name replaces it.
        let manifest = n.project.manifest();
        let manifest = manifest.to_str().unwrap();
        let again = n.sandbox(&["up", "-d", "--trust", "--name", "job", manifest, "--", "/bin/sh", "-c", "exit 5"]);
        assert!(again.status.success(), "{}", stderr(&again));
        assert_eq!(n.sandbox(&["wait", "job"]).status.code(), Some(5));
        assert_eq!(n.sandbox(&["logs", "job"]).stdout, b"", "the log is the new run's");

        // wait blocks until the end, however it comes; rm leaves a running one alone.
        let up = n.sandbox(&["up", "-d", "--trust", "--name", "long", manifest, "--", "sleep", "1000.25"]);
        assert!(up.status.success(), "{}", stderr(&up));
        let mut waiter = n.project.command(&["wait", "long"]).env("SANDBOX_STATE_DIR", &n.state).spawn().unwrap();
        // `down` removes the record: a wait that first opens it after that finds no sandbox of
        // that name (125), as it should. This one must be waiting already, record in hand.
        let record = std::fs::canonicalize(&n.state).unwrap().join("long.json");
        let fds = format!("/proc/{}/fd", waiter.id());
        let holds_record = || {
            let open = std::fs::read_dir(&fds).into_iter().flatten().flatten();
            open.into_iter().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == record))
        };
        assert!(eventually(holds_record), "`wait long` never opened {}", record.display());
        let rm = n.sandbox(&["rm", "long"]);
        assert_eq!(rm.status.code(), Some(1));
        assert!(stderr(&rm).contains("is running"), "{}", stderr(&rm));
        assert!(n.sandbox(&["down", "long"]).status.success());
        assert_eq!(waiter.wait().unwrap().code(), Some(128 + 15), "sleep died of the SIGTERM");
        let names: Vec<_> = n.ps_all().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(names, ["job"], "down forgets what it stopped");

        // rm, and down of an exited one, forget it with its log.
        assert!(n.sandbox(&["rm", "job"]).status.success());
        let gone = n.sandbox(&["rm", "job"]);
        assert_eq!(gone.status.code(), Some(1));
        assert!(stderr(&gone).contains("no sandbox named `job`"), "{}", stderr(&gone));
        assert!(n.up_detached("done").status.success());
        assert_eq!(n.sandbox(&["wait", "done"]).status.code(), Some(3));
        let down = n.sandbox(&["down", "done"]);
        assert!(down.status.success(), "{}", stderr(&down));
        assert!(stderr(&down).contains("done: removed"), "{}", stderr(&down));
        assert!(n.ps_all().is_empty());
        assert!(std::fs::read_dir(&n.state).unwrap().next().is_none(), "a record or log is left");
    }


    fn completions_offer_the_names_of_the_callers_sandboxes(who) {
        let n = Named::new(who, &manifest(""));
        assert!(n.up_detached("alpha").status.success());
        let manifest = n.project.manifest();
        let up = n.sandbox(&["up", "-d", "--trust", "--name", "beta", manifest.to_str().unwrap(), "--", "/bin/true"]);
        assert!(up.status.success(), "{}", stderr(&up));
        assert_eq!(n.sandbox(&["wait", "beta"]).status.code(), Some(0));
        // What bash does at a TAB: the generated script's function, with the words so far.
        let complete = |words: &[&str]| -> Vec<String> {
            let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
            let script = format!(
                "source <(sandbox completions bash)\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_TYPE=9\n_clap_complete_sandbox sandbox {} {}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
                quoted.join(" "),
                words.len() - 1,
                quoted[words.len() - 1],
                quoted[words.len() - 2],
            );
            let bin = live::binary().parent().unwrap().display().to_string();
            let out = n.project.as_user(Path::new("/bin/bash"))
                .args(["-c", &script])
                .env("PATH", format!("{bin}:/usr/bin:/bin"))
                .env("SANDBOX_STATE_DIR", &n.state)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out).lines().map(str::to_string).collect()
        };
        let names = |words: &[&str]| -> Vec<String> {
            complete(words).into_iter().filter(|w| !w.starts_with('-')).collect()
        };
        assert_eq!(names(&["sandbox", "logs", ""]), ["alpha", "beta"]);
        assert_eq!(names(&["sandbox", "wait", ""]), ["alpha", "beta"]);
        assert_eq!(names(&["sandbox", "down", ""]), ["alpha", "beta"]);
        assert_eq!(names(&["sandbox", "exec", ""]), ["alpha"], "only a running one");
        assert_eq!(names(&["sandbox", "rm", ""]), ["beta"], "only an exited one");
        assert_eq!(names(&["sandbox", "logs", "al"]), ["alpha"]);
        let subcommands = complete(&["sandbox", ""]);
        for visible in ["up", "ps", "logs", "wait", "exec", "down", "rm", "doctor"] {
            assert!(subcommands.iter().any(|s| s == visible), "{visible}: {subcommands:?}");
        }
        assert!(!subcommands.iter().any(|s| s == "manpage"), "hidden: {subcommands:?}");
        assert!(n.sandbox(&["down", "--all"]).status.success());
    }
}

/// Another local user makes /tmp/sandbox-UID before its owner does, plants a record naming one
/// of the owner's processes, and holds its lock: the owner's `sandbox` refuses the folder,
/// names it and the fix, and signals nothing. A symlink in its place is refused too.
#[test]
fn a_state_folder_another_user_made_is_refused_and_its_record_kills_nothing() {
    if !live::available(Who::Root) || !live::available(Who::Rootless) {
        return;
    }
    let attacker = live::other_ids().expect("a second user");
    let victim = live::rootless_ids().unwrap();
    let n = Named::new(Who::Rootless, &manifest(""));
    assert!(n.up_detached("real").status.success());
    let mut bystander = n.bystander();
    let planted = PathBuf::from(format!("/tmp/sandbox-{}", victim.0));
    // What an earlier run of the victim's own left there; nothing else uses it in the tests.
    let _ = std::fs::remove_dir_all(&planted);
    let _ = std::fs::remove_file(&planted);
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _remove = Remove(&planted);
    let made = live::as_ids(attacker, "mkdir")
        .arg("-m")
        .arg("0755")
        .arg(&planted)
        .status()
        .unwrap();
    assert!(made.success());
    let record = planted.join("x.json");
    let _held = n.plant(&record, "x", bystander.id());
    std::os::unix::fs::chown(&record, Some(attacker.0), Some(attacker.1)).unwrap();
    // The victim's sandbox, without SANDBOX_STATE_DIR or XDG_RUNTIME_DIR: /tmp/sandbox-UID.
    let victims = |args: &[&str]| {
        n.project
            .command(args)
            .env_remove("SANDBOX_STATE_DIR")
            .output()
            .unwrap()
    };
    let manifest = n.project.manifest();
    for args in [
        &["down", "--all", "--timeout", "1s"][..],
        &["ps"],
        &["up", "-d", "--trust", manifest.to_str().unwrap()],
    ] {
        let out = victims(args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let said = stderr(&out);
        assert!(
            said.contains(&format!(
                "{} belongs to uid {}",
                planted.display(),
                attacker.0
            )),
            "{args:?}: {said}"
        );
        assert!(
            said.contains("rm -r") && said.contains("SANDBOX_STATE_DIR"),
            "{said}"
        );
        assert!(
            alive(&mut bystander),
            "{args:?} killed the victim's process"
        );
    }
    // The victim's own, but writable by everyone (`mkdir -m 777`): refused too.
    std::fs::set_permissions(
        &planted,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    std::os::unix::fs::chown(&planted, Some(victim.0), Some(victim.1)).unwrap();
    let out = victims(&["down", "--all", "--timeout", "1s"]);
    assert!(
        stderr(&out).contains("can be written by other users"),
        "{}",
        stderr(&out)
    );
    assert!(alive(&mut bystander));
    // A symlink to a folder of the victim's own, holding the same record: not followed.
    drop(_held);
    std::fs::remove_dir_all(&planted).unwrap();
    let _also_held = n.plant(&n.state.join("x.json"), "x", bystander.id());
    std::os::unix::fs::symlink(&n.state, &planted).unwrap();
    let out = victims(&["down", "--all", "--timeout", "1s"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert!(alive(&mut bystander));
    assert_eq!(n.ps().len(), 2, "real and x: nothing was stopped");
    drop(_also_held);
    std::fs::remove_file(n.state.join("x.json")).unwrap();
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert!(n.sandbox(&["down", "real"]).status.success());
}
