//! Switching to the new root.
//!
//! pivot_root(".", ".") inside the new root stacks the old root on top of it, and
//! umount2(".", MNT_DETACH) then removes it with everything below (pivot_root(2), NOTES). Unlike
//! chroot, nothing of the old root stays reachable through a kept directory descriptor.
//! The read-only flag is set on the root mount last, after every mount point was created.

use std::os::fd::{AsFd, OwnedFd};

use crate::exec::error::{Op, OrFail, StepFailure};
use crate::plan::{Plan, StepId};
use crate::sys::{MOUNT_ATTR_RDONLY, SetAttr, Sys};

pub fn child(sys: &dyn Sys, plan: &Plan, new_root: OwnedFd) -> Result<(), StepFailure> {
    sys.fchdir(new_root.as_fd())
        .or_fail(StepId::Chroot, Op::PivotRoot, || {
            "entering the new root".into()
        })?;
    drop(new_root);
    sys.pivot_root(c".", c".")
        .or_fail(StepId::Chroot, Op::PivotRoot, || "pivot_root(., .)".into())?;
    sys.detach(c".")
        .or_fail(StepId::Chroot, Op::PivotRoot, || {
            "detaching the old root".into()
        })?;
    sys.chdir(c"/")
        .or_fail(StepId::Chroot, Op::Chdir, || "chdir(/)".into())?;
    if plan.root.readonly {
        let root = sys
            .openat(None, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)
            .or_fail(StepId::Chroot, Op::PivotRoot, || "opening /".into())?;
        sys.mount_setattr(root.as_fd(), SetAttr::on(MOUNT_ATTR_RDONLY))
            .or_fail(StepId::Chroot, Op::RemountReadonly, || {
                "making / read-only".into()
            })
            .map_err(|f| f.with_key("rootfs.readonly"))?;
    }
    Ok(())
}

/// The child half in the step table: into the root the mount step made.
pub fn child_half(cx: &mut crate::exec::order::Context<'_>) -> Result<(), StepFailure> {
    let new_root = cx
        .new_root
        .take()
        .expect("the mount step made the new root");
    child(cx.sys, cx.plan, new_root)
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;
    use crate::sys::fake::Fake;

    /// The step for a root that is `readonly` or not, through `sys`.
    fn entered(sys: &Fake, readonly: bool) -> Result<(), StepFailure> {
        let mut plan = crate::plan::for_tests();
        plan.root.readonly = readonly;
        child(sys, &plan, sys.descriptor("/newroot"))
    }

    #[test]
    fn the_root_is_entered_pivoted_and_the_old_one_detached() {
        let sys = Fake::new();
        entered(&sys, false).unwrap();
        assert_eq!(
            sys.calls(),
            [
                "fchdir(/newroot)",
                "pivot_root(\".\", \".\")",
                "umount2(., detach)",
                "chdir(/)"
            ]
        );
    }

    #[test]
    fn a_read_only_root_is_made_read_only_last() {
        let sys = Fake::new();
        entered(&sys, true).unwrap();
        let calls = sys.calls();
        assert_eq!(
            calls[3..],
            ["chdir(/)", "openat(/)", "mount_setattr(/, +[ro])"]
        );
    }

    #[test]
    fn a_failed_read_only_remount_names_its_key() {
        let sys = Fake::new();
        sys.fail("mount_setattr", 0, Errno::EPERM);
        let failure = entered(&sys, true).unwrap_err();
        assert_eq!(failure.op, Op::RemountReadonly);
        assert!(failure.key.is_some_and(|key| key.is_key("rootfs.readonly")));
    }

    #[test]
    fn a_failed_pivot_stops_the_step() {
        let sys = Fake::new();
        sys.fail("pivot_root", 0, Errno::EINVAL);
        let failure = entered(&sys, true).unwrap_err();
        assert_eq!((failure.step, failure.op), (StepId::Chroot, Op::PivotRoot));
        assert_eq!(
            sys.calls(),
            ["fchdir(/newroot)", "pivot_root(\".\", \".\")"]
        );
    }
}
