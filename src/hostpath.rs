//! Host paths a manifest names (bind sources, overlay layers and kept changes, root
//! directories, tarballs, OCI images, `extends` files): judged by what they resolve to, and
//! used as the very object judged.
//!
//! A repository can carry symlinks (`hh -> ..`), so the text of a path says nothing about where
//! it leads. [`resolve`] follows every symlink once, at validation: the plan holds resolved
//! paths only, with no symlink left in them, and the trust check judges those. What the sandbox
//! then uses is opened from the resolved path without following any symlink: a file it reads
//! through [`crate::input::open_resolved_file`], a directory it mounts through
//! [`HostFiles::open`], before the trust check, whose descriptors the mount step then mounts. A symlink swapped in meanwhile fails
//! the open (ELOOP) instead of leading elsewhere, and a mount is made from the descriptor
//! opened when the plan was judged, whatever the path names by then.

use crate::origin::Origin;
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use crate::plan::{HostUse, Plan};
use crate::sys::raw as sys;

/// What `path` (absolute) resolves to with every symlink followed: the real path of its
/// deepest existing ancestor, joined with the components that do not exist (yet), which are
/// cleaned as the kernel would resolve them once made (`.` dropped, `..` their parent).
pub fn resolve(path: &Path) -> PathBuf {
    let components: Vec<Component> = path.components().collect();
    for existing in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..existing].iter().collect();
        let Ok(mut resolved) = real_path(&prefix) else {
            continue;
        };
        for component in &components[existing..] {
            match component {
                Component::Normal(name) => resolved.push(name),
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        return resolved;
    }
    path.to_path_buf()
}

/// The real path of an existing `path`, every symlink followed, as the kernel resolves it:
/// one open and one read of its /proc/self/fd link. realpath(3) (`std::fs::canonicalize`)
/// reads the link of every component instead, and musl's maps and unmaps a page for its
/// answer: a launch resolves about ten paths.
pub fn real_path(path: &Path) -> std::io::Result<PathBuf> {
    let opened = cstring(path).and_then(|path| sys::openat2(None, &path, libc::O_PATH, 0))?;
    match fd_path(opened.as_fd()) {
        Ok(real) if real.is_absolute() => Ok(real),
        // No /proc, or a path outside this process's root.
        _ => std::fs::canonicalize(path),
    }
}

fn cstring(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// An O_PATH descriptor of a resolved path, following no symlink.
fn open_path(dir: Option<BorrowedFd<'_>>, path: &Path, resolve: u64) -> Result<OwnedFd, Errno> {
    sys::openat2(
        dir,
        &cstring(path)?,
        libc::O_PATH,
        resolve | libc::RESOLVE_NO_SYMLINKS,
    )
}

/// The path the kernel gives an open descriptor: where the object is now.
pub fn fd_path(fd: BorrowedFd<'_>) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Whether two descriptors are the same file (device and inode; an open descriptor keeps its
/// inode from being freed and its number reused).
pub fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<bool, Errno> {
    let (a, b) = (nix::sys::stat::fstat(a)?, nix::sys::stat::fstat(b)?);
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

/// A host path of the plan, opened: the object the trust check judged.
#[derive(Debug)]
pub struct Opened {
    /// O_PATH; for a kept overlay layer, of the deepest existing folder of the upper dir's
    /// parent, below which `missing` is still to be made.
    pub fd: OwnedFd,
    pub missing: Vec<OsString>,
}

/// Every host path the plan mounts, opened before the trust check judges the plan.
#[derive(Debug, Default)]
pub struct HostFiles {
    /// By the plan's path; `None` for an optional bind whose source is absent.
    opened: Vec<(PathBuf, Option<Opened>)>,
}

/// A host path that cannot be opened as the plan names it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} cannot be used: {}", path.display(), why(*errno))]
pub struct HostFileError {
    /// The manifest key that names it.
    pub key: Origin,
    pub path: PathBuf,
    pub errno: Errno,
}

fn why(errno: Errno) -> String {
    match errno {
        Errno::ELOOP | Errno::ESTALE => {
            "it was replaced (a symlink put in its path?) after `sandbox` resolved it".into()
        }
        Errno::ENOENT => "it disappeared after `sandbox` checked it".into(),
        errno => errno.desc().into(),
    }
}

impl HostFiles {
    /// Open every host path the plan mounts (its root directory, binds, overlay layers, and the
    /// folder of each kept overlay layer), following no symlink: the plan's paths are resolved.
    pub fn open(plan: &Plan) -> Result<HostFiles, HostFileError> {
        let mut files = HostFiles::default();
        for host in plan.host_paths() {
            if host.used == HostUse::Archive
                || files.opened.iter().any(|(path, _)| path == host.path)
            {
                continue;
            }
            let fail = |errno| HostFileError {
                key: host.key.clone(),
                path: host.path.to_path_buf(),
                errno,
            };
            let opened = match host.used {
                HostUse::Upper => Some(open_folder_of(host.path).map_err(fail)?),
                HostUse::Bind { optional, .. } => match open_judged(host.path) {
                    Err(Errno::ENOENT) if optional => None,
                    other => Some(other.map_err(fail)?),
                },
                _ => Some(open_judged(host.path).map_err(fail)?),
            };
            files.opened.push((host.path.to_path_buf(), opened));
        }
        Ok(files)
    }

    /// The opened path; `None` when it was absent (an optional bind) or not opened.
    pub fn get(&self, path: &Path) -> Option<&Opened> {
        self.opened
            .iter()
            .find(|(opened, _)| opened == path)
            .and_then(|(_, opened)| opened.as_ref())
    }
}

/// Open a resolved path and check that the kernel puts the object where the path says.
fn open_judged(path: &Path) -> Result<Opened, Errno> {
    let fd = open_path(None, path, 0)?;
    check_place(fd.as_fd(), path)?;
    Ok(Opened {
        fd,
        missing: Vec::new(),
    })
}

/// The kernel's path of `fd` must be `path`: a rename between the open and now moved it.
fn check_place(fd: BorrowedFd<'_>, path: &Path) -> Result<(), Errno> {
    match fd_path(fd) {
        Ok(place) if place == path => Ok(()),
        _ => Err(Errno::ESTALE),
    }
}

/// The deepest existing folder of a kept overlay layer's parent, and what is missing below it.
fn open_folder_of(upper: &Path) -> Result<Opened, Errno> {
    let parent = upper.parent().ok_or(Errno::EINVAL)?;
    let mut missing = Vec::new();
    let mut folder = parent;
    loop {
        match open_path(None, folder, 0) {
            Ok(fd) => {
                check_place(fd.as_fd(), folder)?;
                missing.reverse();
                return Ok(Opened { fd, missing });
            }
            Err(Errno::ENOENT) => {
                missing.push(folder.file_name().ok_or(Errno::ENOENT)?.to_os_string());
                folder = folder.parent().ok_or(Errno::ENOENT)?;
            }
            Err(errno) => return Err(errno),
        }
    }
}

/// Make (when missing) and open the folders `names` below `dir`, one by one, following no
/// symlink: what a kept overlay layer's folder becomes once the plan may run.
pub fn make_dirs(dir: BorrowedFd<'_>, names: &[OsString]) -> Result<OwnedFd, Errno> {
    let mut current = open_path(Some(dir), Path::new("."), libc::RESOLVE_BENEATH)?;
    for name in names {
        current = make_dir(current.as_fd(), Path::new(name))?;
    }
    Ok(current)
}

/// Make (when missing) and open the folder `name` in `dir`, following no symlink.
pub fn make_dir(dir: BorrowedFd<'_>, name: &Path) -> Result<OwnedFd, Errno> {
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
    match nix::sys::stat::mkdirat(dir, name, mode) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(errno) => return Err(errno),
    }
    open_dir_beneath(dir, name)
}

/// Open the folder `name` in `dir`, following no symlink.
pub fn open_dir_beneath(dir: BorrowedFd<'_>, name: &Path) -> Result<OwnedFd, Errno> {
    sys::open_beneath_no_symlinks(dir, &cstring(name)?, libc::O_PATH | libc::O_DIRECTORY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_real_path_is_the_one_realpath_gives() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("a/b")).unwrap();
        symlink("a/b", base.join("link")).unwrap();
        symlink("missing", base.join("dangling")).unwrap();
        for path in [base.join("link"), base.join("a/./b/.."), base.to_path_buf()] {
            assert_eq!(
                real_path(&path).unwrap(),
                std::fs::canonicalize(&path).unwrap()
            );
        }
        for path in [base.join("dangling"), base.join("nothing")] {
            assert_eq!(
                real_path(&path).unwrap_err().kind(),
                std::io::ErrorKind::NotFound
            );
        }
    }

    #[test]
    fn resolving_follows_every_symlink_and_keeps_what_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let project = base.join("project");
        std::fs::create_dir_all(project.join("data")).unwrap();
        std::fs::create_dir_all(base.join("victim")).unwrap();
        symlink("..", project.join("up")).unwrap();
        symlink("../victim", project.join("relative")).unwrap();
        symlink(base.join("victim"), project.join("absolute")).unwrap();
        symlink(&project, base.join("linked-project")).unwrap();

        assert_eq!(resolve(&project.join("up")), base);
        assert_eq!(resolve(&project.join("up/victim")), base.join("victim"));
        assert_eq!(resolve(&project.join("relative/x")), base.join("victim/x"));
        assert_eq!(resolve(&project.join("absolute")), base.join("victim"));
        assert_eq!(
            resolve(&base.join("linked-project/data")),
            project.join("data")
        );
        assert_eq!(
            resolve(&project.join("./data/../data")),
            project.join("data")
        );
        assert_eq!(
            resolve(&project.join("new/deeper/../x")),
            project.join("new/x"),
            "missing components resolve as they will once made"
        );
        assert_eq!(
            resolve(&project.join("new/../../victim")),
            base.join("victim")
        );
        assert_eq!(resolve(Path::new("/")), PathBuf::from("/"));
    }

    #[test]
    fn opened_paths_are_the_resolved_ones_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::write(base.join("file"), "x").unwrap();
        symlink("file", base.join("link")).unwrap();
        let opened = open_judged(&base.join("file")).unwrap();
        assert_eq!(fd_path(opened.fd.as_fd()).unwrap(), base.join("file"));
        assert_eq!(open_judged(&base.join("link")).unwrap_err(), Errno::ELOOP);
    }

    #[test]
    fn a_kept_layer_is_opened_at_its_deepest_existing_folder_and_made_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let opened = open_folder_of(&base.join("a/b/upper")).unwrap();
        assert_eq!(fd_path(opened.fd.as_fd()).unwrap(), base);
        assert_eq!(opened.missing, [OsString::from("a"), OsString::from("b")]);
        let folder = make_dirs(opened.fd.as_fd(), &opened.missing).unwrap();
        assert_eq!(fd_path(folder.as_fd()).unwrap(), base.join("a/b"));
        // A symlink planted where a folder is to be made is not followed.
        std::fs::create_dir(base.join("elsewhere")).unwrap();
        symlink(base.join("elsewhere"), base.join("a/b/upper")).unwrap();
        assert_eq!(
            make_dir(folder.as_fd(), Path::new("upper")).unwrap_err(),
            Errno::ELOOP
        );
        make_dir(folder.as_fd(), Path::new("work")).unwrap();
        assert!(
            make_dir(folder.as_fd(), Path::new("work")).is_ok(),
            "made once, then opened"
        );
    }
}
