//! The plan as the ordered steps the executor takes: user -> mount -> pid -> net -> chroot ->
//! cgroup -> security -> exec. `sandbox plan` prints these as a numbered list or as JSON.

use crate::origin::Origin;
use std::fmt::Write as _;

use caps::Capability as Cap;
use serde::Serialize;
use serde_json::{Value, json};

use super::seccomp::{Verdict, filter, notable_blocked};
use super::{
    BridgePlan, EGRESS_TABLE, EgressPlan, Idmap, LEASE_DIR, LandlockPlan, MapWriter, MountOp,
    NetPlan, OverlayUpper, Plan, RootSource, SeccompPlan, SecurityPlan, bridge_table,
    sandbox_table, veth_name,
};
use crate::manifest::values::{Arch, Capability};
use crate::plan::{ID_BLOCK, IDS_DIR, IdMapping, Ids, StepId};

/// One line of a step, and the manifest key behind it (for `--explain`).
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub key: Option<Origin>,
}

/// One step as people and machines see it.
#[derive(Debug, Clone)]
pub struct StepView {
    pub id: StepId,
    pub lines: Vec<Line>,
    /// The step's settings, for `--json`.
    pub detail: Value,
}

impl StepView {
    fn new(id: StepId) -> Self {
        StepView {
            id,
            lines: Vec::new(),
            detail: json!({}),
        }
    }

    fn line(&mut self, key: impl Into<Option<&'static str>>, text: impl Into<String>) {
        self.lines.push(Line {
            text: text.into(),
            key: key.into().map(Origin::from),
        });
    }

    fn line_for(&mut self, key: Origin, text: impl Into<String>) {
        self.lines.push(Line {
            text: text.into(),
            key: Some(key),
        });
    }

    fn set(&mut self, field: &str, value: impl Serialize) {
        self.detail[field] = serde_json::to_value(value).expect("plan values serialize");
    }
}

pub fn maps(map: &[IdMapping]) -> String {
    map.iter()
        .map(|m| match m.count {
            1 => format!("{} -> {}", m.inside, m.outside),
            _ => format!(
                "{}..{} -> {}..{}",
                m.inside,
                m.inside_end() - 1,
                m.outside,
                m.outside_end() - 1
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn size(bytes: u64) -> String {
    crate::manifest::values::Size(bytes).to_string()
}

/// The steps that do something, in order.
pub fn steps(plan: &Plan) -> Vec<StepView> {
    StepId::ORDER
        .iter()
        .filter_map(|id| step(plan, *id))
        .collect()
}

fn step(plan: &Plan, id: StepId) -> Option<StepView> {
    match id {
        StepId::User => user_step(plan),
        StepId::Mount => mount_step(plan),
        StepId::Pid => pid_step(plan),
        StepId::Net => net_step(plan),
        StepId::Chroot => chroot_step(plan),
        StepId::Cgroup => cgroup_step(plan),
        StepId::Security => security_step(plan),
        StepId::Exec => exec_step(plan),
    }
}

/// The namespaces the sandbox is cloned into, its id maps, and the names and clocks of its own.
fn user_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::User);
    s.line(
        "namespaces",
        format!(
            "clone into new namespaces: {}",
            plan.namespaces.names().join(", ")
        ),
    );
    s.set("namespaces", plan.namespaces.names());
    if let Some(user) = &plan.user {
        let leased = |map: &[IdMapping], base: Option<u32>| match (&user.pool, base) {
            (Some(pool), Some(_)) => format!(
                "{}..{} -> a block of {ID_BLOCK} host ids of its own, leased in {IDS_DIR}/ as it \
                 starts: the first free one of {} ({} now, if no other sandbox runs)",
                map[0].inside,
                map[0].inside_end() - 1,
                pool.text(),
                maps(map).split(" -> ").nth(1).unwrap_or_default()
            ),
            _ => maps(map),
        };
        let pool = user.pool.as_ref();
        s.line(
            "uid_map",
            format!(
                "uid map {}",
                leased(&user.uid_map, pool.and_then(|p| p.uid_base))
            ),
        );
        s.line(
            "gid_map",
            format!(
                "gid map {}",
                leased(&user.gid_map, pool.and_then(|p| p.gid_base))
            ),
        );
        s.line(
            None,
            match &user.writer {
                MapWriter::Direct if user.deny_setgroups => {
                    "maps written by the launcher (setgroups denied)".to_string()
                }
                MapWriter::Direct => "maps written by the launcher".to_string(),
                MapWriter::Helper {
                    newuidmap,
                    newgidmap,
                } => {
                    format!(
                        "maps written by {} and {}",
                        newuidmap.display(),
                        newgidmap.display()
                    )
                }
            },
        );
        s.set("uid_map", &user.uid_map);
        s.set("gid_map", &user.gid_map);
        s.set("writer", &user.writer);
        s.set("deny_setgroups", user.deny_setgroups);
    }
    if let Some(uts) = &plan.uts {
        s.line("uts.hostname", format!("hostname {}", uts.hostname));
        s.set("hostname", &uts.hostname);
        if let Some(domain) = &uts.domainname {
            s.line("uts.domainname", format!("domain name {domain}"));
            s.set("domainname", domain);
        }
    }
    if let Some(time) = &plan.time {
        let start = if time.zero_at_start {
            "clocks start at zero; "
        } else {
            ""
        };
        s.line(
            "time",
            format!(
                "{start}clock offsets: monotonic {} ns, boottime {} ns",
                time.monotonic_ns, time.boottime_ns
            ),
        );
        s.set("time", time);
    }
    Some(s)
}

/// The root and each mount, in the order they are made.
fn mount_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Mount);
    s.line(
        None,
        "make every mount private, so nothing propagates to the host",
    );
    let root = match &plan.root.source {
        RootSource::Tmpfs => "a fresh tmpfs".to_string(),
        RootSource::Dir { path } => format!("the directory {}", path.display()),
        RootSource::Tar { path, sha256 } => format!(
            "the tarball {}{} (unpacked once into the cache, shared read-only)",
            path.display(),
            sha256
                .as_ref()
                .map_or(String::new(), |sha| format!(", sha256 {sha}"))
        ),
        RootSource::Oci {
            path,
            manifest,
            layers,
            ..
        } => format!(
            "the OCI image {} (manifest {manifest}, {} layer{}; unpacked once into the cache, shared read-only)",
            path.display(),
            layers.len(),
            if layers.len() == 1 { "" } else { "s" }
        ),
    };
    let shared = matches!(
        plan.root.source,
        RootSource::Tar { .. } | RootSource::Oci { .. }
    );
    let overlay = match &plan.root.overlay {
        None if shared => " under the sandbox's own layer for its mount points".into(),
        None => String::new(),
        Some(OverlayUpper::Tmpfs) => " under a throw-away writable overlay".into(),
        Some(OverlayUpper::Dir { upper, idmap, .. }) => format!(
            " under a writable overlay kept in {}{}",
            upper.display(),
            idmap_text(idmap.as_ref())
        ),
    };
    let idmapped = if plan.root.idmapped {
        ", id-mapped so the host's root owns it as root inside"
    } else {
        ""
    };
    s.line("rootfs", format!("root: {root}{idmapped}{overlay}"));
    s.set("root", &plan.root);
    for mount in &plan.mounts {
        let mut line = describe_mount(&mount.op);
        if let (MountOp::Bind { idmap, .. }, true) =
            (&mount.op, matches!(mount.key, Origin::Mount(_)))
        {
            line.push_str(&owners_seen(plan, idmap.as_ref()));
        }
        s.line_for(mount.key.clone(), line);
    }
    s.set("mounts", &plan.mounts);
    Some(s)
}

/// The sandbox's init, when it has its own pid namespace.
fn pid_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Pid);
    if !plan.namespaces.pid {
        return None;
    }
    s.line(
        "namespaces.pid",
        "pid 1 is the sandbox's init: it reaps zombies and forwards signals to the command",
    );
    s.set("init", true);
    Some(s)
}

/// The network the sandbox gets, unless it shares the host's.
fn net_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Net);
    match &plan.net {
        NetPlan::Host => return None,
        NetPlan::None => s.line("network.mode", "own network namespace with only lo, up"),
        NetPlan::Bridge(bridge) => bridge_lines(&mut s, bridge),
        NetPlan::Pasta(pasta) => {
            s.line(
                "network.mode",
                format!(
                    "user-mode networking: {} joins the sandbox's namespaces; the host's loopback is at the gateway's address",
                    pasta.pasta.display()
                ),
            );
            for port in &pasta.ports {
                s.line(
                    "network.ports",
                    format!(
                        "forward {}:{}/{} to the sandbox's port {}",
                        port.host_address, port.host_port, port.protocol, port.sandbox_port
                    ),
                );
            }
            egress_lines(&mut s, pasta.egress.as_ref());
        }
    }
    s.detail = serde_json::to_value(&plan.net).expect("net plan serializes");
    Some(s)
}

/// The bridge, the sandbox's leased address and veth, its published ports and isolation.
fn bridge_lines(s: &mut StepView, bridge: &BridgePlan) {
    let prefix = bridge.subnet.prefix_len();
    let table = bridge_table(&bridge.bridge);
    s.line(
        "network.bridge",
        format!(
            "bridge {} with {}/{prefix}, created on first use; IPv4 forwarding on; nft table ip {table}: masquerade {} to the outside",
            bridge.bridge, bridge.gateway, bridge.subnet
        ),
    );
    // The names that depend on a leased address are shown with a placeholder.
    let (address, veth, own) = match bridge.address {
        Some(address) => (
            address.to_string(),
            veth_name(address),
            sandbox_table(&bridge.bridge, address),
        ),
        None => (
            "ADDRESS".to_string(),
            "sbx<ADDRESS in hex>".to_string(),
            format!("sandbox-{}-ADDRESS", bridge.bridge),
        ),
    };
    s.line(
        "network.address",
        format!(
            "lease {} in {LEASE_DIR}/{}/",
            match bridge.address {
                Some(address) => address.to_string(),
                None => format!("ADDRESS, the next free one in {}", bridge.subnet),
            },
            bridge.bridge
        ),
    );
    s.line(
        "network.bridge",
        format!(
            "veth pair {veth} (on {}) / eth0 (inside): {address}/{prefix}, up, default route via {}",
            bridge.bridge, bridge.gateway
        ),
    );
    for port in &bridge.ports {
        let from = if port.host_address.is_loopback() {
            "the host's own connections"
        } else {
            "connections to the host"
        };
        s.line(
            "network.ports",
            format!(
                "nft table ip {own}: dnat {}:{}/{} to {address}:{} ({from})",
                port.host_address, port.host_port, port.protocol, port.sandbox_port
            ),
        );
    }
    if bridge.isolate {
        s.line(
            "network.isolate",
            format!(
                "nft table bridge {own}: drop frames between {veth} and the other ports of {}",
                bridge.bridge
            ),
        );
    }
    egress_lines(s, bridge.egress.as_ref());
}

/// The switch into the new root.
fn chroot_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Chroot);
    s.line(None, "pivot_root into the new root; detach the old root");
    if plan.root.readonly {
        s.line("rootfs.readonly", "remount the root read-only");
    }
    s.set("method", "pivot_root");
    s.set("readonly", plan.root.readonly);
    Some(s)
}

/// The sandbox's own group and its limits, and its cgroup namespace.
fn cgroup_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Cgroup);
    if plan.cgroup.is_none() && !plan.namespaces.cgroup {
        return None;
    }
    if let Some(cgroup) = &plan.cgroup {
        let limits: Vec<String> = cgroup
            .limits
            .iter()
            .map(|(limit, value)| limit.text(value))
            .collect();
        s.line(
            "cgroup",
            format!(
                "own group {}/{}-<pid>-<start> (cgroup {}), made by the launcher in {}",
                cgroup.parent,
                plan.name,
                cgroup.version.name(),
                cgroup
                    .hierarchies
                    .iter()
                    .map(|h| match cgroup.version {
                        super::CgroupVersion::V1 => format!("{}", h.base.display()),
                        super::CgroupVersion::V2 => format!(
                            "{} (handing down {})",
                            h.base.display(),
                            h.controllers.join(" ")
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if !limits.is_empty() {
            s.line("cgroup", format!("limits: {}", limits.join(", ")));
        }
        if cgroup.stats {
            s.line(
                None,
                "at exit: peak memory, cpu time and task peak from the group's accounting",
            );
        }
        s.line(
            None,
            "at exit: kill what is left in the group, remove it; groups of dead supervisors under the parent are removed first",
        );
        if cgroup.view {
            s.line(
                "cgroup",
                "the group's cgroup file system mounted read-only on /sys/fs/cgroup",
            );
        }
        s.set("parent", &cgroup.parent);
        s.set("limits", &cgroup.limits);
        s.set("version", cgroup.version);
        s.set("hierarchies", &cgroup.hierarchies);
        s.set("stats", cgroup.stats);
        s.set("view", cgroup.view);
    }
    if plan.namespaces.cgroup {
        s.line(
            "namespaces.cgroup",
            "new cgroup namespace: the sandbox sees its group as /",
        );
    }
    s.set("namespace", plan.namespaces.cgroup);
    Some(s)
}

/// What the command may do: capabilities, seccomp, landlock, rlimits, masked paths.
fn security_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Security);
    let sec = &plan.security;
    s.line(
        "security.capabilities",
        match sec.capabilities.as_slice() {
            [] => "drop every capability".to_string(),
            kept => format!(
                "keep only {}",
                kept.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    );
    if sec.no_new_privileges {
        s.line(
            "security.no_new_privileges",
            "no_new_privs: setuid binaries gain nothing",
        );
    }
    let switches_ids = [Cap::CAP_CHOWN, Cap::CAP_SETUID, Cap::CAP_SETGID]
        .iter()
        .any(|cap| sec.capabilities.contains(&Capability(*cap)));
    if switches_ids
        && let Some(user) = &plan.user
        && user.uid_map.iter().map(|m| u64::from(m.count)).sum::<u64>() == 1
    {
        s.line(
            "uid_map",
            "only one id is mapped: chown, setuid and setgid to another id fail (EINVAL); \
             uid_map = \"auto\" and gid_map = \"auto\" map a range from a grant in /etc/subuid and /etc/subgid",
        );
    }
    for line in seccomp_lines(sec) {
        s.line("security.seccomp", line);
    }
    let blocked = notable_blocked(sec);
    for group in &blocked {
        match group.lifted_by {
            Some(cap) => s.line(
                "security.capabilities",
                format!(
                    "seccomp blocks {}: capabilities = [\"{}\"] allows it",
                    group.family,
                    cap.short_name()
                ),
            ),
            None => s.line(
                "security.seccomp",
                format!(
                    "seccomp blocks {}: only a custom `seccomp` table allows it",
                    group.family
                ),
            ),
        }
    }
    if let Some(landlock) = &sec.landlock {
        landlock_lines(&mut s, landlock);
    }
    s.line("security.rlimits", rlimits_text(sec));
    if !sec.masked_paths.is_empty() {
        s.line(
            None,
            format!(
                "mask {} kernel paths, {} read-only",
                sec.masked_paths.len(),
                sec.readonly_paths.len()
            ),
        );
    }
    s.detail = serde_json::to_value(sec).expect("security plan serializes");
    s.set("blocked", &blocked);
    Some(s)
}

/// The paths landlock lets the command read, write and execute, and its TCP ports.
fn landlock_lines(s: &mut StepView, landlock: &LandlockPlan) {
    let list = |paths: &[std::path::PathBuf]| match paths {
        [] => "nothing".to_string(),
        paths => paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
    };
    s.line(
        "security.landlock",
        format!(
            "landlock{}: read {}; write {}; execute {}",
            if landlock.required { " (required)" } else { "" },
            list(&landlock.read),
            list(&landlock.write),
            list(&landlock.execute)
        ),
    );
    let ports = |ports: &Option<Vec<u16>>| match ports.as_deref() {
        None => "any port".to_string(),
        Some([]) => "no port".to_string(),
        Some(ports) => ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    };
    if landlock.bind_tcp.is_some() || landlock.connect_tcp.is_some() {
        s.line(
            "security.landlock",
            format!(
                "landlock TCP: bind {}; connect {}",
                ports(&landlock.bind_tcp),
                ports(&landlock.connect_tcp)
            ),
        );
    }
}

/// The rlimits the command starts with, and which are above the caller's hard limit.
fn rlimits_text(sec: &SecurityPlan) -> String {
    let rlimits: Vec<String> = sec
        .rlimits
        .iter()
        .map(|(name, value)| {
            let value = match value {
                crate::manifest::values::RlimitValue::Unlimited => "unlimited".into(),
                crate::manifest::values::RlimitValue::Limited(n) => n.to_string(),
            };
            let raised = if sec.raise_hard_limits.contains(name) {
                " (above the caller's hard limit, which the launcher raises)"
            } else {
                ""
            };
            format!("{}={value}{raised}", name.name())
        })
        .collect();
    format!("rlimits {}", rlimits.join(" "))
}

/// The command, as whom, where and with what environment.
fn exec_step(plan: &Plan) -> Option<StepView> {
    let mut s = StepView::new(StepId::Exec);
    let p = &plan.process;
    s.line("process.command", format!("exec {}", shell_words(&p.argv)));
    let groups = if p.groups.is_empty() {
        String::new()
    } else {
        format!(" groups {:?}", p.groups)
    };
    s.line(
        "process.user",
        format!(
            "as uid {} gid {}{groups} in {}",
            p.uid,
            p.gid,
            p.cwd.display()
        ),
    );
    let named = if p.named_env.is_empty() {
        String::new()
    } else {
        format!(
            "; {} = the name of uid {} in the root's /etc/passwd",
            p.named_env.join(", "),
            p.uid
        )
    };
    s.line(
        "process.env",
        format!(
            "environment: {}{named}",
            p.env
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let mut extra = vec![
        format!("umask {:04o}", p.umask),
        format!("tty {}", json!(p.tty).as_str().unwrap_or("auto")),
    ];
    if let Some(ms) = p.timeout_ms {
        extra.push(format!("timeout {}", crate::manifest::values::Duration(ms)));
    }
    s.line(None, extra.join(", "));
    s.detail = serde_json::to_value(p).expect("process plan serializes");
    Some(s)
}

pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn idmap_text(idmap: Option<&Idmap>) -> String {
    match idmap {
        None => String::new(),
        Some(Idmap::Sandbox) => " (id-mapped through the sandbox's map)".into(),
        Some(Idmap::Caller) => " (id-mapped)".into(),
    }
}

fn upper_text(upper: Option<&OverlayUpper>) -> String {
    match upper {
        None => String::new(),
        Some(OverlayUpper::Tmpfs) => ", writable (tmpfs upper)".into(),
        Some(OverlayUpper::Dir { upper, idmap, .. }) => format!(
            ", changes kept in {}{}",
            upper.display(),
            idmap_text(idmap.as_ref())
        ),
    }
}

/// Who the caller's files in a bind belong to inside: what the command can do with them.
fn owners_seen(plan: &Plan, idmap: Option<&Idmap>) -> String {
    let Ids { uid, gid } = plan.caller;
    let inside = match (idmap, &plan.user) {
        (_, None) => Some((uid, gid)),
        (Some(Idmap::Caller), Some(_)) => Some((plan.process.uid, plan.process.gid)),
        // On disk, the sandbox's own ids.
        (Some(Idmap::Sandbox), Some(_)) => Some((uid, gid)),
        (None, Some(user)) => {
            let unmap = |map: &[IdMapping], id| map.iter().find_map(|m| m.unmap(id));
            unmap(&user.uid_map, uid).zip(unmap(&user.gid_map, gid))
        }
    };
    let yours = format!("; your files (uid {uid} gid {gid}) show as");
    match inside {
        Some(ids) if idmap == Some(&Idmap::Caller) => format!(
            "{yours} the command's (uid {} gid {}), and what it makes is yours",
            ids.0, ids.1
        ),
        Some((inside_uid, inside_gid)) => format!("{yours} uid {inside_uid} gid {inside_gid}"),
        None => format!("{yours} nobody's (65534): the command cannot write them"),
    }
}

pub fn describe_mount(op: &MountOp) -> String {
    let readonly = op.flags().is_some_and(|flags| flags.readonly);
    let ro = if readonly { " (read-only)" } else { "" };
    match op {
        MountOp::Bind {
            source,
            target,
            idmap,
            optional,
            ..
        } => format!(
            "bind {} -> {}{}{}{}",
            source.display(),
            target.display(),
            if readonly { ro } else { " (writable)" },
            idmap_text(idmap.as_ref()),
            if *optional { " (if present)" } else { "" }
        ),
        MountOp::Tmpfs {
            target,
            size: bytes,
            mode,
            ..
        } => format!(
            "tmpfs {} mode {mode:04o}{}{}",
            target.display(),
            bytes
                .map(|b| format!(" size {}", size(b)))
                .unwrap_or_default(),
            ro
        ),
        MountOp::Proc { target } => format!("proc {}", target.display()),
        MountOp::Sysfs { target } => format!("sysfs {}{ro}", target.display()),
        MountOp::Dev { target } => format!(
            "dev {} (null zero full random urandom tty, pts, shm)",
            target.display()
        ),
        MountOp::Devpts { target } => format!("devpts {}", target.display()),
        MountOp::Mqueue { target } => format!("mqueue {}", target.display()),
        MountOp::Overlay {
            lower,
            upper,
            target,
            idmap,
            ..
        } => format!(
            "overlay {} over {}{}{}{}",
            target.display(),
            lower
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            idmap_text(idmap.as_ref()),
            upper_text(upper.as_ref()),
            ro
        ),
        MountOp::Symlink { link, target } => format!("symlink {} -> {link}", target.display()),
        MountOp::File {
            target,
            content,
            mode,
        } => format!(
            "file {} mode {mode:04o} ({} bytes)",
            target.display(),
            content.len()
        ),
        MountOp::Dir { target, mode } => format!("dir {} mode {mode:04o}", target.display()),
        MountOp::Hosts {
            target,
            hostname,
            names,
        } => {
            let mut entries: Vec<String> = hostname
                .iter()
                .map(|name| format!("{name} (the sandbox's address, or 127.0.1.1)"))
                .collect();
            entries.extend(names.iter().map(|(name, ip)| format!("{name} {ip}")));
            format!(
                "hosts {}: {}, then the root's own entries (or localhost)",
                target.display(),
                entries.join(", ")
            )
        }
    }
}

/// The allow-list, one line per destination (its manifest entry is its origin), then what
/// happens to everything else.
fn egress_lines(s: &mut StepView, egress: Option<&EgressPlan>) {
    let Some(egress) = egress else {
        return;
    };
    for rule in &egress.rules {
        s.line_for(rule.key.clone(), format!("egress: allow {rule}"));
    }
    s.line(
        "network.egress",
        format!(
            "egress: nft table inet {EGRESS_TABLE} in the sandbox's namespace refuses everything else at once (TCP reset, ICMP admin-prohibited) and counts it; loopback and replies pass"
        ),
    );
}

/// The numbered list `sandbox plan` prints. With `explain`, each line says where it came from.
pub fn render_text(plan: &Plan, explain: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan for sandbox `{}` ({})",
        plan.name,
        plan.manifest.display()
    );
    for (number, step) in steps(plan).iter().enumerate() {
        for (i, line) in step.lines.iter().enumerate() {
            let head = if i == 0 {
                format!("{:>2}. {:<9}", number + 1, step.id.name())
            } else {
                " ".repeat(13)
            };
            let origin = if explain {
                format!("   [{}]", origin_text(plan, line.key.as_ref()))
            } else {
                String::new()
            };
            let _ = writeln!(out, "{head}{}{origin}", line.text);
        }
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

fn origin_text(plan: &Plan, key: Option<&Origin>) -> String {
    match key {
        None => "always".into(),
        Some(key) => match plan.origin(&key.path()) {
            Some(location) => format!("{key} at {location}"),
            None => format!("{key}: default"),
        },
    }
}

/// `{"steps": [{"step": "user", ...}, ...]}`; with `explain`, each step lists the origin of the
/// keys behind it.
pub fn render_json(plan: &Plan, explain: bool) -> Value {
    let steps: Vec<Value> = steps(plan)
        .into_iter()
        .map(|step| {
            let mut object = serde_json::Map::new();
            object.insert("step".into(), json!(step.id));
            if let Value::Object(detail) = step.detail {
                object.extend(detail);
            }
            if explain {
                let origins: serde_json::Map<String, Value> = step
                    .lines
                    .iter()
                    .filter_map(|l| l.key.as_ref())
                    .map(|key| {
                        let origin = plan
                            .origin(&key.path())
                            .map_or_else(|| json!("default"), |l| json!(l.to_string()));
                        (key.to_string(), origin)
                    })
                    .collect();
                object.insert("origins".into(), Value::Object(origins));
            }
            Value::Object(object)
        })
        .collect();
    json!({ "name": plan.name, "steps": steps, "warnings": plan.warnings })
}

/// The seccomp profile as the host's architecture will get it: the counts are those of the
/// filter the executor compiles.
fn seccomp_lines(security: &SecurityPlan) -> Vec<String> {
    let arch = Arch::host();
    let profile = match security.seccomp {
        SeccompPlan::Default => "default profile",
        SeccompPlan::DenyList { .. } | SeccompPlan::AllowList { .. } => "custom profile",
        SeccompPlan::Off => "off",
    };
    let Some(filter) = filter(security, arch) else {
        return vec!["seccomp: off".into()];
    };
    let verdict = |v: Verdict, one: bool| match v {
        Verdict::Allow => "allowed".to_string(),
        Verdict::Errno(e) => format!(
            "fail{} with {}",
            if one { "s" } else { "" },
            crate::manifest::values::Errno(e).name()
        ),
        Verdict::KillProcess => format!("kill{} the process", if one { "s" } else { "" }),
    };
    // Rules grouped by verdict (in order of first appearance), unconditional ones first.
    let mut groups: Vec<(bool, Verdict)> = Vec::new();
    for rule in filter.unconditional().chain(filter.conditional()) {
        let group = (!rule.when.is_empty(), rule.verdict);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let mut parts: Vec<String> = groups
        .iter()
        .map(|&(conditional, v)| {
            let names: Vec<&str> = filter
                .rules
                .iter()
                .filter(|r| r.when.is_empty() != conditional && r.verdict == v)
                .map(|r| r.name)
                .collect();
            let some = if conditional {
                " for some arguments"
            } else {
                ""
            };
            match names.as_slice() {
                [one] => format!("{one} {}{some}", verdict(v, true)),
                few if few.len() <= 3 || conditional => {
                    format!("{} {}{some}", few.join(", "), verdict(v, false))
                }
                many => format!("{} system calls {}", many.len(), verdict(v, false)),
            }
        })
        .collect();
    parts.push(format!(
        "any other call {}",
        verdict(filter.otherwise, true)
    ));
    let mut lines = vec![format!(
        "seccomp ({profile}, {}): {}",
        arch.name(),
        parts.remove(0)
    )];
    lines.extend(parts.into_iter().map(|part| format!("seccomp: {part}")));
    lines.push("seccomp: a call through another ABI (32-bit, x32) kills the process".into());
    lines
}
