//! Signals for real: what `sandbox up` forwards reaches the command whatever its uid, `down`
//! ends a cooperative command at once, and what the caller ignores stays ignored.

mod live;

use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdout, Stdio};
use std::sync::mpsc;
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

/// SIGKILLs `pid` unless told in time that the test is done: a signal that never arrives must
/// fail the test, not hang it.
fn watchdog(pid: i32) -> mpsc::Sender<()> {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(Duration::from_secs(30)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    });
    done
}

fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    lines.next().and_then(Result::ok).unwrap_or_default()
}

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
            let done = watchdog(up.id() as i32);
            let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
            let uid = if process.is_empty() { "0" } else { "1000" };
            assert_eq!(next_line(&mut lines), format!("ready {uid}"), "{what}");
            for signal in FORWARDED.into_iter().chain([Signal::SIGTERM]) {
                kill(launcher, signal).unwrap();
                let name = signal.as_str().trim_start_matches("SIG");
                assert_eq!(next_line(&mut lines), format!("got-{name}"), "{what}: {signal} did not reach the command");
            }
            let output = up.wait_with_output().unwrap();
            drop(done);
            assert_eq!(output.status.code(), Some(7), "{what}: {}", stderr(&output));
        }
    }

    fn down_ends_a_cooperative_command_of_any_uid_at_once(who) {
        for (what, top, process) in identities(who) {
            let p = project(who, top, process, "trap 'exit 0' TERM; echo ready; while :; do sleep 0.02; done");
            let up = p.command(&["up", "-d", "--trust", "--name", "signals", p.manifest().to_str().unwrap()]).output().unwrap();
            assert!(up.status.success(), "{what}: {}", stderr(&up));
            let started = Instant::now();
            let down = p.command(&["down", "signals", "--timeout", "60s"]).output().unwrap();
            assert!(down.status.success(), "{what}: {}", stderr(&down));
            assert!(started.elapsed() < Duration::from_secs(30), "{what}: SIGTERM did not reach the command, down waited for the grace");
        }
    }
}
