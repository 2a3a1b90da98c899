//! `sandbox ps`, `logs`, `wait`, `down`, `rm` and `exec`: named sandboxes after `up -d`.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use clap::Args;
use clap_complete::{ArgValueCandidates, CompletionCandidate};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::{Output, exit};
use crate::host::Caller;
use crate::manifest::values::{Duration as ManifestDuration, Size};
use crate::state::{Ended, Entry, Processes, Record, StateError, Store, now, state_dir};
use crate::sys::raw as sys;

/// The caller's state folder (`up` passes the caller it already knows), checked to be theirs.
pub fn store_of(caller: &Caller) -> Result<Store, StateError> {
    Store::open(&state_dir(caller.euid, &caller.env))
}

/// [`store_of`] the current caller, printing why not; `failure` is the exit status then.
fn store(out: &Output, failure: u8) -> Result<Store, u8> {
    store_of(&Caller::current()).map_err(|error| {
        out.error(&error.to_string());
        failure
    })
}

/// The names a completion script offers: of the sandboxes whose entry passes `keep`.
fn names_where(keep: fn(&Entry) -> bool) -> Vec<CompletionCandidate> {
    let Ok(store) = store_of(&Caller::current()) else {
        return Vec::new();
    };
    store
        .list()
        .into_iter()
        .filter(|(_, entry)| keep(entry))
        .map(|(name, _)| CompletionCandidate::new(name))
        .collect()
}

/// For `exec`: the running sandboxes.
fn running_names() -> Vec<CompletionCandidate> {
    names_where(|entry| matches!(entry, Entry::Running(_)))
}

/// For `logs`, `wait` and `down`: the sandboxes that run or exited.
fn recorded_names() -> Vec<CompletionCandidate> {
    names_where(|entry| matches!(entry, Entry::Running(_) | Entry::Exited(..)))
}

/// For `rm`: the sandboxes that exited.
fn exited_names() -> Vec<CompletionCandidate> {
    names_where(|entry| matches!(entry, Entry::Exited(..)))
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Also list the detached sandboxes whose command has exited.
    #[arg(short, long)]
    pub all: bool,
    /// Print JSON: an array of {name, id, status, pid, started, uptime_seconds, memory_bytes,
    /// addresses, manifest, log, exit_code, ended, egress_refused}.
    #[arg(long)]
    pub json: bool,
}

/// One row of `sandbox ps`; the JSON form is documented in README.md.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub id: String,
    /// "running", or "exited" (with `--all`); stale records are cleaned, not listed.
    pub status: &'static str,
    /// The sandbox's pid 1 as the host sees it.
    pub pid: i32,
    /// Seconds since the epoch.
    pub started: u64,
    /// How long it has run, or ran.
    pub uptime_seconds: u64,
    /// Memory in use by the sandbox's cgroup, when it has one and runs.
    pub memory_bytes: Option<u64>,
    pub addresses: Vec<String>,
    pub manifest: String,
    pub log: Option<String>,
    /// How the command ended, once it has.
    pub exit_code: Option<u8>,
    /// Seconds since the epoch, once it has ended.
    pub ended: Option<u64>,
    /// What `network.egress` refused so far, most refused first, while it runs:
    /// `[{"destination": "203.0.113.7:443", "count": 2}]`; null when it could not be read,
    /// absent without `egress`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_refused: Option<Option<Vec<crate::egress::Refused>>>,
}

/// Memory in use from the sandbox's own accounting (v2 memory.current, v1 usage_in_bytes).
fn memory_in_use(record: &Record) -> Option<u64> {
    record.cgroups.iter().find_map(|group| {
        ["memory.current", "memory.usage_in_bytes"]
            .iter()
            .find_map(|file| {
                std::fs::read_to_string(group.join(file))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
    })
}

fn row(record: &Record, ended: Option<Ended>) -> Row {
    let until = ended.map_or_else(now, |e| e.ended);
    Row {
        name: record.name.clone(),
        id: record.id.clone(),
        status: if ended.is_some() { "exited" } else { "running" },
        pid: record.init_pid,
        started: record.started,
        uptime_seconds: until.saturating_sub(record.started),
        memory_bytes: ended.is_none().then(|| memory_in_use(record)).flatten(),
        addresses: record.addresses.clone(),
        manifest: record.manifest.display().to_string(),
        log: record.log.as_ref().map(|l| l.display().to_string()),
        exit_code: ended.map(|e| e.exit_code),
        ended: ended.map(|e| e.ended),
        egress_refused: None,
    }
}

/// The sandboxes that run, and with `exited` those that ended; stale records (their
/// supervisor is gone without a word) are cleaned on the way.
fn listed(store: &Store, exited: bool) -> Vec<(Record, Option<Ended>)> {
    store
        .list()
        .into_iter()
        .filter_map(|(name, entry)| match entry {
            Entry::Running(record) => Some((record, None)),
            Entry::Exited(record, ended) => exited.then_some((record, Some(ended))),
            Entry::Starting => None,
            Entry::Stale(_) => {
                let _ = store.forget(&name);
                None
            }
        })
        .collect()
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

pub fn ps(args: PsArgs, out: &Output) -> u8 {
    let store = match store(out, exit::INVALID) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let rows: Vec<Row> = listed(&store, args.all)
        .iter()
        .map(|(record, ended)| {
            let mut row = row(record, *ended);
            // Read from inside the sandbox, once its supervisor is shown to be its own: only
            // for the JSON, which has room for it.
            if args.json && ended.is_none() && record.plan.net.egress().is_some() {
                let refused = match store.processes(record) {
                    Ok(Some(Processes { supervisor, .. })) => {
                        crate::exec::join::egress_refused(record, supervisor.as_fd()).ok()
                    }
                    _ => None,
                };
                row.egress_refused = Some(refused);
            }
            row
        })
        .collect();
    if args.json {
        show!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return exit::SUCCESS;
    }
    show!(
        "{:<20} {:<10} {:>8} {:>9} {:>8} {:<16} MANIFEST",
        "NAME",
        "STATUS",
        "PID",
        "UPTIME",
        "MEMORY",
        "ADDRESS"
    );
    for row in rows {
        let status = match row.exit_code {
            Some(code) => format!("exited {code}"),
            None => row.status.to_string(),
        };
        let memory = row
            .memory_bytes
            .map_or_else(|| "-".into(), |m| Size(m).approximate());
        // Only an address of the sandbox's own: pasta's is a copy of the host's.
        let address = row.addresses.first().cloned().unwrap_or_else(|| "-".into());
        show!(
            "{:<20} {:<10} {:>8} {:>9} {:>8} {:<16} {}",
            row.name,
            status,
            row.pid,
            human_duration(row.uptime_seconds),
            memory,
            address,
            row.manifest
        );
    }
    exit::SUCCESS
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The sandbox's name.
    #[arg(add = ArgValueCandidates::new(recorded_names))]
    pub name: String,
    /// Keep printing what the command writes, until the sandbox ends.
    #[arg(short, long)]
    pub follow: bool,
}

/// What a detached sandbox's command wrote, whether it runs or ended.
pub fn logs(args: LogsArgs, out: &Output) -> u8 {
    let store = match store(out, exit::INVALID) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let (record, ended) = match store.recorded(&args.name) {
        Ok(found) => found,
        Err(e) => {
            out.error(&e.to_string());
            return exit::INVALID;
        }
    };
    let Some(log) = &record.log else {
        out.error(&format!(
            "`{}` runs in the foreground; its output goes to the terminal that started it",
            args.name
        ));
        return exit::INVALID;
    };
    let mut file = match crate::input::open_regular_file(log) {
        Ok(file) => file,
        Err(e) => {
            out.error(&e.to_string());
            return exit::INVALID;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = std::io::copy(&mut file, &mut stdout);
    if !args.follow || ended.is_some() {
        return exit::SUCCESS;
    }
    // Follow: inotify says when the log grows; the supervisor's pidfd when the sandbox ends.
    let Ok(Some(Processes { supervisor, .. })) = store.processes(&record) else {
        return exit::SUCCESS;
    };
    let Ok(inotify) = nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC)
    else {
        return exit::SUCCESS;
    };
    let _ = inotify.add_watch(log, nix::sys::inotify::AddWatchFlags::IN_MODIFY);
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(supervisor.as_fd(), PollFlags::POLLIN),
        ];
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            break;
        }
        let ended = fds[1].revents().is_some_and(|r| !r.is_empty());
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            let _ = inotify.read_events();
        }
        let _ = std::io::copy(&mut file, &mut stdout);
        let _ = stdout.flush();
        if ended {
            break;
        }
    }
    exit::SUCCESS
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The sandbox's name.
    #[arg(add = ArgValueCandidates::new(recorded_names))]
    pub name: String,
}

/// Block until the sandbox ends; exit with its command's status.
pub fn wait(args: WaitArgs, out: &Output) -> u8 {
    let store = match store(out, exit::LAUNCHER_FAILED) {
        Ok(store) => store,
        Err(code) => return code,
    };
    match store.wait(&args.name) {
        Ok(ended) => ended.exit_code,
        Err(e) => {
            out.error(&e.to_string());
            exit::LAUNCHER_FAILED
        }
    }
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The names of sandboxes that have exited.
    #[arg(required = true, add = ArgValueCandidates::new(exited_names))]
    pub names: Vec<String>,
}

/// Forget exited sandboxes: their records and logs.
pub fn rm(args: RmArgs, out: &Output) -> u8 {
    let store = match store(out, exit::INVALID) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let mut status = exit::SUCCESS;
    for name in &args.names {
        match store.forget(name) {
            Ok(()) => {}
            Err(StateError::Running(_)) => {
                out.error(&format!(
                    "`{name}` is running: stop it with `sandbox down {name}`"
                ));
                status = exit::INVALID;
            }
            Err(e) => {
                out.error(&e.to_string());
                status = exit::INVALID;
            }
        }
    }
    status
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The sandbox's name.
    #[arg(required_unless_present = "all", add = ArgValueCandidates::new(recorded_names))]
    pub name: Option<String>,
    /// Stop every running sandbox (and forget the exited ones).
    #[arg(long, conflicts_with = "name")]
    pub all: bool,
    /// How long the command has to exit after SIGTERM before it is killed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: ManifestDuration,
}

fn parse_duration(text: &str) -> Result<ManifestDuration, String> {
    ManifestDuration::parse(text).map_err(|e| format!("{}; {}", e.message, e.help))
}

/// Wait (without polling) for the supervisor to exit, up to `timeout`.
fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(millis)), Ok(n) if n > 0)
}

/// SIGTERM to the command (through its supervisor, which forwards it), SIGKILL after the grace;
/// the supervisor then cleans up everything (cgroup, network) as for any exit. Only processes
/// shown to be the sandbox's own are signalled (see [`Store::processes`]).
fn stop(store: &Store, record: &Record, grace: Duration) -> Result<(), String> {
    let Processes { supervisor, init } = match store.processes(record) {
        Ok(Some(processes)) => processes,
        Ok(None) => return Ok(()),
        Err(error) => return Err(error.to_string()),
    };
    let _ = sys::pidfd_send_signal(supervisor.as_fd(), libc::SIGTERM);
    if wait_exit(&supervisor, grace) {
        return Ok(());
    }
    if let Some(init) = init {
        let _ = sys::pidfd_send_signal(init.as_fd(), libc::SIGKILL);
    }
    if wait_exit(&supervisor, Duration::from_secs(10)) {
        return Ok(());
    }
    Err(format!(
        "`{}` did not stop: its supervisor (pid {}) is stuck",
        record.name, record.supervisor_pid
    ))
}

/// Stop running sandboxes and forget them, with their records and logs; an exited one is only
/// forgotten.
pub fn down(args: DownArgs, out: &Output) -> u8 {
    let store = match store(out, exit::INVALID) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let targets = match &args.name {
        None => listed(&store, true),
        Some(name) => match store.recorded(name) {
            Ok(found) => vec![found],
            Err(e) => {
                // A stale record of that name is cleaned all the same.
                let _ = store.forget(name);
                out.error(&e.to_string());
                return exit::INVALID;
            }
        },
    };
    let grace = args.timeout.as_std();
    let mut status = exit::SUCCESS;
    for (record, ended) in &targets {
        if ended.is_none()
            && let Err(error) = stop(&store, record, grace)
        {
            out.error(&error);
            status = exit::INVALID;
            continue;
        }
        // The name may run again already, under a new claim: that one stays.
        let _ = store.forget(&record.name);
        if !out.quiet {
            match ended {
                None => say!("{}: stopped", record.name),
                Some(ended) => say!(
                    "{}: removed (it had exited with status {})",
                    record.name,
                    ended.exit_code
                ),
            }
        }
    }
    status
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The sandbox's name.
    #[arg(add = ArgValueCandidates::new(running_names))]
    pub name: String,
    /// Give the command a terminal (a new pty in the sandbox).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Run a command in a running sandbox, as confined as its own command; exits with its status.
pub fn exec(args: ExecArgs, out: &Output) -> u8 {
    let store = match store(out, exit::LAUNCHER_FAILED) {
        Ok(store) => store,
        Err(code) => return code,
    };
    // Joined only once its supervisor and init are shown to be the sandbox's own.
    let running = store
        .running(&args.name)
        .and_then(|record| match store.processes(&record)? {
            Some(Processes {
                supervisor,
                init: Some(_),
            }) => Ok((record, supervisor)),
            _ => Err(StateError::NotRunning(args.name.clone())),
        });
    let (record, supervisor) = match running {
        Ok(running) => running,
        Err(e) => {
            out.error(&e.to_string());
            return exit::LAUNCHER_FAILED;
        }
    };
    let mut plan = record.plan.clone();
    plan.process.argv = args.command;
    plan.process.tty = if args.tty {
        crate::manifest::Tty::Always
    } else {
        crate::manifest::Tty::Never
    };
    match crate::exec::join::join(&record, supervisor.as_fd(), &plan, args.tty) {
        Ok(outcome) => {
            if let Some(failure) = &outcome.failure {
                out.error(&failure.to_string());
            }
            if outcome.timed_out {
                say!(text super::up::timed_out(&plan));
            }
            outcome.status
        }
        Err(error) => {
            out.error(&error.to_string());
            exit::LAUNCHER_FAILED
        }
    }
}
