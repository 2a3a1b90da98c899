//! Shared by the integration tests: host facts that do not depend on the machine, and the
//! header comments of the fixture manifests in tests/manifests/.

#![allow(dead_code)] // each test crate uses its own part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sandbox::cgroup::{Access, CgroupHost, Controller};
use sandbox::host::{Caller, FixedFacts, HostEntry, HostFacts, SubIdRange};
use sandbox::manifest::values::Rlimit;
use sandbox::plan::CgroupVersion;

/// Who runs the sandbox in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    /// uid and gid 1000, user "ann".
    Rootless,
}

/// The caller: root, or the unprivileged user ann (uid 1000), with a small fixed environment.
pub fn caller(who: Who) -> Caller {
    let (id, user, home) = match who {
        Who::Root => (0, "root", "/root"),
        Who::Rootless => (1000, "ann", "/home/ann"),
    };
    let env: BTreeMap<String, String> = [
        ("HOME", home),
        ("USER", user),
        ("TERM", "xterm-256color"),
        ("LANG", "C.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Caller {
        uid: id,
        gid: id,
        euid: id,
        user: Some(user.to_string()),
        home: Some(home.to_string()),
        env: env.into(),
    }
}

/// What a fixture's header says about the host; the defaults describe a common modern distro
/// with merged /usr, the uidmap package, no subuid grant for the caller, landlock ABI 5 and
/// cgroup v2 with every controller delegated to the caller.
#[derive(Debug, Clone)]
pub struct Facts {
    pub who: Who,
    pub subids: Vec<SubIdRange>,
    pub helpers: bool,
    pub landlock_abi: u32,
    pub cgroup: Cgroups,
    /// Whether the kernel weighs groups' I/O (BFQ or io.cost), which `io_weight` needs.
    pub io_weight: bool,
    /// The caller's hard limits; one not listed is unlimited.
    pub hard_limits: Vec<(Rlimit, u64)>,
    /// The caller holds CAP_SYS_RESOURCE.
    pub sys_resource: bool,
    /// Whether the file systems' mounts can be id-mapped (`idmap: none` in a header: no).
    pub idmap: bool,
    /// Who owns every path (default: as on disk).
    pub owner: Option<u32>,
    /// Linux (major, minor).
    pub kernel: (u32, u32),
    /// Directories on tmpfs (the others' file systems are unknown).
    pub on_tmpfs: Vec<PathBuf>,
}

/// The cgroup layouts a fixture can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroups {
    /// Pure v2; root's groups go under the root, a user's under its systemd delegation.
    V2,
    /// Pure v2 whose delegation hands down memory and pids only, as systemd's default
    /// `Delegate=` long did: cpu and io are not delegated.
    V2MemoryPids,
    /// A hybrid host like the project's VM: v1 controllers only root can write.
    V1,
    /// Nothing mounted.
    None,
}

impl Cgroups {
    fn host(self, who: Who) -> CgroupHost {
        let root = who == Who::Root;
        match self {
            Cgroups::None => CgroupHost::default(),
            Cgroups::V2 | Cgroups::V2MemoryPids => {
                let base = if root {
                    "/sys/fs/cgroup".to_string()
                } else {
                    "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service".to_string()
                };
                CgroupHost {
                    version: Some(CgroupVersion::V2),
                    controllers: Controller::ALL
                        .iter()
                        .map(|&c| {
                            let delegated = self == Cgroups::V2
                                || matches!(c, Controller::Memory | Controller::Pids);
                            let access = if delegated {
                                Access::Usable {
                                    base: base.clone().into(),
                                    hierarchy: Vec::new(),
                                }
                            } else {
                                Access::NotDelegated {
                                    base: base.clone().into(),
                                }
                            };
                            (c, access)
                        })
                        .collect(),
                }
            }
            Cgroups::V1 => CgroupHost {
                version: Some(CgroupVersion::V1),
                controllers: Controller::ALL
                    .iter()
                    .map(|&c| {
                        let name = c.kernel_name(CgroupVersion::V1).unwrap();
                        let dir = format!("/sys/fs/cgroup/{name}").into();
                        let access = if root {
                            Access::Usable {
                                base: dir,
                                hierarchy: vec![name.to_string()],
                            }
                        } else {
                            Access::NotWritable { dir }
                        };
                        (c, access)
                    })
                    .collect(),
            },
        }
    }
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            who: Who::Rootless,
            subids: Vec::new(),
            helpers: true,
            landlock_abi: 5,
            cgroup: Cgroups::V2,
            io_weight: true,
            hard_limits: Vec::new(),
            sys_resource: false,
            idmap: true,
            owner: None,
            kernel: (6, 18),
            on_tmpfs: Vec::new(),
        }
    }
}

impl Facts {
    pub fn host(&self) -> HostFacts {
        let helper = |name: &str| {
            self.helpers
                .then(|| PathBuf::from(format!("/usr/bin/{name}")))
        };
        HostFacts::fixed(
            caller(self.who),
            FixedFacts {
                subuid: self.subids.clone(),
                subgid: self.subids.clone(),
                newuidmap: helper("newuidmap"),
                newgidmap: helper("newgidmap"),
                nft: helper("nft"),
                pasta: helper("pasta"),
                host_root: vec![
                    ("/usr".into(), HostEntry::Dir),
                    ("/bin".into(), HostEntry::Symlink("usr/bin".into())),
                    ("/sbin".into(), HostEntry::Symlink("usr/sbin".into())),
                    ("/lib".into(), HostEntry::Symlink("usr/lib".into())),
                    ("/lib64".into(), HostEntry::Symlink("usr/lib64".into())),
                    ("/etc".into(), HostEntry::Dir),
                ],
                landlock_abi: self.landlock_abi,
                cgroup: self.cgroup.host(self.who),
                no_io_weight: !self.io_weight,
                hard_limits: self.hard_limits.clone(),
                sys_resource: self.sys_resource,
                nr_open: None,
                names: [
                    ("registry.example.org", &["192.0.2.10", "2001:db8::10"][..]),
                    ("v6only.example.org", &["2001:db8::20"][..]),
                ]
                .into_iter()
                .map(|(name, addresses)| {
                    let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
                    (name.to_string(), addresses)
                })
                .collect(),
                not_idmappable: (!self.idmap).then(|| "nfs".to_string()),
                owner: self.owner,
                kernel: Some(self.kernel),
                filesystems: self
                    .on_tmpfs
                    .iter()
                    .map(|dir| (dir.clone(), TMPFS_MAGIC))
                    .collect(),
                ..FixedFacts::default()
            },
        )
    }
}

/// The diagnostic a bad fixture must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub code: String,
    /// 1-based line; `None` for a problem that points at no key.
    pub line: Option<usize>,
    /// The file the line is in, relative to the fixture's folder; `None` for the fixture itself.
    pub file: Option<String>,
    /// Text the help line must contain.
    pub help: Option<String>,
}

/// A fixture's header: the comment lines at the top of the file.
///
/// ```toml
/// # Free text saying what the fixture shows.
/// # expect: sandbox::idmap::overlap line 12            (or `line 2 of extends/x.toml`)
/// # help: disjoint                                     (optional: text the help must contain)
/// # caller: root                                       (default: rootless, uid 1000)
/// # subids: 100000:65536                               (default: no grant)
/// # helpers: none                                      (default: newuidmap/newgidmap, nft, pasta present)
/// # landlock-abi: 3                                    (default: 5)
/// # cgroup: v1                                         (default: v2, delegated; or none)
/// # hard-limits: nofile 20000, data 1073741824           (default: unlimited)
/// # sys-resource: yes                                    (default: no CAP_SYS_RESOURCE)
/// # idmap: none                                        (default: every file system id-maps)
/// # owner: 0                                           (default: every path's owner on disk)
/// # kernel: 6.1                                        (default: 6.18)
/// # on-tmpfs: .                                        (a folder, from the fixture's, on tmpfs)
/// ```
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub facts: Facts,
    pub expect: Option<Expect>,
}

/// statfs(2)'s f_type of tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;

const KEYS: &[&str] = &[
    "kernel",
    "on-tmpfs",
    "expect",
    "help",
    "caller",
    "subids",
    "helpers",
    "landlock-abi",
    "cgroup",
    "io-weight",
    "hard-limits",
    "sys-resource",
    "idmap",
    "owner",
];

/// The value a header key's word stands for.
fn choice<T: Copy, const N: usize>(
    path: &Path,
    key: &str,
    value: &str,
    choices: [(&str, T); N],
) -> T {
    choices
        .iter()
        .find(|(word, _)| *word == value)
        .map(|(_, meant)| *meant)
        .unwrap_or_else(|| {
            let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
            panic!(
                "{}: {key} is one of {}, not {value}",
                path.display(),
                words.join(", ")
            )
        })
}

pub fn parse_header(path: &Path, text: &str) -> Header {
    let mut header = Header::default();
    let mut help = None;
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        let Some((key, value)) = comment.split_once(": ") else {
            continue;
        };
        let looks_like_key =
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
        if !looks_like_key {
            continue;
        }
        assert!(
            KEYS.contains(&key),
            "{}: unknown header key `{key}` (known: {})",
            path.display(),
            KEYS.join(", ")
        );
        let value = value.trim();
        match key {
            "expect" => header.expect = Some(parse_expect(path, value)),
            "help" => help = Some(value.to_string()),
            "caller" => {
                header.facts.who = match value {
                    "root" => Who::Root,
                    "rootless" => Who::Rootless,
                    other => panic!(
                        "{}: caller is root or rootless, not {other}",
                        path.display()
                    ),
                }
            }
            "subids" => {
                header.facts.subids = value
                    .split(',')
                    .map(|range| {
                        let (start, count) = range
                            .trim()
                            .split_once(':')
                            .unwrap_or_else(|| panic!("{}: subids START:COUNT", path.display()));
                        SubIdRange {
                            start: start.parse().expect("subid start"),
                            count: count.parse().expect("subid count"),
                        }
                    })
                    .collect()
            }
            "helpers" => {
                header.facts.helpers = choice(path, key, value, [("none", false), ("all", true)])
            }
            "landlock-abi" => header.facts.landlock_abi = value.parse().expect("landlock ABI"),
            "cgroup" => {
                header.facts.cgroup = match value {
                    "v1" => Cgroups::V1,
                    "v2" => Cgroups::V2,
                    "v2 memory pids" => Cgroups::V2MemoryPids,
                    "none" => Cgroups::None,
                    other => panic!(
                        "{}: cgroup is v1, v2, `v2 memory pids` or none, not {other}",
                        path.display()
                    ),
                }
            }
            "idmap" => {
                header.facts.idmap = choice(path, key, value, [("none", false), ("all", true)])
            }
            "owner" => header.facts.owner = Some(value.parse().expect("an owner uid")),
            "kernel" => {
                let (major, minor) = value
                    .split_once('.')
                    .unwrap_or_else(|| panic!("{}: kernel MAJOR.MINOR", path.display()));
                header.facts.kernel =
                    (major.parse().expect("major"), minor.parse().expect("minor"));
            }
            "on-tmpfs" => header
                .facts
                .on_tmpfs
                .push(path.parent().expect("a folder").join(value)),
            "io-weight" => {
                header.facts.io_weight = choice(path, key, value, [("none", false), ("bfq", true)])
            }
            "hard-limits" => {
                header.facts.hard_limits = value
                    .split(',')
                    .map(|limit| {
                        let (name, hard) = limit.trim().split_once(' ').unwrap_or_else(|| {
                            panic!("{}: hard-limits NAME VALUE, ...", path.display())
                        });
                        let name: Rlimit = serde_json::from_value(serde_json::json!(name))
                            .unwrap_or_else(|_| panic!("{}: no rlimit {name}", path.display()));
                        (name, hard.parse().expect("a hard limit"))
                    })
                    .collect()
            }
            "sys-resource" => {
                header.facts.sys_resource = choice(path, key, value, [("yes", true), ("no", false)])
            }
            _ => unreachable!(),
        }
    }
    if let Some(help) = help {
        header
            .expect
            .as_mut()
            .unwrap_or_else(|| panic!("{}: `help` without `expect`", path.display()))
            .help = Some(help);
    }
    header
}

/// `CODE`, `CODE line N` or `CODE line N of FILE`.
fn parse_expect(path: &Path, value: &str) -> Expect {
    let mut words = value.split_whitespace();
    let code = words.next().expect("a code").to_string();
    assert!(
        code.starts_with("sandbox::"),
        "{}: `{code}` is not an error code",
        path.display()
    );
    let rest: Vec<&str> = words.collect();
    let (line, file) = match rest.as_slice() {
        [] => (None, None),
        ["line", n] => (Some(n.parse().expect("a line number")), None),
        ["line", n, "of", file] => (
            Some(n.parse().expect("a line number")),
            Some(file.to_string()),
        ),
        _ => panic!(
            "{}: write `expect: CODE line N [of FILE]`, not `{value}`",
            path.display()
        ),
    };
    Expect {
        code,
        line,
        file,
        help: None,
    }
}

/// The fixtures of one folder (not its subfolders), sorted; `*.local.toml` files are overrides
/// merged into their neighbour, not fixtures of their own.
pub fn fixtures(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.extension().is_some_and(|e| e == "toml")
                && !path.to_string_lossy().ends_with(".local.toml")
        })
        .collect();
    paths.sort();
    paths
}
