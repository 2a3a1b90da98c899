use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Limits in kernel units. Each is `None` when the manifest does not ask for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupLimits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Bytes of swap on top of `memory`.
    pub memory_swap: Option<u64>,
    /// CPU quota per period, in microseconds.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    /// 1..=10000 (cgroup v2 cpu.weight).
    pub cpu_weight: Option<u32>,
    pub pids: Option<u32>,
    /// 1..=10000 (cgroup v2 io.weight).
    pub io_weight: Option<u32>,
}

impl CgroupLimits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.cpu_quota_us.is_none()
            && self.cpu_weight.is_none()
            && self.pids.is_none()
            && self.io_weight.is_none()
    }

    /// Leave out the limit of manifest key `key` (in [cgroup]).
    pub fn clear(&mut self, key: &str) {
        match key {
            "memory" => self.memory = None,
            "memory_swap" => self.memory_swap = None,
            "cpus" => self.cpu_quota_us = None,
            "cpu_weight" => self.cpu_weight = None,
            "pids" => self.pids = None,
            "io_weight" => self.io_weight = None,
            _ => unreachable!("not a limit of [cgroup]: {key}"),
        }
    }
}

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
