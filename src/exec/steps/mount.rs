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

use std::ffi::{CString, OsStr};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat};

use super::user::Exiting;
use crate::exec::error::{Op, OrFail, StepFailure};
use crate::exec::sys::{
    self, FsContext, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};
use crate::exec::{root_file, write_all};
use crate::hostpath::{self, HostFiles};
use crate::plan::{
    Idmap, Ids, MountOp, MountStep, OverlayUpper, Plan, RootSource, StepId, hosts_file,
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
struct Staging {
    dir: OwnedFd,
    /// The host's root, below the staging root.
    old_root: OwnedFd,
    counter: usize,
    /// What the launcher prepared, in [`slots`] order.
    prepared: std::vec::IntoIter<Option<Source>>,
    /// In a user namespace, overlayfs must keep its metadata in user.* xattrs.
    userns: bool,
    /// The sandbox's address on a bridge, leased by the supervisor, for /etc/hosts.
    address: Option<Ipv4Addr>,
}

impl Staging {
    fn next_name(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{}", self.counter)
    }

    /// Attach a detached mount in the staging root and return its path there (overlayfs takes
    /// its layers by path).
    fn attach(&mut self, tree: OwnedFd) -> Result<PathBuf, Errno> {
        let name = self.next_name("layer");
        nix::sys::stat::mkdirat(
            self.dir.as_fd(),
            name.as_str(),
            Mode::from_bits_truncate(0o755),
        )?;
        let at = nix::fcntl::openat(
            self.dir.as_fd(),
            name.as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        sys::move_mount(tree.as_fd(), at.as_fd())?;
        Ok(PathBuf::from(format!("/{name}")))
    }

    /// The next prepared host path as a detached mount with `attrs` (a tree the launcher made
    /// has its own); `None` for an optional bind whose source was absent.
    fn next_tree(&mut self, attrs: u64) -> Result<Option<OwnedFd>, Errno> {
        match self.prepared.next().ok_or(Errno::ENOENT)? {
            None => Ok(None),
            Some(Source::Tree(tree)) => Ok(Some(tree)),
            Some(Source::Judged { opened, path }) => {
                let own = sys::openat2(
                    Some(self.old_root.as_fd()),
                    &inside(&path),
                    libc::O_PATH,
                    libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
                )?;
                if !hostpath::same_file(own.as_fd(), opened.as_fd())? {
                    return Err(Errno::ESTALE);
                }
                let tree = sys::open_tree_clone(Some(own.as_fd()), c"")?;
                sys::mount_setattr(tree.as_fd(), true, attrs, 0, None)?;
                Ok(Some(tree))
            }
        }
    }

    /// The next prepared host path, which must be there, attached in the staging root.
    fn next_layer(&mut self, attrs: u64) -> Result<PathBuf, Errno> {
        let tree = self.next_tree(attrs)?.ok_or(Errno::ENOENT)?;
        self.attach(tree)
    }

    /// The next prepared kept overlay layer: its upper and work dirs, opened below their folder
    /// following no symlink (anyone who may write that folder could swap one for a symlink),
    /// and named for overlayfs by their descriptors.
    fn next_kept(&mut self, upper: &Path, work: &Path) -> Result<[OwnedFd; 2], Errno> {
        let folder = self.next_layer(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?;
        let folder = open_dir(folder.as_path())?;
        let open = |dir: &Path| {
            hostpath::open_dir_beneath(
                folder.as_fd(),
                Path::new(dir.file_name().ok_or(Errno::EINVAL)?),
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

fn cstring(path: impl AsRef<OsStr>) -> CString {
    CString::new(path.as_ref().as_bytes()).expect("plan paths hold no NUL byte (validated)")
}

/// A sandbox path, relative to the new root (for openat2 below it).
fn inside(path: &Path) -> CString {
    let relative = path.strip_prefix("/").unwrap_or(path);
    cstring(if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    })
}

fn open_dir<P: ?Sized + nix::NixPath>(path: &P) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
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

/// One per [`slots`] entry, in that order, made before the clone (the sandbox inherits them);
/// `None` for an optional bind whose source was absent when the plan was judged.
pub type Prepared = Vec<Option<Source>>;

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

/// A host path the sandbox mounts, in the order the child consumes them: the root, then each
/// bind and each lower layer (and kept upper layer) of each overlay.
struct Slot<'a> {
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
    let kept = |upper: Option<&'a OverlayUpper>| match upper {
        Some(OverlayUpper::Dir { upper, work, idmap }) => Some(Slot {
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
            from,
            idmap,
            readonly: false,
        });
        slots.extend(kept(plan.root.overlay.as_ref()));
    }
    for step in &plan.mounts {
        match &step.op {
            MountOp::Bind {
                source,
                idmap,
                readonly,
                ..
            } => slots.push(Slot {
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
                slots.extend(lower.iter().map(|l| Slot {
                    from: Host::Judged(l),
                    idmap: *idmap,
                    readonly: true,
                }));
                slots.extend(kept(upper.as_ref()));
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
    plan: &Plan,
    cached: Option<&Path>,
    files: &HostFiles,
) -> Result<(Prepared, Option<Exiting>), StepFailure> {
    let as_root = nix::unistd::geteuid().is_root();
    let mut caller = None;
    let mut prepared = Vec::new();
    for slot in slots(plan, cached) {
        let opened = match slot.from {
            Host::Judged(path) => match files.get(path) {
                Some(opened) => opened.fd.try_clone().map_err(io_errno),
                // Only an optional bind's absent source is not opened.
                None => {
                    prepared.push(None);
                    continue;
                }
            },
            Host::Cache(path) => open_dir(path),
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
            prepared.push(Some(Source::Judged { opened, path }));
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
        let tree = sys::open_tree_clone(Some(opened.as_fd()), c"")
            .and_then(|tree| {
                sys::mount_setattr(tree.as_fd(), true, attrs, 0, userns).map(|()| tree)
            })
            .or_fail(StepId::Mount, Op::AttachTree, || {
                format!("mounting {}", path.display())
            })?;
        prepared.push(Some(Source::Tree(tree)));
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
    plan: &Plan,
    cached: Option<&Path>,
    prepared: &Prepared,
    child: i32,
) -> Result<(), StepFailure> {
    let mut userns = None;
    for (slot, source) in slots(plan, cached).iter().zip(prepared) {
        let (Some(Idmap::Sandbox), Some(Source::Tree(tree))) = (slot.idmap, source) else {
            continue;
        };
        let action = || format!("id-mapping {}", slot.path().display());
        let userns = match &userns {
            Some(userns) => userns,
            None => userns.insert(
                std::fs::File::open(format!("/proc/{child}/ns/user"))
                    .map(OwnedFd::from)
                    .map_err(io_errno)
                    .or_fail(StepId::Mount, Op::IdmapTree, action)?,
            ),
        };
        sys::mount_setattr(tree.as_fd(), true, 0, 0, Some(userns.as_fd())).or_fail(
            StepId::Mount,
            Op::IdmapTree,
            action,
        )?;
    }
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
    plan: &Plan,
    cached: Option<&Path>,
    prepared: Prepared,
    address: Option<Ipv4Addr>,
) -> Result<OwnedFd, StepFailure> {
    let fail = |action: &str| {
        let action = action.to_string();
        move || action
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .or_fail(StepId::Mount, Op::Propagation, fail("making / private"))?;

    // Staging root, with the host's root below it at /oldroot.
    let staging = FsContext::open(c"tmpfs")
        .and_then(|fs| {
            fs.set(c"mode", c"755")?;
            fs.mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
        })
        .or_fail(
            StepId::Mount,
            Op::Staging,
            fail("creating the staging tmpfs"),
        )?;
    let staging_target = open_dir(STAGING).or_fail(
        StepId::Mount,
        Op::Staging,
        fail("opening /tmp for the staging root"),
    )?;
    sys::move_mount(staging.as_fd(), staging_target.as_fd()).or_fail(
        StepId::Mount,
        Op::Staging,
        fail("mounting the staging root on /tmp"),
    )?;
    drop(staging_target);
    for dir in ["newroot", "oldroot", "files"] {
        nix::sys::stat::mkdirat(staging.as_fd(), dir, Mode::from_bits_truncate(0o755)).or_fail(
            StepId::Mount,
            Op::Staging,
            || format!("creating {STAGING}/{dir}"),
        )?;
    }
    nix::unistd::fchdir(staging.as_fd()).or_fail(
        StepId::Mount,
        Op::Staging,
        fail("entering the staging root"),
    )?;
    nix::unistd::pivot_root(".", "oldroot").or_fail(
        StepId::Mount,
        Op::PivotRoot,
        fail("pivot_root into the staging root"),
    )?;
    nix::unistd::chdir("/").or_fail(StepId::Mount, Op::Chdir, fail("chdir(/)"))?;
    let mut staging = Staging {
        dir: open_dir("/").or_fail(StepId::Mount, Op::Staging, fail("opening the staging root"))?,
        old_root: open_dir(OLD_ROOT).or_fail(
            StepId::Mount,
            Op::Staging,
            fail("opening the host's root"),
        )?,
        counter: 0,
        prepared: prepared.into_iter(),
        userns: plan.namespaces.user,
        address,
    };

    let new_root = root(plan, cached, &mut staging)?;
    for step in &plan.mounts {
        apply(step, new_root.as_fd(), &mut staging).map_err(|errno| {
            StepFailure::new(StepId::Mount, op_of(&step.op), describe(&step.op), errno)
                .with_key(step.key.clone())
        })?;
    }
    protect_kernel_entries(plan, new_root.as_fd())?;
    Ok(new_root)
}

fn root(plan: &Plan, cached: Option<&Path>, staging: &mut Staging) -> Result<OwnedFd, StepFailure> {
    let target =
        open_dir("/newroot").or_fail(StepId::Mount, Op::Staging, || "opening /newroot".into())?;
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
        (None, _) if matches!(plan.root.source, RootSource::Tmpfs) => FsContext::open(c"tmpfs")
            .and_then(|fs| {
                fs.set(c"mode", c"755")?;
                fs.mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
            })
            .or_fail(StepId::Mount, Op::Mount, || {
                "creating the root tmpfs".into()
            })
            .map_err(key)?,
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
            .next_tree(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
            .and_then(|tree| tree.ok_or(Errno::ENOENT))
            .or_fail(StepId::Mount, Op::Bind, || {
                format!("bind {} -> /", path.display())
            })
            .map_err(key)?,
        (Some(path), Some(upper)) => {
            let action = || format!("overlay / over {}", path.display());
            // overlayfs takes its layers by path: the source is attached in the staging root.
            let lower = staging
                .next_layer(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY)
                .or_fail(StepId::Mount, Op::Overlay, action)
                .map_err(key)?;
            overlay(&[lower], Some(upper), false, staging)
                .or_fail(StepId::Mount, Op::Overlay, action)
                .map_err(key)?
        }
    };
    sys::move_mount(mount.as_fd(), target.as_fd())
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Dir,
    File,
}

/// Open `target` below `root` as an O_PATH descriptor, creating it (and missing parents) when
/// absent. Every lookup is RESOLVE_IN_ROOT, so symlinks cannot lead outside the new root.
fn ensure(root: BorrowedFd<'_>, target: &Path, leaf: Leaf) -> Result<OwnedFd, Errno> {
    match sys::open_in_root(root, &inside(target), libc::O_PATH) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let parent_path = target.parent().ok_or(Errno::ENOENT)?;
    let name = target.file_name().ok_or(Errno::EINVAL)?;
    let parent = sys::open_in_root(
        root,
        &inside(parent_path),
        libc::O_DIRECTORY | libc::O_RDONLY,
    )
    .or_else(|errno| {
        if errno != Errno::ENOENT {
            return Err(errno);
        }
        drop(ensure(root, parent_path, Leaf::Dir)?);
        sys::open_in_root(
            root,
            &inside(parent_path),
            libc::O_DIRECTORY | libc::O_RDONLY,
        )
    })?;
    let created = match leaf {
        Leaf::Dir => nix::sys::stat::mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o755)),
        Leaf::File => nix::fcntl::openat(
            parent.as_fd(),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
    };
    match created {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(errno),
    }
    // A name that existed but could not be resolved is a dangling symlink: refuse it rather
    // than follow it.
    sys::open_in_root(root, &inside(target), libc::O_PATH)
}

fn is_dir(fd: BorrowedFd<'_>) -> Result<bool, Errno> {
    Ok(SFlag::from_bits_truncate(fstat(fd)?.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

fn fs_mount(
    fstype: &std::ffi::CStr,
    options: &[(&std::ffi::CStr, CString)],
    attrs: u64,
) -> Result<OwnedFd, Errno> {
    let fs = FsContext::open(fstype)?;
    for (key, value) in options {
        fs.set(key, value)?;
    }
    fs.mount(attrs)
}

fn apply(step: &MountStep, root: BorrowedFd<'_>, staging: &mut Staging) -> Result<(), Errno> {
    const FS: u64 = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    let ro = |readonly: bool| if readonly { MOUNT_ATTR_RDONLY } else { 0 };
    match &step.op {
        MountOp::Bind {
            target, readonly, ..
        } => {
            let Some(tree) = staging.next_tree(FS | ro(*readonly))? else {
                return Ok(());
            };
            let leaf = if is_dir(tree.as_fd())? {
                Leaf::Dir
            } else {
                Leaf::File
            };
            let target = ensure(root, target, leaf)?;
            sys::move_mount(tree.as_fd(), target.as_fd())
        }
        MountOp::Tmpfs {
            target,
            size,
            mode,
            readonly,
        } => {
            let mut options = vec![(c"mode", mode_string(*mode))];
            if let Some(size) = size {
                options.push((c"size", cstring(size.to_string())));
            }
            let mount = fs_mount(c"tmpfs", &options, FS | ro(*readonly))?;
            sys::move_mount(mount.as_fd(), ensure(root, target, Leaf::Dir)?.as_fd())
        }
        MountOp::Proc { target } => {
            let mount = fs_mount(c"proc", &[], FS | MOUNT_ATTR_NOEXEC)?;
            sys::move_mount(mount.as_fd(), ensure(root, target, Leaf::Dir)?.as_fd())
        }
        MountOp::Sysfs { target } => {
            let mount = fs_mount(c"sysfs", &[], FS | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_RDONLY)?;
            sys::move_mount(mount.as_fd(), ensure(root, target, Leaf::Dir)?.as_fd())
        }
        MountOp::Mqueue { target } => {
            let mount = fs_mount(c"mqueue", &[], FS | MOUNT_ATTR_NOEXEC)?;
            sys::move_mount(mount.as_fd(), ensure(root, target, Leaf::Dir)?.as_fd())
        }
        MountOp::Devpts { target } => devpts(ensure(root, target, Leaf::Dir)?.as_fd()),
        MountOp::Dev { target } => dev(ensure(root, target, Leaf::Dir)?.as_fd()),
        MountOp::Overlay {
            lower,
            upper,
            target,
            readonly,
            ..
        } => {
            let lower = lower
                .iter()
                .map(|_| staging.next_layer(FS | MOUNT_ATTR_RDONLY))
                .collect::<Result<Vec<PathBuf>, Errno>>()?;
            let mount = overlay(&lower, upper.as_ref(), *readonly, staging)?;
            sys::move_mount(mount.as_fd(), ensure(root, target, Leaf::Dir)?.as_fd())
        }
        MountOp::Symlink { link, target } => symlink_in(root, target, link).map(drop),
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
        MountOp::Dir { target, mode } => dir_in(root, target, *mode),
    }
}

/// A symlink at `target` below `root` (parents made as needed); one that is there already with
/// the same text is fine. Returns the parent directory and the link's name in it. Also used
/// by `sandbox export` to make the links in a bundle's rootfs.
pub(crate) fn symlink_in<'a>(
    root: BorrowedFd<'_>,
    target: &'a Path,
    link: &str,
) -> Result<(OwnedFd, &'a OsStr), Errno> {
    let parent = ensure(root, target.parent().unwrap_or(Path::new("/")), Leaf::Dir)?;
    let name = target.file_name().ok_or(Errno::EINVAL)?;
    match nix::unistd::symlinkat(link, parent.as_fd(), name) {
        Err(Errno::EEXIST) => {
            let existing = nix::fcntl::readlinkat(parent.as_fd(), name)?;
            if existing.as_os_str() != OsStr::new(link) {
                return Err(Errno::EEXIST);
            }
        }
        other => other?,
    }
    Ok((parent, name))
}

/// A directory at `target` below `root` with `mode` (parents made as needed).
pub(crate) fn dir_in(root: BorrowedFd<'_>, target: &Path, mode: u32) -> Result<(), Errno> {
    let dir = ensure(root, target, Leaf::Dir)?;
    let dir = sys::open_in_root(dir.as_fd(), c".", libc::O_DIRECTORY | libc::O_RDONLY)?;
    fchmod(dir.as_fd(), Mode::from_bits_truncate(mode))
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
    let name = staging.next_name("files/");
    let file = nix::fcntl::openat(
        staging.dir.as_fd(),
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    write_all(file.as_fd(), content.as_bytes())?;
    fchmod(file.as_fd(), Mode::from_bits_truncate(mode))?;
    drop(file);
    let tree = sys::open_tree_clone(Some(staging.dir.as_fd()), &cstring(&name))?;
    sys::move_mount(tree.as_fd(), ensure(root, target, Leaf::File)?.as_fd())
}

fn devpts(target: BorrowedFd<'_>) -> Result<(), Errno> {
    let mount = fs_mount(
        c"devpts",
        &[(c"ptmxmode", cstring("0666")), (c"mode", cstring("0620"))],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    )?;
    sys::move_mount(mount.as_fd(), target)
}

/// A minimal /dev, as bubblewrap's --dev: a tmpfs with the harmless device nodes bound from the
/// host, a private devpts instance, a /dev/shm tmpfs and the usual symlinks.
fn dev(target: BorrowedFd<'_>) -> Result<(), Errno> {
    let dev = fs_mount(
        c"tmpfs",
        &[(c"mode", cstring("755"))],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    )?;
    sys::move_mount(dev.as_fd(), target)?;
    for node in DEV_NODES {
        nix::fcntl::openat(
            dev.as_fd(),
            *node,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        )?;
        let tree = sys::open_tree_clone(None, &cstring(format!("{OLD_ROOT}/dev/{node}")))?;
        sys::mount_setattr(
            tree.as_fd(),
            false,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            0,
            None,
        )?;
        let file = nix::fcntl::openat(
            dev.as_fd(),
            *node,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        sys::move_mount(tree.as_fd(), file.as_fd())?;
    }
    for dir in ["pts", "shm"] {
        nix::sys::stat::mkdirat(dev.as_fd(), dir, Mode::from_bits_truncate(0o755))?;
    }
    let pts = nix::fcntl::openat(
        dev.as_fd(),
        "pts",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    devpts(pts.as_fd())?;
    let shm = fs_mount(
        c"tmpfs",
        &[(c"mode", cstring("1777"))],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
    )?;
    let shm_dir = nix::fcntl::openat(
        dev.as_fd(),
        "shm",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    sys::move_mount(shm.as_fd(), shm_dir.as_fd())?;
    for (name, link) in DEV_LINKS {
        nix::unistd::symlinkat(*link, dev.as_fd(), *name)?;
    }
    Ok(())
}

/// An overlay of `lower` dirs (paths in the staging root, top first), with a tmpfs or kept
/// upper layer.
fn overlay(
    lower: &[PathBuf],
    upper: Option<&OverlayUpper>,
    readonly: bool,
    staging: &mut Staging,
) -> Result<OwnedFd, Errno> {
    let lowerdir = lower
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let fs = FsContext::open(c"overlay")?;
    fs.set(c"lowerdir", &cstring(lowerdir))?;
    // A kept layer's descriptors, which its names refer to until the mount is made.
    let mut kept = None;
    let (upper_dir, work_dir) = match upper {
        None => (None, None),
        Some(OverlayUpper::Tmpfs) => {
            let name = staging.next_name("layer");
            nix::sys::stat::mkdirat(
                staging.dir.as_fd(),
                name.as_str(),
                Mode::from_bits_truncate(0o755),
            )?;
            let layer = fs_mount(
                c"tmpfs",
                &[(c"mode", cstring("755"))],
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )?;
            let at = nix::fcntl::openat(
                staging.dir.as_fd(),
                name.as_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            sys::move_mount(layer.as_fd(), at.as_fd())?;
            for dir in ["upper", "work"] {
                nix::sys::stat::mkdirat(layer.as_fd(), dir, Mode::from_bits_truncate(0o755))?;
            }
            (
                Some(PathBuf::from(format!("/{name}/upper"))),
                Some(PathBuf::from(format!("/{name}/work"))),
            )
        }
        Some(OverlayUpper::Dir { upper, work, .. }) => {
            let [upper, work] = staging.next_kept(upper, work)?;
            let names = (Some(fd_name(upper.as_fd())), Some(fd_name(work.as_fd())));
            kept = Some([upper, work]);
            names
        }
    };
    if let (Some(upper), Some(work)) = (upper_dir, work_dir) {
        fs.set(c"upperdir", &cstring(upper))?;
        fs.set(c"workdir", &cstring(work))?;
    }
    if staging.userns {
        fs.flag(c"userxattr")?;
    }
    let mount = fs
        .mount(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | if readonly { MOUNT_ATTR_RDONLY } else { 0 });
    drop(kept);
    mount
}

/// Hide the kernel's sensitive entries in the proc and sysfs mounts just made (the plan's
/// masked paths: an empty read-only tmpfs over a directory, /dev/null over a file), and make
/// others read-only. These are the kernel's own entries in a file system mounted a moment ago
/// that no other process can reach yet, so each is named relative to its directory, opened
/// once, rather than opened itself; and every mask after the first of its kind is a clone of
/// that first one. About 30 system calls instead of 60 for a /proc.
fn protect_kernel_entries(plan: &Plan, root: BorrowedFd<'_>) -> Result<(), StepFailure> {
    let mut entries = KernelEntries {
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

/// An entry: the index of its directory in `KernelEntries::dirs`, and its name there.
type Entry = (usize, CString);

struct KernelEntries<'a> {
    root: BorrowedFd<'a>,
    /// The directories of the entries, each opened once below the new root.
    dirs: Vec<(PathBuf, OwnedFd)>,
    /// The first masked file, and directory, once there is one.
    first_masks: [Option<Entry>; 2],
}

impl KernelEntries<'_> {
    fn split(&mut self, path: &Path) -> Result<Entry, Errno> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Errno::EINVAL);
        };
        let index = match self.dirs.iter().position(|(known, _)| known == parent) {
            Some(index) => index,
            None => {
                let flags = libc::O_PATH | libc::O_DIRECTORY;
                let dir = sys::open_in_root(self.root, &inside(parent), flags)?;
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
        let (dir, name) = self.split(path)?;
        let stat = match nix::sys::stat::fstatat(
            self.dir(dir),
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Err(Errno::ENOENT) => return Ok(()),
            other => other?,
        };
        let is_dir = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        let mask = match &self.first_masks[usize::from(is_dir)] {
            Some((first_dir, first_name)) => {
                sys::open_tree_clone(Some(self.dir(*first_dir)), first_name)?
            }
            None if is_dir => fs_mount(
                c"tmpfs",
                &[(c"size", cstring("0")), (c"nr_inodes", cstring("1"))],
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            )?,
            None => {
                let null = sys::open_tree_clone(None, &cstring(format!("{OLD_ROOT}/dev/null")))?;
                let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
                sys::mount_setattr(null.as_fd(), false, attrs, 0, None)?;
                null
            }
        };
        sys::move_mount_at(mask.as_fd(), self.dir(dir), &name)?;
        self.first_masks[usize::from(is_dir)].get_or_insert((dir, name));
        Ok(())
    }

    fn make_readonly(&mut self, path: &Path) -> Result<(), Errno> {
        let (dir, name) = self.split(path)?;
        let tree = match sys::open_tree_clone(Some(self.dir(dir)), &name) {
            Err(Errno::ENOENT) => return Ok(()),
            other => other?,
        };
        let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
        sys::mount_setattr(tree.as_fd(), true, attrs, 0, None)?;
        sys::move_mount_at(tree.as_fd(), self.dir(dir), &name)
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
        let opened = open_dir(&folder).unwrap();
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
