use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::EgressPlan;
use crate::manifest::values::PortSpec;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NetPlan {
    /// The host's network namespace.
    Host,
    /// Its own namespace with only `lo`, up.
    None,
    Bridge(BridgePlan),
    Pasta(PastaPlan),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePlan {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// `None`: the next free address, leased at start.
    pub address: Option<Ipv4Addr>,
    pub ports: Vec<PortSpec>,
    pub isolate: bool,
    pub dns: Vec<IpAddr>,
    /// The `nft` program that installs the NAT and forwarding rules.
    pub nft: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastaPlan {
    pub ports: Vec<PortSpec>,
    pub dns: Vec<IpAddr>,
    /// The `pasta` program (Debian's passt package).
    pub pasta: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressPlan>,
}

impl NetPlan {
    /// The egress allow-list, in the modes that have one.
    pub fn egress(&self) -> Option<&EgressPlan> {
        match self {
            NetPlan::Bridge(bridge) => bridge.egress.as_ref(),
            NetPlan::Pasta(pasta) => pasta.egress.as_ref(),
            NetPlan::Host | NetPlan::None => None,
        }
    }

    /// Whether the supervisor attaches something to the sandbox's network namespace in its
    /// half of the net step (the veth, pasta): the clone must make that namespace then.
    /// Otherwise the sandbox makes its own (`exec::steps::net::early_half`).
    pub fn attached_by_supervisor(&self) -> bool {
        matches!(self, NetPlan::Bridge(_) | NetPlan::Pasta(_))
    }
}

/// Where bridge leases live: one folder per bridge, one file per leased address.
pub const LEASE_DIR: &str = "/run/sandbox/net";

/// The host end of a bridge sandbox's veth pair: named after its address, so a run that finds
/// a stale lease knows which link to remove (an interface name has at most 15 bytes).
pub fn veth_name(address: Ipv4Addr) -> String {
    format!("sbx{:08x}", u32::from(address))
}

/// The nftables table of a bridge: masquerade for its subnet.
pub fn bridge_table(bridge: &str) -> String {
    format!("sandbox-{bridge}")
}

/// The nftables tables (ip and bridge families) of one sandbox: its published ports and
/// isolation. Removing a sandbox's rules is deleting its tables.
pub fn sandbox_table(bridge: &str, address: Ipv4Addr) -> String {
    format!("sandbox-{bridge}-{address}")
}
