use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::values::{Capability, Rlimit, RlimitValue};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "profile", rename_all = "lowercase")]
pub enum SeccompPlan {
    Off,
    /// [`DEFAULT_SECCOMP_DENY`](super::seccomp::DEFAULT_SECCOMP_DENY) plus argument rules
    /// (new namespaces through clone/unshare, clone3, TIOCSTI/TIOCLINUX, personality, vsock).
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

impl SeccompPlan {
    /// Whether the profile lets clock_gettime through (the default profile never denies it).
    pub fn allows_clock(&self) -> bool {
        const CLOCK: &str = "clock_gettime";
        match self {
            SeccompPlan::Off | SeccompPlan::Default => true,
            SeccompPlan::DenyList { deny, .. } => !deny.iter().any(|d| d == CLOCK),
            SeccompPlan::AllowList { allow, .. } => allow.iter().any(|a| a == CLOCK),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockPlan {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub execute: Vec<PathBuf>,
    /// TCP ports that may be bound; `None`: binding is not restricted.
    pub bind_tcp: Option<Vec<u16>>,
    /// TCP ports that may be connected to; `None`: connecting is not restricted.
    pub connect_tcp: Option<Vec<u16>>,
    /// Refuse to start when the kernel cannot enforce every rule.
    pub required: bool,
}

/// Landlock gained TCP bind/connect rules in ABI 4 (Linux 6.7).
pub const LANDLOCK_NET_ABI: u32 = 4;

impl LandlockPlan {
    /// What a kernel with landlock ABI `abi` cannot enforce of these rules, one phrase each;
    /// empty when it enforces them all. A right the kernel does not know is a right it leaves
    /// unrestricted, so each missing one weakens the rules (except `refer`, whose absence in ABI
    /// 1 makes the kernel refuse every cross-directory rename: stricter, not weaker).
    pub fn unenforceable(&self, abi: u32) -> Vec<&'static str> {
        if abi == 0 {
            return vec!["any landlock rule"];
        }
        let tcp = self.bind_tcp.is_some() || self.connect_tcp.is_some();
        [
            (
                3,
                true,
                "truncating files outside `write` (ABI 3, Linux 6.2)",
            ),
            (
                LANDLOCK_NET_ABI,
                tcp,
                "TCP bind/connect rules (ABI 4, Linux 6.7)",
            ),
            (
                5,
                true,
                "ioctl on devices outside `write` (ABI 5, Linux 6.10)",
            ),
        ]
        .into_iter()
        .filter(|(needs, wanted, _)| *wanted && abi < *needs)
        .map(|(_, _, what)| what)
        .collect()
    }
}

/// The capabilities a container engine keeps by default (Docker's and Podman's list). In the
/// sandbox's own user namespace each acts only on what that namespace owns: ids it maps, its own
/// processes, its own network namespace. docs/manifest.md says what each one does there.
pub const CONTAINER_CAPABILITIES: &[caps::Capability] = &[
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_SETFCAP,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityPlan {
    /// Capabilities kept in every set; all others dropped.
    pub capabilities: Vec<Capability>,
    pub no_new_privileges: bool,
    pub seccomp: SeccompPlan,
    pub landlock: Option<LandlockPlan>,
    pub rlimits: Vec<(Rlimit, RlimitValue)>,
    /// Of `rlimits`, those above the caller's hard limit, which the launcher (holding
    /// CAP_SYS_RESOURCE) raises for itself before the clone: in the sandbox's user namespace
    /// no process may raise a hard limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raise_hard_limits: Vec<Rlimit>,
    /// Paths hidden (an empty read-only file or dir mounted over them).
    pub masked_paths: Vec<PathBuf>,
    /// Paths remounted read-only.
    pub readonly_paths: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landlock(tcp: bool) -> LandlockPlan {
        LandlockPlan {
            read: vec!["/usr".into()],
            write: Vec::new(),
            execute: Vec::new(),
            bind_tcp: None,
            connect_tcp: tcp.then(Vec::new),
            required: true,
        }
    }

    #[test]
    fn each_abi_lacks_what_came_after_it() {
        assert_eq!(landlock(false).unenforceable(0), ["any landlock rule"]);
        assert_eq!(landlock(false).unenforceable(2).len(), 2);
        assert_eq!(landlock(true).unenforceable(3).len(), 2);
        assert!(landlock(true).unenforceable(3)[0].starts_with("TCP"));
        assert!(landlock(false).unenforceable(4)[0].starts_with("ioctl"));
        assert!(landlock(true).unenforceable(5).is_empty());
        assert!(landlock(true).unenforceable(7).is_empty());
    }
}
