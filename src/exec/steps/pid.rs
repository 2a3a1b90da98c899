//! The pid namespace's init.
//!
//! The setup process is pid 1 of the new pid namespace (CLONE_NEWPID in the clone). It spawns
//! the command and stays as a minimal init, like bubblewrap's: it reaps every zombie (orphans
//! are reparented to it), forwards the signals the supervisor passes on, and exits with the
//! command's status as soon as the command exits, which makes the kernel kill whatever is left
//! in the namespace (pid_namespaces(7)). It tells the supervisor whether anything was left:
//! only then does `up` wait for init's exit, so that nothing of the sandbox runs once it
//! returned.
//!
//! pid 1 only receives signals it has a handler for; [`install_handlers`] runs before the
//! supervisor is told the sandbox is ready, so no forwarded signal can be dropped.
//!
//! Init runs the launcher's code, with every capability in the sandbox's user namespace while
//! it sets the sandbox up, and then stays beside the command: nothing the command does may
//! give it control of init. Init is undumpable from `Go` on (see `exec::setup`): its memory and
//! its /proc files (`mem`, `environ`, `exe`, `fd/`, `ns/`, `root`) then open, and ptrace
//! attaches, only for a process with CAP_SYS_PTRACE in the user namespace its memory was made
//! in, the host's, whatever the command's capabilities and uid (ptrace(2), "Ptrace access mode
//! checking"). Once it spawned the command, [`init`] locks itself down as well
//! ([`security::lock_down`], with a seccomp filter of its own: `plan::seccomp::INIT_CALLS`),
//! so that even an init taken over would regain nothing. Nobody needs its /proc files: the
//! supervisor keeps the sandbox's namespaces for `sandbox exec`, and `/proc/PID/stat`, open to
//! all, says init's parent and start time, which identify it.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::security;
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::handshake::Channel;
use crate::exec::seccomp::Program;
use crate::plan::StepId;
use crate::sys::Sys;
use crate::sys::raw;

/// The signals the supervisor forwards to the command, unless its caller ignores them.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Of [`FORWARDED`] and SIGPIPE (which the launcher sets for itself), those the launcher's
/// caller ignored when it started: bit N for signal N.
static IGNORED_BY_CALLER: AtomicU64 = AtomicU64::new(0);

/// Note which signals the caller ignores, before the launcher changes any: they stay ignored
/// for the command and are not forwarded, as through a plain exec (nohup's SIGHUP, a
/// non-interactive shell's SIGINT and SIGQUIT for a background job).
pub fn note_caller_ignored() {
    let ignored = FORWARDED
        .iter()
        .map(|signal| *signal as i32)
        .chain([libc::SIGPIPE])
        .filter(|signal| raw::is_ignored(*signal))
        .fold(0u64, |bits, signal| bits | 1 << signal);
    IGNORED_BY_CALLER.store(ignored, Ordering::Relaxed);
}

/// Whether the caller ignored `signal` (one of [`FORWARDED`], or SIGPIPE) when it started us.
pub fn caller_ignores(signal: i32) -> bool {
    IGNORED_BY_CALLER.load(Ordering::Relaxed) & (1 << signal) != 0
}

/// The signals forwarded to the command: [`FORWARDED`] but those its caller ignores, which
/// keep their SIG_IGN in the supervisor, in init (no handler replaces it) and in the command.
pub fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        if !caller_ignores(signal as i32) {
            set.add(signal);
        }
    }
    set
}

/// Give pid 1 handlers for what it must receive, while the signals stay blocked (they were
/// blocked by the supervisor before the clone) and are read from a signalfd.
pub fn install_handlers(sys: &dyn Sys) -> Result<(), StepFailure> {
    let mut set = forwarded_set();
    set.add(Signal::SIGCHLD);
    sys.block_signals(&set)
        .or_fail(StepId::Pid, Op::Signals, || "blocking signals".into())?;
    for signal in set.iter() {
        sys.install_noop_handler(signal as i32)
            .or_fail(StepId::Pid, Op::Signals, || format!("handler for {signal}"))?;
    }
    Ok(())
}

/// What init calls itself: its command line is `sandbox-init NAME`.
pub const INIT_NAME: &str = "sandbox-init";

/// Name init plainly for whoever lists the sandbox's processes: `sandbox-init NAME` as its
/// command line and `sandbox-init` as its name, instead of the launcher's host path and
/// arguments it inherited; and wipe the launcher's environment from its memory. Before the
/// command is spawned, so that it never sees the old ones.
pub fn name_init(sandbox: &str) {
    raw::set_process_title(format!("{INIT_NAME} {sandbox}").as_bytes());
    let name = std::ffi::CString::new(INIT_NAME).expect("no NUL");
    let _ = nix::sys::prctl::set_name(&name);
}

/// How the command ended: the supervisor learns it from init's [`Report`] without waiting for
/// the namespace's teardown, and tells a signal apart from `exit(128+N)`, which init's own
/// exit status cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(u8),
    Killed(i32),
}

impl Ended {
    /// How a process ended, from its wait status; None while it has not.
    pub fn of(status: WaitStatus) -> Option<Ended> {
        match status {
            WaitStatus::Exited(_, code) => Some(Ended::Exited(code as u8)),
            WaitStatus::Signaled(_, signal, _) => Some(Ended::Killed(signal as i32)),
            _ => None,
        }
    }

    /// The status `sandbox up` passes on: the command's, or 128+N for signal N.
    pub fn status(self) -> u8 {
        match self {
            Ended::Exited(code) => code,
            Ended::Killed(signal) => 128u8.wrapping_add(signal as u8),
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            Ended::Exited(_) => None,
            Ended::Killed(signal) => Some(signal),
        }
    }
}

/// What init writes to the `ended` pipe right before it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub ended: Ended,
    /// Other processes of the sandbox still ran when the command ended. They die with init:
    /// the supervisor waits for that before it returns.
    pub others_left: bool,
}

impl Report {
    const SIZE: usize = 12;

    fn to_bytes(self) -> [u8; Self::SIZE] {
        let (kind, value) = match self.ended {
            Ended::Exited(code) => (0i32, i32::from(code)),
            Ended::Killed(signal) => (1, signal),
        };
        let mut bytes = [0u8; Self::SIZE];
        bytes[..4].copy_from_slice(&kind.to_ne_bytes());
        bytes[4..8].copy_from_slice(&value.to_ne_bytes());
        bytes[8..].copy_from_slice(&i32::from(self.others_left).to_ne_bytes());
        bytes
    }

    /// What init wrote, or None when it exited (or was killed) without a word.
    pub fn read(pipe: BorrowedFd<'_>) -> Option<Report> {
        let mut bytes = [0u8; Self::SIZE];
        match nix::unistd::read(pipe, &mut bytes) {
            Ok(Self::SIZE) => {}
            _ => return None,
        }
        let word = |at: usize| i32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let ended = match (word(0), word(4)) {
            (0, code) => Ended::Exited(u8::try_from(code).ok()?),
            (1, signal) => Ended::Killed(signal),
            _ => return None,
        };
        Some(Report {
            ended,
            others_left: word(8) != 0,
        })
    }
}

/// Whether init still has a child once the command was reaped. Every process of the
/// namespace descends from init, and the command's children were reparented to init before
/// the command could be reaped: no child means nothing else runs.
fn others_left() -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            // A zombie, reaped: look again.
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Run as init until the command exits; never returns. `ended` is where init tells the
/// supervisor how the command ended; `release`, when given, the channel whose closing says the
/// supervisor let go of the sandbox's namespaces (see `exec::Ready`), which init waits for
/// before it exits: so the last reference to them stays init's, and tearing down the
/// sandbox's mounts is its exit's work, not the work of a `sandbox up` that returns at once.
/// `bounding` is what init's bounding set may hold.
pub fn init(
    sys: &dyn Sys,
    command: Pid,
    ended: OwnedFd,
    release: Option<Channel>,
    filter: Option<&Program>,
    bounding: u64,
) -> ! {
    // Nothing else of the launcher stays open in init.
    let kept = [
        Some(ended.as_raw_fd()),
        release.as_ref().map(|r| r.as_fd().as_raw_fd()),
    ];
    let _ = raw::close_from_except(3, &kept.into_iter().flatten().collect::<Vec<_>>());
    let mut set = forwarded_set();
    set.add(Signal::SIGCHLD);
    let Ok(signals) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) else {
        raw::exit_now(125)
    };
    if let Err(failure) = security::lock_down(sys, filter, bounding) {
        // Fail closed: the sandbox does not run beside an init that could not lock itself down.
        let said = format!("sandbox: init: {failure}\n");
        let _ = raw::write_all(std::io::stderr().as_fd(), said.as_bytes());
        raw::exit_now(125)
    }
    loop {
        // Reap first: the command may have exited before we got here.
        loop {
            let end = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) if status.pid() == Some(command) => match Ended::of(status) {
                    Some(end) => end,
                    None => continue,
                },
                Ok(_) => continue,
            };
            let report = Report {
                ended: end,
                others_left: others_left(),
            };
            let _ = nix::unistd::write(&ended, &report.to_bytes());
            if let Some(release) = &release {
                // Nothing more is sent: this reads the end of file of the supervisor's close.
                while let Ok(1..) | Err(Errno::EINTR) =
                    nix::unistd::read(release.as_fd(), &mut [0u8; 1])
                {}
            }
            raw::exit_now(i32::from(end.status()))
        }
        match signals.read_signal() {
            Ok(Some(info)) if info.ssi_signo != Signal::SIGCHLD as u32 => {
                if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                    let _ = kill(command, signal);
                }
            }
            _ => {}
        }
    }
}

/// The child half in the step table: with a pid namespace, this process becomes the sandbox's
/// init, which handles the signals it forwards.
pub fn child_half(cx: &mut crate::exec::order::Context<'_>) -> Result<(), StepFailure> {
    if cx.plan.namespaces.pid {
        install_handlers(cx.sys)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_the_command_ended_crosses_the_pipe() {
        for ended in [Ended::Exited(0), Ended::Exited(143), Ended::Killed(9)] {
            for others_left in [false, true] {
                let report = Report { ended, others_left };
                let (read, write) = nix::unistd::pipe().unwrap();
                nix::unistd::write(&write, &report.to_bytes()).unwrap();
                drop(write);
                assert_eq!(Report::read(read.as_fd()), Some(report));
            }
        }
        // exit(143) and SIGTERM give the same status; only the signal tells them apart.
        assert_eq!(Ended::Exited(143).status(), Ended::Killed(15).status());
        assert_eq!(Ended::Exited(143).signal(), None);
        assert_eq!(Ended::Killed(15).signal(), Some(15));
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(write);
        assert_eq!(
            Report::read(read.as_fd()),
            None,
            "init killed without a word"
        );
    }

    /// The pid step's child half through `fake`, with a pid namespace or without.
    fn child_half_with(fake: &crate::sys::fake::Fake, pid: bool) -> Result<(), StepFailure> {
        let mut plan = crate::plan::for_tests();
        plan.namespaces.pid = pid;
        let files = crate::hostpath::HostFiles::default();
        child_half(&mut crate::exec::order::Context::new(
            &plan, fake, None, files,
        ))
    }

    #[test]
    fn init_blocks_then_handles_the_forwarded_signals_and_sigchld() {
        let fake = crate::sys::fake::Fake::new();
        child_half_with(&fake, true).unwrap();
        let set = "SIGHUP SIGINT SIGQUIT SIGUSR1 SIGUSR2 SIGTERM SIGCHLD SIGWINCH";
        let mut expected = vec![format!("block_signals({set})")];
        for signal in set.split(' ') {
            expected.push(format!("install_noop_handler({signal})"));
        }
        assert_eq!(fake.calls(), expected);
    }

    #[test]
    fn without_a_pid_namespace_nothing_is_installed_and_a_failure_names_the_signal() {
        let fake = crate::sys::fake::Fake::new();
        child_half_with(&fake, false).unwrap();
        assert_eq!(fake.calls(), Vec::<String>::new());
        fake.fail("install_noop_handler", 1, Errno::EINVAL);
        let failure = child_half_with(&fake, true).unwrap_err();
        assert_eq!(failure.errno(), Errno::EINVAL);
        assert!(
            failure.to_string().contains("handler for SIGINT"),
            "{failure}"
        );
    }
}
