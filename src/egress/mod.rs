//! `network.egress` in the kernel: an nftables table in the sandbox's own network namespace
//! that lets outbound traffic reach only the planned destinations, refuses the rest at once,
//! and counts what it refused.
//!
//! The sandbox's setup process installs the table (it holds CAP_NET_ADMIN in the sandbox's
//! user namespace until the security step drops it) with one netlink batch: no `nft` process,
//! nothing on the host. Its netlink socket then goes to the supervisor, which reads the counts
//! through it when the sandbox ends: the socket keeps the namespace, and so the counts, alive
//! after the sandbox's last process is gone, and netlink checks the capability of whoever
//! sends, which the supervisor has as the owner of the sandbox's user namespace (or as root).
//! The command has no CAP_NET_ADMIN there, so it can neither change nor read the rules.
//!
//! Why netlink-packet-netfilter: it is the rust-netlink family's (as netlink-packet-route,
//! which the bridge code uses), pure Rust, MIT, synchronous, and has typed tables, chains,
//! sets and the common expressions; the few it lacks (ct, reject, dynset, counter) are written
//! from their attributes here. rustables is GPL-3.0, nftnl and mnl bind the C libraries, and
//! nlink needs an async runtime, which the launcher must not start before its clone.

mod ruleset;

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use nix::errno::Errno;
use nix::sys::socket::SockProtocol;
use serde::Serialize;

use crate::netlink::{Refusal, Socket};
use crate::plan::EgressPlan;
use ruleset::{Family, SetDump};

/// How many refused destinations the report names; the others are summed up.
const REPORTED: usize = 10;

/// A destination the rules refused, and how many packets they refused there (for TCP, one
/// per connection attempt: the reset ends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub address: IpAddr,
    /// The IP protocol number (TCP and UDP are counted).
    pub protocol: u8,
    pub port: u16,
    pub count: u64,
}

/// Written as `network.egress` takes it: `203.0.113.7:443`, `udp:198.51.100.1:53`,
/// `[2001:db8::1]:443`.
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            6 => {}
            17 => f.write_str("udp:")?,
            other => write!(f, "protocol {other} ")?,
        }
        write!(f, "{}", SocketAddr::new(self.address, self.port))
    }
}

/// `{"destination": "203.0.113.7:443", "count": 2}`.
impl Serialize for Refused {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Refused", 2)?;
        out.serialize_field("destination", &self.to_string())?;
        out.serialize_field("count", &self.count)?;
        out.end()
    }
}

/// `egress refused 3 connections: 203.0.113.7:443 (2), 198.51.100.1:80 (1)`, most refused
/// first; `None` when nothing was.
pub fn report(refused: &[Refused]) -> Option<String> {
    let total: u64 = refused.iter().map(|r| r.count).sum();
    if total == 0 {
        return None;
    }
    let mut named: Vec<String> = refused
        .iter()
        .take(REPORTED)
        .map(|r| format!("{r} ({})", r.count))
        .collect();
    if refused.len() > REPORTED {
        named.push(format!("{} more destinations", refused.len() - REPORTED));
    }
    let connections = if total == 1 {
        "connection"
    } else {
        "connections"
    };
    Some(format!(
        "egress refused {total} {connections}: {}",
        named.join(", ")
    ))
}

/// Why the rules could not be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallError {
    /// No netfilter netlink socket: a kernel without nfnetlink.
    Socket(Errno),
    /// The kernel refused the batch (at its message `sequence`: 1 the table, 2 the chain, 3
    /// and 4 the sets, then the rules).
    Refused(Refusal),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::Socket(_) => f.write_str("opening a netfilter netlink socket"),
            InstallError::Refused(refusal) => write!(
                f,
                "nftables refused message {} of the batch",
                refusal.sequence
            ),
        }
    }
}

impl InstallError {
    pub fn errno(self) -> Errno {
        match self {
            InstallError::Socket(errno) => errno,
            InstallError::Refused(refusal) => refusal.errno,
        }
    }
}

/// Install the rules in the caller's network namespace; the socket is the one to read the
/// counts through (see [`refused`]).
pub fn install(plan: &EgressPlan) -> Result<Socket, InstallError> {
    let mut socket = Socket::open(SockProtocol::NetlinkNetFilter).map_err(InstallError::Socket)?;
    socket
        .send_batch(&ruleset::batch(plan))
        .map_err(InstallError::Refused)?;
    Ok(socket)
}

/// What the rules refused so far, most refused first, through a netfilter socket of the
/// sandbox's network namespace.
pub fn refused(socket: &mut Socket) -> Result<Vec<Refused>, Errno> {
    let mut refused = Vec::new();
    for family in [Family::V4, Family::V6] {
        let answers: Vec<SetDump> =
            socket.exchange(ruleset::dump_request(family), ruleset::DUMP)?;
        refused.extend(answers.into_iter().flat_map(|SetDump(elements)| elements));
    }
    refused.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.to_string().cmp(&b.to_string()))
    });
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(destination: &str, protocol: u8, count: u64) -> Refused {
        let address: SocketAddr = destination.parse().unwrap();
        Refused {
            address: address.ip(),
            protocol,
            port: address.port(),
            count,
        }
    }

    #[test]
    fn the_report_names_destinations_as_egress_takes_them() {
        let list = [
            refused("203.0.113.7:443", 6, 2),
            refused("198.51.100.1:53", 17, 1),
            refused("[2001:db8::1]:443", 6, 1),
        ];
        assert_eq!(
            report(&list).unwrap(),
            "egress refused 4 connections: 203.0.113.7:443 (2), udp:198.51.100.1:53 (1), [2001:db8::1]:443 (1)"
        );
        assert_eq!(
            report(&list[1..2]).unwrap(),
            "egress refused 1 connection: udp:198.51.100.1:53 (1)"
        );
        assert_eq!(report(&[]), None);
        assert_eq!(
            serde_json::to_string(&list[0]).unwrap(),
            r#"{"destination":"203.0.113.7:443","count":2}"#
        );
    }

    #[test]
    fn a_long_report_names_the_first_ten() {
        let list: Vec<Refused> = (1..=12)
            .map(|i| refused(&format!("192.0.2.{i}:80"), 6, 1))
            .collect();
        let text = report(&list).unwrap();
        assert!(text.starts_with("egress refused 12 connections: 192.0.2.1:80 (1), "));
        assert!(
            text.ends_with("192.0.2.10:80 (1), 2 more destinations"),
            "{text}"
        );
    }
}
