//! cgroup v2: one hierarchy, one directory per group. Controllers must be handed down through
//! cgroup.subtree_control at every level above the group; what is left at the end goes with one
//! write to cgroup.kill (Linux 5.14+), and cgroup.events says when the group is empty.

use std::io;
use std::path::Path;

use super::blkio_weight;
use super::group::{
    Backend, Cgroupfs, Joined, KILL_TIMEOUT, LimitWrite, Unsupported, Usage, field, kill_listed,
    read_number,
};
use crate::plan::CgroupLimits;

pub struct V2;

impl Backend for V2 {
    fn pass_down(&self, fs: &dyn Cgroupfs, dir: &Path, controllers: &[String]) -> io::Result<()> {
        if controllers.is_empty() {
            return Ok(());
        }
        // Enabling what is already enabled is a no-op the kernel accepts, even with processes
        // in `dir`; so there is no need to read the file first.
        let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
        fs.write(&dir.join("cgroup.subtree_control"), &enable.join(" "))
    }

    fn limit_writes(
        &self,
        limits: &CgroupLimits,
        has: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Vec<LimitWrite>, Unsupported> {
        let mut writes = Vec::new();
        let mut set = |controller, file, value: String, key| {
            writes.push(LimitWrite {
                controller,
                file,
                value,
                key,
            })
        };
        if let Some(memory) = limits.memory {
            set("memory", "memory.max", memory.to_string(), "cgroup.memory");
        }
        if let Some(swap) = limits.memory_swap {
            if !has("memory", "memory.swap.max") {
                return Err(Unsupported {
                    key: "cgroup.memory_swap",
                    why: "this kernel does not account swap (memory.swap.max is missing): boot it with swapaccount=1, or remove memory_swap",
                });
            }
            set(
                "memory",
                "memory.swap.max",
                swap.to_string(),
                "cgroup.memory_swap",
            );
        }
        if let Some(quota) = limits.cpu_quota_us {
            let value = format!("{quota} {}", limits.cpu_period_us);
            set("cpu", "cpu.max", value, "cgroup.cpus");
        }
        if let Some(weight) = limits.cpu_weight {
            set("cpu", "cpu.weight", weight.to_string(), "cgroup.cpu_weight");
        }
        if let Some(pids) = limits.pids {
            set("pids", "pids.max", pids.to_string(), "cgroup.pids");
        }
        if let Some(weight) = limits.io_weight {
            // io.weight is io.cost's (same scale as the manifest), io.bfq.weight BFQ's (v1's
            // scale); the device's scheduler decides which counts, so both are set when there.
            let cost = has("io", "io.weight");
            let bfq = has("io", "io.bfq.weight");
            if !cost && !bfq {
                return Err(Unsupported {
                    key: "cgroup.io_weight",
                    why: "no I/O controller of this kernel offers a weight (io.weight and io.bfq.weight are missing): build with io.cost or load BFQ, or remove io_weight",
                });
            }
            if cost {
                set(
                    "io",
                    "io.weight",
                    format!("default {weight}"),
                    "cgroup.io_weight",
                );
            }
            if bfq {
                let value = format!("default {}", blkio_weight(weight));
                set("io", "io.bfq.weight", value, "cgroup.io_weight");
            }
        }
        Ok(writes)
    }

    fn joins_at_clone(&self) -> bool {
        true
    }

    fn dir_for<'a>(&self, joined: &'a [Joined], _: &str) -> Option<&'a Path> {
        joined.first().map(|j| j.dir.as_path())
    }

    fn kill(&self, fs: &dyn Cgroupfs, joined: &[&Joined]) -> io::Result<()> {
        for j in joined {
            match fs.write(&j.dir.join("cgroup.kill"), "1") {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    // Before Linux 5.14: one process at a time.
                    let dirs: Vec<&Path> = joined.iter().map(|j| j.dir.as_path()).collect();
                    return kill_listed(fs, &dirs, &[]);
                }
                Err(error) => return Err(error),
            }
        }
        let empty = |events: &str| field(events, "populated") == Some(0);
        for j in joined {
            if !fs.wait_for(&j.dir.join("cgroup.events"), &empty, KILL_TIMEOUT)? {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
        }
        Ok(())
    }

    fn oom_kills(&self, fs: &dyn Cgroupfs, joined: &[Joined]) -> u64 {
        self.dir_for(joined, "memory")
            .and_then(|dir| fs.read(&dir.join("memory.events")).ok())
            .and_then(|events| field(&events, "oom_kill"))
            .unwrap_or(0)
    }

    fn stats(&self, fs: &dyn Cgroupfs, joined: &[Joined], usage: &mut Usage) {
        let Some(dir) = self.dir_for(joined, "") else {
            return;
        };
        usage.peak_memory = read_number(fs, &dir.join("memory.peak"));
        usage.cpu_usec = fs
            .read(&dir.join("cpu.stat"))
            .ok()
            .and_then(|stat| field(&stat, "usage_usec"));
        usage.task_peak = read_number(fs, &dir.join("pids.peak"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_in_v2_files() {
        let limits = CgroupLimits {
            memory: Some(512 << 20),
            memory_swap: Some(0),
            cpu_quota_us: Some(150_000),
            cpu_period_us: 100_000,
            cpu_weight: Some(250),
            pids: Some(256),
            io_weight: Some(10_000),
        };
        let writes: Vec<(&str, String)> = V2
            .limit_writes(&limits, &|_, _| true)
            .unwrap()
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        assert_eq!(
            writes,
            [
                ("memory.max", "536870912".to_string()),
                ("memory.swap.max", "0".into()),
                ("cpu.max", "150000 100000".into()),
                ("cpu.weight", "250".into()),
                ("pids.max", "256".into()),
                ("io.weight", "default 10000".into()),
                ("io.bfq.weight", "default 1000".into()),
            ]
        );
        let no_swap = |_: &str, file: &str| file != "memory.swap.max";
        let err = V2.limit_writes(&limits, &no_swap).unwrap_err();
        assert_eq!(err.key, "cgroup.memory_swap");
    }
}
