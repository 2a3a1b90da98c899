//! Cgroups: the sandbox's own group, its limits, its accounting and its removal, with a v1
//! and a v2 backend (v1.rs, v2.rs) behind one small interface (`group::Backend`).
//!
//! - detect.rs: where the hierarchies are, from /proc/self/mountinfo and /proc/self/cgroup.
//! - access.rs: which controllers this caller can use, and where its groups go.
//! - group.rs: one sandbox's group, from mkdir to rmdir.
//!
//! Hand-written rather than cgroups-rs or libcgroups (design.md): both pull in an old nix or a
//! D-Bus stack, and what is needed is a few file writes. Every file access goes through
//! [`Cgroupfs`], so the v2 backend is tested against a fake tree in a temporary directory
//! (and for real where a cgroup2 hierarchy can be mounted alone); the v1 backend runs for real
//! on this project's hosts.
//!
//! A group is `<base>/<parent>/<name>-<pid>-<start>`: the supervisor's pid and start time (in
//! clock ticks since boot, /proc/PID/stat field 22) name the group's owner, so a later run can
//! tell a group whose supervisor was SIGKILLed from a live one even after the pid is reused,
//! and remove it ([`Group::create`] sweeps the parent first). Groups under `parent` are
//! taken to belong to `sandbox` runs of this pid namespace.

mod access;
mod detect;
mod group;
mod v1;
mod v2;

use std::io;

use nix::errno::Errno;

pub use access::{Access, CgroupHost, kernel_weighs_io, probe, usable};
pub use detect::{Hierarchy, Layout, detect};
pub use group::{CgroupError, CgroupOp, Cgroupfs, Group, Kernel, Owner, Usage};

/// The plan's vocabulary for the resources cgroups control, which the backends speak too.
pub use crate::plan::Controller;

/// This host's layout in words, for `sandbox doctor`.
pub fn describe_layout() -> String {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let layout = detect(&read("/proc/self/mountinfo"), &read("/proc/self/cgroup"));
    match (layout.v1.is_empty(), &layout.v2) {
        (true, None) => "no cgroup file system mounted".into(),
        (true, Some(_)) => "cgroup v2".into(),
        (false, None) => "cgroup v1".into(),
        (false, Some(_)) => "hybrid: v1 controllers beside a cgroup2 mount".into(),
    }
}

/// The errno behind an I/O error (EIO when it carries none).
pub(crate) fn errno_of(error: &io::Error) -> Errno {
    error.raw_os_error().map_or_else(
        || match error.kind() {
            io::ErrorKind::NotFound => Errno::ENOENT,
            io::ErrorKind::TimedOut => Errno::ETIMEDOUT,
            _ => Errno::EIO,
        },
        Errno::from_raw,
    )
}
