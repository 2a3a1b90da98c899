//! The crate's syscall seam. [`raw`] holds the raw calls (the only `unsafe` outside `main.rs`);
//! [`Sys`] is every kernel call the executor's steps make through a `&dyn Sys`, so that a step
//! can be run against [`fake::Fake`], which records each call and returns scripted results,
//! and unit-tested without root. [`Kernel`] is the real implementation: plain calls, nothing
//! recorded, nothing allocated beyond what the call itself needs.

pub mod beneath;
#[cfg(test)]
pub mod fake;
#[allow(unsafe_code)]
pub mod raw;

use std::ffi::{CStr, CString, OsString};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{ExitStatus, Output};

use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::SigSet;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::wait::WaitStatus;
use nix::unistd::{Gid, Uid};

use crate::netlink::Socket;

pub use raw::{
    MOUNT_ATTR_IDMAP, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
    Result, pidfd_open, pidfd_send_signal,
};

/// What mount_setattr(2) sets on a mount: [`SetAttr::on`] it alone, [`SetAttr::below`] on it
/// and every mount below it.
#[derive(Debug, Clone, Copy)]
pub struct SetAttr<'a> {
    /// MOUNT_ATTR_* bits.
    pub set: u64,
    pub recursive: bool,
    /// Make the mount id-mapped through this user namespace's map.
    pub userns: Option<BorrowedFd<'a>>,
}

impl<'a> SetAttr<'a> {
    pub fn on(set: u64) -> Self {
        SetAttr {
            set,
            recursive: false,
            userns: None,
        }
    }

    pub fn below(set: u64) -> Self {
        SetAttr {
            recursive: true,
            ..SetAttr::on(set)
        }
    }

    pub fn idmapped(self, userns: Option<BorrowedFd<'a>>) -> Self {
        SetAttr { userns, ..self }
    }
}

/// A directory paths are relative to; `None` is the current directory.
pub type Dir<'a> = Option<BorrowedFd<'a>>;

/// What a name is, as far as the steps care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    Other,
}

/// What `stat` tells: the kind, and the identity (device, inode) of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: FileKind,
    pub id: (u64, u64),
}

/// The kernel calls of the executor's steps. Paths are `CStr`s, as the kernel takes them.
pub trait Sys {
    /// fsopen(2): a new file system of `fstype` to configure.
    fn fsopen(&self, fstype: &CStr) -> Result<OwnedFd>;
    /// fsconfig(FSCONFIG_SET_STRING).
    fn fsconfig_set(&self, fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<()>;
    /// fsconfig(FSCONFIG_SET_FLAG).
    fn fsconfig_flag(&self, fs: BorrowedFd<'_>, key: &CStr) -> Result<()>;
    /// fsconfig(FSCONFIG_CMD_CREATE), then fsmount(2) with `attrs` (MOUNT_ATTR_*): the
    /// superblock as a detached mount.
    fn fsmount(&self, fs: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd>;
    /// open_tree(OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of the tree at `path` below
    /// `dir` (an empty path: `dir` itself).
    fn open_tree(&self, dir: Dir<'_>, path: &CStr) -> Result<OwnedFd>;
    fn mount_setattr(&self, mount: BorrowedFd<'_>, attr: SetAttr<'_>) -> Result<()>;
    /// move_mount(2) of a detached mount onto `name` in `dir` (empty: `dir` itself).
    fn move_mount(&self, mount: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> Result<()>;
    /// mount(2) with MS_REC | MS_PRIVATE on `/`: nothing propagates to or from the host.
    fn make_mounts_private(&self) -> Result<()>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()>;
    /// umount2(MNT_DETACH): the mount on `path` and every mount below it, gone.
    fn detach(&self, path: &CStr) -> Result<()>;
    fn fchdir(&self, dir: BorrowedFd<'_>) -> Result<()>;
    fn chdir(&self, path: &CStr) -> Result<()>;

    /// openat2(2), always close-on-exec.
    fn openat2(&self, dir: Dir<'_>, path: &CStr, flags: i32, resolve: u64) -> Result<OwnedFd>;
    /// openat(2), always close-on-exec.
    fn openat(&self, dir: Dir<'_>, path: &CStr, flags: i32, mode: u32) -> Result<OwnedFd>;
    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<()>;
    fn symlinkat(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<()>;
    fn readlinkat(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<OsString>;
    fn fchmod(&self, fd: BorrowedFd<'_>, mode: u32) -> Result<()>;
    /// fstatat(AT_SYMLINK_NOFOLLOW) of `name` in `dir`; an empty name is `dir` itself.
    fn stat(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<Stat>;
    /// write(2) until every byte is written.
    fn write_all(&self, fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<()>;
    /// pwrite(2) of every byte at `offset`.
    fn write_all_at(&self, fd: BorrowedFd<'_>, bytes: &[u8], offset: u64) -> Result<()>;
    fn ftruncate(&self, fd: BorrowedFd<'_>, len: u64) -> Result<()>;
    /// linkat(2): `old` (a name in a directory) linked as `new`, not following a symlink.
    fn linkat(&self, old: (BorrowedFd<'_>, &CStr), new: (BorrowedFd<'_>, &CStr)) -> Result<()>;
    /// mknodat(2); `mode` holds the node's type (S_IFCHR, S_IFBLK, S_IFIFO).
    fn mknodat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> Result<()>;
    /// fchmodat(2) of `name` in `dir`.
    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<()>;
    /// The owner of `name` in `dir`, not following a symlink; an empty name is `dir` itself.
    fn chown(&self, dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> Result<()>;
    /// The modification time of `name` in `dir`, not following a symlink (the access time
    /// left alone); an empty name is `dir` itself.
    fn set_mtime(&self, dir: BorrowedFd<'_>, name: &CStr, seconds: i64) -> Result<()>;
    /// fsetxattr(2).
    fn set_xattr(&self, fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> Result<()>;
    /// The names in the directory `dir`, without `.` and `..`.
    fn list_dir(&self, dir: BorrowedFd<'_>) -> Result<Vec<OsString>>;
    /// unlinkat(2); `dir_entry` removes an (empty) directory.
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &CStr, dir_entry: bool) -> Result<()>;
    /// Write a whole (proc) file: open, one write, close.
    fn write_file(&self, path: &Path, contents: &[u8]) -> Result<()>;

    fn setresuid(&self, uid: u32) -> Result<()>;
    fn setresgid(&self, gid: u32) -> Result<()>;
    /// setgroups(2).
    fn setgroups(&self, groups: &[u32]) -> Result<()>;
    /// setrlimit(2).
    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> Result<()>;
    /// PR_CAPBSET_DROP of every capability in the `held` mask (what the bounding set may
    /// hold) not in the `kept` one.
    fn limit_bounding_set(&self, held: u64, kept: u64) -> Result<()>;
    /// capset(2): permitted and effective `capabilities`, and `inheritable`.
    fn set_capabilities(&self, capabilities: u64, inheritable: u64) -> Result<()>;
    /// The ambient set: cleared, then `raised` (a mask) raised in it.
    fn set_ambient(&self, raised: u64) -> Result<()>;
    /// PR_SET_KEEPCAPS.
    fn set_keepcaps(&self, keep: bool) -> Result<()>;
    /// PR_SET_NO_NEW_PRIVS.
    fn set_no_new_privs(&self) -> Result<()>;
    /// PR_SET_SECUREBITS.
    fn set_securebits(&self, bits: libc::c_ulong) -> Result<()>;
    /// seccomp(SECCOMP_SET_MODE_FILTER) of `program`.
    fn seccomp_set_filter(&self, program: &[libc::sock_filter]) -> Result<()>;

    /// setsid(2).
    fn setsid(&self) -> Result<()>;
    /// `fd` as standard input, output and error (dup2).
    fn make_stdio(&self, fd: BorrowedFd<'_>) -> Result<()>;
    /// TIOCSCTTY: the terminal `fd` as the session's controlling terminal.
    fn set_controlling_terminal(&self, fd: BorrowedFd<'_>) -> Result<()>;
    /// SIGPIPE's disposition and the signal mask, as the launcher's caller had them.
    fn restore_caller_signals(&self, sigpipe_ignored: bool, mask: &SigSet);
    /// umask(2).
    fn umask(&self, mask: u32);
    /// close_range(CLOSE_RANGE_CLOEXEC) from `first` up.
    fn cloexec_from(&self, first: u32) -> Result<()>;
    /// execve(2): returns only on failure, with its errno.
    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno;
    fn sethostname(&self, name: &str) -> Result<()>;
    fn setdomainname(&self, name: &str) -> Result<()>;
    /// unshare(2) with CLONE_* `flags`.
    fn unshare(&self, flags: i32) -> Result<()>;
    /// setns(2) into the namespace `ns` of type `kind` (CLONE_NEW*).
    fn setns(&self, ns: BorrowedFd<'_>, kind: i32) -> Result<()>;
    /// PR_SET_DUMPABLE.
    fn set_dumpable(&self, dumpable: bool) -> Result<()>;
    /// Run a helper program (newuidmap) to its end.
    fn run(&self, program: &Path, args: &[String]) -> Result<ExitStatus>;
    /// The effective uid.
    fn euid(&self) -> u32;

    /// Block `set` in this thread's signal mask.
    fn block_signals(&self, set: &SigSet) -> Result<()>;
    /// A handler that does nothing for `signal`: so pid 1 of a namespace receives it.
    fn install_noop_handler(&self, signal: i32) -> Result<()>;
    /// pidfd_send_signal(2).
    fn pidfd_send_signal(&self, pidfd: BorrowedFd<'_>, signal: i32) -> Result<()>;
    /// waitid(P_PIDFD, WEXITED): wait for the process to end, and reap it.
    fn wait_exit(&self, pidfd: BorrowedFd<'_>) -> Result<WaitStatus>;
    /// TIOCSPTLCK: unlock the pty of the master `master`.
    fn unlock_pty(&self, master: BorrowedFd<'_>) -> Result<()>;
    /// TIOCGPTN: the number of the pty of the master `master`.
    fn pty_number(&self, master: BorrowedFd<'_>) -> Result<u32>;

    /// A route netlink socket, in this process's network namespace.
    fn netlink_open(&self) -> Result<Socket>;
    /// One rtnetlink request on `socket`, and its answers.
    fn netlink_request(
        &self,
        socket: &mut Socket,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>>;
    /// Run `program` with `args` to its end, `input` on its standard input (its output
    /// discarded): its exit status and what it wrote to standard error.
    fn run_fed(&self, program: &Path, args: &[&str], input: &[u8]) -> Result<Output>;
    /// Read a whole (proc) file.
    fn read_file(&self, path: &Path) -> Result<Vec<u8>>;

    /// Open `path` below `dir` as if `dir` were the root: `..` and absolute symlinks cannot
    /// leave it, and no magic link (/proc/PID/fd/N) is followed.
    fn open_in_root(&self, dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> Result<OwnedFd> {
        let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        self.openat2(Some(dir), path, flags, resolve)
    }

    /// Attach the detached `mount` on top of the file or directory `target`.
    fn attach(&self, mount: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<()> {
        self.move_mount(mount, target, c"")
    }
}

/// The running kernel.
pub struct Kernel;

/// The one instance the launcher passes around.
pub static KERNEL: Kernel = Kernel;

fn io_errno(error: std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}

impl Sys for Kernel {
    fn fsopen(&self, fstype: &CStr) -> Result<OwnedFd> {
        raw::fsopen(fstype)
    }

    fn fsconfig_set(&self, fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<()> {
        raw::fsconfig_set(fs, key, value)
    }

    fn fsconfig_flag(&self, fs: BorrowedFd<'_>, key: &CStr) -> Result<()> {
        raw::fsconfig_flag(fs, key)
    }

    fn fsmount(&self, fs: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd> {
        raw::fsmount(fs, attrs)
    }

    fn open_tree(&self, dir: Dir<'_>, path: &CStr) -> Result<OwnedFd> {
        raw::open_tree_clone(dir, path)
    }

    fn mount_setattr(&self, mount: BorrowedFd<'_>, attr: SetAttr<'_>) -> Result<()> {
        raw::mount_setattr(mount, attr)
    }

    fn move_mount(&self, mount: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        raw::move_mount_at(mount, dir, name)
    }

    fn make_mounts_private(&self) -> Result<()> {
        use nix::mount::MsFlags;
        let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn detach(&self, path: &CStr) -> Result<()> {
        nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH)
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> Result<()> {
        nix::unistd::fchdir(dir)
    }

    fn chdir(&self, path: &CStr) -> Result<()> {
        nix::unistd::chdir(path)
    }

    fn openat2(&self, dir: Dir<'_>, path: &CStr, flags: i32, resolve: u64) -> Result<OwnedFd> {
        raw::openat2(dir, path, flags, resolve)
    }

    fn openat(&self, dir: Dir<'_>, path: &CStr, flags: i32, mode: u32) -> Result<OwnedFd> {
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(mode);
        match dir {
            Some(dir) => nix::fcntl::openat(dir, path, flags, mode),
            None => nix::fcntl::open(path, flags, mode),
        }
    }

    fn mkdirat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<()> {
        nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode))
    }

    fn symlinkat(&self, target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
        nix::unistd::symlinkat(target, dir, name)
    }

    fn readlinkat(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<OsString> {
        nix::fcntl::readlinkat(dir, name)
    }

    fn fchmod(&self, fd: BorrowedFd<'_>, mode: u32) -> Result<()> {
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode))
    }

    fn stat(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<Stat> {
        let stat = if name.is_empty() {
            nix::sys::stat::fstat(dir)?
        } else {
            nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?
        };
        let kind = match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFDIR => FileKind::Dir,
            _ => FileKind::Other,
        };
        Ok(Stat {
            kind,
            id: (stat.st_dev, stat.st_ino),
        })
    }

    fn write_all(&self, fd: BorrowedFd<'_>, bytes: &[u8]) -> Result<()> {
        raw::write_all(fd, bytes)
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> Result<()> {
        std::fs::write(path, contents).map_err(io_errno)
    }

    fn write_all_at(&self, fd: BorrowedFd<'_>, mut bytes: &[u8], mut offset: u64) -> Result<()> {
        while !bytes.is_empty() {
            match nix::sys::uio::pwrite(fd, bytes, offset as libc::off_t) {
                Ok(0) => return Err(Errno::EIO),
                Ok(n) => {
                    bytes = &bytes[n..];
                    offset += n as u64;
                }
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno),
            }
        }
        Ok(())
    }

    fn ftruncate(&self, fd: BorrowedFd<'_>, len: u64) -> Result<()> {
        nix::unistd::ftruncate(fd, len as libc::off_t)
    }

    fn linkat(&self, old: (BorrowedFd<'_>, &CStr), new: (BorrowedFd<'_>, &CStr)) -> Result<()> {
        nix::unistd::linkat(old.0, old.1, new.0, new.1, AtFlags::empty())
    }

    fn mknodat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> Result<()> {
        let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
        nix::sys::stat::mknodat(dir, name, kind, Mode::from_bits_truncate(mode), dev)
    }

    fn fchmodat(&self, dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<()> {
        use nix::sys::stat::FchmodatFlags;
        let mode = Mode::from_bits_truncate(mode);
        nix::sys::stat::fchmodat(dir, name, mode, FchmodatFlags::FollowSymlink)
    }

    fn chown(&self, dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> Result<()> {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        if name.is_empty() {
            return nix::unistd::fchown(dir, uid, gid);
        }
        nix::unistd::fchownat(dir, name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
    }

    fn set_mtime(&self, dir: BorrowedFd<'_>, name: &CStr, seconds: i64) -> Result<()> {
        use nix::sys::stat::UtimensatFlags;
        use nix::sys::time::TimeSpec;
        let (atime, mtime) = (TimeSpec::UTIME_OMIT, TimeSpec::new(seconds, 0));
        if name.is_empty() {
            return nix::sys::stat::futimens(dir, &atime, &mtime);
        }
        let flags = UtimensatFlags::NoFollowSymlink;
        nix::sys::stat::utimensat(dir, name, &atime, &mtime, flags)
    }

    fn set_xattr(&self, fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> Result<()> {
        use xattr::FileExt as _;
        let file = std::fs::File::from(fd.try_clone_to_owned().map_err(io_errno)?);
        file.set_xattr(name, value).map_err(io_errno)
    }

    fn list_dir(&self, dir: BorrowedFd<'_>) -> Result<Vec<OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(dir, ".", flags, Mode::empty())?;
        let mut listing = nix::dir::Dir::from_fd(fd)?;
        let mut names = Vec::new();
        for entry in listing.iter() {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(&name).to_os_string());
            }
        }
        Ok(names)
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &CStr, dir_entry: bool) -> Result<()> {
        use nix::unistd::UnlinkatFlags;
        let flags = match dir_entry {
            true => UnlinkatFlags::RemoveDir,
            false => UnlinkatFlags::NoRemoveDir,
        };
        nix::unistd::unlinkat(dir, name, flags)
    }

    fn setresuid(&self, uid: u32) -> Result<()> {
        let uid = Uid::from_raw(uid);
        nix::unistd::setresuid(uid, uid, uid)
    }

    fn setresgid(&self, gid: u32) -> Result<()> {
        let gid = Gid::from_raw(gid);
        nix::unistd::setresgid(gid, gid, gid)
    }

    fn setgroups(&self, groups: &[u32]) -> Result<()> {
        let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups)
    }

    fn setrlimit(&self, resource: Resource, soft: u64, hard: u64) -> Result<()> {
        nix::sys::resource::setrlimit(resource, soft, hard)
    }

    fn limit_bounding_set(&self, held: u64, kept: u64) -> Result<()> {
        raw::limit_bounding_set(held, kept)
    }

    fn set_capabilities(&self, capabilities: u64, inheritable: u64) -> Result<()> {
        raw::set_capabilities(capabilities, inheritable)
    }

    fn set_ambient(&self, raised: u64) -> Result<()> {
        use caps::CapSet;
        let errno = |_| Errno::last();
        caps::clear(None, CapSet::Ambient).map_err(errno)?;
        for capability in caps::all() {
            if raised & capability.bitmask() != 0 {
                caps::raise(None, CapSet::Ambient, capability).map_err(errno)?;
            }
        }
        Ok(())
    }

    fn set_keepcaps(&self, keep: bool) -> Result<()> {
        nix::sys::prctl::set_keepcaps(keep)
    }

    fn set_no_new_privs(&self) -> Result<()> {
        nix::sys::prctl::set_no_new_privs()
    }

    fn set_securebits(&self, bits: libc::c_ulong) -> Result<()> {
        raw::set_securebits(bits)
    }

    fn seccomp_set_filter(&self, program: &[libc::sock_filter]) -> Result<()> {
        raw::seccomp_set_filter(program)
    }

    fn setsid(&self) -> Result<()> {
        nix::unistd::setsid().map(drop)
    }

    fn make_stdio(&self, fd: BorrowedFd<'_>) -> Result<()> {
        nix::unistd::dup2_stdin(fd)?;
        nix::unistd::dup2_stdout(fd)?;
        nix::unistd::dup2_stderr(fd)
    }

    fn set_controlling_terminal(&self, fd: BorrowedFd<'_>) -> Result<()> {
        raw::ioctl_set_ctty(fd)
    }

    fn restore_caller_signals(&self, sigpipe_ignored: bool, mask: &SigSet) {
        raw::restore_caller_signals(sigpipe_ignored, mask.as_ref())
    }

    fn umask(&self, mask: u32) {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }

    fn cloexec_from(&self, first: u32) -> Result<()> {
        raw::cloexec_from(first)
    }

    fn execve(&self, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
        raw::execve(path, argv, envp)
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name)
    }

    fn setdomainname(&self, name: &str) -> Result<()> {
        raw::set_domainname(name)
    }

    fn unshare(&self, flags: i32) -> Result<()> {
        nix::sched::unshare(CloneFlags::from_bits_retain(flags))
    }

    fn setns(&self, ns: BorrowedFd<'_>, kind: i32) -> Result<()> {
        nix::sched::setns(ns, CloneFlags::from_bits_retain(kind))
    }

    fn set_dumpable(&self, dumpable: bool) -> Result<()> {
        nix::sys::prctl::set_dumpable(dumpable)
    }

    fn run(&self, program: &Path, args: &[String]) -> Result<ExitStatus> {
        std::process::Command::new(program)
            .args(args)
            .status()
            .map_err(io_errno)
    }

    fn euid(&self) -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn block_signals(&self, set: &SigSet) -> Result<()> {
        set.thread_block()
    }

    fn install_noop_handler(&self, signal: i32) -> Result<()> {
        raw::install_noop_handler(signal)
    }

    fn pidfd_send_signal(&self, pidfd: BorrowedFd<'_>, signal: i32) -> Result<()> {
        raw::pidfd_send_signal(pidfd, signal)
    }

    fn wait_exit(&self, pidfd: BorrowedFd<'_>) -> Result<WaitStatus> {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        waitid(Id::PIDFd(pidfd), WaitPidFlag::WEXITED)
    }

    fn unlock_pty(&self, master: BorrowedFd<'_>) -> Result<()> {
        raw::unlock_pty(master)
    }

    fn pty_number(&self, master: BorrowedFd<'_>) -> Result<u32> {
        raw::pty_number(master)
    }

    fn netlink_open(&self) -> Result<Socket> {
        Socket::open(nix::sys::socket::SockProtocol::NetlinkRoute)
    }

    fn netlink_request(
        &self,
        socket: &mut Socket,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        socket.exchange(message, flags)
    }

    fn run_fed(&self, program: &Path, args: &[&str], input: &[u8]) -> Result<Output> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_errno)?;
        // A refusal can come before the program read it all: a broken pipe is then no error
        // of its own, the exit status and stderr say why.
        let written = child.stdin.take().map(|mut stdin| stdin.write_all(input));
        let output = child.wait_with_output().map_err(io_errno)?;
        match written {
            Some(Err(error)) if output.status.success() => Err(io_errno(error)),
            _ => Ok(output),
        }
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(io_errno)
    }
}

/// Field `n` (counted from 1, as proc(5) does; 3 or more) of a /proc/PID/stat line. The
/// command name, field 2, is the process's to choose, spaces and parentheses included: fields
/// are counted from its last `)`.
pub fn proc_stat_field(stat: &str, n: usize) -> Option<&str> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(n.checked_sub(3)?)
}

/// An ioctl request constant as a system call argument: libc types them unsigned long for
/// glibc, int for musl.
#[cfg(test)]
#[allow(clippy::unnecessary_cast)] // only on glibc
pub(crate) fn ioctl_request(request: libc::Ioctl) -> u64 {
    request as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (a) 1 (c) S 77 4242 4242";
        assert_eq!(proc_stat_field(stat, 3), Some("S"));
        assert_eq!(proc_stat_field(stat, 4), Some("77"));
        assert_eq!(
            proc_stat_field(stat, 2),
            None,
            "the name is not a field to read"
        );
        assert_eq!(proc_stat_field("garbage", 4), None);
    }
}
