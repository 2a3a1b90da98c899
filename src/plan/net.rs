use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

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
    pub hosts: BTreeMap<String, IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastaPlan {
    pub ports: Vec<PortSpec>,
    pub dns: Vec<IpAddr>,
    pub hosts: BTreeMap<String, IpAddr>,
}
