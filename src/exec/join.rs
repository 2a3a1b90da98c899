//! `sandbox exec`: a command inside a running sandbox, exactly as confined as its own command.
//!
//! The joining process enters the sandbox's cgroup while its host credentials can still write
//! it, then its namespaces with setns(2), the user namespace first (as nsenter does: the caller
//! owns it, so it holds every capability there to join the others), then its root: after
//! joining the mount namespace, /proc/PID/root (opened before) is the sandbox's pivoted root.
//! The pid namespace only applies to children, so it spawns one; it takes the same steps as
//! the sandbox's command (session, terminal, environment, cwd, capabilities, no_new_privs,
//! landlock, seccomp), and this process supervises it as `sandbox up` does.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, setns};
use nix::sys::socket::SockProtocol;
use nix::sys::stat::Mode;

use super::error::{ExecError, OrFail, StepFailure};
use super::steps::{self, command, pid, security};
use super::supervise::{self, Outcome, Supervised};
use super::{open_pty, seccomp, sys};
use crate::egress::Refused;
use crate::netlink::Socket;
use crate::plan::{Plan, StepId};
use crate::state::{Record, namespaces_of};

/// Namespaces in the order they are joined, with their /proc name and clone flag.
const ORDER: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

fn io(step: StepId, action: String) -> impl FnOnce(std::io::Error) -> StepFailure {
    move |e| {
        StepFailure::new(
            step,
            action,
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    }
}

/// The namespaces of `pid` among `kinds` (in [`ORDER`]) that are not the caller's own, opened.
fn to_join(
    pid: i32,
    kinds: &[&'static str],
) -> Result<Vec<(&'static str, libc::c_int, File)>, StepFailure> {
    let theirs = namespaces_of(pid, kinds);
    let own = namespaces_of(std::process::id() as i32, kinds);
    let mut joins = Vec::new();
    for (name, flag) in ORDER.into_iter().filter(|(name, _)| kinds.contains(name)) {
        let same = own
            .iter()
            .any(|o| theirs.iter().any(|t| t == o && t.0 == name));
        if !same && theirs.iter().any(|(n, _)| n == name) {
            let file = File::open(format!("/proc/{pid}/ns/{name}")).map_err(io(
                StepId::User,
                format!("opening {name} namespace of pid {pid}"),
            ))?;
            joins.push((name, flag, file));
        }
    }
    Ok(joins)
}

fn enter(joins: &[(&str, libc::c_int, File)]) -> Result<(), StepFailure> {
    for (name, flag, file) in joins {
        setns(file.as_fd(), CloneFlags::from_bits_retain(*flag))
            .or_fail(StepId::User, || format!("setns into the {name} namespace"))?;
    }
    Ok(())
}

/// What the egress rules of the running sandbox of `record` refused so far (the same as its
/// `up` reports at the end). A netfilter socket can only be opened inside the sandbox's
/// network namespace, which a rootless caller enters only through its user namespace, for
/// good: so a child process does it and sends the counts back.
pub fn egress_refused(record: &Record) -> Result<Vec<Refused>, ExecError> {
    // The caller showed this pid to be the sandbox's init (see `Store::processes`).
    let joins = to_join(record.init_pid, &["user", "net"])?;
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).or_fail(StepId::Net, || "pipe2".into())?;
    let child = match sys::fork().or_fail(StepId::Net, || "fork".into())? {
        Some(child) => child,
        None => {
            drop(read);
            let counted = enter(&joins)
                .ok()
                .and_then(|()| Socket::open(SockProtocol::NetlinkNetFilter).ok())
                .and_then(|mut socket| crate::egress::refused(&mut socket).ok());
            let bytes = serde_json::to_vec(&counted.map(|list| {
                list.into_iter()
                    .map(|r| (r.address, r.protocol, r.port, r.count))
                    .collect::<Vec<_>>()
            }))
            .expect("counts serialize");
            let _ = super::write_all(write.as_fd(), &bytes);
            sys::exit_now(0)
        }
    };
    drop(write);
    let mut bytes = Vec::new();
    let read = std::io::Read::read_to_end(&mut File::from(read), &mut bytes);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    read.map_err(io(StepId::Net, "reading the egress counts".into()))?;
    let counted: Option<Vec<(std::net::IpAddr, u8, u16, u64)>> = serde_json::from_slice(&bytes)
        .map_err(|_| {
            StepFailure::new(
                StepId::Net,
                "reading the egress counts: a malformed answer",
                Errno::EBADMSG,
            )
        })?;
    let counted = counted.ok_or_else(|| {
        StepFailure::new(
            StepId::Net,
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

/// Run `plan` (the sandbox's plan, with the new command) inside the sandbox of `record`.
pub fn join(record: &Record, plan: &Plan, terminal: bool) -> Result<Outcome, ExecError> {
    // The caller showed this pid to be the sandbox's init (see `Store::processes`).
    let pid = record.init_pid;
    let joins = to_join(pid, &ORDER.map(|(name, _)| name))?;
    let root = nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .or_fail(StepId::Chroot, || format!("opening the root of pid {pid}"))?;

    // The cgroup, with the host credentials that may write it.
    let me = std::process::id().to_string();
    for dir in &record.cgroups {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, &me)
            .map_err(io(StepId::Cgroup, format!("writing {}", procs.display())))?;
    }

    security::raise_hard_limits(plan)?;
    let caller_mask = pid::forwarded_set()
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .or_fail(StepId::User, || "blocking signals".into())?;
    enter(&joins)?;
    steps::user::take_setup_ids(plan)?;
    nix::unistd::fchdir(root.as_fd())
        .or_fail(StepId::Chroot, || "entering the sandbox's root".into())?;
    nix::unistd::chroot(".").or_fail(StepId::Chroot, || "chroot into the sandbox's root".into())?;
    nix::unistd::chdir("/").or_fail(StepId::Chroot, || "chdir(/)".into())?;
    drop(root);

    let (master, terminal) = if terminal {
        open_pty().map(|(m, t)| (Some(m), Some(t)))?
    } else {
        (None, None)
    };
    let prepared = security::Prepared {
        seccomp: seccomp::compile(&plan.security)?,
        timings: sys::SharedWords::new(security::TIMINGS)
            .or_fail(StepId::Security, || "mapping a shared page".into())?,
        caller_mask,
    };
    let (exec_read, exec_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).or_fail(StepId::Exec, || "pipe2".into())?;
    // The command closes exec_read and the master at its execve (both are close-on-exec).
    let child =
        sys::spawn(&mut || command::exec(plan, exec_write.as_fd(), terminal.as_ref(), &prepared))
            .or_fail(StepId::Pid, || {
            "starting the command in the sandbox's pid namespace".into()
        })?;
    drop(exec_write);
    let pidfd: OwnedFd = sys::pidfd_open(child).or_fail(StepId::Exec, || "pidfd_open".into())?;
    supervise::supervise(Supervised {
        pidfd,
        exec_pipe: exec_read,
        master,
        timeout: plan.process.timeout_ms.map(Duration::from_millis),
        on_started: None,
        setup_ready: None,
        ended: None,
        return_early: false,
    })
}
