//! System calls that layers below the executor make too (cgroup teardown signals what is left
//! in a group through pidfds): the crate's syscall seam, which the executor's own wrappers
//! (`exec::sys`) build on. Only raw calls belong here, each `unsafe` with its `// SAFETY:`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

pub type Result<T> = std::result::Result<T, Errno>;

/// A raw syscall's return value, or the errno it set.
pub(crate) fn check(ret: libc::c_long) -> Result<libc::c_long> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// Wrap a descriptor the kernel just returned.
pub(crate) fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nothing else refers to it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo and no flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// A pidfd for an existing process (pidfd_open(2)), close-on-exec. Signals sent through it
/// never reach another process that later gets the same pid.
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd> {
    // SAFETY: a pid and no flags; the kernel returns a new descriptor.
    check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(owned)
}
