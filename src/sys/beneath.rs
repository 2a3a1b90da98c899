//! Names made below a directory that stands for a root (the sandbox's new root, a bundle's
//! rootfs), through a [`Sys`]: every lookup is `openat2(RESOLVE_IN_ROOT)`, so a symlink in that
//! root (`/tmp -> /etc`) resolves inside it and can never send a mount or a write onto the host.
//! The mount step and `sandbox export` share them.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use super::Sys;

/// A path as the kernel takes it.
pub fn cstring(path: impl AsRef<OsStr>) -> CString {
    CString::new(path.as_ref().as_bytes()).expect("plan paths hold no NUL byte (validated)")
}

/// An absolute path, relative to the root it is inside of (for openat2 below it).
pub fn inside(path: &Path) -> CString {
    let relative = path.strip_prefix("/").unwrap_or(path);
    cstring(if relative.as_os_str().is_empty() {
        Path::new(".")
    } else {
        relative
    })
}

/// An O_PATH descriptor of the directory `path` (below `dir`, or the current directory).
pub fn open_dir(
    sys: &dyn Sys,
    dir: Option<BorrowedFd<'_>>,
    path: impl AsRef<OsStr>,
) -> Result<OwnedFd, Errno> {
    sys.openat(dir, &cstring(path), libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// What [`ensure`] makes when the name is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
}

/// Open `target` below `root` as an O_PATH descriptor, creating it (and missing parents) when
/// absent. Every lookup is RESOLVE_IN_ROOT, so symlinks cannot lead outside the new root.
pub fn ensure(
    sys: &dyn Sys,
    root: BorrowedFd<'_>,
    target: &Path,
    leaf: Leaf,
) -> Result<OwnedFd, Errno> {
    match sys.open_in_root(root, &inside(target), libc::O_PATH) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let parent_path = target.parent().ok_or(Errno::ENOENT)?;
    let name = cstring(target.file_name().ok_or(Errno::EINVAL)?);
    let parent_flags = libc::O_DIRECTORY | libc::O_RDONLY;
    let parent = sys
        .open_in_root(root, &inside(parent_path), parent_flags)
        .or_else(|errno| {
            if errno != Errno::ENOENT {
                return Err(errno);
            }
            drop(ensure(sys, root, parent_path, Leaf::Dir)?);
            sys.open_in_root(root, &inside(parent_path), parent_flags)
        })?;
    let created = match leaf {
        Leaf::Dir => sys.mkdirat(parent.as_fd(), &name, 0o755),
        Leaf::File => sys
            .openat(
                Some(parent.as_fd()),
                &name,
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o644,
            )
            .map(drop),
    };
    match created {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(errno),
    }
    // A name that existed but could not be resolved is a dangling symlink: refuse it rather
    // than follow it.
    sys.open_in_root(root, &inside(target), libc::O_PATH)
}

/// A symlink at `target` below `root` (parents made as needed); one that is there already with
/// the same text is fine. Returns the parent directory and the link's name in it.
pub fn symlink_in<'a>(
    sys: &dyn Sys,
    root: BorrowedFd<'_>,
    target: &'a Path,
    link: &str,
) -> Result<(OwnedFd, &'a OsStr), Errno> {
    let parent = ensure(
        sys,
        root,
        target.parent().unwrap_or(Path::new("/")),
        Leaf::Dir,
    )?;
    let name = target.file_name().ok_or(Errno::EINVAL)?;
    match sys.symlinkat(&cstring(link), parent.as_fd(), &cstring(name)) {
        Err(Errno::EEXIST) => {
            let existing = sys.readlinkat(parent.as_fd(), &cstring(name))?;
            if existing.as_os_str() != OsStr::new(link) {
                return Err(Errno::EEXIST);
            }
        }
        other => other?,
    }
    Ok((parent, name))
}

/// A directory at `target` below `root` with `mode` (parents made as needed).
pub fn dir_in(sys: &dyn Sys, root: BorrowedFd<'_>, target: &Path, mode: u32) -> Result<(), Errno> {
    let dir = ensure(sys, root, target, Leaf::Dir)?;
    let dir = sys.open_in_root(dir.as_fd(), c".", libc::O_DIRECTORY | libc::O_RDONLY)?;
    sys.fchmod(dir.as_fd(), mode)
}
