//! Network namespace.
//!
//! A fresh network namespace has only `lo`, and it starts down (network_namespaces(7)).
//!
//! The work is split to keep it off the launch's critical path. The sandbox's early half makes
//! the namespace (unless the supervisor attaches something to it, bridge or pasta, when the
//! clone does) and opens a netlink socket in it, which it hands to the supervisor: making a
//! network namespace is the costliest part of a launch (the kernel registers `lo` and the
//! namespace's sysctls: about 0.4 ms here, as much as the clone's other namespaces together)
//! and needs neither the id maps nor the supervisor, so it overlaps the supervisor's halves
//! instead of delaying the clone. The supervisor's released half then brings `lo` up (a
//! netlink request the kernel serves in the caller's time: about 0.08 ms) through that socket
//! while the sandbox sets up its mounts, in every mode but `host`. The socket acts in the
//! namespace it was opened in, so the supervisor never enters the sandbox's namespace (entering
//! it with setns and leaving again would have every later call of the supervisor depend on
//! getting back); the kernel lets it, as the sandbox's user namespace is the supervisor's own
//! child.
//!
//! Bridge mode (root) splits the work by namespace. The supervisor's half works in the host's
//! namespace: it leases an address (see [`lease`]), sets the bridge up on first use, makes a
//! veth pair whose peer is created straight in the sandbox's namespace as `eth0`, puts the host
//! end on the bridge, and installs the nftables rules. Its released half configures `eth0`
//! through the sandbox's socket: address, up, default route. The address also travels to the
//! sandbox in the `Go` message, for /etc/hosts.
//!
//! Pasta mode (rootless) starts pasta (see [`pasta`]) once the id maps are written, since it
//! joins the sandbox's user namespace.
//!
//! Everything the supervisor makes is undone when the [`Network`] it returns is dropped: after
//! the sandbox ends, or as soon as a later step fails. A supervisor killed by SIGKILL leaves a
//! stale lease (its sandbox's veth goes with the sandbox's namespace); the next launch on the
//! bridge removes what the lease names.

mod lease;
mod pasta;
mod rules;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;

use netlink_packet_route::RouteNetlinkMessage;
use nftables::schema::Nftables;
use nix::errno::Errno;

use crate::exec::error::{Op, OrFail, StepFailure};
use crate::netlink::{Netlink, Request, Socket};
use crate::plan::{BridgePlan, LEASE_DIR, NetPlan, Plan, StepId, veth_name};
use crate::sys::Sys;
use lease::{BridgeState, Lease, Locked, Store};

/// The loopback interface's index, the same in every network namespace.
const LOOPBACK: u32 = 1;

/// Netlink requests through the [`Sys`], on a socket it opened.
struct Through<'s> {
    sys: &'s dyn Sys,
    socket: Socket,
}

impl Request for Through<'_> {
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        self.sys.netlink_request(&mut self.socket, message, flags)
    }
}

fn open_netlink(sys: &dyn Sys) -> Result<Netlink<Through<'_>>, Errno> {
    let socket = sys.netlink_open()?;
    Ok(Netlink(Through { sys, socket }))
}

/// What the supervisor set up for the sandbox's network; undone on drop.
pub enum Network<'a> {
    /// `host` and `none`: nothing outside the sandbox.
    Nothing,
    Bridge(Bridged<'a>),
    /// Held for its drop, which ends pasta.
    Pasta {
        _running: pasta::Running,
    },
}

impl Network<'_> {
    /// The sandbox's address on its bridge.
    pub fn address(&self) -> Option<Ipv4Addr> {
        match self {
            Network::Bridge(bridged) => bridged.lease.as_ref().map(|l| l.address),
            Network::Nothing | Network::Pasta { .. } => None,
        }
    }
}

/// Parent half: runs once the id maps are written; `child` is the sandbox's setup process.
pub fn parent<'a>(
    sys: &'a dyn Sys,
    plan: &'a NetPlan,
    child: i32,
) -> Result<Network<'a>, StepFailure> {
    match plan {
        NetPlan::Host | NetPlan::None => Ok(Network::Nothing),
        NetPlan::Bridge(bridge) => {
            attach(sys, bridge, child, Store::new(LEASE_DIR)).map(Network::Bridge)
        }
        NetPlan::Pasta(pasta) => {
            pasta::start(pasta, child).map(|running| Network::Pasta { _running: running })
        }
    }
}

/// Early half, in the sandbox: its network namespace, unless the clone made it
/// ([`NetPlan::attached_by_supervisor`]); a netlink socket in it, for the supervisor.
pub fn early(sys: &dyn Sys, plan: &Plan) -> Result<Option<Socket>, StepFailure> {
    if plan.net == NetPlan::Host {
        return Ok(None);
    }
    if !plan.net.attached_by_supervisor() {
        sys.unshare(libc::CLONE_NEWNET)
            .or_fail(StepId::Net, Op::Unshare, || "unshare(CLONE_NEWNET)".into())
            .map_err(|f| f.with_key("network.mode"))?;
    }
    sys.netlink_open()
        .map(Some)
        .or_fail(StepId::Net, Op::Netlink, || {
            "opening a netlink socket".into()
        })
        .map_err(|f| f.with_key("network.mode"))
}

/// Released half, in the supervisor, through the sandbox's `socket`: `lo` up, and on a bridge
/// `eth0` with the leased `address` and the default route.
pub fn configure(
    sys: &dyn Sys,
    socket: Socket,
    plan: &Plan,
    address: Option<Ipv4Addr>,
) -> Result<(), StepFailure> {
    let mut netlink = Netlink(Through { sys, socket });
    netlink
        .set_up(LOOPBACK, None)
        .or_fail(StepId::Net, Op::Netlink, || "bringing lo up".into())
        .map_err(|f| f.with_key("network.mode"))?;
    match (&plan.net, address) {
        (NetPlan::Bridge(bridge), Some(address)) => configure_eth0(&mut netlink, bridge, address),
        _ => Ok(()),
    }
}

/// Child half: the egress rules, whose netlink socket it returns for the supervisor.
pub fn child(plan: &Plan) -> Result<Option<Socket>, StepFailure> {
    plan.net
        .egress()
        .map(|egress| {
            crate::egress::install(egress).map_err(|error| {
                StepFailure::new(
                    StepId::Net,
                    Op::EgressRules,
                    format!("installing the egress rules: {error}"),
                    error.errno(),
                )
                .with_key("network.egress")
            })
        })
        .transpose()
}

fn configure_eth0(
    netlink: &mut Netlink<Through<'_>>,
    bridge: &BridgePlan,
    address: Ipv4Addr,
) -> Result<(), StepFailure> {
    let fail = |action: String| {
        move |errno| {
            StepFailure::new(StepId::Net, Op::Netlink, action, errno).with_key("network.address")
        }
    };
    let eth0 = netlink
        .index("eth0")
        .and_then(|index| index.ok_or(Errno::ENODEV))
        .map_err(fail("finding eth0".into()))?;
    netlink
        .add_address(eth0, address, bridge.subnet.prefix_len())
        .map_err(fail(format!(
            "adding {address}/{} to eth0",
            bridge.subnet.prefix_len()
        )))?;
    netlink
        .set_up(eth0, None)
        .map_err(fail("bringing eth0 up".into()))?;
    netlink
        .add_default_route(eth0, bridge.gateway)
        .map_err(fail(format!(
            "adding the default route via {}",
            bridge.gateway
        )))
}

/// A sandbox on a bridge, as far as it got; what it made goes when this is dropped.
pub struct Bridged<'a> {
    sys: &'a dyn Sys,
    plan: &'a BridgePlan,
    store: Store,
    netlink: Netlink<Through<'a>>,
    lease: Option<Lease>,
    /// The sandbox's own nftables tables were made.
    rules: bool,
}

fn net_failure(key: &'static str) -> impl Fn(Op, String, Errno) -> StepFailure {
    move |op, action, errno| StepFailure::new(StepId::Net, op, action, errno).with_key(key)
}

fn attach<'a>(
    sys: &'a dyn Sys,
    plan: &'a BridgePlan,
    child: i32,
    store: Store,
) -> Result<Bridged<'a>, StepFailure> {
    let fail = net_failure("network.bridge");
    let netlink =
        open_netlink(sys).map_err(|e| fail(Op::Netlink, "opening a netlink socket".into(), e))?;
    let mut made = Bridged {
        sys,
        plan,
        store,
        netlink,
        lease: None,
        rules: false,
    };
    {
        let locked = made
            .store
            .lock()
            .map_err(|e| fail(Op::NetState, e.to_string(), e.errno()))?;
        let live = sweep(sys, plan, &locked, &mut made.netlink)?;
        let state = locked.bridge_state(&plan.bridge);
        if let Some(state) = state
            && state.subnet != plan.subnet
            && !live.is_empty()
        {
            return Err(net_failure("network.subnet")(
                Op::NetState,
                format!(
                    "bridge {} is in use with the subnet {}, not {}",
                    plan.bridge, state.subnet, plan.subnet
                ),
                Errno::EADDRINUSE,
            ));
        }
        let lease = locked
            .take(&plan.bridge, plan.subnet, plan.gateway, plan.address, &live)
            .map_err(|e| {
                net_failure("network.address")(
                    Op::LeaseAddress,
                    match plan.address {
                        Some(address) => format!("leasing {address} on {}", plan.bridge),
                        None => format!("leasing an address in {}", plan.subnet),
                    },
                    e,
                )
            })?;
        made.lease = Some(lease);
        if live.is_empty() {
            set_up_bridge(sys, plan, &locked, state, &mut made.netlink)?;
        }
    }
    let address = made.address();
    let veth = veth_name(address);
    let path = std::ffi::CString::new(format!("/proc/{child}/ns/net")).expect("no NUL");
    let netns = sys.openat(None, &path, libc::O_RDONLY, 0).map_err(|e| {
        fail(
            Op::OpenNamespace,
            "opening the sandbox's network namespace".into(),
            e,
        )
    })?;
    made.netlink
        .create_veth(&veth, "eth0", netns.as_fd())
        .map_err(|e| {
            fail(
                Op::Netlink,
                format!("creating the veth pair {veth} / eth0"),
                e,
            )
        })?;
    let host_end = made
        .netlink
        .index(&veth)
        .and_then(|i| i.ok_or(Errno::ENODEV))
        .map_err(|e| fail(Op::Netlink, format!("finding {veth}"), e))?;
    let bridge = made
        .netlink
        .index(&plan.bridge)
        .and_then(|i| i.ok_or(Errno::ENODEV))
        .map_err(|e| {
            fail(
                Op::Netlink,
                format!("finding the bridge {}", plan.bridge),
                e,
            )
        })?;
    made.netlink.set_up(host_end, Some(bridge)).map_err(|e| {
        fail(
            Op::AttachBridge,
            format!("attaching {veth} to {}", plan.bridge),
            e,
        )
    })?;
    if let Some(document) = rules::sandbox(plan, address) {
        made.rules = true;
        nft(
            sys,
            &plan.nft,
            &document,
            "installing the sandbox's rules",
            if plan.ports.is_empty() {
                "network.isolate"
            } else {
                "network.ports"
            },
        )?;
    }
    Ok(made)
}

impl Bridged<'_> {
    fn address(&self) -> Ipv4Addr {
        self.lease.as_ref().expect("leased").address
    }
}

/// The first sandbox on a bridge: create it (unless it exists), give it the gateway address,
/// bring it up, turn on forwarding, and install the bridge's rules.
fn set_up_bridge(
    sys: &dyn Sys,
    plan: &BridgePlan,
    locked: &Locked<'_>,
    before: Option<BridgeState>,
    netlink: &mut Netlink<Through<'_>>,
) -> Result<(), StepFailure> {
    let fail = net_failure("network.bridge");
    let name = &plan.bridge;
    let created = netlink
        .create_bridge(name)
        .map_err(|e| fail(Op::Netlink, format!("creating the bridge {name}"), e))?;
    // Recorded first, so that a failure below still removes a bridge made here.
    let state = BridgeState {
        subnet: plan.subnet,
        created: created || before.is_some_and(|b| b.created),
    };
    locked
        .set_bridge_state(name, state)
        .map_err(|e| fail(Op::NetState, format!("recording the bridge {name}"), e))?;
    let index = netlink
        .index(name)
        .and_then(|i| i.ok_or(Errno::ENODEV))
        .map_err(|e| fail(Op::Netlink, format!("finding the bridge {name}"), e))?;
    if state.created {
        netlink
            .add_address(index, plan.gateway, plan.subnet.prefix_len())
            .map_err(|e| {
                fail(
                    Op::Netlink,
                    format!(
                        "adding {}/{} to {name}",
                        plan.gateway,
                        plan.subnet.prefix_len()
                    ),
                    e,
                )
            })?;
    }
    netlink
        .set_up(index, None)
        .map_err(|e| fail(Op::Netlink, format!("bringing {name} up"), e))?;
    // Forwarding is the host's setting, shared with everything else routing there; it is
    // turned on and left on, as Docker and Podman do.
    // route_localnet lets the host's own connections to a port published on 127.0.0.1 be
    // routed to the bridge (rules::bridge guards what it would otherwise open).
    for path in [
        "/proc/sys/net/ipv4/ip_forward".to_string(),
        format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"),
    ] {
        enable(sys, Path::new(&path))
            .map_err(|e| fail(Op::Sysctl, format!("writing 1 to {path}"), e))?;
    }
    nft(
        sys,
        &plan.nft,
        &rules::bridge(plan),
        "installing the bridge's rules",
        "network.bridge",
    )
}

fn enable(sys: &dyn Sys, path: &Path) -> Result<(), Errno> {
    if sys.read_file(path)?.starts_with(b"1") {
        return Ok(());
    }
    sys.write_file(path, b"1")
}

/// Remove what the sandboxes of stale leases made, then the leases; returns the live ones.
fn sweep(
    sys: &dyn Sys,
    plan: &BridgePlan,
    locked: &Locked<'_>,
    netlink: &mut Netlink<Through<'_>>,
) -> Result<BTreeSet<Ipv4Addr>, StepFailure> {
    let fail = net_failure("network.bridge");
    let (live, stale) = locked.leases(&plan.bridge).map_err(|e| {
        fail(
            Op::NetState,
            format!("reading the leases of {}", plan.bridge),
            e,
        )
    })?;
    if stale.is_empty() {
        return Ok(live);
    }
    let mut tables = Vec::new();
    for &address in &stale {
        let veth = veth_name(address);
        netlink
            .delete(&veth)
            .map_err(|e| fail(Op::Netlink, format!("removing the stale veth {veth}"), e))?;
        tables.extend(rules::sandbox_tables(plan, address));
    }
    nft(
        sys,
        &plan.nft,
        &rules::remove(&tables),
        "removing stale rules",
        "network.bridge",
    )?;
    for address in stale {
        locked.forget(&plan.bridge, address).map_err(|e| {
            fail(
                Op::NetState,
                format!("removing the stale lease of {address}"),
                e,
            )
        })?;
    }
    Ok(live)
}

impl Drop for Bridged<'_> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let (sys, plan) = (self.sys, self.plan);
        let address = lease.address;
        let removed = self.netlink.delete(&veth_name(address)).is_ok()
            && (!self.rules
                || nft(
                    sys,
                    &plan.nft,
                    &rules::remove(&rules::sandbox_tables(plan, address)),
                    "removing the sandbox's rules",
                    "network.ports",
                )
                .is_ok());
        let Ok(locked) = self.store.lock() else {
            return;
        };
        // What could not be removed stays leased, without an owner: the next launch on the
        // bridge sweeps it.
        if removed {
            let _ = lease.release(&locked);
        } else {
            drop(lease);
        }
        let Ok(live) = sweep(sys, plan, &locked, &mut self.netlink) else {
            return;
        };
        if live.is_empty() {
            let created = locked.bridge_state(&plan.bridge).is_some_and(|s| s.created);
            let gone = nft(
                sys,
                &plan.nft,
                &rules::remove(&[(
                    nftables::types::NfFamily::IP,
                    crate::plan::bridge_table(&plan.bridge),
                )]),
                "removing the bridge's rules",
                "network.bridge",
            )
            .is_ok()
                && (!created || self.netlink.delete(&plan.bridge).is_ok());
            if gone {
                let _ = locked.forget_bridge(&plan.bridge);
            }
        }
    }
}

/// Apply `document` with `nft -j -f -`. Run here, not through the nftables crate's helper,
/// which leaves nft's stderr on the caller's terminal: nft's message belongs in the step's
/// error, next to the manifest key.
fn nft(
    sys: &dyn Sys,
    program: &Path,
    document: &Nftables<'_>,
    action: &str,
    key: &'static str,
) -> Result<(), StepFailure> {
    let fail = net_failure(key);
    let payload = serde_json::to_vec(document).expect("an nftables document serializes");
    let output = sys
        .run_fed(program, &["-j", "-f", "-"], &payload)
        .map_err(|errno| {
            fail(
                Op::Nft,
                format!("{action}: running {}", program.display()),
                errno,
            )
        })?;
    if output.status.success() {
        return Ok(());
    }
    let message = String::from_utf8_lossy(&output.stderr);
    Err(fail(
        Op::Nft,
        format!("{action}: nft refused them: {}", message.trim()),
        Errno::EINVAL,
    ))
}

/// The parent half in the step table; what it set up stays in the context until the run ends.
pub fn parent_half<'a>(cx: &mut crate::exec::order::Context<'a>) -> Result<(), StepFailure> {
    let plan: &'a Plan = cx.plan;
    cx.network = Some(parent(cx.sys, &plan.net, cx.child_pid())?);
    Ok(())
}

/// The early half in the step table.
pub fn early_half(cx: &mut crate::exec::order::Context<'_>) -> Result<(), StepFailure> {
    cx.netlink = early(cx.sys, cx.plan)?;
    Ok(())
}

/// The released half in the step table, with the socket the sandbox handed over.
pub fn released_half(cx: &mut crate::exec::order::Context<'_>) -> Result<(), StepFailure> {
    match cx.netlink.take() {
        Some(socket) => configure(cx.sys, socket, cx.plan, cx.address),
        None => Ok(()),
    }
}

/// The child half in the step table.
pub fn child_half(cx: &mut crate::exec::order::Context<'_>) -> Result<(), StepFailure> {
    cx.egress = child(cx.plan)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::Fake;

    fn bridge_plan(ports: &[&str]) -> BridgePlan {
        use crate::manifest::values::PortSpec;
        BridgePlan {
            bridge: "sbx0".into(),
            subnet: "10.88.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 88, 0, 1),
            address: Some(ADDRESS),
            ports: ports.iter().map(|p| PortSpec::parse(p).unwrap()).collect(),
            isolate: false,
            dns: Vec::new(),
            nft: "/usr/sbin/nft".into(),
            egress: None,
        }
    }

    const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 7);

    /// A sandbox attached to the bridge `sbx0` (with `ports` published) through `fake`, and let
    /// go at once: what attaching gave, and the lease store it used.
    fn attach_and_leave(
        fake: &Fake,
        ports: &[&str],
    ) -> (Result<Ipv4Addr, StepFailure>, tempfile::TempDir) {
        let store = tempfile::tempdir().unwrap();
        let plan = bridge_plan(ports);
        let attached = attach(fake, &plan, 4242, Store::new(store.path()));
        (attached.map(|bridged| bridged.address()), store)
    }

    /// The early, released and child halves in the network mode `net`.
    fn configure_with(fake: &Fake, net: NetPlan) -> Result<Option<Socket>, StepFailure> {
        let mut plan = crate::plan::for_tests();
        plan.net = net;
        if let Some(socket) = early(fake, &plan)? {
            configure(fake, socket, &plan, Some(ADDRESS))?;
        }
        child(&plan)
    }

    /// The netlink, nft and sysctl calls among `fake`'s, without the reads of the sysctls.
    fn network_calls(fake: &Fake) -> Vec<String> {
        (fake.calls().into_iter())
            .filter(|call| !call.starts_with("read_file("))
            .collect()
    }

    const FIRST_ON_THE_BRIDGE: [&str; 13] = [
        "netlink_open()",
        "newlink(sbx0, bridge)",
        "getlink(sbx0)",
        "newaddr(sbx0, 10.88.0.1/16)",
        "setlink(sbx0 up)",
        "write_file(/proc/sys/net/ipv4/ip_forward, \"1\")",
        "write_file(/proc/sys/net/ipv4/conf/sbx0/route_localnet, \"1\")",
        "run_fed(nft -j -f -: add table ip sandbox-sbx0, delete table ip sandbox-sbx0, \
         add table ip sandbox-sbx0, 9 commands)",
        "openat(/proc/4242/ns/net)",
        "newlink(sbx0a580007, veth, peer eth0 in /proc/4242/ns/net)",
        "getlink(sbx0a580007)",
        "getlink(sbx0)",
        "setlink(sbx0a580007 up, on sbx0)",
    ];

    /// What the last sandbox on a bridge the launcher made leaves behind it: nothing.
    const LAST_OFF_THE_BRIDGE: [&str; 3] = [
        "dellink(sbx0a580007)",
        "run_fed(nft -j -f -: add table ip sandbox-sbx0, delete table ip sandbox-sbx0, \
         2 commands)",
        "dellink(sbx0)",
    ];

    #[test]
    fn the_first_sandbox_on_a_bridge_makes_the_bridge_then_its_veth_and_the_last_removes_all() {
        let fake = Fake::new();
        let (attached, store) = attach_and_leave(&fake, &[]);
        assert_eq!(attached.unwrap(), ADDRESS);
        let calls = network_calls(&fake);
        let (made, removed) = calls.split_at(FIRST_ON_THE_BRIDGE.len());
        assert_eq!(made, FIRST_ON_THE_BRIDGE);
        assert_eq!(removed, LAST_OFF_THE_BRIDGE);
        let left: Vec<_> = std::fs::read_dir(store.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name != ".lock")
            .collect();
        assert!(left.is_empty(), "no lease, no bridge state: {left:?}");
    }

    #[test]
    fn published_ports_get_the_sandboxs_own_rules_removed_with_it() {
        let fake = Fake::new();
        attach_and_leave(&fake, &["8080:80"]).0.unwrap();
        let nft = fake.calls_of("run_fed");
        assert_eq!(nft.len(), 4, "{nft:#?}");
        assert!(
            nft[1].contains("add table ip sandbox-sbx0-10.88.0.7"),
            "{nft:#?}"
        );
        assert!(
            nft[2].contains("delete table ip sandbox-sbx0-10.88.0.7"),
            "{nft:#?}"
        );
        assert!(nft[3].contains("delete table ip sandbox-sbx0,"), "{nft:#?}");
    }

    #[test]
    fn a_veth_that_cannot_join_the_bridge_is_removed_with_the_bridge() {
        let fake = Fake::new();
        // setlink 0 brings the bridge up, setlink 1 attaches the veth.
        fake.fail("setlink", 1, Errno::EBUSY);
        let failure = attach_and_leave(&fake, &[]).0.unwrap_err();
        assert_eq!(failure.errno(), Errno::EBUSY);
        assert!(
            failure
                .to_string()
                .contains("attaching sbx0a580007 to sbx0"),
            "{failure}"
        );
        let calls = network_calls(&fake);
        assert_eq!(calls[FIRST_ON_THE_BRIDGE.len()..], LAST_OFF_THE_BRIDGE);
    }

    #[test]
    fn a_veth_that_cannot_be_made_leaves_no_bridge_behind() {
        let fake = Fake::new();
        // newlink 0 makes the bridge, newlink 1 the veth pair.
        fake.fail("newlink", 1, Errno::EPERM);
        assert!(attach_and_leave(&fake, &[]).0.is_err());
        let calls = network_calls(&fake);
        assert_eq!(calls.last().map(String::as_str), Some("dellink(sbx0)"));
        assert_eq!(
            fake.calls_of("dellink").len(),
            2,
            "the veth, then the bridge"
        );
    }

    #[test]
    fn a_bridge_that_existed_is_left_where_it_was() {
        let fake = Fake::new();
        fake.fail("newlink", 0, Errno::EEXIST);
        attach_and_leave(&fake, &[]).0.unwrap();
        assert!(
            !fake
                .calls()
                .iter()
                .any(|call| call.starts_with("newaddr(sbx0"))
        );
        assert_eq!(fake.calls_of("dellink"), ["dellink(sbx0a580007)"]);
    }

    #[test]
    fn inside_lo_comes_up_then_eth0_gets_the_address_and_the_default_route() {
        let fake = Fake::new();
        let egress = configure_with(&fake, NetPlan::Bridge(bridge_plan(&[]))).unwrap();
        assert!(egress.is_none());
        assert_eq!(
            fake.calls(),
            [
                "netlink_open()",
                "setlink(lo up)",
                "getlink(eth0)",
                "newaddr(eth0, 10.88.0.7/16)",
                "setlink(eth0 up)",
                "newroute(default via 10.88.0.1, eth0)",
            ]
        );
    }

    #[test]
    fn an_empty_network_is_made_by_the_sandbox_with_only_lo_up_and_the_host_network_is_left_alone()
    {
        let fake = Fake::new();
        configure_with(&fake, NetPlan::None).unwrap();
        assert_eq!(
            fake.calls(),
            [
                format!("unshare({:#x})", libc::CLONE_NEWNET),
                "netlink_open()".into(),
                "setlink(lo up)".into(),
            ]
        );
        let fake = Fake::new();
        configure_with(&fake, NetPlan::Host).unwrap();
        assert_eq!(fake.calls(), Vec::<String>::new());
    }

    #[test]
    fn a_network_namespace_the_kernel_refuses_fails_the_net_step_before_any_socket() {
        let fake = Fake::new();
        fake.fail("unshare", 0, Errno::ENOSPC);
        let Err(failure) = configure_with(&fake, NetPlan::None) else {
            panic!("configured");
        };
        assert_eq!(failure.errno(), Errno::ENOSPC);
        assert_eq!(failure.step, StepId::Net);
        assert!(failure.to_string().contains("CLONE_NEWNET"), "{failure}");
        assert_eq!(fake.calls_of("netlink_open"), Vec::<String>::new());
    }

    #[test]
    fn a_missing_eth0_fails_naming_it() {
        let fake = Fake::new();
        fake.absent("eth0");
        let Err(failure) = configure_with(&fake, NetPlan::Bridge(bridge_plan(&[]))) else {
            panic!("configured");
        };
        assert_eq!(failure.errno(), Errno::ENODEV);
        assert!(failure.to_string().contains("finding eth0"), "{failure}");
    }
}
