//! Security, the last step before exec, in the command's own process.
//!
//! Order matters (capabilities(7), prctl(2)):
//! 1. rlimits, while we may still raise hard limits;
//! 2. drop every capability not kept from the bounding set (needs CAP_SETPCAP, so before the
//!    effective set shrinks);
//! 3. supplementary groups, gid, uid, with PR_SET_KEEPCAPS so the kept capabilities survive the
//!    uid change;
//! 4. permitted = effective = inheritable = kept, and the kept ones raised in the ambient set so
//!    a non-root uid keeps them across execve;
//! 5. no_new_privs, then landlock and seccomp, which must be last: the filter would otherwise
//!    forbid the calls above.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use nix::sys::resource::setrlimit;
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};

use crate::exec::error::{OrFail, StepFailure};
use crate::plan::{Plan, StepId};

fn caps_error(step: StepId, action: String) -> impl FnOnce(caps::errors::CapsError) -> StepFailure {
    move |e| StepFailure::new(step, format!("{action}: {e}"), nix::errno::Errno::last())
}

pub fn apply(plan: &Plan) -> Result<(), StepFailure> {
    let security = &plan.security;
    for (name, value) in &security.rlimits {
        setrlimit(name.resource(), value.as_raw(), value.as_raw())
            .or_fail(StepId::Security, || {
                format!("setrlimit({}, {})", name.name(), value.as_raw())
            })
            .map_err(|f| f.with_key(format!("security.rlimits.{}", name.name())))?;
    }

    let kept: HashSet<Capability> = security.capabilities.iter().map(|c| c.0).collect();
    for capability in caps::all() {
        if !kept.contains(&capability) {
            caps::drop(None, CapSet::Bounding, capability).map_err(caps_error(
                StepId::Security,
                format!("dropping {capability} from the bounding set"),
            ))?;
        }
    }

    let process = &plan.process;
    let may_setgroups = plan.user.as_ref().is_none_or(|u| !u.deny_setgroups);
    if may_setgroups {
        let groups: Vec<Gid> = process.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups)
            .or_fail(StepId::Security, || {
                format!("setgroups({:?})", process.groups)
            })
            .map_err(|f| f.with_key("process.groups"))?;
    }
    nix::sys::prctl::set_keepcaps(true).or_fail(StepId::Security, || "PR_SET_KEEPCAPS".into())?;
    let gid = Gid::from_raw(process.gid);
    setresgid(gid, gid, gid)
        .or_fail(StepId::Security, || format!("setresgid({})", process.gid))
        .map_err(|f| f.with_key("process.group"))?;
    let uid = Uid::from_raw(process.uid);
    setresuid(uid, uid, uid)
        .or_fail(StepId::Security, || format!("setresuid({})", process.uid))
        .map_err(|f| f.with_key("process.user"))?;
    nix::sys::prctl::set_keepcaps(false).or_fail(StepId::Security, || "PR_SET_KEEPCAPS".into())?;

    let kept_set: caps::CapsHashSet = kept.iter().copied().collect();
    for set in [CapSet::Effective, CapSet::Inheritable] {
        caps::set(None, set, &kept_set).map_err(caps_error(
            StepId::Security,
            format!("setting the {set:?} capabilities"),
        ))?;
    }
    caps::set(None, CapSet::Permitted, &kept_set).map_err(caps_error(
        StepId::Security,
        "setting the permitted capabilities".into(),
    ))?;
    caps::clear(None, CapSet::Ambient).map_err(caps_error(
        StepId::Security,
        "clearing the ambient capabilities".into(),
    ))?;
    if process.uid != 0 {
        for capability in &kept {
            caps::raise(None, CapSet::Ambient, *capability).map_err(caps_error(
                StepId::Security,
                format!("raising {capability} in the ambient set"),
            ))?;
        }
    }

    if security.no_new_privileges {
        nix::sys::prctl::set_no_new_privs()
            .or_fail(StepId::Security, || "PR_SET_NO_NEW_PRIVS".into())?;
    }
    Ok(())
}
