//! Stage 4: the executor, which applies a [`Plan`] to the kernel.
//!
//! One clone creates the namespaces (as bubblewrap and nsjail do); the parent stays outside as
//! a small supervisor. The steps' halves are taken from one table, [`order::STEPS`]: the
//! prepare halves before the clone (the mounts of host paths, the cgroup), the parent halves
//! after it (id maps, id-mapped mounts, network) while the child runs its early halves (its
//! own network namespace, see `steps::net`), then the parent sends `Go` and the child runs
//! its halves in the same order, while the parent runs its released halves (`lo` up), records
//! the sandbox and sends `Start`; the command is spawned from there once both are done
//! (sharing its memory until its execve, see [`sys::spawn`]) and the setup process stays as
//! its pid 1. See design.md, "Parent/child handshake and ordering".
//!
//! The launcher must be single-threaded when it clones: unshare(CLONE_NEWUSER) fails in a
//! multi-threaded process, and a forked child may only rely on what one thread left consistent.

pub mod error;
pub mod handshake;
pub mod ids;
pub mod join;
pub(crate) mod order;
pub(crate) mod root_file;
pub mod seccomp;
pub(crate) mod steps;
mod supervise;

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigmaskHow, Signal};
use nix::unistd::Pid;

pub use error::{ExecError, StepFailure};
use error::{Op, OrFail};
use handshake::{Channel, RecvError, ToChild, ToParent};
use order::{Context, STEPS};
pub use steps::command::Terminal;
pub use steps::pid::note_caller_ignored;
use steps::{cgroup, command, net, pid, security};
pub use supervise::{Outcome, TIMEOUT_GRACE};

use crate::cgroup::Group;
use crate::hostpath::HostFiles;
use crate::manifest::Tty;
use crate::plan::{Plan, StepId};
use crate::sys::raw as sys;
use crate::sys::{KERNEL, Sys};

/// How long each step took, in order; the parent's halves and the child's.
pub type Timings = Vec<(String, Duration)>;

/// What the caller learns once the sandbox is set up, right before its command starts.
#[derive(Debug, Clone)]
pub struct Running {
    /// The sandbox's pid 1 (the command itself without a pid namespace), as the host sees it.
    pub init_pid: i32,
    pub cgroups: Vec<PathBuf>,
    pub address: Option<std::net::Ipv4Addr>,
}

/// See [`Hooks::on_ready`].
pub type OnReady<'a> = &'a mut dyn FnMut(&Running) -> Result<(), ExecError>;

/// How the caller follows a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Called once the sandbox's processes exist, while its setup runs and before the command
    /// is let start: `sandbox up` writes its record then. An error ends the run there, so a
    /// sandbox whose record could not be written never runs its command.
    pub on_ready: Option<OnReady<'a>>,
    /// Called once the command runs (the setup said it was ready and the command's execve
    /// succeeded), and never if it does not: `sandbox up -d` returns at that moment.
    pub on_started: Option<&'a mut dyn FnMut()>,
}

/// Run the plan in the foreground; returns the command's outcome. `root` is the unpacked tree
/// of a tar or OCI root ([`crate::rootfs::prepare`]).
/// `files` are the host paths of the plan, opened when it was judged ([`HostFiles::open`]);
/// they are closed before the clone, so the sandbox keeps nothing of the host's but what its
/// mount step consumes.
pub fn run(
    plan: &Plan,
    root: Option<&Path>,
    files: HostFiles,
    hooks: Hooks,
) -> Result<(Outcome, Timings), ExecError> {
    let started = Instant::now();
    let terminal = match plan.process.tty {
        Tty::Always => true,
        Tty::Never => false,
        Tty::Auto => std::io::stdin().is_terminal(),
    };
    let security = prepare_security()?;
    security::raise_hard_limits(plan)?;
    let (parent_end, child_end) =
        handshake::pair().or_fail(StepId::User, Op::Channel, || "socketpair".into())?;
    let (exec_read, exec_write) = pipe()?;
    let (ended_read, ended_write) = pipe()?;
    // Made before the clone, so the sandbox inherits them: no descriptor has to be passed.
    let mut cx = Context::new(plan, &KERNEL, root, files);
    let prepared = prepare(&mut cx)?;
    let group = cx.group.take();
    let clone_started = Instant::now();
    let flags = clone_flags(plan);
    let into = group.as_ref().and_then(Group::clone_into);
    let (child, pidfd) =
        match sys::clone3(flags, into).or_fail(StepId::User, Op::Clone, || match into {
            Some(_) => "clone into new namespaces and the sandbox's cgroup".into(),
            None => "clone into new namespaces".into(),
        })? {
            sys::Forked::Child => {
                // The supervisor owns the group: nothing in the child may remove it, not even
                // the unwinding of a panic.
                let group = std::mem::ManuallyDrop::new(group);
                drop((parent_end, exec_read, ended_read));
                let pipes = ChildPipes {
                    exec: exec_write,
                    ended: ended_write,
                };
                child_main(
                    &mut cx,
                    group.as_ref(),
                    child_end,
                    pipes,
                    terminal,
                    &security,
                )
            }
            sys::Forked::Parent { pid, pidfd } => (Pid::from_raw(pid), pidfd),
        };
    drop((child_end, exec_write, ended_write));
    let mut timings: Timings = vec![("clone".into(), clone_started.elapsed())];
    timings.extend(prepared);
    let guard = KillOnDrop(cx.sys, Some(pidfd));

    cx.child = Some(child);
    parent_halves(&mut cx, &mut timings)?;
    // Dropped before `guard`: on a failure below, the network goes before the sandbox is killed.
    let network = cx.network.take().unwrap_or(net::Network::Nothing);
    let go = ToChild::Go {
        address: network.address(),
    };
    parent_end
        .send(&go, &[])
        .or_fail(StepId::User, Op::Channel, || "releasing the sandbox".into())?;
    cx.address = network.address();
    released_halves(&mut cx, &parent_end, &mut timings)?;
    // Read by the sandbox only once it has `Start`.
    let build_started = Instant::now();
    security.compile(plan, plan.namespaces.pid)?;
    timings.push(("seccomp build".into(), build_started.elapsed()));
    drop(cx.helper.take());
    if let Some(on_ready) = hooks.on_ready {
        on_ready(&Running {
            init_pid: child.as_raw(),
            cgroups: group.as_ref().map(Group::dirs).unwrap_or_default(),
            address: network.address(),
        })?;
    }
    // A setup that failed meanwhile has closed its end: its own report, read below, says why.
    let start = parent_end.send(&ToChild::Start, &[]);

    // The answer is read at once: besides the step timings (and the pty master with a
    // terminal) it brings the sandbox's namespaces, which this process keeps for `sandbox exec`
    // to join (init's own /proc files are closed to the caller, see `setup`).
    let Ready {
        timings: steps,
        master,
        egress,
        namespaces,
    } = Ready::read(&parent_end, plan.namespaces.joined().len(), terminal)?;
    start.or_fail(StepId::User, Op::Channel, || {
        "letting the command start".into()
    })?;
    let pidfd = guard.release();
    let mut held = namespaces;
    held.push(parent_end.into());
    let mut outcome = supervise::supervise(supervise::Supervised {
        sys: &KERNEL,
        pidfd,
        exec_pipe: exec_read,
        master,
        timeout: plan.process.timeout_ms.map(Duration::from_millis),
        on_started: hooks
            .on_started
            .map(|started| &mut *started as &mut dyn FnMut()),
        ended: Some(ended_read),
        return_early: plan.returns_at_command_end(),
        held,
    })?;
    // The socket keeps the sandbox's network namespace, and so the counts, after its end.
    outcome.egress =
        egress.map(|socket| crate::egress::refused(&mut crate::netlink::Socket::adopt(socket)));
    timings.extend(
        steps
            .iter()
            .map(|(step, ns)| (step.name().to_string(), Duration::from_nanos(*ns))),
    );
    timings.push(("ready".into(), started.elapsed()));
    if let Some(group) = group {
        let (usage, removed) = group.finish();
        outcome.usage = Some(usage);
        outcome.cleanup = removed.err();
    }
    drop(network);
    command_timings(&security, &mut timings);
    Ok((outcome, timings))
}

/// What the command's process needs, made before the clone: the page its seccomp filters go
/// on once the sandbox is released, and the caller's signal mask. Signals are blocked from
/// here on, so one sent while the sandbox starts is forwarded, not lost; the command gets its
/// caller's mask back before exec.
fn prepare_security() -> Result<security::Prepared, ExecError> {
    let caller_mask = pid::forwarded_set()
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .or_fail(StepId::User, Op::Signals, || "blocking signals".into())?;
    Ok(security::Prepared::new(caller_mask)?)
}

/// What a command's process needs from its launcher (`up`, or `exec` joining a sandbox): its
/// seccomp filter, init's too with `init`, the page it reports its timings on, and the
/// caller's signal mask to give back.
pub(crate) fn command_security(
    plan: &Plan,
    caller_mask: nix::sys::signal::SigSet,
    init: bool,
) -> Result<security::Prepared, ExecError> {
    let prepared = security::Prepared::new(caller_mask)?;
    prepared.compile(plan, init)?;
    Ok(prepared)
}

/// The parent halves, once the sandbox's process exists, timed.
fn parent_halves(cx: &mut Context<'_>, timings: &mut Timings) -> Result<(), StepFailure> {
    supervisor_halves(cx, timings, "parent", |step| step.parent)
}

/// The supervisor's halves of one kind, in the steps' order, each timed as "STEP (KIND)".
fn supervisor_halves(
    cx: &mut Context<'_>,
    timings: &mut Timings,
    kind: &str,
    half_of: fn(&order::Step) -> Option<order::Half>,
) -> Result<(), StepFailure> {
    for step in &STEPS {
        if let Some(half) = half_of(step) {
            let started = Instant::now();
            half(cx)?;
            timings.push((format!("{} ({kind})", step.id.name()), started.elapsed()));
        }
    }
    Ok(())
}

/// The released halves, once `Go` is sent, with what the sandbox's early halves handed over
/// ([`ToParent::Early`]), timed.
fn released_halves(
    cx: &mut Context<'_>,
    channel: &Channel,
    timings: &mut Timings,
) -> Result<(), ExecError> {
    cx.netlink = match channel.recv::<ToParent>() {
        Ok((ToParent::Early { netlink }, mut fds)) if fds.len() == usize::from(netlink) => {
            fds.pop().map(crate::netlink::Socket::adopt)
        }
        Ok((ToParent::Early { .. }, fds)) => {
            return Err(ExecError::SetupDied(format!(
                "it sent {} descriptors early",
                fds.len()
            )));
        }
        received => return Err(setup_ended(received)),
    };
    Ok(supervisor_halves(cx, timings, "released", |step| {
        step.released
    })?)
}

/// What a message other than the one awaited says: the setup failed, died or spoke nonsense.
fn setup_ended(received: Result<(ToParent, Vec<OwnedFd>), RecvError>) -> ExecError {
    match received {
        Ok((ToParent::Failed(failure), _)) => failure.into(),
        Ok((message, _)) => ExecError::SetupDied(format!("it sent {message:?} out of turn")),
        Err(RecvError::Closed) => ExecError::SetupDied("it exited without a word".into()),
        Err(RecvError::Io(errno)) => ExecError::SetupDied(errno.desc().into()),
        Err(RecvError::Malformed(text)) => ExecError::SetupDied(text),
    }
}

/// The timings the command's process wrote right before its execve; zero (left out) if it
/// never got there.
fn command_timings(security: &security::Prepared, timings: &mut Timings) {
    for (name, slot) in [
        ("security", security::TIMING_SECURITY),
        ("seccomp load", security::TIMING_SECCOMP_LOAD),
    ] {
        let nanos = security
            .timing(slot)
            .load(std::sync::atomic::Ordering::Relaxed);
        if nanos > 0 {
            timings.push((name.into(), Duration::from_nanos(nanos)));
        }
    }
}

/// A close-on-exec pipe between the supervisor and the sandbox.
fn pipe() -> Result<(OwnedFd, OwnedFd), StepFailure> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .or_fail(StepId::User, Op::Channel, || "pipe2".into())
}

/// The prepare halves, before the clone; how long each took. The host paths are closed once
/// they are done, before the clone: the sandbox keeps nothing of the host's but what its mount
/// step consumes.
fn prepare(cx: &mut Context<'_>) -> Result<Timings, StepFailure> {
    let mut timings = Timings::new();
    for step in &STEPS {
        if let Some((name, half)) = step.prepare {
            let started = Instant::now();
            if half(cx)? {
                timings.push((name.into(), started.elapsed()));
            }
        }
    }
    cx.files = None;
    Ok(timings)
}

/// The namespaces the clone creates. The cgroup namespace is left to the child's cgroup step,
/// so that it is rooted at the sandbox's own group; the time namespace to the user step, which
/// must write its offsets before any process enters it; the network namespace to the net
/// step's early half, unless the supervisor attaches something to it.
pub fn clone_flags(plan: &Plan) -> u64 {
    let ns = &plan.namespaces;
    [
        (ns.user, libc::CLONE_NEWUSER),
        (ns.mount, libc::CLONE_NEWNS),
        (ns.pid, libc::CLONE_NEWPID),
        (
            ns.net && plan.net.attached_by_supervisor(),
            libc::CLONE_NEWNET,
        ),
        (ns.uts, libc::CLONE_NEWUTS),
        (ns.ipc, libc::CLONE_NEWIPC),
    ]
    .into_iter()
    .filter(|(new, _)| *new)
    .fold(0u64, |flags, (_, flag)| flags | flag as u64)
}

/// Try to create a user namespace, as `sandbox doctor` does: a child cloned into one exits at
/// once. The error says why the kernel refused.
pub fn probe_user_namespace() -> Result<(), String> {
    match sys::clone3(libc::CLONE_NEWUSER as u64, None) {
        Ok(sys::Forked::Child) => sys::exit_now(0),
        Ok(sys::Forked::Parent { pidfd, .. }) => {
            let _ = nix::sys::wait::waitid(
                nix::sys::wait::Id::PIDFd(pidfd.as_fd()),
                nix::sys::wait::WaitPidFlag::WEXITED,
            );
            Ok(())
        }
        Err(errno) => Err(format!("clone(CLONE_NEWUSER): {}", errno.desc())),
    }
}

/// What the child says when its setup is done.
struct Ready {
    timings: Vec<(StepId, u64)>,
    /// The pty master, with a terminal.
    master: Option<OwnedFd>,
    /// The netlink socket the egress rules were installed through, in the sandbox's network
    /// namespace.
    egress: Option<OwnedFd>,
    /// The sandbox's namespaces (see [`ToParent::Ready`]).
    namespaces: Vec<OwnedFd>,
}

impl Ready {
    /// The child's answer to Go: Ready, or the step that failed. `namespaces`: how many the
    /// plan makes.
    fn read(channel: &Channel, namespaces: usize, terminal: bool) -> Result<Ready, ExecError> {
        match channel.recv::<ToParent>() {
            Ok((ToParent::Ready { timings, egress }, mut fds)) => {
                let carried = usize::from(egress) + namespaces + usize::from(terminal);
                if fds.len() != carried {
                    return Err(ExecError::SetupDied(format!(
                        "it sent {} descriptors, not {carried}",
                        fds.len()
                    )));
                }
                let master = if terminal { fds.pop() } else { None };
                let egress = egress.then(|| fds.remove(0));
                Ok(Ready {
                    timings,
                    master,
                    egress,
                    namespaces: fds,
                })
            }
            received => Err(setup_ended(received)),
        }
    }
}

/// Kills the child (and so the whole sandbox) if the parent gives up before supervising it.
struct KillOnDrop<'a>(&'a dyn Sys, Option<OwnedFd>);

impl KillOnDrop<'_> {
    fn release(mut self) -> OwnedFd {
        self.1.take().expect("released once")
    }
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(pidfd) = self.1.take() {
            let _ = self.0.pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = self.0.wait_exit(pidfd.as_fd());
        }
    }
}

/// The write ends the sandbox's setup process keeps: `exec` for the command's exec failure,
/// `ended` for init to tell how the command ended.
struct ChildPipes {
    exec: OwnedFd,
    ended: OwnedFd,
}

/// The sandbox's setup process: wait for `Go`, run the child halves, report, then spawn the
/// command and stay as its init. Never returns. `cx` holds what the prepare halves made,
/// inherited with the clone.
fn child_main(
    cx: &mut Context<'_>,
    group: Option<&Group>,
    channel: Channel,
    pipes: ChildPipes,
    terminal: bool,
    security: &security::Prepared,
) -> ! {
    let plan = cx.plan;
    // If the supervisor died before this, the Go below reads end-of-file instead.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // A failure here is reported as the child halves' are, once Go came.
    let early = early_halves(cx);
    if early.is_ok() {
        let netlink = cx.netlink.take();
        let fds: Vec<_> = netlink.iter().map(|s| s.as_fd().as_raw_fd()).collect();
        let handed = ToParent::Early {
            netlink: netlink.is_some(),
        };
        if channel.send(&handed, &fds).is_err() {
            sys::exit_now(125);
        }
    }
    cx.address = match channel.recv::<ToChild>() {
        Ok((ToChild::Go { address }, _)) => address,
        _ => sys::exit_now(125),
    };
    let set_up = match early.and_then(|early| setup(cx, group, terminal, &early)) {
        Ok(done) => done,
        Err(failure) => {
            let _ = channel.send(&ToParent::Failed(failure), &[]);
            sys::exit_now(125)
        }
    };
    let fds: Vec<_> = (set_up
        .egress
        .iter()
        .map(|socket| socket.as_fd().as_raw_fd()))
    .chain(set_up.namespaces.iter().map(AsRawFd::as_raw_fd))
    .chain(set_up.master.iter().map(AsRawFd::as_raw_fd))
    .collect();
    let ready = ToParent::Ready {
        timings: set_up.timings,
        egress: set_up.egress.is_some(),
    };
    if channel.send(&ready, &fds).is_err() {
        sys::exit_now(125);
    }
    // The supervisor recorded the sandbox while it was set up; without that, no command.
    if !matches!(channel.recv::<ToChild>(), Ok((ToChild::Start, _))) {
        sys::exit_now(125);
    }
    // The supervisor holds them now; the command must not.
    drop(set_up.master);
    drop(set_up.egress);
    drop(set_up.namespaces);
    let terminal = set_up.terminal;
    // See pid::init: init waits for the supervisor's close when the supervisor does not wait
    // for init's exit.
    let release = plan.returns_at_command_end().then_some(channel);
    let ChildPipes { exec, ended } = pipes;
    if !plan.namespaces.pid {
        drop(ended);
        let bounding = security::ANY_CAPABILITY;
        command::exec(plan, exec.as_fd(), terminal.as_ref(), security, bounding);
    }
    pid::name_init(&plan.name);
    // The command closes both pipes at its execve (close-on-exec).
    let spawned = security::limit_bounding_for_command(cx.sys, plan).and_then(|bounding| {
        sys::spawn(&mut || command::exec(plan, exec.as_fd(), terminal.as_ref(), security, bounding))
            .map(|command| (command, bounding))
            .or_fail(StepId::Pid, Op::Execute, || "starting the command".into())
    });
    match spawned {
        Ok((command, bounding)) => {
            drop(exec);
            let filter = security.init_seccomp();
            pid::init(
                cx.sys,
                Pid::from_raw(command),
                ended,
                release,
                filter.as_ref(),
                bounding,
            )
        }
        Err(failure) => {
            let bytes = serde_json::to_vec(&failure).expect("serializes");
            let _ = sys::write_all(exec.as_fd(), &bytes);
            sys::exit_now(125)
        }
    }
}

/// What the setup process has once the child halves are done.
struct SetUp {
    timings: Vec<(StepId, u64)>,
    /// The pty master, for the supervisor, and the slave's path, for the command.
    master: Option<OwnedFd>,
    terminal: Option<Terminal>,
    /// The egress rules' netlink socket, for the supervisor.
    egress: Option<crate::netlink::Socket>,
    /// The sandbox's namespaces, in [`Namespaces::joined`](crate::plan::Namespaces::joined)'s
    /// order: the supervisor keeps them for `sandbox exec`.
    namespaces: Vec<OwnedFd>,
}

/// The early halves of the steps, timed, in the sandbox while the supervisor runs its halves.
fn early_halves(cx: &mut Context<'_>) -> Result<Vec<(StepId, u64)>, StepFailure> {
    let mut timings = Vec::new();
    for step in &STEPS {
        if let Some(half) = step.early {
            let started = Instant::now();
            half(cx)?;
            timings.push((step.id, started.elapsed().as_nanos() as u64));
        }
    }
    Ok(timings)
}

/// The child halves of the steps, timed (with the `early` halves' times).
fn setup(
    cx: &mut Context<'_>,
    group: Option<&Group>,
    terminal: bool,
    early: &[(StepId, u64)],
) -> Result<SetUp, StepFailure> {
    // First of all, so the limits cover everything below (see Group::enter).
    let entering = Instant::now();
    if let Some(group) = group {
        cgroup::enter(group)?;
    }
    let entering = entering.elapsed().as_nanos() as u64;
    // This process runs the launcher's code with every capability in the sandbox's user
    // namespace and stays as its init beside the command: none of the sandbox's processes may
    // ptrace it or open its memory (see steps::pid). Before anything of the sandbox runs:
    // undumpable, as only the host's root may then (PTRACE_MODE_*: CAP_SYS_PTRACE in the user
    // namespace its memory was made in, the host's). Everything the supervisor did through
    // its /proc files (id maps, pasta, the veth) is done by now.
    let sys = cx.sys;
    sys.set_dumpable(false)
        .or_fail(StepId::User, Op::Prctl, || "PR_SET_DUMPABLE".into())?;
    // The namespaces are handed to the supervisor once made, after the pivot (the cgroup
    // namespace comes last): through this folder of the host's /proc, opened while it is here.
    let own_namespaces = sys
        .openat(None, c"/proc/self/ns", libc::O_PATH | libc::O_DIRECTORY, 0)
        .or_fail(StepId::User, Op::OpenNamespace, || {
            "opening /proc/self/ns".into()
        })?;
    cx.own_namespaces = Some(own_namespaces);
    let mut timings = Vec::with_capacity(order::child_halves());
    let mut clock = Instant::now();
    for step in &STEPS {
        if let Some(half) = step.child {
            half(cx)?;
            let now = Instant::now();
            let before: u64 = (early.iter())
                .filter(|(id, _)| *id == step.id)
                .map(|(_, nanos)| nanos)
                .sum();
            timings.push((
                step.id,
                now.duration_since(clock).as_nanos() as u64 + before,
            ));
            clock = now;
        }
    }
    // The cgroup step's time includes entering the group.
    if let Some((_, cgroup)) = timings.last_mut() {
        *cgroup += entering;
    }
    let (master, terminal) = if terminal {
        open_pty(sys).map(|(m, t)| (Some(m), Some(t)))?
    } else {
        (None, None)
    };
    Ok(SetUp {
        timings,
        master,
        terminal,
        egress: cx.egress.take(),
        namespaces: std::mem::take(&mut cx.namespaces),
    })
}

/// A new pty in the sandbox's own devpts instance: the master goes to the supervisor, which
/// relays the caller's terminal; the command gets the slave.
pub(crate) fn open_pty(sys: &dyn Sys) -> Result<(OwnedFd, Terminal), StepFailure> {
    let master = sys
        .openat(None, c"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)
        .or_fail(StepId::Exec, Op::Terminal, || {
            "opening /dev/ptmx (a terminal needs the sandbox's /dev)".into()
        })
        .map_err(|f| f.with_key("process.tty"))?;
    sys.unlock_pty(master.as_fd())
        .or_fail(StepId::Exec, Op::Terminal, || "unlocking the pty".into())?;
    let number = sys
        .pty_number(master.as_fd())
        .or_fail(StepId::Exec, Op::Terminal, || "TIOCGPTN".into())?;
    Ok((
        master,
        Terminal {
            slave: PathBuf::from(format!("/dev/pts/{number}")),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Fake;

    #[test]
    fn a_pty_is_opened_unlocked_and_named_in_the_sandboxs_devpts() {
        let fake = Fake::new();
        let (_master, terminal) = open_pty(&fake).unwrap();
        assert_eq!(terminal.slave, PathBuf::from("/dev/pts/3"));
        assert_eq!(
            fake.calls(),
            [
                "openat(/dev/ptmx)",
                "unlock_pty(/dev/ptmx)",
                "pty_number(/dev/ptmx)"
            ]
        );
        let fake = Fake::new();
        fake.fail("openat", 0, nix::errno::Errno::ENOENT);
        let Err(failure) = open_pty(&fake) else {
            panic!("opened");
        };
        assert!(failure.to_string().contains("/dev/ptmx"), "{failure}");
        assert_eq!(fake.calls_of("unlock_pty"), Vec::<String>::new());
    }
}
