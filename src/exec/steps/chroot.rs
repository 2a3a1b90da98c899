//! Switching to the new root.
//!
//! pivot_root(".", ".") inside the new root stacks the old root on top of it, and
//! umount2(".", MNT_DETACH) then removes it with everything below (pivot_root(2), NOTES). Unlike
//! chroot, nothing of the old root stays reachable through a kept directory descriptor.
//! The read-only flag is set on the root mount last, after every mount point was created.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, umount2};
use nix::sys::stat::Mode;

use crate::exec::error::{Op, OrFail, StepFailure};
use crate::plan::{Plan, StepId};
use crate::sys::SetAttr;
use crate::sys::raw as sys;

pub fn child(plan: &Plan, new_root: OwnedFd) -> Result<(), StepFailure> {
    nix::unistd::fchdir(new_root.as_fd()).or_fail(StepId::Chroot, Op::PivotRoot, || {
        "entering the new root".into()
    })?;
    drop(new_root);
    sys::pivot_root_here().or_fail(StepId::Chroot, Op::PivotRoot, || "pivot_root(., .)".into())?;
    umount2(".", MntFlags::MNT_DETACH).or_fail(StepId::Chroot, Op::PivotRoot, || {
        "detaching the old root".into()
    })?;
    nix::unistd::chdir("/").or_fail(StepId::Chroot, Op::Chdir, || "chdir(/)".into())?;
    if plan.root.readonly {
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .or_fail(StepId::Chroot, Op::PivotRoot, || "opening /".into())?;
        sys::mount_setattr(root.as_fd(), SetAttr::on(sys::MOUNT_ATTR_RDONLY))
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
    child(cx.plan, new_root)
}
