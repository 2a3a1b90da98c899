//! `[network]`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::source::Spanned;
use super::values::{Destination, PortSpec};

/// Networking.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// none (own namespace, only lo), host (shared; needs namespaces.net = false), bridge (root:
    /// veth to a bridge, NAT) or pasta (rootless user-mode networking).
    pub mode: Option<Spanned<NetworkMode>>,
    /// Bridge mode: the bridge's name (default "sbx0").
    pub bridge: Option<Spanned<String>>,
    /// Bridge mode: the subnet, in CIDR notation (default "10.88.0.0/16").
    pub subnet: Option<Spanned<String>>,
    /// Bridge mode: the sandbox's address (default: the next free one).
    pub address: Option<Spanned<String>>,
    /// Published ports: "[host_address:]host_port:sandbox_port[/tcp|udp]".
    pub ports: Option<Spanned<Vec<Spanned<PortSpec>>>>,
    /// Name servers written to /etc/resolv.conf inside.
    pub dns: Option<Spanned<Vec<Spanned<String>>>>,
    /// Names added to /etc/hosts inside.
    pub hosts: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Bridge mode: stop this sandbox reaching others on the same bridge.
    pub isolate: Option<Spanned<bool>>,
    /// Bridge and pasta modes: the only destinations outbound connections may reach,
    /// "[tcp:|udp:]HOST[:PORT]"; everything else is refused at once. Host names are resolved
    /// when the sandbox starts and pinned in /etc/hosts inside; `dns` servers are allowed on
    /// port 53; loopback and replies to published ports always work.
    pub egress: Option<Spanned<Vec<Spanned<Destination>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    None,
    Host,
    Bridge,
    Pasta,
}
