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

use crate::cgroup::{CgroupError, CgroupOp, Group, Kernel, Owner, errno_of};
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::order::Context;
use crate::plan::{CgroupPlan, CgroupVersion, Plan, StepId};
use crate::sys::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, SetAttr, Sys,
};

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

pub fn child(sys: &dyn Sys, plan: &Plan) -> Result<(), StepFailure> {
    if !plan.namespaces.cgroup {
        return Ok(());
    }
    sys.unshare(libc::CLONE_NEWCGROUP)
        .or_fail(StepId::Cgroup, Op::Unshare, || {
            "unshare(CLONE_NEWCGROUP)".into()
        })?;
    match &plan.cgroup {
        Some(cgroup) if cgroup.view => mount_view(sys, cgroup)
            .or_fail(StepId::Cgroup, Op::Mount, || {
                "mounting the group's cgroup file system on /sys/fs/cgroup".into()
            })
            .map_err(|f| f.with_key("cgroup")),
        _ => Ok(()),
    }
}

/// The group's cgroup file system, read-only, on /sys/fs/cgroup: cgroup2 itself, or on v1 a
/// tmpfs with one directory per hierarchy the group is in, named as the host names them.
fn mount_view(sys: &dyn Sys, cgroup: &CgroupPlan) -> Result<(), Errno> {
    let read_only = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let root = sys.openat(None, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
    let target = sys.open_in_root(root.as_fd(), c"sys/fs/cgroup", libc::O_PATH)?;
    if cgroup.version == CgroupVersion::V2 {
        let fs = sys.fsopen(c"cgroup2")?;
        let mount = sys.fsmount(fs.as_fd(), read_only)?;
        return sys.attach(mount.as_fd(), target.as_fd());
    }
    let fs = sys.fsopen(c"tmpfs")?;
    sys.fsconfig_set(fs.as_fd(), c"mode", c"755")?;
    let tmpfs = sys.fsmount(
        fs.as_fd(),
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )?;
    sys.attach(tmpfs.as_fd(), target.as_fd())?;
    for hierarchy in &cgroup.hierarchies {
        let name = CString::new(hierarchy.controllers.join(",")).map_err(|_| Errno::EINVAL)?;
        sys.mkdirat(tmpfs.as_fd(), &name, 0o755)?;
        let fs = sys.fsopen(c"cgroup")?;
        for controller in &hierarchy.controllers {
            let controller = CString::new(controller.as_str()).map_err(|_| Errno::EINVAL)?;
            sys.fsconfig_flag(fs.as_fd(), &controller)?;
        }
        let mount = sys.fsmount(fs.as_fd(), read_only)?;
        let dir = sys.open_in_root(tmpfs.as_fd(), &name, libc::O_PATH)?;
        sys.attach(mount.as_fd(), dir.as_fd())?;
    }
    sys.mount_setattr(tmpfs.as_fd(), SetAttr::on(MOUNT_ATTR_RDONLY))
}

/// The prepare half in the step table: the group, made before the clone, when the plan has
/// one.
pub fn prepare_half(cx: &mut Context<'_>) -> Result<bool, StepFailure> {
    cx.group = create(cx.plan)?;
    Ok(cx.group.is_some())
}

/// The child half in the step table: [`child`], then, the cgroup namespace being the last
/// made, each of the sandbox's namespaces opened for the supervisor (timed with this step).
pub fn child_half(cx: &mut Context<'_>) -> Result<(), StepFailure> {
    child(cx.sys, cx.plan)?;
    let own = cx.own_namespaces.take().expect("opened before the steps");
    for (name, _) in cx.plan.namespaces.joined() {
        let path = CString::new(name).expect("namespace names hold no NUL");
        let ns = (cx.sys.openat(Some(own.as_fd()), &path, libc::O_RDONLY, 0)).or_fail(
            StepId::Cgroup,
            Op::OpenNamespace,
            || format!("opening /proc/self/ns/{name}"),
        )?;
        cx.namespaces.push(ns);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CgroupHierarchy;
    use crate::sys::fake::Fake;

    fn viewed(version: CgroupVersion, controllers: &[&[&str]]) -> Plan {
        let mut plan = crate::plan::for_tests();
        plan.namespaces.cgroup = true;
        let hierarchies = (controllers.iter())
            .map(|names| CgroupHierarchy {
                base: "/sys/fs/cgroup/x".into(),
                controllers: names.iter().map(|name| name.to_string()).collect(),
            })
            .collect();
        plan.cgroup = Some(CgroupPlan {
            parent: "sandbox".into(),
            limits: Default::default(),
            version,
            hierarchies,
            stats: false,
            view: true,
        });
        plan
    }

    #[test]
    fn on_v2_the_view_is_a_read_only_cgroup2_of_the_new_namespace() {
        let fake = Fake::new();
        child(&fake, &viewed(CgroupVersion::V2, &[&["memory"]])).unwrap();
        assert_eq!(
            fake.calls(),
            [
                format!("unshare({:#x})", libc::CLONE_NEWCGROUP),
                "openat(/)".into(),
                "openat2(//sys/fs/cgroup, in root)".into(),
                "fsopen(cgroup2)".into(),
                "fsmount(cgroup2, ro nosuid nodev noexec)".into(),
                "move_mount(cgroup2 -> //sys/fs/cgroup)".into(),
            ]
        );
    }

    #[test]
    fn on_v1_each_hierarchy_is_mounted_read_only_in_a_tmpfs_made_read_only_last() {
        let fake = Fake::new();
        let plan = viewed(CgroupVersion::V1, &[&["cpu", "cpuacct"], &["memory"]]);
        child(&fake, &plan).unwrap();
        assert_eq!(
            fake.calls_of("fsconfig"),
            [
                "fsconfig(tmpfs, mode=755)",
                "fsconfig(cgroup, cpu)",
                "fsconfig(cgroup, cpuacct)",
                "fsconfig(cgroup, memory)",
            ]
        );
        assert_eq!(
            fake.calls_of("fsmount"),
            [
                "fsmount(tmpfs, nosuid nodev noexec)",
                "fsmount(cgroup, ro nosuid nodev noexec)",
                "fsmount(cgroup, ro nosuid nodev noexec)",
            ]
        );
        assert_eq!(fake.calls().last().unwrap(), "mount_setattr(tmpfs, +[ro])");
    }

    #[test]
    fn without_a_cgroup_namespace_the_step_makes_no_call() {
        let fake = Fake::new();
        let mut plan = viewed(CgroupVersion::V2, &[]);
        plan.namespaces.cgroup = false;
        child(&fake, &plan).unwrap();
        assert!(fake.calls().is_empty());
    }

    #[test]
    fn a_view_that_cannot_be_mounted_fails_with_the_cgroup_key() {
        let fake = Fake::new();
        fake.fail("fsmount", 0, Errno::EPERM);
        let failure = child(&fake, &viewed(CgroupVersion::V2, &[])).unwrap_err();
        assert!(failure.key.is_some_and(|key| key.is_key("cgroup")));
        assert_eq!(failure.step, StepId::Cgroup);
    }
}
