//! Structured fuzz input: a manifest assembled from the schema's own section headers, keys and
//! interesting values (plus the odd arbitrary string), host facts, and a command line. Random
//! bytes rarely spell `[[uid_map]]` with `outside = "self"`; these inputs reach the validation
//! rules from the first run, and the fuzzer mutates their structure rather than their spelling.

use std::fmt::Write;
use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use sandbox::host::{Caller, FixedFacts, HOST_ROOT_PATHS, HostEntry, HostFacts, SubIdRange};
use sandbox::plan::CgroupVersion;
use sandbox::validate::Invocation;

/// Section headers, with the keys that belong in each. `[[...]]` headers are arrays of tables.
const SECTIONS: &[(&str, &[&str])] = &[
    ("", &["version", "name", "extends", "uid_map", "gid_map"]),
    (
        "rootfs",
        &[
            "host", "path", "tar", "oci", "sha256", "readonly", "overlay", "proc", "dev", "tmp",
        ],
    ),
    ("rootfs.overlay", &["upper"]),
    (
        "process",
        &[
            "command",
            "cwd",
            "user",
            "group",
            "groups",
            "env",
            "inherit_env",
            "tty",
            "timeout",
            "umask",
            "deterministic",
        ],
    ),
    ("process.env", &["PATH", "HOME", "LANG", "A", "=", ""]),
    (
        "namespaces",
        &[
            "user", "mount", "pid", "net", "uts", "ipc", "cgroup", "time",
        ],
    ),
    ("uts", &["hostname", "domainname"]),
    ("time", &["monotonic_offset", "boottime_offset"]),
    ("[uid_map]", &["inside", "outside", "count"]),
    ("[gid_map]", &["inside", "outside", "count"]),
    (
        "[mount]",
        &[
            "type", "source", "target", "readonly", "idmap", "optional", "size", "mode", "content",
            "upper",
        ],
    ),
    (
        "cgroup",
        &[
            "memory",
            "memory_swap",
            "cpus",
            "cpu_weight",
            "pids",
            "io_weight",
            "parent",
        ],
    ),
    (
        "network",
        &[
            "mode", "bridge", "subnet", "address", "ports", "dns", "hosts", "isolate",
        ],
    ),
    ("network.hosts", &["db", "a.b", "-x", ""]),
    (
        "security",
        &[
            "capabilities",
            "no_new_privileges",
            "seccomp",
            "landlock",
            "rlimits",
        ],
    ),
    (
        "security.seccomp",
        &["default_action", "deny", "allow", "errno"],
    ),
    (
        "security.landlock",
        &[
            "read",
            "write",
            "execute",
            "bind_tcp",
            "connect_tcp",
            "required",
        ],
    ),
    (
        "security.rlimits",
        &[
            "as",
            "core",
            "cpu",
            "data",
            "fsize",
            "locks",
            "memlock",
            "msgqueue",
            "nice",
            "nofile",
            "nproc",
            "rss",
            "rtprio",
            "rttime",
            "sigpending",
            "stack",
            "bogus",
        ],
    ),
];

/// Strings that mean something to some rule: keywords, paths, sizes, durations, modes, ports,
/// names, addresses, variables.
const STRINGS: &[&str] = &[
    "",
    "auto",
    "self",
    "/",
    "/work",
    "/tmp",
    "/proc",
    "/sys",
    "/dev",
    "/etc/hosts",
    "/work/sub",
    "/a/../b",
    "//a/./b//",
    "relative",
    ".",
    "..",
    "./rootfs",
    "/nonexistent",
    "/dev/zero",
    "/dev/null",
    "a\u{0}b",
    "512M",
    "1K",
    "0",
    "16384P",
    "18446744073709551615",
    "17179869184G",
    "30s",
    "1h30m",
    "250ms",
    "-1h",
    "+5d",
    "99999999999999999999d",
    "106751991167d",
    "0755",
    "0o1777",
    "7777",
    "17777",
    "8",
    "127.0.0.1:8080:80/tcp",
    "8080:80",
    "80",
    "[::1]:8080:80/udp",
    "0:80",
    "1:2:3:4",
    "8080:80/sctp",
    "[::1",
    "CAP_SYS_ADMIN",
    "net_bind_service",
    "cap_bogus",
    "ptrace",
    "mount",
    "notasyscall",
    "EPERM",
    "eacces",
    "EBOGUS",
    "unlimited",
    "infinity",
    "10.88.0.0/16",
    "10.88.0.0/30",
    "10.88.0.0/31",
    "10.88.0.0/32",
    "0.0.0.0/0",
    "255.255.255.255/32",
    "10.88.0.1",
    "10.88.0.2",
    "10.88.255.255",
    "10.89.0.2",
    "::1",
    "not an ip",
    "sbx0",
    "an-interface-name-too-long",
    "api-dev",
    "Api Dev",
    "a.b",
    "-x",
    "sandbox",
    "ci/jobs",
    "/abs/cgroup",
    "a//b",
    "${PROJECT_DIR}",
    "${HOME}/x",
    "${USER}",
    "${UID}:${GID}",
    "${env:TERM}",
    "${env:NOPE:-fallback}",
    "${env:NOPE}",
    "${NOPE}",
    "${",
    "${}",
    "$$",
    "$1 $PATH",
    "bind",
    "tmpfs",
    "proc",
    "sysfs",
    "dev",
    "devpts",
    "mqueue",
    "overlay",
    "symlink",
    "file",
    "dir",
    "none",
    "host",
    "bridge",
    "pasta",
    "default",
    "off",
    "allow",
    "errno",
    "kill",
    "always",
    "never",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "base.toml",
    "/nonexistent/fuzz-project/sandbox.toml",
    "\u{e9}t\u{e9}",
    "\u{1f600}",
];

const INTEGERS: &[i64] = &[
    0,
    1,
    -1,
    2,
    22,
    80,
    100,
    340,
    1000,
    1001,
    4095,
    4096,
    10_000,
    10_001,
    65_535,
    65_536,
    65_537,
    100_000,
    165_536,
    1 << 20,
    (1 << 20) - 1,
    u32::MAX as i64 - 1,
    u32::MAX as i64,
    u32::MAX as i64 + 1,
    i32::MAX as i64,
    i64::MAX,
    i64::MIN,
];

const FLOATS: &[&str] = &[
    "0.0", "0.01", "0.009", "1.5", "2.0", "4096.0", "4096.5", "-1.0", "1e300", "-0.0", "inf",
    "-inf", "nan", "5e-324",
];

#[derive(Arbitrary, Debug)]
pub struct Input {
    pub facts: Facts,
    pub invocation: InvocationInput,
    pub folder: Folder,
    pub items: Vec<Item>,
}

#[derive(Arbitrary, Debug)]
pub enum Folder {
    Project,
    Spaced,
    Dots,
    Arbitrary(String),
}

#[derive(Arbitrary, Debug)]
pub enum Item {
    /// A `[section]` or `[[array]]` header, by index into SECTIONS.
    Header(u8),
    /// A key of the current section (by index) and a value.
    Pair(u8, Value),
    /// A dotted key naming another section's key: `process.cwd = ...`.
    Dotted(u8, u8, Value),
    /// A key that is no key of the schema.
    Unknown(Str, Value),
    /// Raw text, for the parser.
    Raw(String),
}

#[derive(Arbitrary, Debug)]
pub enum Value {
    Bool(bool),
    Int(u8),
    AnyInt(i64),
    Float(u8),
    AnyFloat(f64),
    Str(Str),
    Array(Vec<Value>),
    Table(Vec<(u8, Value)>),
    Datetime,
}

#[derive(Arbitrary, Debug)]
pub enum Str {
    Known(u8),
    Any(String),
    /// Several known strings joined, e.g. paths or variables in the middle of text.
    Joined(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub struct Facts {
    pub caller: CallerKind,
    pub subuid: Vec<SubId>,
    pub subgid: Vec<SubId>,
    pub helpers: bool,
    pub host_root: Vec<(u8, bool)>,
    pub landlock_abi: u8,
    pub user: bool,
    pub home: bool,
    pub cgroup: Cgroups,
}

#[derive(Arbitrary, Debug)]
pub enum Cgroups {
    V2,
    V1,
    None,
}

/// A line of /etc/subuid or /etc/subgid.
#[derive(Arbitrary, Debug)]
pub enum SubId {
    /// `ann:100000:65536`, as `useradd` writes it.
    Typical,
    /// Starts and counts from the edges: around the caller's id, 2^16, 2^31 and the top of the
    /// id space.
    Edge(u8, u8),
    Any(u32, u32),
}

const SUBID_STARTS: &[u32] = &[
    0,
    1,
    999,
    1000,
    1001,
    65_536,
    100_000,
    165_536,
    1 << 31,
    u32::MAX - 65_536,
    u32::MAX - 65_535,
    u32::MAX - 10,
    u32::MAX - 1,
    u32::MAX,
];
const SUBID_COUNTS: &[u32] = &[1, 2, 10, 1000, 65_535, 65_536, 65_537, 1 << 31, u32::MAX];

impl SubId {
    fn range(&self) -> (u32, u32) {
        match *self {
            SubId::Typical => (100_000, 65_536),
            SubId::Edge(start, count) => (
                SUBID_STARTS[start as usize % SUBID_STARTS.len()],
                SUBID_COUNTS[count as usize % SUBID_COUNTS.len()],
            ),
            SubId::Any(start, count) => (start, count),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum CallerKind {
    User,
    Root,
    Other { uid: u32, gid: u32, euid: u32 },
}

#[derive(Arbitrary, Debug)]
pub struct InvocationInput {
    pub command: Option<Vec<Str>>,
    pub name: Option<Str>,
    pub stats: bool,
}

impl Input {
    pub fn host(&self) -> HostFacts {
        let f = &self.facts;
        let (uid, gid, euid) = match f.caller {
            CallerKind::User => (1000, 1000, 1000),
            CallerKind::Root => (0, 0, 0),
            CallerKind::Other { uid, gid, euid } => (uid, gid, euid),
        };
        let mut caller = Caller {
            uid,
            gid,
            euid,
            ..crate::caller()
        };
        if !f.user {
            caller.user = None;
        }
        if !f.home {
            caller.home = None;
        }
        // As `host::parse_subids` reads them: ranges of at least one id.
        let ranges = |list: &[SubId]| -> Vec<SubIdRange> {
            list.iter()
                .map(SubId::range)
                .filter(|(_, count)| *count > 0)
                .map(|(start, count)| SubIdRange { start, count })
                .collect()
        };
        let host_root = f
            .host_root
            .iter()
            .map(|&(index, dir)| {
                let path = HOST_ROOT_PATHS[index as usize % HOST_ROOT_PATHS.len()];
                let entry = if dir {
                    HostEntry::Dir
                } else {
                    HostEntry::Symlink(format!("usr{path}"))
                };
                (path.to_string(), entry)
            })
            .collect();
        let cgroup_version = match f.cgroup {
            Cgroups::V2 => Some(CgroupVersion::V2),
            Cgroups::V1 => Some(CgroupVersion::V1),
            Cgroups::None => None,
        };
        let cgroup = crate::cgroup_host(cgroup_version, caller.is_root());
        // Facts added to `FixedFacts` later take their defaults rather than break this crate.
        #[allow(clippy::needless_update)]
        let facts = FixedFacts {
            subuid: ranges(&f.subuid),
            subgid: ranges(&f.subgid),
            newuidmap: f.helpers.then(|| "/usr/bin/newuidmap".into()),
            newgidmap: f.helpers.then(|| "/usr/bin/newgidmap".into()),
            nft: f.helpers.then(|| "/usr/sbin/nft".into()),
            pasta: f.helpers.then(|| "/usr/bin/pasta".into()),
            host_root,
            landlock_abi: u32::from(f.landlock_abi % 8),
            cgroup,
            ..FixedFacts::default()
        };
        HostFacts::fixed(caller, facts)
    }

    // Options added to `Invocation` later take their defaults rather than break this crate.
    #[allow(clippy::needless_update)]
    pub fn invocation(&self) -> Invocation {
        Invocation {
            command: self
                .invocation
                .command
                .as_ref()
                .map(|c| c.iter().map(Str::text).collect()),
            name: self.invocation.name.as_ref().map(Str::text),
            stats: self.invocation.stats,
            ..Invocation::default()
        }
    }

    pub fn path(&self) -> PathBuf {
        let folder = match &self.folder {
            Folder::Project => "fuzz-project".to_string(),
            Folder::Spaced => "My Project".to_string(),
            Folder::Dots => "..".to_string(),
            Folder::Arbitrary(name) => name.replace(['/', '\0'], "_"),
        };
        PathBuf::from(format!("/nonexistent/{folder}/sandbox.toml"))
    }

    /// The manifest text. Keys of the root table go before the first header wherever they come
    /// in the item list: TOML cannot reopen the root table once a header has been written.
    pub fn text(&self) -> String {
        let mut root = String::new();
        let mut out = String::new();
        let mut section = 0usize;
        for item in &self.items {
            match item {
                Item::Header(index) => {
                    section = *index as usize % SECTIONS.len();
                    let name = SECTIONS[section].0;
                    if !name.is_empty() {
                        let _ = writeln!(out, "[{name}]");
                    }
                }
                Item::Pair(key, value) => {
                    let keys = SECTIONS[section].1;
                    let key = quote_key(keys[*key as usize % keys.len()]);
                    let into = if section == 0 { &mut root } else { &mut out };
                    let _ = writeln!(into, "{key} = {}", value.toml(0));
                }
                Item::Dotted(table, key, value) => {
                    let (name, keys) = SECTIONS[*table as usize % SECTIONS.len()];
                    let key = quote_key(keys[*key as usize % keys.len()]);
                    let name = name.trim_start_matches('[').trim_end_matches(']');
                    if name.is_empty() {
                        let _ = writeln!(root, "{key} = {}", value.toml(0));
                    } else {
                        let _ = writeln!(out, "{name}.{key} = {}", value.toml(0));
                    }
                }
                Item::Unknown(key, value) => {
                    let _ = writeln!(out, "{} = {}", quote_key(&key.text()), value.toml(0));
                }
                Item::Raw(text) => {
                    out.push_str(text);
                    out.push('\n');
                }
            }
        }
        root + &out
    }
}

impl Str {
    pub fn text(&self) -> String {
        match self {
            Str::Known(index) => STRINGS[*index as usize % STRINGS.len()].to_string(),
            Str::Any(text) => text.clone(),
            Str::Joined(parts) => parts
                .iter()
                .take(8)
                .map(|i| STRINGS[*i as usize % STRINGS.len()])
                .collect(),
        }
    }
}

impl Value {
    fn toml(&self, depth: usize) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(index) => INTEGERS[*index as usize % INTEGERS.len()].to_string(),
            Value::AnyInt(n) => n.to_string(),
            Value::Float(index) => FLOATS[*index as usize % FLOATS.len()].to_string(),
            Value::AnyFloat(f) => float(*f),
            Value::Str(s) => quote(&s.text()),
            Value::Datetime => "1979-05-27T07:32:00Z".into(),
            Value::Array(items) if depth < 4 => {
                let items: Vec<String> = items.iter().map(|v| v.toml(depth + 1)).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Table(entries) if depth < 4 => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| {
                        let keys: Vec<&str> =
                            SECTIONS.iter().flat_map(|s| s.1.iter()).copied().collect();
                        let key = keys[*key as usize % keys.len()];
                        format!("{} = {}", quote_key(key), value.toml(depth + 1))
                    })
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }
            Value::Array(_) | Value::Table(_) => "[]".into(),
        }
    }
}

fn float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        // `{:?}` always writes a `.` or an exponent, as TOML wants.
        format!("{f:?}")
    }
}

/// A TOML basic string.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { key.to_string() } else { quote(key) }
}

/// Build an input from raw bytes (for replaying a corpus file outside the fuzzer).
pub fn from_bytes(data: &[u8]) -> arbitrary::Result<Input> {
    Input::arbitrary_take_rest(Unstructured::new(data))
}
