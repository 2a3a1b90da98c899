//! `network.egress` decided: every destination the sandbox may reach, host names resolved.

use crate::origin::Origin;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::manifest::values::Protocol;

/// The nftables table (family inet) that holds the rules, in the sandbox's own network
/// namespace: the name is the same in every sandbox.
pub const EGRESS_TABLE: &str = "sandbox-egress";

/// The only destinations outbound traffic may reach; everything else is refused at once.
/// Loopback and replies (to published ports, to allowed connections) always pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPlan {
    pub rules: Vec<EgressRule>,
}

/// One allowed destination, from one `network.egress` entry or one `dns` server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    /// As the manifest wrote it.
    pub destination: String,
    /// The host name the addresses were resolved from, if it was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every address or network it allows.
    pub networks: Vec<IpNet>,
    /// Empty: any protocol (only without a port).
    pub protocols: Vec<Protocol>,
    /// `None`: any port.
    pub port: Option<u16>,
    /// The manifest entry behind it.
    pub key: Origin,
}

/// What it allows, for people: `registry.example.org:443 (192.0.2.10, 2001:db8::10)`.
impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.destination)?;
        if self.name.is_some() {
            let addresses: Vec<String> = self
                .networks
                .iter()
                .map(|net| net.addr().to_string())
                .collect();
            write!(f, " ({})", addresses.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolved_name_shows_its_addresses() {
        let rule = EgressRule {
            destination: "registry.example.org:443".into(),
            name: Some("registry.example.org".into()),
            networks: vec![
                "192.0.2.10/32".parse().unwrap(),
                "2001:db8::10/128".parse().unwrap(),
            ],
            protocols: vec![Protocol::Tcp],
            port: Some(443),
            key: "network.egress[0]".into(),
        };
        assert_eq!(
            rule.to_string(),
            "registry.example.org:443 (192.0.2.10, 2001:db8::10)"
        );
        let network = EgressRule {
            destination: "10.20.0.0/16".into(),
            name: None,
            networks: vec!["10.20.0.0/16".parse().unwrap()],
            protocols: vec![],
            port: None,
            key: "network.egress[1]".into(),
        };
        assert_eq!(network.to_string(), "10.20.0.0/16");
    }
}
