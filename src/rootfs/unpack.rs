//! Unpacking archives into a directory that nothing in them can leave.
//!
//! Every entry is made relative to a descriptor of the tree's root: its parent directory is
//! opened with openat2(RESOLVE_IN_ROOT), so a symlink met on the way (`etc -> /etc`, then
//! `etc/passwd`) resolves inside the tree, never on the host; the entry itself is made with the
//! *at() calls on that parent, which never follow a symlink in the last component. A `..`
//! component is refused, a leading `/` ignored (as GNU tar does), a hard link may only name a
//! file already in the tree. Sizes are checked before any data is written, so a header that
//! claims a petabyte (a sparse file, or a bomb) is refused, and runs of zeros become holes.
//!
//! As root, entries keep their owners (the executor id-maps the tree, so they appear as the
//! same ids inside), device nodes are made (inert: the root is mounted nodev) and file
//! capabilities are kept. Rootless, every file is the caller's, which the sandbox's map shows as
//! its own user (root by default); device nodes are skipped and set-id bits dropped, since the
//! ids they would grant are not the archive's.
//!
//! Directory modes and times are applied last, deepest first: a read-only directory must still
//! take its entries, and adding entries changes a directory's mtime.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use tar::EntryType;

use crate::escape::escaped;
use crate::sys::{FileKind, Sys};

/// OCI whiteouts: `.wh.NAME` deletes NAME from the layers below; this name in a directory makes
/// it opaque (its lower contents are gone). Other `.wh..wh.` names are aufs bookkeeping.
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const CHUNK: usize = 128 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("entry \"{entry}\": {why}")]
pub struct UnpackError {
    /// The entry's name, escaped: it is the archive's, and goes into messages.
    pub entry: String,
    pub why: Why,
}

#[derive(Debug, thiserror::Error)]
pub enum Why {
    #[error("its path leaves the root (`..`)")]
    Traversal,
    #[error("its path holds a NUL byte")]
    Nul,
    #[error("it is a hard link to \"{0}\", which leaves the root")]
    LinkTraversal(String),
    #[error("it whites out \"{0}\", which names no file of its folder: the layer is damaged")]
    BadWhiteout(String),
    #[error(
        "it whites out a path through a symlink, which would delete where the link leads: the layer is damaged"
    )]
    WhiteoutThroughSymlink,
    #[error("it is a hard link without a target")]
    NoLinkTarget,
    #[error(
        "it claims {size} bytes, more than the {left} bytes left for this root in the cache's file system"
    )]
    TooLarge { size: u64, left: u64 },
    #[error("it holds {actual} bytes of data where its header says {size}")]
    Truncated { size: u64, actual: u64 },
    #[error("{action}: {errno}")]
    Sys { action: &'static str, errno: Errno },
    #[error("the archive is malformed: {0}")]
    Malformed(io::Error),
}

/// Who unpacks: root keeps owners and device nodes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub as_root: bool,
    /// Bytes that the entries' declared sizes may add up to (the file system's free space).
    pub budget: u64,
}

/// Mode and times of a directory, applied by [`Tree::finish`].
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: i64,
}

/// Where an entry is made: its parent directory, opened, and its name there.
#[derive(Clone, Copy)]
struct At<'a> {
    parent: BorrowedFd<'a>,
    name: &'a CStr,
}

/// A directory being filled from archives, one after another (the layers of an image).
pub struct Tree<'s> {
    sys: &'s dyn Sys,
    root: OwnedFd,
    options: Options,
    dirs: HashMap<PathBuf, DirMeta>,
    /// The paths the current layer made: whiteouts only hide what lower layers made.
    layer: HashSet<PathBuf>,
    buffer: Vec<u8>,
}

trait OrWhy<T> {
    fn or_why(self, action: &'static str) -> Result<T, Why>;
}

impl<T> OrWhy<T> for Result<T, Errno> {
    fn or_why(self, action: &'static str) -> Result<T, Why> {
        self.map_err(|errno| Why::Sys { action, errno })
    }
}

fn cpath(path: impl AsRef<OsStr>) -> CString {
    let bytes = path.as_ref().as_bytes();
    CString::new(if bytes.is_empty() { b"." } else { bytes }).expect("tar paths hold no NUL")
}

/// The entry's path, relative, without `.` and empty components; `..` is refused, and so is a
/// NUL byte (a pax `path` record may hold one).
pub fn clean(raw: &[u8]) -> Result<PathBuf, Why> {
    if raw.contains(&0) {
        return Err(Why::Nul);
    }
    let mut path = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(Why::Traversal),
            name => path.push(OsStr::from_bytes(name)),
        }
    }
    Ok(path)
}

/// A cleaned, non-empty path's parent and its name there.
fn split(path: &Path) -> (&Path, CString) {
    let name = path.file_name().expect("a cleaned, non-empty path");
    (path.parent().unwrap_or(Path::new("")), cpath(name))
}

impl<'s> Tree<'s> {
    pub fn new(sys: &'s dyn Sys, root: OwnedFd, options: Options) -> Tree<'s> {
        Tree {
            sys,
            root,
            options,
            dirs: HashMap::new(),
            layer: HashSet::new(),
            buffer: vec![0; CHUNK],
        }
    }

    /// Unpack one archive over what the tree holds; `whiteouts` for an OCI layer.
    pub fn apply(&mut self, archive: impl Read, whiteouts: bool) -> Result<(), UnpackError> {
        self.layer.clear();
        let mut archive = tar::Archive::new(archive);
        let mut last = String::from("(the first entry)");
        let entries = archive.entries().map_err(|e| UnpackError {
            entry: last.clone(),
            why: Why::Malformed(e),
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|e| UnpackError {
                entry: format!("after {last}"),
                why: Why::Malformed(e),
            })?;
            last = escaped(&*entry.path_bytes()).to_string();
            self.entry(&mut entry, whiteouts)
                .map_err(|why| UnpackError {
                    entry: last.clone(),
                    why,
                })?;
        }
        Ok(())
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        whiteouts: bool,
    ) -> Result<(), Why> {
        let path = clean(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        if path.as_os_str().is_empty() {
            // The archive's "./": the tree's root itself.
            if kind.is_dir() {
                let meta = self.meta(entry)?;
                self.dirs.insert(path, meta);
            }
            return Ok(());
        }
        let (parent_path, name) = split(&path);
        if whiteouts && let Some(hidden) = name.to_bytes().strip_prefix(WHITEOUT.as_bytes()) {
            return self.whiteout(parent_path, &name, hidden);
        }
        let parent = self
            .open_dir(parent_path, true)
            .or_why("opening its parent directory")?;
        let parent = parent.as_fd();
        let at = At {
            parent,
            name: &name,
        };
        let existing = self.sys.stat(parent, &name).map(|stat| stat.kind);
        let existing_dir = existing == Ok(FileKind::Dir);
        if kind.is_dir() && existing_dir {
            let meta = self.meta(entry)?;
            self.chown(at, entry)?;
            self.dirs.insert(path.clone(), meta);
            self.layer.insert(path);
            return Ok(());
        }
        if existing.is_ok() {
            remove(self.sys, parent, &name, existing_dir).or_why("replacing what the path held")?;
        }
        match kind {
            EntryType::Directory => {
                // Writable by its owner until [`finish`] gives it its mode.
                self.sys.mkdirat(parent, &name, 0o700).or_why("mkdir")?;
                self.chown(at, entry)?;
                self.xattrs(at, entry, true)?;
                let meta = self.meta(entry)?;
                self.dirs.insert(path.clone(), meta);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(at, entry)?;
            }
            EntryType::Symlink => self.symlink(at, entry)?,
            EntryType::Link => self.hard_link(at, entry)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => self.node(at, entry)?,
            // Global pax headers and unknown types carry nothing to make.
            _ => return Ok(()),
        }
        self.layer.insert(path);
        Ok(())
    }

    fn symlink<R: Read>(&self, at: At<'_>, entry: &tar::Entry<'_, R>) -> Result<(), Why> {
        let target = entry.link_name_bytes().ok_or(Why::NoLinkTarget)?;
        let target = CString::new(target.into_owned()).map_err(|_| Why::Nul)?;
        self.sys
            .symlinkat(&target, at.parent, at.name)
            .or_why("symlink")?;
        self.chown(at, entry)?;
        let mtime = self.mtime(entry)?;
        self.sys
            .set_mtime(at.parent, at.name, mtime)
            .or_why("setting the symlink's time")
    }

    /// A hard link, to a file already in the tree: its target is cleaned as entries' paths are.
    fn hard_link<R: Read>(&self, at: At<'_>, entry: &tar::Entry<'_, R>) -> Result<(), Why> {
        let raw = entry.link_name_bytes().ok_or(Why::NoLinkTarget)?;
        let target = clean(&raw).map_err(|_| Why::LinkTraversal(escaped(&*raw).to_string()))?;
        if target.as_os_str().is_empty() {
            return Err(Why::NoLinkTarget);
        }
        let (target_parent, target_name) = split(&target);
        let from = self
            .open_dir(target_parent, false)
            .or_why("opening the hard link's target directory")?;
        // Not following a symlink: a link to a symlink links the symlink, as tar does.
        self.sys
            .linkat((from.as_fd(), &target_name), (at.parent, at.name))
            .or_why("hard link (its target must be an earlier file of the archive)")
    }

    /// A device node (as root; rootless, the kernel refuses mknod of one) or a fifo.
    fn node<R: Read>(&self, at: At<'_>, entry: &tar::Entry<'_, R>) -> Result<(), Why> {
        let header = entry.header();
        let (kind, device) = match header.entry_type() {
            EntryType::Char => (libc::S_IFCHR, true),
            EntryType::Block => (libc::S_IFBLK, true),
            _ => (libc::S_IFIFO, false),
        };
        if device && !self.options.as_root {
            return Ok(());
        }
        let dev = if device {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            libc::makedev(major, minor)
        } else {
            0
        };
        self.sys
            .mknodat(at.parent, at.name, kind | 0o600, dev)
            .or_why("mknod")?;
        self.chown(at, entry)?;
        let mode = self.mode(entry)?;
        self.sys.fchmodat(at.parent, at.name, mode).or_why("chmod")
    }

    fn file<R: Read>(&mut self, at: At<'_>, entry: &mut tar::Entry<'_, R>) -> Result<(), Why> {
        let sys = self.sys;
        let size = entry.size();
        if size > self.options.budget {
            return Err(Why::TooLarge {
                size,
                left: self.options.budget,
            });
        }
        self.options.budget -= size;
        let xattrs = xattrs_of(entry)?;
        let mode = self.mode(entry)?;
        let mtime = self.mtime(entry)?;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
        let file = sys
            .openat(Some(at.parent), at.name, flags, 0o600)
            .or_why("creating the file")?;
        let file = file.as_fd();
        let mut written = 0u64;
        loop {
            let n = read_full(entry, &mut self.buffer).map_err(Why::Malformed)?;
            if n == 0 {
                break;
            }
            let chunk = &self.buffer[..n];
            // Zeros become a hole: a sparse file stays sparse, and so does a bomb of zeros.
            if chunk.iter().any(|&b| b != 0) {
                sys.write_all_at(file, chunk, written)
                    .or_why("writing the file")?;
            }
            written += n as u64;
        }
        if written != size {
            return Err(Why::Truncated {
                size,
                actual: written,
            });
        }
        sys.ftruncate(file, size)
            .or_why("setting the file's size")?;
        // chown before chmod and the xattrs: it clears set-id bits and file capabilities.
        if self.options.as_root {
            let (uid, gid) = ids(entry.header())?;
            sys.chown(file, c"", uid, gid).or_why("chown")?;
        }
        sys.fchmod(file, mode).or_why("chmod")?;
        set_xattrs(sys, file, &xattrs)?;
        sys.set_mtime(file, c"", mtime)
            .or_why("setting the file's time")
    }

    /// Apply a whiteout entry: remove what a lower layer made at the path it names. The path
    /// is taken exactly as spelled, below the tree's root: a whiteout that names no file
    /// (`.wh..`, `.wh...`, `.wh.`) or reaches its target through a symlink is a damaged or
    /// hostile layer, refused before anything is removed (`.wh...` at the top would otherwise
    /// name the cache's folder of unpacks, and a symlinked folder a folder elsewhere).
    fn whiteout(&mut self, parent_path: &Path, name: &CStr, hidden: &[u8]) -> Result<(), Why> {
        let opaque = name.to_bytes() == OPAQUE.as_bytes();
        if !opaque && hidden.starts_with(WHITEOUT.as_bytes()) {
            // aufs bookkeeping (.wh..wh.plnk and the like): nothing to apply.
            return Ok(());
        }
        if !opaque && matches!(hidden, b"" | b"." | b"..") {
            return Err(Why::BadWhiteout(escaped(hidden).to_string()));
        }
        let parent = match self.open_exact(parent_path) {
            Ok(parent) => parent,
            // Nothing below to hide.
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(Errno::ELOOP | Errno::EXDEV) => return Err(Why::WhiteoutThroughSymlink),
            Err(errno) => {
                return Err(Why::Sys {
                    action: "opening the whiteout's directory",
                    errno,
                });
            }
        };
        let parent = parent.as_fd();
        if opaque {
            let children = self
                .sys
                .list_dir(parent)
                .or_why("listing the opaque directory")?;
            for child in children {
                if self.layer.contains(&parent_path.join(&child)) {
                    continue;
                }
                let child = cpath(child);
                let is_dir = is_dir_at(self.sys, parent, &child);
                remove(self.sys, parent, &child, is_dir).or_why("emptying the opaque directory")?;
            }
            return Ok(());
        }
        if self
            .layer
            .contains(&parent_path.join(OsStr::from_bytes(hidden)))
        {
            return Ok(());
        }
        let hidden = cpath(OsStr::from_bytes(hidden));
        match self.sys.stat(parent, &hidden) {
            Ok(stat) => remove(self.sys, parent, &hidden, stat.kind == FileKind::Dir)
                .or_why("removing the whited-out path"),
            Err(Errno::ENOENT) => Ok(()),
            Err(errno) => Err(Why::Sys {
                action: "looking up the whited-out path",
                errno,
            }),
        }
    }

    /// A directory of the tree by its exact path: a symlink anywhere on the way is ELOOP.
    fn open_exact(&self, path: &Path) -> Result<OwnedFd, Errno> {
        let flags = libc::O_DIRECTORY | libc::O_RDONLY;
        let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
        self.sys
            .openat2(Some(self.root.as_fd()), &cpath(path), flags, resolve)
    }

    /// A directory of the tree, resolved inside it; missing ones are made when `create`.
    fn open_dir(&self, path: &Path, create: bool) -> Result<OwnedFd, Errno> {
        let flags = libc::O_DIRECTORY | libc::O_RDONLY;
        match self
            .sys
            .open_in_root(self.root.as_fd(), &cpath(path), flags)
        {
            Err(Errno::ENOENT) if create && !path.as_os_str().is_empty() => {
                let (parent_path, name) = split(path);
                let parent = self.open_dir(parent_path, true)?;
                match self.sys.mkdirat(parent.as_fd(), &name, 0o755) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(errno),
                }
                // A name that exists but does not resolve is a dangling symlink: refused below.
                self.sys
                    .open_in_root(self.root.as_fd(), &cpath(path), flags)
            }
            other => other,
        }
    }

    fn mode<R: Read>(&self, entry: &tar::Entry<'_, R>) -> Result<u32, Why> {
        let mode = entry.header().mode().map_err(Why::Malformed)? & 0o7777;
        Ok(if self.options.as_root {
            mode
        } else {
            mode & 0o1777
        })
    }

    fn mtime<R: Read>(&self, entry: &tar::Entry<'_, R>) -> Result<i64, Why> {
        let mtime = entry.header().mtime().map_err(Why::Malformed)?;
        Ok(i64::try_from(mtime).unwrap_or(i64::MAX))
    }

    fn meta<R: Read>(&self, entry: &tar::Entry<'_, R>) -> Result<DirMeta, Why> {
        Ok(DirMeta {
            mode: self.mode(entry)?,
            mtime: self.mtime(entry)?,
        })
    }

    fn chown<R: Read>(&self, at: At<'_>, entry: &tar::Entry<'_, R>) -> Result<(), Why> {
        if !self.options.as_root {
            return Ok(());
        }
        let (uid, gid) = ids(entry.header())?;
        self.sys.chown(at.parent, at.name, uid, gid).or_why("chown")
    }

    fn xattrs<R: Read>(
        &self,
        at: At<'_>,
        entry: &mut tar::Entry<'_, R>,
        dir: bool,
    ) -> Result<(), Why> {
        let xattrs = xattrs_of(entry)?;
        if xattrs.is_empty() {
            return Ok(());
        }
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | if dir { libc::O_DIRECTORY } else { 0 };
        let fd = self
            .sys
            .openat(Some(at.parent), at.name, flags, 0)
            .or_why("opening it for its xattrs")?;
        set_xattrs(self.sys, fd.as_fd(), &xattrs)
    }

    /// Give every directory its mode and time, deepest first.
    pub fn finish(mut self) -> Result<(), UnpackError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, meta) in dirs {
            let fail = |errno| UnpackError {
                entry: escaped(&path).to_string(),
                why: Why::Sys {
                    action: "setting the directory's mode and time",
                    errno,
                },
            };
            // By its exact path: a folder a later entry replaced with a symlink, or moved
            // under one, is not the folder these are the mode and time of.
            let dir = match self.open_exact(&path) {
                Ok(dir) => dir,
                // Replaced by a later entry or layer.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(errno) => return Err(fail(errno)),
            };
            self.sys.fchmod(dir.as_fd(), meta.mode).map_err(fail)?;
            self.sys
                .set_mtime(dir.as_fd(), c"", meta.mtime)
                .map_err(fail)?;
        }
        Ok(())
    }
}

fn ids(header: &tar::Header) -> Result<(u32, u32), Why> {
    let uid = header.uid().map_err(Why::Malformed)?;
    let gid = header.gid().map_err(Why::Malformed)?;
    let id = |id: u64| {
        u32::try_from(id)
            .map_err(|_| Why::Malformed(io::Error::other(format!("id {id} out of range"))))
    };
    Ok((id(uid)?, id(gid)?))
}

/// The entry's extended attributes (pax `SCHILY.xattr.NAME` records).
fn xattrs_of<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>, Why> {
    let Some(extensions) = entry.pax_extensions().map_err(Why::Malformed)? else {
        return Ok(Vec::new());
    };
    let mut xattrs = Vec::new();
    for extension in extensions {
        let extension = extension.map_err(Why::Malformed)?;
        if let Ok(key) = extension.key()
            && let Some(name) = key.strip_prefix("SCHILY.xattr.")
        {
            xattrs.push((name.to_string(), extension.value_bytes().to_vec()));
        }
    }
    Ok(xattrs)
}

/// Set what the kernel allows: rootless, `security.capability` and `trusted.*` are refused
/// (EPERM) and skipped; so is a name the file system does not support.
fn set_xattrs(
    sys: &dyn Sys,
    file: BorrowedFd<'_>,
    xattrs: &[(String, Vec<u8>)],
) -> Result<(), Why> {
    for (name, value) in xattrs {
        match sys.set_xattr(file, name, value) {
            Ok(()) | Err(Errno::EPERM | Errno::EOPNOTSUPP | Errno::EACCES) => {}
            Err(errno) => {
                return Err(Why::Sys {
                    action: "setting an extended attribute",
                    errno,
                });
            }
        }
    }
    Ok(())
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn is_dir_at(sys: &dyn Sys, dir: BorrowedFd<'_>, name: &CStr) -> bool {
    sys.stat(dir, name)
        .is_ok_and(|stat| stat.kind == FileKind::Dir)
}

/// Remove `name` in `parent`, a whole directory tree included, without following a symlink.
/// Directories are made writable first: a rootless tree may hold read-only ones.
pub fn remove(
    sys: &dyn Sys,
    parent: BorrowedFd<'_>,
    name: &CStr,
    is_dir: bool,
) -> Result<(), Errno> {
    if !is_dir {
        return sys.unlinkat(parent, name, false);
    }
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let dir = sys.openat(Some(parent), name, flags, 0)?;
    let _ = sys.fchmod(dir.as_fd(), 0o700);
    for child in sys.list_dir(dir.as_fd())? {
        let child = cpath(child);
        let child_is_dir = is_dir_at(sys, dir.as_fd(), &child);
        remove(sys, dir.as_fd(), &child, child_is_dir)?;
    }
    sys.unlinkat(parent, name, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::KERNEL;
    use crate::sys::fake::Fake;

    /// A layer built in memory; `raw` names are written as they are (`..` and all).
    struct Layer(tar::Builder<Vec<u8>>);

    impl Layer {
        fn new() -> Layer {
            Layer(tar::Builder::new(Vec::new()))
        }

        fn entry(&mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            header.set_size(data.len() as u64);
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        fn dir(&mut self, name: &str) -> &mut Self {
            self.entry(EntryType::Directory, name.as_bytes(), b"", b"")
        }

        fn file(&mut self, name: &str) -> &mut Self {
            self.entry(EntryType::Regular, name.as_bytes(), b"", b"data")
        }

        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            self.entry(EntryType::Symlink, name.as_bytes(), target.as_bytes(), b"")
        }

        /// The archive so far; the layer starts again empty.
        fn bytes(&mut self) -> Vec<u8> {
            std::mem::replace(&mut self.0, tar::Builder::new(Vec::new()))
                .into_inner()
                .unwrap()
        }
    }

    /// A tree in `scratch/tree`, next to a folder standing for another unpack in progress.
    fn tree(scratch: &Path) -> Tree<'static> {
        for dir in ["tree", "other/etc"] {
            std::fs::create_dir_all(scratch.join(dir)).unwrap();
        }
        std::fs::write(scratch.join("other/etc/passwd"), "root").unwrap();
        let root = std::fs::File::open(scratch.join("tree")).unwrap().into();
        Tree::new(
            &KERNEL,
            root,
            Options {
                as_root: false,
                budget: 1 << 30,
            },
        )
    }

    /// Whiteouts that name no file of their folder, or reach it through a symlink, are
    /// refused and remove nothing: not the other unpack beside the tree (`.wh...` at the top
    /// named the folder of all unpacks), not what a symlink leads to.
    #[test]
    fn hostile_whiteouts_are_refused_and_remove_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path();
        let mut lower = Layer::new();
        lower
            .dir("real")
            .file("real/keep")
            .dir("real/sub")
            .file("real/sub/keep")
            .symlink("link", "real")
            .symlink("abs", "/real")
            .symlink("up", "../other");
        let lower = lower.bytes();
        for (name, refused) in [
            (".wh..", "BadWhiteout"),
            (".wh...", "BadWhiteout"),
            (".wh.", "BadWhiteout"),
            ("real/.wh..", "BadWhiteout"),
            ("real/.wh...", "BadWhiteout"),
            ("link/.wh.keep", "WhiteoutThroughSymlink"),
            ("abs/.wh.keep", "WhiteoutThroughSymlink"),
            ("abs/sub/.wh.keep", "WhiteoutThroughSymlink"),
            ("up/.wh.etc", "WhiteoutThroughSymlink"),
            ("link/.wh..wh..opq", "WhiteoutThroughSymlink"),
            ("up/.wh..wh..opq", "WhiteoutThroughSymlink"),
        ] {
            let mut tree = tree(scratch);
            tree.apply(&lower[..], true).unwrap();
            let mut upper = Layer::new();
            upper
                .file("new")
                .entry(EntryType::Regular, name.as_bytes(), b"", b"");
            let error = tree.apply(&upper.bytes()[..], true).unwrap_err();
            assert_eq!(error.entry, name, "{name}");
            assert!(
                format!("{:?}", error.why).starts_with(refused),
                "{name}: {error}"
            );
            for kept in ["tree/real/keep", "tree/real/sub/keep", "other/etc/passwd"] {
                assert!(scratch.join(kept).exists(), "{name} removed {kept}");
            }
            std::fs::remove_dir_all(scratch.join("tree")).unwrap();
        }
    }

    #[test]
    fn whiteouts_remove_what_lower_layers_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = tree(dir.path());
        let mut lower = Layer::new();
        lower
            .dir("a")
            .file("a/x")
            .file("a/y")
            .dir("b")
            .file("b/z")
            .file("c");
        tree.apply(&lower.bytes()[..], true).unwrap();
        let mut upper = Layer::new();
        upper
            .file(".wh.c")
            .dir("a")
            .file("a/.wh..wh..opq")
            .file("a/new")
            .file("b/.wh.z")
            .file(".wh..wh.plnk");
        tree.apply(&upper.bytes()[..], true).unwrap();
        let tree_dir = dir.path().join("tree");
        let mut left: Vec<String> = ["a", "a/x", "a/y", "a/new", "b", "b/z", "c"]
            .into_iter()
            .filter(|p| tree_dir.join(p).exists())
            .map(String::from)
            .collect();
        left.sort();
        assert_eq!(left, ["a", "a/new", "b"]);
    }

    /// A name with terminal controls and bytes that are not UTF-8 is shown escaped.
    #[test]
    fn an_entry_name_is_escaped_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = tree(dir.path());
        let mut layer = Layer::new();
        layer.entry(EntryType::Regular, b"../\x1b]0;owned\x07\xff", b"", b"");
        let error = tree.apply(&layer.bytes()[..], false).unwrap_err();
        let message = error.to_string();
        assert_eq!(
            message,
            "entry \"../\\x1b]0;owned\\x07\\xff\": its path leaves the root (`..`)"
        );
    }

    // Through the fake: which calls an archive's entries become.

    /// A tree over `sys`, every name in it absent until made.
    fn faked(sys: &Fake, as_root: bool, budget: u64) -> Tree<'_> {
        sys.absent("");
        Tree::new(sys, sys.descriptor("root"), Options { as_root, budget })
    }

    /// An entry of `kind` owned by `uid`:`gid` with `mode`, as a one-entry archive.
    fn owned(
        kind: EntryType,
        name: &str,
        mode: u32,
        (uid, gid): (u64, u64),
        data: &[u8],
    ) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        header.set_device_major(4).unwrap();
        header.set_device_minor(1).unwrap();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, data).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_path_or_hard_link_out_of_the_root_makes_nothing() {
        let sys = Fake::new();
        let mut tree = faked(&sys, true, 1 << 20);
        let mut layer = Layer::new();
        layer.entry(EntryType::Regular, b"a/../../etc/passwd", b"", b"x");
        let error = tree.apply(&layer.bytes()[..], false).unwrap_err();
        assert!(matches!(error.why, Why::Traversal), "{error}");
        assert_eq!(sys.calls(), Vec::<String>::new());
        layer.entry(EntryType::Link, b"shadow", b"../etc/shadow", b"");
        let error = tree.apply(&layer.bytes()[..], false).unwrap_err();
        assert!(matches!(error.why, Why::LinkTraversal(_)), "{error}");
        assert_eq!(sys.calls_of("linkat"), Vec::<String>::new());
    }

    #[test]
    fn every_parent_is_opened_in_the_root_so_a_symlink_cannot_lead_out() {
        let sys = Fake::new();
        let mut tree = faked(&sys, false, 1 << 20);
        let mut layer = Layer::new();
        layer
            .symlink("etc", "/etc")
            .entry(EntryType::Regular, b"etc/passwd", b"", b"root");
        tree.apply(&layer.bytes()[..], false).unwrap();
        let calls = sys.calls();
        let at = |call: &str| {
            calls
                .iter()
                .position(|c| c == call)
                .unwrap_or_else(|| panic!("no {call}: {calls:#?}"))
        };
        assert!(at("symlinkat(root/./etc -> /etc)") < at("openat2(root/etc, in root)"));
        assert!(at("openat2(root/etc, in root)") < at("openat(root/etc/passwd, create 600)"));
        assert!(
            at("openat(root/etc/passwd, create 600)")
                < at("pwrite(root/etc/passwd, \"root\" at 0)")
        );
        let opened = sys.calls_of("openat2");
        assert!(
            opened.iter().all(|c| c.ends_with(", in root)")),
            "{opened:?}"
        );
    }

    /// The calls unpacking `archive` makes, as root or not.
    fn unpacked(archive: &[u8], as_root: bool) -> Fake {
        let sys = Fake::new();
        faked(&sys, as_root, 1 << 20).apply(archive, false).unwrap();
        sys
    }

    /// The calls from the first that starts with `first` on.
    fn calls_from(sys: &Fake, first: &str) -> Vec<String> {
        let calls = sys.calls();
        let at = calls.iter().position(|c| c.starts_with(first)).unwrap();
        calls[at..].to_vec()
    }

    #[test]
    fn device_nodes_are_made_only_as_root_with_their_owner_and_mode() {
        let tty = owned(EntryType::Char, "tty1", 0o620, (0, 5), b"");
        let rootless = unpacked(&tty, false);
        assert_eq!(rootless.calls_of("mknodat"), Vec::<String>::new());
        assert_eq!(
            calls_from(&unpacked(&tty, true), "mknodat("),
            [
                "mknodat(root/./tty1, 20600, 0x401)",
                "chown(root/./tty1, 0:5)",
                "fchmodat(root/./tty1, 620)"
            ]
        );
        // A fifo is no device: made rootless too.
        let fifo = owned(EntryType::Fifo, "pipe", 0o644, (0, 0), b"");
        let made = unpacked(&fifo, false).calls_of("mknodat");
        assert_eq!(made, ["mknodat(root/./pipe, 10600, 0x0)"]);
    }

    #[test]
    fn owners_and_set_id_bits_are_kept_only_as_root_and_chown_comes_before_chmod() {
        let su = owned(EntryType::Regular, "su", 0o4755, (0, 0), b"binary");
        assert_eq!(
            calls_from(&unpacked(&su, true), "ftruncate("),
            [
                "ftruncate(root/./su, 6)",
                "chown(root/./su, 0:0)",
                "fchmod(root/./su, 4755)",
                "set_mtime(root/./su, 1700000000)"
            ]
        );
        let rootless = unpacked(&su, false);
        assert_eq!(rootless.calls_of("chown"), Vec::<String>::new());
        assert_eq!(rootless.calls_of("fchmod"), ["fchmod(root/./su, 755)"]);
    }

    #[test]
    fn an_entry_larger_than_the_budget_is_refused_before_its_file_is_made() {
        let big = owned(EntryType::Regular, "big", 0o644, (0, 0), b"1234");
        let sys = Fake::new();
        let error = faked(&sys, false, 3).apply(&big[..], false).unwrap_err();
        assert!(
            matches!(error.why, Why::TooLarge { size: 4, left: 3 }),
            "{error}"
        );
        assert_eq!(sys.calls_of("openat"), Vec::<String>::new());
    }

    #[test]
    fn a_whiteout_through_a_symlink_removes_nothing() {
        let sys = Fake::new();
        sys.fail("openat2", 0, Errno::ELOOP);
        let mut layer = Layer::new();
        layer.entry(EntryType::Regular, b"link/.wh.keep", b"", b"");
        let error = faked(&sys, true, 1 << 20)
            .apply(&layer.bytes()[..], true)
            .unwrap_err();
        assert!(matches!(error.why, Why::WhiteoutThroughSymlink), "{error}");
        assert_eq!(sys.calls(), ["openat2(root/link, beneath, no symlinks)"]);
    }

    #[test]
    fn directories_get_their_mode_and_time_last_and_deepest_first() {
        let sys = Fake::new();
        let mut tree = faked(&sys, false, 1 << 20);
        let mut layer = Layer::new();
        layer.dir("a").dir("a/b");
        tree.apply(&layer.bytes()[..], false).unwrap();
        assert_eq!(
            sys.calls_of("mkdirat"),
            ["mkdirat(root/./a, 700)", "mkdirat(root/a/b, 700)"]
        );
        tree.finish().unwrap();
        let calls = sys.calls();
        let finished = calls.iter().position(|c| c.contains("beneath")).unwrap();
        assert_eq!(
            calls[finished..],
            [
                "openat2(root/a/b, beneath, no symlinks)",
                "fchmod(root/a/b, 755)",
                "set_mtime(root/a/b, 0)",
                "openat2(root/a, beneath, no symlinks)",
                "fchmod(root/a, 755)",
                "set_mtime(root/a, 0)"
            ]
        );
    }

    #[test]
    fn paths_are_cleaned_and_traversal_refused() {
        assert_eq!(clean(b"./a//b/./c").unwrap(), PathBuf::from("a/b/c"));
        assert_eq!(clean(b"/etc/passwd").unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(clean(b"./").unwrap(), PathBuf::new());
        assert!(matches!(clean(b"a/../../etc"), Err(Why::Traversal)));
        assert!(matches!(clean(b".."), Err(Why::Traversal)));
        assert!(matches!(clean(b"a\0/b"), Err(Why::Nul)));
        assert_eq!(clean(b"a/..b/c..").unwrap(), PathBuf::from("a/..b/c.."));
    }
}
