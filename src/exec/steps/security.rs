//! Security, the last step before exec, in the command's own process, after pivot_root (so
//! landlock paths are paths inside the sandbox).
//!
//! Order matters (capabilities(7), prctl(2), seccomp(2), landlock(7)):
//! 1. rlimits, while the process has CAP_SYS_RESOURCE in its user namespace (which does not
//!    let it raise a hard limit: [`raise_hard_limits`] does that before the clone);
//! 2. drop every capability not kept from the bounding set (needs CAP_SETPCAP, so before the
//!    effective set shrinks);
//! 3. supplementary groups, gid, uid, with PR_SET_KEEPCAPS so the kept capabilities survive the
//!    uid change (nothing to do when the user step already gave the command's ids);
//! 4. permitted = effective = inheritable = kept, and the kept ones raised in the ambient set so
//!    a non-root uid keeps them across execve;
//! 5. no_new_privs, then landlock, then seccomp last of all: the filter would otherwise forbid
//!    the calls above, and the only call after it is execve.
//!
//! The kernel takes a landlock domain or a seccomp filter only from a process with no_new_privs
//! or CAP_SYS_ADMIN. With `no_new_privileges = false` both therefore go in first, while the
//! process still has every capability in its user namespace, and the filter must let steps 2-4
//! through (validation checks custom profiles for that; see plan::seccomp::launcher_calls).

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use caps::{CapSet, Capability};
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};
use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit};
use nix::sys::signal::SigSet;
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::seccomp::Program;
use crate::plan::{LandlockPlan, Plan, StepId};
use crate::sys::raw as sys;

/// What the supervisor prepares for this step before the clone.
pub struct Prepared {
    /// The compiled seccomp filter (none when seccomp is off).
    pub seccomp: Option<Program>,
    /// Durations in nanoseconds, written here because once its filter is in, the command's
    /// process has no reliable way left to report anything: [`TIMING_SECURITY`] (everything
    /// before the filter) and [`TIMING_SECCOMP_LOAD`].
    pub timings: sys::SharedWords,
    /// The signal mask the launcher's caller gave it, which the command gets back before its
    /// execve (the exec step, in the same process).
    pub caller_mask: SigSet,
    /// Init's own filter (see [`lock_down`]); none for a process that spawns no init.
    pub init_seccomp: Option<Program>,
}

pub const TIMING_SECURITY: usize = 0;
pub const TIMING_SECCOMP_LOAD: usize = 1;
pub const TIMINGS: usize = 2;

fn caps_error(action: String) -> impl FnOnce(caps::errors::CapsError) -> StepFailure {
    move |e| {
        StepFailure::new(
            StepId::Security,
            Op::Capabilities,
            format!("{action}: {e}"),
            Errno::last(),
        )
    }
}

/// Raise the launcher's own hard limits to the plan's values above them
/// ([`SecurityPlan::raise_hard_limits`](crate::plan::SecurityPlan), validated for a caller with
/// CAP_SYS_RESOURCE), soft limits unchanged, before it enters the sandbox's user namespace,
/// where no process may raise one: the sandbox inherits them, and [`apply`] sets its own.
pub fn raise_hard_limits(plan: &Plan) -> Result<(), StepFailure> {
    let security = &plan.security;
    for (name, value) in security
        .rlimits
        .iter()
        .filter(|(name, _)| security.raise_hard_limits.contains(name))
    {
        let action = || {
            format!(
                "raising the hard limit {} to {}",
                name.name(),
                value.as_raw()
            )
        };
        let (soft, _) = getrlimit(name.resource()).or_fail(StepId::Security, Op::Rlimit, action)?;
        setrlimit(name.resource(), soft, value.as_raw())
            .or_fail(StepId::Security, Op::Rlimit, action)
            .map_err(|f| f.with_key(format!("security.rlimits.{}", name.name())))?;
    }
    Ok(())
}

pub fn apply(plan: &Plan, prepared: &Prepared) -> Result<(), StepFailure> {
    let started = Instant::now();
    let security = &plan.security;
    for (name, value) in &security.rlimits {
        setrlimit(name.resource(), value.as_raw(), value.as_raw())
            .or_fail(StepId::Security, Op::Rlimit, || {
                format!("setrlimit({}, {})", name.name(), value.as_raw())
            })
            .map_err(|f| f.with_key(format!("security.rlimits.{}", name.name())))?;
    }
    if !security.no_new_privileges {
        confine(plan, prepared, started)?;
    }

    let kept: HashSet<Capability> = security.capabilities.iter().map(|c| c.0).collect();
    let mask = kept.iter().fold(0, |mask, c| mask | c.bitmask());
    sys::limit_bounding_set(mask).or_fail(StepId::Security, Op::Capabilities, || {
        "dropping the capabilities not kept from the bounding set".into()
    })?;

    let process = &plan.process;
    if !plan.command_ids_set_up() {
        take_command_ids(plan)?;
    }

    sys::set_capabilities(mask, mask).or_fail(StepId::Security, Op::Capabilities, || {
        "setting the effective, permitted and inheritable capabilities".into()
    })?;
    caps::clear(None, CapSet::Ambient)
        .map_err(caps_error("clearing the ambient capabilities".into()))?;
    if process.uid != 0 {
        for capability in &kept {
            caps::raise(None, CapSet::Ambient, *capability).map_err(caps_error(format!(
                "raising {capability} in the ambient set"
            )))?;
        }
    }

    if security.no_new_privileges {
        nix::sys::prctl::set_no_new_privs()
            .or_fail(StepId::Security, Op::Prctl, || "PR_SET_NO_NEW_PRIVS".into())?;
        confine(plan, prepared, started)?;
    }
    Ok(())
}

/// Lock down a process of the launcher that stays in the sandbox's namespaces while untrusted
/// code runs there (init; `sandbox exec`'s joining process), once it has spawned its command,
/// which inherits all of this and must not: so that even taken over, it regains nothing.
/// no_new_privs; securebits that make execve grant root no capability and are locked; an empty
/// bounding set; of its capabilities only CAP_KILL, which signals a command of another uid
/// (kill(2)) and reaches no further than the sandbox's user namespace; and `filter`, when
/// given. Its memory is already out of the sandbox's reach: it was made undumpable before it
/// entered the sandbox's user namespace or anything of the sandbox ran (see `exec::setup`,
/// `join::enter`).
pub fn lock_down(filter: Option<&Program>) -> Result<(), StepFailure> {
    nix::sys::prctl::set_no_new_privs()
        .or_fail(StepId::Pid, Op::Prctl, || "PR_SET_NO_NEW_PRIVS".into())?;
    sys::set_securebits(sys::SECUREBITS_LOCKED_DOWN)
        .or_fail(StepId::Pid, Op::Prctl, || "PR_SET_SECUREBITS".into())?;
    sys::limit_bounding_set(0).or_fail(StepId::Pid, Op::Capabilities, || {
        "emptying the bounding set".into()
    })?;
    // None inheritable: the bounding set, empty now, caps what may be.
    sys::set_capabilities(Capability::CAP_KILL.bitmask(), 0).or_fail(
        StepId::Pid,
        Op::Capabilities,
        || "keeping only CAP_KILL".into(),
    )?;
    if let Some(filter) = filter {
        sys::seccomp_set_filter(filter.instructions()).or_fail(StepId::Pid, Op::Seccomp, || {
            "loading its own seccomp filter".into()
        })?;
    }
    Ok(())
}

/// Supplementary groups, gid and uid of the command, keeping the capabilities across the uid
/// change (they are set to the kept ones next).
fn take_command_ids(plan: &Plan) -> Result<(), StepFailure> {
    let process = &plan.process;
    let may_setgroups = plan.user.as_ref().is_none_or(|u| !u.deny_setgroups);
    if may_setgroups {
        let groups: Vec<Gid> = process.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups)
            .or_fail(StepId::Security, Op::SetIds, || {
                format!("setgroups({:?})", process.groups)
            })
            .map_err(|f| f.with_key("process.groups"))?;
    }
    nix::sys::prctl::set_keepcaps(true)
        .or_fail(StepId::Security, Op::Prctl, || "PR_SET_KEEPCAPS".into())?;
    let gid = Gid::from_raw(process.gid);
    setresgid(gid, gid, gid)
        .or_fail(StepId::Security, Op::SetIds, || {
            format!("setresgid({})", process.gid)
        })
        .map_err(|f| f.with_key("process.group"))?;
    let uid = Uid::from_raw(process.uid);
    setresuid(uid, uid, uid)
        .or_fail(StepId::Security, Op::SetIds, || {
            format!("setresuid({})", process.uid)
        })
        .map_err(|f| f.with_key("process.user"))?;
    nix::sys::prctl::set_keepcaps(false)
        .or_fail(StepId::Security, Op::Prctl, || "PR_SET_KEEPCAPS".into())?;
    Ok(())
}

/// Landlock, then the seccomp filters; records the step's durations.
fn confine(plan: &Plan, prepared: &Prepared, started: Instant) -> Result<(), StepFailure> {
    if let Some(rules) = &plan.security.landlock {
        landlock(rules)?;
    }
    let record = |slot: usize, nanos: u128| {
        prepared.timings.words()[slot].store(nanos as u64, Ordering::Relaxed);
    };
    record(TIMING_SECURITY, started.elapsed().as_nanos());
    let loading = Instant::now();
    if let Some(program) = &prepared.seccomp {
        sys::seccomp_set_filter(program.instructions())
            .or_fail(StepId::Security, Op::Seccomp, || {
                "loading the seccomp filter".into()
            })
            .map_err(|f| f.with_key("security.seccomp"))?;
    }
    // Reading the clock is a system call on hosts whose clock source has no vDSO, which a
    // strict allow list would punish: only time the load when the profile lets the clock be read.
    if plan.security.seccomp.allows_clock() {
        record(TIMING_SECCOMP_LOAD, loading.elapsed().as_nanos());
    }
    Ok(())
}

/// The access rights the rules are written for: those of ABI 5 (Linux 6.10). A kernel with
/// less gets what it knows (`required = false`) or refuses (`required = true`).
const LANDLOCK_ABI: ABI = ABI::V5;

fn landlock(rules: &LandlockPlan) -> Result<(), StepFailure> {
    let fail_at = |key: &str, action: String, error: &(dyn std::error::Error + 'static)| {
        // The errno says it all when there is one; otherwise the crate's words do.
        let (action, errno) = match errno_of(error) {
            Some(errno) => (action, errno),
            None => (format!("{action}: {error}"), Errno::EOPNOTSUPP),
        };
        StepFailure::new(StepId::Security, Op::Landlock, action, errno).with_key(key.to_string())
    };
    let fail = |action: String, error: &(dyn std::error::Error + 'static)| {
        fail_at("security.landlock", action, error)
    };
    let missing = || rules.unenforceable(sys::landlock_abi()).join(", ");
    let level = if rules.required {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let all = AccessFs::from_all(LANDLOCK_ABI);
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let mut net = BitFlags::<AccessNet>::EMPTY;
    if rules.bind_tcp.is_some() {
        net |= AccessNet::BindTcp;
    }
    if rules.connect_tcp.is_some() {
        net |= AccessNet::ConnectTcp;
    }
    let unsupported = |e: &(dyn std::error::Error + 'static)| {
        fail(
            format!("this kernel's landlock cannot enforce {}", missing()),
            e,
        )
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(all)
        .map_err(|e| unsupported(&e))?;
    if !net.is_empty() {
        ruleset = ruleset.handle_access(net).map_err(|e| unsupported(&e))?;
    }
    let mut created = ruleset
        .create()
        .map_err(|e| fail("creating the landlock ruleset".into(), &e))?
        .no_new_privs(false);
    for (list, paths, access) in [
        ("read", &rules.read, read),
        ("write", &rules.write, all & !AccessFs::Execute),
        ("execute", &rules.execute, read | AccessFs::Execute),
    ] {
        for path in paths {
            let fd = PathFd::new(path).map_err(|e| {
                let key = format!("security.landlock.{list}");
                fail_at(&key, format!("landlock: opening {}", path.display()), &e)
            })?;
            // Directory rights on a file are an error (EINVAL): a file gets the file ones.
            let is_dir = nix::sys::stat::fstat(fd.as_fd())
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .unwrap_or(true);
            let access = if is_dir {
                access
            } else {
                access & AccessFs::from_file(LANDLOCK_ABI)
            };
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| fail(format!("landlock rule for {}", path.display()), &e))?;
        }
    }
    let ports = [
        (&rules.bind_tcp, AccessNet::BindTcp),
        (&rules.connect_tcp, AccessNet::ConnectTcp),
    ];
    for (list, access) in ports {
        for port in list.iter().flatten() {
            created = created
                .add_rule(NetPort::new(*port, access))
                .map_err(|e| fail(format!("landlock rule for TCP port {port}"), &e))?;
        }
    }
    let status = created
        .restrict_self()
        .map_err(|e| fail("landlock_restrict_self".into(), &e))?;
    if rules.required && status.ruleset != RulesetStatus::FullyEnforced {
        return Err(StepFailure::new(
            StepId::Security,
            Op::Landlock,
            format!(
                "the kernel enforces only part of the landlock rules (missing: {})",
                missing()
            ),
            Errno::EOPNOTSUPP,
        )
        .with_key("security.landlock"));
    }
    Ok(())
}

/// The first errno in a landlock error's chain; none when the crate refused on its own (a
/// right the kernel lacks, with required = true).
fn errno_of(error: &(dyn std::error::Error + 'static)) -> Option<Errno> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(Errno::from_raw(code));
        }
        current = e.source();
    }
    None
}
