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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CgroupPlan {
    /// The group under which this sandbox's own group is made (relative to the hierarchy root).
    pub parent: String,
    pub limits: CgroupLimits,
}
