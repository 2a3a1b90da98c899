//! Security, the last step before exec, in the command's own process, after pivot_root (so
//! landlock paths are paths inside the sandbox).
//!
//! Order matters (capabilities(7), prctl(2), seccomp(2), landlock(7)):
//! 1. rlimits, while the process has CAP_SYS_RESOURCE in its user namespace (which does not
//!    let it raise a hard limit: [`raise_hard_limits`] does that before the clone);
//! 2. drop every capability not kept from the bounding set (needs CAP_SETPCAP, so before the
//!    effective set shrinks), those its spawner has not dropped already (see
//!    [`limit_bounding_for_command`]);
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

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use caps::Capability;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};
use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit};
use nix::sys::signal::SigSet;

use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::seccomp::{MAX_INSTRUCTIONS, Program};
use crate::plan::{LandlockPlan, Plan, StepId};
use crate::sys::{Sys, raw};

/// What the supervisor prepares for this step before the clone: a page it shares with the
/// sandbox's processes, and the caller's signal mask.
///
/// On the page, the seccomp filters: the command's and init's own (see [`lock_down`]), each
/// as its length (0: none) and its instructions, written by [`Prepared::compile`]. `sandbox
/// up` compiles them once the sandbox's process exists and is setting itself up, off the
/// launch's critical path (the sandbox reads them only after `Start`). Then the durations the
/// command's process reports in nanoseconds, as once its filter is in, it has no reliable way
/// left to report anything: [`TIMING_SECURITY`] (everything before the filter) and
/// [`TIMING_SECCOMP_LOAD`]. The page is made whole but only the words written are ever
/// faulted in.
pub struct Prepared {
    page: raw::SharedWords,
    /// The signal mask the launcher's caller gave it, which the command gets back before its
    /// execve (the exec step, in the same process).
    pub caller_mask: SigSet,
}

pub const TIMING_SECURITY: usize = 0;
pub const TIMING_SECCOMP_LOAD: usize = 1;
const COMMAND_FILTER: usize = 2;
const INIT_FILTER: usize = COMMAND_FILTER + 1 + MAX_INSTRUCTIONS;
const WORDS: usize = INIT_FILTER + 1 + MAX_INSTRUCTIONS;

impl Prepared {
    /// The shared page, no filter on it yet.
    pub fn new(caller_mask: SigSet) -> Result<Prepared, StepFailure> {
        let page =
            raw::SharedWords::new(WORDS).or_fail(StepId::Security, Op::SharedPage, || {
                "mapping a shared page".into()
            })?;
        Ok(Prepared { page, caller_mask })
    }

    /// Compile the plan's seccomp filter, and with `init` init's, onto the page.
    pub fn compile(&self, plan: &Plan, init: bool) -> Result<(), StepFailure> {
        let command = crate::exec::seccomp::compile(&plan.security)?;
        let init = init.then(crate::exec::seccomp::compile_init).transpose()?;
        for (at, program) in [(COMMAND_FILTER, command), (INIT_FILTER, init)] {
            let words = &self.page.words()[at..];
            let length = program.map_or(0, |program| {
                for (word, value) in words[1..].iter().zip(program.words()) {
                    word.store(value, Ordering::Relaxed);
                }
                program.instructions().len()
            });
            words[0].store(length as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The command's filter; none when seccomp is off.
    pub fn seccomp(&self) -> Option<Program> {
        self.filter_at(COMMAND_FILTER)
    }

    /// Init's own filter; none for a process that spawns no init.
    pub fn init_seccomp(&self) -> Option<Program> {
        self.filter_at(INIT_FILTER)
    }

    fn filter_at(&self, at: usize) -> Option<Program> {
        let words = &self.page.words()[at..];
        let length = words[0].load(Ordering::Relaxed) as usize;
        (length > 0).then(|| {
            Program::from_words(words[1..=length].iter().map(|w| w.load(Ordering::Relaxed)))
        })
    }

    /// A duration the command's process reports, in nanoseconds (0: never reached).
    pub fn timing(&self, slot: usize) -> &std::sync::atomic::AtomicU64 {
        &self.page.words()[slot]
    }

    /// What the supervisor prepares for `plan`, for unit tests.
    #[cfg(test)]
    pub fn for_tests(plan: &Plan) -> Prepared {
        let prepared = Prepared::new(SigSet::empty()).unwrap();
        prepared.compile(plan, false).unwrap();
        prepared
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

/// What a bounding set may hold before the launcher dropped anything from it: every number,
/// the kernel's last one found by its EINVAL.
pub const ANY_CAPABILITY: u64 = u64::MAX;

/// The command's capabilities, as a mask.
fn kept(plan: &Plan) -> u64 {
    (plan.security.capabilities.iter()).fold(0, |mask, c| mask | c.0.bitmask())
}

/// Limit the bounding set of the process about to spawn the command (init, or `sandbox
/// exec`'s joining process) to the command's, which the command inherits: each capability is
/// dropped once for both processes, not once in each (a PR_CAPBSET_DROP per capability, about
/// 40 calls, that the command's process made after its clone). The spawner drops the rest
/// when it locks itself down. Returns what the set may hold now, for [`apply`] and
/// [`lock_down`].
pub fn limit_bounding_for_command(sys: &dyn Sys, plan: &Plan) -> Result<u64, StepFailure> {
    let kept = kept(plan);
    sys.limit_bounding_set(ANY_CAPABILITY, kept)
        .or_fail(StepId::Pid, Op::Capabilities, || {
            "dropping the command's dropped capabilities from the bounding set".into()
        })?;
    Ok(kept)
}

/// The security step in the command's process; `held` is what its bounding set may hold
/// (see [`limit_bounding_for_command`]).
pub fn apply(
    sys: &dyn Sys,
    plan: &Plan,
    prepared: &Prepared,
    held: u64,
) -> Result<(), StepFailure> {
    let started = Instant::now();
    let security = &plan.security;
    for (name, value) in &security.rlimits {
        sys.setrlimit(name.resource(), value.as_raw(), value.as_raw())
            .or_fail(StepId::Security, Op::Rlimit, || {
                format!("setrlimit({}, {})", name.name(), value.as_raw())
            })
            .map_err(|f| f.with_key(format!("security.rlimits.{}", name.name())))?;
    }
    if !security.no_new_privileges {
        confine(sys, plan, prepared, started)?;
    }

    let mask = kept(plan);
    sys.limit_bounding_set(held, mask)
        .or_fail(StepId::Security, Op::Capabilities, || {
            "dropping the capabilities not kept from the bounding set".into()
        })?;

    if !plan.command_ids_set_up() {
        take_command_ids(sys, plan)?;
    }

    sys.set_capabilities(mask, mask)
        .or_fail(StepId::Security, Op::Capabilities, || {
            "setting the effective, permitted and inheritable capabilities".into()
        })?;
    // Root keeps them across execve without: its bounding set is what it may have.
    let ambient = if plan.process.uid == 0 { 0 } else { mask };
    sys.set_ambient(ambient)
        .or_fail(StepId::Security, Op::Capabilities, || {
            format!("setting the ambient capabilities to {ambient:#x}")
        })?;

    if security.no_new_privileges {
        sys.set_no_new_privs()
            .or_fail(StepId::Security, Op::Prctl, || "PR_SET_NO_NEW_PRIVS".into())?;
        confine(sys, plan, prepared, started)?;
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
/// `join::enter`). `held` is what its bounding set may hold.
pub fn lock_down(sys: &dyn Sys, filter: Option<&Program>, held: u64) -> Result<(), StepFailure> {
    sys.set_no_new_privs()
        .or_fail(StepId::Pid, Op::Prctl, || "PR_SET_NO_NEW_PRIVS".into())?;
    sys.set_securebits(raw::SECUREBITS_LOCKED_DOWN)
        .or_fail(StepId::Pid, Op::Prctl, || "PR_SET_SECUREBITS".into())?;
    sys.limit_bounding_set(held, 0)
        .or_fail(StepId::Pid, Op::Capabilities, || {
            "emptying the bounding set".into()
        })?;
    // None inheritable: the bounding set, empty now, caps what may be.
    sys.set_capabilities(Capability::CAP_KILL.bitmask(), 0)
        .or_fail(StepId::Pid, Op::Capabilities, || {
            "keeping only CAP_KILL".into()
        })?;
    if let Some(filter) = filter {
        sys.seccomp_set_filter(filter.instructions())
            .or_fail(StepId::Pid, Op::Seccomp, || {
                "loading its own seccomp filter".into()
            })?;
    }
    Ok(())
}

/// Supplementary groups, gid and uid of the command, keeping the capabilities across the uid
/// change (they are set to the kept ones next).
fn take_command_ids(sys: &dyn Sys, plan: &Plan) -> Result<(), StepFailure> {
    let process = &plan.process;
    let may_setgroups = plan.user.as_ref().is_none_or(|u| !u.deny_setgroups);
    if may_setgroups {
        sys.setgroups(&process.groups)
            .or_fail(StepId::Security, Op::SetIds, || {
                format!("setgroups({:?})", process.groups)
            })
            .map_err(|f| f.with_key("process.groups"))?;
    }
    sys.set_keepcaps(true)
        .or_fail(StepId::Security, Op::Prctl, || "PR_SET_KEEPCAPS".into())?;
    sys.setresgid(process.gid)
        .or_fail(StepId::Security, Op::SetIds, || {
            format!("setresgid({})", process.gid)
        })
        .map_err(|f| f.with_key("process.group"))?;
    sys.setresuid(process.uid)
        .or_fail(StepId::Security, Op::SetIds, || {
            format!("setresuid({})", process.uid)
        })
        .map_err(|f| f.with_key("process.user"))?;
    sys.set_keepcaps(false)
        .or_fail(StepId::Security, Op::Prctl, || "PR_SET_KEEPCAPS".into())?;
    Ok(())
}

/// Landlock, then the seccomp filters; records the step's durations.
fn confine(
    sys: &dyn Sys,
    plan: &Plan,
    prepared: &Prepared,
    started: Instant,
) -> Result<(), StepFailure> {
    if let Some(rules) = &plan.security.landlock {
        landlock(rules)?;
    }
    let record = |slot: usize, nanos: u128| {
        prepared.timing(slot).store(nanos as u64, Ordering::Relaxed);
    };
    record(TIMING_SECURITY, started.elapsed().as_nanos());
    let loading = Instant::now();
    if let Some(program) = prepared.seccomp() {
        sys.seccomp_set_filter(program.instructions())
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
    let missing = || rules.unenforceable(raw::landlock_abi()).join(", ");
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

#[cfg(test)]
mod tests {
    //! Through the fake: the order of the calls is the step's security (see the module's).

    use super::*;
    use crate::sys::fake::Fake;

    /// A plan whose command runs as `uid` with CAP_NET_BIND_SERVICE kept, and no landlock.
    fn plan(uid: u32, no_new_privileges: bool) -> Plan {
        let mut plan = crate::plan::for_tests();
        plan.process.uid = uid;
        plan.process.gid = uid;
        plan.process.groups = vec![uid, 27];
        if let Some(user) = &mut plan.user {
            user.deny_setgroups = false;
        }
        plan.security.no_new_privileges = no_new_privileges;
        plan.security.landlock = None;
        plan.security.capabilities = vec![crate::manifest::values::Capability(
            Capability::CAP_NET_BIND_SERVICE,
        )];
        plan
    }

    fn applied(plan: &Plan) -> Vec<String> {
        let sys = Fake::new();
        apply(&sys, plan, &Prepared::for_tests(plan), ANY_CAPABILITY).unwrap();
        let calls = sys.calls();
        // rlimits come first, as the plan lists them.
        let rlimits = calls
            .iter()
            .take_while(|c| c.starts_with("setrlimit("))
            .count();
        assert_eq!(rlimits, plan.security.rlimits.len(), "{calls:#?}");
        calls[rlimits..].to_vec()
    }

    #[test]
    fn with_no_new_privs_the_filter_is_the_last_call_after_every_capability_change() {
        let plan = plan(1000, true);
        let bind = Capability::CAP_NET_BIND_SERVICE.bitmask();
        assert_eq!(
            applied(&plan),
            [
                format!("limit_bounding_set({ANY_CAPABILITY:#x}, {bind:#x})"),
                "setgroups([1000, 27])".into(),
                "set_keepcaps(true)".into(),
                "setresgid(1000)".into(),
                "setresuid(1000)".into(),
                "set_keepcaps(false)".into(),
                format!("capset({bind:#x}, {bind:#x})"),
                format!("set_ambient({bind:#x})"),
                "set_no_new_privs()".into(),
                format!(
                    "seccomp({} instructions)",
                    Prepared::for_tests(&plan)
                        .seccomp()
                        .unwrap()
                        .instructions()
                        .len()
                ),
            ]
        );
    }

    #[test]
    fn without_no_new_privs_the_filter_goes_in_first_while_every_capability_is_there() {
        let calls = applied(&plan(1000, false));
        assert!(calls[0].starts_with("seccomp("), "{calls:#?}");
        assert!(!calls.contains(&"set_no_new_privs()".to_string()));
    }

    #[test]
    fn a_root_command_gets_no_ambient_capabilities() {
        let calls = applied(&plan(0, true));
        assert!(
            calls.contains(&"set_ambient(0x0)".to_string()),
            "{calls:#?}"
        );
    }

    #[test]
    fn a_refused_uid_stops_the_step_naming_process_user() {
        let plan = plan(1000, true);
        let sys = Fake::new();
        sys.fail("setresuid", 0, Errno::EINVAL);
        let failure = apply(&sys, &plan, &Prepared::for_tests(&plan), ANY_CAPABILITY).unwrap_err();
        assert_eq!((failure.step, failure.op), (StepId::Security, Op::SetIds));
        assert!(failure.key.is_some_and(|key| key.is_key("process.user")));
        assert_eq!(sys.calls_of("capset"), Vec::<String>::new());
        assert_eq!(sys.calls_of("seccomp"), Vec::<String>::new());
    }

    #[test]
    fn a_spawner_limits_the_bounding_set_once_and_each_process_drops_only_what_is_left() {
        let plan = plan(1000, true);
        let bind = Capability::CAP_NET_BIND_SERVICE.bitmask();
        let sys = Fake::new();
        let held = limit_bounding_for_command(&sys, &plan).unwrap();
        assert_eq!(held, bind);
        apply(&sys, &plan, &Prepared::for_tests(&plan), held).unwrap();
        lock_down(&sys, None, held).unwrap();
        assert_eq!(
            sys.calls_of("limit_bounding_set"),
            [
                format!("limit_bounding_set({ANY_CAPABILITY:#x}, {bind:#x})"),
                format!("limit_bounding_set({bind:#x}, {bind:#x})"),
                format!("limit_bounding_set({bind:#x}, 0x0)"),
            ]
        );
    }

    #[test]
    fn a_locked_down_process_keeps_only_cap_kill_and_locked_securebits() {
        let sys = Fake::new();
        lock_down(&sys, None, ANY_CAPABILITY).unwrap();
        let kill = Capability::CAP_KILL.bitmask();
        assert_eq!(
            sys.calls(),
            [
                "set_no_new_privs()".to_string(),
                format!("set_securebits({:#x})", raw::SECUREBITS_LOCKED_DOWN),
                format!("limit_bounding_set({ANY_CAPABILITY:#x}, 0x0)"),
                format!("capset({kill:#x}, 0x0)"),
            ]
        );
    }
}
