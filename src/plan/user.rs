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
    /// The maps; a side leased from `pool` holds the pool's first free block until
    /// [`UserPlan::lease`] puts the leased one there.
    pub uid_map: Vec<IdMapping>,
    pub gid_map: Vec<IdMapping>,
    pub writer: MapWriter,
    /// Write "deny" to /proc/PID/setgroups before the gid map: required when an unprivileged
    /// process writes the gid map itself (user_namespaces(7)).
    pub deny_setgroups: bool,
    /// Every host id the maps reach is the caller's to give: its own, its grants in
    /// /etc/subuid and /etc/subgid, or (as root) a block leased from `pool`. Capabilities
    /// kept inside then act on nothing of anyone else's (see trust).
    pub own_ids: bool,
    /// Root's sandboxes whose manifest maps no ids lease a block of host ids as they start.
    pub pool: Option<IdPool>,
}

/// Where root's blocks of host ids are leased (see `exec::ids`).
pub const IDS_DIR: &str = "/run/sandbox/ids";

/// How many host ids one of root's sandboxes gets: inside ids 0..65535, as a distribution's.
pub const ID_BLOCK: u32 = 65_536;

/// Where root's sandboxes take their host ids when the manifest maps none: a block of
/// [`ID_BLOCK`] ids for each running sandbox, leased as it starts (see `exec::ids`), the same
/// block number for uids and gids. No block holds an id /etc/subuid or /etc/subgid grants to
/// anyone: such a user could enter those ids (`unshare --map-auto`) and signal or trace the
/// sandbox's processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdPool {
    /// The first host uid of block 0, when the uid map is leased (`None`: the manifest's own).
    pub uid_base: Option<u32>,
    pub gid_base: Option<u32>,
    /// How many blocks the pool spans, usable or not.
    pub blocks: u32,
    /// The usable block numbers, as ranges `[start, end)`, lowest first.
    pub free: Vec<(u32, u32)>,
    /// From the `sandbox` grant of /etc/subuid and /etc/subgid, reserved for sandboxes (else
    /// from [`IdPool::REGION`]).
    pub reserved: bool,
}

impl IdPool {
    /// Where the blocks are when no `sandbox` grant reserves them, as systemd-nspawn's
    /// --private-users=pick: above any ordinary user's ids, below 2^31, which many tools
    /// mishandle.
    pub const REGION: (u32, u32) = (0x0008_0000, 0x7000_0000);

    /// The usable block numbers, lowest first.
    pub fn blocks(&self) -> impl Iterator<Item = u32> + '_ {
        self.free.iter().flat_map(|&(start, end)| start..end)
    }

    /// The first host uid and gid of `block`, for the leased sides.
    pub fn first_ids(&self, block: u32) -> (Option<u32>, Option<u32>) {
        let first = |base: Option<u32>| base.map(|base| base + block * ID_BLOCK);
        (first(self.uid_base), first(self.gid_base))
    }

    /// The name of `block`'s lease: its first host uid (or gid).
    pub fn lease_name(&self, block: u32) -> String {
        let (uid, gid) = self.first_ids(block);
        uid.or(gid).unwrap_or(block).to_string()
    }
}

impl UserPlan {
    /// Map the leased sides onto `block` of the pool.
    pub fn lease(&mut self, block: u32) {
        let Some(pool) = &self.pool else {
            return;
        };
        let (uid, gid) = pool.first_ids(block);
        for (map, first) in [(&mut self.uid_map, uid), (&mut self.gid_map, gid)] {
            if let Some(outside) = first {
                *map = vec![IdMapping {
                    inside: 0,
                    outside,
                    count: ID_BLOCK,
                }];
            }
        }
    }
}
