//! Trust for manifests that ask for more than the default jail.
//!
//! A manifest arrives with `git clone`; running it must not hand a stranger the caller's files.
//! [`requests`] lists what a plan asks for beyond the default jail (its own folder, the host's
//! read-only system directories, no network beyond its own namespace, no capabilities but a
//! container engine's default ones confined to its own user namespace and ids, default
//! security). Such a plan runs only once the caller allowed exactly that content: the store
//! keeps the SHA-256 of every merged file, so a change to any of them asks again.

use crate::origin::Origin;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::folder::{self, Purpose};
use crate::host::is_system_path;
use crate::hostpath;
use crate::manifest::Loaded;
use crate::plan::seccomp::default_denied;
use crate::plan::{CONTAINER_CAPABILITIES, HostIds, HostUse, Idmap, NetPlan, Plan, SeccompPlan};

/// Environment variables harmless to copy in: terminal and locale settings.
const HARMLESS_ENV: &[&str] = &["TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ", "NO_COLOR"];

/// One thing a manifest asks for beyond the default jail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    /// What it asks for, in words.
    pub what: String,
    /// Said loudly: writable access outside the project, anything under $HOME, the host's root.
    pub loud: bool,
    /// The manifest key behind it.
    pub key: Origin,
}

impl Request {
    fn new(key: impl Into<Origin>, what: impl Into<String>, loud: bool) -> Request {
        Request {
            what: what.into(),
            loud,
            key: key.into(),
        }
    }
}

/// What the plan asks for beyond the default jail. `home` is the caller's home folder.
///
/// Paths are judged by what they resolve to: the plan's are resolved (see
/// [`crate::hostpath`]), and so are the project folder and `home` here, so a symlink in the
/// repository (`hh -> ..`) or in the path of either folder changes nothing.
pub fn requests(plan: &Plan, loaded: &Loaded, home: Option<&Path>) -> Vec<Request> {
    let places = Places {
        project: hostpath::resolve(&loaded.project_dir),
        home: home.map(hostpath::resolve),
    };
    let mut out = Vec::new();
    host_paths(plan, &places, &mut out);
    handed_over(plan, &places, &mut out);
    network(&plan.net, &mut out);
    namespaces_and_ids(plan, &mut out);
    security(plan, &mut out);
    for (path, _) in &loaded.extends {
        if places.outside(path) {
            out.push(Request::new(
                "extends",
                places.describe(path, false, "extends"),
                places.under_home(path),
            ));
        }
    }
    environment(plan, loaded, &mut out);
    out
}

/// The project folder and the caller's home folder, resolved, that host paths are judged by.
struct Places {
    project: PathBuf,
    home: Option<PathBuf>,
}

impl Places {
    fn outside(&self, path: &Path) -> bool {
        !path.starts_with(&self.project)
    }

    /// A folder that holds the home folder gives it away as much as one inside it.
    fn home_note(&self, path: &Path) -> Option<&'static str> {
        match &self.home {
            Some(home) if path.starts_with(home) => Some(" (in your home folder)"),
            Some(home) if home.starts_with(path) => Some(" (holds your home folder)"),
            _ => None,
        }
    }

    fn under_home(&self, path: &Path) -> bool {
        self.home_note(path).is_some()
    }

    fn describe(&self, path: &Path, writable: bool, what: &str) -> String {
        let mut text = format!("{what} {}", path.display());
        if writable {
            text.push_str(" WRITABLE");
        }
        text.push_str(self.home_note(path).unwrap_or_default());
        text
    }
}

/// The host paths the plan mounts, binds or layers outside the project.
fn host_paths(plan: &Plan, places: &Places, out: &mut Vec<Request>) {
    for host in plan.host_paths() {
        let (path, key) = (host.path, host.key);
        // The host's system directories that `rootfs.host` binds (or layers) read-only.
        let host_root = key.is_key("rootfs.host") && host.used != HostUse::Upper;
        match host.used {
            _ if host_root => {}
            HostUse::Root | HostUse::Archive if places.outside(path) => out.push(Request::new(
                key,
                places.describe(path, false, "uses as its root"),
                places.under_home(path),
            )),
            HostUse::Upper if places.outside(path) => {
                out.push(Request::new(
                    key,
                    places.describe(path, true, "keeps changes in"),
                    true,
                ));
            }
            HostUse::Bind { readonly, .. } => {
                let harmless = readonly && is_system_path(path);
                if path.starts_with("/dev") {
                    out.push(Request::new(
                        key,
                        places.describe(path, !readonly, "gives the device"),
                        true,
                    ));
                } else if places.outside(path) && !harmless {
                    let loud = !readonly || places.under_home(path);
                    out.push(Request::new(
                        key,
                        places.describe(path, !readonly, "binds"),
                        loud,
                    ));
                }
            }
            HostUse::Lower if places.outside(path) && !is_system_path(path) => {
                out.push(Request::new(
                    key,
                    places.describe(path, false, "layers"),
                    places.under_home(path),
                ))
            }
            _ => {}
        }
    }
}

/// The folders id-mapped that are not the caller's own.
fn handed_over(plan: &Plan, places: &Places, out: &mut Vec<Request>) {
    // Id-mapped, a directory's files are the sandbox's as their owners': those of the host's
    // root in /etc (shadow, ssh host keys), those of another user, what others put in a folder
    // they may write.
    for handed in &plan.handed_over {
        let (uids, gids) = plan.handed_owners(handed.through);
        let list = |ids: Vec<HostIds>| {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            ids.join(", ")
        };
        let whose = match handed.through {
            Idmap::Sandbox => "the sandbox's",
            Idmap::Caller => "the command's, and what it makes there theirs",
        };
        out.push(Request::new(
            handed.key.clone(),
            format!(
                "{} ({}): the files of host uids {} and gids {} there are {whose}",
                places.describe(&handed.path, false, "id-maps"),
                handed.why,
                list(uids),
                list(gids),
            ),
            true,
        ));
    }
}

/// The network beyond the sandbox's own namespace, and the ports it publishes: every mode
/// is named here, so a new one cannot publish ports without asking.
fn network(net: &NetPlan, out: &mut Vec<Request>) {
    let ports = match net {
        NetPlan::Host => {
            out.push(Request::new(
                "network.mode",
                "shares the host's network",
                true,
            ));
            &[][..]
        }
        NetPlan::Bridge(bridge) => {
            out.push(Request::new(
                "network.mode",
                format!("reaches {} through bridge {}", reach(net), bridge.bridge),
                false,
            ));
            bridge.ports.as_slice()
        }
        NetPlan::Pasta(pasta) => {
            out.push(Request::new(
                "network.mode",
                format!("reaches {} through pasta", reach(net)),
                false,
            ));
            pasta.ports.as_slice()
        }
        NetPlan::None => &[],
    };
    for port in ports {
        let everywhere = port.host_address.is_unspecified();
        out.push(Request::new(
            "network.ports",
            format!("publishes port {port}"),
            everywhere,
        ));
    }
}

/// Host namespaces shared, and host ids mapped that are not the sandbox's own.
fn namespaces_and_ids(plan: &Plan, out: &mut Vec<Request>) {
    let ns = &plan.namespaces;
    let shared: Vec<&str> = [
        (ns.user, "user"),
        (ns.mount, "mount"),
        (ns.pid, "pid"),
        (ns.net, "net"),
        (ns.uts, "uts"),
        (ns.ipc, "ipc"),
        (ns.cgroup, "cgroup"),
    ]
    .into_iter()
    .filter_map(|(own, name)| (!own).then_some(name))
    .collect();
    if !shared.is_empty() {
        out.push(Request::new(
            "namespaces",
            format!("shares the host's {} namespaces", shared.join(", ")),
            shared.contains(&"user"),
        ));
    }
    if let Some(user) = &plan.user {
        let sides = [
            ("uid_map", "uids", &user.uid_map, &user.foreign.uids),
            ("gid_map", "gids", &user.gid_map, &user.foreign.gids),
        ];
        if sides
            .iter()
            .any(|(_, _, map, _)| map.iter().any(|m| m.outside == 0))
        {
            out.push(Request::new(
                "uid_map",
                "maps the host's root into the sandbox",
                true,
            ));
        }
        // Another user's ids are that user's files and processes (gid 42 reads /etc/shadow).
        for (key, ids, _, foreign) in sides {
            let others: Vec<String> = foreign
                .iter()
                .filter(|range| !(range.start == 0 && range.count == 1))
                .map(|range| match range.start {
                    0 => HostIds {
                        start: 1,
                        count: range.count - 1,
                    }
                    .to_string(),
                    _ => range.to_string(),
                })
                .collect();
            if !others.is_empty() {
                out.push(Request::new(
                    key,
                    format!(
                        "maps host {ids} {} into the sandbox, which are not its own: it acts as whoever has them",
                        others.join(", ")
                    ),
                    true,
                ));
            }
        }
    }
}

/// Capabilities, no_new_privileges and seccomp weaker than the default.
fn security(plan: &Plan, out: &mut Vec<Request>) {
    let security = &plan.security;
    // In the sandbox's own user namespace, mapping only ids that are the caller's, the
    // capabilities a container engine keeps act on nothing the caller could not reach as the
    // owner of those ids: files of mapped owners among what the mounts show (and the mounts
    // are judged above), the sandbox's own processes and network namespace. Any other
    // capability, or any with the host's user namespace or someone else's ids, is a request.
    let confined = plan.user.as_ref().is_some_and(|user| user.own_ids());
    let names: Vec<String> = security
        .capabilities
        .iter()
        .filter(|cap| !(confined && CONTAINER_CAPABILITIES.contains(&cap.0)))
        .map(ToString::to_string)
        .collect();
    if !names.is_empty() {
        out.push(Request::new(
            "security.capabilities",
            format!("keeps capabilities {}", names.join(", ")),
            false,
        ));
    }
    if !security.no_new_privileges {
        out.push(Request::new(
            "security.no_new_privileges",
            "lets setuid programs gain privileges (no_new_privileges = false)",
            false,
        ));
    }
    match &security.seccomp {
        SeccompPlan::Off => out.push(Request::new("security.seccomp", "turns seccomp off", true)),
        SeccompPlan::DenyList { deny, .. } => {
            let missing: Vec<&str> = default_denied()
                .filter(|call| !deny.iter().any(|d| d == call))
                .collect();
            if !missing.is_empty() {
                out.push(Request::new(
                    "security.seccomp",
                    format!(
                        "allows system calls the default profile denies ({} of them, e.g. {})",
                        missing.len(),
                        missing[0]
                    ),
                    false,
                ));
            }
        }
        SeccompPlan::AllowList { allow, .. } => {
            let risky: Vec<&String> = allow
                .iter()
                .filter(|call| default_denied().any(|denied| denied == call.as_str()))
                .collect();
            if !risky.is_empty() {
                let names: Vec<&str> = risky.iter().map(|s| s.as_str()).collect();
                out.push(Request::new(
                    "security.seccomp",
                    format!(
                        "allows system calls the default profile denies: {}",
                        names.join(", ")
                    ),
                    false,
                ));
            }
        }
        SeccompPlan::Default => {}
    }
}

/// The caller's environment variables copied in or read by the manifest.
fn environment(plan: &Plan, loaded: &Loaded, out: &mut Vec<Request>) {
    let copied: Vec<&str> = plan
        .process
        .env
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| {
            loaded
                .manifest
                .process
                .as_ref()
                .is_some_and(|p| inherits(p, name))
        })
        .filter(|name| !HARMLESS_ENV.contains(name) && !name.starts_with("LC_"))
        .collect();
    if !copied.is_empty() {
        out.push(Request::new(
            "process.inherit_env",
            format!("copies your environment variables {}", copied.join(", ")),
            false,
        ));
    }
    let read: Vec<String> = env_variables_read(loaded);
    if !read.is_empty() {
        out.push(Request::new(
            "process.env",
            format!("reads your environment variables {}", read.join(", ")),
            false,
        ));
    }
}

/// What the network request covers: `egress` narrows it to its destinations, so that a
/// manifest with it asks for no more than the same manifest without it.
fn reach(net: &NetPlan) -> String {
    match net.egress() {
        None => "the network".into(),
        Some(egress) if egress.rules.is_empty() => "no destination (egress = [])".into(),
        Some(egress) => {
            let destinations: Vec<String> =
                egress.rules.iter().map(|r| r.destination.clone()).collect();
            format!("only {}", destinations.join(", "))
        }
    }
}

fn inherits(process: &crate::manifest::Process, name: &str) -> bool {
    process
        .inherit_env
        .as_ref()
        .is_some_and(|names| names.value.iter().any(|n| n.value == name))
}

/// Names read with `${env:NAME}` anywhere in the merged files (HOME and USER are not secret).
fn env_variables_read(loaded: &Loaded) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for file in loaded.sources.files() {
        let mut rest = file.text.as_str();
        while let Some(index) = rest.find("${env:") {
            rest = &rest[index + 6..];
            let end = rest.find(['}', ':']).unwrap_or(rest.len());
            let name = rest[..end].to_string();
            if !name.is_empty() && !HARMLESS_ENV.contains(&name.as_str()) && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names
}

/// What a decision covers: every merged file, by path and bytes, in load order, and what the
/// plan asks for. The requests depend on more than the files: on where the plan's paths lead
/// (a symlink the sandbox itself planted in its project, `data -> ~/.ssh`, changes them), so a
/// change there asks again too.
pub fn content_hash(loaded: &Loaded, asked: &[Request]) -> String {
    let mut hasher = Sha256::new();
    for file in loaded.sources.files() {
        hasher.update(file.path.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update((file.text.len() as u64).to_le_bytes());
        hasher.update(file.text.as_bytes());
    }
    for request in asked {
        let key = request.key.to_string();
        for field in [&key, &request.what] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        hasher.update([u8::from(request.loud)]);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trust store, as messages name it: whoever can write it allows any manifest.
const TRUST_STORE: Purpose = Purpose {
    name: "trust store",
    setting: Some("XDG_DATA_HOME"),
};

/// Where allowed manifests are recorded: one file per manifest, named by its path's hash and
/// holding the allowed content hash and the path.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `$XDG_DATA_HOME/sandbox/trust`, or `~/.local/share/sandbox/trust`.
    pub fn for_caller(
        env: &std::collections::BTreeMap<String, String>,
        home: Option<&str>,
    ) -> Option<Store> {
        let data = env
            .get("XDG_DATA_HOME")
            .filter(|d| Path::new(d).is_absolute())
            .map(PathBuf::from)
            .or_else(|| home.map(|h| Path::new(h).join(".local/share")))?;
        Some(Store {
            dir: data.join("sandbox/trust"),
        })
    }

    fn entry(&self, manifest: &Path) -> PathBuf {
        self.dir.join(hex(&Sha256::digest(
            manifest.as_os_str().as_encoded_bytes(),
        )))
    }

    /// Whether this content was allowed. An allowance in a store others could write says
    /// nothing: it is not believed (and `allow` says why).
    pub fn is_allowed(&self, manifest: &Path, hash: &str) -> bool {
        folder::own(&self.dir, 0o700, TRUST_STORE).is_ok()
            && crate::input::read_regular_file(&self.entry(manifest), 64 << 10)
                .is_ok_and(|text| text.split(|&b| b == b'\n').next() == Some(hash.as_bytes()))
    }

    pub fn allow(&self, manifest: &Path, hash: &str) -> std::io::Result<()> {
        folder::own(&self.dir, 0o700, TRUST_STORE).map_err(std::io::Error::other)?;
        let entry = self.entry(manifest);
        let temporary = entry.with_extension("tmp");
        std::fs::write(&temporary, format!("{hash}\n{}\n", manifest.display()))?;
        std::fs::rename(&temporary, &entry)
    }

    /// Forget a manifest; true when it had been allowed.
    pub fn deny(&self, manifest: &Path) -> std::io::Result<bool> {
        match std::fs::remove_file(self.entry(manifest)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Caller, FixedFacts, HostEntry, HostFacts, SubIdGrant, SubIdRange};
    use crate::manifest::{load_str, vars::Vars};
    use crate::validate::{Invocation, validate};

    fn caller(uid: u32) -> Caller {
        Caller {
            env: std::sync::Arc::new(
                [
                    ("TERM".to_string(), "xterm".to_string()),
                    ("SECRET".to_string(), "s".to_string()),
                ]
                .into_iter()
                .collect(),
            ),
            ..Caller::ann(uid)
        }
    }

    fn asks(text: &str) -> Vec<String> {
        asks_as(1000, text)
    }

    fn asks_as(uid: u32, text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        asks_in(
            uid,
            &dir.path().join("sandbox.toml"),
            Path::new("/home/ann"),
            text,
        )
    }

    /// What the manifest `path` holding `text` asks for, for the caller `uid` whose home is
    /// `home`.
    fn asks_in(uid: u32, path: &Path, home: &Path, text: &str) -> Vec<String> {
        asks_granted(uid, path, home, text, FixedFacts::default())
    }

    /// [`asks_in`] on a host whose subordinate id grants are `grants`'.
    fn asks_granted(
        uid: u32,
        path: &Path,
        home: &Path,
        text: &str,
        grants: FixedFacts,
    ) -> Vec<String> {
        let vars = Vars {
            home: Some(home.display().to_string()),
            uid: 1000,
            gid: 1000,
            ..Vars::default()
        };
        let loaded = load_str(path, text, &vars);
        let host = HostFacts::fixed(
            caller(uid),
            FixedFacts {
                host_root: vec![("/usr".into(), HostEntry::Dir)],
                landlock_abi: 5,
                nft: Some("/usr/sbin/nft".into()),
                pasta: Some("/usr/bin/pasta".into()),
                ..grants
            },
        );
        let validated = validate(&loaded, &host, &Invocation::inspecting());
        let plan = validated
            .plan
            .unwrap_or_else(|| panic!("{:?}", validated.problems));
        requests(&plan, &loaded, Some(home))
            .into_iter()
            .map(|r| format!("{}{}", if r.loud { "!" } else { "" }, r.what))
            .collect()
    }

    /// A writable bind of `source`.
    fn bind(source: &str) -> String {
        format!(
            "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"{source}\"\ntarget = \"/w\"\nreadonly = false\n"
        )
    }

    #[test]
    fn symlinks_are_judged_by_where_they_lead() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (project, home) = (base.join("project"), base.join("home"));
        for folder in [
            project.join("data"),
            home.join(".ssh"),
            base.join("other/data"),
            // A root's mount points: the sandbox could not make them in root's folder.
            base.join("other/proc"),
            base.join("other/dev"),
            base.join("other/tmp"),
            base.join("other/etc"),
        ] {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(base.join("other/etc/hosts"), "").unwrap();
        symlink("..", project.join("hh")).unwrap();
        symlink("../home", project.join("relative")).unwrap();
        symlink(&home, project.join("absolute")).unwrap();
        symlink(base.join("other"), project.join("parent")).unwrap();
        symlink("data", project.join("inside")).unwrap();
        let manifest = project.join("sandbox.toml");
        let asks = |text: &str| asks_in(1000, &manifest, &home, text);

        let above = format!(
            "!binds {} WRITABLE (holds your home folder)",
            base.display()
        );
        assert_eq!(asks(&bind("hh")), std::slice::from_ref(&above), "hh -> ..");
        assert_eq!(asks(&bind("./hh/")), [above], "written another way");
        let ssh = format!(
            "!binds {} WRITABLE (in your home folder)",
            home.join(".ssh").display()
        );
        assert_eq!(
            asks(&bind("relative/.ssh")),
            std::slice::from_ref(&ssh),
            "a relative symlink"
        );
        assert_eq!(asks(&bind("absolute/.ssh")), [ssh], "an absolute symlink");
        assert_eq!(
            asks(&bind("parent/data")),
            [format!(
                "!binds {} WRITABLE",
                base.join("other/data").display()
            )],
            "a symlinked parent folder"
        );
        assert!(
            asks(&bind("inside")).is_empty(),
            "a symlink within the project"
        );
        let layered = format!(
            "{ROOT}[[mount]]\ntype = \"overlay\"\nsource = \"absolute\"\ntarget = \"/o\"\nupper = \"hh/kept\"\n"
        );
        assert_eq!(
            asks(&layered),
            [
                format!("!layers {} (in your home folder)", home.display()),
                format!("!keeps changes in {} WRITABLE", base.join("kept").display()),
            ]
        );
        assert_eq!(
            asks(&format!("{ROOT}[rootfs]\npath = \"hh/other\"\n").replace(ROOT, "")),
            [format!("uses as its root {}", base.join("other").display())]
        );
        std::fs::write(base.join("other/base.toml"), ROOT).unwrap();
        assert_eq!(
            asks("extends = [\"parent/base.toml\"]\n"),
            [format!(
                "extends {}",
                base.join("other/base.toml").display()
            )],
            "an extended file through a symlinked folder"
        );

        // The project itself reached through a symlinked folder: its own binds stay inside.
        symlink(&project, base.join("linked")).unwrap();
        assert!(
            asks_in(
                1000,
                &base.join("linked/sandbox.toml"),
                &home,
                &bind("data")
            )
            .is_empty()
        );
        // And a home folder reached through a symlink is still the home folder.
        symlink(&home, base.join("home-link")).unwrap();
        assert_eq!(
            asks_in(
                1000,
                &manifest,
                &base.join("home-link"),
                &bind("absolute/.ssh")
            ),
            [format!(
                "!binds {} WRITABLE (in your home folder)",
                home.join(".ssh").display()
            )]
        );
    }

    const ROOT: &str = "[rootfs]\nhost = true\n";

    #[test]
    fn the_default_jail_asks_for_nothing() {
        assert!(asks(ROOT).is_empty());
        let project = format!(
            "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"data\"\ntarget = \"/data\"\nreadonly = false\n[[mount]]\ntype = \"bind\"\nsource = \"/usr/share\"\ntarget = \"/share\"\n"
        );
        assert!(
            asks(&project).is_empty(),
            "the project's own folder and read-only system dirs"
        );
    }

    #[test]
    fn binds_outside_the_project_are_named_and_writable_or_home_ones_loudly() {
        assert_eq!(
            asks(&format!(
                "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"/var\"\ntarget = \"/var\"\n"
            )),
            ["binds /var"]
        );
        assert_eq!(
            asks(&format!(
                "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"/var\"\ntarget = \"/var\"\nreadonly = false\n"
            )),
            ["!binds /var WRITABLE"]
        );
        let home = asks(&format!(
            "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"${{HOME}}\"\ntarget = \"/h\"\noptional = true\n"
        ));
        assert_eq!(home, ["!binds /home/ann (in your home folder)"]);
        assert_eq!(
            asks(&format!(
                "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"/dev/null\"\ntarget = \"/x\"\n"
            )),
            ["!gives the device /dev/null"]
        );
    }

    #[test]
    fn network_capabilities_and_weaker_security_are_named() {
        assert_eq!(
            asks(&format!("{ROOT}[namespaces]\nnet = false\n")),
            [
                "!shares the host's network",
                "shares the host's net namespaces"
            ]
        );
        assert_eq!(
            asks(&format!(
                "{ROOT}[network]\nmode = \"pasta\"\nports = [\"8080:80\"]\n"
            )),
            [
                "reaches the network through pasta",
                "publishes port 127.0.0.1:8080:80/tcp"
            ]
        );
        let narrowed = asks(&format!(
            "{ROOT}[network]\nmode = \"pasta\"\nports = [\"8080:80\"]\negress = [\"192.0.2.10:443\", \"udp:192.0.2.53:53\"]\n"
        ));
        assert_eq!(
            narrowed,
            [
                "reaches only 192.0.2.10:443, udp:192.0.2.53:53 through pasta",
                "publishes port 127.0.0.1:8080:80/tcp"
            ],
            "egress narrows the request, and adds none"
        );
        assert_eq!(
            asks(&format!(
                "{ROOT}[security]\ncapabilities = [\"CAP_NET_BIND_SERVICE\", \"sys_ptrace\"]\n"
            )),
            ["keeps capabilities CAP_SYS_PTRACE"]
        );
        assert_eq!(
            asks(&format!("{ROOT}[security]\nseccomp = \"off\"\n")),
            ["!turns seccomp off"]
        );
        assert_eq!(
            asks(&format!("{ROOT}[security]\nno_new_privileges = false\n")),
            ["lets setuid programs gain privileges (no_new_privileges = false)"]
        );
        let weaker = asks(&format!(
            "{ROOT}[security]\nseccomp = {{ default_action = \"allow\", deny = [\"ptrace\"] }}\n"
        ));
        assert!(
            weaker[0].starts_with("allows system calls the default profile denies"),
            "{weaker:?}"
        );
    }

    #[test]
    fn container_capabilities_confined_to_the_sandboxs_own_ids_ask_for_nothing() {
        let all = CONTAINER_CAPABILITIES
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let keeps = format!("{ROOT}[security]\ncapabilities = [{all}]\n");
        assert!(asks(&keeps).is_empty(), "rootless: only the caller's ids");
        assert!(
            asks_as(0, &keeps).is_empty(),
            "root: a leased block, its own"
        );
        let fixed = format!(
            "{keeps}[[uid_map]]\ninside = 0\noutside = 100000\ncount = 1000\n[[gid_map]]\ninside = 0\noutside = 165000\ncount = 536\n"
        );
        let asked = asks_as(0, &fixed);
        assert!(
            asked
                .iter()
                .any(|a| a.starts_with("keeps capabilities CAP_CHOWN")),
            "ids root was not granted (where useradd puts the first user's) are not its own: {asked:?}"
        );
        let others = format!(
            "{keeps}[[uid_map]]\ninside = 0\noutside = 1000\ncount = 1\n[[gid_map]]\ninside = 0\noutside = 1000\ncount = 1\n"
        );
        let asked = asks_as(0, &others);
        assert_eq!(asked.len(), 3, "{asked:?}");
        assert!(
            asked[2].starts_with("keeps capabilities CAP_CHOWN, CAP_DAC_OVERRIDE"),
            "root mapping a user's ids: {asked:?}"
        );
        let shared = asks_as(0, &format!("{keeps}[namespaces]\nuser = false\n"));
        assert!(
            shared
                .iter()
                .any(|a| a.starts_with("keeps capabilities CAP_CHOWN")),
            "the host's user namespace: {shared:?}"
        );
    }

    #[test]
    fn maps_onto_host_ids_not_the_sandboxs_own_are_asked_for_loudly() {
        // As root, gid 42 inside the sandbox is the host's shadow group: /etc/shadow, a
        // system file any manifest may bind read-only, is then readable.
        let shadow = format!(
            "{ROOT}[process]\ngroup = 42\n[[gid_map]]\ninside = 42\noutside = 42\ncount = 1\n[[mount]]\ntype = \"bind\"\nsource = \"/etc/shadow\"\ntarget = \"/s\"\n"
        );
        let not_own = "into the sandbox, which are not its own: it acts as whoever has them";
        assert_eq!(
            asks_as(0, &shadow),
            [format!("!maps host gids 42 {not_own}")]
        );
        let users = format!(
            "{ROOT}[[uid_map]]\ninside = 0\noutside = 0\ncount = 1\n[[uid_map]]\ninside = 1\noutside = 1000\ncount = 2000\n"
        );
        assert_eq!(
            asks_as(0, &users),
            [
                "!maps the host's root into the sandbox".to_string(),
                format!("!maps host uids 1000..2999 {not_own}"),
            ]
        );
        let range = format!("{ROOT}[[gid_map]]\ninside = 0\noutside = 0\ncount = 43\n");
        assert_eq!(
            asks_as(0, &range),
            [
                "!maps the host's root into the sandbox".to_string(),
                format!("!maps host gids 1..42 {not_own}"),
            ]
        );

        // Root's grants are its own where no one else is granted the same ids.
        let granted = |text: &str| {
            let grant = |start| SubIdRange {
                start,
                count: 65536,
            };
            let ann = FixedFacts {
                subuid: vec![grant(200_000)],
                subgid: vec![grant(200_000)],
                others: vec![SubIdGrant {
                    owner: "bob".into(),
                    start: 250_000,
                    count: 10,
                }],
                ..FixedFacts::default()
            };
            let dir = tempfile::tempdir().unwrap();
            asks_granted(
                0,
                &dir.path().join("sandbox.toml"),
                Path::new("/home/ann"),
                text,
                ann,
            )
        };
        let map = |outside: u32, count: u32| {
            format!(
                "{ROOT}[[uid_map]]\ninside = 0\noutside = {outside}\ncount = {count}\n[[gid_map]]\ninside = 0\noutside = {outside}\ncount = {count}\n"
            )
        };
        assert!(granted(&map(200_000, 50_000)).is_empty());
        assert_eq!(
            granted(&format!("uid_map = \"auto\"\n{ROOT}")),
            [format!("!maps host uids 250000..250009 {not_own}")],
            "bob's ids are within root's grant"
        );
        assert_eq!(
            granted(&map(245_000, 20_000)),
            [
                format!("!maps host uids 250000..250009 {not_own}"),
                format!("!maps host gids 250000..250009 {not_own}"),
            ]
        );

        // Rootless, the maps admitted are the caller's own ids and grants.
        let own = format!(
            "{ROOT}[[uid_map]]\ninside = 0\noutside = \"self\"\ncount = 1\n[process]\nuser = 0\n"
        );
        assert!(asks(&own).is_empty());
    }

    #[test]
    fn id_mapping_what_is_not_the_callers_own_is_asked_for_loudly() {
        // As root, the host's dirs are not id-mapped, overlaid or not: nothing to ask.
        let overlay = format!("{ROOT}overlay = true\n");
        assert!(asks_as(0, &overlay).is_empty());
        let system = "(one of the host's system directories): the files of host";
        assert_eq!(
            asks_as(0, &format!("{overlay}idmap = true\n")),
            [format!(
                "!id-maps /usr {system} uids 0..65535 and gids 0..65535 there are the sandbox's"
            )]
        );
        assert_eq!(
            asks_as(
                0,
                &format!(
                    "{ROOT}[[mount]]\ntype = \"bind\"\nsource = \"/etc\"\ntarget = \"/e\"\nidmap = true\n"
                )
            ),
            [format!(
                "!id-maps /etc {system} uids 0 and gids 0 there are the command's, and what it makes there theirs"
            )],
            "a read-only bind of a system dir asks for nothing, id-mapped it does"
        );
        // A root of the caller's own outside the project: through the sandbox's map, every
        // owner's files in it are the sandbox's.
        let dir = tempfile::tempdir().unwrap();
        let outside = std::fs::canonicalize(dir.path()).unwrap();
        let root_dir = format!("[rootfs]\npath = \"{}\"\n", outside.display());
        let own = FixedFacts {
            owner: Some(0),
            ..FixedFacts::default()
        };
        let project = tempfile::tempdir().unwrap();
        let manifest = project.path().join("sandbox.toml");
        assert_eq!(
            asks_granted(0, &manifest, Path::new("/root"), &root_dir, own),
            [
                format!("uses as its root {}", outside.display()),
                format!(
                    "!id-maps {} (outside the project): the files of host uids 0..65535 and gids 0..65535 there are the sandbox's",
                    outside.display()
                ),
            ]
        );
        // Rootless nothing is id-mapped.
        assert!(asks(&format!("{overlay}idmap = true\n")).is_empty());
    }

    #[test]
    fn environment_reads_are_named() {
        assert_eq!(
            asks(&format!(
                "{ROOT}[process]\ninherit_env = [\"TERM\", \"SECRET\"]\n"
            )),
            ["copies your environment variables SECRET"]
        );
        assert_eq!(
            asks(&format!(
                "{ROOT}[process]\nenv = {{ T = \"${{env:SECRET:-x}}\" }}\n"
            )),
            ["reads your environment variables SECRET"]
        );
    }

    #[test]
    fn the_hash_covers_every_byte_of_every_file_and_what_is_asked() {
        let vars = Vars::default();
        let hash = |path: &str, text: &str, asked: &[Request]| {
            content_hash(&load_str(Path::new(path), text, &vars), asked)
        };
        let a = hash("/p/sandbox.toml", "[rootfs]\nhost = true\n", &[]);
        let b = hash("/p/sandbox.toml", "[rootfs]\nhost = true \n", &[]);
        let c = hash("/q/sandbox.toml", "[rootfs]\nhost = true\n", &[]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 64);
        // Same files, but `data` now leads elsewhere: the decision does not cover it.
        let asked = [Request::new("mount[0]", "binds /home/ann/.ssh", true)];
        let d = hash("/p/sandbox.toml", "[rootfs]\nhost = true\n", &asked);
        assert_ne!(a, d);
    }

    /// The store of a caller whose XDG_DATA_HOME is `data`.
    fn store_in(data: &Path) -> Store {
        let env = [("XDG_DATA_HOME".to_string(), data.display().to_string())]
            .into_iter()
            .collect();
        Store::for_caller(&env, None).unwrap()
    }

    #[test]
    fn the_store_records_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let manifest = Path::new("/p/sandbox.toml");
        assert!(!store.is_allowed(manifest, "abc"));
        store.allow(manifest, "abc").unwrap();
        assert!(store.is_allowed(manifest, "abc"));
        assert!(!store.is_allowed(manifest, "abd"));
        assert!(store.deny(manifest).unwrap());
        assert!(!store.is_allowed(manifest, "abc"));
        assert!(!store.deny(manifest).unwrap());
    }

    #[test]
    fn an_allowance_in_a_store_others_can_write_is_not_believed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let manifest = Path::new("/p/sandbox.toml");
        store.allow(manifest, "abc").unwrap();
        let trust = dir.path().join("sandbox/trust");
        std::fs::set_permissions(&trust, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!store.is_allowed(manifest, "abc"));
        let error = store.allow(manifest, "abc").unwrap_err().to_string();
        assert!(error.contains("can be written by other users"), "{error}");
    }
}
