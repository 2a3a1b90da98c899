//! The raw system calls: the only `unsafe` outside `main.rs`, each block with its `// SAFETY:`.
//! Everything else goes through these wrappers, through [`Sys`](super::Sys), or through nix,
//! caps and landlock.
//!
//! Mounts use the file-descriptor mount API (open_tree, fsopen/fsmount, move_mount,
//! mount_setattr; Linux 5.12+): a mount is built detached, given its flags, and only then
//! attached to a target that was itself opened with openat2(RESOLVE_IN_ROOT). Nothing is ever
//! resolved by path twice, so a symlink swapped into the new root cannot redirect a mount.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use nix::errno::Errno;

use super::SetAttr;

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

/// Take ownership of a descriptor passed to us with SCM_RIGHTS.
pub fn adopt_received(fd: RawFd) -> OwnedFd {
    owned(fd as libc::c_long)
}

/// The landlock ABI version of the running kernel; 0 when landlock is unavailable.
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the call only returns
    // the ABI version (or an error); it reads and writes no memory.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).unwrap_or(0)
}

/// Install a seccomp filter on the calling thread; it stays across execve. The kernel takes it
/// only with no_new_privs set or CAP_SYS_ADMIN in the user namespace.
pub fn seccomp_set_filter(program: &[libc::sock_filter]) -> Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points to `len` instructions in `program`, which outlives the call; the
    // kernel copies the program and does not write through the pointer.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// Fill `buffer` from the kernel's random pool (getrandom(2), without opening /dev/urandom).
pub fn fill_random(buffer: &mut [u8]) -> Result<()> {
    // SAFETY: the kernel writes at most `buffer.len()` bytes into `buffer`, which is borrowed
    // mutably for the call.
    let filled =
        check(unsafe { libc::syscall(libc::SYS_getrandom, buffer.as_mut_ptr(), buffer.len(), 0) })?;
    if filled as usize == buffer.len() {
        Ok(())
    } else {
        Err(Errno::EAGAIN)
    }
}

/// Set the effective and permitted capability sets to `capabilities` and the inheritable one
/// to `inheritable` (masks of `1 << CAP_*`) in one capset(2), where going set by set costs a
/// capget and a capset each.
pub fn set_capabilities(capabilities: u64, inheritable: u64) -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    // Version 3 takes the 64 bits as two words, the low 32 first.
    let word = |mask: u64, high: bool| {
        if high {
            (mask >> 32) as u32
        } else {
            mask as u32
        }
    };
    let data = [false, true].map(|high| Data {
        effective: word(capabilities, high),
        permitted: word(capabilities, high),
        inheritable: word(inheritable, high),
    });
    // SAFETY: `header` and the two `data` words are the layout capset(2) reads for version 3;
    // both outlive the call and the kernel only reads them.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) })
        .map(drop)
}

/// securebits(7) of a process that must never regain a capability: execve grants root none
/// (SECBIT_NOROOT), a uid change from root clears them (SECBIT_NO_SETUID_FIXUP stays off),
/// PR_SET_KEEPCAPS and raising ambient capabilities are refused, and each of these is locked.
pub const SECUREBITS_LOCKED_DOWN: libc::c_ulong = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// PR_SET_SECUREBITS; needs CAP_SETPCAP in the process's user namespace.
pub fn set_securebits(bits: libc::c_ulong) -> Result<()> {
    // SAFETY: PR_SET_SECUREBITS takes one integer argument and touches no memory.
    check(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) } as libc::c_long).map(drop)
}

/// Drop from the bounding set every capability of `held` not in `kept` (masks of `1 << CAP_*`);
/// with `held` all ones, also those newer than this program: the kernel refuses the first
/// number past its last one (EINVAL). Needs CAP_SETPCAP.
pub fn limit_bounding_set(held: u64, kept: u64) -> Result<()> {
    // Capability sets are 64 bits wide.
    for capability in (0..64).filter(|capability| held & !kept & (1 << capability) != 0) {
        // SAFETY: PR_CAPBSET_DROP takes one integer argument and touches no memory.
        let dropped = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) };
        match check(dropped as libc::c_long) {
            Ok(_) => {}
            Err(Errno::EINVAL) if capability > 0 => return Ok(()),
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// Words of memory shared by this process and every process forked from it afterwards (an
/// anonymous MAP_SHARED mapping): a child writes, the parent reads, with no system call.
pub struct SharedWords {
    map: std::ptr::NonNull<libc::c_void>,
    count: usize,
}

impl SharedWords {
    pub fn new(count: usize) -> Result<SharedWords> {
        let size = std::num::NonZeroUsize::new(count.max(1) * 8).expect("non-zero");
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let map = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                size,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
            )
        }?;
        Ok(SharedWords { map, count })
    }

    pub fn words(&self) -> &[std::sync::atomic::AtomicU64] {
        // SAFETY: the mapping is page-aligned, zero-filled, at least `count` words long and
        // lives as long as `self`; AtomicU64 has u64's layout and allows shared mutation, also
        // across processes sharing the page.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast(), self.count) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` with this size and nothing borrows it anymore
        // (`words` borrows `self`).
        let _ = unsafe { nix::sys::mman::munmap(self.map, self.count.max(1) * 8) };
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

pub enum Forked {
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    Child,
}

/// clone3 with fork semantics (no new stack): the child continues from here with a copy of the
/// address space, in the namespaces `flags` asks for. The parent also gets a pidfd, so it can
/// wait and signal without racing pid reuse.
///
/// Only call this while the process is single-threaded: the child has one thread, and anything
/// another thread held locked stays locked in it.
pub fn clone3(flags: u64, into_cgroup: Option<BorrowedFd<'_>>) -> Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = libc::clone_args {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: 0,
    };
    if let Some(cgroup) = into_cgroup {
        const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cgroup.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args that outlives the call, and `pidfd` points to an int
    // the kernel fills in. With stack 0 the child runs on a copy of this stack, like fork(2).
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    })?;
    if ret == 0 {
        Ok(Forked::Child)
    } else {
        Ok(Forked::Parent {
            pid: ret as libc::pid_t,
            pidfd: owned(pidfd as libc::c_long),
        })
    }
}

/// Start a process that borrows this one's memory until it executes a program, as
/// posix_spawn does (CLONE_VM | CLONE_VFORK): no page table is copied and no page faulted in
/// again, which fork does for the launcher's whole heap (about 0.1 ms, 30 page faults).
///
/// `child` runs in the new process on a stack of its own and must end in execve or
/// [`exit_now`]. This process is suspended until then, so the child may allocate (nothing else
/// runs in this memory meanwhile) but must not drop what this process still owns; it shares
/// this thread's TLS, so it must not use thread identity (std's thread handle, raise(3)).
pub fn spawn(child: &mut dyn FnMut() -> std::convert::Infallible) -> Result<libc::pid_t> {
    type Child<'a> = &'a mut dyn FnMut() -> std::convert::Infallible;
    #[allow(unreachable_code)] // `child` never returns: it execs or exits
    extern "C" fn start(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `Child` below, on the suspended parent's stack, alive until
        // the child executes or exits.
        let child = unsafe { &mut *(arg as *mut Child<'_>) };
        match child() {}
    }
    const STACK: usize = 1 << 20;
    let page = 4096;
    // SAFETY: a new private anonymous mapping; pages are only faulted in when used.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: the lowest page of the mapping just made: an overflow faults instead of
    // running into other memory.
    unsafe { libc::mprotect(stack, page, libc::PROT_NONE) };
    let mut child: Child<'_> = child;
    // SAFETY: the stack grows down from the end of the mapping; `start` gets a pointer to
    // `child`, which outlives the call (CLONE_VFORK returns after the child's execve or exit).
    let pid = unsafe {
        libc::clone(
            start,
            stack.cast::<u8>().add(STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut child as *mut Child<'_>).cast(),
        )
    };
    let spawned = if pid < 0 { Err(Errno::last()) } else { Ok(pid) };
    // SAFETY: the child no longer runs on this stack (see above), nothing else uses it.
    unsafe { libc::munmap(stack, STACK) };
    spawned
}

/// fork(2) through glibc, which keeps its own view of the thread id right in the child.
pub fn fork() -> Result<Option<libc::pid_t>> {
    // SAFETY: every caller is single-threaded (the launcher before its clone, `up -d`, `ps`),
    // so the child inherits no lock another thread held.
    match unsafe { libc::fork() } {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Mark every descriptor from `first` up close-on-exec, so the command inherits only 0, 1, 2.
pub fn cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range only changes descriptor flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(drop)
}

/// Close every descriptor from `first` up.
pub fn close_from(first: u32) -> Result<()> {
    // SAFETY: close_range only closes descriptors; the callers own every descriptor >= first.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) }).map(drop)
}

/// Close every descriptor from `first` up, except those in `keep`.
pub fn close_from_except(first: u32, keep: &[RawFd]) -> Result<()> {
    let mut kept: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .filter(|fd| *fd >= first)
        .collect();
    kept.sort_unstable();
    let mut from = first;
    for fd in kept {
        if fd > from {
            // SAFETY: as in close_from, for the descriptors from..fd-1.
            check(unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) })?;
        }
        from = fd + 1;
    }
    close_from(from)
}

/// execve; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: both arrays are NULL-terminated and their strings outlive the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// write(2) until every byte is written.
pub fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// _exit(2): leave without running destructors or flushing anything shared with the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no user-space state.
    unsafe { libc::_exit(code) }
}

// ---------------------------------------------------------------------------------------------
// The file-descriptor mount API (linux/mount.h)

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount tree at `path` (recursively, like `mount --rbind`); `path` is
/// relative to `dir`, or with an empty path, `dir` itself.
pub fn open_tree_clone(dir: Option<BorrowedFd<'_>>, path: &CStr) -> Result<OwnedFd> {
    let empty = if path.is_empty() {
        libc::AT_EMPTY_PATH as libc::c_uint
    } else {
        0
    };
    // SAFETY: a NUL-terminated path relative to a valid descriptor (or the cwd), and flags; the
    // kernel returns a new descriptor.
    check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()),
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE | empty,
        )
    })
    .map(owned)
}

/// mount_setattr(2): set `attr` on a mount (see [`SetAttr`]).
pub fn mount_setattr(mount: BorrowedFd<'_>, attr: SetAttr<'_>) -> Result<()> {
    let mut kernel_attr = MountAttr {
        attr_set: attr.set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: attr.userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    if attr.userns.is_some() {
        kernel_attr.attr_set |= MOUNT_ATTR_IDMAP;
    }
    let recursive = if attr.recursive { AT_RECURSIVE } else { 0 };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | recursive;
    // SAFETY: an empty path with AT_EMPTY_PATH acts on `mount`; `kernel_attr` is a valid
    // mount_attr whose size we pass.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &mut kernel_attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Attach the detached mount `mount` on top of the file or directory `target`.
pub fn move_mount(mount: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<()> {
    move_mount_at(mount, target, c"")
}

/// [`move_mount`] onto `name` in the directory `dir` (the last component is not followed when
/// it is a symlink); an empty name is `dir` itself.
pub fn move_mount_at(mount: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> Result<()> {
    let to_empty = if name.is_empty() {
        MOVE_MOUNT_T_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: the empty source path with F_EMPTY_PATH acts on `mount`; `name` is NUL-terminated
    // and relative to the valid descriptor `dir`.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | to_empty,
        )
    })
    .map(drop)
}

/// fsopen(2): a file system being configured, to become a detached mount with [`fsmount`].
pub fn fsopen(fstype: &CStr) -> Result<OwnedFd> {
    // SAFETY: a NUL-terminated file system name.
    check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) }).map(owned)
}

pub fn fsconfig_set(fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<()> {
    // SAFETY: NUL-terminated key and value on a valid fs context.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

pub fn fsconfig_flag(fs: BorrowedFd<'_>, key: &CStr) -> Result<()> {
    // SAFETY: a NUL-terminated key on a valid fs context; flags take no value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<u8>(),
            0,
        )
    })
    .map(drop)
}

/// Create the superblock of a configured fs context and return it as a detached mount with
/// `attrs` (MOUNT_ATTR_*).
pub fn fsmount(fs: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd> {
    // SAFETY: a valid fs context; CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    // SAFETY: a created fs context; attrs are MOUNT_ATTR_* bits.
    check(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
        .map(owned)
}

/// openat2: open `path` below `dir`, resolving it as if `dir` were the root: `..` and absolute
/// symlinks cannot leave it.
pub fn open_in_root(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> Result<OwnedFd> {
    openat2(
        Some(dir),
        path,
        flags,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// openat2: open `path` below `dir` exactly as it is spelled: no symlink anywhere on the way
/// (ELOOP), nothing above `dir` (EXDEV).
pub fn open_beneath_no_symlinks(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> Result<OwnedFd> {
    openat2(
        Some(dir),
        path,
        flags,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
    )
}

/// openat2(2): open `path` (relative to `dir`, or the current directory) resolving it as
/// `resolve` (RESOLVE_* flags) says.
pub fn openat2(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: i32,
    resolve: u64,
) -> Result<OwnedFd> {
    // SAFETY: open_how is plain data; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    loop {
        // SAFETY: `how` is a valid open_how whose size we pass; `path` is NUL-terminated.
        match check(unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd()),
                path.as_ptr(),
                &mut how as *mut libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        }) {
            // A mount or rename anywhere on the machine raced a `..` of the lookup, which the
            // kernel cannot then prove stayed below `dir`: openat2(2) says to try again.
            Err(Errno::EAGAIN) => continue,
            opened => return opened.map(owned),
        }
    }
}

pub fn set_domainname(name: &str) -> Result<()> {
    // SAFETY: a pointer and length of a valid byte slice.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long)
        .map(drop)
}

// ---------------------------------------------------------------------------------------------
// The process's arguments

/// The memory behind /proc/PID/cmdline and /proc/PID/environ: the argument strings the kernel
/// wrote at exec, and the environment strings right after them. Noted by `main`.
static ARGUMENTS: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
/// The arguments' length, NULs included.
static ARGUMENTS_LEN: AtomicUsize = AtomicUsize::new(0);
/// The arguments' and the environment's length, when the environment follows the arguments
/// (it always does, unless a program moved it before us).
static STRINGS_LEN: AtomicUsize = AtomicUsize::new(0);

/// Note where the arguments and the environment are, for [`set_process_title`].
///
/// # Safety
///
/// `argv` and `envp` are what the C runtime passes `main`: `argc` pointers to NUL-terminated
/// strings, and a NULL-terminated array of them, alive until the process exits.
pub unsafe fn note_arguments(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) {
    let Ok(count) = usize::try_from(argc) else {
        return;
    };
    if count == 0 || argv.is_null() {
        return;
    }
    // The end of a string: the byte after its NUL.
    // SAFETY: the caller passes valid NUL-terminated strings.
    let end_of = |string: *const libc::c_char| unsafe { string.add(libc::strlen(string) + 1) };
    // SAFETY: argv holds `argc` pointers.
    let (first, last) = unsafe { (*argv, *argv.add(count - 1)) };
    let arguments_end = end_of(last);
    let mut strings_end = arguments_end;
    if !envp.is_null() {
        let mut variables = 0;
        // SAFETY: envp is NULL-terminated.
        while !unsafe { *envp.add(variables) }.is_null() {
            variables += 1;
        }
        // SAFETY: `variables` entries precede the NULL.
        if variables > 0 && unsafe { *envp } == arguments_end {
            strings_end = end_of(unsafe { *envp.add(variables - 1) });
        }
    }
    let length = |end: *const libc::c_char| (end as usize).saturating_sub(first as usize);
    ARGUMENTS_LEN.store(length(arguments_end), Ordering::Relaxed);
    STRINGS_LEN.store(length(strings_end), Ordering::Relaxed);
    ARGUMENTS.store(first.cast_mut().cast(), Ordering::Relaxed);
}

/// Show `title` as this process's command line, in place of its arguments, and wipe its
/// environment strings. /proc/PID/cmdline shows the whole argument area when the area's last
/// byte is NUL, and the text up to the first NUL when it is not (the kernel's allowance for
/// setproctitle(3), which may also run into the environment): either way `title` and one NUL,
/// cut to fit when the strings cannot hold it. Afterwards getenv finds nothing: call this only
/// where nothing reads the environment any more.
pub fn set_process_title(title: &[u8]) {
    let start = ARGUMENTS.load(Ordering::Relaxed);
    let (arguments, strings) = (
        ARGUMENTS_LEN.load(Ordering::Relaxed),
        STRINGS_LEN.load(Ordering::Relaxed),
    );
    if start.is_null() || arguments == 0 {
        return;
    }
    // SAFETY: the strings `main` was given (see `note_arguments`): `strings` bytes from
    // `start`, alive until exit; no Rust reference points into them (arguments and
    // environment were copied when read).
    let area = unsafe { std::slice::from_raw_parts_mut(start, strings) };
    write_title(area, arguments, title);
}

/// [`set_process_title`] on the strings `area`, whose first `arguments` bytes are the arguments.
fn write_title(area: &mut [u8], arguments: usize, title: &[u8]) {
    let shown = title.len().min(area.len() - 1);
    area[..shown].copy_from_slice(&title[..shown]);
    area[shown..].fill(0);
    if shown + 1 < arguments {
        area[arguments - 1] = b' ';
    }
}

// ---------------------------------------------------------------------------------------------
// Signals

/// Install a handler that does nothing. pid 1 of a pid namespace only receives signals it has a
/// handler for (the kernel drops the rest), even when it blocks them and reads them from a
/// signalfd.
pub fn install_noop_handler(signal: i32) -> Result<()> {
    extern "C" fn noop(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction with a valid handler function and an empty mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = noop as *const () as usize;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is fully initialised; the old action is not needed.
    check(unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } as libc::c_long)
        .map(drop)
}

/// What Rust's runtime set-up does before `fn main` and the launcher relies on (the binary
/// enters at the C `main`, see src/main.rs): descriptors 0, 1 and 2 open, on /dev/null when
/// the caller closed one (else the first file opened would take its place, and the command's
/// output would land in it). SIGPIPE is each command's choice: see [`set_sigpipe`].
pub fn start_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: three valid pollfd structures; a zero timeout only reports their state.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if polled > 0 {
        for closed in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: a constant path; the descriptor, the lowest free one, is the closed one
            // and is meant to stay open for the process's life.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != closed.fd {
                exit_now(125);
            }
        }
    }
}

/// SIGPIPE ignored, where a closed pipe is an error to handle rather than the end of a
/// supervisor with a sandbox to clean up or of a command writing state; or the default, for
/// the commands that only read and print, which then end quietly when their reader has gone
/// (`sandbox ps | head -1`), as cat does, instead of failing on every write.
pub fn set_sigpipe(ignored: bool) {
    let disposition = if ignored {
        libc::SIG_IGN
    } else {
        libc::SIG_DFL
    };
    // SAFETY: SIG_IGN and SIG_DFL are always valid dispositions.
    unsafe { libc::signal(libc::SIGPIPE, disposition) };
}

/// Whether `signal`'s disposition is SIG_IGN.
pub fn is_ignored(signal: i32) -> bool {
    // SAFETY: sigaction is plain data; all zeroes is a valid value.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `current`.
    let read = unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) };
    read == 0 && current.sa_sigaction == libc::SIG_IGN
}

/// Give the command its caller's signal setup back: execve resets every caught signal by
/// itself and keeps ignored ones ignored, so what is left is SIGPIPE, which the launcher set
/// for itself ([`set_sigpipe`]), and the signal mask, which it changed before the clone.
pub fn restore_caller_signals(sigpipe_ignored: bool, mask: &libc::sigset_t) {
    set_sigpipe(sigpipe_ignored);
    // SAFETY: a valid signal set and a null old set.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

// ---------------------------------------------------------------------------------------------
// Terminals

pub fn ioctl_set_ctty(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } as libc::c_long).map(drop)
}

pub fn get_winsize(fd: BorrowedFd<'_>) -> Result<libc::winsize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } as libc::c_long)
        .map(|_| size)
}

pub fn set_winsize(fd: BorrowedFd<'_>, size: &libc::winsize) -> Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize struct.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, size) } as libc::c_long).map(drop)
}

/// The number of the pty slave behind a master (TIOCGPTN), in the devpts instance it belongs to.
pub fn pty_number(master: BorrowedFd<'_>) -> Result<u32> {
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN fills an unsigned int.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } as libc::c_long)?;
    Ok(number)
}

pub fn unlock_pty(master: BorrowedFd<'_>) -> Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int (0: unlock).
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } as libc::c_long)
        .map(drop)
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Have the kernel kill the program `command` starts when the supervisor dies (a SIGKILLed
/// supervisor cannot end it itself). The setting survives execve(2).
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before execve and only calls prctl(2),
    // which is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What /proc/PID/cmdline reads from the strings (fs/proc/base.c, get_mm_cmdline).
    fn cmdline(area: &[u8], arguments: usize) -> &[u8] {
        if area[arguments - 1] == 0 {
            return &area[..arguments];
        }
        let end = area
            .iter()
            .position(|b| *b == 0)
            .map_or(area.len(), |nul| nul + 1);
        &area[..end]
    }

    #[test]
    fn a_title_shows_alone_whatever_room_the_arguments_left() {
        let title = b"sandbox-init dev";
        // arguments, then the environment
        for (arguments, environment) in [(40, 100), (17, 100), (5, 100), (5, 0), (17, 0)] {
            let mut area = vec![b'x'; arguments + environment];
            area[arguments - 1] = 0;
            write_title(&mut area, arguments, title);
            let shown = cmdline(&area, arguments);
            let fits = title.len() < area.len();
            let expected: Vec<u8> = if fits {
                [&title[..], b"\0"].concat()
            } else {
                [&title[..area.len() - 1], b"\0"].concat()
            };
            assert_eq!(shown, expected, "{arguments} + {environment}");
            assert!(
                area[shown.len()..].iter().all(|b| *b == 0 || *b == b' '),
                "the rest wiped"
            );
        }
    }
}
