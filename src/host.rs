//! Facts about the machine and the caller that validation depends on.
//!
//! Validation is a pure function of the manifest and these facts. [`HostFacts::live`] probes
//! each fact the first time a rule asks for it (a manifest without landlock never probes the
//! landlock ABI); [`HostFacts::fixed`] takes them as given, for tests and `sandbox doctor`
//! scenarios.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cgroup::CgroupHost;
use crate::manifest::values::{Arch, Rlimit};
use crate::manifest::vars::Vars;
use crate::plan::{CgroupVersion, Ids};

/// A range of subordinate ids granted to the caller in /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubIdRange {
    pub start: u32,
    pub count: u32,
}

/// A line of /etc/subuid or /etc/subgid: ids granted to a user (by name or uid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubIdGrant {
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

impl SubIdGrant {
    pub fn range(&self) -> SubIdRange {
        SubIdRange {
            start: self.start,
            count: self.count,
        }
    }
}

/// What one of the host's top-level system paths is, for `rootfs.host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostEntry {
    Dir,
    Symlink(String),
}

/// The caller, as the kernel and the environment see them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub user: Option<String>,
    pub home: Option<String>,
    pub env: std::sync::Arc<BTreeMap<String, String>>,
}

impl Caller {
    /// A caller for unit tests: user ann, home /home/ann, ids `uid`, an empty environment.
    #[cfg(test)]
    pub(crate) fn ann(uid: u32) -> Caller {
        Caller {
            uid,
            gid: uid,
            euid: uid,
            user: Some("ann".into()),
            home: Some("/home/ann".into()),
            env: Default::default(),
        }
    }

    pub fn current() -> Caller {
        let env: BTreeMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let uid = nix::unistd::getuid().as_raw();
        // Only from the environment: a passwd lookup goes through NSS (files, nscd sockets),
        // which the launch path does not need; `user_name` looks it up where it matters.
        let user = env.get("USER").cloned();
        Caller {
            uid,
            gid: nix::unistd::getgid().as_raw(),
            euid: nix::unistd::geteuid().as_raw(),
            home: env.get("HOME").cloned(),
            user,
            env: env.into(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    /// The caller's user name: $USER, or the password database when it is not set.
    pub fn user_name(&self) -> Option<String> {
        self.user.clone().or_else(|| user_name_of(self.uid))
    }

    pub fn vars(&self) -> Vars {
        Vars {
            project_dir: String::new(),
            home: self.home.clone(),
            user: self.user.clone(),
            user_name_of: Some(user_name_of),
            uid: self.uid,
            gid: self.gid,
            env: self.env.clone(),
        }
    }
}

/// The system directories `rootfs.host` binds (or recreates as symlinks), in mount order.
pub const HOST_ROOT_PATHS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// The host's system directories: a read-only bind of one needs no trust, and as root their
/// files stay the host's root's (never id-mapped to the sandbox's ids unless asked for, or
/// /etc/shadow would be the sandbox's to read).
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// The kernel's file systems a bind may show: their files are the kernel's, never the caller's.
const KERNEL_DIRS: &[&str] = &["/dev", "/proc", "/sys"];

/// Below a kernel directory, a scratch tmpfs every user may make folders in, as in /tmp: a
/// folder there is judged by its owner and mode like any other.
const SCRATCH_DIRS: &[&str] = &["/dev/shm"];

/// Whether `path` (resolved) shows a kernel file system's files.
fn is_kernel_path(path: &Path) -> bool {
    KERNEL_DIRS.iter().any(|dir| path.starts_with(dir))
        && !SCRATCH_DIRS.iter().any(|dir| path.starts_with(dir))
}

/// Whether `path` (resolved) is one of the host's system directories or below one.
pub fn is_system_path(path: &Path) -> bool {
    SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
}

/// Why a folder owned by `owner` with `mode` is not `caller`'s own (see
/// [`HostFacts::not_own`]): someone else owns it, or others may write it.
pub fn others_folder(owner: Ids, mode: u32, caller: Ids) -> Option<String> {
    if owner.uid != caller.uid {
        Some(format!("owned by uid {}", owner.uid))
    } else if mode & 0o002 != 0 {
        Some("writable by every user".to_string())
    } else if mode & 0o020 != 0 && owner.gid != caller.gid {
        Some(format!("writable by group {}", owner.gid))
    } else {
        None
    }
}

/// A path missing in a root directory (see [`HostFacts::missing_below`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBelow {
    /// The first missing part, as the sandbox sees it (`/proc`).
    pub path: PathBuf,
    /// The owner and mode of the folder it would be made in.
    pub owner: Ids,
    pub mode: u32,
}

/// Why a host directory's files are not the caller's own to id-map, when they are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOwn {
    /// One of the host's system directories (or below one), or a kernel file system: never
    /// id-mapped unless asked for, and said nothing about (the documented default).
    System(&'static str),
    /// Someone else's, or one that others may write (files they put there, or set-id files
    /// the sandbox would make there as the caller): id-mapped only when asked for, and
    /// said when the default would have.
    Others(String),
}

impl std::fmt::Display for NotOwn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotOwn::System(why) => f.write_str(why),
            NotOwn::Others(why) => f.write_str(why),
        }
    }
}

/// File systems whose mounts Linux can id-map (FS_ALLOW_IDMAP), by statfs(2) magic, with the
/// release that allowed it; `None`: no release up to [`IDMAP_CHECKED_UP_TO`] does
/// (mount_setattr(2) fails with EINVAL). Others may, on newer kernels or out of tree (OpenZFS
/// 2.2): `idmap = true` asks for it anyway; only the default is cautious.
const IDMAPPABLE: &[(i64, &str, Option<Release>)] = &[
    (0xEF53, "ext4", Some((5, 12))),
    (0x5846_5342, "xfs", Some((5, 12))),
    (0x4d44, "vfat", Some((5, 12))),
    (0x9123_683E, "btrfs", Some((5, 15))),
    (0xF2F5_2010, "f2fs", Some((5, 18))),
    (0x794c_7630, "overlayfs", Some((5, 19))),
    (0x0102_1994, "tmpfs", Some((6, 3))),
    (0x0102_1997, "9p", None),
    (0x6969, "nfs", None),
    (0xFF53_4D42, "cifs", None),
    (0xFE53_4D42, "smb2", None),
];
const IDMAP_CHECKED_UP_TO: Release = (6, 18);

/// A Linux release, (major, minor).
pub type Release = (u32, u32);

/// Why mounts of a file system cannot be id-mapped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotIdmappable {
    /// One this kernel is known not to id-map: Linux does from `since` on (`None`: no release
    /// does yet).
    Known {
        fs: &'static str,
        since: Option<Release>,
    },
    /// One not known to be id-mappable (its statfs type, or given by a test).
    Unknown(String),
}

impl std::fmt::Display for NotIdmappable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotIdmappable::Known {
                fs,
                since: Some((major, minor)),
            } => write!(f, "{fs} before Linux {major}.{minor}"),
            NotIdmappable::Known { fs, since: None } => f.write_str(fs),
            NotIdmappable::Unknown(what) => f.write_str(what),
        }
    }
}

pub struct HostFacts {
    pub caller: Caller,
    pub arch: Arch,
    /// Every grant of /etc/subuid and /etc/subgid, each file read once.
    subuid: OnceCell<Vec<SubIdGrant>>,
    subgid: OnceCell<Vec<SubIdGrant>>,
    user_name: OnceCell<Option<String>>,
    newuidmap: OnceCell<Option<PathBuf>>,
    newgidmap: OnceCell<Option<PathBuf>>,
    nft: OnceCell<Option<PathBuf>>,
    pasta: OnceCell<Option<PathBuf>>,
    host_root: OnceCell<Vec<(String, HostEntry)>>,
    landlock_abi: OnceCell<u32>,
    cgroup: OnceCell<CgroupHost>,
    weighs_io: OnceCell<bool>,
    hard_limits: OnceCell<BTreeMap<Rlimit, u64>>,
    sys_resource: OnceCell<bool>,
    nr_open: OnceCell<u64>,
    /// Host names looked up so far; with fixed facts, the only names there are.
    names: RefCell<BTreeMap<String, Result<Vec<IpAddr>, String>>>,
    names_fixed: bool,
    kernel: OnceCell<Option<(u32, u32)>>,
    /// Given file systems (tests); the live host asks statfs(2).
    filesystems: OnceCell<Vec<(PathBuf, i64)>>,
    /// Given, for tests: every path is on this file system, which cannot be id-mapped.
    not_idmappable: Option<String>,
    /// Given, for tests: every path belongs to this uid (and group), writable by it alone.
    owner: Option<u32>,
    systemd: OnceCell<bool>,
    /// This run's command line, for fixes that repeat it.
    argv: Vec<String>,
}

impl HostFacts {
    /// Facts of this machine and caller, probed on first use.
    pub fn live() -> HostFacts {
        let mut facts = HostFacts::with_caller(Caller::current());
        facts.argv = std::env::args().collect();
        facts
    }

    fn with_caller(caller: Caller) -> HostFacts {
        HostFacts {
            caller,
            arch: Arch::host(),
            subuid: OnceCell::new(),
            subgid: OnceCell::new(),
            user_name: OnceCell::new(),
            newuidmap: OnceCell::new(),
            newgidmap: OnceCell::new(),
            nft: OnceCell::new(),
            pasta: OnceCell::new(),
            host_root: OnceCell::new(),
            landlock_abi: OnceCell::new(),
            cgroup: OnceCell::new(),
            weighs_io: OnceCell::new(),
            hard_limits: OnceCell::new(),
            sys_resource: OnceCell::new(),
            nr_open: OnceCell::new(),
            names: RefCell::new(BTreeMap::new()),
            names_fixed: false,
            kernel: OnceCell::new(),
            filesystems: OnceCell::new(),
            not_idmappable: None,
            owner: None,
            systemd: OnceCell::new(),
            argv: Vec::new(),
        }
    }

    /// Facts given in full, for tests: nothing is probed.
    pub fn fixed(caller: Caller, fixed: FixedFacts) -> HostFacts {
        let mut facts = HostFacts::with_caller(caller);
        facts.names = RefCell::new(
            fixed
                .names
                .into_iter()
                .map(|(name, addresses)| (name, Ok(addresses)))
                .collect(),
        );
        facts.names_fixed = true;
        facts.not_idmappable = fixed.not_idmappable;
        facts.owner = fixed.owner;
        // The caller's own grants are listed under its uid, after everyone else's.
        let grants = |own: Vec<SubIdRange>| -> Vec<SubIdGrant> {
            let owner = facts.caller.uid.to_string();
            let own = own.into_iter().map(|r| SubIdGrant {
                owner: owner.clone(),
                start: r.start,
                count: r.count,
            });
            fixed.others.iter().cloned().chain(own).collect()
        };
        let (subuid, subgid) = (grants(fixed.subuid), grants(fixed.subgid));
        let _ = facts.subuid.set(subuid);
        let _ = facts.subgid.set(subgid);
        let _ = facts.newuidmap.set(fixed.newuidmap);
        let _ = facts.newgidmap.set(fixed.newgidmap);
        let _ = facts.nft.set(fixed.nft);
        let _ = facts.pasta.set(fixed.pasta);
        let _ = facts.host_root.set(fixed.host_root);
        let _ = facts.landlock_abi.set(fixed.landlock_abi);
        let _ = facts.cgroup.set(fixed.cgroup);
        let _ = facts.weighs_io.set(!fixed.no_io_weight);
        let _ = facts
            .hard_limits
            .set(fixed.hard_limits.into_iter().collect());
        let _ = facts.sys_resource.set(fixed.sys_resource);
        let _ = facts.nr_open.set(fixed.nr_open.unwrap_or(NR_OPEN_DEFAULT));
        let _ = facts.kernel.set(fixed.kernel);
        let _ = facts.filesystems.set(fixed.filesystems);
        let _ = facts.systemd.set(fixed.systemd);
        facts.argv = fixed.argv;
        facts
    }

    /// The caller's grants in /etc/subuid.
    pub fn subuid(&self) -> Vec<SubIdRange> {
        self.own(self.subuid_grants())
    }

    /// The caller's grants in /etc/subgid.
    pub fn subgid(&self) -> Vec<SubIdRange> {
        self.own(self.subgid_grants())
    }

    /// Every grant in /etc/subuid, anyone's.
    pub fn subuid_grants(&self) -> &[SubIdGrant] {
        self.subuid
            .get_or_init(|| read_subid_grants(Path::new("/etc/subuid")))
    }

    /// Every grant in /etc/subgid, anyone's.
    pub fn subgid_grants(&self) -> &[SubIdGrant] {
        self.subgid
            .get_or_init(|| read_subid_grants(Path::new("/etc/subgid")))
    }

    fn own(&self, grants: &[SubIdGrant]) -> Vec<SubIdRange> {
        // The name is looked up only when some grant is there to match.
        grants
            .iter()
            .filter(|g| self.is_callers(g))
            .map(SubIdGrant::range)
            .collect()
    }

    /// Whether `grant` is the caller's, by uid or by name.
    pub fn is_callers(&self, grant: &SubIdGrant) -> bool {
        grant.owner == self.caller.uid.to_string() || Some(grant.owner.as_str()) == self.user_name()
    }

    /// The caller's user name, looked up (through NSS when $USER is unset) once.
    pub fn user_name(&self) -> Option<&str> {
        self.user_name
            .get_or_init(|| self.caller.user_name())
            .as_deref()
    }

    pub fn newuidmap(&self) -> Option<&Path> {
        self.newuidmap
            .get_or_init(|| find_program("newuidmap"))
            .as_deref()
    }

    pub fn newgidmap(&self) -> Option<&Path> {
        self.newgidmap
            .get_or_init(|| find_program("newgidmap"))
            .as_deref()
    }

    /// `nft` (Debian's nftables), which bridge networking drives for NAT and published ports.
    pub fn nft(&self) -> Option<&Path> {
        self.nft.get_or_init(|| find_program("nft")).as_deref()
    }

    /// `pasta` (Debian's passt), the user-mode network of rootless sandboxes.
    pub fn pasta(&self) -> Option<&Path> {
        self.pasta.get_or_init(|| find_program("pasta")).as_deref()
    }

    /// The host's /usr, /bin, /lib*, ... that exist, as directories or symlinks.
    pub fn host_root(&self) -> &[(String, HostEntry)] {
        self.host_root.get_or_init(|| {
            HOST_ROOT_PATHS
                .iter()
                .filter_map(|path| {
                    let meta = std::fs::symlink_metadata(path).ok()?;
                    let entry = if meta.file_type().is_symlink() {
                        HostEntry::Symlink(
                            std::fs::read_link(path)
                                .ok()?
                                .to_string_lossy()
                                .into_owned(),
                        )
                    } else if meta.is_dir() {
                        HostEntry::Dir
                    } else {
                        return None;
                    };
                    Some((path.to_string(), entry))
                })
                .collect()
        })
    }

    /// Whether mounts of the file system holding `path` can be id-mapped here.
    pub fn idmappable(&self, path: &Path) -> Result<(), NotIdmappable> {
        if let Some(fs) = &self.not_idmappable {
            return Err(NotIdmappable::Unknown(fs.clone()));
        }
        let Some(magic) = self.filesystem(path) else {
            // Absent (an optional bind): there is nothing to map yet.
            return Ok(());
        };
        let kernel = self.kernel().unwrap_or_default();
        match IDMAPPABLE.iter().find(|(known, ..)| *known == magic) {
            Some((_, _, Some(since))) if kernel >= *since => Ok(()),
            Some((_, fs, None)) if kernel > IDMAP_CHECKED_UP_TO => {
                Err(NotIdmappable::Unknown((*fs).to_string()))
            }
            Some((_, fs, since)) => Err(NotIdmappable::Known { fs, since: *since }),
            None => Err(NotIdmappable::Unknown(format!(
                "its file system (statfs type {magic:#x})"
            ))),
        }
    }

    /// Whether the files below `path` (resolved) are the caller's own to id-map onto the
    /// sandbox's ids, or why not. They are not in the host's system directories, the kernel's
    /// file systems or a folder holding them (`/`), and not in a folder that someone else owns
    /// or may write: id-mapped, its owner's files would be the sandbox's, and what the sandbox
    /// makes there (set-id files included) the caller's. A path still to be made is judged by
    /// the folder it will be made in.
    pub fn not_own(&self, path: &Path) -> Option<NotOwn> {
        if is_kernel_path(path) {
            return Some(NotOwn::System("a kernel file system"));
        }
        if is_system_path(path) {
            return Some(NotOwn::System("one of the host's system directories"));
        }
        if SYSTEM_DIRS
            .iter()
            .any(|dir| Path::new(dir).starts_with(path))
        {
            return Some(NotOwn::System("it holds the host's system directories"));
        }
        let (uid, gid, mode) = match self.owner {
            Some(uid) => (uid, uid, 0o755),
            None => {
                use std::os::unix::fs::MetadataExt;
                let meta = path
                    .ancestors()
                    .find_map(|p| std::fs::symlink_metadata(p).ok())?;
                (meta.uid(), meta.gid(), meta.mode())
            }
        };
        others_folder(
            Ids { uid, gid },
            mode,
            Ids {
                uid: self.caller.uid,
                gid: self.caller.gid,
            },
        )
        .map(NotOwn::Others)
    }

    /// The first part of `inside` missing below the directory `root`, with the owner and mode
    /// of the folder it would be made in; `None` when `inside` is there, or when the way to it
    /// passes a symlink or a file (the mount step resolves those in the root, and judges them).
    pub fn missing_below(&self, root: &Path, inside: &Path) -> Option<MissingBelow> {
        use std::os::unix::fs::MetadataExt;
        let mut folder = root.to_path_buf();
        let mut missing = PathBuf::from("/");
        let mut meta = std::fs::symlink_metadata(&folder).ok()?;
        for part in inside.components().skip_while(|c| c.as_os_str() == "/") {
            if !meta.is_dir() {
                return None;
            }
            folder.push(part);
            missing.push(part);
            match std::fs::symlink_metadata(&folder) {
                Ok(next) => meta = next,
                Err(_) => {
                    let (owner, mode) = match self.owner {
                        Some(uid) => (Ids { uid, gid: uid }, 0o755),
                        None => (
                            Ids {
                                uid: meta.uid(),
                                gid: meta.gid(),
                            },
                            meta.mode(),
                        ),
                    };
                    return Some(MissingBelow {
                        path: missing,
                        owner,
                        mode,
                    });
                }
            }
        }
        None
    }

    /// The landlock ABI version the kernel offers (0: none).
    pub fn landlock_abi(&self) -> u32 {
        *self.landlock_abi.get_or_init(crate::sys::raw::landlock_abi)
    }

    /// The addresses `name` has on this host, in the order the resolver prefers them
    /// (getaddrinfo(3): /etc/hosts, DNS, whatever nsswitch.conf says), each once; or why it
    /// has none. Looked up once per name, before the clone, in this single thread (an NSS module
    /// loaded here stays loaded, and starts no thread).
    pub fn resolve(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(known) = self.names.borrow().get(name) {
            return known.clone();
        }
        let found = if self.names_fixed {
            Err("not known to the fixed host facts".to_string())
        } else {
            lookup(name)
        };
        self.names
            .borrow_mut()
            .insert(name.to_string(), found.clone());
        found
    }

    /// The cgroup controllers this caller can use, and where.
    pub fn cgroup(&self) -> &CgroupHost {
        self.cgroup.get_or_init(crate::cgroup::probe)
    }

    /// Whether the kernel weighs the I/O of groups (`io_weight`), the io controller being
    /// usable under `base`.
    pub fn kernel_weighs_io(&self, version: CgroupVersion, base: &Path) -> bool {
        *self
            .weighs_io
            .get_or_init(|| crate::cgroup::kernel_weighs_io(version, base))
    }

    /// The caller's hard limit of `rlimit` (getrlimit(2); `RLIM_INFINITY` when unlimited), above
    /// which no process may set it without CAP_SYS_RESOURCE.
    pub fn hard_limit(&self, rlimit: Rlimit) -> u64 {
        let limits = self.hard_limits.get_or_init(|| {
            Rlimit::ALL
                .into_iter()
                .filter_map(|r| Some((r, nix::sys::resource::getrlimit(r.resource()).ok()?.1)))
                .collect()
        });
        limits.get(&rlimit).copied().unwrap_or(libc::RLIM_INFINITY)
    }

    /// Whether the caller holds CAP_SYS_RESOURCE (in its effective set), which may raise a hard
    /// limit.
    pub fn may_raise_hard_limits(&self) -> bool {
        *self.sys_resource.get_or_init(|| {
            caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            )
            .unwrap_or(false)
        })
    }

    /// fs.nr_open: no process may have more open files, whatever its capabilities.
    pub fn nr_open(&self) -> u64 {
        *self.nr_open.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(NR_OPEN_DEFAULT)
        })
    }
    /// The running kernel's version, (major, minor).
    pub fn kernel(&self) -> Option<(u32, u32)> {
        *self.kernel.get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .and_then(|release| kernel_version(&release))
        })
    }

    /// Whether systemd manages this host (sd_booted(3): /run/systemd/system exists).
    pub fn systemd(&self) -> bool {
        *self
            .systemd
            .get_or_init(|| Path::new("/run/systemd/system").is_dir())
    }

    /// On a systemd host, this very command run in a transient scope of the caller's user
    /// manager that delegates its cgroup (what a login shell's session scope does not).
    pub fn systemd_run(&self) -> Option<String> {
        let command = if self.argv.is_empty() {
            "sandbox up ...".to_string()
        } else {
            crate::plan::shell_words(&self.argv)
        };
        self.systemd()
            .then(|| format!("systemd-run --user --scope -p Delegate=yes -- {command}"))
    }

    /// The file system `path` is on, by statfs(2)'s magic number (`f_type`).
    fn filesystem(&self, path: &Path) -> Option<i64> {
        match self.filesystems.get() {
            Some(given) => given.iter().find(|(p, _)| p == path).map(|(_, fs)| *fs),
            // f_type is a long with glibc and unsigned with musl.
            #[allow(clippy::unnecessary_cast)]
            None => nix::sys::statfs::statfs(path)
                .ok()
                .map(|fs| fs.filesystem_type().0 as i64),
        }
    }
}

/// (major, minor) of a kernel release such as "6.1.0-57-amd64".
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The kernel's default fs.nr_open.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// Facts that [`HostFacts::fixed`] takes instead of probing.
#[derive(Debug, Clone, Default)]
pub struct FixedFacts {
    /// The caller's grants.
    pub subuid: Vec<SubIdRange>,
    pub subgid: Vec<SubIdRange>,
    /// Other users' grants, in both files.
    pub others: Vec<SubIdGrant>,
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    pub nft: Option<PathBuf>,
    pub pasta: Option<PathBuf>,
    pub host_root: Vec<(String, HostEntry)>,
    pub landlock_abi: u32,
    pub cgroup: CgroupHost,
    /// No I/O scheduler weighs groups (no BFQ, no io.cost).
    pub no_io_weight: bool,
    /// The caller's hard limits; one not listed is unlimited.
    pub hard_limits: Vec<(Rlimit, u64)>,
    /// The caller holds CAP_SYS_RESOURCE.
    pub sys_resource: bool,
    /// fs.nr_open; `None`: the kernel's default, 1048576.
    pub nr_open: Option<u64>,
    /// Host names and their addresses; any other name does not resolve.
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Every path is on this file system, whose mounts cannot be id-mapped (default: all can).
    pub not_idmappable: Option<String>,
    /// Every path belongs to this uid and group, writable by it alone (default: as on disk).
    pub owner: Option<u32>,
    pub kernel: Option<(u32, u32)>,
    /// The file system of each path asked about (statfs magic); others are unknown.
    pub filesystems: Vec<(PathBuf, i64)>,
    /// systemd manages the host.
    pub systemd: bool,
    pub argv: Vec<String>,
}

fn lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    use std::net::ToSocketAddrs;
    // std words every failure "failed to lookup address information: WHY"; WHY is the news.
    let found = (name, 0).to_socket_addrs().map_err(|e| {
        let text = e.to_string();
        match text.split_once(": ") {
            Some((_, why)) => why.to_string(),
            None => text,
        }
    })?;
    let mut addresses: Vec<IpAddr> = Vec::new();
    for address in found.map(|a| a.ip()) {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return Err("no address".into());
    }
    Ok(addresses)
}

/// A user name from the password database.
pub fn user_name_of(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Every grant of a subuid/subgid file: lines `name:start:count` or `uid:start:count`.
pub fn parse_subid_grants(text: &str) -> Vec<SubIdGrant> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?.to_string();
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            Some(SubIdGrant {
                owner,
                start,
                count,
            })
        })
        .filter(|grant| grant.count > 0)
        .collect()
}

/// The grants of the user `uid` (named `name`) in a subuid/subgid file.
pub fn parse_subids(text: &str, uid: u32, name: Option<&str>) -> Vec<SubIdRange> {
    let uid = uid.to_string();
    parse_subid_grants(text)
        .into_iter()
        .filter(|g| g.owner == uid || Some(g.owner.as_str()) == name)
        .map(|g| g.range())
        .collect()
}

fn read_subid_grants(path: &Path) -> Vec<SubIdGrant> {
    crate::input::read_regular_file(path, 16 << 20)
        .map(|bytes| parse_subid_grants(&String::from_utf8_lossy(&bytes)))
        .unwrap_or_default()
}

pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subid_lines_match_by_name_or_uid() {
        let caller = Caller {
            uid: 1000,
            gid: 1000,
            euid: 1000,
            user: Some("ann".into()),
            home: None,
            env: Default::default(),
        };
        let text = "bob:100000:65536\nann:165536:65536\n1000:300000:10\n# junk\nann:1:0\nann:x:1\n";
        assert_eq!(
            parse_subids(text, caller.uid, caller.user.as_deref()),
            [
                SubIdRange {
                    start: 165536,
                    count: 65536
                },
                SubIdRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
    }
}
