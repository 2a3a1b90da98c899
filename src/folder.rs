//! The folders `sandbox` keeps its own files in: the state folder (records of running
//! sandboxes), the cache and its lock folders, the bridge lease folder, the trust store.
//!
//! Whoever can write one of them steers `sandbox`: a record planted in the state folder names
//! the process `down --all` signals, a root planted in the cache is what `up` runs. So, as ssh
//! demands of `~/.ssh`, each must be the caller's own, writable by nobody else, and reached
//! through folders nobody else can change (owned by root or the caller, and writable by others
//! only with the sticky bit, as /tmp). A missing folder is made; one that fails is refused with
//! what is wrong and the fix. The folder itself is opened with O_NOFOLLOW: a symlink planted in
//! its place is refused, not followed.
//!
//! Once checked, no other user can change any component of the path, so it is used by path
//! from then on: a later rename or symlink by someone else cannot undo the check.

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// What a folder is for, as messages name it.
#[derive(Debug, Clone, Copy)]
pub struct Purpose {
    /// "state folder", "cache".
    pub name: &'static str,
    /// The environment variable that picks another folder, when one does.
    pub setting: Option<&'static str>,
}

impl Purpose {
    /// The fix of picking another folder, as the end of a sentence.
    fn or_elsewhere(&self) -> String {
        self.setting
            .map(|setting| format!(", or set {setting} to a folder of your own"))
            .unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error(
        "the {} {} is a symbolic link: another user may have planted it to steer sandbox; remove it (`rm {}`){}",
        purpose.name, path.display(), path.display(), purpose.or_elsewhere()
    )]
    Symlink { purpose: Purpose, path: PathBuf },
    #[error(
        "the {} {} is not a folder: remove it{}",
        purpose.name, path.display(), purpose.or_elsewhere()
    )]
    NotFolder { purpose: Purpose, path: PathBuf },
    #[error(
        "the {} {} belongs to uid {owner}, not to you (uid {uid}): whoever made it can plant files in it; have root remove it (`rm -r {}`){}",
        purpose.name, path.display(), path.display(), purpose.or_elsewhere()
    )]
    Foreign {
        purpose: Purpose,
        path: PathBuf,
        owner: u32,
        uid: u32,
    },
    #[error(
        "the {} {} can be written by other users (mode {mode:03o}): `chmod go-w {}`",
        purpose.name, path.display(), path.display()
    )]
    Shared {
        purpose: Purpose,
        path: PathBuf,
        mode: u32,
    },
    #[error(
        "the {} {} is inside {}, which {why}: another user could replace it; only root and you may own the folders above it, and others may write them only with the sticky bit (as /tmp){}",
        purpose.name, path.display(), ancestor.display(), purpose.or_elsewhere()
    )]
    Exposed {
        purpose: Purpose,
        path: PathBuf,
        ancestor: PathBuf,
        why: String,
    },
    #[error("{action} the {} {}: {source}", purpose.name, path.display())]
    Io {
        action: &'static str,
        purpose: Purpose,
        path: PathBuf,
        source: io::Error,
    },
}

impl FolderError {
    /// The closest errno, for callers whose errors carry one.
    pub fn errno(&self) -> Errno {
        match self {
            FolderError::Symlink { .. } => Errno::ELOOP,
            FolderError::NotFolder { .. } => Errno::ENOTDIR,
            FolderError::Foreign { .. }
            | FolderError::Shared { .. }
            | FolderError::Exposed { .. } => Errno::EPERM,
            FolderError::Io { source, .. } => {
                Errno::from_raw(source.raw_os_error().unwrap_or(libc::EIO))
            }
        }
    }
}

/// The folder `path`, made with `mode` when missing (and its missing parents 0700), once it
/// and every folder above it passed the checks; the path returned has no symlink in it.
pub fn own(path: &Path, mode: u32, purpose: Purpose) -> Result<PathBuf, FolderError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| FolderError::Io {
            action,
            purpose,
            path,
            source,
        }
    };
    let Some(name) = path.file_name() else {
        return Err(FolderError::NotFolder {
            purpose,
            path: path.to_path_buf(),
        });
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io("creating", parent))?;
    }
    let parent = crate::hostpath::real_path(parent).map_err(io("resolving", parent))?;
    let euid = nix::unistd::geteuid().as_raw();
    for ancestor in parent.ancestors() {
        let meta = std::fs::symlink_metadata(ancestor).map_err(io("checking", ancestor))?;
        let mode = meta.mode() & 0o7777;
        let why = if meta.file_type().is_symlink() {
            Some("was replaced by a symbolic link while it was checked".to_string())
        } else if meta.uid() != 0 && meta.uid() != euid {
            Some(format!("uid {} owns", meta.uid()))
        } else if mode & 0o022 != 0 && mode & libc::S_ISVTX == 0 {
            Some(format!(
                "other users can write (mode {mode:03o}, without the sticky bit of /tmp)"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(FolderError::Exposed {
                purpose,
                path: path.to_path_buf(),
                ancestor: ancestor.to_path_buf(),
                why,
            });
        }
    }
    let path = parent.join(name);
    check(&path, mode, purpose)?;
    Ok(path)
}

/// The folder `name` in a folder [`own`] checked, made with `mode` when missing: only the
/// caller (or root) could have put something there, but a symlink or a folder of another
/// owner is refused all the same.
pub fn own_within(
    folder: &Path,
    name: &str,
    mode: u32,
    purpose: Purpose,
) -> Result<PathBuf, FolderError> {
    let path = folder.join(name);
    check(&path, mode, purpose)?;
    Ok(path)
}

/// Make `path` unless it exists, then judge what is there without following a symlink.
fn check(path: &Path, mode: u32, purpose: Purpose) -> Result<(), FolderError> {
    let io = |action, source| FolderError::Io {
        action,
        purpose,
        path: path.to_path_buf(),
        source,
    };
    match DirBuilder::new().mode(mode).create(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(io("creating", e)),
        _ => {}
    }
    let opened = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    );
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            let path = path.to_path_buf();
            return Err(if symlink {
                FolderError::Symlink { purpose, path }
            } else {
                FolderError::NotFolder { purpose, path }
            });
        }
        Err(errno) => return Err(io("opening", errno.into())),
    };
    let stat = nix::sys::stat::fstat(&fd).map_err(|errno| io("checking", errno.into()))?;
    let euid = nix::unistd::geteuid().as_raw();
    if stat.st_uid != euid {
        return Err(FolderError::Foreign {
            purpose,
            path: path.to_path_buf(),
            owner: stat.st_uid,
            uid: euid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(FolderError::Shared {
            purpose,
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TEST: Purpose = Purpose {
        name: "test folder",
        setting: Some("TEST_DIR"),
    };

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A folder `name` in a new temporary folder, with `mode`.
    fn folder_with_mode(name: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        chmod(&path, mode);
        (dir, path)
    }

    #[test]
    fn a_missing_folder_is_made_with_its_parents_and_the_path_comes_back_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        let link = real.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let made = own(&link.join("a/b/state"), 0o700, TEST).unwrap();
        assert_eq!(made, real.join("a/b/state"), "no symlink left in the path");
        let meta = std::fs::metadata(&made).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::metadata(real.join("a")).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(
            own(&made, 0o700, TEST).unwrap(),
            made,
            "an existing one passes"
        );
    }

    #[test]
    fn a_symlink_in_the_folders_place_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("mine");
        std::fs::create_dir(&target).unwrap();
        let planted = dir.path().join("state");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let error = own(&planted, 0o700, TEST).unwrap_err();
        assert!(matches!(error, FolderError::Symlink { .. }), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        // Dangling: not made through the link either.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            own(&dangling, 0o700, TEST),
            Err(FolderError::Symlink { .. })
        ));
        assert!(!dir.path().join("nowhere").exists());
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert!(matches!(
            own(&dir.path().join("file"), 0o700, TEST),
            Err(FolderError::NotFolder { .. })
        ));
    }

    #[test]
    fn a_folder_others_can_write_is_refused_with_the_fix() {
        let (_dir, shared) = folder_with_mode("shared", 0o777);
        let error = own(&shared, 0o700, TEST).unwrap_err();
        assert!(
            matches!(error, FolderError::Shared { mode: 0o777, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chmod go-w"), "{error}");
        chmod(&shared, 0o755);
        own(&shared, 0o700, TEST).expect("readable by others is fine");
    }

    #[test]
    fn a_folder_inside_one_others_can_write_is_refused_unless_it_is_sticky() {
        let (_dir, open) = folder_with_mode("open", 0o777);
        let error = own(&open.join("state"), 0o700, TEST).unwrap_err();
        assert!(matches!(error, FolderError::Exposed { .. }), "{error}");
        assert!(error.to_string().contains("set TEST_DIR"), "{error}");
        chmod(&open, 0o1777);
        own(&open.join("state"), 0o700, TEST).expect("as in /tmp");
        let error = own_within(&open, "state", 0o700, TEST);
        assert!(error.is_ok());
    }

    #[test]
    fn a_folder_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: chown needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(4321), None).unwrap();
        let error = own(&theirs, 0o700, TEST).unwrap_err();
        assert!(
            matches!(
                error,
                FolderError::Foreign {
                    owner: 4321,
                    uid: 0,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("belongs to uid 4321"), "{error}");
        let error = own(&theirs.join("inner"), 0o700, TEST).unwrap_err();
        assert!(matches!(error, FolderError::Exposed { .. }), "{error}");
    }
}
