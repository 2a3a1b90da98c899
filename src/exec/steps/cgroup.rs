//! Cgroup namespace.
//!
//! The child unshares CLONE_NEWCGROUP after the supervisor has placed it in its own group, so
//! the namespace is rooted there and the sandbox sees its group as `/` (cgroup_namespaces(7)).
//! That is why this step comes after chroot in the child's order, and why the namespace is not
//! part of the initial clone.

use nix::sched::{CloneFlags, unshare};

use crate::exec::error::{OrFail, StepFailure};
use crate::plan::{Plan, StepId};

pub fn child(plan: &Plan) -> Result<(), StepFailure> {
    if !plan.namespaces.cgroup {
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWCGROUP)
        .or_fail(StepId::Cgroup, || "unshare(CLONE_NEWCGROUP)".into())
}
