//! Records of sandboxes: `NAME.json` per name, and `NAME.log`, the command's output, when
//! detached.
//!
//! The supervisor holds a write lock on its record file for the sandbox's whole life (an open
//! file description's, see [`crate::lockfile::ofd`]), so whether a sandbox runs is whether its
//! lock is held: no pid guessing, safe from pid reuse. A
//! name runs once at a time. The record is written before the command starts (a sandbox
//! nobody could see must not run); when the command ends, a second line says how, and the
//! lock is let go. A detached sandbox's record and log then stay (`ps --all`, `logs`, `wait`)
//! until `rm`, `down` or a new run of the name removes them; a foreground run's go at once.
//! A record whose lock is free and that says no end belongs to a supervisor that was killed
//! (a stale record): the next command that meets it cleans it.
//!
//! One file per name, not a folder of lock and record: where /run is on disk, every create,
//! rename and unlink is a journaled directory change, and a run now makes two, not seven.
//!
//! The folder is checked before use ([`crate::folder`]): another user who could write it could
//! plant a record naming any process. And before a process a record names is signalled or
//! joined, it is shown to be that sandbox's (see [`Store::processes`]).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

use crate::folder::{self, FolderError, Purpose};
use crate::lockfile::ofd;
use crate::plan::Plan;
use crate::sys::raw as sys;

/// The state folder, as messages name it.
pub const STATE_FOLDER: Purpose = Purpose {
    name: "state folder",
    setting: Some("SANDBOX_STATE_DIR"),
};

/// The folder of all records: $SANDBOX_STATE_DIR when set, /run/sandbox as root,
/// $XDG_RUNTIME_DIR/sandbox rootless, or /tmp/sandbox-UID (owned by the user, mode 0700) when
/// there is no runtime dir.
pub fn state_dir(uid: u32, env: &std::collections::BTreeMap<String, String>) -> PathBuf {
    if let Some(dir) = env
        .get("SANDBOX_STATE_DIR")
        .filter(|d| Path::new(d).is_absolute())
    {
        return PathBuf::from(dir);
    }
    if uid == 0 {
        return PathBuf::from("/run/sandbox");
    }
    match env
        .get("XDG_RUNTIME_DIR")
        .filter(|d| Path::new(d).is_absolute())
    {
        Some(runtime) => Path::new(runtime).join("sandbox"),
        None => PathBuf::from(format!("/tmp/sandbox-{uid}")),
    }
}

/// What `sandbox ps` and `sandbox exec` need to know about a running sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// Unique per run, so a record is never confused with a later run of the same name.
    pub id: String,
    /// The supervisor (`sandbox up`) process.
    pub supervisor_pid: i32,
    /// The sandbox's pid 1 (or the command itself without a pid namespace), as the host sees it.
    pub init_pid: i32,
    pub manifest: PathBuf,
    /// Seconds since the epoch.
    pub started: u64,
    /// The sandbox's cgroups, one per hierarchy used, when it has limits.
    pub cgroups: Vec<PathBuf>,
    /// Addresses inside the sandbox's network namespace, when it has some beyond lo.
    pub addresses: Vec<String>,
    /// Init's start time (`/proc/PID/stat` field 22, clock ticks since boot): with its parent,
    /// the supervisor, what shows a pid still names this sandbox's init. Both are in the one
    /// /proc file of init that every process may read: init's others are closed (see
    /// `exec::steps::pid`).
    #[serde(default)]
    pub init_started: u64,
    /// Where the command's output goes when detached.
    pub log: Option<PathBuf>,
    /// The plan the sandbox runs, so `exec` applies the same environment and security.
    pub plan: Plan,
}

/// How a sandbox ended: the second line of its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// The status `sandbox up` returned: the command's, 128+N for a signal, 124 on timeout.
    pub exit_code: u8,
    /// Seconds since the epoch.
    pub ended: u64,
}

/// Open records under a state folder.
pub struct Store {
    dir: PathBuf,
}

/// Held while a sandbox runs; dropping it releases the name, and removes the record unless
/// [`Claim::end`] kept it.
pub struct Claim {
    name: String,
    /// `NAME.json`: the record, and the lock held for the sandbox's life.
    path: PathBuf,
    file: Option<File>,
    /// Bytes of the record written, where the line of its end goes.
    written: u64,
    keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("a sandbox named `{0}` is already running")]
    Running(String),
    #[error("no sandbox named `{0}` is running")]
    NotRunning(String),
    #[error("no sandbox named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the record of `{0}` is unreadable: {1}")]
    Corrupt(String, String),
    #[error(
        "the record of `{name}` names pid {pid} as its {role}, but that process is not the sandbox's: nothing was signalled"
    )]
    NotItsProcess {
        name: String,
        pid: i32,
        role: &'static str,
    },
    #[error("`{0}` ended without saying how: its supervisor was killed")]
    NoEnd(String),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError + use<> {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// The state of one record.
pub enum Entry {
    Running(Record),
    /// Claimed by a supervisor that has not written its record yet.
    Starting,
    /// Its command ended; the record stays until removed.
    Exited(Record, Ended),
    /// The supervisor is gone without a word; the record (if readable) says what may be left
    /// to clean.
    Stale(Option<Record>),
}

impl Store {
    /// The records in `dir`, made (0700) when missing; refused unless it is the caller's own
    /// (see [`crate::folder`]).
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        Ok(Store {
            dir: folder::own(dir, 0o700, STATE_FOLDER)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Claim `name` for a new sandbox: fails when one by that name runs. The record of an
    /// earlier run that ended is replaced; a stale one is handed back so the caller can clean
    /// what it names.
    pub fn claim(&self, name: &str) -> Result<(Claim, Option<Record>), StateError> {
        let path = self.record_path(name);
        let (file, size) = loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | crate::input::OPEN_FLAGS)
                .open(&path)
                .map_err(io("opening", &path))?;
            let file = crate::input::regular(file, &path)?;
            match ofd::try_lock(&file) {
                Ok(true) => {}
                Ok(false) => return Err(StateError::Running(name.to_string())),
                Err(errno) => return Err(io("locking", &path)(std::io::Error::from(errno))),
            }
            // The name's last holder may have removed the file between our open and our
            // lock: try again on the one the path names.
            if let Some(held) = crate::lockfile::still_named(&file, &path) {
                break (file, held.len());
            }
        };
        // A record left by an earlier run; emptied, the file is this run's.
        let stale = (size > 0).then(|| {
            let earlier = parse_record(&file, &path).ok();
            let _ = file.set_len(0);
            earlier.and_then(|(record, ended)| ended.is_none().then_some(record))
        });
        Ok((
            Claim {
                name: name.to_string(),
                path,
                file: Some(file),
                written: 0,
                keep: false,
            },
            stale.flatten(),
        ))
    }

    /// Claim `name`; when `exact` is false and it runs already, the first free one of
    /// `name-2`, `name-3`, ... instead (the default name of a manifest run twice).
    pub fn claim_free(
        &self,
        name: &str,
        exact: bool,
    ) -> Result<(Claim, Option<Record>), StateError> {
        match self.claim(name) {
            Err(StateError::Running(_)) if !exact => {}
            other => return other,
        }
        for n in 2..1000 {
            let suffix = format!("-{n}");
            let base: String = name.chars().take(63 - suffix.len()).collect();
            match self.claim(&format!("{base}{suffix}")) {
                Err(StateError::Running(_)) => continue,
                other => return other,
            }
        }
        Err(StateError::Running(name.to_string()))
    }

    /// Every record, by name.
    pub fn list(&self) -> Vec<(String, Entry)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Entry)> = entries
            .filter_map(|entry| {
                let file_name = entry.ok()?.file_name().into_string().ok()?;
                let name = file_name.strip_suffix(".json")?;
                Some((name.to_string(), self.entry(name)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Open the record of `name`, for writing too when the lock is to be taken.
    fn open_record(&self, name: &str, write: bool) -> Result<File, StateError> {
        let path = self.record_path(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            // A record planted as a FIFO must not make `ps` wait for a writer.
            .custom_flags(libc::O_NOFOLLOW | crate::input::OPEN_FLAGS)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StateError::NotFound(name.to_string()),
                _ => io("opening", &path)(e),
            })?;
        Ok(crate::input::regular(file, &path)?)
    }

    /// The state of one name.
    pub fn entry(&self, name: &str) -> Entry {
        let path = self.record_path(name);
        let Ok(file) = self.open_record(name, false) else {
            return Entry::Stale(None);
        };
        // Held (or unknowable): the supervisor runs. Its record may not be written yet.
        if ofd::held(&file).unwrap_or(true) {
            return match parse_record(&file, &path) {
                Ok((record, _)) => Entry::Running(record),
                Err(_) => Entry::Starting,
            };
        }
        match parse_record(&file, &path) {
            Ok((record, Some(ended))) => Entry::Exited(record, ended),
            Ok((record, None)) => Entry::Stale(Some(record)),
            Err(_) => Entry::Stale(None),
        }
    }

    pub fn running(&self, name: &str) -> Result<Record, StateError> {
        match self.entry(name) {
            Entry::Running(record) => Ok(record),
            _ => Err(StateError::NotRunning(name.to_string())),
        }
    }

    /// The record of a sandbox that runs or ended (with how it ended).
    pub fn recorded(&self, name: &str) -> Result<(Record, Option<Ended>), StateError> {
        match self.entry(name) {
            Entry::Running(record) => Ok((record, None)),
            Entry::Exited(record, ended) => Ok((record, Some(ended))),
            Entry::Starting => Err(StateError::NotRunning(name.to_string())),
            Entry::Stale(_) => Err(StateError::NotFound(name.to_string())),
        }
    }

    /// Forget a sandbox that ended (or whose supervisor is gone): its record and log go.
    pub fn forget(&self, name: &str) -> Result<(), StateError> {
        let path = self.record_path(name);
        let file = self.open_record(name, true)?;
        match ofd::try_lock(&file) {
            Ok(true) if crate::lockfile::still_named(&file, &path).is_some() => {
                let _ = std::fs::remove_file(path.with_extension("log"));
                std::fs::remove_file(&path).map_err(io("removing", &path))
            }
            Ok(true) => Err(StateError::NotFound(name.to_string())),
            Ok(false) => Err(StateError::Running(name.to_string())),
            Err(errno) => Err(io("locking", &path)(std::io::Error::from(errno))),
        }
    }

    /// Block until the sandbox `name` ended, then say how. Its supervisor writes the end
    /// before it exits, so waiting is waiting for that exit, on its pidfd; before the record
    /// names it (the sandbox starting), for its lock. No polling, and no lock held that could
    /// make a new run of the name fail. The end is read from the file opened first: a
    /// foreground run removes its path as it ends.
    pub fn wait(&self, name: &str) -> Result<Ended, StateError> {
        let path = self.record_path(name);
        let file = self.open_record(name, false)?;
        let locking = |errno: Errno| io("locking", &path)(std::io::Error::from(errno));
        if ofd::held(&file).map_err(locking)? {
            match parse_record(&file, &path) {
                Ok((record, _)) => {
                    if let Some(supervisor) = supervisor_of(&record, &file)? {
                        let mut exit = [PollFd::new(supervisor.as_fd(), PollFlags::POLLIN)];
                        while let Err(Errno::EINTR) = poll(&mut exit, PollTimeout::NONE) {}
                    }
                }
                Err(_) => ofd::wait_shared(&file).map_err(locking)?,
            }
        }
        match parse_record(&file, &path) {
            Ok((_, Some(ended))) => Ok(ended),
            Ok((_, None)) => Err(StateError::NoEnd(name.to_string())),
            Err(_) => Err(StateError::NotFound(name.to_string())),
        }
    }
}

impl Claim {
    /// The name claimed (see [`Store::claim_free`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where a detached sandbox's output goes: beside the record, removed with it.
    pub fn log_path(&self) -> PathBuf {
        self.path.with_extension("log")
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("held until dropped")
    }

    /// Write the record, once: until then the file is empty and readers see the sandbox as
    /// starting (a reader that meets a half-written record does too).
    pub fn write(&mut self, record: &Record) -> Result<(), StateError> {
        let mut text = serde_json::to_vec(record).expect("records serialize");
        text.push(b'\n');
        self.file()
            .write_all_at(&text, 0)
            .map_err(io("writing", &self.path))?;
        self.written = text.len() as u64;
        Ok(())
    }

    /// The command ended with `exit_code`: write so after the record, for `wait` and
    /// `ps --all`, and let go of the name. With `keep` (a detached run) the record and log
    /// stay until removed; otherwise they go now.
    pub fn end(mut self, exit_code: u8, keep: bool) {
        if self.written == 0 {
            return;
        }
        let ended = Ended {
            exit_code,
            ended: now(),
        };
        let mut line = serde_json::to_vec(&ended).expect("serializes");
        line.push(b'\n');
        // Unwritten, the record reads as stale and is cleaned like one.
        let written = self.file().write_all_at(&line, self.written).is_ok();
        self.keep = keep && written;
    }
}

impl Drop for Claim {
    /// The record goes (unless kept), then the lock: a concurrent claim either fails on the
    /// held lock or makes a new file. The lock is let go explicitly, not with this descriptor:
    /// the sandbox's init shares it and may still be exiting.
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(self.log_path());
        }
        if let Some(file) = self.file.take() {
            let _ = ofd::unlock(&file);
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The record, and the line of its end when there is one.
fn parse_record(file: &File, path: &Path) -> Result<(Record, Option<Ended>), StateError> {
    use std::io::{Read, Seek};
    // A record holds the plan: tens of KiB for a large manifest.
    const LIMIT: u64 = 16 << 20;
    let mut text = Vec::new();
    let mut reader = file;
    reader
        .rewind()
        .and_then(|()| reader.take(LIMIT).read_to_end(&mut text))
        .map_err(io("reading", path))?;
    let mut lines = text.split(|&b| b == b'\n');
    let record = serde_json::from_slice(lines.next().unwrap_or_default())
        .map_err(|e| StateError::Corrupt(path.display().to_string(), e.to_string()))?;
    let ended = lines
        .next()
        .and_then(|line| serde_json::from_slice(line).ok());
    Ok((record, ended))
}

/// The processes of a running sandbox, each shown to be its own.
pub struct Processes {
    pub supervisor: OwnedFd,
    /// `None` once init is gone (the sandbox is ending).
    pub init: Option<OwnedFd>,
}

impl Store {
    /// Pidfds of the supervisor and init of the sandbox `record` describes, once each is shown
    /// to be its own: the supervisor holds this very record file open (a record planted or
    /// outdated names a process that does not, whatever else it forges), and init is its child,
    /// started at the recorded time. `None` when the supervisor is gone.
    pub fn processes(&self, record: &Record) -> Result<Option<Processes>, StateError> {
        let file = self.open_record(&record.name, false)?;
        let Some(supervisor) = supervisor_of(record, &file)? else {
            return Ok(None);
        };
        let init = its_process(record.init_pid, |pid| {
            stat_of(pid).is_some_and(|stat| {
                stat.parent == record.supervisor_pid && stat.started == record.init_started
            })
        })
        .map_err(|()| StateError::NotItsProcess {
            name: record.name.clone(),
            pid: record.init_pid,
            role: "init",
        })?;
        Ok(Some(Processes { supervisor, init }))
    }
}

/// A pidfd of the supervisor `record` names, once it is shown to hold `file`, the record, open;
/// `None` when it is gone.
fn supervisor_of(record: &Record, file: &File) -> Result<Option<OwnedFd>, StateError> {
    let Ok(meta) = file.metadata() else {
        return Ok(None);
    };
    let holds_record = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::metadata(fd.path())
                    .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
            })
        })
    };
    match its_process(record.supervisor_pid, holds_record) {
        Ok(supervisor) => Ok(supervisor),
        // A supervisor lets go of the lock before it closes the record and exits: without
        // the lock, it is ending, not another process.
        Err(()) if !ofd::held(file).unwrap_or(true) => Ok(None),
        Err(()) => Err(StateError::NotItsProcess {
            name: record.name.clone(),
            pid: record.supervisor_pid,
            role: "supervisor",
        }),
    }
}

/// A pidfd of `pid` when `is_it` says it is the process meant; `Ok(None)` when it is gone.
/// `is_it` looks in /proc once the pidfd is held, and the process is seen alive after: so what
/// it saw was that process, not a later one given the same pid, and the pidfd reaches no other.
fn its_process(pid: i32, is_it: impl Fn(i32) -> bool) -> Result<Option<OwnedFd>, ()> {
    let pidfd = match sys::pidfd_open(pid) {
        Ok(pidfd) => pidfd,
        Err(Errno::ESRCH) => return Ok(None),
        // A pid no process can have (0, negative): nothing the launcher wrote.
        Err(_) => return Err(()),
    };
    let it = is_it(pid);
    match sys::pidfd_send_signal(pidfd.as_fd(), 0) {
        Err(Errno::ESRCH) => Ok(None),
        _ if it => Ok(Some(pidfd)),
        _ => Err(()),
    }
}

/// What /proc/PID/stat says of a process that identifies it: its parent and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 4.
    pub parent: i32,
    /// Field 22, in clock ticks since boot.
    pub started: u64,
}

/// [`ProcStat`] of `pid`; `None` when it is gone.
pub fn stat_of(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let field = |n| crate::sys::proc_stat_field(&stat, n);
    Some(ProcStat {
        parent: field(4)?.parse().ok()?,
        started: field(22)?.parse().ok()?,
    })
}

/// A fresh id for a run: random, from the kernel.
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = crate::sys::raw::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Record {
        Record {
            name: name.into(),
            id: new_id(),
            supervisor_pid: std::process::id() as i32,
            init_pid: 1,
            manifest: "/p/sandbox.toml".into(),
            started: 0,
            cgroups: vec![],
            addresses: vec![],
            init_started: 0,
            log: None,
            plan: test_plan(),
        }
    }

    /// A store in `dir` and a claim of `name` whose record is written, as at a sandbox's start.
    fn recorded_run(dir: &Path, name: &str) -> (Store, Claim) {
        let store = Store::open(dir).unwrap();
        let (mut claim, _) = store.claim(name).unwrap();
        claim.write(&record(name)).unwrap();
        (store, claim)
    }

    pub(super) fn test_plan() -> Plan {
        use crate::host::{Caller, FixedFacts, HostFacts};
        let vars = crate::manifest::vars::Vars::default();
        let loaded = crate::manifest::load_str(
            Path::new("/p/sandbox.toml"),
            "[rootfs]\nhost = true\n",
            &vars,
        );
        let caller = Caller {
            uid: 1000,
            gid: 1000,
            euid: 1000,
            user: None,
            home: None,
            env: Default::default(),
        };
        let host = HostFacts::fixed(caller, FixedFacts::default());
        let invocation = crate::validate::Invocation::inspecting();
        crate::validate::validate(&loaded, &host, &invocation)
            .plan
            .expect("valid")
    }

    #[test]
    fn a_name_runs_once_and_is_free_again_when_the_claim_drops() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let (mut claim, stale) = store.claim("web").unwrap();
        assert!(stale.is_none());
        assert!(matches!(store.claim("web"), Err(StateError::Running(_))));
        assert!(matches!(store.entry("web"), Entry::Starting));
        claim.write(&record("web")).unwrap();
        let running = store.running("web").unwrap();
        assert_eq!(running.name, "web");
        assert_eq!(running.plan.process.argv, ["/bin/true"]);
        drop(claim);
        assert!(
            !store.dir().join("web.json").exists(),
            "the record goes with the sandbox"
        );
        assert!(store.claim("web").is_ok());
    }

    #[test]
    fn a_record_whose_supervisor_is_gone_is_stale_and_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // What a SIGKILLed supervisor leaves: a record whose lock nobody holds.
        let path = store.dir().join("db.json");
        std::fs::write(&path, serde_json::to_vec(&record("db")).unwrap()).unwrap();
        assert!(matches!(store.entry("db"), Entry::Stale(Some(_))));
        assert!(store.running("db").is_err());
        let (_claim, stale) = store.claim("db").unwrap();
        assert_eq!(stale.unwrap().name, "db", "the caller learns what to clean");
        assert!(
            matches!(store.entry("db"), Entry::Starting),
            "the old record is gone, the new one not written"
        );
    }

    #[test]
    fn a_default_name_taken_gets_a_suffix_and_a_given_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (first, _) = store.claim_free("proj", false).unwrap();
        let (second, _) = store.claim_free("proj", false).unwrap();
        let (third, _) = store.claim_free("proj", false).unwrap();
        assert_eq!(
            (first.name(), second.name(), third.name()),
            ("proj", "proj-2", "proj-3")
        );
        assert!(matches!(
            store.claim_free("proj", true),
            Err(StateError::Running(_))
        ));
        drop(second);
        assert_eq!(
            store.claim_free("proj", false).unwrap().0.name(),
            "proj-2",
            "freed names are reused"
        );
        let long = "a".repeat(63);
        let _held = store.claim_free(&long, false).unwrap();
        assert_eq!(
            store.claim_free(&long, false).unwrap().0.name().len(),
            63,
            "still a valid name"
        );
    }

    #[test]
    fn claims_racing_a_finishing_sandbox_for_one_name_hold_it_one_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let holders = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..500 {
                        match store.claim("same") {
                            Ok(claim) => {
                                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0);
                                std::thread::yield_now();
                                holders.fetch_sub(1, Ordering::SeqCst);
                                drop(claim);
                            }
                            Err(StateError::Running(_)) => {}
                            Err(other) => panic!("{other}"),
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn a_lock_taken_on_a_record_removed_meanwhile_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let path = store.record_path("x");
        let (first, _) = store.claim("x").unwrap();
        // A racing claim opened the file, then the holder ended before it took the lock.
        let late = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        drop(first);
        assert!(ofd::try_lock(&late).unwrap());
        let (_second, _) = store.claim("x").expect("the name is free");
        assert!(
            crate::lockfile::still_named(&late, &path).is_none(),
            "the racer must retry"
        );
        assert!(
            ofd::held(&File::open(&path).unwrap()).unwrap(),
            "the second claim holds the file the path names"
        );
    }

    #[test]
    fn records_are_forgotten_only_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (claim, _) = store.claim("a").unwrap();
        assert!(
            matches!(store.forget("a"), Err(StateError::Running(_))),
            "a running sandbox is left alone"
        );
        std::mem::forget(claim);
        std::fs::write(store.dir().join("b.json"), "").unwrap();
        std::fs::write(store.dir().join("b.log"), "output").unwrap();
        store.forget("b").unwrap();
        assert!(!store.dir().join("b.log").exists(), "its log goes with it");
        assert!(matches!(store.forget("b"), Err(StateError::NotFound(_))));
        assert_eq!(
            store
                .list()
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn an_ended_detached_run_is_kept_with_its_end_until_forgotten_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (store, claim) = recorded_run(dir.path(), "job");
        std::fs::write(claim.log_path(), "output").unwrap();
        claim.end(3, true);
        let Entry::Exited(exited, ended) = store.entry("job") else {
            panic!("not listed as exited");
        };
        assert_eq!((exited.name.as_str(), ended.exit_code), ("job", 3));
        assert_eq!(
            store.wait("job").unwrap(),
            ended,
            "an ended one answers at once"
        );
        assert!(store.running("job").is_err());
        assert!(store.recorded("job").unwrap().1.is_some());
        let (again, stale) = store.claim("job").expect("a new run replaces it");
        assert!(stale.is_none(), "an ended run leaves nothing to clean");
        drop(again);
        assert!(matches!(store.entry("job"), Entry::Stale(None)));
        assert!(!store.dir().join("job.log").exists());
    }

    #[test]
    fn wait_answers_for_an_ended_run_and_a_killed_one_and_waits_out_a_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Claimed, not yet written: the waiter waits on the lock (the run's end it waits
        // for on the supervisor's pidfd is the live tests'). Dropped unwritten, nothing ran.
        let (starting, _) = store.claim("st").unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| store.wait("st"));
            drop(starting);
            assert!(matches!(
                waiter.join().unwrap(),
                Err(StateError::NotFound(_))
            ));
        });
        // A record whose supervisor was killed says no end.
        std::fs::write(
            store.dir().join("killed.json"),
            serde_json::to_vec(&record("killed")).unwrap(),
        )
        .unwrap();
        assert!(matches!(store.wait("killed"), Err(StateError::NoEnd(_))));
    }

    #[test]
    fn a_record_is_believed_only_for_the_processes_of_its_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (mut claim, _) = store.claim("me").unwrap();
        // This process holds the record open, as a supervisor does; a child of it is init.
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let mut mine = record("me");
        mine.init_pid = child.id() as i32;
        mine.init_started = stat_of(mine.init_pid).unwrap().started;
        claim.write(&mine).unwrap();
        let processes = store.processes(&mine).unwrap().expect("both live");
        assert!(processes.init.is_some());

        // Another record, locked as a live one is (by this process), names a process that
        // does not hold it open.
        let mut planted = mine.clone();
        planted.name = "other".into();
        planted.supervisor_pid = mine.init_pid;
        let path = store.dir().join("other.json");
        std::fs::write(&path, serde_json::to_vec(&planted).unwrap()).unwrap();
        let held = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(ofd::try_lock(&held).unwrap());
        assert!(matches!(
            store.processes(&planted),
            Err(StateError::NotItsProcess {
                role: "supervisor",
                ..
            })
        ));
        // A process started at another time (a pid reused), or not the supervisor's child, is
        // not the sandbox's init.
        let mut moved = mine.clone();
        moved.init_started += 1;
        assert!(matches!(
            store.processes(&moved),
            Err(StateError::NotItsProcess { role: "init", .. })
        ));
        moved = mine.clone();
        moved.init_pid = 1;
        assert!(store.processes(&moved).is_err());
        moved.supervisor_pid = 0;
        assert!(
            store.processes(&moved).is_err(),
            "pid 0 names no supervisor"
        );

        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            store.processes(&mine).unwrap().unwrap().init.is_none(),
            "init is gone"
        );
    }

    #[test]
    fn the_parent_and_start_of_a_process_are_read_from_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let stat = stat_of(child.id() as i32).unwrap();
        assert_eq!(stat.parent, std::process::id() as i32);
        let own = stat_of(std::process::id() as i32).unwrap();
        assert!(stat.started >= own.started, "started after its parent");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(stat_of(-5), None);
    }

    #[test]
    fn the_state_dir_follows_the_caller() {
        let env: std::collections::BTreeMap<String, String> =
            [("XDG_RUNTIME_DIR".to_string(), "/run/user/1000".to_string())]
                .into_iter()
                .collect();
        assert_eq!(state_dir(0, &env), Path::new("/run/sandbox"));
        assert_eq!(state_dir(1000, &env), Path::new("/run/user/1000/sandbox"));
        assert_eq!(
            state_dir(1000, &Default::default()),
            Path::new("/tmp/sandbox-1000")
        );
        let mut custom = env.clone();
        custom.insert("SANDBOX_STATE_DIR".into(), "/srv/state".into());
        assert_eq!(state_dir(0, &custom), Path::new("/srv/state"));
    }
}
