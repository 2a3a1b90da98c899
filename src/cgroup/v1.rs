//! cgroup v1: each controller in its own hierarchy (or a few mounted together), each holding
//! its own copy of the group. Nothing is handed down: a v1 child group has every controller
//! of its hierarchy. The processes left at the end are frozen, killed and thawed (freezer), so
//! none forks between reading the list and the signal.

use std::io;
use std::path::Path;

use super::group::{Backend, Cgroupfs, Joined, Usage, field, kill_listed, read_number};

pub struct V1;

impl Backend for V1 {
    fn pass_down(&self, _: &dyn Cgroupfs, _: &Path, _: &[String]) -> io::Result<()> {
        Ok(())
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
