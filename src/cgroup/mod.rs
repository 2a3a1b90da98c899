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
use serde::Serialize;

pub use access::{Access, CgroupHost, kernel_weighs_io, probe, usable};
pub use detect::{Hierarchy, Layout, detect};
pub use group::{CgroupError, CgroupOp, Cgroupfs, Group, Kernel, Owner, Usage};

use crate::plan::CgroupVersion;

/// The resources `sandbox` uses, by what they do; [`Controller::kernel_name`] gives each
/// version's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    Memory,
    Cpu,
    /// CPU time accounting: v1's cpuacct; every v2 group has cpu.stat.
    Cpuacct,
    Pids,
    Io,
    /// Stopping a group while killing it: v1's freezer; every v2 group has cgroup.kill.
    Freezer,
}

impl Controller {
    pub const ALL: [Controller; 6] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Pids,
        Controller::Io,
        Controller::Freezer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Pids => "pids",
            Controller::Io => "io",
            Controller::Freezer => "freezer",
        }
    }

    /// The controller's name in `version`; `None` for what v2 builds into every group.
    pub fn kernel_name(self, version: CgroupVersion) -> Option<&'static str> {
        match (self, version) {
            (Controller::Io, CgroupVersion::V1) => Some("blkio"),
            (Controller::Cpuacct | Controller::Freezer, CgroupVersion::V2) => None,
            (other, _) => Some(other.name()),
        }
    }
}

/// cpu.weight (1..10000, default 100) as v1's cpu.shares (2..262144, default 1024): the
/// inverse of crun's shares-to-weight conversion, weight = 10^((l² + 125 l) / 612 - 7/34) with
/// l = log2(shares), which maps 2, 1024 and 262144 to 1, 100 and 10000, so the defaults
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

/// meet.
pub fn cpu_shares(weight: u32) -> u64 {
    let exponent = f64::from(weight.clamp(1, 10_000)).log10() + 7.0 / 34.0;
    let l = (-125.0 + (125.0f64.powi(2) + 4.0 * 612.0 * exponent).sqrt()) / 2.0;
    (2f64.powf(l).round() as u64).clamp(2, 262_144)
}

/// io.weight (1..10000) on v1's blkio and BFQ's scale (10..1000): the inverse of runc's
/// linear blkio-to-io conversion, io = 1 + (blkio - 10) * 9999 / 990, rounded.
pub fn blkio_weight(io_weight: u32) -> u64 {
    let w = u64::from(io_weight.clamp(1, 10_000));
    10 + ((w - 1) * 990 + 9999 / 2) / 9999
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
