//! Failures of the executor: which step, doing what, on which manifest key, with which errno.

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::plan::StepId;

/// A step that failed. It travels from the sandbox's setup process to the supervisor, so it is
/// plain data; `key` names the manifest key behind the failing operation (`mount[2]`), which
/// the CLI turns back into a span in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: StepId,
    /// What was being done, e.g. "bind /home/x -> /work".
    pub action: String,
    pub errno: i32,
    pub key: Option<String>,
}

impl StepFailure {
    pub fn new(step: StepId, action: impl Into<String>, errno: Errno) -> Self {
        StepFailure {
            step,
            action: action.into(),
            errno: errno as i32,
            key: None,
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn errno(&self) -> Errno {
        Errno::from_raw(self.errno)
    }

    /// What to do about it, where the errno says enough to tell.
    pub fn advice(&self) -> Option<String> {
        let errno = self.errno();
        Some(match (self.step, errno) {
            (StepId::User, Errno::EPERM | Errno::ENOSPC | Errno::EUSERS | Errno::EACCES) if self.action.starts_with("clone") => {
                "this host does not let this user create namespaces. Check `sysctl kernel.unprivileged_userns_clone` \
                 (must be 1), `sysctl user.max_user_namespaces` (must be > 0) and, on Ubuntu 24.04+, \
                 `sysctl kernel.apparmor_restrict_unprivileged_userns` (0, or an AppArmor profile for sandbox); \
                 `sandbox doctor` checks all of these"
                    .into()
            }
            (StepId::User, Errno::EPERM) => {
                "the kernel refused the id map: a process without root may only map its own uid and gid \
                 (more needs newuidmap/newgidmap and a grant in /etc/subuid and /etc/subgid)"
                    .into()
            }
            (StepId::Mount, Errno::ENOENT) => "a path the mount needs does not exist".into(),
            (StepId::Mount, Errno::EINVAL) if self.action.starts_with("mounting") => {
                "its file system cannot be id-mapped here (ext4, xfs, vfat from Linux 5.12, btrfs \
                 5.15, f2fs 5.18 and tmpfs 6.3 can): set `idmap = false` on the bind, or run \
                 `sandbox` as the files' owner"
                    .into()
            }
            (StepId::User, Errno::EUSERS) if self.action.starts_with("leasing") => {
                "every block of host ids root's sandboxes lease is in use or granted in \
                 /etc/subuid; `sandbox doctor` shows the pool: give sandboxes more with a \
                 `sandbox:START:COUNT` line in /etc/subuid and /etc/subgid, or map ids in \
                 uid_map and gid_map"
                    .into()
            }
            (StepId::Mount, Errno::ESTALE | Errno::ELOOP) => {
                "the host path was moved or replaced (a symlink swapped in?) after `sandbox` opened \
                 and checked it, so nothing else is mounted in its place; run it again"
                    .into()
            }
            (StepId::Mount, Errno::EPERM) => {
                "the kernel refused the mount in the sandbox's user namespace (a fresh proc or sysfs needs the \
                 sandbox's own pid or network namespace, and a fully visible host /proc and /sys)"
                    .into()
            }
            (StepId::Mount, Errno::EINVAL) if self.action.starts_with("overlay") => {
                "overlayfs rejected the layers: the upper and work dirs must be on the same file system, \
                 and an unprivileged overlay needs Linux 5.11+"
                    .into()
            }
            (StepId::Cgroup, Errno::EBUSY) if self.action.starts_with("handing") => {
                "cgroup v2 lets a group hand controllers to child groups only while it holds no \
                 processes itself: move them to a leaf group first"
                    .into()
            }
            (StepId::Cgroup, Errno::EACCES | Errno::EPERM | Errno::EROFS) => {
                "this user may not change that cgroup; `sandbox plan` tells which limits this \
                 host lets it apply, and why not"
                    .into()
            }
            (StepId::Cgroup, Errno::ENOENT) if self.action.starts_with("writing") => {
                "the group has no such file: its controller was not handed down to it, or this \
                 kernel lacks the feature"
                    .into()
            }
            (StepId::Cgroup, Errno::EINVAL) if self.action.starts_with("writing") => {
                "the kernel refused the value for this group (on cgroup v1, a group's CPU quota \
                 may not exceed one set on its parent)"
                    .into()
            }
            (StepId::Net, Errno::EADDRINUSE) if self.action.starts_with("leasing") => {
                "a running sandbox has this address; leave `address` out to lease the next free one".into()
            }
            (StepId::Net, Errno::EADDRINUSE) => {
                "the sandboxes on one bridge share its subnet: use the same `subnet`, or another `bridge`".into()
            }
            (StepId::Net, Errno::EOPNOTSUPP) if self.action.starts_with("attaching") => {
                "a link of this name exists and is not a bridge: choose another `bridge`".into()
            }
            (StepId::Net, Errno::EADDRNOTAVAIL) => {
                "every address of the subnet is leased: choose a larger `subnet`".into()
            }
            (StepId::Net, Errno::ENETDOWN) if self.action.starts_with("pasta") => {
                "pasta's own message is above; it needs /dev/net/tun readable and writable by you \
                 (udev makes it so; on a bare VM: chmod 0666 /dev/net/tun)"
                    .into()
            }
            (StepId::Net, _) if self.action.starts_with("installing the egress rules") => {
                "the kernel refused the nftables rules of `egress`: it needs nf_tables with the inet \
                 family, conntrack, reject and dynamic sets (CONFIG_NF_TABLES_INET, CONFIG_NFT_CT, \
                 CONFIG_NFT_REJECT_INET; modules nf_tables, nft_ct, nft_reject_inet)"
                    .into()
            }
            (StepId::Chroot, _) => "pivot_root needs the new root to be a mount point not shared with the host".into(),
            (StepId::Exec, Errno::ENOENT) if self.action.starts_with("executing") => {
                "the program was not found in the sandbox (check PATH and the root)".into()
            }
            (StepId::Exec, Errno::EACCES | Errno::ENOEXEC) if self.action.starts_with("executing") => {
                "the file is not executable in the sandbox".into()
            }
            (StepId::Exec, Errno::ENOENT) if self.action.starts_with("chdir") => {
                "the working directory does not exist in the sandbox; create it with a [[mount]] of type \"dir\" or fix `cwd`".into()
            }
            _ => return None,
        })
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step `{}` failed: {}: {} ({:?})",
            self.step.name(),
            self.action,
            self.errno().desc(),
            self.errno()
        )
    }
}

impl std::error::Error for StepFailure {}

/// Why `sandbox up` could not run the command.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Step(StepFailure),
    #[error("the sandbox's setup process died before it was ready ({0})")]
    SetupDied(String),
    #[error("{0}")]
    Gone(String),
    /// `sandbox up` could not write the sandbox's record, so it did not start it.
    #[error("the sandbox was not started, as nothing could see it: {0}")]
    NotRecorded(std::sync::Arc<crate::state::StateError>),
    #[error("supervising the sandbox failed: {action}: {}", errno.desc())]
    Supervisor { action: String, errno: Errno },
}

impl From<StepFailure> for ExecError {
    fn from(failure: StepFailure) -> Self {
        ExecError::Step(failure)
    }
}

/// Shorthand for mapping a syscall error to a failure of `step`.
pub trait OrFail<T> {
    fn or_fail(self, step: StepId, action: impl FnOnce() -> String) -> Result<T, StepFailure>;
}

impl<T> OrFail<T> for Result<T, Errno> {
    fn or_fail(self, step: StepId, action: impl FnOnce() -> String) -> Result<T, StepFailure> {
        self.map_err(|errno| StepFailure::new(step, action(), errno))
    }
}
