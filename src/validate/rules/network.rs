//! `[network]`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::super::Cx;
use super::get;
use crate::diagnostics::Problem;
use crate::manifest::values::PortSpec;
use crate::manifest::{Network, NetworkMode, Span, Spanned};
use crate::plan::{BridgePlan, EgressPlan, Namespaces, NetPlan, PastaPlan};

pub const DEFAULT_BRIDGE: &str = "sbx0";
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";

/// The network plan, and the manifest's `hosts` (written to /etc/hosts in every mode).
pub(super) fn network(cx: &mut Cx, namespaces: &Namespaces) -> (NetPlan, BTreeMap<String, IpAddr>) {
    let loaded = cx.loaded;
    let default = Network::default();
    let network = loaded
        .manifest
        .network
        .as_ref()
        .map_or(&default, |n| &n.value);
    let mode = get(&network.mode).unwrap_or(if namespaces.net {
        NetworkMode::None
    } else {
        NetworkMode::Host
    });
    let mode_span = network.mode.as_ref().map(|m| m.span);

    check_mode(cx, mode, namespaces.net, mode_span);
    let ports: Vec<_> = network
        .ports
        .as_ref()
        .map(|p| p.value.iter().map(|p| p.value).collect())
        .unwrap_or_default();
    check_keys_of_mode(cx, network, mode);
    duplicate_ports(cx, network.ports.as_ref());
    let dns = ip_list(cx, network.dns.as_ref());
    let mut hosts = host_entries(cx, network.hosts.as_ref());
    let egress = super::egress::egress(cx, network, mode, &dns, &mut hosts);

    let plan = match mode {
        NetworkMode::Host => NetPlan::Host,
        NetworkMode::None => {
            // Names are harmless without a network, but a resolver that cannot be reached is
            // surely a mistake.
            if !dns.is_empty()
                && let Some(span) = network.dns.as_ref().map(|d| d.span)
            {
                cx.report(
                    Problem::warning(
                        "sandbox::network::dns-unreachable",
                        "`dns` servers cannot be reached with mode = \"none\"",
                    )
                    .at(span, "no route to these"),
                );
            }
            NetPlan::None
        }
        NetworkMode::Pasta => {
            let pasta = helper(
                cx,
                cx.host.pasta().map(Path::to_path_buf),
                mode_span,
                "sandbox::network::pasta-missing",
                "pasta",
                "passt",
            );
            NetPlan::Pasta(PastaPlan {
                ports,
                dns,
                pasta,
                egress,
            })
        }
        NetworkMode::Bridge => NetPlan::Bridge(bridge(cx, network, mode_span, ports, dns, egress)),
    };
    (plan, hosts)
}

/// The mode against the namespaces: "host" shares the host's network namespace, the others
/// need the sandbox's own.
fn check_mode(cx: &mut Cx, mode: NetworkMode, own_namespace: bool, mode_span: Option<Span>) {
    let net_span = cx.span_of("namespaces.net");
    match (mode, own_namespace) {
        (NetworkMode::Host, true) => cx.report(
            Problem::error("sandbox::network::mode-conflict", "network mode \"host\" shares the host's network namespace")
                .at_span(mode_span)
                .label("needs namespaces.net = false")
                .help("add `net = false` to [namespaces], or choose mode \"none\", \"bridge\" or \"pasta\""),
        ),
        (NetworkMode::None | NetworkMode::Bridge | NetworkMode::Pasta, false) => {
            let mode_name = serde_json::to_value(mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            cx.report(
                Problem::error("sandbox::network::mode-conflict", format!("network mode \"{mode_name}\" needs the sandbox's own network namespace"))
                    .at_span(mode_span.or(net_span))
                    .label("needs the sandbox's own network namespace")
                    .help("remove `net = false` from [namespaces], or set mode = \"host\""),
            )
        }
        _ => {}
    }
}

/// Keys that only some modes use: bridge settings, and published ports.
fn check_keys_of_mode(cx: &mut Cx, network: &Network, mode: NetworkMode) {
    let bridge_only: [(&str, Option<_>); 4] = [
        ("bridge", network.bridge.as_ref().map(|s| s.span)),
        ("subnet", network.subnet.as_ref().map(|s| s.span)),
        ("address", network.address.as_ref().map(|s| s.span)),
        ("isolate", network.isolate.as_ref().map(|s| s.span)),
    ];
    if mode != NetworkMode::Bridge {
        for (key, span) in bridge_only {
            if let Some(span) = span {
                cx.report(
                    Problem::error(
                        "sandbox::network::bridge-only",
                        format!("`{key}` only applies to mode = \"bridge\""),
                    )
                    .at(span, "unused in this mode")
                    .help("set mode = \"bridge\", or remove the key"),
                );
            }
        }
    }
    if network.ports.as_ref().is_some_and(|p| !p.value.is_empty())
        && !matches!(mode, NetworkMode::Bridge | NetworkMode::Pasta)
    {
        cx.report(
            Problem::error("sandbox::network::ports-need-forwarding", "published ports need mode = \"bridge\" or \"pasta\"")
                .at_span(network.ports.as_ref().map(|p| p.span))
                .help(match mode {
                    NetworkMode::Host => "with the host's network the sandbox's ports are the host's already; remove `ports`",
                    _ => "a sandbox with mode \"none\" has no way in; use \"bridge\" (root) or \"pasta\" (rootless)",
                }),
        );
    }
}

/// A bridge on the host, the sandbox's veth on it, and NAT (root only).
fn bridge(
    cx: &mut Cx,
    network: &Network,
    mode_span: Option<Span>,
    ports: Vec<PortSpec>,
    dns: Vec<IpAddr>,
    egress: Option<EgressPlan>,
) -> BridgePlan {
    if !cx.host.caller.is_root() {
        cx.report(
            Problem::error(
                "sandbox::network::bridge-needs-root",
                "bridge networking needs root",
            )
            .at_span(mode_span)
            .label("needs root")
            .help("rootless sandboxes get networking from pasta: set mode = \"pasta\""),
        );
    }
    let bridge = get(&network.bridge).unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
    if let Some(name) = &network.bridge
        && !is_valid_ifname(&name.value)
    {
        cx.report(
            Problem::error(
                "sandbox::network::ifname",
                format!("invalid interface name \"{}\"", name.value),
            )
            .at(name.span, "not an interface name")
            .help("use 1 to 15 characters: letters, digits, `-`, `_` and `.`"),
        );
    }
    let subnet = subnet(cx, network);
    let gateway = first_host(subnet);
    let address = address(cx, network, subnet, gateway);
    for port in network.ports.iter().flat_map(|p| &p.value) {
        if port.value.host_address.is_ipv6() {
            cx.report(
                Problem::error(
                    "sandbox::network::ipv6-port",
                    format!("{} cannot be forwarded to a bridge sandbox", port.value),
                )
                .at(port.span, "an IPv6 host address")
                .help("a bridge sandbox has an IPv4 address only, and NAT does not translate IPv6 to IPv4: publish on an IPv4 host address, or use mode = \"pasta\""),
            );
        }
    }
    let nft = helper(
        cx,
        cx.host.nft().map(Path::to_path_buf),
        mode_span,
        "sandbox::network::nft-missing",
        "nft",
        "nftables",
    );
    BridgePlan {
        bridge,
        subnet,
        gateway,
        address,
        ports,
        isolate: get(&network.isolate).unwrap_or(false),
        dns,
        nft,
        egress,
    }
}

/// The bridge's subnet: a network of at least four addresses.
fn subnet(cx: &mut Cx, network: &Network) -> Ipv4Net {
    let default = DEFAULT_SUBNET.parse().expect("valid default");
    let Some(text) = &network.subnet else {
        return default;
    };
    let (message, label, help) = match text.value.parse::<Ipv4Net>() {
        Ok(net) if net.prefix_len() <= 30 => return net.trunc(),
        Ok(_) => (
            format!("subnet {} is too small", text.value),
            "no room for a gateway and a sandbox",
            "use a prefix of /30 or shorter, e.g. \"10.88.0.0/16\"",
        ),
        Err(_) => (
            format!("invalid subnet \"{}\"", text.value),
            "not an IPv4 CIDR",
            "write an IPv4 network in CIDR notation, e.g. \"10.88.0.0/16\"",
        ),
    };
    cx.report(
        Problem::error("sandbox::network::subnet", message)
            .at(text.span, label)
            .help(help),
    );
    default
}

/// The sandbox's address, when the manifest fixes one: a host address of the subnet other
/// than the gateway's.
fn address(cx: &mut Cx, network: &Network, subnet: Ipv4Net, gateway: Ipv4Addr) -> Option<Ipv4Addr> {
    network.address.as_ref().and_then(|text| {
        let problem = |why: &str, label: &str| {
            Problem::error("sandbox::network::address", format!("address {} {why}", text.value))
                .at(text.span, label.to_string())
                .help(format!("choose an address in {subnet} other than its network, gateway ({gateway}) and broadcast addresses, or leave `address` out"))
        };
        match text.value.parse::<Ipv4Addr>() {
            Err(_) => {
                cx.report(problem("is not an IPv4 address", "not an address"));
                None
            }
            Ok(ip) if !subnet.contains(&ip) => {
                cx.report(problem(&format!("is outside the subnet {subnet}"), "outside the subnet"));
                None
            }
            Ok(ip) if ip == subnet.network() || ip == subnet.broadcast() || ip == gateway => {
                cx.report(problem("is reserved", "network, gateway or broadcast address"));
                None
            }
            Ok(ip) => Some(ip),
        }
    })
}

/// The path of a helper program the mode needs; a problem when the host has none.
fn helper(
    cx: &mut Cx,
    found: Option<PathBuf>,
    mode_span: Option<Span>,
    code: &'static str,
    program: &str,
    package: &str,
) -> PathBuf {
    found.unwrap_or_else(|| {
        cx.report(
            Problem::error(
                code,
                format!("this network mode needs `{program}`, which is not installed"),
            )
            .at_span(mode_span)
            .label(format!("needs {program}"))
            .help(format!(
                "install the {package} package (Debian, Ubuntu: `apt install {package}`); it is looked up in PATH, /usr/sbin and /sbin"
            )),
        );
        PathBuf::from(program)
    })
}

/// Two published ports that would bind the same host port and protocol (on the same address,
/// or one of them on every address) cannot both be forwarded.
fn duplicate_ports(cx: &mut Cx, ports: Option<&Spanned<Vec<Spanned<PortSpec>>>>) {
    let ports = ports.map(|p| p.value.as_slice()).unwrap_or_default();
    for (index, port) in ports.iter().enumerate() {
        let clash = ports[..index].iter().find(|earlier| {
            let (a, b) = (earlier.value, port.value);
            a.host_port == b.host_port
                && a.protocol == b.protocol
                && (a.host_address == b.host_address
                    || a.host_address.is_unspecified()
                    || b.host_address.is_unspecified())
        });
        if let Some(earlier) = clash {
            cx.report(
                Problem::error(
                    "sandbox::network::duplicate-port",
                    format!(
                        "host port {}/{} is published twice",
                        port.value.host_port, port.value.protocol
                    ),
                )
                .at(port.span, "second use")
                .also(earlier.span, "first use")
                .help("publish each host port once; forward a second sandbox port from another host port"),
            );
        }
    }
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// A network interface name the kernel accepts (IFNAMSIZ - 1 bytes, no `/`, `:` or space).
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name != "."
        && name != ".."
}

fn ip_list(cx: &mut Cx, list: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<IpAddr> {
    list.map(|list| list.value.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|text| match text.value.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                cx.report(
                    Problem::error(
                        "sandbox::network::not-an-ip",
                        format!("\"{}\" is not an IP address", text.value),
                    )
                    .at(text.span, "not an IP address")
                    .help("write an IPv4 or IPv6 address, e.g. \"10.88.0.1\""),
                );
                None
            }
        })
        .collect()
}

fn host_entries(
    cx: &mut Cx,
    hosts: Option<&Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    for (name, ip) in hosts.map(|h| &h.value).into_iter().flatten() {
        let valid_name = !name.value.is_empty()
            && name.value.len() <= 253
            && name
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
        if !valid_name {
            cx.report(
                Problem::error(
                    "sandbox::network::hostname",
                    format!("\"{}\" is not a host name", name.value),
                )
                .at(name.span, "not a host name")
                .help("use letters, digits, `-` and `.`"),
            );
            continue;
        }
        match ip.value.parse::<IpAddr>() {
            Ok(addr) => {
                out.insert(name.value.clone(), addr);
            }
            Err(_) => cx.report(
                Problem::error(
                    "sandbox::network::not-an-ip",
                    format!("\"{}\" is not an IP address", ip.value),
                )
                .at(ip.span, "not an IP address")
                .help("write an IPv4 or IPv6 address, e.g. \"10.88.0.3\""),
            ),
        }
    }
    out
}
