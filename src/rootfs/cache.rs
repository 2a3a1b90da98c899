//! The content-addressed cache of unpacked roots.
//!
//! ```text
//! CACHE/roots/HEX/        an unpacked root, named by the archive's (or image manifest's) sha256
//! CACHE/roots/HEX.json    what it was unpacked from, when, how big (for `sandbox cache ls`)
//! CACHE/roots/HEX.lock    shared-locked by every sandbox using the root; prune locks it
//!                         exclusively, so a root in use is never removed
//! CACHE/*/NAME.tmpPID     a record being written (locked meanwhile), renamed into place
//! CACHE/sources/KEY       the sha256 of a tarball without `rootfs.sha256`, by its identity
//!                         (device, inode, size, mtime, ctime, path): it is hashed only once
//! CACHE/locks/KEY.lock    held while a root is unpacked: concurrent first runs unpack once;
//!                         removed by its holder as it lets go
//! CACHE/tmp/NAME/         roots being unpacked (NAME.lock held meanwhile); renamed into
//!                         roots/ when complete, so a root in roots/ is always whole
//! ```
//!
//! The cache is the caller's own (0700): an unpacked root may hold set-id files of the image's
//! owners, which must not be reachable by other users of the host.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::unpack;
use crate::folder::{self, FolderError, Purpose};
use crate::input::read_regular_file;

/// The most a cache record (`sources/KEY`, `roots/HEX.json`) holds: a few hundred bytes.
const RECORD_LIMIT: u64 = 64 << 10;

/// Overrides where the cache is (tests, CI, or a cache on another disk).
pub const CACHE_ENV: &str = "SANDBOX_CACHE_DIR";
/// Root's cache.
pub const SYSTEM_CACHE: &str = "/var/cache/sandbox";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache folder: set {CACHE_ENV}, XDG_CACHE_HOME or HOME")]
    NoFolder,
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Folder(#[from] FolderError),
}

/// The cache, as messages name it.
const CACHE_FOLDER: Purpose = Purpose {
    name: "cache",
    setting: Some("SANDBOX_CACHE_DIR"),
};

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_path_buf();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

/// What an unpacked root was made from (`roots/HEX.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryMeta {
    /// `tar` or `oci`.
    pub kind: String,
    pub source: PathBuf,
    /// Seconds since the epoch.
    pub unpacked: u64,
    /// Size of the archive (or of the image's layers), compressed.
    pub bytes: u64,
}

/// One root in the cache, for `sandbox cache ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub digest: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub meta: Option<EntryMeta>,
    pub in_use: bool,
}

/// What `prune` removed.
#[derive(Debug, Default, Serialize)]
pub struct Pruned {
    pub roots: Vec<String>,
    pub kept_in_use: Vec<String>,
    pub partial: usize,
    /// Lock files and half-written records that killed or failed launchers left.
    pub leftovers: usize,
}

pub struct Cache {
    dir: PathBuf,
}

/// The cache folder for this caller: `SANDBOX_CACHE_DIR`, else /var/cache/sandbox for root,
/// else `$XDG_CACHE_HOME/sandbox` or `~/.cache/sandbox`.
pub fn locate(env: &BTreeMap<String, String>, root: bool) -> Result<PathBuf, CacheError> {
    let set = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(CACHE_ENV) {
        return Ok(dir);
    }
    if root {
        return Ok(PathBuf::from(SYSTEM_CACHE));
    }
    set("XDG_CACHE_HOME")
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("sandbox"))
        .or_else(|| set("HOME").map(|home| home.join(".cache/sandbox")))
        .ok_or(CacheError::NoFolder)
}

impl Cache {
    /// Open the cache at `dir`, creating it (0700) when missing. It and its folders must be
    /// this user's and written by nobody else (see [`crate::folder`]): whoever can write them
    /// can choose what a sandbox runs.
    pub fn open(dir: PathBuf) -> Result<Cache, CacheError> {
        let dir = folder::own(&dir, 0o700, CACHE_FOLDER)?;
        // Roots may hold set-id files of the archive's owners: nobody else may reach them.
        let mode = std::fs::metadata(&dir)
            .map_err(io_error("reading", &dir))?
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_error("restricting", &dir))?;
        }
        for sub in ["roots", "sources", "locks", "tmp"] {
            folder::own_within(&dir, sub, 0o700, CACHE_FOLDER)?;
        }
        Ok(Cache { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn root_dir(&self, hex: &str) -> PathBuf {
        self.dir.join("roots").join(hex)
    }

    fn lock_file(&self, path: &Path) -> Result<File, CacheError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_error("opening", path))
    }

    /// The root `hex`, locked shared for as long as the returned file is open; `None` when the
    /// cache does not hold it.
    pub fn use_root(&self, hex: &str) -> Result<Option<(PathBuf, File)>, CacheError> {
        let root = self.root_dir(hex);
        let lock_path = root.with_extension("lock");
        if !root.is_dir() {
            return Ok(None);
        }
        let lock = loop {
            let lock = self.lock_file(&lock_path)?;
            lock.lock_shared()
                .map_err(io_error("locking", &lock_path))?;
            // Prune removes the lock file of a root it removes, or of none, while it holds it.
            if crate::lockfile::still_named(&lock, &lock_path).is_some() {
                break lock;
            }
        };
        // Checked again under the lock: prune may have removed it in between.
        Ok(root.is_dir().then_some((root, lock)))
    }

    /// An exclusive lock for unpacking what `key` names; blocks while another process holds it.
    pub fn unpack_lock(&self, key: &str) -> Result<UnpackLock, CacheError> {
        let path = self.dir.join("locks").join(format!("{key}.lock"));
        loop {
            let file = self.lock_file(&path)?;
            file.lock().map_err(io_error("locking", &path))?;
            // The holder before us removed the file as it let go: start over on the next.
            if crate::lockfile::still_named(&file, &path).is_some() {
                return Ok(UnpackLock { path, _file: file });
            }
        }
    }

    /// The sha256 recorded for a tarball's identity, if any.
    pub fn source_digest(&self, key: &str) -> Option<String> {
        let bytes = read_regular_file(&self.dir.join("sources").join(key), RECORD_LIMIT).ok()?;
        let hex = std::str::from_utf8(&bytes).ok()?.trim();
        super::oci::is_sha256_hex(hex).then(|| hex.to_string())
    }

    pub fn record_source(&self, key: &str, hex: &str) -> Result<(), CacheError> {
        let path = self.dir.join("sources").join(key);
        write_atomically(&path, hex.as_bytes())
    }

    /// A fresh folder to unpack into, removed again unless published.
    pub fn scratch(&self) -> Result<Scratch, CacheError> {
        let tmp = self.dir.join("tmp");
        let (name, lock) = loop {
            let name = format!(
                "{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            let path = tmp.join(format!("{name}.lock"));
            let lock = self.lock_file(&path)?;
            // Prune may hold it for a moment, and remove it, before the folder exists.
            lock.lock().map_err(io_error("locking", &path))?;
            if crate::lockfile::still_named(&lock, &path).is_some() {
                break (name, lock);
            }
        };
        let path = tmp.join(&name);
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(io_error("creating", &path))?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| io_error("opening", &path)(errno.into()))?;
        Ok(Scratch {
            tmp: tmp.clone(),
            name,
            fd: Some(fd),
            _lock: lock,
            published: false,
        })
    }

    /// Move a complete root into place as `hex`, with its description. When another process
    /// published the same content first, the scratch copy is dropped.
    pub fn publish(
        &self,
        mut scratch: Scratch,
        hex: &str,
        meta: &EntryMeta,
    ) -> Result<(), CacheError> {
        let root = self.root_dir(hex);
        // The folder about to be published is the one this process unpacked into, still.
        let held = scratch
            .fd
            .take()
            .map(|fd| nix::sys::stat::fstat(&fd))
            .transpose()
            .map_err(|errno| io_error("publishing", &root)(errno.into()))?;
        let named = std::fs::symlink_metadata(scratch.path()).ok();
        if held.map(|st| (st.st_dev, st.st_ino)) != named.map(|m| (m.dev(), m.ino())) {
            return Err(io_error("publishing", &root)(io::Error::other(
                "the folder it was unpacked into was replaced meanwhile",
            )));
        }
        match std::fs::rename(scratch.path(), &root) {
            Ok(()) => scratch.published = true,
            // Another launcher published the same content first.
            Err(_) if root.is_dir() => return Ok(()),
            Err(e) => return Err(io_error("publishing", &root)(e)),
        }
        // Written once the root is there, so no description is ever left without one.
        write_atomically(
            &root.with_extension("json"),
            &serde_json::to_vec_pretty(meta).expect("metadata serializes"),
        )
    }

    /// Every root in the cache.
    pub fn entries(&self) -> Result<Vec<Entry>, CacheError> {
        let roots = self.dir.join("roots");
        let mut entries = Vec::new();
        for item in std::fs::read_dir(&roots).map_err(io_error("reading", &roots))? {
            let item = item.map_err(io_error("reading", &roots))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !super::oci::is_sha256_hex(&name) || !item.path().is_dir() {
                continue;
            }
            let path = item.path();
            let meta = read_regular_file(&path.with_extension("json"), RECORD_LIMIT)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let lock = self.lock_file(&path.with_extension("lock"))?;
            let in_use = matches!(lock.try_lock(), Err(TryLockError::WouldBlock));
            entries.push(Entry {
                digest: format!("sha256:{name}"),
                path,
                meta,
                in_use,
            });
        }
        entries.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(entries)
    }

    /// Remove every root no sandbox uses, partial unpacks left by a killed launcher, and
    /// records of tarballs whose root is gone.
    pub fn prune(&self) -> Result<Pruned, CacheError> {
        let mut pruned = Pruned::default();
        let tmp = self.dir.join("tmp");
        for entry in self.entries()? {
            let hex = entry.digest.trim_start_matches("sha256:").to_string();
            let lock_path = entry.path.with_extension("lock");
            let lock = self.lock_file(&lock_path)?;
            if let Err(TryLockError::WouldBlock) = lock.try_lock() {
                pruned.kept_in_use.push(entry.digest);
                continue;
            }
            // Out of roots/ first, so no one finds a half-removed root.
            let doomed = tmp.join(format!("prune-{hex}-{}", std::process::id()));
            std::fs::rename(&entry.path, &doomed).map_err(io_error("removing", &entry.path))?;
            remove_path(&doomed)?;
            let _ = std::fs::remove_file(entry.path.with_extension("json"));
            let _ = std::fs::remove_file(&lock_path);
            pruned.roots.push(entry.digest);
        }
        for item in std::fs::read_dir(&tmp).map_err(io_error("reading", &tmp))? {
            let path = item.map_err(io_error("reading", &tmp))?.path();
            if !path.is_dir() {
                continue;
            }
            let lock_path = path.with_extension("lock");
            let lock = self.lock_file(&lock_path)?;
            if lock.try_lock().is_ok() {
                remove_path(&path)?;
                let _ = std::fs::remove_file(&lock_path);
                pruned.partial += 1;
            }
        }
        pruned.leftovers = self.prune_leftovers()?;
        let sources = self.dir.join("sources");
        for item in std::fs::read_dir(&sources).map_err(io_error("reading", &sources))? {
            let item = item.map_err(io_error("reading", &sources))?;
            let key = item.file_name().to_string_lossy().into_owned();
            if being_written(&item.path()) {
                continue;
            }
            if self
                .source_digest(&key)
                .is_none_or(|hex| !self.root_dir(&hex).is_dir())
            {
                let _ = std::fs::remove_file(item.path());
            }
        }
        Ok(pruned)
    }

    /// What a launcher leaves when it is killed, or fails between two steps: unpack locks
    /// (`locks/KEY.lock`, removed by their holder as it lets go), half-written records
    /// (`*.tmpPID`, locked while written), lock files and descriptions of unpacks and roots
    /// that are gone. Each is removed only while this process holds its lock, so nothing in
    /// use is touched.
    fn prune_leftovers(&self) -> Result<usize, CacheError> {
        let mut removed = 0;
        for sub in ["locks", "roots", "sources", "tmp"] {
            let dir = self.dir.join(sub);
            for item in std::fs::read_dir(&dir).map_err(io_error("reading", &dir))? {
                let path = item.map_err(io_error("reading", &dir))?.path();
                let stale = match path.extension().and_then(|e| e.to_str()) {
                    Some("lock") => sub == "locks" || !path.with_extension("").exists(),
                    Some("json") => sub == "roots" && !path.with_extension("").exists(),
                    _ => being_written(&path),
                };
                // A lock file is opened as locks are (created if gone meanwhile, and then
                // removed again); a record is only opened if it is a regular file.
                let file = match path.extension().and_then(|e| e.to_str()) {
                    Some("lock") if stale => self.lock_file(&path).ok(),
                    _ if stale => crate::input::open_regular_file(&path).ok(),
                    _ => None,
                };
                if let Some(file) = file
                    && file.try_lock().is_ok()
                    && crate::lockfile::still_named(&file, &path).is_some()
                    // Checked again under the lock: a root may have been published meanwhile.
                    && (sub != "roots" || !path.with_extension("").exists())
                    && std::fs::remove_file(&path).is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// The lock of [`Cache::unpack_lock`]; its file is removed when it is let go, so that no lock
/// file stays behind for each root ever unpacked.
pub struct UnpackLock {
    path: PathBuf,
    _file: File,
}

impl Drop for UnpackLock {
    fn drop(&mut self) {
        // Still held here (the file closes after this): see crate::lockfile.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A folder being unpacked into, removed when dropped unless [`Cache::publish`] moved it.
pub struct Scratch {
    tmp: PathBuf,
    name: String,
    fd: Option<OwnedFd>,
    _lock: File,
    published: bool,
}

impl Scratch {
    pub fn path(&self) -> PathBuf {
        self.tmp.join(&self.name)
    }

    /// A descriptor of the folder, for [`unpack::Tree`].
    pub fn fd(&self) -> Result<OwnedFd, CacheError> {
        self.fd
            .as_ref()
            .expect("open until published")
            .try_clone()
            .map_err(io_error("opening", &self.path()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.published {
            let _ = remove_path(&self.path());
        }
        let _ = std::fs::remove_file(self.tmp.join(format!("{}.lock", self.name)));
    }
}

/// Remove a folder tree without following any symlink in it.
fn remove_path(path: &Path) -> Result<(), CacheError> {
    let parent = path.parent().expect("a cache path has a parent");
    let dir = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| io_error("opening", parent)(errno.into()))?;
    let name = path.file_name().expect("a cache path has a name");
    let name = std::os::unix::ffi::OsStrExt::as_bytes(name);
    let name = std::ffi::CString::new(name).expect("cache names hold no NUL");
    match unpack::remove(&crate::sys::KERNEL, dir.as_fd(), &name, true) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(errno) => Err(io_error("removing", path)(errno.into())),
    }
}

/// Whether `path` is the temporary file of [`write_atomically`] (`NAME.tmpPID`).
fn being_written(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str()?.strip_prefix("tmp"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Write a record whole or not at all. The temporary file is locked while it is written, so
/// `prune` can tell one being written from one a killed launcher left, and removed when the
/// write fails (a full disk), so none is left behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.lock()?;
            file.write_all(bytes)?;
            std::fs::rename(&tmp, path)
        });
    written.map_err(|error| {
        let _ = std::fs::remove_file(&tmp);
        io_error("writing", path)(error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_cache_folder_follows_the_environment() {
        let all = env(&[
            (CACHE_ENV, "/x"),
            ("XDG_CACHE_HOME", "/xdg"),
            ("HOME", "/home/a"),
        ]);
        assert_eq!(locate(&all, true).unwrap(), PathBuf::from("/x"));
        let user = env(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/a")]);
        assert_eq!(locate(&user, false).unwrap(), PathBuf::from("/xdg/sandbox"));
        assert_eq!(locate(&user, true).unwrap(), PathBuf::from(SYSTEM_CACHE));
        let relative = env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/home/a")]);
        assert_eq!(
            locate(&relative, false).unwrap(),
            PathBuf::from("/home/a/.cache/sandbox")
        );
        assert!(matches!(
            locate(&env(&[]), false),
            Err(CacheError::NoFolder)
        ));
    }

    #[test]
    fn a_cache_others_can_write_is_refused_and_one_they_can_read_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            Cache::open(dir.path().to_path_buf()),
            Err(CacheError::Folder(FolderError::Shared { .. }))
        ));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Cache::open(dir.path().to_path_buf()).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A record whose write fails (a full disk; here its name is taken by a folder) leaves no
    /// temporary file behind.
    #[test]
    fn a_failed_record_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let hex = "a".repeat(64);
        let roots = dir.path().join("cache/roots");
        std::fs::create_dir(roots.join(format!("{hex}.json"))).unwrap();
        let meta = EntryMeta {
            kind: "tar".into(),
            source: "/x.tar".into(),
            unpacked: 0,
            bytes: 1,
        };
        assert!(
            cache
                .publish(cache.scratch().unwrap(), &hex, &meta)
                .is_err()
        );
        assert_eq!(names(&roots), [hex.clone(), format!("{hex}.json")]);
        assert!(cache.record_source("key", &hex).is_ok());
        assert_eq!(names(&dir.path().join("cache/sources")), ["key"]);
    }

    /// A record planted as a FIFO is no record, and reading it does not wait for a writer.
    #[test]
    fn a_record_that_is_no_regular_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let planted = dir.path().join("cache/sources/key");
        nix::unistd::mkfifo(&planted, Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(cache.source_digest("key"), None);
    }

    /// What killed launchers leave (an unpack lock, a half-written record, a scratch lock, a
    /// root's lock and description without the root) is pruned; what is held is kept.
    #[test]
    fn prune_removes_what_stopped_launchers_left_and_keeps_what_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let at = |name: &str| dir.path().join("cache").join(name);
        let hex = "b".repeat(64);
        for left in [
            "locks/killed.lock".to_string(),
            "roots/x.tmp4194305".into(),
            "sources/key.tmp4194305".into(),
            "tmp/4194305-1.lock".into(),
            format!("roots/{hex}.lock"),
            format!("roots/{hex}.json"),
        ] {
            std::fs::write(at(&left), "").unwrap();
        }
        let _unpacking = cache.unpack_lock("busy").unwrap();
        std::fs::write(at("sources/other.tmp1"), "").unwrap();
        let writing = File::open(at("sources/other.tmp1")).unwrap();
        writing.lock().unwrap();
        let scratch = cache.scratch().unwrap();

        let pruned = cache.prune().unwrap();
        assert_eq!(pruned.leftovers, 6, "{pruned:?}");
        assert_eq!(names(&at("locks")), ["busy.lock"]);
        assert!(names(&at("roots")).is_empty());
        assert_eq!(names(&at("sources")), ["other.tmp1"]);
        assert_eq!(
            names(&at("tmp")).len(),
            2,
            "the scratch folder and its lock"
        );
        drop(scratch);
        drop(writing);
        assert_eq!(cache.prune().unwrap().leftovers, 1);
    }

    /// A waiter that was blocked on a lock file its holder removed takes a new one, so two
    /// launchers never unpack the same root at once, and no lock file is left afterwards.
    #[test]
    fn unpack_locks_exclude_each_other_and_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("cache")).unwrap();
        let locks = dir.path().join("cache/locks");
        let first = cache.unpack_lock("key").unwrap();
        let inside = std::sync::atomic::AtomicBool::new(true);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let second = cache.unpack_lock("key").unwrap();
                assert!(
                    !inside.load(std::sync::atomic::Ordering::SeqCst),
                    "both held the lock"
                );
                assert!(locks.join("key.lock").exists());
                drop(second);
            });
            // Give the waiter time to open the file and block on it (a test may wait).
            std::thread::sleep(std::time::Duration::from_millis(100));
            inside.store(false, std::sync::atomic::Ordering::SeqCst);
            drop(first);
            waiter.join().unwrap();
        });
        assert_eq!(std::fs::read_dir(&locks).unwrap().count(), 0);
    }
}
