//! The nftables rules of bridge networking, built as data (pure functions), applied by `nft`.
//!
//! Two kinds of tables, so that removing what a sandbox made is deleting tables by name, with
//! no rule handles to remember and nothing to look up after a crash:
//! - per bridge, `ip sandbox-<bridge>`: masquerade for the subnet (to the outside, and for
//!   connections from the host's loopback to a published port), and the guard that comes with
//!   route_localnet;
//! - per sandbox, `ip sandbox-<bridge>-<address>` (published ports as DNAT, in prerouting for
//!   traffic arriving at the host and in output for the host's own connections) and, with
//!   `isolate`, `bridge sandbox-<bridge>-<address>`, which drops frames between its veth and
//!   the bridge's other ports.
//!
//! Why `nft` and not a netlink crate: nftables' netlink protocol has no well-kept pure-Rust
//! client (rustables is young; mnl/nftnl bind the C libraries), while `nft -j` takes the
//! documented JSON schema, which the `nftables` crate models with types. `nft` runs only when
//! a bridge is set up or removed, and for a sandbox that publishes ports or is isolated.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression};
use nftables::expr::{Payload, PayloadField, Prefix};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Match, NAT, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::manifest::values::Protocol;
use crate::plan::{BridgePlan, bridge_table, sandbox_table, veth_name};

/// netfilter's NAT priorities (dstnat, srcnat) and the filter priority.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;
const FILTER: i32 = 0;

fn table(family: NfFamily, name: &str) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family,
        name: name.to_string().into(),
        handle: None,
    })
}

fn base_chain(
    family: NfFamily,
    table: &str,
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    priority: i32,
) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family,
        table: table.to_string().into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(priority),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

fn rule(
    family: NfFamily,
    table: &str,
    chain: &'static str,
    expr: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family,
        table: table.to_string().into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    })
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn field(protocol: &'static str, name: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: name.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn text(value: impl ToString) -> Expression<'static> {
    Expression::String(Cow::Owned(value.to_string()))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(text(net.network())),
        len: u32::from(net.prefix_len()),
    }))
}

fn loopback() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).expect("a valid prefix")
}

/// `add`, then `delete`: one transaction that removes the tables whether or not they exist
/// (`nft destroy` needs nftables 1.0.8 and Linux 6.3).
fn remove_into(batch: &mut Batch<'static>, tables: &[(NfFamily, String)]) {
    for (family, name) in tables {
        batch.add(table(*family, name));
        batch.delete(table(*family, name));
    }
}

/// Remove tables, present or not.
pub fn remove(tables: &[(NfFamily, String)]) -> Nftables<'static> {
    let mut batch = Batch::new();
    remove_into(&mut batch, tables);
    batch.to_nftables()
}

/// The bridge's table, replacing any left from before.
pub fn bridge(plan: &BridgePlan) -> Nftables<'static> {
    let name = bridge_table(&plan.bridge);
    let ip = NfFamily::IP;
    let mut batch = Batch::new();
    remove_into(&mut batch, &[(ip, name.clone())]);
    batch.add(table(ip, &name));
    batch.add(base_chain(
        ip,
        &name,
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        SRCNAT,
    ));
    batch.add(base_chain(
        ip,
        &name,
        "input",
        NfChainType::Filter,
        NfHook::Input,
        FILTER,
    ));
    let bridge = || text(&plan.bridge);
    // The sandboxes' traffic leaves with the host's address.
    batch.add(rule(
        ip,
        &name,
        "postrouting",
        vec![
            matches(field("ip", "saddr"), Operator::EQ, prefix(plan.subnet)),
            matches(field("ip", "daddr"), Operator::NEQ, prefix(plan.subnet)),
            Statement::Masquerade(None),
        ],
    ));
    // A connection from the host's loopback to a published port: the sandbox must answer the
    // bridge's address, not its own 127.0.0.1.
    batch.add(rule(
        ip,
        &name,
        "postrouting",
        vec![
            matches(meta(MetaKey::Oifname), Operator::EQ, bridge()),
            matches(field("ip", "saddr"), Operator::EQ, prefix(loopback())),
            Statement::Masquerade(None),
        ],
    ));
    // route_localnet (needed for the replies above) would also let a sandbox address the
    // host's loopback services directly (CVE-2020-8558): only replies to those published
    // connections may come in from the bridge to 127.0.0.0/8.
    batch.add(rule(
        ip,
        &name,
        "input",
        vec![
            matches(meta(MetaKey::Iifname), Operator::EQ, bridge()),
            matches(field("ip", "daddr"), Operator::EQ, prefix(loopback())),
            matches(
                Expression::Named(NamedExpression::CT(nftables::expr::CT {
                    key: "status".into(),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                text("dnat"),
            ),
            Statement::Accept(None),
        ],
    ));
    batch.add(rule(
        ip,
        &name,
        "input",
        vec![
            matches(meta(MetaKey::Iifname), Operator::EQ, bridge()),
            matches(field("ip", "daddr"), Operator::EQ, prefix(loopback())),
            Statement::Drop(None),
        ],
    ));
    batch.to_nftables()
}

/// The tables a sandbox's rules live in.
pub fn sandbox_tables(plan: &BridgePlan, address: Ipv4Addr) -> Vec<(NfFamily, String)> {
    let name = sandbox_table(&plan.bridge, address);
    vec![(NfFamily::IP, name.clone()), (NfFamily::Bridge, name)]
}

/// The sandbox's own rules: published ports and isolation. `None` when it has neither.
pub fn sandbox(plan: &BridgePlan, address: Ipv4Addr) -> Option<Nftables<'static>> {
    if plan.ports.is_empty() && !plan.isolate {
        return None;
    }
    let name = sandbox_table(&plan.bridge, address);
    let ip = NfFamily::IP;
    let mut batch = Batch::new();
    batch.add(table(ip, &name));
    if !plan.ports.is_empty() {
        batch.add(base_chain(
            ip,
            &name,
            "output",
            NfChainType::NAT,
            NfHook::Output,
            DSTNAT,
        ));
    }
    if plan.ports.iter().any(|p| !p.host_address.is_loopback()) {
        batch.add(base_chain(
            ip,
            &name,
            "prerouting",
            NfChainType::NAT,
            NfHook::Prerouting,
            DSTNAT,
        ));
    }
    for port in &plan.ports {
        let IpAddr::V4(host) = port.host_address else {
            continue; // refused by validation: NAT does not turn IPv6 into IPv4
        };
        let to_host = if host.is_unspecified() {
            matches(
                Expression::Named(NamedExpression::Fib(Fib {
                    result: FibResult::Type,
                    flags: [FibFlag::Daddr].into_iter().collect(),
                })),
                Operator::EQ,
                text("local"),
            )
        } else {
            matches(field("ip", "daddr"), Operator::EQ, text(host))
        };
        let protocol = match port.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let expr = vec![
            to_host,
            matches(
                field(protocol, "dport"),
                Operator::EQ,
                Expression::Number(u32::from(port.host_port)),
            ),
            Statement::DNAT(Some(NAT {
                addr: Some(text(address)),
                family: None,
                port: Some(Expression::Number(u32::from(port.sandbox_port))),
                flags: None,
            })),
        ];
        // Packets to 127.0.0.1 only ever come from the host itself (output); a packet from
        // outside addressed to the loopback must not be forwarded in prerouting.
        if !host.is_loopback() {
            batch.add(rule(ip, &name, "prerouting", expr.clone()));
        }
        batch.add(rule(ip, &name, "output", expr));
    }
    if plan.isolate {
        let veth = veth_name(address);
        // Frames between this sandbox's port and the bridge's other ports.
        let family = NfFamily::Bridge;
        batch.add(table(family, &name));
        batch.add(base_chain(
            family,
            &name,
            "forward",
            NfChainType::Filter,
            NfHook::Forward,
            FILTER,
        ));
        for key in [MetaKey::Iifname, MetaKey::Oifname] {
            batch.add(rule(
                family,
                &name,
                "forward",
                vec![
                    matches(meta(key), Operator::EQ, text(&veth)),
                    Statement::Drop(None),
                ],
            ));
        }
        // Packets routed through the gateway back into the bridge (a sandbox may set its own
        // routes), and published ports reached through the host's address.
        batch.add(base_chain(
            ip,
            &name,
            "forward",
            NfChainType::Filter,
            NfHook::Forward,
            FILTER,
        ));
        for side in ["saddr", "daddr"] {
            batch.add(rule(
                ip,
                &name,
                "forward",
                vec![
                    matches(meta(MetaKey::Iifname), Operator::EQ, text(&plan.bridge)),
                    matches(meta(MetaKey::Oifname), Operator::EQ, text(&plan.bridge)),
                    matches(field("ip", side), Operator::EQ, text(address)),
                    Statement::Drop(None),
                ],
            ));
        }
    }
    Some(batch.to_nftables())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::values::PortSpec;
    use serde_json::{Value, json};

    fn plan(ports: &[&str], isolate: bool) -> BridgePlan {
        BridgePlan {
            bridge: "sbx0".into(),
            subnet: "10.88.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 88, 0, 1),
            address: None,
            ports: ports.iter().map(|p| PortSpec::parse(p).unwrap()).collect(),
            isolate,
            dns: Vec::new(),
            nft: "/usr/sbin/nft".into(),
            egress: None,
        }
    }

    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 7);

    /// The rules of `chain`, each as its list of statements.
    fn rules(document: &Nftables, family: &str, chain: &str) -> Vec<Value> {
        let value = serde_json::to_value(document).unwrap();
        value["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["add"]["rule"].as_object())
            .filter(|r| r["family"] == family && r["chain"] == chain)
            .map(|r| r["expr"].clone())
            .collect()
    }

    #[test]
    fn a_loopback_port_is_forwarded_for_the_hosts_own_connections_only() {
        let document = sandbox(&plan(&["127.0.0.1:18080:8080/tcp"], false), ADDRESS).unwrap();
        let dnat = json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "127.0.0.1"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 18080}},
            {"dnat": {"addr": "10.88.0.7", "port": 8080}}
        ]);
        assert_eq!(rules(&document, "ip", "output"), [dnat]);
        assert!(rules(&document, "ip", "prerouting").is_empty());
    }

    #[test]
    fn a_port_on_every_address_matches_local_destinations_on_the_way_in_and_out() {
        let document = sandbox(&plan(&["0.0.0.0:5353:53/udp"], false), ADDRESS).unwrap();
        for chain in ["prerouting", "output"] {
            let rules = rules(&document, "ip", chain);
            assert_eq!(rules.len(), 1, "{chain}");
            assert_eq!(
                rules[0][0]["match"]["left"],
                json!({"fib": {"result": "type", "flags": ["daddr"]}})
            );
            assert_eq!(rules[0][1]["match"]["left"]["payload"]["protocol"], "udp");
            assert_eq!(
                rules[0][2],
                json!({"dnat": {"addr": "10.88.0.7", "port": 53}})
            );
        }
    }

    #[test]
    fn isolation_drops_the_sandboxs_frames_both_ways() {
        let document = sandbox(&plan(&[], true), ADDRESS).unwrap();
        let bridged = rules(&document, "bridge", "forward");
        assert_eq!(
            bridged,
            [
                json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "sbx0a580007"}}, {"drop": null}]),
                json!([{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "sbx0a580007"}}, {"drop": null}]),
            ]
        );
        assert_eq!(rules(&document, "ip", "forward").len(), 2);
        assert!(rules(&document, "ip", "output").is_empty());
    }

    #[test]
    fn a_sandbox_without_ports_or_isolation_needs_no_rules() {
        assert!(sandbox(&plan(&[], false), ADDRESS).is_none());
    }

    #[test]
    fn the_bridge_table_replaces_itself_and_masquerades_the_subnet() {
        let document = serde_json::to_value(bridge(&plan(&[], false))).unwrap();
        let commands = document["nftables"].as_array().unwrap();
        assert_eq!(
            commands[0],
            json!({"add": {"table": {"family": "ip", "name": "sandbox-sbx0"}}})
        );
        assert_eq!(
            commands[1],
            json!({"delete": {"table": {"family": "ip", "name": "sandbox-sbx0"}}})
        );
        let post = rules(&bridge(&plan(&[], false)), "ip", "postrouting");
        assert_eq!(
            post[0][0]["match"]["right"],
            json!({"prefix": {"addr": "10.88.0.0", "len": 16}})
        );
        assert_eq!(post[0][1]["match"]["op"], "!=");
        assert_eq!(post[0][2], json!({"masquerade": null}));
        let input = rules(&bridge(&plan(&[], false)), "ip", "input");
        assert_eq!(
            input[0].as_array().unwrap().last(),
            Some(&json!({"accept": null}))
        );
        assert_eq!(
            input[1].as_array().unwrap().last(),
            Some(&json!({"drop": null}))
        );
    }
}
