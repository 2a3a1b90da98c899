use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CgroupLimits;

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    pub fn name(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

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

/// A hierarchy the sandbox's group is made in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupHierarchy {
    /// The directory below which `<parent>/<name>-<pid>-<start>` is made.
    pub base: PathBuf,
    /// The kernel's names of the controllers: on v1 all those mounted in this hierarchy
    /// ("cpu", "cpuacct"); on v2 those handed down to the group.
    pub controllers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupPlan {
    /// The group under which this sandbox's own group is made, relative to each base.
    pub parent: String,
    pub limits: CgroupLimits,
    pub version: CgroupVersion,
    /// One per v1 hierarchy the limits need; the one v2 hierarchy.
    pub hierarchies: Vec<CgroupHierarchy>,
    /// Read peak memory, CPU time and the task peak at the end (`up --stats`).
    pub stats: bool,
    /// Mount the group's own cgroup file system read-only on /sys/fs/cgroup (the sandbox
    /// mounts a sysfs on /sys and has its own cgroup namespace).
    pub view: bool,
}
