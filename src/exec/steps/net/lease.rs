//! Address leases of bridge sandboxes, shared by every `sandbox up` on the machine.
//!
//! A [`crate::lease`] store under /run/sandbox/net, a group per bridge:
//! - `<bridge>/bridge`: the bridge's subnet, and whether a launcher created the bridge (then
//!   the last sandbox on it removes it);
//! - `<bridge>/<address>`: one lease; a stale one's veth and rules are removed, then the file.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::folder::Purpose;
use crate::lease::{self, LockError};

fn io(error: std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}

/// What the first sandbox on a bridge recorded about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeState {
    pub subnet: Ipv4Net,
    /// A launcher created the bridge, so the last sandbox on it removes it; a bridge that
    /// existed before is left as it was found.
    pub created: bool,
}

/// The machine's address leases: a [`lease::Store`] with a group per bridge.
pub struct Store(lease::Store);

/// The store, locked against every other launcher.
pub struct Locked<'a>(lease::Locked<'a>);

/// A held lease: the address is ours while this lives.
pub struct Lease {
    pub address: Ipv4Addr,
    lease: lease::Lease,
}

/// The lease folder, as messages name it.
const LEASE_FOLDER: Purpose = Purpose {
    name: "lease folder",
    setting: None,
};

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store(lease::Store::new(root, LEASE_FOLDER))
    }

    /// Wait for the store's lock.
    pub fn lock(&self) -> Result<Locked<'_>, LockError> {
        self.0.lock().map(Locked)
    }
}

impl Locked<'_> {
    /// The addresses leased on `bridge`: (live, stale).
    pub fn leases(&self, bridge: &str) -> Result<(BTreeSet<Ipv4Addr>, Vec<Ipv4Addr>), Errno> {
        // The other files of the group (`bridge`) are not leases.
        let (live, stale) = self.0.leases(bridge)?;
        let address = |name: String| name.parse::<Ipv4Addr>().ok();
        Ok((
            live.into_iter().filter_map(address).collect(),
            stale.into_iter().filter_map(address).collect(),
        ))
    }

    /// Forget a stale lease, once what its sandbox made is gone.
    pub fn forget(&self, bridge: &str, address: Ipv4Addr) -> Result<(), Errno> {
        self.0.forget(bridge, &address.to_string())
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
        let lease = self
            .0
            .take(bridge, &address.to_string())
            .map_err(|errno| match errno {
                Errno::EEXIST => Errno::EADDRINUSE,
                errno => errno,
            })?;
        Ok(Lease { address, lease })
    }

    pub fn bridge_state(&self, bridge: &str) -> Option<BridgeState> {
        let text =
            crate::input::read_regular_file(&self.0.dir(bridge).join("bridge"), 64 << 10).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn set_bridge_state(&self, bridge: &str, state: BridgeState) -> Result<(), Errno> {
        let text = serde_json::to_vec(&state).expect("bridge state serializes");
        std::fs::write(self.0.dir(bridge).join("bridge"), text).map_err(io)
    }

    /// Forget the bridge: its last sandbox is gone.
    pub fn forget_bridge(&self, bridge: &str) -> Result<(), Errno> {
        self.0.forget(bridge, "bridge")?;
        match std::fs::remove_dir(self.0.dir(bridge)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        }
    }
}

impl Lease {
    /// Give the address back (under the store's lock, so nobody sees the lease half gone).
    pub fn release(self, locked: &Locked<'_>) -> Result<(), Errno> {
        self.lease.release(&locked.0)
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
