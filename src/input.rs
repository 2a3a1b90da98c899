//! Opening and reading input files: manifests and the files they extend, tarballs, OCI image
//! layouts, cache, state, trust and lease records.
//!
//! Their paths come from a cloned repository, an archive, or a folder another process writes,
//! so any of them can be a FIFO (opening it waits for a writer), a device (`/dev/zero` never
//! ends, `/dev/tty` waits for the terminal) or a symlink to one. Every input goes through
//! [`open_regular_file`]: it opens with `O_NONBLOCK` (opening a FIFO does not wait; a regular
//! file ignores the flag), `O_NOCTTY` and `O_CLOEXEC`, and then `fstat`s the descriptor it
//! opened, so what is read is what was checked. [`read_regular_file`] also bounds how much is
//! read. A symlink is followed: a repository may link its manifest; only what it leads to is
//! judged.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::escape::escaped;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}: {source}", escaped(path))]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is {kind}, not a regular file", escaped(path))]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is larger than {} KiB", escaped(path), limit >> 10)]
    TooLarge { path: PathBuf, limit: u64 },
}

impl InputError {
    /// The file does not exist (a missing optional file is no error).
    pub fn is_not_found(&self) -> bool {
        matches!(self, InputError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// What a file that is not a regular file is, for a message.
fn kind(file_type: std::fs::FileType) -> Option<&'static str> {
    Some(if file_type.is_file() {
        return None;
    } else if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    })
}

/// The flags an input file is opened with, by [`open_regular_file`] or by a caller that needs
/// more (write access to a record it also reads, `O_NOFOLLOW`), which then checks the file
/// with [`regular`].
pub const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Open `path` for reading, following symlinks, only if it is a regular file.
pub fn open_regular_file(path: &Path) -> Result<File, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Looked at first too, so that a device is not even opened (opening one can act: a tape
    // rewinds, a modem line answers); the check that counts is on the descriptor below.
    if let Some(kind) = kind(std::fs::metadata(path).map_err(io)?.file_type()) {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS)
        .open(path)
        .map_err(io)?;
    regular(file, path)
}

/// `file`, opened from `path` with [`OPEN_FLAGS`], if its descriptor is a regular file's.
pub fn regular(file: File, path: &Path) -> Result<File, InputError> {
    let meta = file.metadata().map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match kind(meta.file_type()) {
        Some(kind) => Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
        None => Ok(file),
    }
}

/// [`open_regular_file`] for a path already resolved (see [`crate::hostpath`]: an `extends`
/// file, a tarball, an OCI layout's files): no symlink is followed, so one put there since the
/// path was resolved and judged fails (ELOOP) instead of leading elsewhere.
pub fn open_resolved_file(path: &Path) -> Result<File, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    // As in open_regular_file, and a symlink is named for what it is; the open refuses one
    // all the same (also in a folder above), should it be put there meanwhile.
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    let kind = if meta.is_symlink() {
        Some("a symbolic link")
    } else {
        kind(meta.file_type())
    };
    if let Some(kind) = kind {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io(io::ErrorKind::InvalidInput.into()))?;
    let file = crate::sys::raw::openat2(
        None,
        &name,
        libc::O_RDONLY | OPEN_FLAGS,
        libc::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|errno| io(io::Error::from_raw_os_error(errno as i32)))?;
    regular(File::from(file), path)
}

/// Read all of `path`, a regular file of at most `limit` bytes.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    read_bounded(open_regular_file(path)?, path, limit)
}

/// [`read_regular_file`] for a resolved path (see [`open_resolved_file`]).
pub fn read_resolved_file(path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    read_bounded(open_resolved_file(path)?, path, limit)
}

/// Read all of `file` (opened from `path`), at most `limit` bytes.
fn read_bounded(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, InputError> {
    let too_large = || InputError::TooLarge {
        path: path.to_path_buf(),
        limit,
    };
    let size = file
        .metadata()
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if size > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow after the fstat.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO nobody writes to, a device and a folder, directly or through a symlink, are
    /// refused at once, naming the path and what it is.
    #[test]
    fn only_regular_files_are_read_and_nothing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for (path, what) in [
            (&fifo, "a FIFO"),
            (&link, "a FIFO"),
            (&zero, "a character device"),
            (&dir.path().to_path_buf(), "a folder"),
        ] {
            let error = read_regular_file(path, 1 << 20).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("{} is {what}, not a regular file", path.display())
            );
        }
        let missing = read_regular_file(&dir.path().join("nope"), 10).unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }

    /// A resolved path is read only as it is spelled: a symlink there now is refused, in its
    /// last component or in a folder above.
    #[test]
    fn a_resolved_path_follows_no_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (file, link) = (dir.path().join("f"), dir.path().join("link"));
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_resolved_file(&file, 10).unwrap(), b"x");
        let error = read_resolved_file(&link, 10).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is a symbolic link, not a regular file", link.display())
        );
        let folder = dir.path().join("folder");
        std::os::unix::fs::symlink(dir.path(), &folder).unwrap();
        let error = read_resolved_file(&folder.join("f"), 10).unwrap_err();
        assert!(
            matches!(&error, InputError::Io { source, .. } if source.raw_os_error() == Some(libc::ELOOP)),
            "{error}"
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            read_resolved_file(&fifo, 10),
            Err(InputError::NotRegular { .. })
        ));
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![b'x'; 4096]).unwrap();
        assert_eq!(read_regular_file(&file, 4096).unwrap().len(), 4096);
        let error = read_regular_file(&file, 2048).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is larger than 2 KiB", file.display())
        );
    }
}
