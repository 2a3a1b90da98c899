//! `sandbox ps`, `sandbox logs` and `sandbox down`: named sandboxes after `up -d`.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::{Output, exit};
use crate::exec::sys;
use crate::host::Caller;
use crate::manifest::values::Duration as ManifestDuration;
use crate::state::{Entry, Record, Store, state_dir};

/// The caller's state folder (`up` passes the caller it already knows).
pub fn store_of(caller: &Caller) -> Store {
    Store::new(state_dir(caller.euid, &caller.env))
}

fn store() -> Store {
    store_of(&Caller::current())
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Print JSON: an array of {name, id, status, pid, started, uptime_seconds, memory_bytes,
    /// addresses, manifest, log}.
    #[arg(long)]
    pub json: bool,
}

/// One row of `sandbox ps`; the JSON form is documented in README.md.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub id: String,
    /// "running" (stale records are cleaned, not listed).
    pub status: &'static str,
    /// The sandbox's pid 1 as the host sees it.
    pub pid: i32,
    /// Seconds since the epoch.
    pub started: u64,
    pub uptime_seconds: u64,
    /// Memory in use by the sandbox's cgroup, when it has one.
    pub memory_bytes: Option<u64>,
    pub addresses: Vec<String>,
    pub manifest: String,
    pub log: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

fn row(record: &Record) -> Row {
    Row {
        name: record.name.clone(),
        id: record.id.clone(),
        status: "running",
        pid: record.init_pid,
        started: record.started,
        uptime_seconds: now().saturating_sub(record.started),
        memory_bytes: memory_in_use(record),
        addresses: record.addresses.clone(),
        manifest: record.manifest.display().to_string(),
        log: record.log.as_ref().map(|l| l.display().to_string()),
    }
}

/// Running sandboxes; stale records (their supervisor is gone) are cleaned on the way.
fn running(store: &Store) -> Vec<Record> {
    store
        .list()
        .into_iter()
        .filter_map(|(name, entry)| match entry {
            Entry::Running(record) => Some(record),
            Entry::Starting => None,
            Entry::Stale(_) => {
                store.remove_stale(&name);
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

pub fn ps(args: PsArgs) -> u8 {
    let rows: Vec<Row> = running(&store()).iter().map(row).collect();
    if args.json {
        show!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return exit::SUCCESS;
    }
    show!(
        "{:<20} {:<8} {:>8} {:>9} {:>10} {:<16} MANIFEST",
        "NAME",
        "STATUS",
        "PID",
        "UPTIME",
        "MEMORY",
        "ADDRESS"
    );
    for row in rows {
        let memory = row.memory_bytes.map_or_else(
            || "-".into(),
            |m| crate::manifest::values::Size(m).to_string(),
        );
        let address = row.addresses.first().cloned().unwrap_or_else(|| "-".into());
        show!(
            "{:<20} {:<8} {:>8} {:>9} {:>10} {:<16} {}",
            row.name,
            row.status,
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
    pub name: String,
    /// Keep printing what the command writes, until the sandbox ends.
    #[arg(short, long)]
    pub follow: bool,
}

pub fn logs(args: LogsArgs, out: &Output) -> u8 {
    let store = store();
    let record = match store.running(&args.name) {
        Ok(record) => record,
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
    let mut file = match std::fs::File::open(log) {
        Ok(file) => file,
        Err(e) => {
            out.error(&format!("cannot read {}: {e}", log.display()));
            return exit::INVALID;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = std::io::copy(&mut file, &mut stdout);
    if !args.follow {
        return exit::SUCCESS;
    }
    // Follow: inotify says when the log grows; the supervisor's pidfd when the sandbox ends.
    let Ok(supervisor) = sys::pidfd_open(record.supervisor_pid) else {
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
pub struct DownArgs {
    /// The sandbox's name.
    #[arg(required_unless_present = "all")]
    pub name: Option<String>,
    /// Stop every running sandbox.
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
fn wait_exit(pidfd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(millis)), Ok(n) if n > 0)
}

/// SIGTERM to the command (through its supervisor, which forwards it), SIGKILL after the grace;
/// the supervisor then cleans up everything (cgroup, network, record) as for any exit.
fn stop(record: &Record, grace: Duration, out: &Output) -> bool {
    let Ok(supervisor) = sys::pidfd_open(record.supervisor_pid) else {
        return true;
    };
    let _ = sys::pidfd_send_signal(supervisor.as_fd(), libc::SIGTERM);
    if wait_exit(&supervisor, grace) {
        return true;
    }
    if let Ok(init) = sys::pidfd_open(record.init_pid) {
        let _ = sys::pidfd_send_signal(init.as_fd(), libc::SIGKILL);
    }
    if wait_exit(&supervisor, Duration::from_secs(10)) {
        return true;
    }
    out.error(&format!(
        "`{}` did not stop: its supervisor (pid {}) is stuck",
        record.name, record.supervisor_pid
    ));
    false
}

pub fn down(args: DownArgs, out: &Output) -> u8 {
    let store = store();
    let records = if args.all {
        running(&store)
    } else {
        let name = args
            .name
            .as_deref()
            .expect("clap requires a name without --all");
        match store.running(name) {
            Ok(record) => vec![record],
            Err(e) => {
                store.remove_stale(name);
                out.error(&e.to_string());
                return exit::INVALID;
            }
        }
    };
    let grace = args.timeout.as_std();
    let mut stopped = 0;
    for record in &records {
        if stop(record, grace, out) {
            stopped += 1;
            if !out.quiet {
                say!("{}: stopped", record.name);
            }
        }
    }
    if stopped == records.len() {
        exit::SUCCESS
    } else {
        exit::INVALID
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The sandbox's name.
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
    let record = match store().running(&args.name) {
        Ok(record) => record,
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
    match crate::exec::join::join(&record, &plan, args.tty) {
        Ok(outcome) => {
            if let Some(failure) = &outcome.failure {
                out.error(&failure.to_string());
            }
            outcome.status
        }
        Err(error) => {
            out.error(&error.to_string());
            exit::LAUNCHER_FAILED
        }
    }
}
