//! Stage 3: the [`Plan`], a plain data structure that the executor interprets.
//!
//! Every default is explicit here, every path absolute, every size in bytes, every id map
//! concrete for the caller. A plan is only made by [`validate`](crate::validate::validate), so
//! the executor never sees an unchecked manifest.

mod cgroup;
mod egress;
mod limit;
mod mount;
mod net;
mod process;
mod render;
pub mod seccomp;
mod security;
mod step;
mod user;

use crate::origin::Origin;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use cgroup::{CgroupHierarchy, CgroupPlan, CgroupVersion, Controller};
pub use egress::{EGRESS_TABLE, EgressPlan, EgressRule};
pub use limit::{Asked, CgroupLimit, CgroupLimits, LimitWrite, Unsupported};
pub use mount::{
    HandedOver, Idmap, Layer, MountFlags, MountOp, MountStep, OWN_NAME_FALLBACK, OverlayUpper,
    RootPlan, RootSource, hosts_file,
};
pub use net::{BridgePlan, LEASE_DIR, NetPlan, PastaPlan, bridge_table, sandbox_table, veth_name};
pub use process::ProcessPlan;
pub use render::{
    Line, StepView, describe_mount, maps, render_json, render_text, shell_words, steps,
};
pub use security::{
    CONTAINER_CAPABILITIES, LANDLOCK_NET_ABI, LandlockPlan, SeccompPlan, SecurityPlan,
};
pub use step::StepId;
pub use user::{
    ForeignIds, HostIds, ID_BLOCK, IDS_DIR, IdMapping, IdPool, Ids, MapWriter, POOL_OWNER, UserPlan,
};

use crate::manifest::Location;

/// Everything `sandbox up` will do, decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// The name was given (`name`, `--name`) rather than taken from the manifest's folder: a
    /// given name runs once at a time; a default one gets a `-2`, `-3`... suffix when taken.
    pub name_given: bool,
    /// The main manifest file.
    pub manifest: PathBuf,
    /// Every file merged into this plan (the manifest, what it extends, the local override).
    pub sources: Vec<PathBuf>,
    pub namespaces: Namespaces,
    /// The caller's ids on the host: the owner of the files it binds, as far as they are its.
    pub caller: Ids,
    /// Id maps; `None` when the sandbox shares the host's user namespace.
    pub user: Option<UserPlan>,
    pub root: RootPlan,
    /// Mounts in the order they are made, including the defaults (/proc, /dev, /tmp).
    pub mounts: Vec<MountStep>,
    /// Host directories id-mapped although their files are not the caller's own to give.
    #[serde(default)]
    pub handed_over: Vec<HandedOver>,
    /// Hostname and domain name, when the sandbox has its own UTS namespace.
    pub uts: Option<UtsPlan>,
    /// Clock offsets, when the sandbox has its own time namespace.
    pub time: Option<TimePlan>,
    pub net: NetPlan,
    /// The sandbox's own cgroup, when it has limits.
    pub cgroup: Option<CgroupPlan>,
    pub process: ProcessPlan,
    pub security: SecurityPlan,
    /// Where each manifest key was set; keys not listed have their default.
    pub provenance: BTreeMap<String, Location>,
    /// Things that work, but not as well as asked (shown by `plan` and `up -v`).
    pub warnings: Vec<String>,
}

/// How the sandbox uses a host path of its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostUse {
    /// Its root directory.
    Root,
    /// The tarball or OCI image its root is unpacked from.
    Archive,
    Bind {
        readonly: bool,
        optional: bool,
    },
    /// A lower layer of an overlay.
    Lower,
    /// The kept upper layer of an overlay, made (with its work dir beside it) when missing.
    Upper,
}

/// A host path of the plan, with the manifest key that names it.
#[derive(Debug, Clone)]
pub struct HostPath<'a> {
    pub path: &'a Path,
    pub key: Origin,
    pub used: HostUse,
}

/// Which namespaces are new (true) or shared with the host (false).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub net: bool,
    pub uts: bool,
    pub ipc: bool,
    pub cgroup: bool,
    pub time: bool,
}

impl Namespaces {
    /// The new namespaces by name, in the order the kernel documents them.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.user, "user"),
            (self.mount, "mount"),
            (self.pid, "pid"),
            (self.net, "net"),
            (self.uts, "uts"),
            (self.ipc, "ipc"),
            (self.cgroup, "cgroup"),
            (self.time, "time"),
        ]
        .into_iter()
        .filter_map(|(new, name)| new.then_some(name))
        .collect()
    }

    /// The new namespaces as /proc/PID/ns names them, with their clone(2) flags, in the order
    /// a process joins them: the user namespace first, as nsenter does, since it gives the
    /// capabilities to join the others.
    pub fn joined(&self) -> Vec<(&'static str, libc::c_int)> {
        [
            (self.user, "user", libc::CLONE_NEWUSER),
            (self.mount, "mnt", libc::CLONE_NEWNS),
            (self.pid, "pid", libc::CLONE_NEWPID),
            (self.net, "net", libc::CLONE_NEWNET),
            (self.uts, "uts", libc::CLONE_NEWUTS),
            (self.ipc, "ipc", libc::CLONE_NEWIPC),
            (self.cgroup, "cgroup", libc::CLONE_NEWCGROUP),
            (self.time, "time", libc::CLONE_NEWTIME),
        ]
        .into_iter()
        .filter_map(|(new, name, flag)| new.then_some((name, flag)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtsPlan {
    pub hostname: String,
    pub domainname: Option<String>,
}

/// Offsets in nanoseconds for CLOCK_MONOTONIC and CLOCK_BOOTTIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimePlan {
    pub monotonic_ns: i64,
    pub boottime_ns: i64,
    /// Start both clocks at zero (plus the offsets): a deterministic jail's uptime is 0.
    pub zero_at_start: bool,
}

impl Plan {
    /// Every host path the sandbox uses, in the order it uses them: what the trust check
    /// judges, and what the launcher opens before it does (see [`crate::hostpath`]).
    pub fn host_paths(&self) -> Vec<HostPath<'_>> {
        let mut paths = Vec::new();
        let root = match &self.root.source {
            RootSource::Tmpfs => None,
            RootSource::Dir { path } => Some((path, HostUse::Root)),
            RootSource::Tar { path, .. } | RootSource::Oci { path, .. } => {
                Some((path, HostUse::Archive))
            }
        };
        if let Some((path, used)) = root {
            paths.push(HostPath {
                path,
                key: "rootfs".into(),
                used,
            });
        }
        if let Some(OverlayUpper::Dir { upper, .. }) = &self.root.overlay {
            paths.push(HostPath {
                path: upper,
                key: "rootfs.overlay".into(),
                used: HostUse::Upper,
            });
        }
        for step in &self.mounts {
            let key = &step.key;
            match &step.op {
                MountOp::Bind {
                    source,
                    readonly,
                    optional,
                    ..
                } => paths.push(HostPath {
                    path: source,
                    key: key.clone(),
                    used: HostUse::Bind {
                        readonly: *readonly,
                        optional: *optional,
                    },
                }),
                MountOp::Overlay { lower, upper, .. } => {
                    paths.extend(lower.iter().map(|path| HostPath {
                        path,
                        key: key.clone(),
                        used: HostUse::Lower,
                    }));
                    if let Some(OverlayUpper::Dir { upper, .. }) = upper {
                        paths.push(HostPath {
                            path: upper,
                            key: key.clone(),
                            used: HostUse::Upper,
                        });
                    }
                }
                _ => {}
            }
        }
        paths
    }

    /// The host ids of the sandbox's root (or of its command, when root is not mapped inside):
    /// what kept overlay layers (and an exported bundle's rootfs) are owned by, so the sandbox
    /// can write them.
    pub fn root_on_host(&self) -> Option<(u32, u32)> {
        let user = self.user.as_ref()?;
        let host = |map: &[IdMapping], fallback: u32| {
            map.iter()
                .find_map(|m| m.map(0))
                .or_else(|| map.iter().find_map(|m| m.map(fallback)))
        };
        Some((
            host(&user.uid_map, self.process.uid)?,
            host(&user.gid_map, self.process.gid)?,
        ))
    }

    /// The id maps of an id-mapped mount (uid_map, gid_map): on-disk ids to host ids. `None`
    /// without a user namespace, or when the command's ids are not mapped (an invalid plan).
    pub fn idmap_maps(&self, idmap: Idmap) -> Option<(Vec<IdMapping>, Vec<IdMapping>)> {
        let user = self.user.as_ref()?;
        match idmap {
            Idmap::Sandbox => Some((user.uid_map.clone(), user.gid_map.clone())),
            Idmap::Caller => {
                let line = |map: &[IdMapping], disk: u32, inside: u32| {
                    let outside = map.iter().find_map(|m| m.map(inside))?;
                    Some(vec![IdMapping {
                        inside: disk,
                        outside,
                        count: 1,
                    }])
                };
                Some((
                    line(&user.uid_map, self.caller.uid, self.process.uid)?,
                    line(&user.gid_map, self.caller.gid, self.process.gid)?,
                ))
            }
        }
    }

    /// The owners (host uids, host gids) whose files a mount id-mapped `through` a map gives
    /// the sandbox: the on-disk side of each line that changes an owner.
    pub fn handed_owners(&self, through: Idmap) -> (Vec<HostIds>, Vec<HostIds>) {
        let owners = |map: Vec<IdMapping>| {
            map.iter()
                .filter(|m| m.inside != m.outside)
                .map(|m| HostIds {
                    start: m.inside,
                    count: m.count,
                })
                .collect()
        };
        self.idmap_maps(through)
            .map(|(uid_map, gid_map)| (owners(uid_map), owners(gid_map)))
            .unwrap_or_default()
    }

    /// The ids the sandbox's setup process takes in the user step, inside the sandbox's user
    /// namespace: root when root is mapped, else the command's own (an unmapped fsuid cannot
    /// create a file). None without a user namespace: setup keeps the caller's ids.
    pub fn setup_ids(&self) -> Option<(u32, u32)> {
        let user = self.user.as_ref()?;
        let mapped = |map: &[IdMapping], own: u32| {
            if map.iter().any(|m| m.map(0).is_some()) {
                0
            } else {
                own
            }
        };
        Some((
            mapped(&user.uid_map, self.process.uid),
            mapped(&user.gid_map, self.process.gid),
        ))
    }

    /// Whether the command already runs with its own uid, gid and groups once the user step
    /// is done (which also drops the supplementary groups when it may), so the security step
    /// has no identity left to change.
    pub fn command_ids_set_up(&self) -> bool {
        let groups_done =
            self.process.groups.is_empty() || self.user.as_ref().is_some_and(|u| u.deny_setgroups);
        self.setup_ids() == Some((self.process.uid, self.process.gid)) && groups_done
    }

    /// Whether `sandbox up` returns as soon as init says the command ended (see
    /// [`Plan::waits_for_teardown`]); without a pid namespace the command is the sandbox's
    /// first process and there is no init to say so.
    pub fn returns_at_command_end(&self) -> bool {
        self.namespaces.pid && !self.waits_for_teardown()
    }

    /// Whether `sandbox up` must wait, once the command has exited, until the kernel has torn
    /// the sandbox down: to remove its cgroup, or because a kept overlay layer stays busy
    /// (overlayfs refuses a second mount of an upper dir in use) until its mount is gone.
    /// Otherwise it returns at once and the kernel finishes on its own, as with bubblewrap,
    /// unless the command left processes behind (see `exec::steps::pid`).
    pub fn waits_for_teardown(&self) -> bool {
        let kept = |upper: &Option<OverlayUpper>| matches!(upper, Some(OverlayUpper::Dir { .. }));
        self.cgroup.is_some()
            || kept(&self.root.overlay)
            || self.mounts.iter().any(|step| match &step.op {
                MountOp::Overlay { upper, .. } => kept(upper),
                _ => false,
            })
    }

    /// Where `key` was set, or `None` for a default.
    pub fn origin(&self, key: &str) -> Option<&Location> {
        self.provenance.get(key)
    }
}

/// An unprivileged caller's plan with a tmpfs root, no mount and nothing masked, for unit tests
/// to fill in.
#[cfg(test)]
pub(crate) fn for_tests() -> Plan {
    use crate::host::{Caller, FixedFacts, HostFacts};
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    // The paths `up` mounts on: a root the caller cannot write must have them.
    for dir in ["root/proc", "root/dev", "root/tmp", "root/etc"] {
        std::fs::create_dir_all(base.join(dir)).unwrap();
    }
    std::fs::write(base.join("root/etc/hosts"), "").unwrap();
    let caller = Caller::ann(1000);
    let text = "[rootfs]\npath = \"root\"\n";
    let loaded = crate::manifest::load_str(&base.join("sandbox.toml"), text, &caller.vars());
    let host = HostFacts::fixed(caller, FixedFacts::default());
    let invocation = crate::validate::Invocation::inspecting();
    let validated = crate::validate::validate(&loaded, &host, &invocation);
    let mut plan = validated.plan.expect("a plan");
    plan.root.source = RootSource::Tmpfs;
    plan.root.overlay = None;
    plan.root.idmapped = false;
    plan.mounts.clear();
    plan.security.masked_paths.clear();
    plan.security.readonly_paths.clear();
    plan
}
