//! `sandbox exec`: a command inside a running sandbox, exactly as confined as its own command.
//!
//! The joining process enters the sandbox's cgroup while its host credentials can still write
//! it, then its namespaces with setns(2), the user namespace first (as nsenter does: the caller
//! owns it, so it holds every capability there to join the others). It takes them from the
//! descriptors the sandbox's supervisor keeps (see `exec::Ready`), not from the sandbox's init,
//! whose /proc files are closed to the caller, nor from any process of the sandbox, which could
//! have made namespaces of its own. Joining the mount namespace makes the sandbox's root (the
//! namespace's, which the setup pivoted to) this process's root and working directory. The pid
//! namespace only applies to children, so it spawns one; it takes the same steps as the
//! sandbox's command (session, terminal, environment, cwd, capabilities, no_new_privs,
//! landlock, seccomp), and this process supervises it as `sandbox up` does, locked down as the
//! sandbox's init is (see [`security::lock_down`]).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::SockProtocol;

use super::error::{ExecError, Op, OrFail, StepFailure};
use super::open_pty;
use super::steps::{self, command, pid, security};
use super::supervise::{self, Outcome, Supervised};
use crate::cgroup::CgroupOp;
use crate::egress::Refused;
use crate::netlink::Socket;
use crate::plan::{Plan, StepId};
use crate::state::Record;
use crate::sys::raw;
use crate::sys::{KERNEL, Sys};

fn io(step: StepId, op: Op, action: String) -> impl FnOnce(std::io::Error) -> StepFailure {
    move |e| {
        StepFailure::new(
            step,
            op,
            action,
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    }
}

/// Join `joins`, undumpable first: in the sandbox's user namespace with every capability
/// there, a process of the launcher must be out of reach of the sandbox's processes (ptrace,
/// its memory and /proc files), as the sandbox's init is (see `exec::setup`).
fn enter(sys: &dyn Sys, joins: &[(&str, libc::c_int, File)]) -> Result<(), StepFailure> {
    sys.set_dumpable(false)
        .or_fail(StepId::User, Op::Prctl, || "PR_SET_DUMPABLE".into())?;
    for (name, flag, file) in joins {
        sys.setns(file.as_fd(), *flag)
            .or_fail(StepId::User, Op::Setns, || {
                format!("setns into the {name} namespace")
            })?;
    }
    Ok(())
}

/// What the egress rules of the running sandbox of `record` refused so far (the same as its
/// `up` reports at the end). A netfilter socket can only be opened inside the sandbox's
/// network namespace, which a rootless caller enters only through its user namespace, for
/// good: so a child process does it, through the namespaces the supervisor holds (as `join`),
/// and sends the counts back.
pub fn egress_refused(
    record: &Record,
    supervisor: BorrowedFd<'_>,
) -> Result<Vec<Refused>, ExecError> {
    let joins = held_namespaces(record, supervisor, |name| matches!(name, "user" | "net"))?;
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .or_fail(StepId::Net, Op::Channel, || "pipe2".into())?;
    let child = match raw::fork().or_fail(StepId::Net, Op::Fork, || "fork".into())? {
        Some(child) => child,
        None => {
            drop(read);
            let counted = enter(&KERNEL, &joins)
                .ok()
                .and_then(|()| Socket::open(SockProtocol::NetlinkNetFilter).ok())
                .and_then(|mut socket| crate::egress::refused(&mut socket).ok());
            let bytes = serde_json::to_vec(&counted.map(|list| {
                list.into_iter()
                    .map(|r| (r.address, r.protocol, r.port, r.count))
                    .collect::<Vec<_>>()
            }))
            .expect("counts serialize");
            let _ = raw::write_all(write.as_fd(), &bytes);
            raw::exit_now(0)
        }
    };
    drop(write);
    let mut bytes = Vec::new();
    let read = std::io::Read::read_to_end(&mut File::from(read), &mut bytes);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    read.map_err(io(
        StepId::Net,
        Op::EgressCounts,
        "reading the egress counts".into(),
    ))?;
    let counted: Option<Vec<(std::net::IpAddr, u8, u16, u64)>> = serde_json::from_slice(&bytes)
        .map_err(|_| {
            StepFailure::new(
                StepId::Net,
                Op::EgressCounts,
                "reading the egress counts: a malformed answer",
                Errno::EBADMSG,
            )
        })?;
    let counted = counted.ok_or_else(|| {
        StepFailure::new(
            StepId::Net,
            Op::EgressCounts,
            "reading the egress counts inside the sandbox",
            Errno::EPERM,
        )
    })?;
    Ok(counted
        .into_iter()
        .map(|(address, protocol, port, count)| Refused {
            address,
            protocol,
            port,
            count,
        })
        .collect())
}

/// Run `plan` (the sandbox's plan, with the new command) inside the sandbox of `record`, whose
/// supervisor `supervisor` (a pidfd) was shown to be its own (see `Store::processes`).
pub fn join(
    record: &Record,
    supervisor: BorrowedFd<'_>,
    plan: &Plan,
    terminal: bool,
) -> Result<Outcome, ExecError> {
    let sys: &dyn Sys = &KERNEL;
    let joins = held_namespaces(record, supervisor, |_| true)?;

    // The cgroup, with the host credentials that may write it.
    let me = std::process::id().to_string();
    for dir in &record.cgroups {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, &me).map_err(io(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::Join),
            format!("writing {}", procs.display()),
        ))?;
    }

    security::raise_hard_limits(plan)?;
    let caller_mask = pid::forwarded_set()
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .or_fail(StepId::User, Op::Signals, || "blocking signals".into())?;
    enter(sys, &joins)?;
    drop(joins);
    steps::user::take_setup_ids(sys, plan)?;

    let (master, terminal) = if terminal {
        open_pty(sys).map(|(m, t)| (Some(m), Some(t)))?
    } else {
        (None, None)
    };
    let prepared = super::command_security(plan, caller_mask, false)?;
    let (exec_read, exec_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .or_fail(StepId::Exec, Op::Channel, || "pipe2".into())?;
    let bounding = security::limit_bounding_for_command(sys, plan)?;
    // The command closes exec_read and the master at its execve (both are close-on-exec).
    let child = raw::spawn(&mut || {
        command::exec(
            plan,
            exec_write.as_fd(),
            terminal.as_ref(),
            &prepared,
            bounding,
        )
    })
    .or_fail(StepId::Pid, Op::Execute, || {
        "starting the command in the sandbox's pid namespace".into()
    })?;
    drop(exec_write);
    let pidfd: OwnedFd =
        raw::pidfd_open(child).or_fail(StepId::Exec, Op::PidfdOpen, || "pidfd_open".into())?;
    if let Err(failure) = security::lock_down(sys, None, bounding) {
        let _ = sys.pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        return Err(failure.into());
    }
    supervise::supervise(Supervised {
        sys,
        pidfd,
        exec_pipe: exec_read,
        master,
        timeout: plan.process.timeout_ms.map(Duration::from_millis),
        on_started: None,
        ended: None,
        return_early: false,
        held: Vec::new(),
    })
}

/// The sandbox's namespaces, from the descriptors of its supervisor (`supervisor`, a pidfd of
/// `record.supervisor_pid`), by what /proc/PID/fd says they are (`mnt:[4026532290]`); each
/// one the plan makes whose /proc name `wanted` accepts, in
/// [`Namespaces::joined`](crate::plan::Namespaces::joined)'s order.
fn held_namespaces(
    record: &Record,
    supervisor: BorrowedFd<'_>,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(&'static str, libc::c_int, File)>, ExecError> {
    let pid = record.supervisor_pid;
    let wanted: Vec<_> = (record.plan.namespaces.joined().into_iter())
        .filter(|(name, _)| wanted(name))
        .collect();
    let folder = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&folder).map_err(io(
        StepId::User,
        Op::OpenNamespace,
        format!("reading {folder}"),
    ))?;
    let mut held = Vec::new();
    for entry in entries.flatten() {
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let link = link.to_string_lossy();
        for (name, flag) in &wanted {
            let inode = (link.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix(":["))
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|number| number.parse::<u64>().ok());
            if let Some(inode) = inode {
                held.push((*name, *flag, inode, entry.path()));
            }
        }
    }
    let gone = |why: String| ExecError::Gone(format!("`{}` {why}", record.name));
    let mut joins = Vec::with_capacity(wanted.len());
    for (name, flag) in wanted {
        let mut of_kind = held.iter().filter(|(kind, ..)| *kind == name);
        let Some((_, _, inode, path)) = of_kind.next() else {
            return Err(gone(format!(
                "cannot be joined yet or any more: its supervisor holds no {name} namespace of it (it is starting or ending)"
            )));
        };
        if of_kind.any(|(_, _, other, _)| other != inode) {
            return Err(gone(format!(
                "cannot be joined: its supervisor holds two {name} namespaces"
            )));
        }
        let file = File::open(path).map_err(io(
            StepId::User,
            Op::OpenNamespace,
            format!("opening {}", path.display()),
        ))?;
        // The descriptor was replaced between the look and the open.
        if file.metadata().map(|m| m.ino()).ok() != Some(*inode) {
            return Err(gone("is ending".into()));
        }
        joins.push((name, flag, file));
    }
    // Alive after the opens, the supervisor held its pid all along: what was read was its own.
    if KERNEL.pidfd_send_signal(supervisor, 0).is_err() {
        return Err(gone("has ended".into()));
    }
    Ok(joins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Fake;

    fn joins(fake: &Fake) -> Vec<(&'static str, libc::c_int, File)> {
        [("user", libc::CLONE_NEWUSER), ("mnt", libc::CLONE_NEWNS)]
            .into_iter()
            .map(|(name, flag)| (name, flag, File::from(fake.descriptor(name))))
            .collect()
    }

    #[test]
    fn a_joiner_becomes_undumpable_before_it_enters_the_namespaces_in_order() {
        let fake = Fake::new();
        enter(&fake, &joins(&fake)).unwrap();
        assert_eq!(
            fake.calls(),
            [
                "set_dumpable(false)".to_string(),
                format!("setns(user, {:#x})", libc::CLONE_NEWUSER),
                format!("setns(mnt, {:#x})", libc::CLONE_NEWNS),
            ]
        );
    }

    #[test]
    fn a_joiner_that_cannot_become_undumpable_enters_nothing() {
        let fake = Fake::new();
        fake.fail("set_dumpable", 0, Errno::EPERM);
        let Err(failure) = enter(&fake, &joins(&fake)) else {
            panic!("entered");
        };
        assert_eq!(failure.errno(), Errno::EPERM);
        assert_eq!(fake.calls_of("setns"), Vec::<String>::new());
        let fake = Fake::new();
        fake.fail("setns", 1, Errno::EINVAL);
        let Err(failure) = enter(&fake, &joins(&fake)) else {
            panic!("entered");
        };
        assert!(
            failure.to_string().contains("the mnt namespace"),
            "{failure}"
        );
    }
}
