//! Failures of the executor: which step, doing what, on which manifest key, with which errno.

use crate::origin::Origin;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupOp;
use crate::plan::StepId;

/// The operation that failed. It, not the wording of the action, chooses the advice (see
/// [`StepFailure::advice`]), so a message can be reworded without losing its advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// clone3 into new namespaces: the sandbox, or a helper holding a user namespace.
    Clone,
    Fork,
    /// A pipe or socket pair between the launcher's processes, or a message sent over one.
    Channel,
    /// The shared page the setup process records its timings in.
    SharedPage,
    PidfdOpen,
    /// Blocking signals or installing a handler.
    Signals,
    /// prctl(2): dumpable, parent-death signal, keepcaps, no_new_privs, securebits.
    Prctl,
    /// Opening a namespace's file in /proc.
    OpenNamespace,
    Setns,
    Unshare,
    /// Taking a block of host ids from the pool root's sandboxes lease.
    LeaseIds,
    /// Writing uid_map, gid_map or setgroups, directly or through newuidmap/newgidmap.
    IdMap,
    /// setresuid, setresgid, setgroups.
    SetIds,
    /// sethostname, setdomainname.
    Hostname,
    /// Writing the time namespace's clock offsets.
    ClockOffsets,
    /// Opening a host path a mount uses.
    OpenSource,
    /// Attaching a mount's source as a detached tree with its flags and id map.
    AttachTree,
    /// Id-mapping an attached tree through the sandbox's own user namespace.
    IdmapTree,
    /// Making every mount private to the sandbox.
    Propagation,
    /// The staging root the new root is built in.
    Staging,
    /// Mounting a file system, or making a file, folder or symlink of the new root.
    Mount,
    Bind,
    Overlay,
    PivotRoot,
    Chdir,
    /// Hiding a kernel path.
    Mask,
    /// Making the root or a kernel path read-only.
    RemountReadonly,
    /// A netlink request: links, addresses, routes, the veth pair.
    Netlink,
    /// Reading or recording the bridge's leases and state.
    NetState,
    /// Taking an address of the bridge's subnet.
    LeaseAddress,
    /// Putting the veth's host end on the bridge.
    AttachBridge,
    /// Writing a network setting of /proc/sys.
    Sysctl,
    /// Running nft with the bridge's or the sandbox's rules.
    Nft,
    /// Installing the `egress` rules through nf_tables.
    EgressRules,
    /// Reading what the `egress` rules refused.
    EgressCounts,
    Pasta,
    Cgroup(CgroupOp),
    Rlimit,
    Capabilities,
    Seccomp,
    Landlock,
    /// Opening, unlocking or attaching the sandbox's terminal.
    Terminal,
    Setsid,
    /// Turning the command line into C strings.
    Argument,
    /// Closing the launcher's descriptors before exec.
    CloseFds,
    /// Starting the command: execve, or init's spawn of it.
    Execute,
}

/// A step that failed. It travels from the sandbox's setup process to the supervisor, so it is
/// plain data; `key` names the manifest key behind the failing operation (`mount[2]`), which
/// the CLI turns back into a span in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: StepId,
    pub op: Op,
    /// What was being done, for people, e.g. "bind /home/x -> /work".
    pub action: String,
    pub errno: i32,
    pub key: Option<Origin>,
}

impl StepFailure {
    pub fn new(step: StepId, op: Op, action: impl Into<String>, errno: Errno) -> Self {
        StepFailure {
            step,
            op,
            action: action.into(),
            errno: errno as i32,
            key: None,
        }
    }

    pub fn with_key(mut self, key: impl Into<Origin>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn errno(&self) -> Errno {
        Errno::from_raw(self.errno)
    }

    /// What to do about it, where the errno says enough to tell.
    pub fn advice(&self) -> Option<String> {
        let errno = self.errno();
        Some(match (self.step, self.op, errno) {
            (StepId::User, Op::Clone, Errno::EPERM | Errno::ENOSPC | Errno::EUSERS | Errno::EACCES) => {
                "this host does not let this user create namespaces. Check `sysctl kernel.unprivileged_userns_clone` \
                 (must be 1), `sysctl user.max_user_namespaces` (must be > 0) and, on Ubuntu 24.04+, \
                 `sysctl kernel.apparmor_restrict_unprivileged_userns` (0, or an AppArmor profile for sandbox); \
                 `sandbox doctor` checks all of these"
                    .into()
            }
            (StepId::User, _, Errno::EPERM) => {
                "the kernel refused the id map: a process without root may only map its own uid and gid \
                 (more needs newuidmap/newgidmap and a grant in /etc/subuid and /etc/subgid)"
                    .into()
            }
            (StepId::Mount, _, Errno::ENOENT) => "a path the mount needs does not exist".into(),
            (StepId::Mount, Op::AttachTree | Op::IdmapTree, Errno::EINVAL) => {
                "its file system cannot be id-mapped here (ext4, xfs, vfat from Linux 5.12, btrfs \
                 5.15, f2fs 5.18 and tmpfs 6.3 can): set `idmap = false` on the bind, or run \
                 `sandbox` as the files' owner"
                    .into()
            }
            (StepId::User, Op::LeaseIds, Errno::EUSERS) => {
                "every block of host ids root's sandboxes lease is in use or granted in \
                 /etc/subuid; `sandbox doctor` shows the pool: give sandboxes more with a \
                 `sandbox:START:COUNT` line in /etc/subuid and /etc/subgid, or map ids in \
                 uid_map and gid_map"
                    .into()
            }
            (StepId::Mount, _, Errno::ESTALE | Errno::ELOOP) => {
                "the host path was moved or replaced (a symlink swapped in?) after `sandbox` opened \
                 and checked it, so nothing else is mounted in its place; run it again"
                    .into()
            }
            (StepId::Mount, _, Errno::EPERM) => {
                "the kernel refused the mount in the sandbox's user namespace (a fresh proc or sysfs needs the \
                 sandbox's own pid or network namespace, and a fully visible host /proc and /sys)"
                    .into()
            }
            (StepId::Mount, Op::Overlay, Errno::EINVAL) => {
                "overlayfs rejected the layers: the upper and work dirs must be on the same file system, \
                 and an unprivileged overlay needs Linux 5.11+"
                    .into()
            }
            (StepId::Cgroup, Op::Cgroup(CgroupOp::PassDown), Errno::EBUSY) => {
                "cgroup v2 lets a group hand controllers to child groups only while it holds no \
                 processes itself: move them to a leaf group first"
                    .into()
            }
            (StepId::Cgroup, _, Errno::EACCES | Errno::EPERM | Errno::EROFS) => {
                "this user may not change that cgroup; `sandbox plan` tells which limits this \
                 host lets it apply, and why not"
                    .into()
            }
            (StepId::Cgroup, Op::Cgroup(CgroupOp::Write), Errno::ENOENT) => {
                "the group has no such file: its controller was not handed down to it, or this \
                 kernel lacks the feature"
                    .into()
            }
            (StepId::Cgroup, Op::Cgroup(CgroupOp::Write), Errno::EINVAL) => {
                "the kernel refused the value for this group (on cgroup v1, a group's CPU quota \
                 may not exceed one set on its parent)"
                    .into()
            }
            (StepId::Net, Op::LeaseAddress, Errno::EADDRINUSE) => {
                "a running sandbox has this address; leave `address` out to lease the next free one".into()
            }
            (StepId::Net, _, Errno::EADDRINUSE) => {
                "the sandboxes on one bridge share its subnet: use the same `subnet`, or another `bridge`".into()
            }
            (StepId::Net, Op::AttachBridge, Errno::EOPNOTSUPP) => {
                "a link of this name exists and is not a bridge: choose another `bridge`".into()
            }
            (StepId::Net, _, Errno::EADDRNOTAVAIL) => {
                "every address of the subnet is leased: choose a larger `subnet`".into()
            }
            (StepId::Net, Op::Pasta, Errno::ENETDOWN) => {
                "pasta's own message is above; it needs /dev/net/tun readable and writable by you \
                 (udev makes it so; on a bare VM: chmod 0666 /dev/net/tun)"
                    .into()
            }
            (StepId::Net, Op::EgressRules, _) => {
                "the kernel refused the nftables rules of `egress`: it needs nf_tables with the inet \
                 family, conntrack, reject and dynamic sets (CONFIG_NF_TABLES_INET, CONFIG_NFT_CT, \
                 CONFIG_NFT_REJECT_INET; modules nf_tables, nft_ct, nft_reject_inet)"
                    .into()
            }
            (StepId::Chroot, _, _) => "pivot_root needs the new root to be a mount point not shared with the host".into(),
            (StepId::Exec, Op::Execute, Errno::ENOENT) => {
                "the program was not found in the sandbox (check PATH and the root)".into()
            }
            (StepId::Exec, Op::Execute, Errno::EACCES | Errno::ENOEXEC) => {
                "the file is not executable in the sandbox".into()
            }
            (StepId::Exec, Op::Chdir, Errno::ENOENT) => {
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
    fn or_fail(
        self,
        step: StepId,
        op: Op,
        action: impl FnOnce() -> String,
    ) -> Result<T, StepFailure>;
}

impl<T> OrFail<T> for Result<T, Errno> {
    fn or_fail(
        self,
        step: StepId,
        op: Op,
        action: impl FnOnce() -> String,
    ) -> Result<T, StepFailure> {
        self.map_err(|errno| StepFailure::new(step, op, action(), errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The advice for a failure whose action says nothing of what it was: the op chooses.
    fn advice(step: StepId, op: Op, errno: Errno) -> String {
        StepFailure::new(step, op, "reworded", errno)
            .advice()
            .unwrap_or_default()
    }

    /// Each of `errnos` gets advice holding `words`.
    fn advises(step: StepId, op: Op, errnos: &[Errno], words: &str) {
        for &errno in errnos {
            let text = advice(step, op, errno);
            assert!(text.contains(words), "{step:?} {op:?} {errno}: {text}");
        }
    }

    #[test]
    fn a_refused_clone_names_the_namespace_sysctls() {
        advises(
            StepId::User,
            Op::Clone,
            &[Errno::EPERM, Errno::ENOSPC, Errno::EUSERS, Errno::EACCES],
            "kernel.unprivileged_userns_clone",
        );
    }

    #[test]
    fn a_refused_id_map_names_the_subordinate_ids() {
        advises(StepId::User, Op::IdMap, &[Errno::EPERM], "newuidmap");
        assert_eq!(advice(StepId::User, Op::IdMap, Errno::EUSERS), "");
    }

    #[test]
    fn a_missing_mount_path_is_said() {
        advises(StepId::Mount, Op::Bind, &[Errno::ENOENT], "does not exist");
    }

    #[test]
    fn an_id_mapping_refused_names_the_file_systems_that_can() {
        for op in [Op::AttachTree, Op::IdmapTree] {
            advises(StepId::Mount, op, &[Errno::EINVAL], "idmap = false");
        }
        assert_eq!(advice(StepId::Mount, Op::Staging, Errno::EINVAL), "");
    }

    #[test]
    fn an_empty_id_pool_says_how_to_grow_it() {
        advises(
            StepId::User,
            Op::LeaseIds,
            &[Errno::EUSERS],
            "sandbox:START:COUNT",
        );
    }

    #[test]
    fn a_swapped_host_path_says_to_run_again() {
        advises(
            StepId::Mount,
            Op::OpenSource,
            &[Errno::ESTALE, Errno::ELOOP],
            "moved or replaced",
        );
    }

    #[test]
    fn a_refused_mount_names_what_proc_and_sysfs_need() {
        advises(
            StepId::Mount,
            Op::Mount,
            &[Errno::EPERM],
            "fresh proc or sysfs",
        );
    }

    #[test]
    fn a_rejected_overlay_names_its_layers_rules() {
        advises(
            StepId::Mount,
            Op::Overlay,
            &[Errno::EINVAL],
            "overlayfs rejected the layers",
        );
    }

    #[test]
    fn a_busy_group_cannot_hand_controllers_down() {
        advises(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::PassDown),
            &[Errno::EBUSY],
            "leaf group",
        );
        assert_eq!(
            advice(StepId::Cgroup, Op::Cgroup(CgroupOp::Write), Errno::EBUSY),
            ""
        );
    }

    #[test]
    fn a_group_out_of_reach_points_at_the_plan() {
        advises(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::Create),
            &[Errno::EACCES, Errno::EPERM, Errno::EROFS],
            "`sandbox plan`",
        );
    }

    #[test]
    fn a_limit_file_missing_is_a_controller_not_handed_down() {
        advises(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::Write),
            &[Errno::ENOENT],
            "no such file",
        );
        assert_eq!(
            advice(StepId::Cgroup, Op::Cgroup(CgroupOp::Join), Errno::ENOENT),
            ""
        );
    }

    #[test]
    fn a_limit_value_refused_names_the_v1_quota_rule() {
        advises(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::Write),
            &[Errno::EINVAL],
            "refused the value",
        );
    }

    #[test]
    fn a_leased_address_says_to_leave_it_out() {
        advises(
            StepId::Net,
            Op::LeaseAddress,
            &[Errno::EADDRINUSE],
            "leave `address` out",
        );
    }

    #[test]
    fn a_bridge_in_use_with_another_subnet_shares_it() {
        advises(
            StepId::Net,
            Op::NetState,
            &[Errno::EADDRINUSE],
            "share its subnet",
        );
    }

    #[test]
    fn a_link_that_is_not_a_bridge_asks_for_another_name() {
        advises(
            StepId::Net,
            Op::AttachBridge,
            &[Errno::EOPNOTSUPP],
            "is not a bridge",
        );
        assert_eq!(advice(StepId::Net, Op::Netlink, Errno::EOPNOTSUPP), "");
    }

    #[test]
    fn a_full_subnet_asks_for_a_larger_one() {
        advises(
            StepId::Net,
            Op::LeaseAddress,
            &[Errno::EADDRNOTAVAIL],
            "larger `subnet`",
        );
    }

    #[test]
    fn pasta_without_tun_names_dev_net_tun() {
        advises(StepId::Net, Op::Pasta, &[Errno::ENETDOWN], "/dev/net/tun");
    }

    #[test]
    fn refused_egress_rules_name_the_kernel_features() {
        advises(
            StepId::Net,
            Op::EgressRules,
            &[Errno::EINVAL, Errno::ENOENT, Errno::EOPNOTSUPP],
            "CONFIG_NF_TABLES_INET",
        );
        assert_eq!(advice(StepId::Net, Op::Nft, Errno::EINVAL), "");
    }

    #[test]
    fn a_failed_pivot_names_what_the_new_root_must_be() {
        advises(
            StepId::Chroot,
            Op::PivotRoot,
            &[Errno::EINVAL],
            "mount point not shared",
        );
    }

    #[test]
    fn a_missing_program_says_check_path() {
        advises(
            StepId::Exec,
            Op::Execute,
            &[Errno::ENOENT],
            "not found in the sandbox",
        );
    }

    #[test]
    fn a_program_not_executable_is_said() {
        advises(
            StepId::Exec,
            Op::Execute,
            &[Errno::EACCES, Errno::ENOEXEC],
            "not executable",
        );
    }

    #[test]
    fn a_missing_working_directory_names_cwd() {
        advises(StepId::Exec, Op::Chdir, &[Errno::ENOENT], "fix `cwd`");
        assert_eq!(advice(StepId::Exec, Op::Terminal, Errno::ENOENT), "");
    }

    #[test]
    fn the_op_travels_with_the_failure() {
        let failure = StepFailure::new(
            StepId::Cgroup,
            Op::Cgroup(CgroupOp::Write),
            "w",
            Errno::EINVAL,
        );
        let bytes = serde_json::to_vec(&failure).expect("serializes");
        let back: StepFailure = serde_json::from_slice(&bytes).expect("deserializes");
        assert_eq!(back, failure);
        assert!(back.advice().is_some());
    }
}
