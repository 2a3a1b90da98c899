use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A uid and a gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// One line of /proc/PID/uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdMapping {
    pub fn inside_end(&self) -> u64 {
        self.inside as u64 + self.count as u64
    }

    pub fn outside_end(&self) -> u64 {
        self.outside as u64 + self.count as u64
    }

    /// The outside id that `inside` maps to, if this range covers it.
    pub fn map(&self, inside: u32) -> Option<u32> {
        (inside >= self.inside && (inside as u64) < self.inside_end())
            .then(|| self.outside + (inside - self.inside))
    }

    /// The inside id that `outside` maps from, if this range covers it.
    pub fn unmap(&self, outside: u32) -> Option<u32> {
        (outside >= self.outside && (outside as u64) < self.outside_end())
            .then(|| self.inside + (outside - self.outside))
    }
}

/// Who writes the maps: the launcher itself (root, or a single mapping of the caller's own id)
/// or the setuid helpers newuidmap/newgidmap (ranges from /etc/subuid and /etc/subgid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MapWriter {
    Direct,
    Helper {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPlan {
    pub uid_map: Vec<IdMapping>,
    pub gid_map: Vec<IdMapping>,
    pub writer: MapWriter,
    /// Write "deny" to /proc/PID/setgroups before the gid map: required when an unprivileged
    /// process writes the gid map itself (user_namespaces(7)).
    pub deny_setgroups: bool,
    /// Every host id the maps reach is the caller's to give: its own, its grants in
    /// /etc/subuid and /etc/subgid, or (as root) the unprivileged default range. Capabilities
    /// kept inside then act on nothing of anyone else's (see trust).
    pub own_ids: bool,
}
