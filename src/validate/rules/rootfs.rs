//! `[rootfs]`: the root's source, read-only flag, overlay, and the host binds of `host = true`.

use crate::origin::Origin;
use std::path::{Path, PathBuf};

use super::super::Cx;
use super::get;
use super::mounts::{HostDir, layer_idmap};
use crate::diagnostics::Problem;
use crate::host::{HostEntry, MissingBelow};
use crate::manifest::{Overlay, Rootfs, Span, Spanned};
use crate::plan::shell_words;
use crate::plan::{
    HandedOver, IdMapping, Idmap, MountOp, MountStep, Namespaces, OverlayUpper, RootPlan,
    RootSource, UserPlan,
};
use crate::rootfs::ImageConfig;
use crate::rootfs::oci::{self, Image};

/// The root, plus what it implies for the mount list.
pub(super) struct Root {
    pub plan: RootPlan,
    /// For `host = true`: binds (or overlays) of the host's system dirs and their symlinks.
    pub host_mounts: Vec<MountStep>,
    pub proc: Option<Spanned<bool>>,
    pub dev: Option<Spanned<bool>>,
    pub tmp: Option<Spanned<bool>>,
    /// An OCI image's config: defaults for [process].
    pub image: Option<ImageConfig>,
    /// Host directories id-mapped though not the caller's own to give (see
    /// [`super::mounts::host_idmap`]).
    pub handed: Vec<HandedOver>,
}

pub(super) fn root(cx: &mut Cx, namespaces: &Namespaces) -> Root {
    let loaded = cx.loaded;
    let placeholder = Root {
        plan: RootPlan {
            source: RootSource::Tmpfs,
            readonly: true,
            overlay: None,
            idmapped: false,
        },
        host_mounts: Vec::new(),
        proc: None,
        dev: None,
        tmp: None,
        image: None,
        handed: Vec::new(),
    };
    let Some(rootfs) = &loaded.manifest.rootfs else {
        cx.report_absent(
            "rootfs",
            Problem::error("sandbox::rootfs::no-source", "the manifest has no [rootfs]")
                .at(crate::manifest::Span::new(0, 0), "this manifest has no root")
                .help("add a root, e.g.\n[rootfs]\nhost = true   # the host's /usr, /bin, /lib and /etc, read-only"),
        );
        return placeholder;
    };
    let r: &Rootfs = &rootfs.value;
    let sources = sources(cx, rootfs);
    let mut image_config = None;
    let source = match sources.first().map(|(name, _)| *name) {
        Some("path") => dir_source(cx, r),
        Some(kind @ ("tar" | "oci")) => archive_source(cx, r, kind, &mut image_config),
        _ => RootSource::Tmpfs,
    };
    check_sha256(cx, r, &source);
    let overlay = overlay(cx, r);
    let mut layers = Layers::new(namespaces, rootfs);
    let readonly = readonly(cx, r, overlay.as_ref());

    // The root directory is judged as any layer; an unpacked archive is the launcher's own
    // cache, nothing to judge.
    let idmapped = match &source {
        RootSource::Tmpfs => false,
        RootSource::Dir { path } => {
            let span = r.path.as_ref().map_or(rootfs.span, |p| p.span);
            let dir = HostDir {
                path,
                span,
                key: "rootfs".into(),
            };
            layers.idmap(cx, &[dir]).is_some()
        }
        RootSource::Tar { .. } | RootSource::Oci { .. } => layers.idmap(cx, &[]).is_some(),
    };
    let host_mounts = match source {
        RootSource::Tmpfs if !sources.is_empty() => {
            let span = r.host.as_ref().map_or(rootfs.span, |h| h.span);
            host_mounts(cx, overlay.as_ref(), |cx, lower, upper| {
                let dir = HostDir {
                    path: lower,
                    span,
                    key: "rootfs.host".into(),
                };
                let idmap = layers.idmap(cx, &[dir]);
                (
                    idmap,
                    upper.map(|upper| layers.kept(cx, upper, "rootfs.host".into())),
                )
            })
        }
        _ => Vec::new(),
    };
    // With `host = true` the overlay applies to the host dirs, not the (already writable) tmpfs.
    // An unpacked archive is shared by every sandbox and never written: a writable one gets a
    // throw-away layer.
    let overlay = match overlay {
        Some(OverlayUpper::Dir { upper, .. }) if !matches!(source, RootSource::Tmpfs) => {
            Some(layers.kept(cx, upper, "rootfs.overlay".into()))
        }
        overlay => overlay,
    };
    let root_overlay = match &source {
        RootSource::Tmpfs => None,
        RootSource::Tar { .. } | RootSource::Oci { .. } if !readonly => {
            overlay.or(Some(OverlayUpper::Tmpfs))
        }
        _ => overlay,
    };
    Root {
        plan: RootPlan {
            idmapped,
            source,
            readonly,
            overlay: root_overlay,
        },
        host_mounts,
        proc: r.proc.clone(),
        dev: r.dev.clone(),
        tmp: r.tmp.clone(),
        image: image_config,
        handed: layers.handed,
    }
}

/// The source keys `[rootfs]` sets (`host` only when true), each with its span: exactly one is
/// an error to leave out or to add to.
fn sources(cx: &mut Cx, rootfs: &Spanned<Rootfs>) -> Vec<(&'static str, Span)> {
    let r = &rootfs.value;
    let sources: Vec<(&str, _)> = [
        ("host", r.host.as_ref().filter(|h| h.value).map(|h| h.span)),
        ("path", r.path.as_ref().map(|p| p.span)),
        ("tar", r.tar.as_ref().map(|p| p.span)),
        ("oci", r.oci.as_ref().map(|p| p.span)),
    ]
    .into_iter()
    .filter_map(|(name, span)| Some((name, span?)))
    .collect();
    match sources.as_slice() {
        [] => cx.report_absent(
            "rootfs",
            Problem::error("sandbox::rootfs::no-source", "[rootfs] names no source")
                .at(rootfs.span, "no host, path, tar or oci")
                .help("set exactly one of `host = true`, `path = \"./rootfs\"`, `tar = \"root.tar.gz\"`, `oci = \"./image\"`"),
        ),
        [_] => {}
        [(first, first_span), rest @ ..] => {
            for (name, span) in rest {
                cx.report(
                    Problem::error("sandbox::rootfs::several-sources", format!("[rootfs] has two sources: `{first}` and `{name}`"))
                        .at(*span, "second source")
                        .also(*first_span, "first source")
                        .help("keep exactly one of host, path, tar and oci"),
                );
            }
        }
    }

    sources
}

/// A missing root is usually one still to be made, and the manifest may say how.
fn make_it(r: &Rootfs, fallback: &str) -> String {
    match &r.made_by {
        Some(made_by) => format!("make it first: {}", made_by.value),
        None => fallback.to_string(),
    }
}

/// `path = ...`: a directory on the host.
fn dir_source(cx: &mut Cx, r: &Rootfs) -> RootSource {
    let path = r.path.as_ref().expect("path source");
    let resolved = cx.host_path(path, "the root directory");
    if let Some(resolved) = resolved.as_ref().filter(|r| !r.is_dir()) {
        let why = if resolved.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        cx.report(
            Problem::error("sandbox::rootfs::missing", format!("the root directory {} {why}", resolved.display()))
                .at(path.span, why)
                .help(make_it(r, "relative paths are relative to the manifest's folder; create the directory or fix the path")),
        );
    }
    RootSource::Dir {
        path: resolved.unwrap_or_default(),
    }
}

/// A root directory the sandbox cannot write lacks a path it mounts on: the mount step would
/// fail halfway (EACCES), so say which before anything is made, and how to make them. The
/// sandbox's root makes mount points as itself: it may write a folder whose owner and group
/// its id map reaches, one that every user may write, or any folder of an id-mapped root. Over
/// an overlay's upper layer it may make them at the top at least: not judged here.
pub(super) fn mount_points(
    cx: &mut Cx,
    root: &RootPlan,
    mounts: &[MountStep],
    user: Option<&UserPlan>,
) {
    let (RootSource::Dir { path: dir }, false, None, Some(user)) =
        (&root.source, root.idmapped, &root.overlay, user)
    else {
        return;
    };
    let Some(span) = cx
        .loaded
        .manifest
        .rootfs
        .as_ref()
        .and_then(|r| r.value.path.as_ref())
        .map(|p| p.span)
    else {
        return;
    };
    let mapped = |map: &[IdMapping], id: u32| map.iter().any(|m| m.unmap(id).is_some());
    let writable = |missing: &MissingBelow| {
        missing.mode & 0o002 != 0
            || (mapped(&user.uid_map, missing.owner.uid)
                && mapped(&user.gid_map, missing.owner.gid))
    };
    let mut unmakeable: Vec<(&MountOp, MissingBelow)> = Vec::new();
    for (i, step) in mounts.iter().enumerate() {
        let target = step.op.target();
        // Below an earlier mount the path is made on that mount, not in the root directory.
        if mounts[..i]
            .iter()
            .any(|earlier| target.starts_with(earlier.op.target()))
        {
            continue;
        }
        if let Some(missing) = cx.host.missing_below(dir, target).filter(|m| !writable(m)) {
            unmakeable.push((&step.op, missing));
        }
    }
    let Some((_, first)) = unmakeable.first() else {
        return;
    };
    let targets: Vec<String> = unmakeable
        .iter()
        .map(|(op, _)| op.target().display().to_string())
        .collect();
    let mut help = format!(
        "make them on the host first: `{}`",
        make_commands(dir, unmakeable.iter().map(|(op, _)| *op))
    );
    if cx.host.caller.is_root() {
        let why = cx.host.not_own(dir).map_or_else(String::new, |why| {
            format!(" (this one is not id-mapped: {why})")
        });
        help.push_str(&format!(
            "; or use a root folder of your own, which is id-mapped to the sandbox{why}"
        ));
    } else {
        help.push_str("; or use a root folder you own");
    }
    cx.report(
        Problem::error(
            "sandbox::rootfs::mount-point",
            format!(
                "the root {} has no {}, which the sandbox mounts on, and the sandbox cannot make {} there",
                dir.display(),
                targets.join(", "),
                if targets.len() == 1 { "it" } else { "them" },
            ),
        )
        .at(
            span,
            format!(
                "{} belongs to uid {} and gid {}, which the sandbox's id map does not reach",
                on_host(dir, first.path.parent().unwrap_or(Path::new("/"))).display(),
                first.owner.uid,
                first.owner.gid,
            ),
        )
        .help(help),
    );
}

/// Where `inside` (absolute, as the sandbox sees it) is in the root directory `dir`.
fn on_host(dir: &Path, inside: &Path) -> PathBuf {
    match inside.strip_prefix("/") {
        Ok(relative) if relative.as_os_str().is_empty() => dir.to_path_buf(),
        Ok(relative) => dir.join(relative),
        Err(_) => dir.join(inside),
    }
}

/// The shell commands that make the targets of `ops` in the root directory `dir`: the folders
/// first, in one `mkdir -p`, then the files and symlinks.
fn make_commands<'a>(dir: &Path, ops: impl Iterator<Item = &'a MountOp>) -> String {
    let word = |path: &Path| shell_words(&[path.display().to_string()]);
    let mut folders: Vec<String> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    let mut folder = |path: &Path| {
        let path = word(path);
        if !folders.contains(&path) {
            folders.push(path);
        }
    };
    for op in ops {
        let target = on_host(dir, op.target());
        let file = match op {
            MountOp::Symlink { link, .. } => Some(format!(
                "ln -s {} {}",
                shell_words(std::slice::from_ref(link)),
                word(&target)
            )),
            MountOp::File { .. } | MountOp::Hosts { .. } => {
                Some(format!("touch {}", word(&target)))
            }
            MountOp::Bind { source, .. } if !source.is_dir() => {
                Some(format!("touch {}", word(&target)))
            }
            _ => None,
        };
        match file {
            Some(command) => {
                if let Some(parent) = target.parent().filter(|p| !p.is_dir()) {
                    folder(parent);
                }
                others.push(command);
            }
            None => folder(&target),
        }
    }
    let mkdir = (!folders.is_empty()).then(|| format!("mkdir -p {}", folders.join(" ")));
    mkdir
        .into_iter()
        .chain(others)
        .collect::<Vec<_>>()
        .join(" && ")
}

/// `tar = ...` or `oci = ...`: an archive or image unpacked into the cache; an image's config
/// goes to `image_config`.
fn archive_source(
    cx: &mut Cx,
    r: &Rootfs,
    kind: &str,
    image_config: &mut Option<ImageConfig>,
) -> RootSource {
    let path = if kind == "tar" {
        r.tar.as_ref()
    } else {
        r.oci.as_ref()
    }
    .expect("archive source");
    let what = if kind == "tar" {
        "the root tarball"
    } else {
        "the root image"
    };
    let resolved = cx.host_path(path, what);
    // A tarball is read as a file: a FIFO or a device (through a symlink the
    // repository carries) would be waited on or read forever.
    let unusable = resolved
        .as_ref()
        .and_then(|resolved| match std::fs::metadata(resolved) {
            Err(_) => Some("does not exist"),
            Ok(meta) if kind == "tar" && !meta.is_file() => Some("is not a regular file"),
            Ok(_) => None,
        });
    let resolved = resolved.unwrap_or_default();
    if let Some(why) = unusable {
        cx.report(
            Problem::error(
                "sandbox::rootfs::missing",
                format!("the root {kind} {} {why}", resolved.display()),
            )
            .at(path.span, why)
            .help(match unusable {
                Some("does not exist") => {
                    make_it(r, "relative paths are relative to the manifest's folder")
                }
                _ => "name the archive file itself, not a FIFO or a device".to_string(),
            }),
        );
    }
    let sha256 = get(&r.sha256);
    if kind == "tar" {
        RootSource::Tar {
            path: resolved,
            sha256,
        }
    } else {
        let image = if resolved.exists() {
            image(cx, &resolved, path.span, r.sha256.as_ref())
        } else {
            None
        };
        let (manifest, layers) = match image {
            Some(Image {
                manifest,
                layers,
                config,
            }) => {
                *image_config = Some(config);
                (manifest, layers)
            }
            None => (String::new(), Vec::new()),
        };
        RootSource::Oci {
            path: resolved,
            sha256,
            manifest,
            layers,
        }
    }
}

/// `sha256` checks an archive, and is a SHA-256 digest.
fn check_sha256(cx: &mut Cx, r: &Rootfs, source: &RootSource) {
    if let Some(sha) = &r.sha256 {
        if !matches!(source, RootSource::Tar { .. } | RootSource::Oci { .. }) {
            cx.report(
                Problem::error(
                    "sandbox::rootfs::sha256-without-archive",
                    "`sha256` only applies to a `tar` or `oci` root",
                )
                .at(sha.span, "nothing to check")
                .help("remove `sha256`, or use it with `tar = ...` or `oci = ...`"),
            );
        } else if sha.value.len() != 64 || !sha.value.bytes().all(|b| b.is_ascii_hexdigit()) {
            cx.report(
                Problem::error(
                    "sandbox::rootfs::sha256",
                    "`sha256` must be 64 hexadecimal digits",
                )
                .at(sha.span, "not a SHA-256 digest")
                .help("compute it with `sha256sum FILE`"),
            );
        }
    }
}

/// The writable layer `overlay` asks for.
fn overlay(cx: &mut Cx, r: &Rootfs) -> Option<OverlayUpper> {
    match &r.overlay {
        None
        | Some(Spanned {
            value: Overlay::Enabled(false),
            ..
        }) => None,
        Some(Spanned {
            value: Overlay::Enabled(true),
            ..
        }) => Some(OverlayUpper::Tmpfs),
        Some(Spanned {
            value: Overlay::Kept(kept),
            ..
        }) => {
            let upper = cx
                .host_path(&kept.upper, "the overlay's upper dir")
                .unwrap_or_default();
            Some(OverlayUpper::Dir {
                work: work_dir_for(&upper),
                upper,
                idmap: None,
            })
        }
    }
}

/// Whether the root is read-only: by default, unless a writable layer is asked for.
fn readonly(cx: &mut Cx, r: &Rootfs, overlay: Option<&OverlayUpper>) -> bool {
    match (&r.readonly, overlay) {
        (Some(readonly), Some(_)) if readonly.value => {
            cx.report(
                Problem::error("sandbox::rootfs::readonly-overlay", "a read-only root cannot have a writable overlay")
                    .at(readonly.span, "read-only")
                    .also(r.overlay.as_ref().expect("overlay set").span, "writable layer")
                    .help("remove `readonly = true` (an overlay makes the root writable), or remove `overlay`"),
            );
            true
        }
        (_, Some(_)) => false,
        (readonly, None) => get(readonly).unwrap_or(true),
    }
}

/// The root's host directories, id-mapped as [`layer_idmap`] decides, as `rootfs.idmap` asks.
struct Layers<'a> {
    namespaces: &'a Namespaces,
    asked: Option<&'a Spanned<bool>>,
    /// Where a kept layer's folder is named.
    upper_span: Span,
    handed: Vec<HandedOver>,
}

impl<'a> Layers<'a> {
    fn new(namespaces: &'a Namespaces, rootfs: &'a Spanned<Rootfs>) -> Layers<'a> {
        let upper_span = match &rootfs.value.overlay {
            Some(Spanned {
                value: Overlay::Kept(kept),
                ..
            }) => kept.upper.span,
            _ => rootfs.span,
        };
        Layers {
            namespaces,
            asked: rootfs.value.idmap.as_ref(),
            upper_span,
            handed: Vec::new(),
        }
    }

    fn idmap(&mut self, cx: &mut Cx, dirs: &[HostDir]) -> Option<Idmap> {
        layer_idmap(cx, self.namespaces, dirs, self.asked, &mut self.handed)
    }

    /// A kept layer in `upper`.
    fn kept(&mut self, cx: &mut Cx, upper: PathBuf, key: Origin) -> OverlayUpper {
        let dir = HostDir {
            path: &upper,
            span: self.upper_span,
            key,
        };
        let idmap = self.idmap(cx, &[dir]);
        OverlayUpper::Dir {
            work: work_dir_for(&upper),
            upper,
            idmap,
        }
    }
}

/// Read an OCI image's index, manifest and config (verified against their digests), and check
/// the manifest's digest against `sha256`.
fn image(
    cx: &mut Cx,
    path: &Path,
    span: crate::manifest::Span,
    sha256: Option<&Spanned<String>>,
) -> Option<Image> {
    let image = match oci::read_image(path, cx.host.arch.oci_name()) {
        Ok(image) => image,
        Err(error) => {
            cx.report(
                Problem::error("sandbox::rootfs::image", format!("the OCI image {} cannot be used: {error}", path.display()))
                    .at(span, "this image")
                    .help("an OCI image layout holds index.json and blobs/sha256/ (`skopeo copy docker://IMAGE oci:DIR` writes one)"),
            );
            return None;
        }
    };
    if let Some(sha) = sha256
        && oci::is_sha256_hex(&sha.value.to_ascii_lowercase())
        && oci::digest_hex(&image.manifest).ok() != Some(sha.value.to_ascii_lowercase().as_str())
    {
        cx.report(
            Problem::error(
                "sandbox::rootfs::sha256-mismatch",
                format!("the image's manifest is {}, not the pinned one", image.manifest),
            )
            .at(sha.span, "pinned here")
            .help("for an OCI image, `sha256` pins the digest of its manifest (`skopeo inspect oci:DIR` shows it as Digest); update it only if you trust the new image"),
        );
    }
    Some(image)
}

/// overlayfs needs an empty work dir on the same file system as the upper dir: a sibling.
pub(super) fn work_dir_for(upper: &Path) -> PathBuf {
    let name = upper
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upper".into());
    upper.with_file_name(format!(".{name}.work"))
}

/// The mounts of `host = true`: each of the host's system dirs bound read-only, or with
/// `overlay` layered under a writable layer of its own (a kept one in a sub-folder of `upper`),
/// and its symlinks recreated. `idmap` decides how a host dir (and its kept layer) is
/// id-mapped.
fn host_mounts(
    cx: &mut Cx,
    overlay: Option<&OverlayUpper>,
    mut idmap: impl FnMut(&mut Cx, &Path, Option<PathBuf>) -> (Option<Idmap>, Option<OverlayUpper>),
) -> Vec<MountStep> {
    let host = cx.host;
    host.host_root()
        .iter()
        .map(|(path, entry)| {
            let target = PathBuf::from(path);
            let op = match (entry, overlay) {
                (HostEntry::Symlink(link), _) => MountOp::Symlink {
                    link: link.clone(),
                    target,
                },
                (HostEntry::Dir, None) => MountOp::Bind {
                    idmap: idmap(cx, &target, None).0,
                    source: target.clone(),
                    target,
                    readonly: true,
                    optional: false,
                },
                (HostEntry::Dir, Some(upper)) => {
                    let kept = match upper {
                        OverlayUpper::Tmpfs => None,
                        OverlayUpper::Dir { upper, .. } => {
                            Some(upper.join(path.trim_start_matches('/')))
                        }
                    };
                    let (idmap, kept) = idmap(cx, &target, kept);
                    MountOp::Overlay {
                        lower: vec![target.clone()],
                        upper: Some(kept.unwrap_or(OverlayUpper::Tmpfs)),
                        target,
                        readonly: false,
                        idmap,
                    }
                }
            };
            MountStep {
                op,
                key: "rootfs.host".into(),
            }
        })
        .collect()
}
