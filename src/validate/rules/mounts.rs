//! `[[mount]]` entries, the default mounts (/proc, /dev, /tmp) and files the network writes.

use crate::origin::Origin;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::super::Cx;
use super::get;
use super::rootfs::{Root, work_dir_for};
use crate::diagnostics::Problem;
use crate::host::{NotIdmappable, NotOwn};
use crate::manifest::{Mount, MountType, Sources, Span, Spanned};
use crate::plan::{
    HandedOver, IdMapping, Idmap, MountOp, MountStep, Namespaces, NetPlan, OverlayUpper,
    ProcessPlan, RootPlan, RootSource, UserPlan,
};

pub(super) struct Mounts {
    pub mounts: Vec<MountStep>,
    pub warnings: Vec<String>,
    /// Host directories id-mapped though not the caller's own to give (see [`host_idmap`]).
    pub handed: Vec<HandedOver>,
}

/// Who the command is inside the sandbox: what id-mapped binds map the caller's files to.
pub(super) struct Inside<'a> {
    pub name: &'a str,
    pub namespaces: &'a Namespaces,
    pub process: &'a ProcessPlan,
    pub user: Option<&'a UserPlan>,
    /// The sandbox's own host name, when it has its own UTS namespace.
    pub hostname: Option<&'a str>,
    /// The manifest's `network.hosts`.
    pub hosts: &'a BTreeMap<String, IpAddr>,
}

/// An id-mapped bind: the caller's files appear owned by the command's uid and gid, and what
/// the command makes is the caller's on the host. The kernel only lets a caller privileged over
/// the file system's own user namespace id-map it, so as root the launcher makes these mounts;
/// rootless, the sandbox's own map already shows the caller's files as the command's.
/// Not onto host ids that are not the sandbox's own (see [`UserPlan::hands_over`]): `asked`
/// (`idmap = true`) is then an error, the default a warning.
fn bind_idmap(cx: &mut Cx, span: Span, who: &Inside, asked: bool) -> Option<Idmap> {
    let Some(user) = who.user.filter(|_| who.namespaces.user) else {
        cx.report(
            Problem::error(
                "sandbox::mount::idmap-needs-userns",
                "an id-mapped bind needs the sandbox's own user namespace",
            )
            .at(span, "id-mapped")
            .help("remove `user = false` from [namespaces], or `idmap = true`"),
        );
        return None;
    };
    let caller = &cx.host.caller;
    let host_uid = user.uid_map.iter().find_map(|m| m.map(who.process.uid));
    let host_gid = user.gid_map.iter().find_map(|m| m.map(who.process.gid));
    if !caller.is_root() {
        if host_uid == Some(caller.uid) && host_gid == Some(caller.gid) {
            return None;
        }
        cx.report(
            Problem::error("sandbox::mount::idmap-needs-root", "id-mapped binds need root")
                .at(span, "id-mapped")
                .help(format!(
                    "the kernel lets only root id-map the host's file systems; map your own ids to the command's \
                     (uid {} and gid {} inside) in uid_map/gid_map and your files appear as theirs without idmap",
                    who.process.uid, who.process.gid
                )),
        );
        return None;
    }
    // An unmapped command is reported by the id map rules.
    let (host_uid, host_gid) = (host_uid?, host_gid?);
    let line = |disk: u32, host: u32| {
        [IdMapping {
            inside: disk,
            outside: host,
            count: 1,
        }]
    };
    if !user.hands_over(&line(caller.uid, host_uid), &line(caller.gid, host_gid)) {
        return Some(Idmap::Caller);
    }
    let why = format!(
        "the command's host ids (uid {host_uid}, gid {host_gid}) are not the sandbox's own: id-mapped, your files would be theirs, to change through the sandbox"
    );
    let fix = "map the command onto ids of the sandbox's own (without uid_map and gid_map, root's sandboxes lease a block no one else has)";
    cx.report(if asked {
        Problem::error(
            "sandbox::mount::idmap-foreign",
            format!("this bind cannot be id-mapped: {why}"),
        )
        .at(span, "id-mapped")
        .help(format!("{fix}, or remove `idmap = true`"))
    } else {
        Problem::warning(
            "sandbox::mount::not-idmapped",
            format!("this bind is not id-mapped: {why}"),
        )
        .at(span, "files keep their host owners")
        .help(format!("{fix}; `idmap = false` silences this"))
    });
    None
}

/// A host directory a mount shows, as the id-mapping decision judges it.
pub(super) struct HostDir<'a> {
    pub path: &'a Path,
    /// Where the manifest names it, for a warning.
    pub span: Span,
    /// The manifest key of its mount, as the plan's host paths name it.
    pub key: Origin,
}

/// The one decision of whether the host directories a mount shows are id-mapped, for every
/// such mount: the root directory, the host's dirs of `rootfs.host`, binds, overlay layers
/// (lower and kept). Only as root with a user namespace: rootless, the sandbox's map already
/// shows the caller's files as its own, and the kernel lets only root id-map.
///
/// `asked` is the manifest's `idmap`. Unset, the directories are id-mapped only when each is
/// the caller's own ([`crate::host::HostFacts::not_own`]): the host's system directories are
/// not (the sandbox sees them as rootless does: root's files are nobody's inside, and
/// /etc/shadow stays unreadable), and someone else's, or one others may write, is not, with a
/// warning. `true` id-maps them whatever they are; those whose files are not the caller's to
/// give (and, through the sandbox's map, which gives the files of every owner it maps, those
/// outside the project) go to `handed`, which the trust check asks for. `map` is how the mount
/// would be id-mapped, given whether it was asked for (`None`: it is not, reported there).
pub(super) fn host_idmap(
    cx: &mut Cx,
    namespaces: &Namespaces,
    dirs: &[HostDir],
    asked: Option<bool>,
    handed: &mut Vec<HandedOver>,
    map: impl FnOnce(&mut Cx, bool) -> Option<Idmap>,
) -> Option<Idmap> {
    match asked {
        Some(false) => return None,
        _ if !(cx.host.caller.is_root() && namespaces.user) => {
            return if asked == Some(true) {
                map(cx, true)
            } else {
                None
            };
        }
        _ => {}
    }
    let not_own: Vec<Option<NotOwn>> = dirs.iter().map(|dir| cx.host.not_own(dir.path)).collect();
    if asked.is_none() {
        let others = dirs.iter().zip(&not_own).find_map(|(dir, why)| match why {
            Some(NotOwn::Others(why)) => Some((dir, why)),
            _ => None,
        });
        if let Some((dir, why)) = others {
            cx.report(
                Problem::warning(
                    "sandbox::mount::not-idmapped",
                    format!(
                        "as root, {} is not id-mapped: it is {why}, so its files keep their host owners (nobody's inside)",
                        dir.path.display()
                    ),
                )
                .at(dir.span, "not yours")
                .help(
                    "id-mapped, its owners' files would be the sandbox's, and what the sandbox makes there \
                     yours; run `sandbox` as its owner, or use a folder of your own that no one else may \
                     write; `idmap = true` id-maps it all the same (`sandbox up` asks first), `idmap = false` \
                     silences this",
                ),
            );
            return None;
        }
        if not_own.iter().any(Option::is_some) {
            return None;
        }
    }
    let idmap = map(cx, asked == Some(true))?;
    // A bind maps the caller's ids alone: the project folder is resolved only for layers.
    let project =
        (idmap == Idmap::Sandbox).then(|| crate::hostpath::resolve(&cx.loaded.project_dir));
    for (dir, why) in dirs.iter().zip(not_own) {
        let why = match (why, &project) {
            (Some(why), _) => why.to_string(),
            (None, Some(project)) if !dir.path.starts_with(project) => {
                "outside the project".to_string()
            }
            (None, _) => continue,
        };
        handed.push(HandedOver {
            key: dir.key.clone(),
            path: dir.path.to_path_buf(),
            why,
            through: idmap,
        });
    }
    Some(idmap)
}

/// How a bind is id-mapped: as root, as it behaves rootless, the caller's files are the
/// command's inside and what the command makes is the caller's. Root's sandboxes run as
/// unprivileged host ids, so without an id map the caller's files would be nobody's inside and
/// a "writable" project not writable. Not where the file system cannot be id-mapped: a warning
/// says what the sandbox will see then, and what to do. (Which sources: see [`host_idmap`].)
fn bind_source_idmap(
    cx: &mut Cx,
    dir: &HostDir,
    asked: Option<&Spanned<bool>>,
    who: &Inside,
    handed: &mut Vec<HandedOver>,
) -> Option<Idmap> {
    let map = |cx: &mut Cx, is_asked: bool| {
        if let (true, Some(asked)) = (is_asked, asked) {
            return bind_idmap(cx, asked.span, who, true);
        }
        who.user?;
        match cx.host.idmappable(dir.path) {
            Ok(()) => bind_idmap(cx, dir.span, who, false),
            Err(fs) => {
                cx.report(
                    Problem::warning(
                        "sandbox::mount::not-idmapped",
                        format!(
                            "as root, {} cannot be id-mapped ({fs} has no id-mapped mounts): its files belong to nobody inside",
                            dir.path.display()
                        ),
                    )
                    .at(dir.span, "owned by nobody inside")
                    .help(
                        "root's sandboxes run as unprivileged host ids, so the command cannot write these files; \
                         run `sandbox` as the user who owns them (rootless, they are the command's), keep them on \
                         a file system with id-mapped mounts (ext4, xfs, btrfs, tmpfs), or give them to fixed \
                         host ids set with uid_map/gid_map; `idmap = false` silences this",
                    ),
                );
                None
            }
        }
    };
    host_idmap(
        cx,
        who.namespaces,
        std::slice::from_ref(dir),
        asked.map(|a| a.value),
        handed,
        map,
    )
}

/// How a layer (the root directory, an overlay's lower or kept layer) is id-mapped: as root,
/// through the sandbox's own map, as copy-up keeps each file's owner and the host's root is
/// not mapped in root's unprivileged id range. Rootless, nothing is (nor needs to be): the
/// caller's files are already the sandbox's root's. (Which layers: see [`host_idmap`].)
pub(super) fn layer_idmap(
    cx: &mut Cx,
    namespaces: &Namespaces,
    dirs: &[HostDir],
    asked: Option<&Spanned<bool>>,
    handed: &mut Vec<HandedOver>,
) -> Option<Idmap> {
    let map = |cx: &mut Cx, _| {
        if !namespaces.user {
            cx.report(
                Problem::error(
                    "sandbox::mount::idmap-needs-userns",
                    "an id-mapped layer needs the sandbox's own user namespace",
                )
                .at_span(asked.map(|a| a.span))
                .help("remove `user = false` from [namespaces], or `idmap = true`"),
            );
            return None;
        }
        cx.host.caller.is_root().then_some(Idmap::Sandbox)
    };
    host_idmap(cx, namespaces, dirs, asked.map(|a| a.value), handed, map)
}

/// Mounts id-mapped through the sandbox's map (its root, overlay layers) are not, when that
/// map gives files to host ids that are not the sandbox's own (a fixed map onto others' ids,
/// see [`UserPlan::hands_over`]): their files keep their host owners. The root is planned
/// before the map, so this is decided once both are; returns the warning that says so.
pub(super) fn keep_owners(
    user: Option<&UserPlan>,
    root: &mut RootPlan,
    mounts: &mut [MountStep],
    handed: &mut Vec<HandedOver>,
) -> Option<String> {
    let user = user.filter(|user| user.hands_over(&user.uid_map, &user.gid_map))?;
    let kept = |upper: Option<&mut OverlayUpper>| match upper {
        Some(OverlayUpper::Dir { idmap, .. }) => idmap.take().is_some(),
        _ => false,
    };
    let mut changed = std::mem::take(&mut root.idmapped) | kept(root.overlay.as_mut());
    for step in mounts {
        if let MountOp::Overlay { idmap, upper, .. } = &mut step.op {
            changed |= kept(upper.as_mut()) | idmap.take().is_some();
        }
    }
    handed.retain(|handed| handed.through != Idmap::Sandbox);
    changed.then(|| {
        let foreign = user.foreign.uids.iter().chain(&user.foreign.gids);
        let ids: Vec<String> = foreign.map(ToString::to_string).collect();
        format!(
            "uid_map/gid_map map onto host ids that are not the sandbox's own ({}): its root and \
             overlay layers are not id-mapped, so their files keep their host owners",
            ids.join(", ")
        )
    })
}

/// A kept layer id-mapped through the sandbox's map.
fn idmapped_upper(upper: &Option<OverlayUpper>) -> Option<&Path> {
    match upper {
        Some(OverlayUpper::Dir {
            upper,
            idmap: Some(_),
            ..
        }) => Some(upper),
        _ => None,
    }
}

/// Refuse the id-mapped mounts this kernel cannot make (a root on tmpfs before Linux 6.3, a
/// bind of an NFS export), at the key that asks for them, rather than half-way through the
/// launch. The same directories as the executor's: the root, id-mapped binds, and the lower
/// and kept layers of id-mapped overlays.
pub(super) fn idmap_supported(cx: &mut Cx, root: &RootPlan, mounts: &[MountStep]) {
    // (directory, key to point at, whether the manifest asked with `idmap = true`)
    let mut dirs: Vec<(&Path, String, bool)> = Vec::new();
    if let (true, RootSource::Dir { path }) = (root.idmapped, &root.source) {
        dirs.push((path, "rootfs.path".into(), false));
    }
    dirs.extend(idmapped_upper(&root.overlay).map(|upper| (upper, "rootfs.overlay".into(), false)));
    for step in mounts {
        let key = || step.key.path().into_owned();
        match &step.op {
            MountOp::Bind {
                source,
                idmap: Some(_),
                ..
            } => dirs.push((source, format!("{}.idmap", key()), true)),
            MountOp::Overlay {
                lower,
                idmap,
                upper,
                ..
            } => {
                if idmap.is_some() {
                    dirs.extend(lower.iter().map(|l| (l.as_path(), key(), false)));
                }
                dirs.extend(idmapped_upper(upper).map(|upper| (upper, key(), false)));
            }
            _ => {}
        }
    }
    for (dir, key, asked) in dirs {
        let Err(NotIdmappable::Known { fs, since }) = cx.host.idmappable(dir) else {
            continue;
        };
        let (upgrade, never) = match since {
            Some((major, minor)) => (format!(", upgrade to Linux {major}.{minor} or later"), ""),
            None => (String::new(), " (no Linux release does yet)"),
        };
        let kernel = cx
            .host
            .kernel()
            .map_or("this kernel".to_string(), |(major, minor)| {
                format!("Linux {major}.{minor}")
            });
        let help = if asked {
            format!(
                "remove `idmap = true`, move the source to a file system this kernel id-maps (ext4, xfs, btrfs){upgrade}"
            )
        } else {
            format!(
                "as root, `sandbox` id-maps it through the sandbox's own uid map: move it to a file system this kernel id-maps (ext4, xfs, btrfs){upgrade}, or run `sandbox` as an unprivileged user"
            )
        };
        let span = cx
            .span_of(&key)
            .or_else(|| cx.span_of(key.trim_end_matches(".idmap")));
        cx.report(
            Problem::error(
                "sandbox::mount::idmap-unsupported",
                format!(
                    "{} is on {fs}, which {kernel} cannot id-map{never}",
                    dir.display()
                ),
            )
            .at_span(span)
            .help(help),
        );
    }
}

/// A deterministic jail's machine-id(5): 32 hex digits derived from the sandbox's name, so two
/// runs of one manifest see the same id and two sandboxes different ones.
fn machine_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("sandbox machine-id {name}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{hex}\n")
}

/// The keys each mount type takes besides `type` and `target`.
fn allowed_keys(kind: MountType) -> &'static [&'static str] {
    match kind {
        MountType::Bind => &["source", "readonly", "idmap", "optional"],
        MountType::Tmpfs => &["size", "mode", "readonly"],
        MountType::Overlay => &["source", "readonly", "upper", "idmap"],
        MountType::Symlink => &["source"],
        MountType::File => &["content", "mode"],
        MountType::Dir => &["mode"],
        MountType::Proc
        | MountType::Sysfs
        | MountType::Dev
        | MountType::Devpts
        | MountType::Mqueue => &[],
    }
}

fn present_keys(mount: &Mount) -> Vec<(&'static str, Span)> {
    [
        ("source", mount.source.as_ref().map(|s| s.span)),
        ("readonly", mount.readonly.as_ref().map(|s| s.span)),
        ("idmap", mount.idmap.as_ref().map(|s| s.span)),
        ("optional", mount.optional.as_ref().map(|s| s.span)),
        ("size", mount.size.as_ref().map(|s| s.span)),
        ("mode", mount.mode.as_ref().map(|s| s.span)),
        ("content", mount.content.as_ref().map(|s| s.span)),
        ("upper", mount.upper.as_ref().map(|s| s.span)),
    ]
    .into_iter()
    .filter_map(|(key, span)| Some((key, span?)))
    .collect()
}

pub(super) fn mounts(cx: &mut Cx, root: &Root, net: &NetPlan, who: &Inside) -> Mounts {
    let namespaces = who.namespaces;
    let loaded = cx.loaded;
    let mut out: Vec<MountStep> = root.host_mounts.clone();
    let mut handed = Vec::new();

    // Defaults, each one a key a manifest can turn off.
    let default_on =
        |setting: &Option<Spanned<bool>>, default: bool| get(setting).unwrap_or(default);
    if default_on(&root.proc, namespaces.pid) {
        if !namespaces.pid && namespaces.user {
            let span = root.proc.as_ref().map(|p| p.span);
            cx.report(
                Problem::error("sandbox::mount::proc-needs-pidns", "a fresh /proc needs the sandbox's own pid namespace")
                    .at_span(span)
                    .help("the kernel only lets a user namespace mount proc for a pid namespace it owns; enable `pid` in [namespaces] or set `proc = false`"),
            );
        }
        out.push(MountStep {
            op: MountOp::Proc {
                target: "/proc".into(),
            },
            key: "rootfs.proc".into(),
        });
    }
    if default_on(&root.dev, true) {
        out.push(MountStep {
            op: MountOp::Dev {
                target: "/dev".into(),
            },
            key: "rootfs.dev".into(),
        });
    }
    if default_on(&root.tmp, true) {
        out.push(MountStep {
            op: MountOp::Tmpfs {
                target: "/tmp".into(),
                size: None,
                mode: 0o1777,
                readonly: false,
            },
            key: "rootfs.tmp".into(),
        });
    }

    // The manifest's own mounts: a target already taken by a default or a host dir replaces it
    // (so `[[mount]] target = "/tmp"` is how a manifest swaps the default /tmp). Slots of
    // replaced mounts are emptied rather than removed, so each mount costs a hash lookup,
    // whatever their number.
    let defaults_end = out.len();
    let mut slots: Vec<Option<MountStep>> = out.into_iter().map(Some).collect();
    // Each target the manifest mounts on: where it was written, and its slot. Targets are
    // normalized, so they are compared as bytes (a Path compares and hashes component by
    // component, which dominated the check of ten thousand mounts).
    let mut written: HashMap<OsString, (Span, usize)> = HashMap::new();
    for (index, mount) in loaded.manifest.mount.iter().flatten().enumerate() {
        let key = Origin::Mount(index);
        let Some(op) = mount_op(cx, &mount.value, mount.span, &key, who, &mut handed) else {
            continue;
        };
        if matches!(op, MountOp::Sysfs { .. }) && namespaces.user && !namespaces.net {
            cx.report(
                Problem::error("sandbox::mount::sysfs-needs-netns", "sysfs needs the sandbox's own network namespace")
                    .at(mount.value.kind.span, "sysfs")
                    .help("the kernel only lets a user namespace mount sysfs with a network namespace it owns; enable `net` in [namespaces], or bind the host's /sys instead"),
            );
        }
        let target = op.target().as_os_str().to_owned();
        let here = mount.value.target.span;
        if let Some(&(first, slot)) = written.get(&target) {
            if same_file(cx, first, here) {
                cx.report(
                    Problem::error(
                        "sandbox::mount::duplicate-target",
                        format!("two mounts target {}", target.display()),
                    )
                    .at(here, "second mount here")
                    .also(first, "first mount here")
                    .help("keep one of them; a later mount would hide the earlier one"),
                );
                continue;
            }
            // From a file this one extends: the later file wins, as for any other key.
            slots[slot] = None;
        }
        // The defaults are a handful, whatever the manifest holds.
        if let Some(default) = slots[..defaults_end].iter_mut().find(|m| {
            m.as_ref()
                .is_some_and(|m| m.op.target().as_os_str() == target)
        }) {
            *default = None;
        }
        written.insert(target, (here, slots.len()));
        slots.push(Some(MountStep { op, key }));
    }
    let mut out: Vec<MountStep> = slots.into_iter().flatten().collect();
    let warnings = hidden_mounts(&out);

    network_files(net, who, &mut out);
    if who.process.deterministic {
        out.push(MountStep {
            op: MountOp::File {
                target: "/etc/machine-id".into(),
                content: machine_id(who.name),
                mode: 0o444,
            },
            key: "process.deterministic".into(),
        });
    }
    Mounts {
        mounts: out,
        warnings,
        handed,
    }
}

/// How many hidden mounts are named one by one; the rest are counted.
const HIDDEN_NAMED: usize = 5;

/// A mount made later on a parent folder hides an earlier one below it: one warning per hidden
/// mount, naming the first manifest mount that hides it.
///
/// The targets go into a trie by path component, from the last mount to the first, so each
/// mount's parents are found by walking its own components once: linear in the total length of
/// the targets. (Comparing every pair was quadratic in the number of mounts, and 1500 nested
/// targets listed deepest first gave a million warnings.)
fn hidden_mounts(out: &[MountStep]) -> Vec<String> {
    // (parent node, component) -> node; node 0 is `/`.
    let mut children: HashMap<(usize, &OsStr), usize> = HashMap::new();
    // Per node: the earliest manifest mount on it after the one being looked at.
    let mut mounted: Vec<Option<usize>> = vec![None];
    let mut hidden = Vec::new();
    for (index, step) in out.iter().enumerate().rev() {
        let mut node = 0;
        let mut hidden_by: Option<usize> = None;
        for component in step.op.target().iter().skip(1) {
            // `node` is a parent of this target: a mount on it comes later, so it hides this one.
            if let Some(later) = mounted[node] {
                hidden_by = Some(hidden_by.map_or(later, |first| first.min(later)));
            }
            let count = mounted.len();
            node = *children.entry((node, component)).or_insert(count);
            if node == count {
                mounted.push(None);
            }
        }
        if let Some(later) = hidden_by {
            hidden.push((index, later));
        }
        if let Origin::Mount(_) = step.key {
            mounted[node] = Some(index);
        }
    }
    hidden.reverse();
    let mut warnings: Vec<String> = hidden
        .iter()
        .take(HIDDEN_NAMED)
        .map(|&(index, later)| {
            let (earlier, later) = (&out[index], &out[later]);
            format!(
                "{} ({}) is mounted after {} ({}) and hides it; list the parent first",
                later.op.target().display(),
                later.key,
                earlier.op.target().display(),
                earlier.key
            )
        })
        .collect();
    if hidden.len() > HIDDEN_NAMED {
        warnings.push(format!(
            "{} more mounts are hidden by a mount on a parent folder made after them",
            hidden.len() - HIDDEN_NAMED
        ));
    }
    warnings
}

fn same_file(cx: &Cx, a: Span, b: Span) -> bool {
    let sources = &cx.loaded.sources;
    match (sources.resolve(a), sources.resolve(b)) {
        (Some((fa, _, _)), Some((fb, _, _))) => fa.path == fb.path,
        _ => true,
    }
}

fn mount_op(
    cx: &mut Cx,
    mount: &Mount,
    entry_span: Span,
    key: &Origin,
    who: &Inside,
    handed: &mut Vec<HandedOver>,
) -> Option<MountOp> {
    let kind = mount.kind.value;
    check_keys(cx, mount);
    let target = cx.target_path(&mount.target, "a mount target")?;
    if target.as_os_str() == "/" {
        cx.report(
            Problem::error(
                "sandbox::mount::root-target",
                "a mount cannot replace the root",
            )
            .at(mount.target.span, "the root")
            .help("choose the root in [rootfs]; mounts go below it"),
        );
        return None;
    }
    let readonly = get(&mount.readonly);
    let entry = |target| Entry {
        mount,
        span: entry_span,
        key,
        who,
        target,
    };
    let mode = |default: u32| get(&mount.mode).map_or(default, |m| m.0);
    let op = match kind {
        MountType::Bind => bind(cx, entry(target), handed)?,
        MountType::Tmpfs => MountOp::Tmpfs {
            target,
            size: get(&mount.size).map(|s| s.0),
            mode: mode(0o755),
            readonly: readonly.unwrap_or(false),
        },
        MountType::Proc => MountOp::Proc { target },
        MountType::Sysfs => MountOp::Sysfs { target },
        MountType::Dev => MountOp::Dev { target },
        MountType::Devpts => MountOp::Devpts { target },
        MountType::Mqueue => MountOp::Mqueue { target },
        MountType::Overlay => overlay(cx, entry(target), handed)?,
        MountType::Symlink => {
            let link = single_source(
                cx,
                mount,
                entry_span,
                "a symlink needs a `source`: the link's text",
            )?;
            MountOp::Symlink {
                link: link.value,
                target,
            }
        }
        MountType::File => MountOp::File {
            target,
            content: get(&mount.content).unwrap_or_default(),
            mode: mode(0o644),
        },
        MountType::Dir => MountOp::Dir {
            target,
            mode: mode(0o755),
        },
    };
    Some(op)
}

/// A `[[mount]]` entry being planned: its table, where it is, its key (`mount[N]`), the
/// sandbox it is for and its target there.
struct Entry<'a> {
    mount: &'a Mount,
    span: Span,
    key: &'a Origin,
    who: &'a Inside<'a>,
    target: PathBuf,
}

/// Each key the mount sets must be one its type takes.
fn check_keys(cx: &mut Cx, mount: &Mount) {
    let kind = mount.kind.value;
    for (key, span) in present_keys(mount) {
        if !allowed_keys(kind).contains(&key) {
            cx.report(
                Problem::error(
                    "sandbox::mount::key-not-for-type",
                    format!("`{key}` does not apply to a {} mount", kind.name()),
                )
                .at(span, "not used by this mount type")
                .help(match allowed_keys(kind) {
                    [] => format!("a {} mount takes only `type` and `target`", kind.name()),
                    keys => format!("a {} mount takes: {}", kind.name(), keys.join(", ")),
                }),
            );
        }
    }
}

/// A bind of a host path: it must exist unless optional, and is id-mapped as its source
/// allows (see [`bind_source_idmap`]).
fn bind(cx: &mut Cx, entry: Entry, handed: &mut Vec<HandedOver>) -> Option<MountOp> {
    let mount = entry.mount;
    let source = single_source(
        cx,
        mount,
        entry.span,
        "a bind mount needs a `source` on the host",
    )?;
    let optional = get(&mount.optional).unwrap_or(false);
    let path = cx.host_path(&source, "the bind source")?;
    if !optional && std::fs::metadata(&path).is_err() {
        cx.report(
            Problem::error("sandbox::mount::missing-source", format!("the bind source {} does not exist", path.display()))
                .at(source.span, "does not exist")
                .help("relative paths are relative to the manifest's folder; create it, fix the path, or add `optional = true`"),
        );
    }
    let dir = HostDir {
        path: &path,
        span: source.span,
        key: entry.key.clone(),
    };
    let idmap = bind_source_idmap(cx, &dir, mount.idmap.as_ref(), entry.who, handed);
    Some(MountOp::Bind {
        source: path,
        target: entry.target,
        readonly: get(&mount.readonly).unwrap_or(true),
        idmap,
        optional,
    })
}

/// An overlay of lower dirs on the host, with a kept upper dir, a throw-away one, or none
/// when read-only; its layers id-mapped as [`layer_idmap`] decides.
fn overlay(cx: &mut Cx, entry: Entry, handed: &mut Vec<HandedOver>) -> Option<MountOp> {
    let mount = entry.mount;
    let lower = lower_dirs(cx, mount, entry.span)?;
    let dirs: Vec<HostDir> = lower
        .iter()
        .map(|(path, span)| HostDir {
            path,
            span: *span,
            key: entry.key.clone(),
        })
        .collect();
    let idmap = layer_idmap(
        cx,
        entry.who.namespaces,
        &dirs,
        mount.idmap.as_ref(),
        handed,
    );
    let readonly = get(&mount.readonly).unwrap_or(false);
    let upper = upper(cx, &entry, readonly, handed)?;
    Some(MountOp::Overlay {
        lower: lower.into_iter().map(|(path, _)| path).collect(),
        upper,
        target: entry.target,
        readonly,
        idmap,
    })
}

/// An overlay's lower dirs on the host, each with where it is named; `None` when there are
/// none, reported.
fn lower_dirs(cx: &mut Cx, mount: &Mount, entry_span: Span) -> Option<Vec<(PathBuf, Span)>> {
    let lower: Vec<Spanned<String>> = match &mount.source {
        Some(Spanned {
            value: Sources::One(one),
            span,
        }) => vec![Spanned::new(one.clone(), *span)],
        Some(Spanned {
            value: Sources::Many(many),
            ..
        }) => many.clone(),
        None => Vec::new(),
    };
    // A `source` dropped for an error is reported already.
    if lower.is_empty() && !cx.loaded.dropped_from(entry_span, "source") {
        cx.report(
            Problem::error(
                "sandbox::mount::overlay-no-lower",
                "an overlay mount needs at least one lower dir",
            )
            .at(
                mount.source.as_ref().map_or(entry_span, |s| s.span),
                "no lower dir",
            )
            .help("set `source = \"./base\"` or `source = [\"./top\", \"./bottom\"]`"),
        );
    }
    if lower.is_empty() {
        return None;
    }
    let lower = lower
        .iter()
        .filter_map(|dir| {
            let path = cx.host_path(dir, "an overlay lower dir")?;
            if !path.is_dir() {
                cx.report(
                    Problem::error(
                        "sandbox::mount::missing-source",
                        format!("the overlay lower dir {} does not exist", path.display()),
                    )
                    .at(dir.span, "not a directory")
                    .help("relative paths are relative to the manifest's folder"),
                );
            }
            Some((path, dir.span))
        })
        .collect();
    Some(lower)
}

/// An overlay's writable layer: a kept upper dir (id-mapped as its lower dirs would be), a
/// throw-away one, or none when read-only; `None` when the upper dir is no usable path.
fn upper(
    cx: &mut Cx,
    entry: &Entry,
    readonly: bool,
    handed: &mut Vec<HandedOver>,
) -> Option<Option<OverlayUpper>> {
    let Entry { mount, who, .. } = entry;
    let upper = match (&mount.upper, readonly) {
        (Some(upper), true) => {
            cx.report(
                Problem::error(
                    "sandbox::mount::readonly-overlay",
                    "a read-only overlay has no upper dir",
                )
                .at(upper.span, "would never be written")
                .help("remove `upper`, or `readonly = true`"),
            );
            None
        }
        (Some(spanned), false) => {
            let upper = cx.host_path(spanned, "an overlay's upper dir")?;
            let dir = HostDir {
                path: &upper,
                span: spanned.span,
                key: entry.key.clone(),
            };
            let idmap = layer_idmap(cx, who.namespaces, &[dir], mount.idmap.as_ref(), handed);
            Some(OverlayUpper::Dir {
                work: work_dir_for(&upper),
                upper,
                idmap,
            })
        }
        (None, false) => Some(OverlayUpper::Tmpfs),
        (None, true) => None,
    };
    Some(upper)
}

fn single_source(
    cx: &mut Cx,
    mount: &Mount,
    entry_span: Span,
    message: &str,
) -> Option<Spanned<String>> {
    match &mount.source {
        Some(Spanned {
            value: Sources::One(one),
            span,
        }) => Some(Spanned::new(one.clone(), *span)),
        Some(Spanned {
            value: Sources::Many(_),
            span,
        }) => {
            cx.report(
                Problem::error(
                    "sandbox::mount::one-source",
                    format!("a {} mount takes one source", mount.kind.value.name()),
                )
                .at(*span, "several sources")
                .help("write `source = \"path\"`; only overlay mounts take a list"),
            );
            None
        }
        // A `source` dropped for an error is reported already.
        None if cx.loaded.dropped_from(entry_span, "source") => None,
        None => {
            cx.report(
                Problem::error("sandbox::mount::no-source", message)
                    .at(entry_span, "no `source`")
                    .help("add `source = \"...\"` to this [[mount]]"),
            );
            None
        }
    }
}

/// /etc/resolv.conf from `dns` (with a network to reach them), and in every mode /etc/hosts
/// naming the sandbox itself and `hosts`: its own host name must resolve (`hostname -f`, and
/// tools that look up their host) also without a network.
fn network_files(net: &NetPlan, who: &Inside, out: &mut Vec<MountStep>) {
    let dns: &[IpAddr] = match net {
        NetPlan::Bridge(bridge) => &bridge.dns,
        NetPlan::Pasta(pasta) => &pasta.dns,
        NetPlan::Host | NetPlan::None => &[],
    };
    if !dns.is_empty() {
        let content: String = dns.iter().map(|ip| format!("nameserver {ip}\n")).collect();
        out.push(MountStep {
            op: MountOp::File {
                target: "/etc/resolv.conf".into(),
                content,
                mode: 0o644,
            },
            key: "network.dns".into(),
        });
    }
    // Without a host name of its own, the sandbox's is the host's, which the root's file names
    // if anything does.
    if who.hostname.is_some() || !who.hosts.is_empty() {
        out.push(MountStep {
            op: MountOp::Hosts {
                target: "/etc/hosts".into(),
                hostname: who.hostname.map(String::from),
                names: who.hosts.clone(),
            },
            key: "network.hosts".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Caller, FixedFacts, HostFacts};
    use crate::manifest::load_str;
    use crate::validate::{Invocation, validate};

    fn step(target: &str, key: impl Into<Origin>) -> MountStep {
        MountStep {
            op: MountOp::Dir {
                target: target.into(),
                mode: 0o755,
            },
            key: key.into(),
        }
    }

    #[test]
    fn a_later_mount_on_a_parent_hides_each_earlier_one_once() {
        let out = [
            step("/tmp/x", "rootfs.host"),
            step("/a/b/c", Origin::Mount(0)),
            step("/a/b", Origin::Mount(1)),
            step("/a", Origin::Mount(2)),
            step("/ab", Origin::Mount(3)),
            step("/tmp", "rootfs.tmp"),
            step("/a/b/c/d", Origin::Mount(4)),
        ];
        assert_eq!(
            hidden_mounts(&out),
            [
                // The first later mount on a parent names it, not every one.
                "/a/b (mount[1]) is mounted after /a/b/c (mount[0]) and hides it; list the parent first",
                "/a (mount[2]) is mounted after /a/b (mount[1]) and hides it; list the parent first",
            ]
        );
    }

    #[test]
    fn nested_targets_listed_deepest_first_give_a_bounded_list() {
        let targets: Vec<String> = (1..=2000).map(|depth| "/a".repeat(depth)).collect();
        let out: Vec<MountStep> = targets
            .iter()
            .rev()
            .enumerate()
            .map(|(i, target)| step(target, Origin::Mount(i)))
            .collect();
        let warnings = hidden_mounts(&out);
        assert_eq!(warnings.len(), HIDDEN_NAMED + 1);
        assert_eq!(
            warnings[HIDDEN_NAMED],
            "1994 more mounts are hidden by a mount on a parent folder made after them"
        );
    }

    const TMPFS: i64 = 0x0102_1994;

    /// Root's sandbox on a root directory on tmpfs: refused on Linux 6.1 with the fix, made on
    /// 6.3 and later; an `idmap = true` bind of an NFS export is refused on any kernel.
    fn problems(
        kernel: (u32, u32),
        manifest: &str,
        filesystems: Vec<(std::path::PathBuf, i64)>,
    ) -> Vec<(String, String)> {
        let caller = Caller::ann(0);
        let host = HostFacts::fixed(
            caller.clone(),
            FixedFacts {
                kernel: Some(kernel),
                filesystems,
                // Root's folders, whoever runs the test.
                owner: Some(0),
                ..FixedFacts::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_str(&dir.path().join("sandbox.toml"), manifest, &caller.vars());
        validate(&loaded, &host, &Invocation::inspecting())
            .problems
            .into_iter()
            .map(|p| (p.message, p.help.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn an_idmap_the_kernel_cannot_make_is_refused_with_the_fix() {
        let root = tempfile::tempdir().unwrap();
        let manifest = format!("[rootfs]\npath = \"{}\"\n", root.path().display());
        let on_tmpfs = vec![(root.path().to_path_buf(), TMPFS)];
        let found = problems((6, 1), &manifest, on_tmpfs.clone());
        let [(message, help)] = &found[..] else {
            panic!("{found:?}");
        };
        assert!(
            message.ends_with("is on tmpfs, which Linux 6.1 cannot id-map"),
            "{message}"
        );
        assert!(help.contains("upgrade to Linux 6.3 or later"), "{help}");
        assert!(help.contains("unprivileged user"), "{help}");
        assert!(problems((6, 3), &manifest, on_tmpfs).is_empty());

        let source = tempfile::tempdir().unwrap();
        let bind = format!(
            "[rootfs]\nhost = true\n[[mount]]\ntype = \"bind\"\nsource = \"{}\"\ntarget = \"/data\"\nidmap = true\n",
            source.path().display()
        );
        let found = problems((6, 18), &bind, vec![(source.path().to_path_buf(), 0x6969)]);
        let [(message, help)] = &found[..] else {
            panic!("{found:?}");
        };
        assert!(
            message
                .contains("is on nfs, which Linux 6.18 cannot id-map (no Linux release does yet)"),
            "{message}"
        );
        assert!(help.starts_with("remove `idmap = true`"), "{help}");

        // A kept layer, id-mapped through the sandbox's map as the root directory is.
        let upper = tempfile::tempdir().unwrap();
        let kept = format!(
            "[rootfs]\nhost = true\n[[mount]]\ntype = \"overlay\"\nsource = [\"/usr\"]\nupper = \"{}\"\ntarget = \"/usr\"\n",
            upper.path().display()
        );
        let on_tmpfs = vec![(upper.path().to_path_buf(), TMPFS)];
        let found = problems((6, 1), &kept, on_tmpfs.clone());
        assert!(
            found.iter().any(|(message, _)| message
                .starts_with(&format!("{} is on tmpfs", upper.path().display()))),
            "{found:?}"
        );
        assert!(problems((6, 3), &kept, on_tmpfs).is_empty());
    }
}
