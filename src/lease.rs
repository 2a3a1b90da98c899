//! Leases shared by every `sandbox up` on the machine: a bridge sandbox's address
//! (`exec::steps::net`), a block of host ids for one of root's sandboxes (`exec::ids`).
//!
//! Layout under a store's root (below /run/sandbox, so nothing outlives a reboot, as what is
//! leased does not either):
//! - `.lock`: held (flock) while a launcher reads or changes anything below; never removed, so
//!   every launcher locks the same file;
//! - `<group>/<name>`: one lease. Its owner holds an flock on it for the sandbox's life; the
//!   kernel drops that lock when the last holder dies, however it dies, so a lease nobody
//!   holds is stale: what its sandbox made can be removed, then the file.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::folder::{self, FolderError, Purpose};

fn io(error: std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}

fn lock(file: File, arg: FlockArg) -> Result<Flock<File>, Errno> {
    Flock::lock(file, arg).map_err(|(_, errno)| errno)
}

pub struct Store {
    root: PathBuf,
    /// What the folder is, as messages name it.
    purpose: Purpose,
}

/// Why the store could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// Its errno goes with it where it is shown (a step's failure).
    #[error("locking {}", path.display())]
    Lock { path: PathBuf, errno: Errno },
}

impl LockError {
    pub fn errno(&self) -> Errno {
        match self {
            LockError::Folder(error) => error.errno(),
            LockError::Lock { errno, .. } => *errno,
        }
    }
}

/// The store, locked against every other launcher.
pub struct Locked<'a> {
    root: &'a Path,
    purpose: Purpose,
    _lock: Flock<File>,
}

/// A held lease: what it names is ours while this (or a process that inherited it) lives.
pub struct Lease {
    name: String,
    path: PathBuf,
    _lock: Flock<File>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>, purpose: Purpose) -> Store {
        Store {
            root: root.into(),
            purpose,
        }
    }

    /// Wait for the store's lock. The folder must be the caller's alone (see
    /// [`crate::folder`]): a lease planted in it would hand what it names to whoever planted
    /// it.
    pub fn lock(&self) -> Result<Locked<'_>, LockError> {
        folder::own(&self.root, 0o755, self.purpose)?;
        let path = self.root.join(".lock");
        let failed = |errno| LockError::Lock {
            path: path.clone(),
            errno,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            // A FIFO in its place fails at once (ENXIO) instead of waiting for a reader.
            .custom_flags(crate::input::OPEN_FLAGS)
            .open(&path)
            .map_err(|e| failed(io(e)))?;
        Ok(Locked {
            root: &self.root,
            purpose: self.purpose,
            _lock: lock(file, FlockArg::LockExclusive).map_err(failed)?,
        })
    }
}

impl Locked<'_> {
    /// The folder of a group of leases.
    pub fn dir(&self, group: &str) -> PathBuf {
        self.root.join(group)
    }

    /// The names leased in `group`: (live, stale).
    pub fn leases(&self, group: &str) -> Result<(BTreeSet<String>, Vec<String>), Errno> {
        let mut live = BTreeSet::new();
        let mut stale = Vec::new();
        let entries = match std::fs::read_dir(self.dir(group)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((live, stale)),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if name.starts_with('.') || !entry.file_type().map_err(io)?.is_file() {
                continue;
            }
            let file =
                crate::input::open_regular_file(&entry.path()).map_err(|error| match error {
                    crate::input::InputError::Io { source, .. } => io(source),
                    // Not a lease: something planted in the folder.
                    _ => Errno::EINVAL,
                })?;
            match lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(_) => stale.push(name),
                Err(Errno::EWOULDBLOCK) => {
                    live.insert(name);
                }
                Err(errno) => return Err(errno),
            }
        }
        Ok((live, stale))
    }

    /// Forget a stale lease, once what its sandbox made is gone.
    pub fn forget(&self, group: &str, name: &str) -> Result<(), Errno> {
        remove(&self.dir(group).join(name))
    }

    /// Lease `name` in `group`: EEXIST when it is leased (or stale, not yet forgotten).
    pub fn take(&self, group: &str, name: &str) -> Result<Lease, Errno> {
        let dir =
            folder::own_within(self.root, group, 0o755, self.purpose).map_err(|e| e.errno())?;
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(io)?;
        Ok(Lease {
            name: name.to_string(),
            path,
            _lock: lock(file, FlockArg::LockExclusiveNonblock)?,
        })
    }
}

impl Lease {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Give it back (under the store's lock, so nobody sees the lease half gone).
    pub fn release(self, _locked: &Locked<'_>) -> Result<(), Errno> {
        remove(&self.path)
    }
}

fn remove(path: &Path) -> Result<(), Errno> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_live_while_held_and_stale_once_dropped() {
        let root = tempfile::tempdir().unwrap();
        let purpose = Purpose {
            name: "test leases",
            setting: None,
        };
        let store = Store::new(root.path(), purpose);
        let locked = store.lock().unwrap();
        let first = locked.take("g", "a").unwrap();
        let second = locked.take("g", "b").unwrap();
        assert_eq!(first.name(), "a");
        assert_eq!(
            locked.take("g", "b").err(),
            Some(Errno::EEXIST),
            "the file itself refuses a second owner"
        );
        // A supervisor killed with its lease: the file stays, its lock goes.
        drop(second);
        let (live, stale) = locked.leases("g").unwrap();
        assert_eq!(live, BTreeSet::from(["a".to_string()]));
        assert_eq!(stale, ["b"]);
        locked.forget("g", "b").unwrap();
        first.release(&locked).unwrap();
        assert_eq!(locked.leases("g").unwrap(), (BTreeSet::new(), Vec::new()));
        assert_eq!(
            locked.leases("none").unwrap(),
            (BTreeSet::new(), Vec::new())
        );
    }
}
