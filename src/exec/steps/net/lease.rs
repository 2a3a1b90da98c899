//! Address leases of bridge sandboxes, shared by every `sandbox up` on the machine.
//!
//! Layout under the root (/run/sandbox/net, a tmpfs, so nothing outlives a reboot, as the
//! bridges do not):
//! - `.lock`: held (flock) while a launcher reads or changes anything below; never removed, so
//!   every launcher locks the same file;
//! - `<bridge>/bridge`: the bridge's subnet, and whether a launcher created the bridge (then
//!   the last sandbox on it removes it);
//! - `<bridge>/<address>`: one lease. Its owner holds an flock on it for the sandbox's life;
//!   the kernel drops that lock when the owner dies, however it dies, so a lease nobody
//!   holds is stale: its sandbox's veth and rules are removed, then the file.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::folder::{self, FolderError, Purpose};
use crate::plan::LEASE_DIR;

fn io(error: std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}

fn lock(file: File, arg: FlockArg) -> Result<Flock<File>, Errno> {
    Flock::lock(file, arg).map_err(|(_, errno)| errno)
}

/// What the first sandbox on a bridge recorded about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeState {
    pub subnet: Ipv4Net,
    /// A launcher created the bridge, so the last sandbox on it removes it; a bridge that
    /// existed before is left as it was found.
    pub created: bool,
}

pub struct Store {
    root: PathBuf,
}

/// The store, locked against every other launcher.
pub struct Locked<'a> {
    root: &'a Path,
    _lock: Flock<File>,
}

/// A held lease: the address is ours while this lives.
pub struct Lease {
    pub address: Ipv4Addr,
    path: PathBuf,
    _lock: Flock<File>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// Wait for the store's lock. The folder must be the caller's alone (see
    /// [`crate::folder`]): a lease planted in it would hand a sandbox's address, veth and
    /// rules to whoever planted it.
    pub fn lock(&self) -> Result<Locked<'_>, LockError> {
        folder::own(&self.root, 0o755, LEASE_FOLDER)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            // A FIFO in its place fails at once (ENXIO) instead of waiting for a reader.
            .custom_flags(crate::input::OPEN_FLAGS)
            .open(self.root.join(".lock"))
            .map_err(|e| LockError::Lock(io(e)))?;
        Ok(Locked {
            root: &self.root,
            _lock: lock(file, FlockArg::LockExclusive).map_err(LockError::Lock)?,
        })
    }
}

/// The lease folder, as messages name it.
const LEASE_FOLDER: Purpose = Purpose {
    name: "lease folder",
    setting: None,
};

/// Why the store could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// Its errno goes with it where it is shown (a step's failure).
    #[error("locking {LEASE_DIR}/.lock")]
    Lock(Errno),
}

impl LockError {
    pub fn errno(&self) -> Errno {
        match self {
            LockError::Folder(error) => error.errno(),
            LockError::Lock(errno) => *errno,
        }
    }
}

impl Locked<'_> {
    fn dir(&self, bridge: &str) -> PathBuf {
        self.root.join(bridge)
    }

    /// The addresses leased on `bridge`: (live, stale).
    pub fn leases(&self, bridge: &str) -> Result<(BTreeSet<Ipv4Addr>, Vec<Ipv4Addr>), Errno> {
        let mut live = BTreeSet::new();
        let mut stale = Vec::new();
        let entries = match std::fs::read_dir(self.dir(bridge)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((live, stale)),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io)?;
            let Some(address) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let file =
                crate::input::open_regular_file(&entry.path()).map_err(|error| match error {
                    crate::input::InputError::Io { source, .. } => io(source),
                    // Not a lease: something planted in the folder.
                    _ => Errno::EINVAL,
                })?;
            match lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(_) => stale.push(address),
                Err(Errno::EWOULDBLOCK) => {
                    live.insert(address);
                }
                Err(errno) => return Err(errno),
            }
        }
        Ok((live, stale))
    }

    /// Forget a stale lease, once what its sandbox made is gone.
    pub fn forget(&self, bridge: &str, address: Ipv4Addr) -> Result<(), Errno> {
        remove(&self.dir(bridge).join(address.to_string()))
    }

    /// Lease `wanted`, or else the first free address of `subnet`.
    pub fn take(
        &self,
        bridge: &str,
        subnet: Ipv4Net,
        gateway: Ipv4Addr,
        wanted: Option<Ipv4Addr>,
        taken: &BTreeSet<Ipv4Addr>,
    ) -> Result<Lease, Errno> {
        let address = pick(subnet, gateway, wanted, taken)?;
        let dir =
            folder::own_within(self.root, bridge, 0o755, LEASE_FOLDER).map_err(|e| e.errno())?;
        let path = dir.join(address.to_string());
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| match io(e) {
                Errno::EEXIST => Errno::EADDRINUSE,
                errno => errno,
            })?;
        Ok(Lease {
            address,
            path,
            _lock: lock(file, FlockArg::LockExclusiveNonblock)?,
        })
    }

    pub fn bridge_state(&self, bridge: &str) -> Option<BridgeState> {
        let text =
            crate::input::read_regular_file(&self.dir(bridge).join("bridge"), 64 << 10).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn set_bridge_state(&self, bridge: &str, state: BridgeState) -> Result<(), Errno> {
        let text = serde_json::to_vec(&state).expect("bridge state serializes");
        std::fs::write(self.dir(bridge).join("bridge"), text).map_err(io)
    }

    /// Forget the bridge: its last sandbox is gone.
    pub fn forget_bridge(&self, bridge: &str) -> Result<(), Errno> {
        let dir = self.dir(bridge);
        remove(&dir.join("bridge"))?;
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}

impl Lease {
    /// Give the address back (under the store's lock, so nobody sees the lease half gone).
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

/// `wanted` when it is free, or else the lowest free host address of the subnet after the
/// gateway.
pub fn pick(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    wanted: Option<Ipv4Addr>,
    taken: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, Errno> {
    match wanted {
        Some(address) if taken.contains(&address) => Err(Errno::EADDRINUSE),
        Some(address) => Ok(address),
        None => subnet
            .hosts()
            .find(|a| *a != gateway && !taken.contains(a))
            .ok_or(Errno::EADDRNOTAVAIL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Ipv4Net {
        "10.9.0.0/29".parse().unwrap()
    }
    const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

    #[test]
    fn the_lowest_free_host_address_after_the_gateway() {
        let taken = BTreeSet::from([Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 4)]);
        assert_eq!(
            pick(net(), GATEWAY, None, &taken),
            Ok(Ipv4Addr::new(10, 9, 0, 3))
        );
        assert_eq!(
            pick(net(), GATEWAY, Some(Ipv4Addr::new(10, 9, 0, 4)), &taken),
            Err(Errno::EADDRINUSE)
        );
        let full: BTreeSet<_> = net().hosts().collect();
        assert_eq!(pick(net(), GATEWAY, None, &full), Err(Errno::EADDRNOTAVAIL));
    }

    #[test]
    fn a_lease_is_live_while_held_and_stale_once_dropped() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        let locked = store.lock().unwrap();
        let first = locked
            .take("br", net(), GATEWAY, None, &BTreeSet::new())
            .unwrap();
        assert_eq!(first.address, Ipv4Addr::new(10, 9, 0, 2));
        let (live, stale) = locked.leases("br").unwrap();
        let second = locked.take("br", net(), GATEWAY, None, &live).unwrap();
        assert_eq!(second.address, Ipv4Addr::new(10, 9, 0, 3));
        assert!(stale.is_empty());
        assert_eq!(
            locked
                .take("br", net(), GATEWAY, Some(second.address), &BTreeSet::new())
                .err(),
            Some(Errno::EADDRINUSE),
            "the file itself refuses a second owner"
        );
        // A supervisor killed with its lease: the file stays, its lock goes.
        drop(second);
        let (live, stale) = locked.leases("br").unwrap();
        assert_eq!(live, BTreeSet::from([first.address]));
        assert_eq!(stale, [Ipv4Addr::new(10, 9, 0, 3)]);
        locked.forget("br", stale[0]).unwrap();
        first.release(&locked).unwrap();
        assert_eq!(locked.leases("br").unwrap(), (BTreeSet::new(), Vec::new()));
    }

    #[test]
    fn the_bridge_state_is_kept_until_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::new(root.path());
        let locked = store.lock().unwrap();
        let lease = locked
            .take("br", net(), GATEWAY, None, &BTreeSet::new())
            .unwrap();
        let state = BridgeState {
            subnet: net(),
            created: true,
        };
        locked.set_bridge_state("br", state).unwrap();
        assert_eq!(locked.bridge_state("br"), Some(state));
        lease.release(&locked).unwrap();
        locked.forget_bridge("br").unwrap();
        assert_eq!(locked.bridge_state("br"), None);
        assert!(!root.path().join("br").exists());
    }
}
