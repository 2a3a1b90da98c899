//! cgroup v1: each controller in its own hierarchy (or a few mounted together), each holding
//! its own copy of the group. Nothing is handed down: a v1 child group has every controller
//! of its hierarchy. The processes left at the end are frozen, killed and thawed (freezer), so
//! none forks between reading the list and the signal.

use std::io;
use std::path::Path;

use super::group::{
    Backend, Cgroupfs, Joined, LimitWrite, Unsupported, Usage, field, kill_listed, read_number,
};
use super::{blkio_weight, cpu_shares};
use crate::plan::CgroupLimits;

pub struct V1;

impl Backend for V1 {
    fn pass_down(&self, _: &dyn Cgroupfs, _: &Path, _: &[String]) -> io::Result<()> {
        Ok(())
    }

    fn limit_writes(
        &self,
        limits: &CgroupLimits,
        has: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<LimitWrite>, Unsupported> {
        let mut writes = Vec::new();
        let mut set = |controller, file, value: u64, key| {
            writes.push(LimitWrite {
                controller,
                file,
                value: value.to_string(),
                key,
            })
        };
        if let Some(memory) = limits.memory {
            set("memory", "memory.limit_in_bytes", memory, "cgroup.memory");
            // memsw counts memory plus swap, and may never be below the memory limit: written
            // second, over the fresh group's unlimited value.
            if let Some(swap) = limits.memory_swap {
                if !has("memory", "memory.memsw.limit_in_bytes") {
                    return Err(Unsupported {
                        key: "cgroup.memory_swap",
                        why: "this kernel does not account swap (memory.memsw.limit_in_bytes is missing): boot it with swapaccount=1, or remove memory_swap",
                    });
                }
                set(
                    "memory",
                    "memory.memsw.limit_in_bytes",
                    memory.saturating_add(swap),
                    "cgroup.memory_swap",
                );
            }
        }
        if let Some(quota) = limits.cpu_quota_us {
            set(
                "cpu",
                "cpu.cfs_period_us",
                limits.cpu_period_us,
                "cgroup.cpus",
            );
            set("cpu", "cpu.cfs_quota_us", quota, "cgroup.cpus");
        }
        if let Some(weight) = limits.cpu_weight {
            set("cpu", "cpu.shares", cpu_shares(weight), "cgroup.cpu_weight");
        }
        if let Some(pids) = limits.pids {
            set("pids", "pids.max", pids.into(), "cgroup.pids");
        }
        if let Some(weight) = limits.io_weight {
            // BFQ's weight, or CFQ's before Linux 5.0 removed it; same 10..1000 scale.
            let file = ["blkio.bfq.weight", "blkio.weight"]
                .into_iter()
                .find(|file| has("blkio", file))
                .ok_or(Unsupported {
                    key: "cgroup.io_weight",
                    why: "no I/O scheduler of this kernel offers a weight (blkio.bfq.weight is missing): load BFQ (`modprobe bfq`), or remove io_weight",
                })?;
            set("blkio", file, blkio_weight(weight), "cgroup.io_weight");
        }
        Ok(writes)
    }

    fn joins_at_clone(&self) -> bool {
        false
    }

    fn dir_for<'a>(&self, joined: &'a [Joined], controller: &str) -> Option<&'a Path> {
        joined
            .iter()
            .find(|j| j.controllers.iter().any(|c| c == controller))
            .map(|j| j.dir.as_path())
    }

    fn kill(&self, fs: &dyn Cgroupfs, joined: &[&Joined]) -> io::Result<()> {
        let dirs: Vec<&Path> = joined.iter().map(|j| j.dir.as_path()).collect();
        let freezer: Vec<_> = dirs
            .iter()
            .map(|dir| dir.join("freezer.state"))
            .filter(|state| fs.exists(state))
            .collect();
        kill_listed(fs, &dirs, &freezer)
    }

    fn oom_kills(&self, fs: &dyn Cgroupfs, joined: &[Joined]) -> u64 {
        let Some(dir) = self.dir_for(joined, "memory") else {
            return 0;
        };
        let control = fs.read(&dir.join("memory.oom_control")).unwrap_or_default();
        // Kernels before 4.13 do not count kills; hitting the limit is the best sign there.
        field(&control, "oom_kill").unwrap_or_else(|| {
            read_number(fs, &dir.join("memory.failcnt")).map_or(0, |n| u64::from(n > 0))
        })
    }

    fn stats(&self, fs: &dyn Cgroupfs, joined: &[Joined], usage: &mut Usage) {
        let read = |controller, file| {
            self.dir_for(joined, controller)
                .and_then(|dir| read_number(fs, &dir.join(file)))
        };
        usage.peak_memory = read("memory", "memory.max_usage_in_bytes");
        usage.cpu_usec = read("cpuacct", "cpuacct.usage").map(|ns| ns / 1000);
        usage.task_peak = read("pids", "pids.peak");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(limits: CgroupLimits, has: &dyn Fn(&str, &str) -> bool) -> Vec<(String, String)> {
        V1.limit_writes(&limits, has)
            .unwrap()
            .into_iter()
            .map(|w| (format!("{}/{}", w.controller, w.file), w.value))
            .collect()
    }

    #[test]
    fn every_limit_in_v1_files() {
        let limits = CgroupLimits {
            memory: Some(64 << 20),
            memory_swap: Some(16 << 20),
            cpu_quota_us: Some(25_000),
            cpu_period_us: 100_000,
            cpu_weight: Some(100),
            pids: Some(32),
            io_weight: Some(7475),
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            writes(limits, &|_, _| true),
            pairs(&[
                ("memory/memory.limit_in_bytes", "67108864"),
                ("memory/memory.memsw.limit_in_bytes", "83886080"),
                ("cpu/cpu.cfs_period_us", "100000"),
                ("cpu/cpu.cfs_quota_us", "25000"),
                ("cpu/cpu.shares", "1024"),
                ("pids/pids.max", "32"),
                ("blkio/blkio.bfq.weight", "750"),
            ])
        );
        let cfq_only = |_: &str, file: &str| file != "blkio.bfq.weight";
        assert_eq!(
            writes(
                CgroupLimits {
                    io_weight: Some(1),
                    ..CgroupLimits::default()
                },
                &cfq_only
            ),
            pairs(&[("blkio/blkio.weight", "10")])
        );
    }

    #[test]
    fn limits_the_kernel_cannot_apply() {
        let swap = CgroupLimits {
            memory: Some(1 << 30),
            memory_swap: Some(0),
            ..CgroupLimits::default()
        };
        let nothing = |_: &str, _: &str| false;
        let err = V1.limit_writes(&swap, &nothing).unwrap_err();
        assert_eq!(err.key, "cgroup.memory_swap");
        assert!(err.why.contains("swapaccount=1"));
        let io = CgroupLimits {
            io_weight: Some(100),
            ..CgroupLimits::default()
        };
        assert_eq!(
            V1.limit_writes(&io, &nothing).unwrap_err().key,
            "cgroup.io_weight"
        );
    }
}
