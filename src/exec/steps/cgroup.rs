//! The sandbox's own cgroup, and the cgroup namespace.
//!
//! Parent half, in the supervisor: [`create`] makes the group with its limits before the clone,
//! which on cgroup v2 clones the setup process straight into it. On v1 the setup process moves
//! itself in ([`enter`]) as its first action after `Go`, through files the supervisor opened,
//! so the limits cover everything the sandbox does, its own setup included (youki applies
//! cgroups before the user namespace for the same reason). Without limits (and without
//! `--stats`) the plan has no group and none of this runs.
//!
//! Child half: unshare CLONE_NEWCGROUP after placement, so the namespace is rooted at the
//! sandbox's group and the sandbox sees it as `/` (cgroup_namespaces(7)). That is why this
//! step comes after chroot in the child's order, and why the namespace is not part of the
//! initial clone. When the sandbox mounts a sysfs on /sys, the group's own cgroup file system
//! is then mounted read-only on /sys/fs/cgroup, so the limits can be read from inside; a
//! mount made in the new namespace shows the group as its root.

use std::ffi::CString;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode;

use crate::cgroup::{CgroupError, CgroupOp, Group, Kernel, Owner, errno_of};
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::sys::{self, FsContext};
use crate::plan::{CgroupPlan, CgroupVersion, Plan, StepId};

static KERNEL: Kernel = Kernel;

/// Before the clone: the sandbox's group, with its limits.
pub fn create(plan: &Plan) -> Result<Option<Group<'static>>, StepFailure> {
    let Some(cgroup) = &plan.cgroup else {
        return Ok(None);
    };
    let owner = Owner::current().map_err(|error| {
        StepFailure::new(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::Owner),
            "reading /proc/self/stat",
            errno_of(&error),
        )
    })?;
    Group::create(&KERNEL, cgroup, &plan.name, owner)
        .map(Some)
        .map_err(failure)
}

/// In the setup process, first of all: join the group (see [`Group::enter`]).
pub fn enter(group: &Group) -> Result<(), StepFailure> {
    group.enter().map_err(failure)
}

fn failure(error: CgroupError) -> StepFailure {
    StepFailure::new(
        StepId::Cgroup,
        Op::Cgroup(error.op),
        error.what(),
        error.errno,
    )
    .with_key(error.key)
}

pub fn child(plan: &Plan) -> Result<(), StepFailure> {
    if !plan.namespaces.cgroup {
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWCGROUP).or_fail(StepId::Cgroup, Op::Unshare, || {
        "unshare(CLONE_NEWCGROUP)".into()
    })?;
    match &plan.cgroup {
        Some(cgroup) if cgroup.view => mount_view(cgroup)
            .or_fail(StepId::Cgroup, Op::Mount, || {
                "mounting the group's cgroup file system on /sys/fs/cgroup".into()
            })
            .map_err(|f| f.with_key("cgroup")),
        _ => Ok(()),
    }
}

/// The group's cgroup file system, read-only, on /sys/fs/cgroup: cgroup2 itself, or on v1 a
/// tmpfs with one directory per hierarchy the group is in, named as the host names them.
fn mount_view(cgroup: &CgroupPlan) -> Result<(), Errno> {
    let read_only = sys::MOUNT_ATTR_RDONLY
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC;
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let target = sys::open_in_root(root.as_fd(), c"sys/fs/cgroup", libc::O_PATH)?;
    if cgroup.version == CgroupVersion::V2 {
        let mount = FsContext::open(c"cgroup2")?.mount(read_only)?;
        return sys::move_mount(mount.as_fd(), target.as_fd());
    }
    let tmpfs = FsContext::open(c"tmpfs").and_then(|fs| {
        fs.set(c"mode", c"755")?;
        fs.mount(sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC)
    })?;
    sys::move_mount(tmpfs.as_fd(), target.as_fd())?;
    for hierarchy in &cgroup.hierarchies {
        let name = CString::new(hierarchy.controllers.join(",")).map_err(|_| Errno::EINVAL)?;
        nix::sys::stat::mkdirat(
            tmpfs.as_fd(),
            name.as_c_str(),
            Mode::from_bits_truncate(0o755),
        )?;
        let fs = FsContext::open(c"cgroup")?;
        for controller in &hierarchy.controllers {
            fs.flag(&CString::new(controller.as_str()).map_err(|_| Errno::EINVAL)?)?;
        }
        let mount = fs.mount(read_only)?;
        let dir = sys::open_in_root(tmpfs.as_fd(), &name, libc::O_PATH)?;
        sys::move_mount(mount.as_fd(), dir.as_fd())?;
    }
    sys::mount_setattr(tmpfs.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, None)
}
