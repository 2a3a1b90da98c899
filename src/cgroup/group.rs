//! A sandbox's group: made, filled with limits, read and removed, through [`Cgroupfs`] and
//! the version's [`Backend`].

use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{errno_of, v1, v2};
use crate::plan::{CgroupLimit, CgroupLimits, CgroupPlan, CgroupVersion};
use crate::sys;

/// How long the end of a sandbox waits for the processes left in its group to die. A task
/// stuck in the kernel can outlast SIGKILL; its group is then left for the next run's sweep.
pub(super) const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Set on each level of `parent` a `sandbox` run makes, so that whichever run leaves the level
/// empty removes it, also when the run that made it ended first (its rmdir found another run's
/// group inside). A level without it was made by someone else, an admin saving each launch
/// the making, and stays.
const MADE_BY_SANDBOX: &str = "user.sandbox.made";

/// The supervisor that made a group: its pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> io::Result<Owner> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        Ok(Owner {
            pid: std::process::id(),
            start: start_time(&stat).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?,
        })
    }

    fn group_name(self, name: &str) -> String {
        format!("{name}-{}-{}", self.pid, self.start)
    }

    /// The owner a group's directory name records; `None` for names `sandbox` does not make.
    fn of_group(dir_name: &str) -> Option<Owner> {
        let mut parts = dir_name.rsplitn(3, '-');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        parts.next().filter(|name| !name.is_empty())?;
        Some(Owner { pid, start })
    }
}

/// Field 22 of /proc/PID/stat.
fn start_time(stat: &str) -> Option<u64> {
    crate::sys::proc_stat_field(stat, 22)?.parse().ok()
}

/// What a group's accounting said when the sandbox ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Processes the kernel killed for running out of memory in the group.
    pub oom_kills: u64,
    /// Highest memory use, in bytes.
    pub peak_memory: Option<u64>,
    /// CPU time of every process in the group, in microseconds.
    pub cpu_usec: Option<u64>,
    /// Highest number of tasks at once.
    pub task_peak: Option<u64>,
}

/// The cgroup file system, as the backends use it.
pub trait Cgroupfs {
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    /// Write `value` to an existing interface file, in one write(2) as the kernel wants.
    fn write(&self, file: &Path, value: &str) -> io::Result<()>;
    fn read(&self, file: &Path) -> io::Result<String>;
    fn exists(&self, file: &Path) -> bool;
    /// The names of the groups directly below `dir`.
    fn children(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether the supervisor that made a group still runs.
    fn alive(&self, owner: Owner) -> bool;
    /// Mark a level of `parent` as made by a `sandbox` run (the xattr `user.sandbox.made`).
    fn mark_made(&self, dir: &Path) -> io::Result<()>;
    fn made_by_sandbox(&self, dir: &Path) -> bool;
    /// Wait until `done` holds for the content of `file`, woken by the kernel's change
    /// notification (poll(2) POLLPRI on cgroup.events); `false` on timeout.
    fn wait_for(
        &self,
        file: &Path,
        done: &dyn Fn(&str) -> bool,
        timeout: Duration,
    ) -> io::Result<bool>;
}

/// The real cgroup file system.
pub struct Kernel;

impl Cgroupfs for Kernel {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn write(&self, file: &Path, value: &str) -> io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).open(file)?;
        match file.write(value.as_bytes())? {
            n if n == value.len() => Ok(()),
            _ => Err(io::Error::from(io::ErrorKind::WriteZero)),
        }
    }

    fn read(&self, file: &Path) -> io::Result<String> {
        std::fs::read_to_string(file)
    }

    fn exists(&self, file: &Path) -> bool {
        file.exists()
    }

    fn children(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn alive(&self, owner: Owner) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", owner.pid))
            .ok()
            .and_then(|stat| start_time(&stat))
            == Some(owner.start)
    }

    fn mark_made(&self, dir: &Path) -> io::Result<()> {
        // Not empty: setxattr(2) with no value removes the attribute on kernfs.
        xattr::set(dir, MADE_BY_SANDBOX, b"1")
    }

    fn made_by_sandbox(&self, dir: &Path) -> bool {
        xattr::get(dir, MADE_BY_SANDBOX).is_ok_and(|value| value.is_some())
    }

    fn wait_for(
        &self,
        file: &Path,
        done: &dyn Fn(&str) -> bool,
        timeout: Duration,
    ) -> io::Result<bool> {
        use std::io::{Read, Seek};
        let deadline = Instant::now() + timeout;
        let mut events = std::fs::File::open(file)?;
        loop {
            // Reading re-arms the notification, so a change after this read wakes the poll.
            let mut text = String::new();
            events.rewind()?;
            events.read_to_string(&mut text)?;
            if done(&text) {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLPRI)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

/// One directory of a group: one per hierarchy on v1, the only one on v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub dir: PathBuf,
    /// The kernel's names of the controllers this directory carries (see
    /// [`crate::plan::CgroupHierarchy`]).
    pub controllers: Vec<String>,
}

/// What differs between cgroup v1 and v2.
pub(crate) trait Backend: Sync {
    /// Let `dir` hand `controllers` down to the groups made below it.
    fn pass_down(&self, fs: &dyn Cgroupfs, dir: &Path, controllers: &[String]) -> io::Result<()>;
    /// Whether the sandbox is cloned straight into the group (clone3's CLONE_INTO_CGROUP, v2
    /// only) rather than moved in afterwards: a move takes the kernel's threadgroup lock for
    /// writing, an RCU grace period (some 15 ms) on every launch.
    fn joins_at_clone(&self) -> bool;
    /// The directory holding `controller`'s files.
    fn dir_for<'a>(&self, joined: &'a [Joined], controller: &str) -> Option<&'a Path>;
    /// Kill every process in these directories (and the groups below them) and wait until
    /// they are gone.
    fn kill(&self, fs: &dyn Cgroupfs, joined: &[&Joined]) -> io::Result<()>;
    /// The processes killed for lack of memory.
    fn oom_kills(&self, fs: &dyn Cgroupfs, joined: &[Joined]) -> u64;
    /// Peak memory, CPU time and task peak, from the group's own accounting.
    fn stats(&self, fs: &dyn Cgroupfs, joined: &[Joined], usage: &mut Usage);
}

pub(super) fn backend(version: CgroupVersion) -> &'static dyn Backend {
    match version {
        CgroupVersion::V1 => &v1::V1,
        CgroupVersion::V2 => &v2::V2,
    }
}

/// What a cgroup operation was doing; it chooses the advice for its failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupOp {
    /// Learning who owns the launcher (/proc/self/stat).
    Owner,
    /// Opening the group, or its `tasks` file.
    Open,
    /// Making the group or a level of its parent.
    Create,
    /// Handing the controllers down to child groups.
    PassDown,
    /// Finding a limit's hierarchy or file.
    Find,
    /// Writing a limit.
    Write,
    /// Moving the sandbox into the group.
    Join,
    /// Killing what is left in the group.
    Kill,
    /// Removing the group.
    Remove,
}

/// A cgroup operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.what(), errno.desc())]
pub struct CgroupError {
    pub op: CgroupOp,
    pub action: String,
    /// The file or directory acted on; empty when the action says it all.
    pub path: PathBuf,
    pub errno: Errno,
    /// The manifest key behind it.
    pub key: &'static str,
}

impl CgroupError {
    /// What was being done, on which path.
    pub fn what(&self) -> String {
        if self.path.as_os_str().is_empty() {
            self.action.clone()
        } else {
            format!("{} {}", self.action, self.path.display())
        }
    }
}

fn failed(
    op: CgroupOp,
    action: impl Into<String>,
    path: &Path,
    key: &'static str,
) -> impl FnOnce(io::Error) -> CgroupError {
    let (action, path) = (action.into(), path.to_path_buf());
    move |error| CgroupError {
        op,
        action,
        path,
        errno: errno_of(&error),
        key,
    }
}

/// A sandbox's own group, removed (with anything still running in it) when dropped.
pub struct Group<'fs> {
    fs: &'fs dyn Cgroupfs,
    version: CgroupVersion,
    backend: &'static dyn Backend,
    joined: Vec<Joined>,
    /// The levels of `parent`, deepest first: removed at the end when empty and made by a
    /// `sandbox` run.
    parents: Vec<ParentLevel>,
    limits: CgroupLimits,
    stats: bool,
    /// The group's directory, for clone3's CLONE_INTO_CGROUP.
    clone_into: Option<std::fs::File>,
    /// Otherwise (v1) each hierarchy's `tasks` file, opened here so that the setup process
    /// only writes to it (see [`Group::enter`]).
    tasks: Vec<(PathBuf, std::fs::File)>,
}

impl<'fs> Group<'fs> {
    /// Make the group `<base>/<parent>/<name>-<owner>` in each hierarchy the plan names and
    /// write its limits. Groups under `parent` whose supervisor is gone are removed first.
    pub fn create(
        fs: &'fs dyn Cgroupfs,
        plan: &CgroupPlan,
        name: &str,
        owner: Owner,
    ) -> Result<Group<'fs>, CgroupError> {
        let mut group = Group {
            fs,
            version: plan.version,
            backend: backend(plan.version),
            joined: Vec::with_capacity(plan.hierarchies.len()),
            parents: Vec::new(),
            limits: plan.limits.clone(),
            stats: plan.stats,
            clone_into: None,
            tasks: Vec::new(),
        };
        let group_name = owner.group_name(name);
        for hierarchy in &plan.hierarchies {
            let parent = hierarchy.base.join(&plan.parent);
            sweep(fs, group.backend, &parent);
            let dir = parent.join(&group_name);
            group.make_group(&hierarchy.base, &plan.parent, &hierarchy.controllers, &dir)?;
            group.joined.push(Joined {
                dir,
                controllers: hierarchy.controllers.clone(),
            });
        }
        group.apply()?;
        if group.backend.joins_at_clone()
            && let Some(joined) = group.joined.first()
        {
            let dir = std::fs::File::open(&joined.dir).map_err(failed(
                CgroupOp::Open,
                "opening the group",
                &joined.dir,
                "cgroup",
            ))?;
            group.clone_into = Some(dir);
        } else {
            for joined in &group.joined {
                let tasks = joined.dir.join("tasks");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&tasks)
                    .map_err(failed(CgroupOp::Open, "opening", &tasks, "cgroup"))?;
                group.tasks.push((tasks, file));
            }
        }
        Ok(group)
    }

    /// The group's directory in each hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.joined.iter().map(|j| j.dir.clone()).collect()
    }

    /// The directory to clone the sandbox into, when the backend does that.
    pub fn clone_into(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.clone_into.as_ref().map(AsFd::as_fd)
    }

    /// Make the levels of `parent` that are missing, then the group `dir`. A concurrent run
    /// removes a level it leaves empty at any moment, also between our mkdirs: then the
    /// levels are made again.
    fn make_group(
        &mut self,
        base: &Path,
        parent: &str,
        controllers: &[String],
        dir: &Path,
    ) -> Result<(), CgroupError> {
        let mut attempts = 3;
        loop {
            let made = self.make_parents(base, parent, controllers).and_then(|()| {
                self.fs.mkdir(dir).map_err(failed(
                    CgroupOp::Create,
                    "creating the group",
                    dir,
                    "cgroup",
                ))
            });
            match made {
                Err(error) if error.errno == Errno::ENOENT && attempts > 1 => attempts -= 1,
                made => return made,
            }
        }
    }

    /// Make each missing level of `parent` below `base`, each handing the controllers down.
    fn make_parents(
        &mut self,
        base: &Path,
        parent: &str,
        controllers: &[String],
    ) -> Result<(), CgroupError> {
        let mut dir = base.to_path_buf();
        let pass_down = |dir: &Path, key| {
            self.backend
                .pass_down(self.fs, dir, controllers)
                .map_err(failed(
                    CgroupOp::PassDown,
                    "handing the controllers down to child groups in",
                    dir,
                    key,
                ))
        };
        pass_down(&dir, "cgroup")?;
        for level in parent.split('/') {
            dir.push(level);
            let made_here = match self.fs.mkdir(&dir) {
                // Unmarked (a kernel without user xattrs on cgroupfs, before 5.7), the level
                // is still removed by this run when empty.
                Ok(()) => {
                    let _ = self.fs.mark_made(&dir);
                    true
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => false,
                Err(error) => {
                    return Err(failed(
                        CgroupOp::Create,
                        "creating the parent group",
                        &dir,
                        "cgroup.parent",
                    )(error));
                }
            };
            self.parents.insert(
                0,
                ParentLevel {
                    dir: dir.clone(),
                    made_here,
                },
            );
            pass_down(&dir, "cgroup.parent")?;
        }
        Ok(())
    }

    fn apply(&self) -> Result<(), CgroupError> {
        let dir_for = |controller: &str| {
            self.backend
                .dir_for(&self.joined, controller)
                .ok_or_else(|| CgroupError {
                    op: CgroupOp::Find,
                    action: format!("finding the {controller} hierarchy of the group"),
                    path: PathBuf::new(),
                    errno: Errno::ENOENT,
                    key: "cgroup",
                })
        };
        let has = |controller: &str, file: &str| {
            dir_for(controller).is_ok_and(|dir| self.fs.exists(&dir.join(file)))
        };
        let writes = self
            .limits
            .writes(self.version, &has)
            .map_err(|unsupported| CgroupError {
                op: CgroupOp::Find,
                action: unsupported.why.to_string(),
                path: PathBuf::new(),
                errno: Errno::EOPNOTSUPP,
                key: unsupported.limit.setting(),
            })?;
        for write in writes {
            let file = dir_for(write.controller)?.join(write.file);
            self.fs.write(&file, &write.value).map_err(failed(
                CgroupOp::Write,
                format!("writing {} to", write.value),
                &file,
                write.limit.setting(),
            ))?;
        }
        Ok(())
    }

    /// Move the calling process (the sandbox's setup process, single-threaded, before it
    /// runs anything) into the group, unless it was cloned into it: on v1, by writing 0 to
    /// each hierarchy's `tasks`. Moving another process by pid, or through cgroup.procs, takes
    /// the kernel's global threadgroup lock for writing, which waits for an RCU grace period
    /// unless one passed recently: 0.2 ms back to back, up to 9 ms for a launch after a pause
    /// (measured with `up -v`); a thread moving itself takes no such lock (cgroup1
    /// `__cgroup1_procs_write`). The kernel checks the credentials the file was opened with,
    /// the supervisor's: the files are opened in [`Group::create`].
    pub fn enter(&self) -> Result<(), CgroupError> {
        for (path, file) in &self.tasks {
            let mut file = file;
            file.write_all(b"0").map_err(failed(
                CgroupOp::Join,
                "moving the sandbox into",
                path,
                "cgroup",
            ))?;
        }
        Ok(())
    }

    /// Read the accounting the plan asked for, then remove the group; the error says what
    /// could not be removed (the next run's sweep removes it).
    pub fn finish(mut self) -> (Usage, Result<(), CgroupError>) {
        let mut usage = Usage::default();
        if self.limits.get(CgroupLimit::Memory).is_some() {
            usage.oom_kills = self.backend.oom_kills(self.fs, &self.joined);
        }
        if self.stats {
            self.backend.stats(self.fs, &self.joined, &mut usage);
        }
        (usage, self.destroy())
    }

    fn destroy(&mut self) -> Result<(), CgroupError> {
        let joined = std::mem::take(&mut self.joined);
        let removed = remove(self.fs, self.backend, &joined);
        // Only empty levels go; another sandbox's group keeps its parent in place, and that
        // sandbox's run removes the level later.
        for level in std::mem::take(&mut self.parents) {
            if level.made_here || self.fs.made_by_sandbox(&level.dir) {
                let _ = self.fs.rmdir(&level.dir);
            }
        }
        removed
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        let _ = self.destroy();
    }
}

struct ParentLevel {
    dir: PathBuf,
    made_here: bool,
}

/// Remove the groups of supervisors that are gone (SIGKILLed, or a crashed host process).
fn sweep(fs: &dyn Cgroupfs, backend: &dyn Backend, parent: &Path) {
    let Ok(names) = fs.children(parent) else {
        return;
    };
    for name in names {
        if let Some(owner) = Owner::of_group(&name)
            && !fs.alive(owner)
        {
            let stale = Joined {
                dir: parent.join(&name),
                controllers: Vec::new(),
            };
            let _ = remove(fs, backend, std::slice::from_ref(&stale));
        }
    }
}

/// Remove a group's directories. An empty group (the common case: the pid namespace's end
/// killed everything) just goes; otherwise what is left is killed first, and groups the
/// sandbox made inside its own are removed before it.
fn remove(fs: &dyn Cgroupfs, backend: &dyn Backend, joined: &[Joined]) -> Result<(), CgroupError> {
    let mut busy = Vec::new();
    for j in joined {
        match fs.rmdir(&j.dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => busy.push(j),
            Err(error) => {
                return Err(failed(
                    CgroupOp::Remove,
                    "removing the group",
                    &j.dir,
                    "cgroup",
                )(error));
            }
        }
    }
    if busy.is_empty() {
        return Ok(());
    }
    backend.kill(fs, &busy).map_err(failed(
        CgroupOp::Kill,
        "killing what is left in",
        &busy[0].dir,
        "cgroup",
    ))?;
    busy.iter().try_for_each(|j| remove_tree(fs, &j.dir))
}

fn remove_tree(fs: &dyn Cgroupfs, dir: &Path) -> Result<(), CgroupError> {
    for child in fs.children(dir).unwrap_or_default() {
        remove_tree(fs, &dir.join(child))?;
    }
    match fs.rmdir(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(failed(
            CgroupOp::Remove,
            "removing the group",
            dir,
            "cgroup",
        )(error)),
        _ => Ok(()),
    }
}

/// The processes in these directories and the groups below them.
fn processes(fs: &dyn Cgroupfs, dirs: &[&Path]) -> io::Result<Vec<i32>> {
    let mut pids = Vec::new();
    let mut pending: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(dir) = pending.pop() {
        match fs.read(&dir.join("cgroup.procs")) {
            Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        }
        pending.extend(fs.children(&dir)?.into_iter().map(|c| dir.join(c)));
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// The value after `key` on a `key value` line of a flat-keyed file (memory.events, cpu.stat).
pub(super) fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

pub(super) fn read_number(fs: &dyn Cgroupfs, file: &Path) -> Option<u64> {
    fs.read(file).ok()?.trim().parse().ok()
}

/// Kill the processes listed in `dirs` (and below) until none is left: each is pinned with a
/// pidfd, checked to be still listed (its pid cannot have been reused while it lives), then
/// sent SIGKILL through the pidfd. `freezer` files, when given, hold the group still while
/// the signals go out, so nothing forks in between (v1's freeze, kill, thaw).
pub(super) fn kill_listed(
    fs: &dyn Cgroupfs,
    dirs: &[&Path],
    freezer: &[PathBuf],
) -> io::Result<()> {
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let listed = processes(fs, dirs)?;
        if listed.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        for state in freezer {
            let _ = fs.write(state, "FROZEN");
        }
        let pinned: Vec<_> = listed
            .iter()
            .filter_map(|&pid| sys::pidfd_open(pid).ok().map(|fd| (pid, fd)))
            .collect();
        let still = processes(fs, dirs)?;
        let targets: Vec<_> = pinned
            .into_iter()
            .filter(|(pid, _)| still.binary_search(pid).is_ok())
            .map(|(_, fd)| fd)
            .collect();
        for fd in &targets {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        }
        for state in freezer {
            let _ = fs.write(state, "THAWED");
        }
        // A pidfd polls readable once its process has exited.
        let mut waiting = targets;
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds: Vec<_> = waiting
                .iter()
                .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::TimedOut)),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
            let exited: Vec<bool> = fds
                .iter()
                .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let mut exited = exited.into_iter();
            waiting.retain(|_| !exited.next().unwrap_or(false));
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
