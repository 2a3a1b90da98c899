//! cgroup v2: one hierarchy, one directory per group. Controllers must be handed down through
//! cgroup.subtree_control at every level above the group; what is left at the end goes with one
//! write to cgroup.kill (Linux 5.14+), and cgroup.events says when the group is empty.

use std::io;
use std::path::Path;

use super::group::{
    Backend, Cgroupfs, Joined, KILL_TIMEOUT, Usage, field, kill_listed, read_number,
};

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
