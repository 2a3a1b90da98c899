//! Reading a file of the sandbox's root for the launcher's own use: /etc/hosts, whose entries
//! the sandbox's hosts file keeps, and /etc/passwd, which names the command's user. The root
//! may come from a hostile archive, and the reader holds more than the sandbox will (the
//! launcher's environment, in its memory until the command's execve), so:
//! - the path resolves inside the root (RESOLVE_IN_ROOT: `..` and symlinks cannot leave it);
//! - only a regular file counts (a FIFO would block the launch, a device is no file), opened
//!   non-blocking so that even a FIFO returns at once;
//! - nothing on procfs: a link to /proc/self/environ would read the reader's own environment;
//! - at most `limit` bytes, cut after the last whole line.
//!
//! A file that is absent or refused reads as `None`: the caller then does without it.

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::stat::{SFlag, fstat};
use nix::sys::statfs::{PROC_SUPER_MAGIC, fstatfs};

use crate::sys::raw as sys;

/// The contents of `path` (relative to `root`), or `None` when it is absent, not a regular file
/// or on procfs.
pub(crate) fn read(root: BorrowedFd<'_>, path: &CStr, limit: usize) -> Option<Vec<u8>> {
    let file = sys::open_in_root(
        root,
        path,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
    )
    .ok()?;
    let Ok(st) = fstat(file.as_fd()) else {
        return None;
    };
    let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
    let on_procfs =
        fstatfs(file.as_fd()).map_or(true, |fs| fs.filesystem_type() == PROC_SUPER_MAGIC);
    if !regular || on_procfs {
        return None;
    }
    // Sized by the file, not by the limit: a zeroed buffer of the limit (1 MiB for
    // /etc/passwd) cost each launch some 250 page faults and its peak RSS a MiB. One byte more
    // than the limit tells a file that fits from one that was cut.
    let cap = limit.saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(st.st_size).map_or(0, |size| size.min(cap)));
    std::fs::File::from(file)
        .take(cap as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    let filled = bytes.len();
    if filled > limit {
        let end = bytes[..limit]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    Some(bytes)
}

/// How much of a root's /etc/passwd is searched for a user.
const PASSWD_LIMIT: usize = 1 << 20;

/// The name of `uid` in the /etc/passwd of `root`. Read by the launcher itself: NSS would load
/// the root's own code (its modules and nsswitch.conf) into the launcher.
pub(crate) fn user_name(root: BorrowedFd<'_>, uid: u32) -> Option<String> {
    let passwd = read(root, c"etc/passwd", PASSWD_LIMIT)?;
    passwd_name(&passwd, uid).map(str::to_string)
}

/// The name /etc/passwd gives `uid`: the first line `name:password:uid:...` with that uid.
/// Lines of NIS compatibility (`+`, `-`) and names no environment value should hold (empty,
/// control characters, white space, longer than 256 bytes) are passed over.
pub(crate) fn passwd_name(passwd: &[u8], uid: u32) -> Option<&str> {
    passwd.split(|b| *b == b'\n').find_map(|line| {
        let mut fields = line.split(|b| *b == b':');
        let name = std::str::from_utf8(fields.next()?).ok()?;
        let id = std::str::from_utf8(fields.nth(1)?).ok()?;
        let plain = !name.is_empty()
            && name.len() <= 256
            && !name.starts_with(['+', '-'])
            && !name.chars().any(|c| c.is_control() || c.is_whitespace());
        (plain && id.parse::<u32>() == Ok(uid)).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn open(dir: &std::path::Path) -> OwnedFd {
        std::fs::File::open(dir).unwrap().into()
    }

    #[test]
    fn reads_a_regular_file_inside_the_root_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/hosts"), "10.0.0.1 db\n").unwrap();
        let fd = open(root.path());
        assert_eq!(
            read(fd.as_fd(), c"etc/hosts", 4096).as_deref(),
            Some(&b"10.0.0.1 db\n"[..])
        );
        assert_eq!(read(fd.as_fd(), c"etc/passwd", 4096), None);
        // An absolute link resolves inside the root, as in a chroot.
        std::os::unix::fs::symlink("/etc/hosts", root.path().join("etc/passwd")).unwrap();
        assert!(read(fd.as_fd(), c"etc/passwd", 4096).is_some());
        std::os::unix::fs::symlink("../../../../proc/self/environ", root.path().join("env"))
            .unwrap();
        assert_eq!(
            read(fd.as_fd(), c"env", 4096),
            None,
            "no way out of the root"
        );
    }

    #[test]
    fn fifos_directories_and_procfs_are_refused_at_once() {
        let root = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&root.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let fd = open(root.path());
        assert_eq!(read(fd.as_fd(), c"fifo", 4096), None);
        assert_eq!(read(fd.as_fd(), c".", 4096), None);
        let host_root = open(std::path::Path::new("/"));
        assert_eq!(read(host_root.as_fd(), c"proc/self/environ", 4096), None);
    }

    #[test]
    fn passwd_names_the_first_plain_entry_of_a_uid() {
        let passwd = b"+::0:0:::\nroot:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/:/bin/sh\n\
                       bad name:x:1000:1000::/:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n\
                       short:x\n:x:7:7::/:\nbob:x:01001:1001::/:/bin/sh";
        assert_eq!(passwd_name(passwd, 0), Some("root"));
        assert_eq!(passwd_name(passwd, 1000), Some("ann"));
        assert_eq!(
            passwd_name(passwd, 1001),
            Some("bob"),
            "no newline at the end"
        );
        assert_eq!(passwd_name(passwd, 7), None, "an empty name");
        assert_eq!(passwd_name(passwd, 2), None);
        assert_eq!(passwd_name(b"\xff:x:3:3::/:\n", 3), None, "not UTF-8");
    }

    #[test]
    fn a_long_file_is_cut_after_its_last_whole_line() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), "aaaa\nbbbb\ncccc\n").unwrap();
        let fd = open(root.path());
        assert_eq!(
            read(fd.as_fd(), c"f", 12).as_deref(),
            Some(&b"aaaa\nbbbb\n"[..])
        );
        assert_eq!(
            read(fd.as_fd(), c"f", 15).as_deref(),
            Some(&b"aaaa\nbbbb\ncccc\n"[..])
        );
        assert_eq!(read(fd.as_fd(), c"f", 3).as_deref(), Some(&b""[..]));
    }

    /// The limit bounds the read; the buffer is the file's size. A buffer of the limit was
    /// zeroed on every launch (1 MiB for /etc/passwd); one of this limit cannot be made.
    #[test]
    fn the_buffer_is_the_file_not_the_limit() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), "aaaa\n").unwrap();
        let fd = open(root.path());
        let file = read(fd.as_fd(), c"f", usize::MAX).unwrap();
        assert_eq!(file, b"aaaa\n");
        assert!(file.capacity() < 4096, "{}", file.capacity());
    }
}
