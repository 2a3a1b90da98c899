//! `[namespaces]`, `[uts]` and `[time]`.

use schemars::JsonSchema;
use serde::Deserialize;

use super::source::Spanned;
use super::values::Offset;

/// Which namespaces the sandbox gets of its own. false means shared with the host.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// A user namespace (default true).
    pub user: Option<Spanned<bool>>,
    /// A mount namespace (default true).
    pub mount: Option<Spanned<bool>>,
    /// A pid namespace (default true).
    pub pid: Option<Spanned<bool>>,
    /// A network namespace (default true).
    pub net: Option<Spanned<bool>>,
    /// A UTS namespace: hostname and domain name (default true).
    pub uts: Option<Spanned<bool>>,
    /// An IPC namespace: System V IPC and POSIX message queues (default true).
    pub ipc: Option<Spanned<bool>>,
    /// A cgroup namespace (default true).
    pub cgroup: Option<Spanned<bool>>,
    /// A time namespace (default false).
    pub time: Option<Spanned<bool>>,
}

/// Hostname and domain name, for the UTS namespace.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Uts {
    /// The hostname (default: the sandbox name).
    pub hostname: Option<Spanned<String>>,
    /// The NIS domain name (default: none).
    pub domainname: Option<Spanned<String>>,
}

/// Clock offsets for the time namespace.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// Added to CLOCK_MONOTONIC inside (default "0s").
    pub monotonic_offset: Option<Spanned<Offset>>,
    /// Added to CLOCK_BOOTTIME inside (default "0s").
    pub boottime_offset: Option<Spanned<Offset>>,
}
