//! Cgroups: where the hierarchies are and what this caller may do with them.
//!
//! - detect.rs: where the hierarchies are, from /proc/self/mountinfo and /proc/self/cgroup.
//! - access.rs: which controllers this caller can use, and where its groups go.
//!
//! Hand-written rather than cgroups-rs or libcgroups (design.md): both pull in an old nix or a
//! D-Bus stack, and what is needed is a few file reads and writes.

mod access;
mod detect;

use serde::Serialize;

pub use access::{Access, CgroupHost, probe, usable};
pub use detect::{Hierarchy, Layout, detect};

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
