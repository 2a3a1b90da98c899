//! Signals for real: what `sandbox up` forwards reaches the command whatever its uid, `down`
//! ends a cooperative command at once, and what the caller ignores stays ignored.

mod live;

use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdout, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use live::{Project, Who, stderr};

/// The command traps every signal `up` forwards and says which one came; SIGTERM, sent last,
/// ends it with status 7.
const TRAPS: &str = "for s in INT HUP QUIT USR1 USR2 WINCH; do trap \"echo got-$s\" $s; done; \
                     trap 'echo got-TERM; exit 7' TERM; echo ready $(id -u); \
                     while :; do sleep 0.02; done";

const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// `(what, top-level keys, [process] keys)` of the identities a command can have for `who`:
/// root's sandboxes map a range, so any uid; rootless, the caller's own id maps to the one
/// `process.user`, and other uids beside it need a range from a subuid grant.
fn identities(who: Who) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut identities = vec![
        ("user 0", "", ""),
        ("user 1000", "", "user = 1000\ngroup = 1000\n"),
    ];
    if who == Who::Rootless && live::subid_grant() {
        identities.push((
            "user 1000 in a range map",
            "uid_map = \"auto\"\ngid_map = \"auto\"\n",
            "user = 1000\ngroup = 1000\n",
        ));
    }
    identities
}

fn project(who: Who, top: &str, process: &str, command: &str) -> Project {
    Project::new(
        who,
        &format!(
            "{top}[rootfs]\nhost = true\n[process]\n{process}command = [\"/bin/sh\", \"-c\", {}]\n",
            toml_string(command)
        ),
    )
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// SIGKILLs the launchers a test started if it fails (on the panic's unwinding) or hangs (after
/// 30 s: a signal that never arrives must fail the test, not hang it). A launcher killed so
/// takes its sandbox along (parent-death signal).
struct Watchdog {
    pids: Arc<Mutex<Vec<i32>>>,
    _done: mpsc::Sender<()>,
}

impl Watchdog {
    fn new(pid: u32) -> Watchdog {
        let pids = Arc::new(Mutex::new(vec![pid as i32]));
        let (done, wait) = mpsc::channel::<()>();
        let watched = Arc::clone(&pids);
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(30))
            {
                kill_all(&watched);
            }
        });
        Watchdog { pids, _done: done }
    }

    fn also(&self, pid: i32) {
        self.pids.lock().unwrap().push(pid);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            kill_all(&self.pids);
        }
    }
}

fn kill_all(pids: &Mutex<Vec<i32>>) {
    for pid in pids.lock().unwrap().iter() {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    lines.next().and_then(Result::ok).unwrap_or_default()
}

/// The one child of `pid`, as the host sees it.
fn only_child(pid: i32) -> Pid {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<i32> = children
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(children.len(), 1, "children of {pid}: {children:?}");
    Pid::from_raw(children[0])
}

/// Says which signals it was started ignoring, then handles SIGHUP (to tell whether one is
/// forwarded), SIGUSR1 and SIGTERM (status 7), and leaves SIGINT and SIGQUIT as they came.
const IGNORED: &str = r#"$| = 1;
open my $status, "<", "/proc/self/status";
while (<$status>) { print "ignored $1\n" if /^SigIgn:\s+(\S+)/ }
$SIG{HUP} = sub { print "got-HUP\n" };
$SIG{USR1} = sub { print "got-USR1\n" };
$SIG{TERM} = sub { print "got-TERM\n"; exit 7 };
print "ready\n";
sleep 1 while 1;
"#;

as_root_and_rootless! {
    fn every_forwarded_signal_reaches_a_command_of_any_uid(who) {
        for (what, top, process) in identities(who) {
            let p = project(who, top, process, TRAPS);
            let mut up = p
                .command(&["up", "--trust", p.manifest().to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let launcher = Pid::from_raw(up.id() as i32);
            let watchdog = Watchdog::new(up.id());
            let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
            let uid = if process.is_empty() { "0" } else { "1000" };
            assert_eq!(next_line(&mut lines), format!("ready {uid}"), "{what}");
            for signal in FORWARDED.into_iter().chain([Signal::SIGTERM]) {
                kill(launcher, signal).unwrap();
                let name = signal.as_str().trim_start_matches("SIG");
                assert_eq!(next_line(&mut lines), format!("got-{name}"), "{what}: {signal} did not reach the command");
            }
            let output = up.wait_with_output().unwrap();
            drop(watchdog);
            assert_eq!(output.status.code(), Some(7), "{what}: {}", stderr(&output));
        }
    }

    fn down_ends_a_cooperative_command_of_any_uid_at_once(who) {
        for (what, top, process) in identities(who) {
            let p = project(who, top, process, "trap 'exit 0' TERM; echo ready; while :; do sleep 0.02; done");
            let up = p.command(&["up", "-d", "--trust", "--name", "signals", p.manifest().to_str().unwrap()]).output().unwrap();
            assert!(up.status.success(), "{what}: {}", stderr(&up));
            // Joining needs init's /proc files, which the command's change of ids (made in
            // init's memory before its execve) must not have closed.
            let joined = p.command(&["exec", "signals", "--", "/bin/sh", "-c", "id -u"]).output().unwrap();
            assert!(joined.status.success(), "{what}: {}", stderr(&joined));
            let started = Instant::now();
            let down = p.command(&["down", "signals", "--timeout", "60s"]).output().unwrap();
            assert!(down.status.success(), "{what}: {}", stderr(&down));
            assert!(started.elapsed() < Duration::from_secs(30), "{what}: SIGTERM did not reach the command, down waited for the grace");
        }
    }

    fn signals_the_caller_ignores_stay_ignored_and_are_not_forwarded(who) {
        // nohup ignores SIGHUP; a non-interactive shell starts a background job with SIGINT and
        // SIGQUIT ignored.
        let p = Project::new(who, "[rootfs]\nhost = true\n");
        let script = "nohup \"$0\" up --trust \"$1\" -- /usr/bin/perl -e \"$2\" & echo launcher $!; wait $!";
        let mut outer = p
            .as_user(std::path::Path::new("/bin/sh"))
            .args(["-c", script, live::binary().to_str().unwrap(), p.manifest().to_str().unwrap(), IGNORED])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let watchdog = Watchdog::new(outer.id());
        let mut lines = BufReader::new(outer.stdout.take().unwrap()).lines();
        let (mut launcher, mut ignored) = (None, None);
        loop {
            let line = next_line(&mut lines);
            if let Some(pid) = line.strip_prefix("launcher ") {
                launcher = Some(pid.parse::<i32>().unwrap());
            } else if let Some(mask) = line.strip_prefix("ignored ") {
                ignored = Some(u64::from_str_radix(mask, 16).unwrap());
            } else {
                assert_eq!(line, "ready");
                break;
            }
        }
        let launcher = launcher.unwrap();
        watchdog.also(launcher);
        let bits = |signals: &[Signal]| signals.iter().fold(0u64, |bits, s| bits | 1 << (*s as i32 - 1));
        let ignored_by_caller = bits(&[Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT]);
        assert_eq!(ignored.unwrap() & ignored_by_caller, ignored_by_caller, "the command starts with them ignored");

        let command = only_child(only_child(launcher).as_raw());
        for signal in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT] {
            kill(Pid::from_raw(launcher), signal).unwrap();
        }
        for signal in [Signal::SIGINT, Signal::SIGQUIT] {
            kill(command, signal).unwrap();
        }
        // Forwarded in the order they came: a forwarded SIGHUP would have been handled first.
        kill(Pid::from_raw(launcher), Signal::SIGUSR1).unwrap();
        assert_eq!(next_line(&mut lines), "got-USR1", "what the caller ignores is not forwarded");
        kill(Pid::from_raw(launcher), Signal::SIGTERM).unwrap();
        assert_eq!(next_line(&mut lines), "got-TERM");
        let output = outer.wait_with_output().unwrap();
        drop(watchdog);
        assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    }

    fn the_callers_ignored_sigpipe_and_signal_mask_reach_the_command(who) {
        // What a plain exec passes on: the launcher ignores SIGPIPE for itself and blocks the
        // signals it forwards, and gives the command back what its caller had.
        let p = Project::new(who, "[rootfs]\nhost = true\n");
        let caller = "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGUSR2)); $SIG{PIPE} = 'IGNORE'; exec @ARGV or die";
        let output = p
            .as_user(std::path::Path::new("/usr/bin/perl"))
            .args(["-e", caller, live::binary().to_str().unwrap(), "up", "--trust", p.manifest().to_str().unwrap(), "--"])
            // Not through a shell, which would set its own mask.
            .args(["/usr/bin/grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let text = live::stdout(&output);
        let mask = |name: &str| {
            let line = text.lines().find_map(|l| l.strip_prefix(name)).unwrap();
            u64::from_str_radix(line.trim(), 16).unwrap()
        };
        let bit = |signal: Signal| 1u64 << (signal as i32 - 1);
        assert_eq!(mask("SigBlk:"), bit(Signal::SIGUSR2), "{text}");
        assert_eq!(mask("SigIgn:") & bit(Signal::SIGPIPE), bit(Signal::SIGPIPE), "{text}");
    }
}
