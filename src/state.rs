//! Records of running sandboxes: one folder per name, holding `state.json`, the command's
//! `log` when detached, and a `lock` file.
//!
//! The supervisor holds an exclusive flock on `lock` for the sandbox's whole life, so whether a
//! sandbox runs is whether its lock is held: no pid guessing, safe from pid reuse. A name runs
//! once at a time, and a record whose lock is free belongs to a supervisor that is gone (a
//! stale record): the next command that meets it cleans it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;

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
    /// `ns:[inode]` of init's namespaces made by the clone (the cgroup and time namespaces
    /// come later in setup), by name: `exec` checks the pid still names this sandbox.
    pub namespaces: Vec<(String, String)>,
    /// Where the command's output goes when detached.
    pub log: Option<PathBuf>,
    /// The plan the sandbox runs, so `exec` applies the same environment and security.
    pub plan: Plan,
}

/// Open records under a state folder.
pub struct Store {
    dir: PathBuf,
}

/// Held while a sandbox runs; dropping it releases the name.
pub struct Claim {
    name: String,
    dir: PathBuf,
    _lock: Flock<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("a sandbox named `{0}` is already running")]
    Running(String),
    #[error("no sandbox named `{0}` is running")]
    NotRunning(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the record of `{0}` is unreadable: {1}")]
    Corrupt(String, String),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError + use<> {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// The state of one record folder.
pub enum Entry {
    Running(Record),
    /// Claimed by a supervisor that has not written its record yet.
    Starting,
    /// The supervisor is gone; the record (if readable) says what may be left to clean.
    Stale(Option<Record>),
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure_dir(&self) -> Result<(), StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io("creating", &self.dir))
    }

    fn open_lock(path: &Path) -> Result<File, StateError> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io("opening", path))
    }

    /// Claim `name` for a new sandbox: fails when one by that name runs. A stale record is
    /// handed back so the caller can clean what it names before the claim replaces it.
    pub fn claim(&self, name: &str) -> Result<(Claim, Option<Record>), StateError> {
        self.ensure_dir()?;
        let folder = self.folder(name);
        let lock_path = folder.join("lock");
        let lock = loop {
            match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("creating", &folder)(e)),
            }
            // The sandbox that held the name last may remove its folder between our mkdir and
            // our open: make it again.
            let file = match Self::open_lock(&lock_path) {
                Err(StateError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                other => other?,
            };
            let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((_, Errno::EWOULDBLOCK)) => return Err(StateError::Running(name.to_string())),
                Err((_, errno)) => return Err(io("locking", &folder)(std::io::Error::from(errno))),
            };
            // A stale record removed between our open and our lock leaves us holding a lock
            // on an unlinked file: try again on the file the path now names.
            if same_file(&lock, &lock_path) {
                break lock;
            }
        };
        let stale = read_record(&folder).ok();
        let _ = std::fs::remove_file(folder.join("state.json"));
        Ok((
            Claim {
                name: name.to_string(),
                dir: folder,
                _lock: lock,
            },
            stale,
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

    /// Every record, running or stale, by name.
    pub fn list(&self) -> Vec<(String, Entry)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Entry)> = entries
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                entry
                    .file_type()
                    .ok()?
                    .is_dir()
                    .then(|| (name.clone(), self.entry(&name)))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The state of one name.
    pub fn entry(&self, name: &str) -> Entry {
        let folder = self.folder(name);
        if is_locked(&folder.join("lock")) {
            match read_record(&folder) {
                Ok(record) => Entry::Running(record),
                Err(_) => Entry::Starting,
            }
        } else {
            Entry::Stale(read_record(&folder).ok())
        }
    }

    pub fn running(&self, name: &str) -> Result<Record, StateError> {
        match self.entry(name) {
            Entry::Running(record) => Ok(record),
            Entry::Starting | Entry::Stale(_) => Err(StateError::NotRunning(name.to_string())),
        }
    }

    /// Remove a stale record's folder (only when its lock is free).
    pub fn remove_stale(&self, name: &str) -> bool {
        let folder = self.folder(name);
        let Ok(lock) = Self::open_lock(&folder.join("lock")) else {
            return false;
        };
        match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
            Ok(_held) => std::fs::remove_dir_all(&folder).is_ok(),
            Err(_) => false,
        }
    }
}

impl Claim {
    /// The name claimed (see [`Store::claim_free`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn folder(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Write the record atomically (a temporary file renamed over the old one).
    pub fn write(&self, record: &Record) -> Result<(), StateError> {
        let path = self.dir.join("state.json");
        let temporary = self.dir.join("state.json.tmp");
        let mut file = File::create(&temporary).map_err(io("writing", &temporary))?;
        let text = serde_json::to_vec_pretty(record).expect("records serialize");
        file.write_all(&text).map_err(io("writing", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(io("renaming", &path))
    }
}

impl Drop for Claim {
    /// The sandbox ended: its record goes (the log too, unless it is kept for `logs`). The
    /// lock is released after, so a concurrent `up` never sees a half-removed folder as free.
    fn drop(&mut self) {
        for file in ["state.json", "state.json.tmp", "log"] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let _ = std::fs::remove_file(self.dir.join("lock"));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn is_locked(lock: &Path) -> bool {
    let Ok(file) = File::open(lock) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_free) => false,
        Err(_) => true,
    }
}

fn read_record(folder: &Path) -> Result<Record, StateError> {
    let path = folder.join("state.json");
    let text = std::fs::read(&path).map_err(io("reading", &path))?;
    serde_json::from_slice(&text)
        .map_err(|e| StateError::Corrupt(folder.display().to_string(), e.to_string()))
}

/// The namespaces made by the sandbox's clone, which identify it from its start.
pub const CLONE_NAMESPACES: [&str; 6] = ["user", "mnt", "pid", "net", "uts", "ipc"];

/// The namespaces of a process, `ns:[inode]` by name, as /proc shows them.
pub fn namespaces_of(pid: i32, kinds: &[&str]) -> Vec<(String, String)> {
    kinds
        .iter()
        .copied()
        .filter_map(|ns| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok()?;
            Some((ns.to_string(), link.to_string_lossy().into_owned()))
        })
        .collect()
}

/// A fresh id for a run: random, from the kernel.
pub fn new_id() -> String {
    let mut bytes = [0u8; 8];
    let _ =
        File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same_file(held: &Flock<File>, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (held.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
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
            namespaces: namespaces_of(std::process::id() as i32, &CLONE_NAMESPACES),
            log: None,
            plan: test_plan(),
        }
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
        let store = Store::new(dir.path().join("state"));
        let (claim, stale) = store.claim("web").unwrap();
        assert!(stale.is_none());
        assert!(matches!(store.claim("web"), Err(StateError::Running(_))));
        assert!(matches!(store.entry("web"), Entry::Starting));
        claim.write(&record("web")).unwrap();
        let running = store.running("web").unwrap();
        assert_eq!(running.name, "web");
        assert_eq!(running.plan.process.argv, ["/bin/true"]);
        drop(claim);
        assert!(
            !store.dir().join("web").exists(),
            "the record goes with the sandbox"
        );
        assert!(store.claim("web").is_ok());
    }

    #[test]
    fn a_record_whose_supervisor_is_gone_is_stale_and_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        // What a SIGKILLed supervisor leaves: a record and a lock nobody holds.
        let folder = dir.path().join("db");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("lock"), "").unwrap();
        std::fs::write(
            folder.join("state.json"),
            serde_json::to_vec(&record("db")).unwrap(),
        )
        .unwrap();
        assert!(matches!(store.entry("db"), Entry::Stale(Some(_))));
        assert!(store.running("db").is_err());
        let (_claim, stale) = store.claim("db").unwrap();
        assert_eq!(stale.unwrap().name, "db", "the caller learns what to clean");
        assert!(!folder.join("state.json").exists());
    }

    #[test]
    fn a_default_name_taken_gets_a_suffix_and_a_given_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
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
    fn claims_racing_a_finishing_sandbox_for_one_name_never_fail_on_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..500 {
                        match store.claim("same") {
                            Ok(claim) => drop(claim),
                            Err(StateError::Running(_)) => {}
                            Err(other) => panic!("{other}"),
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn stale_records_are_removed_only_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        let (claim, _) = store.claim("a").unwrap();
        assert!(!store.remove_stale("a"), "a running sandbox is left alone");
        std::mem::forget(claim);
        let folder = dir.path().join("b");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("lock"), "").unwrap();
        assert!(store.remove_stale("b"));
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
