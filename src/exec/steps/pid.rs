//! The pid namespace's init.
//!
//! The setup process is pid 1 of the new pid namespace (CLONE_NEWPID in the clone). It spawns
//! the command and stays as a minimal init, like bubblewrap's: it reaps every zombie (orphans
//! are reparented to it), forwards the signals the supervisor passes on, and exits with the
//! command's status as soon as the command exits, which makes the kernel kill whatever is left
//! in the namespace (pid_namespaces(7)).
//!
//! pid 1 only receives signals it has a handler for; [`install_handlers`] runs before the
//! supervisor is told the sandbox is ready, so no forwarded signal can be dropped.

use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use std::os::fd::AsRawFd;

use crate::exec::error::{OrFail, StepFailure};
use crate::exec::handshake::{Channel, ToParent};
use crate::exec::sys;
use crate::plan::StepId;

/// The signals the supervisor forwards to the command.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

pub fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(signal);
    }
    set
}

/// Give pid 1 handlers for what it must receive, while the signals stay blocked (they were
/// blocked by the supervisor before the clone) and are read from a signalfd.
pub fn install_handlers() -> Result<(), StepFailure> {
    let mut set = forwarded_set();
    set.add(Signal::SIGCHLD);
    set.thread_block()
        .or_fail(StepId::Pid, || "blocking signals".into())?;
    for signal in set.iter() {
        sys::install_noop_handler(signal as i32)
            .or_fail(StepId::Pid, || format!("handler for {signal}"))?;
    }
    Ok(())
}

/// Run as init until the command exits; never returns. The channel to the supervisor is the
/// one descriptor kept: it carries how the command ended when a signal ended it.
pub fn init(command: Pid, channel: Channel) -> ! {
    // Nothing else of the launcher stays open in init, and it keeps no privilege it does not
    // need.
    let _ = sys::close_from_except(3, channel.as_fd().as_raw_fd());
    for set in [
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
        caps::CapSet::Inheritable,
    ] {
        let _ = caps::clear(None, set);
    }
    let mut set = forwarded_set();
    set.add(Signal::SIGCHLD);
    let Ok(signals) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) else {
        sys::exit_now(125)
    };
    loop {
        // Reap first: the command may have exited before we got here.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == command => sys::exit_now(code),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == command => {
                    let _ = channel.send(
                        &ToParent::CommandKilled {
                            signal: signal as i32,
                        },
                        &[],
                    );
                    sys::exit_now(128 + signal as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
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
