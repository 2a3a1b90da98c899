//! The supervisor: waits for the sandbox without polling on a timer. One poll(2) over the
//! child's pidfd, a signalfd for the signals it forwards, the exec pipe, an optional timerfd for
//! `timeout`, and the terminal relay.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use super::error::{ExecError, StepFailure};
use super::steps::{command, pid};
use crate::cgroup::{CgroupError, Usage};
use crate::exit;
use crate::sys::Sys;
use crate::sys::raw::{self, write_all};

/// After `timeout`, SIGTERM; after this grace, SIGKILL (the spec's 2 s).
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

pub struct Supervised<'a> {
    pub sys: &'a dyn Sys,
    pub pidfd: OwnedFd,
    pub exec_pipe: OwnedFd,
    pub master: Option<OwnedFd>,
    pub timeout: Option<Duration>,
    /// Called once the command runs; never if it does not.
    pub on_started: Option<&'a mut dyn FnMut()>,
    /// The sandbox's init writes how the command ended here (see [`pid::Report`]).
    pub ended: Option<OwnedFd>,
    /// Return as soon as `ended` tells how the command ended, without waiting for init's exit
    /// (the kernel tears the namespaces down after, as it does behind bubblewrap), unless the
    /// command left other processes, which die with init.
    pub return_early: bool,
    /// Descriptors kept while the command runs, let go in order as soon as init said it
    /// ended, or else on return: the sandbox's namespaces, which `sandbox exec` joins through
    /// this process, then the channel whose closing lets init exit (see [`pid::init`]).
    pub held: Vec<OwnedFd>,
}

/// How the sandbox ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit status `sandbox up` passes on: the command's, 128+N for a signal, 124 on
    /// timeout, 126/127 when the command could not be executed.
    pub status: u8,
    pub timed_out: bool,
    /// Set when the command never started (exec or security step failed).
    pub failure: Option<StepFailure>,
    /// What the sandbox's own cgroup accounted, when it had one.
    pub usage: Option<Usage>,
    /// The sandbox's cgroup could not be removed (the next run's sweep removes it).
    pub cleanup: Option<CgroupError>,
    /// The signal that killed the command, if one did.
    pub signal: Option<i32>,
    /// What the egress rules refused, or why that could not be read; `None` without them.
    pub egress: Option<Result<Vec<crate::egress::Refused>, Errno>>,
}

fn fail(action: &str) -> impl FnOnce(Errno) -> ExecError + '_ {
    move |errno| ExecError::Supervisor {
        action: action.to_string(),
        errno,
    }
}

pub fn supervise(s: Supervised) -> Result<Outcome, ExecError> {
    let signals = SignalFd::with_flags(
        &pid::forwarded_set(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .map_err(fail("signalfd"))?;
    let mut timeout = s.timeout.map(Timeout::arm).transpose()?;
    let mut relay = s.master.map(Relay::start).transpose()?;
    let mut on_started = s.on_started;
    let mut held = s.held;
    let mut exec_pipe = Some(s.exec_pipe);
    let mut failure = None;
    let mut report = None;
    let mut watch_ended = s.return_early;

    let status = loop {
        let mut fds = vec![
            PollFd::new(s.pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        // The exec pipe only needs watching to tell `up -d` the moment the command runs;
        // otherwise it is read once the sandbox ended, sparing a wake-up.
        let exec_index = exec_pipe
            .as_ref()
            .filter(|_| on_started.is_some())
            .map(|p| {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
        let ended_index = s.ended.as_ref().filter(|_| watch_ended).map(|e| {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let timer_index = timeout.as_ref().map(|t| {
            fds.push(PollFd::new(t.timer.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let (stdin_index, master_index) = relay
            .as_ref()
            .map_or((None, None), |r| r.poll_fds(&mut fds));
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(fail("poll")(errno)),
            Ok(_) => {}
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let (pid_ready, signal_ready) = (ready(0), ready(1));
        let exec_ready = exec_index.is_some_and(ready);
        let ended_ready = ended_index.is_some_and(ready);
        let timer_ready = timer_index.is_some_and(ready);
        let (stdin_ready, master_ready) = (
            stdin_index.is_some_and(ready),
            master_index.is_some_and(ready),
        );
        drop(fds);

        if exec_ready && let Some(pipe) = exec_pipe.take() {
            failure = exec_result(&pipe, &mut on_started);
        }
        if signal_ready {
            forward_signals(s.sys, &signals, relay.as_mut(), s.pidfd.as_fd());
        }
        if timer_ready && let Some(timeout) = &mut timeout {
            timeout.expired(s.sys, s.pidfd.as_fd());
        }
        if let Some(relay) = relay.as_mut() {
            relay.pump(stdin_ready, master_ready);
        }
        if ended_ready && let Some(pipe) = &s.ended {
            // End of file without a word: init itself was killed; its exit status tells.
            report = pid::Report::read(pipe.as_fd());
            watch_ended = false;
            // Vec drops its elements in order.
            held.clear();
            // Processes the command left are killed as init exits: wait for that, so that
            // nothing of the sandbox runs once `up` returned.
            if report.is_some_and(|r| !r.others_left) {
                break None;
            }
        }
        if pid_ready {
            let status = s.sys.wait_exit(s.pidfd.as_fd()).map_err(fail("waitid"))?;
            break Some(status);
        }
    };
    // Init is gone, so this reads what it wrote or end of file: it cannot block.
    if report.is_none()
        && let Some(pipe) = &s.ended
    {
        report = pid::Report::read(pipe.as_fd());
    }
    if let Some(relay) = relay.as_mut() {
        relay.drain();
    }
    if let Some(pipe) = exec_pipe.take() {
        failure = command::read_failure(&pipe);
    }
    // Without init's word (no pid namespace, or init itself was killed), its wait status.
    let ended = report.map(|r| r.ended);
    let timed_out = timeout.is_some_and(|t| t.term_sent);
    let (status, signal) = ending(ended.or_else(|| status.and_then(pid::Ended::of)), timed_out);
    Ok(Outcome {
        status,
        timed_out,
        failure,
        usage: None,
        cleanup: None,
        signal,
        egress: None,
    })
}

/// The status `sandbox up` passes on, and the signal that killed the command: how the command
/// ended, unless the timeout ended it; without a word of its end, the launcher failed.
fn ending(ended: Option<pid::Ended>, timed_out: bool) -> (u8, Option<i32>) {
    let (status, signal) = match ended {
        Some(ended) => (ended.status(), ended.signal()),
        None => (exit::LAUNCHER_FAILED, None),
    };
    let status = if timed_out { exit::TIMEOUT } else { status };
    (status, signal)
}

/// The exec pipe's word: the command's failure to start, or else that it started, told to
/// `on_started`.
fn exec_result(pipe: &OwnedFd, on_started: &mut Option<&mut dyn FnMut()>) -> Option<StepFailure> {
    let failure = command::read_failure(pipe);
    if failure.is_none()
        && let Some(started) = on_started.take()
    {
        started();
    }
    failure
}

/// Pass the signals the launcher received on to the sandbox; a window size change resizes the
/// pty instead, whose kernel side tells the command.
fn forward_signals(
    sys: &dyn Sys,
    signals: &SignalFd,
    mut relay: Option<&mut Relay>,
    pidfd: BorrowedFd<'_>,
) {
    while let Ok(Some(info)) = signals.read_signal() {
        let signal = info.ssi_signo as i32;
        match relay.as_deref_mut() {
            Some(relay) if signal == Signal::SIGWINCH as i32 => relay.resize(),
            _ => {
                let _ = sys.pidfd_send_signal(pidfd, signal);
            }
        }
    }
}

/// The manifest's `timeout`: SIGTERM when it expires, SIGKILL after [`TIMEOUT_GRACE`].
struct Timeout {
    timer: TimerFd,
    term_sent: bool,
    kill_sent: bool,
}

impl Timeout {
    fn arm(after: Duration) -> Result<Timeout, ExecError> {
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC)
            .map_err(fail("timerfd"))?;
        timer
            .set(
                Expiration::OneShot(TimeSpec::from_duration(after)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(fail("arming the timeout"))?;
        Ok(Timeout {
            timer,
            term_sent: false,
            kill_sent: false,
        })
    }

    fn expired(&mut self, sys: &dyn Sys, pidfd: BorrowedFd<'_>) {
        let _ = self.timer.wait();
        self.escalate(sys, pidfd);
    }

    /// SIGTERM the first time, with the grace period armed; SIGKILL the next; then nothing.
    fn escalate(&mut self, sys: &dyn Sys, pidfd: BorrowedFd<'_>) {
        if !self.term_sent {
            self.term_sent = true;
            let _ = sys.pidfd_send_signal(pidfd, libc::SIGTERM);
            let _ = self.timer.set(
                Expiration::OneShot(TimeSpec::from_duration(TIMEOUT_GRACE)),
                TimerSetTimeFlags::empty(),
            );
        } else if !self.kill_sent {
            self.kill_sent = true;
            let _ = sys.pidfd_send_signal(pidfd, libc::SIGKILL);
        }
    }
}

/// Relays the caller's terminal to the sandbox's pty: raw mode while it runs, window size kept
/// in sync (the kernel then sends SIGWINCH to the command itself).
struct Relay {
    stdin: std::io::Stdin,
    master: OwnedFd,
    saved: Option<Termios>,
    stdin_open: bool,
    master_open: bool,
}

impl Relay {
    fn start(master: OwnedFd) -> Result<Relay, ExecError> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(fail("raw mode"))?;
        }
        let relay = Relay {
            stdin,
            master,
            saved,
            stdin_open: true,
            master_open: true,
        };
        relay.resize();
        Ok(relay)
    }

    fn resize(&self) {
        if let Ok(size) = raw::get_winsize(self.stdin.as_fd()) {
            let _ = raw::set_winsize(self.master.as_fd(), &size);
        }
    }

    /// Adds stdin and the master to the poll set, while they are open; returns their indices.
    fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> (Option<usize>, Option<usize>) {
        let mut add = |fd: BorrowedFd<'a>, open: bool| {
            open.then(|| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            })
        };
        (
            add(self.stdin.as_fd(), self.stdin_open),
            add(self.master.as_fd(), self.master_open),
        )
    }

    fn pump(&mut self, stdin_ready: bool, master_ready: bool) {
        let mut buffer = [0u8; 8192];
        if stdin_ready {
            match nix::unistd::read(self.stdin.as_fd(), &mut buffer) {
                Ok(0) | Err(_) => {
                    self.stdin_open = false;
                    // End of input: the pty's EOF character, as a terminal would send.
                    let _ = write_all(self.master.as_fd(), &[4]);
                }
                Ok(n) => {
                    let _ = write_all(self.master.as_fd(), &buffer[..n]);
                }
            }
        }
        if master_ready && !self.copy_out(&mut buffer) {
            self.master_open = false;
        }
    }

    /// Copy what the command wrote; false once the slave side is closed (EIO).
    fn copy_out(&self, buffer: &mut [u8]) -> bool {
        match nix::unistd::read(self.master.as_fd(), buffer) {
            Ok(0) | Err(_) => false,
            Ok(n) => write_all(std::io::stdout().as_fd(), &buffer[..n]).is_ok(),
        }
    }

    /// After the command exited: what it wrote last is still in the pty.
    fn drain(&mut self) {
        if !self.master_open {
            return;
        }
        let _ = nix::fcntl::fcntl(
            self.master.as_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let mut buffer = [0u8; 8192];
        while self.copy_out(&mut buffer) {}
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(self.stdin.as_fd(), SetArg::TCSADRAIN, saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Fake;
    use pid::Ended;

    #[test]
    fn the_status_is_the_commands_unless_the_timeout_ended_it() {
        assert_eq!(ending(Some(Ended::Exited(3)), false), (3, None));
        assert_eq!(ending(Some(Ended::Killed(9)), false), (137, Some(9)));
        assert_eq!(
            ending(Some(Ended::Killed(15)), true),
            (exit::TIMEOUT, Some(15)),
            "the timeout's SIGTERM"
        );
        assert_eq!(ending(Some(Ended::Exited(0)), true), (exit::TIMEOUT, None));
        assert_eq!(ending(None, false), (exit::LAUNCHER_FAILED, None));
    }

    #[test]
    fn an_expired_timeout_sends_sigterm_then_sigkill_then_nothing() {
        let fake = Fake::new();
        let pidfd = fake.descriptor("sandbox");
        let mut timeout = Timeout::arm(Duration::from_secs(3600)).unwrap();
        for _ in 0..3 {
            timeout.escalate(&fake, pidfd.as_fd());
        }
        assert_eq!(
            fake.calls(),
            [
                "pidfd_send_signal(sandbox, SIGTERM)",
                "pidfd_send_signal(sandbox, SIGKILL)",
            ]
        );
        assert!(timeout.term_sent && timeout.kill_sent);
    }
}
