//! Records of running sandboxes: `NAME.json` per name, and `NAME.log`, the command's output,
//! when detached.
//!
//! The supervisor holds an exclusive flock on its record file for the sandbox's whole life, so
//! whether a sandbox runs is whether its lock is held: no pid guessing, safe from pid reuse. A
//! name runs once at a time, and a record whose lock is free belongs to a supervisor that is gone (a
//! stale record): the next command that meets it cleans it.
//!
//! One file per name, not a folder of lock and record: where /run is on disk, every create,
//! rename and unlink is a journaled directory change, and a run now makes two, not seven.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::plan::{Namespaces, Plan};

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
    /// `ns:[inode]` of a namespace init's clone made (see `identifying_namespace`), by name:
    /// `exec` checks the pid still names this sandbox.
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
    /// `NAME.json`: the record, and the lock held for the sandbox's life.
    path: PathBuf,
    file: Flock<File>,
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

/// The state of one record.
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

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn ensure_dir(&self) -> Result<(), StateError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io("creating", &self.dir))
    }

    /// Open (creating it) the record file of a name, and the folder on first use.
    fn open_record(&self, path: &Path) -> Result<File, StateError> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
        };
        match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.ensure_dir()?;
                open()
            }
            other => other,
        }
        .map_err(io("opening", path))
    }

    /// Claim `name` for a new sandbox: fails when one by that name runs. A stale record is
    /// handed back so the caller can clean what it names before the claim replaces it.
    pub fn claim(&self, name: &str) -> Result<(Claim, Option<Record>), StateError> {
        let path = self.record_path(name);
        let (file, size) = loop {
            let file = self.open_record(&path)?;
            let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(file) => file,
                Err((_, Errno::EWOULDBLOCK)) => return Err(StateError::Running(name.to_string())),
                Err((_, errno)) => return Err(io("locking", &path)(std::io::Error::from(errno))),
            };
            // The name's last holder may have removed the file between our open and our
            // lock: try again on the one the path names.
            if let Some(held) = crate::lockfile::still_named(&file, &path) {
                break (file, held.len());
            }
        };
        // A record left by a supervisor that is gone; emptied, the file is this run's.
        let stale = (size > 0).then(|| {
            let stale = parse_record(&file, &path).ok();
            let _ = file.set_len(0);
            stale
        });
        Ok((
            Claim {
                name: name.to_string(),
                path,
                file,
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

    /// Every record, running or stale, by name.
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

    /// The state of one name.
    pub fn entry(&self, name: &str) -> Entry {
        let path = self.record_path(name);
        let Ok(file) = File::open(&path) else {
            return Entry::Stale(None);
        };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(free) => Entry::Stale(parse_record(&free, &path).ok()),
            // Held: the supervisor runs. Its record may not be written yet.
            Err((held, _)) => match parse_record(&held, &path) {
                Ok(record) => Entry::Running(record),
                Err(_) => Entry::Starting,
            },
        }
    }

    pub fn running(&self, name: &str) -> Result<Record, StateError> {
        match self.entry(name) {
            Entry::Running(record) => Ok(record),
            Entry::Starting | Entry::Stale(_) => Err(StateError::NotRunning(name.to_string())),
        }
    }

    /// Remove a stale record (only when its lock is free).
    pub fn remove_stale(&self, name: &str) -> bool {
        let path = self.record_path(name);
        let Ok(file) = File::open(&path) else {
            return false;
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) if crate::lockfile::still_named(&held, &path).is_some() => {
                let _ = std::fs::remove_file(path.with_extension("log"));
                std::fs::remove_file(&path).is_ok()
            }
            _ => false,
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

    /// Write the record, once: until then the file is empty and readers see the sandbox as
    /// starting (a reader that meets a half-written record does too).
    pub fn write(&self, record: &Record) -> Result<(), StateError> {
        use std::os::unix::fs::FileExt;
        let text = serde_json::to_vec(record).expect("records serialize");
        self.file
            .write_all_at(&text, 0)
            .map_err(io("writing", &self.path))
    }
}

impl Drop for Claim {
    /// The sandbox ended: its record goes, and its log. The lock goes after, with the file
    /// descriptor: a concurrent claim either fails on the held lock or makes a new file.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.log_path());
    }
}

fn parse_record(file: &File, path: &Path) -> Result<Record, StateError> {
    use std::io::{Read, Seek};
    let mut text = Vec::new();
    let mut reader = file;
    reader
        .rewind()
        .and_then(|()| reader.read_to_end(&mut text))
        .map_err(io("reading", path))?;
    serde_json::from_slice(&text)
        .map_err(|e| StateError::Corrupt(path.display().to_string(), e.to_string()))
}

/// The namespace that identifies the sandbox's init from its start, by its /proc name: the
/// first one its clone made (a new namespace is never another process's). One is enough: each
/// costs a /proc lookup on every launch. None when the clone makes none.
pub fn identifying_namespace(new: &Namespaces) -> Option<&'static str> {
    // The cgroup and time namespaces are made later, in setup.
    let first = new
        .names()
        .into_iter()
        .find(|name| !matches!(*name, "cgroup" | "time"))?;
    Some(if first == "mount" { "mnt" } else { first })
}

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
    let _ = crate::exec::sys::fill_random(&mut bytes);
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
            namespaces: namespaces_of(std::process::id() as i32, &["user", "mnt"]),
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
    fn the_first_namespace_the_clone_makes_identifies_the_sandbox() {
        let mut new = test_plan().namespaces;
        assert_eq!(identifying_namespace(&new), Some("user"));
        new.user = false;
        assert_eq!(identifying_namespace(&new), Some("mnt"));
        new = Namespaces {
            user: false,
            mount: false,
            pid: false,
            net: false,
            uts: false,
            ipc: false,
            cgroup: true,
            time: true,
        };
        assert_eq!(identifying_namespace(&new), None, "made later in setup");
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
            !store.dir().join("web.json").exists(),
            "the record goes with the sandbox"
        );
        assert!(store.claim("web").is_ok());
    }

    #[test]
    fn a_record_whose_supervisor_is_gone_is_stale_and_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        // What a SIGKILLed supervisor leaves: a record whose lock nobody holds.
        let path = dir.path().join("db.json");
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
    fn claims_racing_a_finishing_sandbox_for_one_name_hold_it_one_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("state"));
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
        let store = Store::new(dir.path().to_path_buf());
        let path = store.record_path("x");
        let (first, _) = store.claim("x").unwrap();
        // A racing claim opened the file, then the holder ended before it took the lock.
        let opened_before = File::open(&path).unwrap();
        drop(first);
        let late = Flock::lock(opened_before, FlockArg::LockExclusiveNonblock).unwrap();
        let (_second, _) = store.claim("x").expect("the name is free");
        assert!(
            crate::lockfile::still_named(&late, &path).is_none(),
            "the racer must retry"
        );
        let current = Flock::lock(File::open(&path).unwrap(), FlockArg::LockSharedNonblock);
        assert!(
            current.is_err(),
            "the second claim holds the file the path names"
        );
    }

    #[test]
    fn stale_records_are_removed_only_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf());
        let (claim, _) = store.claim("a").unwrap();
        assert!(!store.remove_stale("a"), "a running sandbox is left alone");
        std::mem::forget(claim);
        std::fs::write(dir.path().join("b.json"), "").unwrap();
        std::fs::write(dir.path().join("b.log"), "output").unwrap();
        assert!(store.remove_stale("b"));
        assert!(!dir.path().join("b.log").exists(), "its log goes with it");
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
