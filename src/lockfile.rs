//! Lock files that their holder removes as it lets go (state records, unpack locks), so none
//! accumulates. The price is one check after each lock: a process that opened the file before
//! its holder removed it gets its lock on a file no longer in the folder, which guards nothing
//! (the next comer makes and locks a new one), and must start over.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The locked file's metadata when `path` still names it; `None` when it was removed or
/// replaced since it was opened.
pub fn still_named(held: &File, path: &Path) -> Option<Metadata> {
    match (held.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) if (held.dev(), held.ino()) == (named.dev(), named.ino()) => {
            Some(held)
        }
        _ => None,
    }
}

/// Whole-file locks of an open file description (F_OFD_SETLK, fcntl(2)), for the records of
/// sandboxes. Like flock, one goes with the last descriptor of its description (however its
/// holder dies) or with [`unlock`]. Unlike flock, whether one is held can be asked
/// ([`held`]) without taking a lock: a reader (`ps`, `wait`) never makes a writer (a new
/// run's claim, `down`'s removal) fail for an instant.
pub mod ofd {
    use std::fs::File;

    use nix::errno::Errno;
    use nix::fcntl::{FcntlArg, fcntl};

    fn whole(kind: libc::c_int) -> libc::flock {
        libc::flock {
            l_type: kind as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        }
    }

    /// Take the write lock; `Ok(false)` when another description holds a lock on the file.
    pub fn try_lock(file: &File) -> Result<bool, Errno> {
        match fcntl(file, FcntlArg::F_OFD_SETLK(&whole(libc::F_WRLCK))) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(errno) => Err(errno),
        }
    }

    /// Wait until no other description holds the write lock, then hold a read lock.
    pub fn wait_shared(file: &File) -> Result<(), Errno> {
        loop {
            match fcntl(file, FcntlArg::F_OFD_SETLKW(&whole(libc::F_RDLCK))) {
                Err(Errno::EINTR) => continue,
                other => return other.map(drop),
            }
        }
    }

    /// Whether another description holds the write lock, asked without taking any lock.
    pub fn held(file: &File) -> Result<bool, Errno> {
        let mut probe = whole(libc::F_RDLCK);
        fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe))?;
        Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
    }

    /// Let go of the lock of this description, for every descriptor that shares it.
    pub fn unlock(file: &File) -> Result<(), Errno> {
        fcntl(file, FcntlArg::F_OFD_SETLK(&whole(libc::F_UNLCK))).map(drop)
    }
}
