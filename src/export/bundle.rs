//! Writing the bundle folder: `config.json`, `rootfs/` and the files and overlay layers the
//! config refers to.
//!
//! Paths the plan creates inside the root (symlinks, folders) are made with the mount step's
//! helpers ([`crate::sys::beneath`]), every lookup `openat2(RESOLVE_IN_ROOT)` below rootfs/: a
//! symlink in a copied root (`/etc -> /host/etc`) resolves inside the copy and can never send a
//! write onto the host.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use serde_json::Value;

use super::oci::{Export, IdShift, RootContent, RootEntry};
use crate::plan::IdMapping;
use crate::sys::KERNEL;
use crate::sys::beneath::{dir_in, symlink_in};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{} is not empty: export into a new or empty folder", .0.display())]
    NotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("making {} in rootfs/: {errno}", path.display())]
    Entry { path: PathBuf, errno: Errno },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What writing the bundle could not carry over, for the report.
#[derive(Debug, Default)]
pub struct Written {
    /// Device nodes, fifos and sockets of a copied root that only root may create.
    pub skipped_nodes: usize,
}

/// `config.json` as written: the spec, with its sets and maps in a fixed order (oci-spec keeps
/// capabilities in hash sets and annotations in hash maps), so the same plan always writes the
/// same bytes.
pub fn config_json(export: &Export) -> Value {
    let mut value = serde_json::to_value(&export.spec).expect("a runtime spec serializes");
    if let Some(Value::Object(sets)) = value.pointer_mut("/process/capabilities") {
        for set in sets.values_mut() {
            if let Value::Array(names) = set {
                names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    for pointer in ["/annotations", "/linux/timeOffsets"] {
        if let Some(Value::Object(map)) = value.pointer_mut(pointer) {
            let mut entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            map.extend(entries);
        }
    }
    value
}

/// Write the bundle into `dir` (absent or empty). `unpacked` is the cached tree of a tar or OCI
/// root.
pub fn write(export: &Export, dir: &Path, unpacked: Option<&Path>) -> Result<Written, BundleError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BundleError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        Err(e) => return Err(io_at(dir)(e)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(io_at(dir))?;
    let as_root = nix::unistd::geteuid().is_root();
    let owner = export.owner.filter(|_| as_root);
    let rootfs = dir.join("rootfs");
    let mut written = Written::default();
    let copied: Option<&Path> = match &export.root {
        RootContent::Empty => None,
        RootContent::Copy(from) => Some(from),
        RootContent::Unpacked => Some(unpacked.ok_or_else(|| BundleError::Io {
            path: rootfs.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "the root was not unpacked"),
        })?),
    };
    match copied {
        None => {
            fs::create_dir(&rootfs).map_err(io_at(&rootfs))?;
            fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o755))
                .map_err(io_at(&rootfs))?;
            chown(&rootfs, owner)?;
        }
        Some(from) => {
            let mut copy = Copy {
                shift: export.shift.as_ref(),
                as_root,
                links: HashMap::new(),
                written: &mut written,
            };
            copy.tree(from, &rootfs)?;
        }
    }
    let root = nix::fcntl::open(
        &rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| BundleError::Entry {
        path: "/".into(),
        errno,
    })?;
    for entry in &export.entries {
        make_entry(&root, entry, owner)?;
    }
    for file in &export.files {
        let path = dir.join(&file.name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        fs::write(&path, &file.content).map_err(io_at(&path))?;
        chown(&path, owner)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode)).map_err(io_at(&path))?;
    }
    for layer in &export.layers {
        fs::create_dir_all(layer).map_err(io_at(layer))?;
        chown(layer, owner)?;
    }
    let config = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config_json(export)).expect("JSON") + "\n";
    fs::write(&config, text).map_err(io_at(&config))?;
    Ok(written)
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<(), BundleError> {
    match owner {
        Some((uid, gid)) => {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_at(path))
        }
        None => Ok(()),
    }
}

fn make_entry(
    root: &OwnedFd,
    entry: &RootEntry,
    owner: Option<(u32, u32)>,
) -> Result<(), BundleError> {
    let (path, made) = match entry {
        RootEntry::Symlink { path, link } => (
            path,
            symlink_in(&KERNEL, root.as_fd(), path, link).and_then(|(parent, name)| match owner {
                Some((uid, gid)) => nix::unistd::fchownat(
                    parent.as_fd(),
                    name,
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ),
                None => Ok(()),
            }),
        ),
        RootEntry::Dir { path, mode } => (path, dir_in(&KERNEL, root.as_fd(), path, *mode)),
    };
    made.map_err(|errno| BundleError::Entry {
        path: path.clone(),
        errno,
    })
}

/// A recursive copy that keeps what a root file system needs: modes (set-id bits included),
/// owners (shifted through the sandbox's maps where `up` id-maps the root), hard links,
/// symlinks, device nodes (as root), extended attributes (file capabilities) and times.
struct Copy<'a> {
    shift: Option<&'a IdShift>,
    as_root: bool,
    /// (device, inode) of files with several links -> the first copy.
    links: HashMap<(u64, u64), PathBuf>,
    written: &'a mut Written,
}

/// The id a file owned by `id` on disk gets, seen through `map` as an id-mapped mount shows it:
/// unmapped ids are nobody's (65534, outside every map `up` makes).
fn shifted(map: &[IdMapping], id: u32) -> u32 {
    map.iter().find_map(|m| m.map(id)).unwrap_or(65534)
}

impl Copy<'_> {
    fn tree(&mut self, from: &Path, to: &Path) -> Result<(), BundleError> {
        let meta = fs::symlink_metadata(from).map_err(io_at(from))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::create_dir(to).map_err(io_at(to))?;
            let mut names: Vec<_> = fs::read_dir(from)
                .map_err(io_at(from))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(io_at(from))?;
            names.sort();
            for name in names {
                self.tree(&from.join(&name), &to.join(&name))?;
            }
        } else if kind.is_symlink() {
            let link = fs::read_link(from).map_err(io_at(from))?;
            std::os::unix::fs::symlink(&link, to).map_err(io_at(to))?;
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                    return fs::hard_link(first, to).map_err(io_at(to));
                }
                self.links
                    .insert((meta.dev(), meta.ino()), to.to_path_buf());
            }
            fs::copy(from, to).map_err(io_at(to))?;
        } else if self.as_root {
            let kind = SFlag::from_bits_truncate(meta.mode()) & SFlag::S_IFMT;
            nix::sys::stat::mknod(to, kind, Mode::from_bits_truncate(meta.mode()), meta.rdev())
                .map_err(|errno| io_at(to)(io::Error::from(errno)))?;
        } else {
            self.written.skipped_nodes += 1;
            return Ok(());
        }
        self.attributes(from, to, &meta)
    }

    /// Owner, then mode (a chown clears set-id bits), then extended attributes (a chown clears
    /// security.capability), then times (every change above touches them).
    fn attributes(&self, from: &Path, to: &Path, meta: &fs::Metadata) -> Result<(), BundleError> {
        let symlink = meta.file_type().is_symlink();
        if self.as_root {
            let (uid, gid) = match self.shift {
                Some(shift) => (
                    shifted(&shift.uid, meta.uid()),
                    shifted(&shift.gid, meta.gid()),
                ),
                None => (meta.uid(), meta.gid()),
            };
            std::os::unix::fs::lchown(to, Some(uid), Some(gid)).map_err(io_at(to))?;
        }
        if !symlink {
            fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_at(to))?;
            // Attributes this caller may not set (trusted.*, or security.* rootless) are left
            // out, as `cp -a` does.
            if let Ok(names) = xattr::list(from) {
                for name in names {
                    if let Ok(Some(value)) = xattr::get(from, &name) {
                        let _ = xattr::set(to, &name, &value);
                    }
                }
            }
        }
        let time = |secs: i64, nsecs: i64| TimeSpec::new(secs, nsecs);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            to,
            &time(meta.atime(), meta.atime_nsec()),
            &time(meta.mtime(), meta.mtime_nsec()),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| io_at(to)(io::Error::from(errno)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_ids_become_nobody() {
        let map = [IdMapping {
            inside: 0,
            outside: 100_000,
            count: 65_536,
        }];
        assert_eq!(shifted(&map, 0), 100_000);
        assert_eq!(shifted(&map, 1000), 101_000);
        assert_eq!(shifted(&map, 100_000), 65534);
    }
}
