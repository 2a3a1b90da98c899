use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::values::{Capability, Rlimit, RlimitValue};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "profile", rename_all = "lowercase")]
pub enum SeccompPlan {
    Off,
    /// [`DEFAULT_SECCOMP_DENY`] plus argument rules (clone/unshare of user namespaces, TIOCSTI,
    /// personality), each denied with EPERM.
    Default,
    /// Everything allowed except `deny`, which fails with `errno`.
    DenyList {
        deny: Vec<String>,
        errno: i32,
    },
    /// Only `allow` works; anything else fails with `errno`, or kills the process when `errno`
    /// is `None`.
    AllowList {
        allow: Vec<String>,
        errno: Option<i32>,
    },
}

/// System calls the default profile denies outright: the kernel-wide or privileged operations
/// Docker's default profile blocks, plus what bubblewrap and nsjail add.
pub const DEFAULT_SECCOMP_DENY: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_madvise",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "sysfs",
    "syslog",
    "umount",
    "umount2",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
    "_sysctl",
    "fanotify_init",
    "lsm_set_self_attr",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub execute: Vec<PathBuf>,
    pub bind_tcp: Vec<u16>,
    pub connect_tcp: Vec<u16>,
    /// Refuse to start when the kernel cannot enforce every rule.
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPlan {
    /// Capabilities kept in every set; all others dropped.
    pub capabilities: Vec<Capability>,
    pub no_new_privileges: bool,
    pub seccomp: SeccompPlan,
    pub landlock: Option<LandlockPlan>,
    pub rlimits: Vec<(Rlimit, RlimitValue)>,
    /// Paths hidden (an empty read-only file or dir mounted over them).
    pub masked_paths: Vec<PathBuf>,
    /// Paths remounted read-only.
    pub readonly_paths: Vec<PathBuf>,
}
