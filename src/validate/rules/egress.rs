//! `network.egress`: the destinations a sandbox may reach, decided before anything starts.
//!
//! Host names are resolved here, on the host, once: the addresses go into the rules and the
//! first one is pinned in the sandbox's /etc/hosts, so the command's own look-ups find what the
//! rules allow. A name the manifest's `hosts` already maps keeps that address and is not
//! looked up at all.

use crate::origin::Origin;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::super::Cx;
use crate::diagnostics::Problem;
use crate::manifest::values::{Destination, EgressHost, Protocol};
use crate::manifest::{Network, NetworkMode, Spanned};
use crate::plan::{EgressPlan, EgressRule};

/// Capabilities that would let the command lift or go around the rules: CAP_NET_ADMIN changes
/// them, and CAP_NET_RAW opens packet sockets, whose frames netfilter's IP hooks never see.
const BYPASSING: [caps::Capability; 2] = [
    caps::Capability::CAP_NET_ADMIN,
    caps::Capability::CAP_NET_RAW,
];

/// The allow-list of `network`, with `dns` servers allowed on port 53; `hosts` gains the
/// names it resolved. `None` without `egress`, or when the mode cannot enforce it (reported).
pub(super) fn egress(
    cx: &mut Cx,
    network: &Network,
    mode: NetworkMode,
    dns: &[IpAddr],
    hosts: &mut BTreeMap<String, IpAddr>,
) -> Option<EgressPlan> {
    let entries = network.egress.as_ref()?;
    if let Some(help) = match mode {
        NetworkMode::Bridge | NetworkMode::Pasta => None,
        NetworkMode::None => Some(
            "with mode \"none\" nothing leaves the sandbox; to reach these destinations set \
             mode = \"pasta\" (or \"bridge\" as root), or remove `egress`",
        ),
        NetworkMode::Host => Some(
            "the host's network cannot be filtered for one sandbox: set mode = \"pasta\" (or \
             \"bridge\" as root) with `net = true` in [namespaces], or remove `egress`",
        ),
    } {
        let name = serde_json::to_value(mode)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        cx.report(
            Problem::error(
                "sandbox::network::egress-mode",
                format!("`egress` needs mode = \"bridge\" or \"pasta\", not \"{name}\""),
            )
            .at(entries.span, "cannot be enforced in this mode")
            .help(help),
        );
        return None;
    }
    refuse_bypassing_capabilities(cx);
    // A bridge sandbox has an IPv4 address only.
    let reachable = |ip: &IpAddr| mode == NetworkMode::Pasta || ip.is_ipv4();
    let mut rules = Vec::new();
    for (index, entry) in entries.value.iter().enumerate() {
        let key = Origin::Egress(index);
        let Destination {
            protocol,
            host,
            port,
        } = &entry.value;
        let (name, networks) = match host {
            EgressHost::Network(net) => (None, vec![*net]),
            EgressHost::Name(name) => {
                let Some(addresses) = resolve(cx, name, entry, hosts, &reachable) else {
                    continue;
                };
                (
                    Some(name.clone()),
                    addresses.into_iter().map(IpNet::from).collect::<Vec<_>>(),
                )
            }
        };
        if networks.iter().all(|net| net.network().is_loopback()) {
            cx.report(
                Problem::warning(
                    "sandbox::network::egress-loopback",
                    format!(
                        "{} is the sandbox's own loopback, which it always reaches",
                        entry.value
                    ),
                )
                .at(entry.span, "inside the sandbox, not the host's")
                .help(
                    "the host's loopback is at the gateway's address in pasta mode; a bridge \
                     sandbox reaches the host at its bridge's address: name that, or remove \
                     the entry",
                ),
            );
            continue;
        }
        if let Some(name) = &name {
            hosts.entry(name.clone()).or_insert(networks[0].addr());
        }
        rules.push(EgressRule {
            destination: entry.value.to_string(),
            name,
            networks,
            protocols: protocol.iter().copied().collect(),
            port: *port,
            key,
        });
    }
    for (index, server) in dns.iter().enumerate() {
        rules.push(EgressRule {
            destination: format!("dns server {}", SocketAddr::new(*server, 53)),
            name: None,
            networks: vec![IpNet::from(*server)],
            protocols: vec![Protocol::Udp, Protocol::Tcp],
            port: Some(53),
            key: Origin::Dns(index),
        });
    }
    Some(EgressPlan { rules })
}

/// The addresses of `name` the sandbox can reach: the manifest's own entry in `hosts`, or the
/// host's resolver's answer. `None` once a problem is reported.
fn resolve(
    cx: &mut Cx,
    name: &str,
    entry: &Spanned<Destination>,
    hosts: &BTreeMap<String, IpAddr>,
    reachable: &dyn Fn(&IpAddr) -> bool,
) -> Option<Vec<IpAddr>> {
    let found = match hosts.get(name) {
        Some(pinned) => vec![*pinned],
        None => match cx.host.resolve(name) {
            Ok(found) => found,
            Err(why) => {
                cx.report(
                    Problem::error(
                        "sandbox::network::egress-unresolved",
                        format!("host name `{name}` does not resolve on this host: {why}"),
                    )
                    .at(entry.span, "no address for this name")
                    .help(
                        "check the spelling and the host's resolver (getent hosts NAME), write \
                         the address instead, or map the name in `hosts`",
                    ),
                );
                return None;
            }
        },
    };
    let usable: Vec<IpAddr> = found.iter().copied().filter(|ip| reachable(ip)).collect();
    if usable.is_empty() {
        let listed: Vec<String> = found.iter().map(ToString::to_string).collect();
        cx.report(
            Problem::error(
                "sandbox::network::egress-unresolved",
                format!(
                    "host name `{name}` has only IPv6 addresses ({}), which a bridge sandbox \
                     cannot reach",
                    listed.join(", ")
                ),
            )
            .at(entry.span, "no IPv4 address")
            .help("a bridge sandbox has an IPv4 address only: use mode = \"pasta\", or name an IPv4 destination"),
        );
        return None;
    }
    Some(usable)
}

fn refuse_bypassing_capabilities(cx: &mut Cx) {
    let kept = cx
        .loaded
        .manifest
        .security
        .as_ref()
        .and_then(|s| s.value.capabilities.as_ref())
        .map(|c| c.value.clone())
        .unwrap_or_default();
    for capability in kept.iter().filter(|c| BYPASSING.contains(&c.value.0)) {
        cx.report(
            Problem::error(
                "sandbox::network::egress-capability",
                format!(
                    "{} would let the command get around `egress`",
                    capability.value
                ),
            )
            .at(capability.span, "lifts the egress rules")
            .help(
                "CAP_NET_ADMIN can change the sandbox's firewall rules and CAP_NET_RAW sends raw \
                 frames past them: remove it from `capabilities`, or remove `egress`",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::host::{Caller, FixedFacts, HostFacts};
    use crate::manifest::load_str;
    use crate::origin::Origin;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use crate::plan::{EgressPlan, MountOp, Plan};
    use crate::validate::{Invocation, validate};

    fn host(root: bool) -> HostFacts {
        let id = if root { 0 } else { 1000 };
        let caller = Caller {
            uid: id,
            gid: id,
            euid: id,
            user: None,
            home: None,
            env: Default::default(),
        };
        let names = [(
            "registry.example.org".to_string(),
            vec![
                "2001:db8::10".parse().unwrap(),
                "192.0.2.10".parse().unwrap(),
            ],
        )];
        HostFacts::fixed(
            caller,
            FixedFacts {
                nft: Some("/usr/sbin/nft".into()),
                pasta: Some("/usr/bin/pasta".into()),
                names: names.into_iter().collect(),
                ..FixedFacts::default()
            },
        )
    }

    fn plan(mode: &str, network: &str) -> Result<Plan, Vec<&'static str>> {
        let root = mode == "bridge";
        let text = format!(
            "[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\n[network]\nmode = \"{mode}\"\n{network}"
        );
        let host = host(root);
        let loaded = load_str(
            std::path::Path::new("/project/sandbox.toml"),
            &text,
            &host.caller.vars(),
        );
        let validated = validate(&loaded, &host, &Invocation::default());
        validated
            .plan
            .ok_or_else(|| validated.problems.iter().map(|p| p.code).collect())
    }

    /// The names the sandbox's /etc/hosts maps.
    fn pinned(plan: &Plan) -> &BTreeMap<String, IpAddr> {
        plan.mounts
            .iter()
            .find_map(|step| match &step.op {
                MountOp::Hosts { names, .. } => Some(names),
                _ => None,
            })
            .expect("an /etc/hosts")
    }

    fn egress(plan: &Plan) -> &EgressPlan {
        plan.net.egress().expect("an egress plan")
    }

    #[test]
    fn names_resolve_on_the_host_and_are_pinned_in_etc_hosts() {
        let plan = plan("pasta", "egress = [\"registry.example.org:443\"]\n").unwrap();
        let rule = &egress(&plan).rules[0];
        assert_eq!(rule.name.as_deref(), Some("registry.example.org"));
        assert_eq!(
            rule.networks,
            [
                "2001:db8::10/128".parse().unwrap(),
                "192.0.2.10/32".parse().unwrap()
            ]
        );
        assert_eq!(rule.key, Origin::Egress(0));
        assert_eq!(
            pinned(&plan)["registry.example.org"].to_string(),
            "2001:db8::10",
            "the resolver's first choice"
        );
    }

    #[test]
    fn a_bridge_sandbox_gets_the_ipv4_addresses_only() {
        let plan = plan("bridge", "egress = [\"registry.example.org:443\"]\n").unwrap();
        let rule = &egress(&plan).rules[0];
        assert_eq!(rule.networks, ["192.0.2.10/32".parse().unwrap()]);
        assert_eq!(
            pinned(&plan)["registry.example.org"].to_string(),
            "192.0.2.10"
        );
    }

    #[test]
    fn a_name_in_hosts_keeps_its_address_and_is_not_looked_up() {
        let plan = plan(
            "pasta",
            "hosts = { db = \"10.20.0.5\" }\negress = [\"db:5432\"]\n",
        )
        .unwrap();
        assert_eq!(
            egress(&plan).rules[0].networks,
            ["10.20.0.5/32".parse().unwrap()]
        );
    }

    #[test]
    fn dns_servers_are_allowed_on_port_53_over_tcp_and_udp() {
        let plan = plan("pasta", "dns = [\"192.0.2.53\"]\negress = []\n").unwrap();
        let rules = &egress(&plan).rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].port, Some(53));
        assert_eq!(rules[0].protocols.len(), 2);
        assert_eq!(rules[0].key, Origin::Dns(0));
        assert_eq!(rules[0].to_string(), "dns server 192.0.2.53:53");
    }

    #[test]
    fn without_egress_nothing_is_filtered() {
        assert_eq!(
            plan("pasta", "dns = [\"192.0.2.53\"]\n")
                .unwrap()
                .net
                .egress(),
            None
        );
    }

    #[test]
    fn modes_and_capabilities_that_cannot_hold_the_rules_are_refused() {
        assert_eq!(
            plan("none", "egress = [\"192.0.2.10:443\"]\n").unwrap_err(),
            ["sandbox::network::egress-mode"]
        );
        let text = "egress = [\"192.0.2.10:443\"]\n[security]\ncapabilities = [\"CAP_NET_RAW\", \"CAP_CHOWN\"]\n";
        assert_eq!(
            plan("pasta", text).unwrap_err(),
            ["sandbox::network::egress-capability"]
        );
        assert_eq!(
            plan("pasta", "egress = [\"nowhere.example:80\"]\n").unwrap_err(),
            ["sandbox::network::egress-unresolved"]
        );
    }

    #[test]
    fn loopback_destinations_are_dropped_with_a_warning() {
        let plan = plan("pasta", "egress = [\"127.0.0.1:5432\", \"10.0.0.0/8\"]\n").unwrap();
        assert_eq!(egress(&plan).rules.len(), 1);
        assert_eq!(egress(&plan).rules[0].key, Origin::Egress(1));
    }
}
