//! Plan -> runtime-spec `config.json`, what the bundle folder needs beside it, and one
//! [`Mapping`] per setting saying how faithfully it was carried over.
//!
//! Pure: the only question asked of the machine is whether an optional bind's source exists
//! (passed in), so every manifest's translation is a unit test. The plan is destructured field
//! by field (no `..`): a field added to the plan does not compile here until it is exported or
//! reported as not exported.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability as OciCapability, LinuxCapabilities, LinuxIdMapping,
    LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, LinuxResources, LinuxTimeOffset,
    Mount, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use serde::Serialize;

use crate::manifest::Tty;
use crate::manifest::values::{Arch, Capability};
use crate::plan::{
    CgroupPlan, IdMapping, Idmap, MountFlags, MountOp, MountStep, Namespaces, NetPlan,
    OverlayUpper, Plan, ProcessPlan, RootSource, SeccompPlan, SecurityPlan, StepId, TimePlan,
    UserPlan, UtsPlan, describe_mount, hosts_file, maps, shell_words,
};

/// How faithfully a setting is carried into the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fidelity {
    /// The runtime does what `sandbox up` does.
    Exact,
    /// Carried over, with a difference the note names.
    Approximate,
    /// Not in the bundle: the note says why, and who does it instead (the engine).
    None,
}

impl Fidelity {
    pub fn word(self) -> &'static str {
        match self {
            Fidelity::Exact => "exact",
            Fidelity::Approximate => "approximate",
            Fidelity::None => "not exported",
        }
    }
}

/// One setting of the plan and where it went.
#[derive(Debug, Clone, Serialize)]
pub struct Mapping {
    /// The step of the plan it belongs to (`sandbox plan` prints it there).
    pub step: StepId,
    /// The manifest key (`process.user`, `mount[2]`, `security.rlimits.nofile`).
    pub setting: String,
    /// Its value, as `sandbox plan` says it.
    pub value: String,
    /// Where it was set (`file:line:column`), or `default`.
    pub from: String,
    pub maps: Fidelity,
    /// The runtime-spec field(s) it became.
    pub oci: String,
    pub note: String,
}

/// Where the bundle's root file system comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootContent {
    /// An empty folder (`host = true`: the host's dirs are bind mounts in config.json).
    Empty,
    /// A copy of this host folder.
    Copy(PathBuf),
    /// A copy of the tar or OCI root, unpacked (or found) in the cache first.
    Unpacked,
}

/// A path `sandbox up` creates in the root that no mount type can create: made in the bundle's
/// rootfs instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    Symlink { path: PathBuf, link: String },
    Dir { path: PathBuf, mode: u32 },
}

/// A file the bundle carries (`files/N`), bound over its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub name: String,
    pub content: String,
    pub mode: u32,
}

/// Everything `sandbox export` writes, decided.
#[derive(Debug, Clone)]
pub struct Export {
    pub spec: Spec,
    pub mappings: Vec<Mapping>,
    pub root: RootContent,
    pub entries: Vec<RootEntry>,
    pub files: Vec<BundleFile>,
    /// Overlay upper and work folders under the bundle, to create empty.
    pub layers: Vec<PathBuf>,
    /// The host ids of the sandbox's root: owner of the rootfs folder and what export creates
    /// in it, as the tmpfs `up` makes is owned by the sandbox's root.
    pub owner: Option<(u32, u32)>,
    /// Shift the ownership of a copied root through the sandbox's maps, as `up` id-maps it.
    pub shift: Option<IdShift>,
}

impl Export {
    /// Name the command's user as `up` does (the plan's `named_env`), once the root is there
    /// to look the name up in.
    pub fn name_user(&mut self, process: &ProcessPlan, name: &str) {
        let Some(oci_process) = self.spec.process_mut().as_mut() else {
            return;
        };
        let mut env = oci_process.env().clone().unwrap_or_default();
        env.extend(process.named_env.iter().map(|var| format!("{var}={name}")));
        oci_process.set_env(Some(env));
    }
}

/// The maps a copied root's owners go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdShift {
    pub uid: Vec<IdMapping>,
    pub gid: Vec<IdMapping>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} has no runtime-spec name (oci-spec does not know it)")]
    Capability(String),
}

/// The annotation that describes a network the engine must provide.
pub const NETWORK_ANNOTATION: &str = "sandbox.network";

struct Rows<'a> {
    plan: &'a Plan,
    /// The step being translated.
    step: StepId,
    rows: Vec<Mapping>,
}

impl Rows<'_> {
    fn add(
        &mut self,
        setting: &str,
        value: impl Into<String>,
        maps: Fidelity,
        oci: &str,
        note: impl Into<String>,
    ) {
        let from = self
            .plan
            .origin(setting)
            .map_or_else(|| "default".to_string(), ToString::to_string);
        self.rows.push(Mapping {
            step: self.step,
            setting: setting.to_string(),
            value: value.into(),
            from,
            maps,
            oci: oci.to_string(),
            note: note.into(),
        });
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn mount(destination: &Path, typ: &str, source: &str, options: Vec<String>) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(destination.to_path_buf());
    mount.set_typ(Some(typ.to_string()));
    mount.set_source(Some(PathBuf::from(source)));
    mount.set_options(Some(options));
    mount
}

fn id_mappings(map: &[IdMapping]) -> Vec<LinuxIdMapping> {
    map.iter()
        .map(|m| {
            LinuxIdMappingBuilder::default()
                .container_id(m.inside)
                .host_id(m.outside)
                .size(m.count)
                .build()
                .expect("every field is set")
        })
        .collect()
}

fn capability(cap: &Capability) -> Result<OciCapability, ExportError> {
    let name = cap.to_string();
    name.trim_start_matches("CAP_")
        .parse()
        .map_err(|_| ExportError::Capability(name))
}

/// Split nanoseconds into the runtime-spec's whole seconds and a non-negative remainder.
fn offset(ns: i64) -> (i64, u32) {
    (
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

/// Translate `plan` for a bundle at `bundle` (absolute; overlay layers live under it) on
/// `arch`; `exists` says whether an optional bind's source is there now.
pub fn translate(
    plan: &Plan,
    arch: Arch,
    bundle: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Export, ExportError> {
    let Plan {
        name: _,
        name_given: _,
        manifest: _,
        sources: _,
        namespaces,
        caller: _,
        user,
        root,
        mounts,
        uts,
        time,
        net,
        cgroup,
        process,
        security,
        provenance: _,
        warnings: _,
        handed_over: _,
    } = plan;
    let mut rows = Rows {
        plan,
        step: StepId::ORDER[0],
        rows: Vec::new(),
    };
    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    let mut annotations: HashMap<String, String> = HashMap::new();
    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_resources(None);
    let mut oci_process = Process::default();
    let (mut content, mut shift) = (RootContent::Empty, None);
    let mut out = MountsOut {
        bundle,
        user_namespace: namespaces.user,
        uid_map: user.as_ref().map(|u| u.uid_map.as_slice()).unwrap_or(&[]),
        gid_map: user.as_ref().map(|u| u.gid_map.as_slice()).unwrap_or(&[]),
        caller_maps: plan.idmap_maps(Idmap::Caller),
        mounts: Vec::new(),
        entries: Vec::new(),
        files: Vec::new(),
        layers: Vec::new(),
    };
    // Step by step, as `sandbox up` takes them and `sandbox plan` prints them.
    for id in StepId::ORDER {
        rows.step = id;
        match id {
            StepId::User => {
                new_namespaces(namespaces, &mut linux, &mut rows);
                if let Some(user) = user {
                    id_maps(user, &mut linux, &mut rows);
                }
                names(uts.as_ref(), &mut spec, &mut rows);
                if let Some(time) = time {
                    time_offsets(time, &mut linux, &mut rows);
                }
            }
            StepId::Mount => {
                (content, shift) = root_content(root, user.as_ref(), &mut rows);
                for step in mounts {
                    out.step(step, exists, &mut rows);
                }
            }
            StepId::Pid => {}
            StepId::Net => network(net, &mut annotations, &mut rows),
            StepId::Chroot => {
                let mut oci_root = Root::default();
                oci_root.set_path(PathBuf::from("rootfs"));
                oci_root.set_readonly(Some(root.readonly));
                spec.set_root(Some(oci_root));
                let readonly = root.readonly.to_string();
                rows.add(
                    "rootfs.readonly",
                    readonly,
                    Fidelity::Exact,
                    "root.readonly",
                    "",
                );
            }
            StepId::Cgroup => {
                if let Some(cgroup) = cgroup {
                    resources(cgroup, &mut linux, &mut out, &mut rows);
                }
            }
            StepId::Security => {
                capabilities(security, process.uid, &mut oci_process, &mut rows)?;
                rlimits(security, &mut oci_process, &mut rows);
                confinement(security, arch, &mut linux, &mut rows);
            }
            StepId::Exec => process_spec(process, &mut oci_process, &mut rows),
        }
    }
    spec.set_mounts(Some(out.mounts));
    oci_process.set_oom_score_adj(None);
    spec.set_process(Some(oci_process));
    spec.set_linux(Some(linux));
    spec.set_annotations((!annotations.is_empty()).then_some(annotations));
    Ok(Export {
        spec,
        mappings: rows.rows,
        root: content,
        entries: out.entries,
        files: out.files,
        layers: out.layers,
        owner: plan.root_on_host(),
        shift,
    })
}

/// The namespaces the bundle's container gets: the plan's new ones.
fn new_namespaces(
    namespaces: &Namespaces,
    linux: &mut oci_spec::runtime::Linux,
    rows: &mut Rows<'_>,
) {
    let mut kinds = Vec::new();
    for (new, kind, key) in [
        (namespaces.user, LinuxNamespaceType::User, "namespaces.user"),
        (
            namespaces.mount,
            LinuxNamespaceType::Mount,
            "namespaces.mount",
        ),
        (namespaces.pid, LinuxNamespaceType::Pid, "namespaces.pid"),
        (
            namespaces.net,
            LinuxNamespaceType::Network,
            "namespaces.net",
        ),
        (namespaces.uts, LinuxNamespaceType::Uts, "namespaces.uts"),
        (namespaces.ipc, LinuxNamespaceType::Ipc, "namespaces.ipc"),
        (
            namespaces.cgroup,
            LinuxNamespaceType::Cgroup,
            "namespaces.cgroup",
        ),
        (namespaces.time, LinuxNamespaceType::Time, "namespaces.time"),
    ] {
        let value = if new { "new" } else { "shared with the host" };
        let (maps, note) = match (kind, new) {
            (LinuxNamespaceType::Pid, true) => (
                Fidelity::Approximate,
                "the command is pid 1 itself: `up` puts a small init there that reaps \
                 orphans and forwards signals (engines offer one: docker --init, tini)",
            ),
            (_, true) => (Fidelity::Exact, ""),
            (_, false) => (Fidelity::Exact, "not listed, so the runtime's own"),
        };
        rows.add(key, value, maps, "linux.namespaces", note);
        if new {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(kind);
            kinds.push(ns);
        }
    }
    linux.set_namespaces(Some(kinds));
}

/// The user namespace's id maps.
fn id_maps(user: &UserPlan, linux: &mut oci_spec::runtime::Linux, rows: &mut Rows<'_>) {
    let UserPlan {
        uid_map,
        gid_map,
        writer: _,
        deny_setgroups: _,
        foreign: _,
        pool,
    } = user;
    let (fidelity, note) = match pool {
        None => (
            Fidelity::Exact,
            "the ids of the user who exported: run the bundle as that user (the runtime \
             writes the maps, with newuidmap where there are several ranges)",
        ),
        Some(_) => (
            Fidelity::Approximate,
            "the pool's first free block: `sandbox up` leases a free block for each run, a \
             bundle keeps the one it was given (set uid_map/gid_map for ids of your choosing)",
        ),
    };
    rows.add(
        "uid_map",
        maps(uid_map),
        fidelity,
        "linux.uidMappings",
        note,
    );
    rows.add(
        "gid_map",
        maps(gid_map),
        fidelity,
        "linux.gidMappings",
        note,
    );
    linux.set_uid_mappings(Some(id_mappings(uid_map)));
    linux.set_gid_mappings(Some(id_mappings(gid_map)));
}

/// The host and domain names of the sandbox's own UTS namespace.
fn names(uts: Option<&UtsPlan>, spec: &mut Spec, rows: &mut Rows<'_>) {
    match uts {
        Some(uts) => {
            rows.add(
                "uts.hostname",
                &uts.hostname,
                Fidelity::Exact,
                "hostname",
                "",
            );
            spec.set_hostname(Some(uts.hostname.clone()));
            rows.add(
                "uts.domainname",
                uts.domainname.as_deref().unwrap_or("(none)"),
                Fidelity::Exact,
                "domainname",
                "",
            );
            spec.set_domainname(uts.domainname.clone());
        }
        None => {
            spec.set_hostname(None);
        }
    }
}

/// The command, its terminal, environment, folder and ids.
fn process_spec(process: &ProcessPlan, oci_process: &mut Process, rows: &mut Rows<'_>) {
    oci_process.set_terminal(Some(terminal(process.tty, rows)));
    rows.add(
        "process.command",
        shell_words(&process.argv),
        Fidelity::Exact,
        "process.args",
        "",
    );
    oci_process.set_args(Some(process.argv.clone()));
    let names: Vec<&str> = process.env.iter().map(|(k, _)| k.as_str()).collect();
    let named = if process.named_env.is_empty() {
        String::new()
    } else {
        format!(
            "; {} = the name of uid {} in the root's /etc/passwd, looked up as the bundle is \
             written",
            process.named_env.join(", "),
            process.uid
        )
    };
    rows.add(
        "process.env",
        names.join(" "),
        Fidelity::Exact,
        "process.env",
        format!(
            "values as resolved at export (inherit_env and ${{env:...}} from the exporting shell){named}"
        ),
    );
    oci_process.set_env(Some(
        process
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    ));
    rows.add(
        "process.cwd",
        process.cwd.display().to_string(),
        Fidelity::Exact,
        "process.cwd",
        "",
    );
    oci_process.set_cwd(process.cwd.clone());
    oci_process.set_user(user(process, rows));
    if let Some(ms) = process.timeout_ms {
        rows.add(
            "process.timeout",
            format!("{ms} ms"),
            Fidelity::None,
            "",
            "the runtime-spec has no time limit: the engine's (kubernetes \
             activeDeadlineSeconds, `timeout` around `crun run`)",
        );
    }
}

/// Whether the command gets a terminal: `auto` asks the caller's, which a bundle cannot.
fn terminal(tty: Tty, rows: &mut Rows<'_>) -> bool {
    let terminal = match tty {
        Tty::Always => true,
        Tty::Never => false,
        Tty::Auto => {
            rows.add(
                "process.tty",
                "auto",
                Fidelity::Approximate,
                "process.terminal",
                "false: a bundle cannot ask whether its caller has a terminal; the engine \
                 gives one when asked (crun run -t needs --console-socket, ctr run -t)",
            );
            false
        }
    };
    if tty != Tty::Auto {
        let value = if terminal { "always" } else { "never" };
        rows.add(
            "process.tty",
            value,
            Fidelity::Exact,
            "process.terminal",
            "",
        );
    }
    terminal
}

/// The ids the command runs as, and its umask.
fn user(process: &ProcessPlan, rows: &mut Rows<'_>) -> User {
    let mut oci_user = User::default();
    oci_user.set_uid(process.uid);
    oci_user.set_gid(process.gid);
    oci_user.set_umask(Some(process.umask));
    rows.add(
        "process.user",
        process.uid.to_string(),
        Fidelity::Exact,
        "process.user.uid",
        "",
    );
    rows.add(
        "process.group",
        process.gid.to_string(),
        Fidelity::Exact,
        "process.user.gid",
        "",
    );
    if !process.groups.is_empty() {
        oci_user.set_additional_gids(Some(process.groups.clone()));
    }
    rows.add(
        "process.groups",
        format!("{:?}", process.groups),
        Fidelity::Exact,
        "process.user.additionalGids",
        "",
    );
    rows.add(
        "process.umask",
        format!("{:04o}", process.umask),
        Fidelity::Exact,
        "process.user.umask",
        "",
    );
    oci_user
}

/// The capabilities the command keeps, and no_new_privileges.
fn capabilities(
    security: &SecurityPlan,
    uid: u32,
    oci_process: &mut Process,
    rows: &mut Rows<'_>,
) -> Result<(), ExportError> {
    let kept = security
        .capabilities
        .iter()
        .map(capability)
        .collect::<Result<Capabilities, ExportError>>()?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(kept.clone()));
    caps.set_effective(Some(kept.clone()));
    caps.set_permitted(Some(kept.clone()));
    caps.set_inheritable(Some(kept.clone()));
    // `up` raises the kept ones in the ambient set only for a non-root command (root keeps
    // them across execve through the bounding set).
    caps.set_ambient(Some(if uid == 0 { Capabilities::new() } else { kept }));
    oci_process.set_capabilities(Some(caps));
    let names: Vec<String> = security
        .capabilities
        .iter()
        .map(ToString::to_string)
        .collect();
    rows.add(
        "security.capabilities",
        format!("{names:?}"),
        Fidelity::Exact,
        "process.capabilities",
        "in every set; ambient too for a non-root command",
    );
    oci_process.set_no_new_privileges(Some(security.no_new_privileges));
    rows.add(
        "security.no_new_privileges",
        security.no_new_privileges.to_string(),
        Fidelity::Exact,
        "process.noNewPrivileges",
        "",
    );
    Ok(())
}

/// The command's rlimits, soft and hard alike.
fn rlimits(security: &SecurityPlan, oci_process: &mut Process, rows: &mut Rows<'_>) {
    let rlimits = security
        .rlimits
        .iter()
        .map(|(name, value)| {
            let key = format!("security.rlimits.{}", name.name());
            rows.add(
                &key,
                value.as_raw().to_string(),
                Fidelity::Exact,
                "process.rlimits",
                "",
            );
            let typ: PosixRlimitType = format!("RLIMIT_{}", name.name().to_uppercase())
                .parse()
                .expect("every getrlimit(2) name is a runtime-spec rlimit");
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(value.as_raw())
                .hard(value.as_raw())
                .build()
                .expect("every field is set")
        })
        .collect();
    oci_process.set_rlimits(Some(rlimits));
}

/// The seccomp filter, what landlock would allow, and the masked and read-only kernel paths.
fn confinement(
    security: &SecurityPlan,
    arch: Arch,
    linux: &mut oci_spec::runtime::Linux,
    rows: &mut Rows<'_>,
) {
    match crate::export::seccomp::seccomp(security, arch) {
        Some(seccomp) => {
            let entries = seccomp.syscalls().as_ref().map_or(0, Vec::len);
            let value = match &security.seccomp {
                SeccompPlan::Default => "default",
                SeccompPlan::DenyList { .. } => "a deny list",
                SeccompPlan::AllowList { .. } => "an allow list",
                SeccompPlan::Off => "off",
            };
            rows.add(
                "security.seccomp",
                value,
                Fidelity::Exact,
                "linux.seccomp",
                format!(
                    "the filter `up` loads, as {entries} entries for {}; a call through another \
                     ABI (i386, x32) is killed by libseccomp's bad-architecture action (the \
                     thread; `up` kills the process)",
                    arch.name()
                ),
            );
            linux.set_seccomp(Some(seccomp));
        }
        None => rows.add(
            "security.seccomp",
            "off",
            Fidelity::Exact,
            "linux.seccomp",
            "absent",
        ),
    }
    if let Some(landlock) = &security.landlock {
        let mut parts = Vec::new();
        for (what, paths) in [
            ("read", &landlock.read),
            ("write", &landlock.write),
            ("execute", &landlock.execute),
        ] {
            if !paths.is_empty() {
                parts.push(format!("{what} {}", paths.len()));
            }
        }
        rows.add(
            "security.landlock",
            parts.join(", "),
            Fidelity::None,
            "",
            "the runtime-spec has no landlock field: the bundle runs without these rules \
             (wrap the command in a landlock launcher such as landrun to keep them)",
        );
    }
    let list = |paths: &[PathBuf]| -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    };
    rows.add(
        "security (masked paths)",
        format!("{} paths", security.masked_paths.len()),
        Fidelity::Exact,
        "linux.maskedPaths",
        "",
    );
    rows.add(
        "security (read-only paths)",
        format!("{} paths", security.readonly_paths.len()),
        Fidelity::Exact,
        "linux.readonlyPaths",
        "",
    );
    linux.set_masked_paths(Some(list(&security.masked_paths)));
    linux.set_readonly_paths(Some(list(&security.readonly_paths)));
}

fn root_content(
    root: &crate::plan::RootPlan,
    user: Option<&UserPlan>,
    rows: &mut Rows<'_>,
) -> (RootContent, Option<IdShift>) {
    let crate::plan::RootPlan {
        source,
        readonly,
        overlay,
        idmapped,
    } = root;
    let (content, value, maps, note) = match source {
        RootSource::Tmpfs => (
            RootContent::Empty,
            "true".to_string(),
            if *readonly {
                Fidelity::Exact
            } else {
                Fidelity::Approximate
            },
            if *readonly {
                "rootfs/ is an empty folder; the host's dirs are bind mounts"
            } else {
                "rootfs/ is an empty folder (the host's dirs are bind mounts): what the \
                 command writes in / stays there, where `up` keeps it in memory"
            },
        ),
        RootSource::Dir { path } => (
            RootContent::Copy(path.clone()),
            format!("path = {}", path.display()),
            Fidelity::Approximate,
            "rootfs/ is a copy made at export: later changes to the folder are not in the \
             bundle, and writes land in the copy",
        ),
        RootSource::Tar { path, .. } | RootSource::Oci { path, .. } => {
            let kind = if matches!(source, RootSource::Tar { .. }) {
                "tar"
            } else {
                "oci"
            };
            (
                RootContent::Unpacked,
                format!("{kind} = {}", path.display()),
                if *readonly {
                    Fidelity::Exact
                } else {
                    Fidelity::Approximate
                },
                if *readonly {
                    "rootfs/ is a copy of the unpacked, verified root"
                } else {
                    "rootfs/ is a copy of the unpacked, verified root: what the command writes \
                     stays there, where `up` throws it away with its writable layer"
                },
            )
        }
    };
    let key = match source {
        RootSource::Tmpfs => "rootfs.host",
        RootSource::Dir { .. } => "rootfs.path",
        RootSource::Tar { .. } => "rootfs.tar",
        RootSource::Oci { .. } => "rootfs.oci",
    };
    rows.add(key, value, maps, "root.path", note);
    if let Some(upper) = overlay {
        let note = match upper {
            OverlayUpper::Tmpfs => {
                "the runtime-spec root is one folder: writes land in rootfs/ and outlive the \
                 run (`up` throws them away)"
            }
            OverlayUpper::Dir { .. } => {
                "the runtime-spec root is one folder: writes land in rootfs/, not in the \
                 upper folder"
            }
        };
        rows.add(
            "rootfs.overlay",
            match upper {
                OverlayUpper::Tmpfs => "true".to_string(),
                OverlayUpper::Dir { upper, .. } => format!("upper = {}", upper.display()),
            },
            Fidelity::Approximate,
            "root.path",
            note,
        );
    }
    let shift = (*idmapped && !matches!(source, RootSource::Tmpfs))
        .then(|| {
            user.map(|u| IdShift {
                uid: u.uid_map.clone(),
                gid: u.gid_map.clone(),
            })
        })
        .flatten();
    (content, shift)
}

fn time_offsets(time: &TimePlan, linux: &mut oci_spec::runtime::Linux, rows: &mut Rows<'_>) {
    let TimePlan {
        monotonic_ns,
        boottime_ns,
        zero_at_start,
    } = *time;
    let mut offsets = HashMap::new();
    for (clock, ns, key) in [
        ("monotonic", monotonic_ns, "time.monotonic_offset"),
        ("boottime", boottime_ns, "time.boottime_offset"),
    ] {
        let (secs, nanosecs) = offset(ns);
        let mut entry = LinuxTimeOffset::default();
        entry.set_secs(Some(secs));
        entry.set_nanosecs(Some(nanosecs));
        offsets.insert(clock.to_string(), entry);
        rows.add(
            key,
            format!("{ns} ns"),
            Fidelity::Exact,
            "linux.timeOffsets",
            "runtime-spec 1.1 (runc 1.1 has no time namespace; crun 1.8 makes one and ignores \
             the offsets)",
        );
    }
    linux.set_time_offsets(Some(offsets));
    if zero_at_start {
        rows.add(
            "process.deterministic",
            "true",
            Fidelity::Approximate,
            "linux.timeOffsets",
            "clocks starting at zero need offsets taken at start; a bundle's are fixed, so \
             the clocks run from the host's values plus the offsets",
        );
    }
}

fn resources(
    cgroup: &CgroupPlan,
    linux: &mut oci_spec::runtime::Linux,
    out: &mut MountsOut<'_>,
    rows: &mut Rows<'_>,
) {
    let CgroupPlan {
        parent,
        limits,
        version: _,
        hierarchies: _,
        stats: _,
        view,
    } = cgroup;
    let mut resources = LinuxResources::default();
    for (limit, value) in limits.iter() {
        if let Some((field, note)) = limit.oci(value, limits, &mut resources) {
            let value = limit.value_text(value);
            rows.add(limit.setting(), value, Fidelity::Exact, field, note);
        }
    }
    if !limits.is_empty() {
        linux.set_resources(Some(resources));
    }
    rows.add(
        "cgroup.parent",
        parent,
        Fidelity::None,
        "linux.cgroupsPath",
        "left to the engine, which places its containers' cgroups itself",
    );
    if *view {
        out.mounts.push(mount(
            Path::new("/sys/fs/cgroup"),
            "cgroup",
            "cgroup",
            strings(&["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ));
        rows.add(
            "cgroup",
            "its own group, read-only on /sys/fs/cgroup",
            Fidelity::Exact,
            "mounts (cgroup)",
            "",
        );
    }
}

fn network(net: &NetPlan, annotations: &mut HashMap<String, String>, rows: &mut Rows<'_>) {
    let (mode, described) = match net {
        NetPlan::None => {
            rows.add(
                "network.mode",
                "none",
                Fidelity::Exact,
                "linux.namespaces (network)",
                "a new network namespace: only lo",
            );
            return;
        }
        NetPlan::Host => {
            rows.add(
                "network.mode",
                "host",
                Fidelity::Exact,
                "linux.namespaces",
                "no network namespace: the host's",
            );
            return;
        }
        NetPlan::Bridge(bridge) => (
            "bridge",
            serde_json::json!({
                "mode": "bridge",
                "bridge": bridge.bridge,
                "subnet": bridge.subnet,
                "address": bridge.address,
                "ports": bridge.ports,
                "isolate": bridge.isolate,
                "dns": bridge.dns,
            }),
        ),
        NetPlan::Pasta(pasta) => (
            "pasta",
            serde_json::json!({
                "mode": "pasta",
                "ports": pasta.ports,
                "dns": pasta.dns,
            }),
        ),
    };
    let mut described = described;
    if let Some(egress) = net.egress() {
        let destinations: Vec<String> = egress.rules.iter().map(ToString::to_string).collect();
        described["egress"] = serde_json::json!(destinations);
        rows.add(
            "network.egress",
            destinations.join(", "),
            Fidelity::None,
            "annotations[sandbox.network]",
            "config.json cannot express an allow-list of destinations: sandbox installs it as \
             nftables rules in the sandbox's own network namespace, and an engine running the \
             bundle applies none, so its command reaches whatever the engine's network does",
        );
    }
    annotations.insert(NETWORK_ANNOTATION.to_string(), described.to_string());
    rows.add(
        "network.mode",
        mode,
        Fidelity::None,
        "annotations[sandbox.network]",
        "left to the engine (CNI): the bundle has a new network namespace with only lo, and \
         the network asked for is described in the annotation",
    );
}

/// The mounts being built, and what the bundle folder needs for them.
struct MountsOut<'a> {
    bundle: &'a Path,
    user_namespace: bool,
    uid_map: &'a [IdMapping],
    gid_map: &'a [IdMapping],
    /// The maps of `Idmap::Caller` mounts.
    caller_maps: Option<(Vec<IdMapping>, Vec<IdMapping>)>,
    mounts: Vec<Mount>,
    entries: Vec<RootEntry>,
    files: Vec<BundleFile>,
    layers: Vec<PathBuf>,
}

impl MountsOut<'_> {
    /// The earlier mount that `path` lies under, if any: what the rootfs holds there is
    /// hidden by it.
    fn covering(&self, path: &Path) -> Option<PathBuf> {
        self.mounts
            .iter()
            .map(|m| m.destination())
            .rfind(|d| path.starts_with(d))
            .cloned()
    }

    fn file(&mut self, target: &Path, content: String, mode: u32) {
        let name = format!("files/{}", self.files.len() + 1);
        self.mounts.push(mount(
            target,
            "bind",
            &name,
            strings(&["bind", "nosuid", "nodev"]),
        ));
        self.files.push(BundleFile {
            name,
            content,
            mode,
        });
    }

    fn step(&mut self, step: &MountStep, exists: &dyn Fn(&Path) -> bool, rows: &mut Rows<'_>) {
        let MountStep { op, key } = step;
        let (maps, oci, note) = self.mount_op(op, exists);
        rows.add(&key.path(), describe_mount(op), maps, oci, note);
    }

    /// Add what `op` becomes in the bundle: how faithfully, the runtime-spec field, and a note.
    fn mount_op(&mut self, op: &MountOp, exists: &dyn Fn(&Path) -> bool) -> Carried {
        let exact = |oci| (Fidelity::Exact, oci, String::new());
        let flags = op.flags().unwrap_or_default();
        match op {
            MountOp::Bind {
                source,
                target,
                readonly: _,
                idmap,
                optional,
            } => {
                if *optional && !exists(source) {
                    return (
                        Fidelity::None,
                        "",
                        "optional, and the source is missing now: left out".into(),
                    );
                }
                self.bind(source, target, flags, idmap.as_ref(), *optional)
            }
            MountOp::Tmpfs {
                target,
                size,
                mode,
                readonly: _,
            } => {
                let mut own = vec![format!("mode={mode:o}")];
                own.extend(size.map(|bytes| format!("size={bytes}")));
                let options = flagged(flags, &own);
                self.mounts.push(mount(target, "tmpfs", "tmpfs", options));
                exact("mounts (tmpfs)")
            }
            MountOp::Proc { target } => {
                let options = flagged(flags, &[]);
                self.mounts.push(mount(target, "proc", "proc", options));
                exact("mounts (proc)")
            }
            MountOp::Sysfs { target } => {
                let options = flagged(flags, &[]);
                self.mounts.push(mount(target, "sysfs", "sysfs", options));
                exact("mounts (sysfs)")
            }
            MountOp::Mqueue { target } => {
                let options = flagged(flags, &[]);
                self.mounts.push(mount(target, "mqueue", "mqueue", options));
                exact("mounts (mqueue)")
            }
            MountOp::Devpts { target } => {
                self.mounts.push(devpts(target, flags));
                exact("mounts (devpts)")
            }
            MountOp::Dev { target } => self.dev(target, flags),
            MountOp::Overlay {
                lower,
                upper,
                target,
                readonly: _,
                idmap,
            } => self.overlay(lower, upper.as_ref(), target, flags, idmap.is_some()),
            MountOp::Symlink { link, target } => self.root_entry(
                RootEntry::Symlink {
                    path: target.clone(),
                    link: link.clone(),
                },
                "a symlink",
            ),
            MountOp::Dir { target, mode } => self.root_entry(
                RootEntry::Dir {
                    path: target.clone(),
                    mode: *mode,
                },
                "a folder",
            ),
            MountOp::File {
                target,
                content,
                mode,
            } => {
                self.file(target, content.clone(), *mode);
                (
                    Fidelity::Exact,
                    "mounts (bind)",
                    format!("bound from files/{} in the bundle", self.files.len()),
                )
            }
            MountOp::Hosts {
                target,
                hostname,
                names,
            } => self.hosts(target, hostname.as_deref(), names),
        }
    }

    /// A tmpfs on /dev, with devpts and shm: the runtime then makes the runtime-spec's default
    /// devices in it (null zero full random urandom tty, the fd and std* links, ptmx), the
    /// same set as `up`'s.
    fn dev(&mut self, target: &Path, flags: MountFlags) -> Carried {
        let tmpfs = flagged(flags, &strings(&["mode=755"]));
        self.mounts.push(mount(target, "tmpfs", "tmpfs", tmpfs));
        self.mounts.push(devpts(&target.join("pts"), flags));
        self.mounts.push(mount(
            &target.join("shm"),
            "tmpfs",
            "shm",
            strings(&["nosuid", "nodev", "mode=1777"]),
        ));
        (
            Fidelity::Exact,
            "mounts (tmpfs, devpts, tmpfs)",
            "the runtime makes the default devices in the tmpfs".into(),
        )
    }

    /// /etc/hosts, as a file of the bundle.
    fn hosts(
        &mut self,
        target: &Path,
        hostname: Option<&str>,
        names: &BTreeMap<String, IpAddr>,
    ) -> Carried {
        self.file(target, hosts_file(hostname, None, names, None), 0o644);
        (
            Fidelity::Approximate,
            "mounts (bind)",
            format!(
                "bound from files/{}; the sandbox's own name points to 127.0.1.1, as \
                 its address is the engine's, and the root's own entries are not kept",
                self.files.len()
            ),
        )
    }

    /// A bind mount, id-mapped as the plan says (runtime-spec 1.1).
    fn bind(
        &mut self,
        source: &Path,
        target: &Path,
        flags: MountFlags,
        idmap: Option<&Idmap>,
        optional: bool,
    ) -> Carried {
        let options = [strings(&["rbind"]), flagged(flags, &[])].concat();
        let mut oci = mount(target, "bind", &source.display().to_string(), options);
        let mut notes = Vec::new();
        if optional {
            notes.push("optional: present now, so exported; a runtime fails when it is missing");
        }
        if let Some(idmap) = idmap {
            let (uid, gid) = match idmap {
                Idmap::Sandbox => (self.uid_map.to_vec(), self.gid_map.to_vec()),
                Idmap::Caller => self.caller_maps.clone().unwrap_or_default(),
            };
            oci.set_uid_mappings(Some(id_mappings(&uid)));
            oci.set_gid_mappings(Some(id_mappings(&gid)));
            if let Some(options) = oci.options_mut() {
                options.push("idmap".into());
            }
            notes.push("an id-mapped mount (runtime-spec 1.1): runtimes before runc 1.2 ignore or refuse it");
        }
        self.mounts.push(oci);
        (
            approximate_if_noted(&notes),
            "mounts (bind)",
            notes.join("; "),
        )
    }

    /// An overlay; a tmpfs upper layer becomes folders in the bundle.
    fn overlay(
        &mut self,
        lower: &[PathBuf],
        upper: Option<&OverlayUpper>,
        target: &Path,
        flags: MountFlags,
        idmapped: bool,
    ) -> Carried {
        let lowerdir = lower
            .iter()
            .map(|l| l.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut options = vec![format!("lowerdir={lowerdir}")];
        let mut notes = Vec::new();
        let layers = match upper {
            None => None,
            Some(OverlayUpper::Dir { upper, work, .. }) => Some((upper.clone(), work.clone())),
            Some(OverlayUpper::Tmpfs) => {
                let dir = self
                    .bundle
                    .join(format!("overlay/{}", self.layers.len() / 2 + 1));
                let (upper, work) = (dir.join("upper"), dir.join("work"));
                self.layers.push(upper.clone());
                self.layers.push(work.clone());
                notes.push(format!(
                    "the tmpfs upper layer is {} in the bundle: changes outlive the run",
                    dir.display()
                ));
                Some((upper, work))
            }
        };
        if let Some((upper, work)) = layers {
            options.push(format!("upperdir={}", upper.display()));
            options.push(format!("workdir={}", work.display()));
        }
        if self.user_namespace {
            options.push("userxattr".into());
        }
        options.extend(flagged(flags, &[]));
        if idmapped {
            notes.push("the lower layers are not id-mapped".into());
        }
        if let Some(OverlayUpper::Dir { idmap: Some(_), .. }) = upper {
            notes.push("the kept layer is not id-mapped".into());
        }
        self.mounts
            .push(mount(target, "overlay", "overlay", options));
        (
            approximate_if_noted(&notes),
            "mounts (overlay)",
            notes.join("; "),
        )
    }

    /// A symlink or folder `up` makes in the root, made in rootfs/ unless a mount hides it.
    fn root_entry(&mut self, entry: RootEntry, what: &str) -> Carried {
        let (RootEntry::Symlink { path, .. } | RootEntry::Dir { path, .. }) = &entry;
        if let Some(mount) = self.covering(path) {
            return (
                Fidelity::None,
                "",
                format!(
                    "under the mount on {}: {what} is no mount, and rootfs/ is hidden there",
                    mount.display()
                ),
            );
        }
        self.entries.push(entry);
        (Fidelity::Exact, "rootfs/", "made in rootfs/".into())
    }
}

/// How a mount is carried into the bundle: how faithfully, as which runtime-spec field, with
/// what note.
type Carried = (Fidelity, &'static str, String);

/// Exact, unless a note says what differs.
fn approximate_if_noted<T>(notes: &[T]) -> Fidelity {
    if notes.is_empty() {
        Fidelity::Exact
    } else {
        Fidelity::Approximate
    }
}

/// The plan's `flags` of a mount as options: the others around a type's `own` options, `ro`
/// after them.
fn flagged(flags: MountFlags, own: &[String]) -> Vec<String> {
    let mut options: Vec<String> = flags.options().map(String::from).collect();
    options.extend_from_slice(own);
    options.extend(flags.readonly.then(|| "ro".to_string()));
    options
}

/// A devpts of its own on `target`, with the plan's `flags` of the mount.
fn devpts(target: &Path, flags: MountFlags) -> Mount {
    let own = strings(&["newinstance", "ptmxmode=0666", "mode=0620"]);
    mount(target, "devpts", "devpts", flagged(flags, &own))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_split_into_whole_seconds_and_a_positive_rest() {
        assert_eq!(offset(0), (0, 0));
        assert_eq!(offset(1_500_000_000), (1, 500_000_000));
        assert_eq!(offset(-1_500_000_000), (-2, 500_000_000));
        assert_eq!(offset(-1), (-1, 999_999_999));
    }

    #[test]
    fn a_path_under_an_earlier_mount_is_covered_by_the_innermost() {
        let mut out = MountsOut {
            bundle: Path::new("/b"),
            user_namespace: true,
            uid_map: &[],
            gid_map: &[],
            caller_maps: None,
            mounts: Vec::new(),
            entries: Vec::new(),
            files: Vec::new(),
            layers: Vec::new(),
        };
        for target in ["/tmp", "/tmp/a", "/usr"] {
            out.mounts
                .push(mount(Path::new(target), "tmpfs", "tmpfs", Vec::new()));
        }
        assert_eq!(
            out.covering(Path::new("/tmp/a/b")),
            Some(PathBuf::from("/tmp/a"))
        );
        assert_eq!(
            out.covering(Path::new("/tmpx")),
            None,
            "components, not bytes"
        );
        assert_eq!(out.covering(Path::new("/bin")), None);
    }
}
