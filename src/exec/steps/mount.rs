//! Mount namespace: the new root and every mount of the plan.
//!
//! Before the clone, the launcher turns every host path the plan mounts into a [`Source`]
//! ([`prepare`]): from the descriptors opened when the plan was judged ([`HostFiles`]), so what
//! is mounted is what the trust check judged, whatever the path names by then. As the host's
//! root it makes the detached mounts itself, id-mapped where the plan says (the kernel wants
//! CAP_SYS_ADMIN over a file system's own user namespace to id-map it), and outside the user
//! namespace, so a folder only root may enter (root's 0700 home) is no obstacle.
//!
//! In the sandbox, preconditions: the process is in its own mount namespace (CLONE_NEWNS),
//! owned by the sandbox's user namespace, with root inside (the user step). Order (as
//! bubblewrap):
//! 1. make every mount private (MS_REC|MS_PRIVATE on /): nothing propagates to the host;
//! 2. mount a staging tmpfs on /tmp and pivot into it: the host's root stays reachable at
//!    /oldroot;
//! 3. build the sandbox's root at /newroot (a fresh tmpfs, a bind of a directory, or an overlay);
//! 4. make each mount of the plan, in order. Every target is opened with
//!    openat2(RESOLVE_IN_ROOT) below /newroot, so a symlink in the sandbox's root (`/tmp -> /etc`)
//!    resolves inside that root and can never send a mount onto the host; the mount itself is
//!    built detached (fsmount or open_tree) and attached to that descriptor with move_mount;
//! 5. mask the kernel's sensitive /proc and /sys entries (OCI defaults).
//!
//! The chroot step then pivots into /newroot and detaches the staging root with the host's.
//! A fresh proc or sysfs can only be mounted by a user namespace that owns the pid (net)
//! namespace, while a fully visible proc (sysfs) is mounted in the mount namespace: the host's,
//! under /oldroot, until the chroot step.

use std::ffi::{CStr, CString};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::fstat;

use super::user::Exiting;
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::order::{Context, Entry, Prepared};
use crate::exec::root_file;
use crate::hostpath::{self, HostFiles};
use crate::plan::{
    Idmap, Ids, MountFlags, MountOp, MountStep, OverlayUpper, Plan, RootSource, StepId, hosts_file,
};
use crate::sys::beneath::{Leaf, cstring, dir_in, ensure, inside, open_dir, symlink_in};
use crate::sys::{
    FileKind, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, SetAttr,
    Sys,
};

const STAGING: &str = "/tmp";
/// The part of the root's /etc/hosts that is kept (whole lines): hosts files that block ad
/// servers run to megabytes, read on every launch.
const HOSTS_LIMIT: usize = 1 << 20;
const OLD_ROOT: &str = "/oldroot";

/// Device nodes a minimal /dev gets, bound from the host's (an unprivileged user namespace
/// cannot mknod).
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];
/// Symlinks of a minimal /dev.
pub const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Scratch space for mounts that need a backing store (files, tmpfs overlay layers).
struct Staging<'s> {
    sys: &'s dyn Sys,
    dir: OwnedFd,
    /// The host's root, below the staging root.
    old_root: OwnedFd,
    counter: usize,
    /// What the launcher prepared, by entry.
    prepared: Prepared,
    /// In a user namespace, overlayfs must keep its metadata in user.* xattrs.
    userns: bool,
    /// The sandbox's address on a bridge, leased by the supervisor, for /etc/hosts.
    address: Option<Ipv4Addr>,
}

impl Staging<'_> {
    fn next_name(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// A new directory in the staging root, opened; and its name there.
    fn new_dir(&mut self) -> Result<(OwnedFd, String), Errno> {
        let name = self.next_name("layer");
        self.sys.mkdirat(self.dir.as_fd(), &cstring(&name), 0o755)?;
        Ok((open_dir(self.sys, Some(self.dir.as_fd()), &name)?, name))
    }

    /// Attach a detached mount in the staging root and return its path there (overlayfs takes
    /// its layers by path).
    fn attach(&mut self, tree: OwnedFd) -> Result<PathBuf, Errno> {
        let (at, name) = self.new_dir()?;
        self.sys.attach(tree.as_fd(), at.as_fd())?;
        Ok(PathBuf::from(format!("/{name}")))
    }

    /// The host path prepared for `entry` as a detached mount with `attrs` (a tree the launcher made
    /// has its own); `None` for an optional bind whose source was absent.
    fn next_tree(&mut self, entry: Entry, attrs: u64) -> Result<Option<OwnedFd>, Errno> {
        let prepared = self.prepared.remove(&(StepId::Mount, entry));
        match prepared.ok_or(Errno::ENOENT)? {
            None => Ok(None),
            Some(Source::Tree(tree)) => Ok(Some(tree)),
            Some(Source::Judged { opened, path }) => {
                let own = self.sys.openat2(
                    Some(self.old_root.as_fd()),
                    &inside(&path),
                    libc::O_PATH,
                    libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
                )?;
                let id = |fd: BorrowedFd<'_>| self.sys.stat(fd, c"").map(|stat| stat.id);
                if id(own.as_fd())? != id(opened.as_fd())? {
                    return Err(Errno::ESTALE);
                }
                let tree = self.sys.open_tree(Some(own.as_fd()), c"")?;
                self.sys
                    .mount_setattr(tree.as_fd(), SetAttr::below(attrs))?;
                Ok(Some(tree))
            }
        }
    }

    /// The host path prepared for `entry`, which must be there, attached in the staging root.
    fn next_layer(&mut self, entry: Entry, attrs: u64) -> Result<PathBuf, Errno> {
        let tree = self.next_tree(entry, attrs)?.ok_or(Errno::ENOENT)?;
        self.attach(tree)
    }

    /// The kept overlay layer prepared for `entry`: its upper and work dirs, opened below their folder
    /// following no symlink (anyone who may write that folder could swap one for a symlink),
    /// and named for overlayfs by their descriptors.
    fn next_kept(
        &mut self,
        entry: Entry,
        upper: &Path,
        work: &Path,
    ) -> Result<[OwnedFd; 2], Errno> {
        let folder = self.next_layer(entry, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?;
        let folder = open_dir(self.sys, None, folder.as_os_str())?;
        let open = |dir: &Path| {
            self.sys.openat2(
                Some(folder.as_fd()),
                &cstring(dir.file_name().ok_or(Errno::EINVAL)?),
                libc::O_PATH | libc::O_DIRECTORY,
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
            )
        };
        Ok([open(upper)?, open(work)?])
    }
}

/// A path that names an open descriptor (for overlayfs, which takes its layers by path): the
/// host's /proc is below the staging root.
fn fd_name(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("{OLD_ROOT}/proc/self/fd/{}", fd.as_raw_fd()))
}

fn mode_string(mode: u32) -> CString {
    cstring(format!("{mode:o}"))
}

/// A host directory (or file) the sandbox mounts, as the launcher hands it to the sandbox.
pub enum Source {
    /// A detached mount of it, made by the launcher as the host's root, id-mapped where the
    /// plan says: nothing is left to resolve.
    Tree(OwnedFd),
    /// Rootless, the launcher cannot make a mount in the host's mount namespace, and the
    /// sandbox cannot make one of a descriptor opened there (open_tree(2) wants a mount of its
    /// own namespace). So the sandbox opens `path` in its copy of the host's tree, following no
    /// symlink, and mounts that only when it is `opened` itself (same device and inode; the
    /// open descriptor keeps the inode from being reused). `path` is where the launcher's
    /// descriptor is as the sandbox starts, so a folder moved since it was judged is followed.
    Judged { opened: OwnedFd, path: PathBuf },
}

/// The directory the root is made from: the plan's own, or for a tar or OCI root, the tree
/// [`crate::rootfs::prepare`] unpacked (`cached`).
fn root_dir<'a>(plan: &'a Plan, cached: Option<&'a Path>) -> Option<&'a Path> {
    match &plan.root.source {
        RootSource::Tmpfs => None,
        RootSource::Dir { path } => Some(path),
        RootSource::Tar { .. } | RootSource::Oci { .. } => cached,
    }
}

/// What a slot is made from.
#[derive(Clone, Copy)]
enum Host<'a> {
    /// A host path of the plan, opened (and judged) before the trust check.
    Judged(&'a Path),
    /// The tree a tar or OCI root was unpacked into, in the launcher's own cache.
    Cache(&'a Path),
    /// A kept overlay layer: the folder holding its upper and work dirs, made as needed.
    Kept { upper: &'a Path, work: &'a Path },
}

/// A host path the sandbox mounts: the root, then each bind and each lower layer (and kept
/// upper layer) of each overlay.
struct Slot<'a> {
    entry: Entry,
    from: Host<'a>,
    idmap: Option<Idmap>,
    readonly: bool,
}

impl Slot<'_> {
    /// The path it is made from, for messages.
    fn path(&self) -> &Path {
        match self.from {
            Host::Judged(path) | Host::Cache(path) => path,
            Host::Kept { upper, .. } => upper,
        }
    }
}

fn slots<'a>(plan: &'a Plan, cached: Option<&'a Path>) -> Vec<Slot<'a>> {
    let mut slots = Vec::new();
    let kept = |entry, upper: Option<&'a OverlayUpper>| match upper {
        Some(OverlayUpper::Dir { upper, work, idmap }) => Some(Slot {
            entry,
            from: Host::Kept { upper, work },
            idmap: *idmap,
            readonly: false,
        }),
        _ => None,
    };
    if let Some(path) = root_dir(plan, cached) {
        let from = match plan.root.source {
            RootSource::Dir { .. } => Host::Judged(path),
            _ => Host::Cache(path),
        };
        let idmap = plan.root.idmapped.then_some(Idmap::Sandbox);
        slots.push(Slot {
            entry: Entry::Root,
            from,
            idmap,
            readonly: false,
        });
        slots.extend(kept(Entry::RootUpper, plan.root.overlay.as_ref()));
    }
    for (index, step) in plan.mounts.iter().enumerate() {
        match &step.op {
            MountOp::Bind {
                source,
                idmap,
                readonly,
                ..
            } => slots.push(Slot {
                entry: Entry::Mount(index),
                from: Host::Judged(source),
                idmap: *idmap,
                readonly: *readonly,
            }),
            MountOp::Overlay {
                lower,
                idmap,
                upper,
                ..
            } => {
                slots.extend(lower.iter().enumerate().map(|(layer, l)| Slot {
                    entry: Entry::Lower(index, layer),
                    from: Host::Judged(l),
                    idmap: *idmap,
                    readonly: true,
                }));
                slots.extend(kept(Entry::Upper(index), upper.as_ref()));
            }
            _ => {}
        }
    }
    slots
}

/// The launcher's half, before the clone: every host path the sandbox mounts, from the
/// descriptors opened when the plan was judged (`files`), as [`Source`]s; kept overlay layers
/// are made here. `cached` is the unpacked tree of a tar or OCI root. Also the helper of an
/// id-mapped mount, to be dropped (reaped) once the sandbox runs.
pub fn prepare(
    sys: &dyn Sys,
    plan: &Plan,
    cached: Option<&Path>,
    files: &HostFiles,
) -> Result<(Prepared, Option<Exiting>), StepFailure> {
    let as_root = sys.euid() == 0;
    let mut caller = None;
    let mut prepared = Prepared::new();
    for slot in slots(plan, cached) {
        let opened = match slot.from {
            Host::Judged(path) => match files.get(path) {
                Some(opened) => opened.fd.try_clone().map_err(io_errno),
                // Only an optional bind's absent source is not opened.
                None => {
                    prepared.insert((StepId::Mount, slot.entry), None);
                    continue;
                }
            },
            Host::Cache(path) => open_dir(sys, None, path),
            Host::Kept { upper, work } => kept_folder(files, upper, work),
        };
        let path = slot.path();
        let action = || format!("opening {}", path.display());
        let opened = opened.or_fail(StepId::Mount, Op::OpenSource, action)?;
        if let (Host::Judged(path), Some(_)) = (slot.from, slot.idmap) {
            still_own(plan, path, opened.as_fd())?;
        }
        if !as_root {
            let path = hostpath::fd_path(opened.as_fd())
                .map_err(io_errno)
                .or_fail(StepId::Mount, Op::OpenSource, action)?;
            let source = Source::Judged { opened, path };
            prepared.insert((StepId::Mount, slot.entry), Some(source));
            continue;
        }
        // Through the sandbox's own map once the sandbox exists (see `parent`).
        let userns = match slot.idmap {
            Some(Idmap::Caller) => Some(caller_userns(&mut caller, plan)?),
            Some(Idmap::Sandbox) | None => None,
        };
        let attrs = MOUNT_ATTR_NOSUID
            | MOUNT_ATTR_NODEV
            | if slot.readonly { MOUNT_ATTR_RDONLY } else { 0 };
        let tree = sys
            .open_tree(Some(opened.as_fd()), c"")
            .and_then(|tree| {
                sys.mount_setattr(tree.as_fd(), SetAttr::below(attrs).idmapped(userns))
                    .map(|()| tree)
            })
            .or_fail(StepId::Mount, Op::AttachTree, || {
                format!("mounting {}", path.display())
            })?;
        prepared.insert((StepId::Mount, slot.entry), Some(Source::Tree(tree)));
    }
    Ok((prepared, caller.map(|(_, helper)| helper)))
}

/// A folder id-mapped as the caller's own (not one `idmap = true` hands over) must still be:
/// it was judged by its path, and this is the very folder mounted. One that someone else may
/// now own (moved in by whoever may write its parent) would have its files given to the
/// sandbox, and what the sandbox makes there to the caller.
fn still_own(plan: &Plan, path: &Path, folder: BorrowedFd<'_>) -> Result<(), StepFailure> {
    if plan.handed_over.iter().any(|handed| handed.path == path) {
        return Ok(());
    }
    let stat = fstat(folder).or_fail(StepId::Mount, Op::OpenSource, || {
        format!("checking {}", path.display())
    })?;
    let owner = Ids {
        uid: stat.st_uid,
        gid: stat.st_gid,
    };
    match crate::host::others_folder(owner, stat.st_mode, plan.caller) {
        None => Ok(()),
        Some(why) => Err(StepFailure::new(
            StepId::Mount,
            Op::IdmapTree,
            format!(
                "id-mapping {}: it is {why} now, no longer yours as when it was judged",
                path.display()
            ),
            Errno::EPERM,
        )),
    }
}

fn io_errno(error: std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}

/// The user namespace of `Idmap::Caller` mounts, made once per launch, and its helper.
type CallerUserns = Option<(OwnedFd, Exiting)>;

fn caller_userns<'a>(
    made: &'a mut CallerUserns,
    plan: &Plan,
) -> Result<BorrowedFd<'a>, StepFailure> {
    if made.is_none() {
        let (uid_map, gid_map) = plan.idmap_maps(Idmap::Caller).ok_or_else(|| {
            StepFailure::new(
                StepId::Mount,
                Op::IdmapTree,
                "id-mapping without the maps",
                Errno::EINVAL,
            )
        })?;
        *made = Some(super::user::idmapped_userns(&uid_map, &gid_map)?);
    }
    Ok(made.as_ref().expect("just made").0.as_fd())
}

/// The launcher's half once the sandbox exists, its maps written: the mounts id-mapped through
/// the sandbox's own map get it, from the sandbox's user namespace (rather than from one made
/// for them, which costs a process). They are the very mounts the sandbox inherited, and it
/// waits for `Go` before it uses them.
pub fn parent(
    sys: &dyn Sys,
    plan: &Plan,
    cached: Option<&Path>,
    prepared: &Prepared,
    child: i32,
) -> Result<(), StepFailure> {
    let mut userns = None;
    for slot in slots(plan, cached) {
        let source = prepared.get(&(StepId::Mount, slot.entry));
        let (Some(Idmap::Sandbox), Some(Some(Source::Tree(tree)))) = (slot.idmap, source) else {
            continue;
        };
        let action = || format!("id-mapping {}", slot.path().display());
        let userns = match &userns {
            Some(userns) => userns,
            None => userns.insert(
                sys.openat(None, &cstring(format!("/proc/{child}/ns/user")), 0, 0)
                    .or_fail(StepId::Mount, Op::IdmapTree, action)?,
            ),
        };
        sys.mount_setattr(
            tree.as_fd(),
            SetAttr::below(0).idmapped(Some(userns.as_fd())),
        )
        .or_fail(StepId::Mount, Op::IdmapTree, action)?;
    }
    Ok(())
}

/// The prepare half in the step table: [`prepare`], with the host files, which are closed
/// once it is done.
pub fn prepare_half(cx: &mut Context<'_>) -> Result<bool, StepFailure> {
    let files = cx
        .files
        .take()
        .expect("the host files are opened before the run");
    let (prepared, helper) = prepare(cx.sys, cx.plan, cx.root, &files)?;
    cx.prepared.extend(prepared);
    cx.helper = helper;
    Ok(true)
}

/// The parent half in the step table: [`parent`]; the sandbox has its own copies of the
/// prepared mounts afterwards, so the supervisor's are closed.
pub fn parent_half(cx: &mut Context<'_>) -> Result<(), StepFailure> {
    parent(cx.sys, cx.plan, cx.root, &cx.prepared, cx.child_pid())?;
    cx.prepared.retain(|(step, _), _| *step != StepId::Mount);
    Ok(())
}

/// The child half in the step table: [`child`], whose new root the chroot step enters.
pub fn child_half(cx: &mut Context<'_>) -> Result<(), StepFailure> {
    let prepared = std::mem::take(&mut cx.prepared);
    cx.new_root = Some(child(cx.sys, cx.plan, cx.root, prepared, cx.address)?);
    Ok(())
}

/// Make a kept overlay layer's upper and work dirs (and the folders above them) below the
/// folder opened when the plan was judged, following no symlink; returns their folder. What
/// it makes is the launcher's: the sandbox's root inside (rootless through its map, as root
/// through the id-mapped layer).
fn kept_folder(files: &HostFiles, upper: &Path, work: &Path) -> Result<OwnedFd, Errno> {
    let opened = files.get(upper).ok_or(Errno::ENOENT)?;
    let folder = hostpath::make_dirs(opened.fd.as_fd(), &opened.missing)?;
    for dir in [upper, work] {
        let name = dir.file_name().ok_or(Errno::EINVAL)?;
        hostpath::make_dir(folder.as_fd(), Path::new(name))?;
    }
    Ok(folder)
}

/// Build the new root and make every mount; returns a descriptor of the new root.
/// `prepared` holds what [`prepare`] made, `cached` the unpacked tree of a tar or OCI root,
/// `address` the sandbox's leased address.
pub fn child(
    sys: &dyn Sys,
    plan: &Plan,
    cached: Option<&Path>,
    prepared: Prepared,
    address: Option<Ipv4Addr>,
) -> Result<OwnedFd, StepFailure> {
    let fail = |action: &str| {
        let action = action.to_string();
        move || action
    };
    sys.make_mounts_private()
        .or_fail(StepId::Mount, Op::Propagation, fail("making / private"))?;

    // Staging root, with the host's root below it at /oldroot.
    let staging = fs_mount(sys, c"tmpfs", &[(c"mode", c"755".into())], FS).or_fail(
        StepId::Mount,
        Op::Staging,
        fail("creating the staging tmpfs"),
    )?;
    let staging_target = open_dir(sys, None, STAGING).or_fail(
        StepId::Mount,
        Op::Staging,
        fail("opening /tmp for the staging root"),
    )?;
    sys.attach(staging.as_fd(), staging_target.as_fd())
        .or_fail(
            StepId::Mount,
            Op::Staging,
            fail("mounting the staging root on /tmp"),
        )?;
    drop(staging_target);
    for dir in [c"newroot", c"oldroot", c"files"] {
        sys.mkdirat(staging.as_fd(), dir, 0o755)
            .or_fail(StepId::Mount, Op::Staging, || {
                format!("creating {STAGING}/{}", dir.to_string_lossy())
            })?;
    }
    sys.fchdir(staging.as_fd()).or_fail(
        StepId::Mount,
        Op::Staging,
        fail("entering the staging root"),
    )?;
    sys.pivot_root(c".", c"oldroot").or_fail(
        StepId::Mount,
        Op::PivotRoot,
        fail("pivot_root into the staging root"),
    )?;
    sys.chdir(c"/")
        .or_fail(StepId::Mount, Op::Chdir, fail("chdir(/)"))?;
    let mut staging = Staging {
        sys,
        dir: open_dir(sys, None, "/").or_fail(
            StepId::Mount,
            Op::Staging,
            fail("opening the staging root"),
        )?,
        old_root: open_dir(sys, None, OLD_ROOT).or_fail(
            StepId::Mount,
            Op::Staging,
            fail("opening the host's root"),
        )?,
        counter: 0,
        prepared,
        userns: plan.namespaces.user,
        address,
    };

    let new_root = root(plan, cached, &mut staging)?;
    for (index, step) in plan.mounts.iter().enumerate() {
        apply(index, step, new_root.as_fd(), &mut staging).map_err(|errno| {
            StepFailure::new(StepId::Mount, op_of(&step.op), describe(&step.op), errno)
                .with_key(step.key.clone())
        })?;
    }
    protect_kernel_entries(sys, plan, new_root.as_fd())?;
    Ok(new_root)
}

fn root(plan: &Plan, cached: Option<&Path>, staging: &mut Staging) -> Result<OwnedFd, StepFailure> {
    let sys = staging.sys;
    let target = open_dir(sys, None, "/newroot")
        .or_fail(StepId::Mount, Op::Staging, || "opening /newroot".into())?;
    let key = |f: StepFailure| f.with_key("rootfs");
    // An unpacked archive is shared by every sandbox using it: it is only ever a lower layer,
    // and the mount points this sandbox needs are made in its own upper layer.
    let shared = matches!(
        plan.root.source,
        RootSource::Tar { .. } | RootSource::Oci { .. }
    );
    let upper = match (&plan.root.overlay, shared) {
        (Some(upper), _) => Some(upper),
        (None, true) => Some(&OverlayUpper::Tmpfs),
        (None, false) => None,
    };
    let mount = match (root_dir(plan, cached), upper) {
        (None, _) if matches!(plan.root.source, RootSource::Tmpfs) => {
            fs_mount(sys, c"tmpfs", &[(c"mode", c"755".into())], FS)
                .or_fail(StepId::Mount, Op::Mount, || {
                    "creating the root tmpfs".into()
                })
                .map_err(key)?
        }
        (None, _) => {
            return Err(StepFailure::new(
                StepId::Mount,
                Op::Mount,
                "the root was not unpacked",
                Errno::ENOENT,
            )
            .with_key("rootfs"));
        }
        (Some(path), None) => staging
            .next_tree(Entry::Root, FS)
            .and_then(|tree| tree.ok_or(Errno::ENOENT))
            .or_fail(StepId::Mount, Op::Bind, || {
                format!("bind {} -> /", path.display())
            })
            .map_err(key)?,
        (Some(path), Some(upper)) => {
            let action = || format!("overlay / over {}", path.display());
            // overlayfs takes its layers by path: the source is attached in the staging root.
            let lower = staging
                .next_layer(Entry::Root, FS | MOUNT_ATTR_RDONLY)
                .or_fail(StepId::Mount, Op::Overlay, action)
                .map_err(key)?;
            overlay(&[lower], (Entry::RootUpper, Some(upper)), FS, staging)
                .or_fail(StepId::Mount, Op::Overlay, action)
                .map_err(key)?
        }
    };
    sys.attach(mount.as_fd(), target.as_fd())
        .or_fail(StepId::Mount, Op::Mount, || {
            "mounting the root on /newroot".into()
        })
        .map_err(key)?;
    Ok(mount)
}

/// The operation a mount op is, for advice.
fn op_of(op: &MountOp) -> Op {
    match op {
        MountOp::Bind { .. } => Op::Bind,
        MountOp::Overlay { .. } => Op::Overlay,
        _ => Op::Mount,
    }
}

/// What a mount op does, for error messages.
fn describe(op: &MountOp) -> String {
    match op {
        MountOp::Bind { source, target, .. } => {
            format!("bind {} -> {}", source.display(), target.display())
        }
        MountOp::Overlay { target, .. } => format!("overlay on {}", target.display()),
        MountOp::Symlink { link, target } => format!("symlink {} -> {link}", target.display()),
        other => format!("{} on {}", other.kind(), other.target().display()),
    }
}

/// The attributes of the launcher's own mounts (the staging root, layers, a tmpfs root).
const FS: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

/// The plan's flags of a mount as MOUNT_ATTR_* bits.
fn attrs(flags: MountFlags) -> u64 {
    [
        (flags.readonly, MOUNT_ATTR_RDONLY),
        (flags.nosuid, MOUNT_ATTR_NOSUID),
        (flags.nodev, MOUNT_ATTR_NODEV),
        (flags.noexec, MOUNT_ATTR_NOEXEC),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .fold(0, |bits, (_, bit)| bits | bit)
}

fn fs_mount(
    sys: &dyn Sys,
    fstype: &CStr,
    options: &[(&CStr, CString)],
    attrs: u64,
) -> Result<OwnedFd, Errno> {
    let fs = sys.fsopen(fstype)?;
    for (key, value) in options {
        sys.fsconfig_set(fs.as_fd(), key, value)?;
    }
    sys.fsmount(fs.as_fd(), attrs)
}

/// A new mount of a file system of the kernel's own (no source) on `target` below `root`.
fn kernel_fs(
    sys: &dyn Sys,
    root: BorrowedFd<'_>,
    target: &Path,
    fstype: &CStr,
    options: &[(&CStr, CString)],
    attrs: u64,
) -> Result<(), Errno> {
    let mount = fs_mount(sys, fstype, options, attrs)?;
    sys.attach(mount.as_fd(), ensure(sys, root, target, Leaf::Dir)?.as_fd())
}

/// Make `step`, the plan's `index`th mount.
fn apply(
    index: usize,
    step: &MountStep,
    root: BorrowedFd<'_>,
    staging: &mut Staging,
) -> Result<(), Errno> {
    let sys = staging.sys;
    let attrs = step.op.flags().map_or(0, attrs);
    match &step.op {
        MountOp::Bind { target, .. } => {
            let Some(tree) = staging.next_tree(Entry::Mount(index), attrs)? else {
                return Ok(());
            };
            let leaf = match sys.stat(tree.as_fd(), c"")?.kind {
                FileKind::Dir => Leaf::Dir,
                FileKind::Other => Leaf::File,
            };
            let target = ensure(sys, root, target, leaf)?;
            sys.attach(tree.as_fd(), target.as_fd())
        }
        MountOp::Tmpfs {
            target, size, mode, ..
        } => {
            let mut options = vec![(c"mode", mode_string(*mode))];
            if let Some(size) = size {
                options.push((c"size", cstring(size.to_string())));
            }
            kernel_fs(sys, root, target, c"tmpfs", &options, attrs)
        }
        MountOp::Proc { target } => kernel_fs(sys, root, target, c"proc", &[], attrs),
        MountOp::Sysfs { target } => kernel_fs(sys, root, target, c"sysfs", &[], attrs),
        MountOp::Mqueue { target } => kernel_fs(sys, root, target, c"mqueue", &[], attrs),
        MountOp::Devpts { target } => {
            devpts(sys, ensure(sys, root, target, Leaf::Dir)?.as_fd(), attrs)
        }
        MountOp::Dev { target } => dev(sys, ensure(sys, root, target, Leaf::Dir)?.as_fd(), attrs),
        MountOp::Overlay {
            lower,
            upper,
            target,
            ..
        } => {
            let lower = (0..lower.len())
                .map(|layer| staging.next_layer(Entry::Lower(index, layer), FS | MOUNT_ATTR_RDONLY))
                .collect::<Result<Vec<PathBuf>, Errno>>()?;
            let upper = (Entry::Upper(index), upper.as_ref());
            let mount = overlay(&lower, upper, attrs, staging)?;
            sys.attach(mount.as_fd(), ensure(sys, root, target, Leaf::Dir)?.as_fd())
        }
        MountOp::Symlink { link, target } => symlink_in(sys, root, target, link).map(drop),
        MountOp::File {
            target,
            content,
            mode,
        } => bind_file(root, staging, target, content, *mode),
        MountOp::Hosts {
            target,
            hostname,
            names,
        } => {
            let kept = root_file::read(root, &inside(target), HOSTS_LIMIT);
            let kept = kept.as_deref().map(String::from_utf8_lossy);
            let content = hosts_file(hostname.as_deref(), staging.address, names, kept.as_deref());
            match bind_file(root, staging, target, &content, 0o644) {
                // A read-only root without a hosts file has no place for one: as on a host
                // without it, the names are not resolved.
                Err(Errno::EROFS) if kept.is_none() => Ok(()),
                other => other,
            }
        }
        MountOp::Dir { target, mode } => dir_in(sys, root, target, *mode),
    }
}

/// A file with `content` over `target`. The content lives in the staging tmpfs and is bound
/// over the target, so a file in a root directory from the host is never overwritten.
fn bind_file(
    root: BorrowedFd<'_>,
    staging: &mut Staging,
    target: &Path,
    content: &str,
    mode: u32,
) -> Result<(), Errno> {
    let sys = staging.sys;
    let name = cstring(staging.next_name("files/"));
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
    let file = sys.openat(Some(staging.dir.as_fd()), &name, flags, 0o600)?;
    sys.write_all(file.as_fd(), content.as_bytes())?;
    sys.fchmod(file.as_fd(), mode)?;
    drop(file);
    let tree = sys.open_tree(Some(staging.dir.as_fd()), &name)?;
    sys.attach(tree.as_fd(), ensure(sys, root, target, Leaf::File)?.as_fd())
}

fn devpts(sys: &dyn Sys, target: BorrowedFd<'_>, attrs: u64) -> Result<(), Errno> {
    let options = [(c"ptmxmode", c"0666".into()), (c"mode", c"0620".into())];
    let mount = fs_mount(sys, c"devpts", &options, attrs)?;
    sys.attach(mount.as_fd(), target)
}

/// A minimal /dev, as bubblewrap's --dev: a tmpfs with the harmless device nodes bound from the
/// host, a private devpts instance, a /dev/shm tmpfs and the usual symlinks. The tmpfs, the
/// nodes and devpts get `attrs`, the plan's flags of a /dev.
fn dev(sys: &dyn Sys, target: BorrowedFd<'_>, attrs: u64) -> Result<(), Errno> {
    let dev = fs_mount(sys, c"tmpfs", &[(c"mode", c"755".into())], attrs)?;
    sys.attach(dev.as_fd(), target)?;
    for node in DEV_NODES {
        let node = cstring(node);
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY;
        sys.openat(Some(dev.as_fd()), &node, flags, 0o666)?;
        let host = cstring(format!("{OLD_ROOT}/dev/{}", node.to_string_lossy()));
        let tree = sys.open_tree(None, &host)?;
        sys.mount_setattr(tree.as_fd(), SetAttr::on(attrs))?;
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        let file = sys.openat(Some(dev.as_fd()), &node, flags, 0)?;
        sys.attach(tree.as_fd(), file.as_fd())?;
    }
    for dir in [c"pts", c"shm"] {
        sys.mkdirat(dev.as_fd(), dir, 0o755)?;
    }
    devpts(sys, open_dir(sys, Some(dev.as_fd()), "pts")?.as_fd(), attrs)?;
    let shm = fs_mount(sys, c"tmpfs", &[(c"mode", c"1777".into())], FS)?;
    sys.attach(
        shm.as_fd(),
        open_dir(sys, Some(dev.as_fd()), "shm")?.as_fd(),
    )?;
    for (name, link) in DEV_LINKS {
        sys.symlinkat(&cstring(link), dev.as_fd(), &cstring(name))?;
    }
    Ok(())
}

/// An overlay of `lower` dirs (paths in the staging root, top first), with a tmpfs or kept
/// upper layer (a kept one prepared for its entry), mounted with `attrs`.
fn overlay(
    lower: &[PathBuf],
    (entry, upper): (Entry, Option<&OverlayUpper>),
    attrs: u64,
    staging: &mut Staging,
) -> Result<OwnedFd, Errno> {
    let sys = staging.sys;
    let lowerdir = lower
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let fs = sys.fsopen(c"overlay")?;
    sys.fsconfig_set(fs.as_fd(), c"lowerdir", &cstring(lowerdir))?;
    // A kept layer's descriptors, which its names refer to until the mount is made.
    let mut kept = None;
    let (upper_dir, work_dir) = match upper {
        None => (None, None),
        Some(OverlayUpper::Tmpfs) => {
            let (at, name) = staging.new_dir()?;
            let layer = fs_mount(sys, c"tmpfs", &[(c"mode", c"755".into())], FS)?;
            sys.attach(layer.as_fd(), at.as_fd())?;
            for dir in [c"upper", c"work"] {
                sys.mkdirat(layer.as_fd(), dir, 0o755)?;
            }
            (
                Some(PathBuf::from(format!("/{name}/upper"))),
                Some(PathBuf::from(format!("/{name}/work"))),
            )
        }
        Some(OverlayUpper::Dir { upper, work, .. }) => {
            let [upper, work] = staging.next_kept(entry, upper, work)?;
            let names = (Some(fd_name(upper.as_fd())), Some(fd_name(work.as_fd())));
            kept = Some([upper, work]);
            names
        }
    };
    if let (Some(upper), Some(work)) = (upper_dir, work_dir) {
        sys.fsconfig_set(fs.as_fd(), c"upperdir", &cstring(upper))?;
        sys.fsconfig_set(fs.as_fd(), c"workdir", &cstring(work))?;
    }
    if staging.userns {
        sys.fsconfig_flag(fs.as_fd(), c"userxattr")?;
    }
    let mount = sys.fsmount(fs.as_fd(), attrs);
    drop(kept);
    mount
}

/// Hide the kernel's sensitive entries in the proc and sysfs mounts just made (the plan's
/// masked paths: an empty read-only tmpfs over a directory, /dev/null over a file), and make
/// others read-only. These are the kernel's own entries in a file system mounted a moment ago
/// that no other process can reach yet, so each is named relative to its directory, opened
/// once, rather than opened itself; and every mask after the first of its kind is a clone of
/// that first one. About 30 system calls instead of 60 for a /proc.
fn protect_kernel_entries(
    sys: &dyn Sys,
    plan: &Plan,
    root: BorrowedFd<'_>,
) -> Result<(), StepFailure> {
    let mut entries = KernelEntries {
        sys,
        root,
        dirs: Vec::new(),
        first_masks: [None, None],
    };
    for path in &plan.security.masked_paths {
        entries.mask(path).or_fail(StepId::Mount, Op::Mask, || {
            format!("masking {}", path.display())
        })?;
    }
    for path in &plan.security.readonly_paths {
        entries
            .make_readonly(path)
            .or_fail(StepId::Mount, Op::RemountReadonly, || {
                format!("making {} read-only", path.display())
            })?;
    }
    Ok(())
}

/// A kernel entry: the index of its directory in `KernelEntries::dirs`, and its name there.
type KernelEntry = (usize, CString);

struct KernelEntries<'a> {
    sys: &'a dyn Sys,
    root: BorrowedFd<'a>,
    /// The directories of the entries, each opened once below the new root.
    dirs: Vec<(PathBuf, OwnedFd)>,
    /// The first masked file, and directory, once there is one.
    first_masks: [Option<KernelEntry>; 2],
}

impl KernelEntries<'_> {
    fn split(&mut self, path: &Path) -> Result<KernelEntry, Errno> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Errno::EINVAL);
        };
        let index = match self.dirs.iter().position(|(known, _)| known == parent) {
            Some(index) => index,
            None => {
                let flags = libc::O_PATH | libc::O_DIRECTORY;
                let dir = self.sys.open_in_root(self.root, &inside(parent), flags)?;
                self.dirs.push((parent.to_path_buf(), dir));
                self.dirs.len() - 1
            }
        };
        Ok((index, cstring(name)))
    }

    fn dir(&self, index: usize) -> BorrowedFd<'_> {
        self.dirs[index].1.as_fd()
    }

    fn mask(&mut self, path: &Path) -> Result<(), Errno> {
        let sys = self.sys;
        let (dir, name) = self.split(path)?;
        let kind = match sys.stat(self.dir(dir), &name) {
            Err(Errno::ENOENT) => return Ok(()),
            other => other?.kind,
        };
        let is_dir = kind == FileKind::Dir;
        let mask = match &self.first_masks[usize::from(is_dir)] {
            Some((first_dir, first_name)) => {
                sys.open_tree(Some(self.dir(*first_dir)), first_name)?
            }
            None if is_dir => fs_mount(
                sys,
                c"tmpfs",
                &[(c"size", c"0".into()), (c"nr_inodes", c"1".into())],
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            )?,
            None => {
                let null = sys.open_tree(None, &cstring(format!("{OLD_ROOT}/dev/null")))?;
                let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
                sys.mount_setattr(null.as_fd(), SetAttr::on(attrs))?;
                null
            }
        };
        sys.move_mount(mask.as_fd(), self.dir(dir), &name)?;
        self.first_masks[usize::from(is_dir)].get_or_insert((dir, name));
        Ok(())
    }

    fn make_readonly(&mut self, path: &Path) -> Result<(), Errno> {
        let sys = self.sys;
        let (dir, name) = self.split(path)?;
        let tree = match sys.open_tree(Some(self.dir(dir)), &name) {
            Err(Errno::ENOENT) => return Ok(()),
            other => other?,
        };
        let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        sys.mount_setattr(tree.as_fd(), SetAttr::below(attrs))?;
        sys.move_mount(tree.as_fd(), self.dir(dir), &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_the_right_side() {
        assert_eq!(inside(Path::new("/usr/bin")).to_str().unwrap(), "usr/bin");
        assert_eq!(inside(Path::new("/")).to_str().unwrap(), ".");
        assert_eq!(mode_string(0o1777).to_str().unwrap(), "1777");
    }

    use crate::sys::fake::Fake;

    /// A plan with a tmpfs root and these mounts, and nothing masked.
    fn plan_with(mounts: Vec<MountOp>) -> Plan {
        let mut plan = crate::plan::for_tests();
        plan.mounts = (mounts.into_iter().enumerate())
            .map(|(i, op)| MountStep {
                op,
                key: crate::origin::Origin::Mount(i),
            })
            .collect();
        plan
    }

    /// What the launcher prepared, for these entries.
    fn prepared(sources: Vec<(Entry, Option<Source>)>) -> Prepared {
        (sources.into_iter())
            .map(|(entry, source)| ((StepId::Mount, entry), source))
            .collect()
    }

    fn tree(fake: &Fake, entry: Entry, name: &str) -> (Entry, Option<Source>) {
        (entry, Some(Source::Tree(fake.descriptor(name))))
    }

    fn staging(sys: &Fake, prepared: Prepared, userns: bool) -> Staging<'_> {
        Staging {
            sys,
            dir: sys.descriptor("staging"),
            old_root: sys.descriptor("oldroot"),
            counter: 0,
            prepared,
            userns,
            address: None,
        }
    }

    /// Apply one op below a new root, with what the launcher prepared; the calls it made.
    fn applied(
        fake: &Fake,
        op: MountOp,
        sources: Vec<(Entry, Option<Source>)>,
    ) -> Result<Vec<String>, Errno> {
        let root = fake.descriptor("newroot");
        let step = MountStep {
            op,
            key: crate::origin::Origin::Mount(0),
        };
        let mut staging = staging(fake, prepared(sources), true);
        apply(0, &step, root.as_fd(), &mut staging)?;
        Ok(fake.calls())
    }

    fn bind(readonly: bool, idmap: Option<Idmap>) -> MountOp {
        MountOp::Bind {
            source: "/srv/data".into(),
            target: "/data".into(),
            readonly,
            idmap,
            optional: false,
        }
    }

    #[test]
    fn a_tmpfs_is_nosuid_nodev_with_its_mode_and_size_and_read_only_when_asked() {
        let fake = Fake::new();
        let op = MountOp::Tmpfs {
            target: "/scratch".into(),
            size: Some(1 << 20),
            mode: 0o1777,
            readonly: true,
        };
        assert_eq!(
            applied(&fake, op, vec![]).unwrap(),
            [
                "fsopen(tmpfs)",
                "fsconfig(tmpfs, mode=1777)",
                "fsconfig(tmpfs, size=1048576)",
                "fsmount(tmpfs, ro nosuid nodev)",
                "openat2(newroot/scratch, in root)",
                "move_mount(tmpfs -> newroot/scratch)",
            ]
        );
        let fake = Fake::new();
        let op = MountOp::Tmpfs {
            target: "/scratch".into(),
            size: None,
            mode: 0o755,
            readonly: false,
        };
        applied(&fake, op, vec![]).unwrap();
        assert_eq!(fake.calls_of("fsmount"), ["fsmount(tmpfs, nosuid nodev)"]);
    }

    #[test]
    fn each_kernel_file_system_gets_its_own_flags() {
        let target = || PathBuf::from("/k");
        for (op, expected) in [
            (
                MountOp::Proc { target: target() },
                "fsmount(proc, nosuid nodev noexec)",
            ),
            (
                MountOp::Sysfs { target: target() },
                "fsmount(sysfs, ro nosuid nodev noexec)",
            ),
            (
                MountOp::Mqueue { target: target() },
                "fsmount(mqueue, nosuid nodev noexec)",
            ),
            (
                MountOp::Devpts { target: target() },
                "fsmount(devpts, nosuid noexec)",
            ),
        ] {
            let fake = Fake::new();
            applied(&fake, op, vec![]).unwrap();
            assert_eq!(fake.calls_of("fsmount"), [expected]);
        }
    }

    #[test]
    fn a_devpts_is_a_private_instance_with_a_usable_ptmx() {
        let fake = Fake::new();
        applied(
            &fake,
            MountOp::Devpts {
                target: "/dev/pts".into(),
            },
            vec![],
        )
        .unwrap();
        assert_eq!(
            fake.calls_of("fsconfig"),
            [
                "fsconfig(devpts, ptmxmode=0666)",
                "fsconfig(devpts, mode=0620)"
            ]
        );
    }

    #[test]
    fn a_read_only_bind_judged_rootless_is_made_read_only_before_it_is_attached() {
        let fake = Fake::new();
        let judged = Source::Judged {
            opened: fake.descriptor("judged"),
            path: "/srv/data".into(),
        };
        let calls = applied(
            &fake,
            bind(true, None),
            vec![(Entry::Mount(0), Some(judged))],
        )
        .unwrap();
        assert_eq!(
            calls,
            [
                "openat2(oldroot/srv/data, in root, no symlinks)",
                "stat(oldroot/srv/data)",
                "stat(judged)",
                "open_tree(oldroot/srv/data)",
                "mount_setattr(oldroot/srv/data, +[ro nosuid nodev], recursive)",
                "stat(oldroot/srv/data)",
                "openat2(newroot/data, in root)",
                "move_mount(oldroot/srv/data -> newroot/data)",
            ]
        );
    }

    #[test]
    fn a_bind_the_launcher_made_as_root_is_attached_as_it_is() {
        let fake = Fake::new();
        let tree = tree(&fake, Entry::Mount(0), "tree");
        let calls = applied(&fake, bind(false, None), vec![tree]).unwrap();
        assert_eq!(
            calls,
            [
                "stat(tree)",
                "openat2(newroot/data, in root)",
                "move_mount(tree -> newroot/data)"
            ]
        );
    }

    #[test]
    fn an_optional_bind_whose_source_was_absent_mounts_nothing() {
        let fake = Fake::new();
        assert!(
            applied(&fake, bind(false, None), vec![(Entry::Mount(0), None)])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_bind_onto_a_file_makes_a_file_to_mount_on() {
        let fake = Fake::new();
        fake.file("tree").fail("openat2", 0, Errno::ENOENT);
        let tree = tree(&fake, Entry::Mount(0), "tree");
        let calls = applied(&fake, bind(false, None), vec![tree]).unwrap();
        assert_eq!(
            calls[1..],
            [
                "openat2(newroot/data, in root)",
                "openat2(newroot/., in root)",
                "openat(newroot/./data, create 644)",
                "openat2(newroot/data, in root)",
                "move_mount(tree -> newroot/data)",
            ]
        );
    }

    #[test]
    fn id_mapped_binds_take_the_sandboxs_own_map_in_the_parent_half_and_only_they() {
        let mapped = || bind(false, Some(Idmap::Sandbox));
        let plan = plan_with(vec![mapped(), bind(true, None), mapped()]);
        let fake = Fake::new();
        let prepared = prepared(
            (["first", "plain", "second"].iter().enumerate())
                .map(|(i, name)| tree(&fake, Entry::Mount(i), name))
                .collect(),
        );
        parent(&fake, &plan, None, &prepared, 42).unwrap();
        assert_eq!(
            fake.calls(),
            [
                "openat(/proc/42/ns/user)",
                "mount_setattr(first, +[], recursive, idmap /proc/42/ns/user)",
                "mount_setattr(second, +[], recursive, idmap /proc/42/ns/user)",
            ]
        );
    }

    #[test]
    fn an_id_mapped_bind_fails_naming_its_source_when_the_namespace_cannot_be_opened() {
        let plan = plan_with(vec![bind(false, Some(Idmap::Sandbox))]);
        let fake = Fake::new();
        fake.fail("openat", 0, Errno::ESRCH);
        let prepared = prepared(vec![tree(&fake, Entry::Mount(0), "tree")]);
        let failure = parent(&fake, &plan, None, &prepared, 42).unwrap_err();
        assert_eq!(failure.step, StepId::Mount);
        assert_eq!(failure.action, "id-mapping /srv/data");
        assert!(fake.calls_of("mount_setattr").is_empty());
    }

    #[test]
    fn masked_paths_hide_files_under_dev_null_and_dirs_under_an_empty_tmpfs_cloned_after_the_first()
    {
        let mut plan = plan_with(vec![]);
        plan.security.masked_paths = ["/proc/kcore", "/proc/acpi", "/proc/keys", "/proc/gone"]
            .map(PathBuf::from)
            .to_vec();
        plan.security.readonly_paths = ["/proc/sys", "/proc/absent"].map(PathBuf::from).to_vec();
        let fake = Fake::new();
        fake.file("kcore")
            .file("keys")
            .absent("gone")
            .absent("absent");
        let root = fake.descriptor("newroot");
        protect_kernel_entries(&fake, &plan, root.as_fd()).unwrap();
        assert_eq!(
            fake.calls(),
            [
                "openat2(newroot/proc, in root)",
                "stat(newroot/proc/kcore)",
                "open_tree(/oldroot/dev/null)",
                "mount_setattr(/oldroot/dev/null, +[ro nosuid noexec])",
                "move_mount(/oldroot/dev/null -> newroot/proc/kcore)",
                "stat(newroot/proc/acpi)",
                "fsopen(tmpfs)",
                "fsconfig(tmpfs, size=0)",
                "fsconfig(tmpfs, nr_inodes=1)",
                "fsmount(tmpfs, ro nosuid nodev noexec)",
                "move_mount(tmpfs -> newroot/proc/acpi)",
                "stat(newroot/proc/keys)",
                "open_tree(newroot/proc/kcore)",
                "move_mount(newroot/proc/kcore -> newroot/proc/keys)",
                "stat(newroot/proc/gone)",
                "open_tree(newroot/proc/sys)",
                "mount_setattr(newroot/proc/sys, +[ro nosuid nodev noexec], recursive)",
                "move_mount(newroot/proc/sys -> newroot/proc/sys)",
                "open_tree(newroot/proc/absent)",
            ]
        );
    }

    #[test]
    fn a_mask_that_cannot_be_made_fails_the_step_naming_the_path() {
        let mut plan = plan_with(vec![]);
        plan.security.masked_paths = vec!["/proc/kcore".into()];
        let fake = Fake::new();
        fake.file("kcore").fail("move_mount", 0, Errno::EPERM);
        let root = fake.descriptor("newroot");
        let failure = protect_kernel_entries(&fake, &plan, root.as_fd()).unwrap_err();
        assert_eq!(
            (failure.step, failure.action.as_str(), failure.errno),
            (StepId::Mount, "masking /proc/kcore", Errno::EPERM as i32)
        );
    }

    #[test]
    fn an_overlay_in_a_user_namespace_keeps_its_metadata_in_user_xattrs() {
        let fake = Fake::new();
        let op = MountOp::Overlay {
            lower: vec!["/a".into(), "/b".into()],
            upper: Some(OverlayUpper::Tmpfs),
            target: "/o".into(),
            readonly: true,
            idmap: None,
        };
        let layers = vec![
            tree(&fake, Entry::Lower(0, 0), "a"),
            tree(&fake, Entry::Lower(0, 1), "b"),
        ];
        applied(&fake, op, layers).unwrap();
        assert_eq!(
            fake.calls_of("fsconfig"),
            [
                "fsconfig(overlay, lowerdir=/layer1:/layer2)",
                "fsconfig(tmpfs, mode=755)",
                "fsconfig(overlay, upperdir=/layer3/upper)",
                "fsconfig(overlay, workdir=/layer3/work)",
                "fsconfig(overlay, userxattr)",
            ]
        );
        assert_eq!(
            fake.calls_of("fsmount"),
            [
                "fsmount(tmpfs, nosuid nodev)",
                "fsmount(overlay, ro nosuid nodev)"
            ]
        );
    }

    #[test]
    fn the_sandbox_pivots_into_a_staging_root_before_it_mounts_anything() {
        let plan = plan_with(vec![MountOp::Proc {
            target: "/proc".into(),
        }]);
        let fake = Fake::new();
        child(&fake, &plan, None, Prepared::new(), None).unwrap();
        let calls = fake.calls();
        let at = |call: &str| calls.iter().position(|c| c == call).expect(call);
        assert_eq!(calls[0], "make_mounts_private()");
        assert!(at("pivot_root(\".\", \"oldroot\")") < at("fsopen(proc)"));
        assert!(at("chdir(/)") < at("openat(/newroot)"));
        assert_eq!(calls.last().unwrap(), "move_mount(proc -> tmpfs/proc)");
    }

    #[test]
    fn a_failed_mount_stops_the_step_and_names_its_key() {
        let plan = plan_with(vec![
            MountOp::Proc {
                target: "/proc".into(),
            },
            MountOp::Mqueue {
                target: "/dev/mqueue".into(),
            },
        ]);
        let fake = Fake::new();
        // The staging root, the root, then /proc.
        fake.fail("fsmount", 2, Errno::EPERM);
        let failure = child(&fake, &plan, None, Prepared::new(), None).unwrap_err();
        assert_eq!(failure.step, StepId::Mount);
        assert_eq!(failure.key, Some(crate::origin::Origin::Mount(0)));
        assert_eq!(failure.action, "proc on /proc");
        assert_eq!(failure.errno, Errno::EPERM as i32);
        assert!(
            fake.calls_of("fsopen")
                .iter()
                .all(|c| c != "fsopen(mqueue)")
        );
    }

    #[test]
    fn a_minimal_dev_binds_only_harmless_nodes_from_the_host() {
        let fake = Fake::new();
        applied(
            &fake,
            MountOp::Dev {
                target: "/dev".into(),
            },
            vec![],
        )
        .unwrap();
        let bound: Vec<String> = DEV_NODES
            .iter()
            .map(|node| format!("open_tree(/oldroot/dev/{node})"))
            .collect();
        assert_eq!(fake.calls_of("open_tree"), bound);
        assert!(
            (fake.calls_of("mount_setattr").iter()).all(|call| call.ends_with("+[nosuid noexec])"))
        );
    }

    #[test]
    fn slots_follow_the_order_the_sandbox_mounts_them_in() {
        use crate::host::{Caller, FixedFacts, HostFacts};
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        for folder in ["root", "a", "b", "c"] {
            std::fs::create_dir(base.join(folder)).unwrap();
        }
        let text = "[rootfs]\npath = \"root\"\noverlay = { upper = \"kept/root\" }\n\
            [[mount]]\ntype = \"overlay\"\nsource = [\"a\", \"b\"]\ntarget = \"/o\"\nupper = \"kept/o\"\n\
            [[mount]]\ntype = \"tmpfs\"\ntarget = \"/t\"\n\
            [[mount]]\ntype = \"bind\"\nsource = \"c\"\ntarget = \"/c\"\n";
        let caller = Caller::ann(1000);
        let loaded = crate::manifest::load_str(&base.join("sandbox.toml"), text, &caller.vars());
        let host = HostFacts::fixed(caller, FixedFacts::default());
        let invocation = crate::validate::Invocation::inspecting();
        let validated = crate::validate::validate(&loaded, &host, &invocation);
        let plan = validated.plan.expect("a plan");
        let order: Vec<String> = slots(&plan, None)
            .iter()
            .map(|slot| match slot.from {
                Host::Judged(path) => path.strip_prefix(&base).unwrap().display().to_string(),
                Host::Kept { upper, .. } => {
                    format!("kept {}", upper.strip_prefix(&base).unwrap().display())
                }
                Host::Cache(_) => unreachable!("no archive"),
            })
            .collect();
        assert_eq!(
            order,
            ["root", "kept kept/root", "a", "b", "kept kept/o", "c"]
        );
    }

    #[test]
    fn a_folder_id_mapped_as_the_callers_own_must_still_be_when_mounted() {
        use std::os::unix::fs::PermissionsExt;

        use crate::host::{Caller, FixedFacts, HostFacts};
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let folder = base.join("c");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        let text =
            "[rootfs]\nhost = true\n[[mount]]\ntype = \"bind\"\nsource = \"c\"\ntarget = \"/c\"\n";
        let caller = Caller::ann(0);
        let loaded = crate::manifest::load_str(&base.join("sandbox.toml"), text, &caller.vars());
        // Judged root's own, as root.
        let facts = FixedFacts {
            owner: Some(0),
            ..FixedFacts::default()
        };
        let host = HostFacts::fixed(caller, facts);
        let invocation = crate::validate::Invocation::inspecting();
        let plan = crate::validate::validate(&loaded, &host, &invocation)
            .plan
            .expect("a plan");
        assert!(plan.mounts.iter().any(|m| matches!(
            &m.op,
            MountOp::Bind { source, idmap: Some(Idmap::Caller), .. } if *source == folder
        )));
        let opened = open_dir(&crate::sys::KERNEL, None, &folder).unwrap();
        let own = nix::unistd::geteuid().is_root();
        assert_eq!(still_own(&plan, &folder, opened.as_fd()).is_ok(), own);
        // Others may write it now: their files would be the sandbox's.
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = still_own(&plan, &folder, opened.as_fd()).unwrap_err();
        assert_eq!(refused.errno, libc::EPERM);
        let why = if own {
            "writable by every user"
        } else {
            "owned by uid"
        };
        assert!(refused.action.contains(why), "{}", refused.action);
    }
}
