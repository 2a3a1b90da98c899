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
    /// The host ids the maps reach that are not the sandbox's own (see [`ForeignIds`]).
    pub foreign: ForeignIds,
    /// Root's sandboxes whose manifest maps no ids lease a block of host ids as they start.
    pub pool: Option<IdPool>,
}

/// Host ids `start..start + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIds {
    pub start: u32,
    pub count: u32,
}

impl HostIds {
    fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }
}

impl std::fmt::Display for HostIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.count {
            1 => write!(f, "{}", self.start),
            _ => write!(f, "{}..{}", self.start, self.end() - 1),
        }
    }
}

/// The host ids a sandbox's maps reach that are not its own. Its own are the caller's to give
/// and no one else's: rootless, the caller's ids and its grants in /etc/subuid and
/// /etc/subgid; as root, a block leased from the pool and root's grants that no one else's
/// overlaps. Any other id is someone's on the host (gid 42 reads /etc/shadow, uid 1000 is a
/// user, 0 is the host's root), and the sandbox acts as them: trust asks for it, and no mount
/// is id-mapped onto them (see [`UserPlan::hands_over`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignIds {
    pub uids: Vec<HostIds>,
    pub gids: Vec<HostIds>,
}

/// Where root's blocks of host ids are leased (see `exec::ids`).
pub const IDS_DIR: &str = "/run/sandbox/ids";

/// How many host ids one of root's sandboxes gets: inside ids 0..65535, as a distribution's.
pub const ID_BLOCK: u32 = 65_536;

/// The user whose grant in /etc/subuid and /etc/subgid reserves ids for root's sandboxes, as
/// podman's `containers`.
pub const POOL_OWNER: &str = "sandbox";

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

    /// The ids the pool takes its blocks from, in words.
    pub fn text(&self) -> String {
        let range = |base: Option<u32>| {
            base.map(|base| {
                format!(
                    "{base}..{}",
                    u64::from(base) + u64::from(self.blocks) * u64::from(ID_BLOCK) - 1
                )
            })
        };
        let ids = match (range(self.uid_base), range(self.gid_base)) {
            (Some(uids), Some(gids)) if uids == gids => format!("ids {uids}"),
            (Some(uids), Some(gids)) => format!("uids {uids}, gids {gids}"),
            (Some(uids), None) => format!("uids {uids}"),
            (None, Some(gids)) => format!("gids {gids}"),
            (None, None) => "no ids".into(),
        };
        let from = if self.reserved {
            format!("the `{POOL_OWNER}` grant")
        } else {
            "the default region".into()
        };
        format!("{ids}, {from}")
    }

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
    /// Every host id the maps reach is the sandbox's own: capabilities kept inside then act on
    /// nothing of anyone else's (see trust).
    pub fn own_ids(&self) -> bool {
        self.foreign.uids.is_empty() && self.foreign.gids.is_empty()
    }

    /// Whether a mount id-mapped through `uid_map` and `gid_map` (ids on disk to host ids)
    /// gives files to host ids that are not the sandbox's own: through a `/proc/PID/root` of
    /// the sandbox, whoever has those ids could then change them, and make files owned by
    /// their owners (root's) on the host. A line that keeps the ids (inside = outside) gives
    /// nothing: a mount that is not id-mapped does the same.
    pub fn hands_over(&self, uid_map: &[IdMapping], gid_map: &[IdMapping]) -> bool {
        let onto = |map: &[IdMapping], foreign: &[HostIds]| {
            map.iter().any(|m| {
                m.inside != m.outside
                    && foreign.iter().any(|f| {
                        u64::from(m.outside) < f.end() && u64::from(f.start) < m.outside_end()
                    })
            })
        };
        onto(uid_map, &self.foreign.uids) || onto(gid_map, &self.foreign.gids)
    }

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
