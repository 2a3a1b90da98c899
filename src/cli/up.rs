use std::io::IsTerminal;
use std::path::PathBuf;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use clap::Args;

use super::{Output, exit};
use crate::cgroup::Usage;
use crate::diagnostics::Problem;
use crate::exec::{self, ExecError, Outcome, StepFailure};
use crate::host::HostFacts;
use crate::hostpath::HostFiles;
use crate::manifest::values::Size;
use crate::manifest::{Loaded, SourceMap, Span};
use crate::plan::{CgroupLimit, Plan, RootSource, SeccompPlan, render_text, shell_words};
use crate::rootfs::{self, Cache, PreparedRoot, Progress, RootfsError};
use crate::state::{self, Record, StateError};
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The manifest (default: sandbox.toml here or in a parent folder).
    pub manifest: Option<PathBuf>,
    /// Replace the sandbox's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Print the plan instead of running it (same as `sandbox plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Start the sandbox in the background and return once its command runs, printing its
    /// name; its output goes to a log (`sandbox logs NAME`).
    #[arg(short, long)]
    pub detach: bool,
    /// Run a manifest that asks for more than the default jail this once, without recording it
    /// (for CI scripts that run their own checked-in manifest).
    #[arg(long)]
    pub trust: bool,
    /// At exit, print peak memory, CPU time and the task peak, from the sandbox's own cgroup
    /// (on stderr, after the command's output).
    #[arg(long)]
    pub stats: bool,
    /// With --stats: print them as one JSON object.
    #[arg(long, requires = "stats")]
    pub json: bool,
    /// The command to run, instead of process.command.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(args: UpArgs, out: &Output) -> u8 {
    let invocation = Invocation {
        command: (!args.command.is_empty()).then_some(args.command),
        name: args.name,
        stats: args.stats,
    };
    let prepared = match super::prepare(
        args.manifest.as_deref(),
        &invocation,
        out,
        exit::LAUNCHER_FAILED,
    ) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let super::Prepared {
        host,
        loaded,
        mut plan,
    } = prepared;
    if args.dry_run {
        show!(text crate::escape::printable(&render_text(&plan, out.verbose)));
        return exit::SUCCESS;
    }
    // Opened before the trust check judges the plan: these very descriptors are mounted.
    let Some(files) = host_files(&plan, &loaded, out) else {
        return exit::LAUNCHER_FAILED;
    };
    if !super::trust::may_run(&plan, &loaded, &host, args.trust, out) {
        return exit::LAUNCHER_FAILED;
    }
    if out.verbose {
        for warning in &plan.warnings {
            say!("warning: {warning}");
        }
    }
    let root = match prepare_root(&plan, &host, out, &loaded) {
        Ok(root) => root,
        Err(problem) => {
            out.problems(&[*problem], &loaded);
            return exit::LAUNCHER_FAILED;
        }
    };
    if out.verbose
        && let Some(root) = &root
    {
        say_root(root);
    }
    let Some(mut claim) = claim(&plan, &host, out) else {
        return exit::LAUNCHER_FAILED;
    };
    // Leased before the detach and the clone: the supervisor and the sandbox's init hold it.
    let Ok(block) = lease_ids(&mut plan, &loaded, out) else {
        return exit::LAUNCHER_FAILED;
    };
    let waiter = if args.detach {
        match detach(&plan, &claim, out) {
            Detached::Supervisor(waiter) => Some(waiter),
            Detached::Caller(code) => {
                // The supervisor holds the name and the block now; this process only reports.
                std::mem::forget(claim);
                if let Some(block) = block {
                    block.keep();
                }
                return code;
            }
        }
    } else {
        None
    };
    let log = args.detach.then(|| claim.log_path());
    let mut write_record = |running: &exec::Running| record(&mut claim, &plan, &log, running);
    let mut started = false;
    let mut on_started = || {
        started = true;
        if let Some(waiter) = &waiter {
            waiter.started();
        }
    };
    let hooks = exec::Hooks {
        on_ready: Some(&mut write_record),
        on_started: Some(&mut on_started),
    };
    // `root` stays alive (its cache entry locked in use) until the sandbox is gone.
    let result = exec::run(&plan, root.as_ref().map(|r| r.dir.as_path()), files, hooks);
    // What the launcher says about the run, on stderr; or, for a detached sandbox whose
    // command never started, to the caller still waiting, which prints it.
    let stats = args.stats.then_some(args.json);
    let (status, said) = report(result, out, &loaded, &plan, &invocation, stats);
    match waiter {
        // Never started: nothing to keep. The record and the log go before the caller hears,
        // so that when it returns, no trace is left.
        Some(waiter) if !started => {
            drop(claim);
            waiter.failed(status, &said);
        }
        _ => {
            say!(text said);
            claim.end(status, args.detach);
        }
    }
    status
}

/// Record the running sandbox under its claimed name, for `ps`, `exec`, `stop` and `logs`.
fn record(
    claim: &mut state::Claim,
    plan: &Plan,
    log: &Option<PathBuf>,
    running: &exec::Running,
) -> Result<(), ExecError> {
    let not_recorded = |error| ExecError::NotRecorded(std::sync::Arc::new(error));
    let init = state::stat_of(running.init_pid).ok_or_else(|| {
        not_recorded(StateError::Io {
            action: "reading",
            path: format!("/proc/{}/stat", running.init_pid).into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    })?;
    let record = Record {
        name: claim.name().to_string(),
        id: state::new_id(),
        supervisor_pid: std::process::id() as i32,
        init_pid: running.init_pid,
        manifest: plan.manifest.clone(),
        started: state::now(),
        cgroups: running.cgroups.clone(),
        addresses: running.address.iter().map(ToString::to_string).collect(),
        init_started: init.started,
        log: log.clone(),
        plan: plan.clone(),
    };
    claim.write(&record).map_err(not_recorded)
}

/// The host paths the plan mounts, opened; `None` when one changed since it was judged,
/// reported.
fn host_files(plan: &Plan, loaded: &Loaded, out: &Output) -> Option<HostFiles> {
    match HostFiles::open(plan) {
        Ok(files) => Some(files),
        Err(error) => {
            let mut problem = Problem::error("sandbox::mount::source-changed", error.to_string())
                .help("run it again; if it keeps failing, something is changing that path");
            if let Some(span) = loaded.span_of(&error.key) {
                problem = problem.at(span, "this path");
            }
            out.problems(&[problem], loaded);
            None
        }
    }
}

/// `-v`: where the root came from.
fn say_root(root: &PreparedRoot) {
    match root.unpacked {
        Some(took) => say!(
            "sandbox: rootfs         unpacked {} in {:.3} ms",
            root.digest,
            took.as_secs_f64() * 1e3
        ),
        None => say!("sandbox: rootfs         cached {}", root.digest),
    }
}

/// The sandbox's name, claimed in the caller's store; `None` when it cannot be, reported.
fn claim(plan: &Plan, host: &HostFacts, out: &Output) -> Option<state::Claim> {
    let store = match super::lifecycle::store_of(&host.caller) {
        Ok(store) => store,
        Err(error) => {
            out.error(&format!("cannot record the sandbox: {error}"));
            return None;
        }
    };
    match store.claim_free(&plan.name, plan.name_given) {
        Ok((claim, _stale)) => Some(claim),
        Err(StateError::Running(name)) => {
            out.error(&format!(
                "a sandbox named `{name}` is already running: stop it with `sandbox down {name}`, or run this one under another name with --name"
            ));
            None
        }
        Err(error) => {
            out.error(&format!("cannot record the sandbox: {error}"));
            None
        }
    }
}

/// The block of host ids the sandbox's map leases, when it has one (`-v` says which);
/// `Err` when none is free, reported.
fn lease_ids(
    plan: &mut Plan,
    loaded: &Loaded,
    out: &Output,
) -> Result<Option<exec::ids::Block>, ()> {
    let leasing = std::time::Instant::now();
    let block = match exec::ids::lease(plan) {
        Ok(block) => block,
        Err(failure) => {
            out.problems(&[failure_problem(&failure, loaded)], loaded);
            return Err(());
        }
    };
    if out.verbose
        && let Some(user) = block.as_ref().and(plan.user.as_ref())
    {
        say!(
            "sandbox: {:<15} {:>8.3} ms  (uid map {})",
            "ids (lease)",
            leasing.elapsed().as_secs_f64() * 1e3,
            crate::plan::maps(&user.uid_map)
        );
    }
    Ok(block)
}

/// The run's status, and what the launcher says about it: each step's time (`-v`), a failure,
/// a timeout, memory and usage (`stats`: `--stats`, as JSON or not), egress, what was left
/// behind, a seccomp kill.
fn report(
    result: Result<(Outcome, Vec<(String, std::time::Duration)>), ExecError>,
    out: &Output,
    loaded: &Loaded,
    plan: &Plan,
    invocation: &Invocation,
    stats: Option<bool>,
) -> (u8, String) {
    let mut said = String::new();
    let status = match result {
        Ok((outcome, timings)) => {
            if out.verbose {
                for (step, duration) in &timings {
                    said += &format!(
                        "sandbox: {step:<15} {:>8.3} ms\n",
                        duration.as_secs_f64() * 1e3
                    );
                }
            }
            if let Some(failure) = &outcome.failure {
                said += &failure_text(out, failure, loaded, invocation.command.as_deref());
            }
            if outcome.timed_out {
                said += &timed_out(plan);
            }
            if let Some(usage) = &outcome.usage {
                said += &report_usage(usage, &outcome, plan, stats);
            }
            said += &egress_report(&outcome, out);
            if let Some(error) = &outcome.cleanup {
                said += &format!(
                    "sandbox: warning: the sandbox's cgroup is left behind ({error}); the next run removes it\n"
                );
            }
            if outcome.signal == Some(libc::SIGSYS) && plan.security.seccomp != SeccompPlan::Off {
                said += &out.problems_text(&[seccomp_kill_problem(loaded)], loaded);
            }
            outcome.status
        }
        Err(error) => {
            said += &match &error {
                ExecError::Step(failure) => {
                    failure_text(out, failure, loaded, invocation.command.as_deref())
                }
                other => out.problems_text(
                    &[Problem::error("sandbox::exec::setup", other.to_string())],
                    loaded,
                ),
            };
            exit::LAUNCHER_FAILED
        }
    };
    (status, said)
}

/// What the egress rules refused, for stderr (not with `-q`).
fn egress_report(outcome: &Outcome, out: &Output) -> String {
    match &outcome.egress {
        _ if out.quiet => String::new(),
        Some(Ok(refused)) => crate::egress::report(refused)
            .map(|line| format!("sandbox: {line}\n"))
            .unwrap_or_default(),
        Some(Err(errno)) => format!(
            "sandbox: warning: the egress counts could not be read: {}\n",
            errno.desc()
        ),
        None => String::new(),
    }
}

/// What a timeout (exit status 124) did, for stderr.
pub(super) fn timed_out(plan: &Plan) -> String {
    let limit = plan
        .process
        .timeout_ms
        .map(|ms| format!(" ({})", crate::manifest::values::Duration(ms)))
        .unwrap_or_default();
    format!(
        "sandbox: timed out: the command ran past process.timeout{limit} and was stopped (SIGTERM, then SIGKILL after {}s); exit status {}\n",
        crate::exec::TIMEOUT_GRACE.as_secs(),
        exit::TIMEOUT
    )
}

/// Unpack a tar or OCI root, or find it in the cache. Progress bars only on a terminal; they
/// are finished (and leave no thread) before the sandbox is cloned.
pub(super) fn prepare_root(
    plan: &Plan,
    host: &HostFacts,
    out: &Output,
    loaded: &Loaded,
) -> Result<Option<PreparedRoot>, Box<Problem>> {
    if !matches!(
        plan.root.source,
        RootSource::Tar { .. } | RootSource::Oci { .. }
    ) {
        return Ok(None);
    }
    let progress = Progress {
        visible: !out.quiet && std::io::stderr().is_terminal(),
    };
    let prepared = rootfs::cache::locate(&host.caller.env, host.caller.is_root())
        .and_then(Cache::open)
        .map_err(RootfsError::from)
        .and_then(|cache| rootfs::prepare(&plan.root.source, &cache, progress));
    prepared.map_err(|error| {
        let key = error.key(&plan.root.source);
        let code = match error {
            RootfsError::Sha256 { .. } => "sandbox::rootfs::sha256-mismatch",
            RootfsError::Cache(_) => "sandbox::rootfs::cache",
            _ => "sandbox::rootfs::unpack",
        };
        let mut problem = Problem::error(code, error.to_string());
        if let Some(span) = loaded.provenance.get(key) {
            problem = problem.at(*span, "this root");
        }
        Box::new(problem)
    })
}

/// SIGSYS is what the kernel sends when a seccomp filter kills a process.
fn seccomp_kill_problem(loaded: &Loaded) -> Problem {
    let mut problem = Problem::error(
        "sandbox::exec::seccomp-kill",
        format!(
            "the command was killed by seccomp (SIGSYS, exit status {}): it made a system call \
             that the seccomp profile forbids",
            128 + libc::SIGSYS
        ),
    );
    if let Some(span) = loaded.provenance.get("security.seccomp") {
        problem = problem.at(*span, "this profile");
    }
    problem.help(
        "find the call with `strace -f` (and seccomp = \"off\"), then allow it; with \
         default_action = \"errno\" a forbidden call fails instead of killing",
    )
}

/// A failed step as a diagnostic, as text, underlining what it came from: the command given
/// after `--` when that is what failed to run, else the manifest key behind it.
fn failure_text(
    out: &Output,
    failure: &StepFailure,
    loaded: &Loaded,
    command_line: Option<&[String]>,
) -> String {
    let problem = failure_problem(failure, loaded);
    match command_line {
        Some(argv)
            if failure
                .key
                .as_ref()
                .is_some_and(|key| key.is_key("process.command")) =>
        {
            // The command line, shown as a source of its own with the program underlined.
            let mut sources = SourceMap::default();
            let program = shell_words(&argv[..1]).len();
            let file = sources.add("command line".into(), format!("-- {}", shell_words(argv)));
            let start = sources.base(file) + "-- ".len();
            let problem = problem.at(
                Span::new(start, start + program),
                format!("{} failed here", failure.step.name()),
            );
            out.problems_text_in(&[problem], &sources)
        }
        _ => out.problems_text(&[problem], loaded),
    }
}

/// A failed step as a diagnostic, underlining the manifest key behind it when there is one.
fn failure_problem(failure: &StepFailure, loaded: &Loaded) -> Problem {
    let code = match failure.step {
        crate::plan::StepId::User => "sandbox::exec::user",
        crate::plan::StepId::Mount => "sandbox::exec::mount",
        crate::plan::StepId::Pid => "sandbox::exec::pid",
        crate::plan::StepId::Net => "sandbox::exec::net",
        crate::plan::StepId::Chroot => "sandbox::exec::chroot",
        crate::plan::StepId::Cgroup => "sandbox::exec::cgroup",
        crate::plan::StepId::Security => "sandbox::exec::security",
        crate::plan::StepId::Exec => "sandbox::exec::exec",
    };
    let mut problem = Problem::error(code, failure.to_string());
    if let Some(span) = failure.key.as_ref().and_then(|key| loaded.span_of(key)) {
        problem = problem.at(span, format!("{} failed here", failure.step.name()));
    }
    if let Some(advice) = failure.advice() {
        problem = problem.help(advice);
    }
    problem
}

/// The out-of-memory verdict, and `--stats` (`Some(json)`), for stderr.
fn report_usage(usage: &Usage, outcome: &Outcome, plan: &Plan, stats: Option<bool>) -> String {
    let mut said = String::new();
    let limit = plan
        .cgroup
        .as_ref()
        .and_then(|c| c.limits.get(CgroupLimit::Memory));
    if let Some(limit) = limit
        && usage.oom_kills > 0
    {
        let limit = Size(limit);
        if outcome.status == 128 + libc::SIGKILL as u8 {
            said += &format!("sandbox: killed: out of memory (limit {limit})\n");
        } else {
            let n = usage.oom_kills;
            let processes = if n == 1 { "process" } else { "processes" };
            said += &format!("sandbox: {n} {processes} killed: out of memory (limit {limit})\n");
        }
    }
    let Some(json) = stats else {
        return said;
    };
    if json {
        let json = serde_json::json!({
            "status": outcome.status,
            "oom_kills": usage.oom_kills,
            "peak_memory_bytes": usage.peak_memory,
            "cpu_usec": usage.cpu_usec,
            "task_peak": usage.task_peak,
        });
        said += &format!("{json}\n");
        return said;
    }
    let unknown = || "unknown".to_string();
    said += &format!(
        "sandbox: peak memory {}, cpu time {}, task peak {}\n",
        usage
            .peak_memory
            .map_or_else(unknown, |bytes| Size(bytes).approximate()),
        usage
            .cpu_usec
            .map_or_else(unknown, |us| format!("{:.3} s", us as f64 / 1e6)),
        usage.task_peak.map_or_else(unknown, |n| n.to_string()),
    );
    said
}

enum Detached {
    /// This process supervises the sandbox, and tells the caller how its start went.
    Supervisor(Waiter),
    /// This process started the supervisor and has its answer.
    Caller(u8),
}

/// The supervisor's end of the pipe the caller of `up -d` waits on: one byte once the command
/// runs; or, when it never did, the exit status and what `up` said, so that the caller prints
/// and returns what a foreground `up` would.
struct Waiter(OwnedFd);

const STARTED: u8 = b'S';
const FAILED: u8 = b'F';

impl Waiter {
    fn started(&self) {
        let _ = crate::sys::raw::write_all(self.0.as_fd(), &[STARTED]);
    }

    fn failed(self, status: u8, said: &str) {
        let length = u32::try_from(said.len()).unwrap_or(u32::MAX);
        let mut word = vec![FAILED, status];
        word.extend(length.to_le_bytes());
        word.extend(&said.as_bytes()[..length as usize]);
        let _ = crate::sys::raw::write_all(self.0.as_fd(), &word);
    }
}

/// The caller's side: wait for the supervisor's word; print and return what it says.
fn hear(from: OwnedFd, name: &str, out: &Output) -> u8 {
    use std::io::Read;
    let mut pipe = std::fs::File::from(from);
    let mut head = [0u8; 1];
    let lost = |out: &Output| {
        out.error("the sandbox's supervisor ended before its command started");
        exit::LAUNCHER_FAILED
    };
    if pipe.read_exact(&mut head).is_err() {
        return lost(out);
    }
    if head[0] == STARTED {
        show!("{name}");
        return exit::SUCCESS;
    }
    let mut status_and_length = [0u8; 5];
    if pipe.read_exact(&mut status_and_length).is_err() {
        return lost(out);
    }
    let [status, length @ ..] = status_and_length;
    let mut said = vec![0u8; u32::from_le_bytes(length) as usize];
    if pipe.read_exact(&mut said).is_err() {
        return lost(out);
    }
    say!(text String::from_utf8_lossy(&said));
    status
}

/// Split into the caller, which waits until the command runs (or fails to) and then returns,
/// and a supervisor in its own session whose output (and the command's) goes to the log.
fn detach(plan: &Plan, claim: &state::Claim, out: &Output) -> Detached {
    let fail = |what: &str, error: &dyn std::fmt::Display| {
        out.error(&format!("cannot detach: {what}: {error}"));
        Detached::Caller(exit::LAUNCHER_FAILED)
    };
    if plan.process.tty == crate::manifest::Tty::Always {
        out.error("a detached sandbox has no terminal: set `tty = \"never\"` or \"auto\"");
        return Detached::Caller(exit::LAUNCHER_FAILED);
    }
    // The claim holds the name: a log left by an earlier run of it is this run's now.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(claim.log_path())
        .and_then(|log| log.set_len(0).map(|()| log));
    let log = match log {
        Ok(log) => log,
        Err(e) => return fail("opening the log", &e),
    };
    let (word_read, word_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(e) => return fail("pipe2", &e),
    };
    match crate::sys::raw::fork() {
        Err(e) => fail("fork", &e),
        Ok(Some(_supervisor)) => {
            drop(word_write);
            Detached::Caller(hear(word_read, claim.name(), out))
        }
        Ok(None) => {
            drop(word_read);
            let _ = nix::unistd::setsid();
            let null = std::fs::File::open("/dev/null");
            if let Ok(null) = &null {
                let _ = nix::unistd::dup2_stdin(null);
            }
            let _ = nix::unistd::dup2_stdout(&log);
            let _ = nix::unistd::dup2_stderr(&log);
            Detached::Supervisor(Waiter(word_write))
        }
    }
}
