//! `sandbox doctor`: what this host offers sandboxes, and how to fix what it lacks.
//!
//! Most failures people hit are the host's (user namespaces disabled, no subuid grant, no
//! landlock), so each check says ok, warn or fail with the exact fix. Facts come from files
//! under a root folder (`/` for real; a fake tree in tests) plus a few live probes.

use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked, e.g. "user namespaces".
    pub name: String,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warn and fail).
    pub fix: Option<String>,
    /// Whether the given manifest needs this (a failed needed check means it cannot run here).
    pub needed: bool,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: None,
            needed: false,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// Where host facts come from.
pub struct Host {
    /// Files are read below this folder (`/` for the real host).
    pub root: PathBuf,
    pub uid: u32,
    pub user: Option<String>,
    /// The kernel's landlock ABI (probed by a system call on the real host).
    pub landlock_abi: u32,
    /// Whether an unprivileged user namespace could really be created (None: not probed).
    pub userns_probe: Option<Result<(), String>>,
    /// Programs found on PATH.
    pub programs: Vec<(String, PathBuf)>,
    /// The cgroup layout in words ("hybrid: ..."), and what this caller can use.
    pub cgroup_layout: String,
    pub cgroups: crate::cgroup::CgroupHost,
    /// Whether the kernel weighs groups' I/O (BFQ or io.cost), which `io_weight` needs.
    pub weighs_io: bool,
    /// Whether systemd manages the host (a rootless fix then goes through systemd-run).
    pub systemd: bool,
}

impl Host {
    pub fn live(caller: &crate::host::Caller) -> Host {
        use crate::cgroup::{Access, Controller};
        let cgroups = crate::cgroup::probe();
        let programs = ["newuidmap", "newgidmap", "pasta", "nft"]
            .into_iter()
            .filter_map(|name| Some((name.to_string(), crate::host::find_program(name)?)))
            .collect();
        Host {
            root: PathBuf::from("/"),
            uid: caller.uid,
            user: caller.user_name(),
            landlock_abi: crate::sys::raw::landlock_abi(),
            userns_probe: Some(crate::exec::probe_user_namespace()),
            programs,
            cgroup_layout: crate::cgroup::describe_layout(),
            systemd: Path::new("/run/systemd/system").is_dir(),
            weighs_io: match (cgroups.version, cgroups.access(Controller::Io)) {
                (Some(version), Access::Usable { base, .. }) => {
                    crate::cgroup::kernel_weighs_io(version, base)
                }
                _ => false,
            },
            cgroups,
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/')))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn program(&self, name: &str) -> Option<&Path> {
        self.programs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }

    fn kernel(&self) -> Option<(u32, u32)> {
        crate::host::kernel_version(&self.read("/proc/sys/kernel/osrelease")?)
    }
}

/// Every check of the host, for this caller.
pub fn checks(host: &Host) -> Vec<Check> {
    let rootless = host.uid != 0;
    let mut out = vec![user_namespaces(host, rootless)];
    out.push(subids(host, rootless));
    out.push(match host.kernel() {
        Some(version) if version >= (5, 12) => {
            Check::new("kernel", Status::Ok, format!("Linux {}.{}: the file-descriptor mount API and mount_setattr", version.0, version.1))
        }
        Some(version) => Check::new("kernel", Status::Fail, format!("Linux {}.{} is older than 5.12", version.0, version.1))
            .fix("sandbox builds mounts with open_tree, fsmount and mount_setattr (Linux 5.12+): upgrade the kernel"),
        None => Check::new("kernel", Status::Warn, "the kernel version is unknown"),
    });
    out.push(cgroups(host));
    out.push(match host.landlock_abi {
        0 => Check::new("landlock", Status::Warn, "not available: [security.landlock] rules cannot be enforced")
            .fix("boot with landlock enabled: CONFIG_SECURITY_LANDLOCK=y and `lsm=landlock,...` on the kernel command line"),
        abi if abi < 4 => Check::new("landlock", Status::Warn, format!("ABI {abi}: file system rules only; TCP port rules need ABI 4 (Linux 6.7)"))
            .fix("upgrade to Linux 6.7 or later for landlock TCP rules"),
        abi => Check::new("landlock", Status::Ok, format!("ABI {abi}: file system and TCP port rules")),
    });
    out.push(match host.read("/proc/sys/kernel/seccomp/actions_avail") {
        Some(actions) if actions.contains("errno") && actions.contains("kill_process") => {
            Check::new(
                "seccomp",
                Status::Ok,
                format!("filters available (actions: {actions})"),
            )
        }
        Some(actions) => Check::new(
            "seccomp",
            Status::Fail,
            format!("filters lack needed actions (available: {actions})"),
        )
        .fix("use a kernel built with CONFIG_SECCOMP_FILTER=y"),
        None => Check::new("seccomp", Status::Fail, "no seccomp filter support")
            .fix("use a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y"),
    });
    let filesystems = host.read("/proc/filesystems").unwrap_or_default();
    out.push(if !filesystems.split_whitespace().any(|f| f == "overlay") {
        Check::new(
            "overlayfs",
            Status::Warn,
            "overlayfs is not loaded: `overlay` roots and mounts will fail",
        )
        .fix("modprobe overlay (and add `overlay` to /etc/modules-load.d/)")
    } else if host.kernel().is_some_and(|v| v < (5, 11)) {
        Check::new(
            "overlayfs",
            Status::Warn,
            "overlayfs cannot be mounted in a user namespace before Linux 5.11",
        )
        .fix("upgrade the kernel, or run as root")
    } else {
        Check::new(
            "overlayfs",
            Status::Ok,
            "available, also in a user namespace",
        )
    });
    out.push(if rootless {
        Check::new("idmapped mounts", Status::Warn, "only root can id-map the host's file systems; rootless, your own files already appear as the command's user")
    } else {
        Check::new("idmapped mounts", Status::Ok, "available to root (`idmap = true` binds, rootfs directories)")
    });
    out.push(match host.program("pasta") {
        Some(path) => Check::new(
            "pasta",
            Status::Ok,
            format!("{} (network mode \"pasta\")", path.display()),
        ),
        None => Check::new(
            "pasta",
            Status::Warn,
            "not installed: network mode \"pasta\" (rootless networking) is unavailable",
        )
        .fix("apt install passt (Debian, Ubuntu) or dnf install passt (Fedora)"),
    });
    out.push(match (host.program("nft"), rootless) {
        (_, true) => Check::new(
            "nftables",
            Status::Ok,
            "not needed rootless (bridge networking needs root)",
        ),
        (Some(path), false) => Check::new(
            "nftables",
            Status::Ok,
            format!(
                "{} (NAT and ports for network mode \"bridge\")",
                path.display()
            ),
        ),
        (None, false) => Check::new(
            "nftables",
            Status::Warn,
            "nft is not installed: network mode \"bridge\" cannot set up NAT and ports",
        )
        .fix("apt install nftables"),
    });
    out
}

fn cgroups(host: &Host) -> Check {
    use crate::cgroup::{Access, Controller};
    use crate::plan::CgroupVersion;
    let name = "cgroups";
    // The controllers whose access is `which`.
    let named = |which: fn(&Access) -> bool| -> Vec<&str> {
        host.cgroups
            .controllers
            .iter()
            .filter(|(_, access)| which(access))
            .map(|(c, _)| c.name())
            .collect()
    };
    let usable = named(|access| matches!(access, Access::Usable { .. }));
    let usable_text = if usable.is_empty() {
        "none".to_string()
    } else {
        usable.join(", ")
    };
    let mut detail = format!(
        "{}; usable by this caller: {usable_text}",
        host.cgroup_layout
    );
    // v2: the subtree this caller's groups go in, and what its parent delegates to it.
    if host.cgroups.version == Some(CgroupVersion::V2) {
        let base = host
            .cgroups
            .controllers
            .iter()
            .find_map(|(_, access)| match access {
                Access::Usable { base, .. }
                | Access::NotDelegated { base }
                | Access::Busy { base } => Some(base),
                _ => None,
            });
        if let Some(base) = base {
            let not_delegated = named(|access| matches!(access, Access::NotDelegated { .. }));
            detail.push_str(&format!("; groups go under {}", base.display()));
            if !not_delegated.is_empty() {
                detail.push_str(&format!(
                    ", which is not delegated {}",
                    not_delegated.join(", ")
                ));
            }
        }
    }
    if usable.contains(&Controller::Io.name()) && !host.weighs_io {
        detail.push_str("; no I/O weight (io_weight needs BFQ, `modprobe bfq`, or io.cost)");
    }
    let systemd_run = host
        .systemd
        .then_some("systemd-run --user --scope -p Delegate=yes -- sandbox up ...");
    let limits = [Controller::Memory, Controller::Cpu, Controller::Pids];
    let blocked = limits.iter().find_map(|c| {
        host.cgroups
            .access(*c)
            .problem(*c, host.cgroups.version, host.uid == 0, systemd_run)
            .map(|(why, fix)| (*c, why, fix))
    });
    match blocked {
        None => Check::new(name, Status::Ok, detail),
        Some((controller, why, fix)) => Check::new(
            name,
            Status::Warn,
            format!(
                "{detail}; {} limits cannot be applied: {why}",
                controller.name()
            ),
        )
        .fix(format!(
            "{fix}; or set `required = false` in [cgroup] to fall back to rlimits"
        )),
    }
}

fn user_namespaces(host: &Host, rootless: bool) -> Check {
    let name = "user namespaces";
    if host.read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Check::new(
            name,
            Status::Fail,
            "user.max_user_namespaces is 0: no user namespace can be created",
        )
        .fix("sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d/)");
    }
    if rootless
        && host
            .read("/proc/sys/kernel/unprivileged_userns_clone")
            .as_deref()
            == Some("0")
    {
        return Check::new(
            name,
            Status::Fail,
            "kernel.unprivileged_userns_clone is 0: only root may create user namespaces",
        )
        .fix("sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d/)");
    }
    if rootless
        && host
            .read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
            .as_deref()
            == Some("1")
    {
        return Check::new(name, Status::Fail, "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1, as on Ubuntu 24.04)")
            .fix("allow them for sandbox with an AppArmor profile: /etc/apparmor.d/sandbox containing `abi <abi/4.0>, include <tunables/global> profile sandbox /usr/local/bin/sandbox flags=(unconfined) { userns, }` then `apparmor_parser -r /etc/apparmor.d/sandbox`; or, for the whole host, sysctl -w kernel.apparmor_restrict_unprivileged_userns=0");
    }
    match &host.userns_probe {
        Some(Err(error)) => Check::new(name, Status::Fail, format!("creating one failed: {error}"))
            .fix("check the sysctls above, and any LSM or seccomp policy of the environment (containers often forbid it)"),
        _ => Check::new(name, Status::Ok, if rootless { "unprivileged user namespaces work" } else { "available" }),
    }
}

fn subids(host: &Host, rootless: bool) -> Check {
    let name = "subordinate ids";
    let grants = |file: &str| {
        crate::host::parse_subids(
            &host.read(file).unwrap_or_default(),
            host.uid,
            host.user.as_deref(),
        )
    };
    let (uid, gid) = (grants("/etc/subuid"), grants("/etc/subgid"));
    let helpers = host.program("newuidmap").is_some() && host.program("newgidmap").is_some();
    let who = host.user.clone().unwrap_or_else(|| host.uid.to_string());
    match (uid.first(), gid.first(), helpers) {
        (Some(u), Some(g), true) => Check::new(name, Status::Ok, format!("{who} may map uids {}+{} and gids {}+{} (uid_map = \"auto\")", u.start, u.count, g.start, g.count)),
        (_, _, false) if rootless => Check::new(name, Status::Warn, "newuidmap/newgidmap are not installed: only your own uid and gid can be mapped")
            .fix("apt install uidmap"),
        _ if rootless => Check::new(name, Status::Warn, format!("{who} has no grant in /etc/subuid and /etc/subgid: only your own ids can be mapped (no uid_map = \"auto\")"))
            .fix(format!("as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {who}")),
        _ => Check::new(name, Status::Ok, "root maps any range (see root's id ranges)"),
    }
}

/// As root: whether the host ids of root's sandboxes are anyone else's. A user granted ids in
/// /etc/subuid can enter them (`unshare --map-auto`) and signal or trace processes running as
/// them. The blocks root's sandboxes lease skip every grant; a manifest's own `uid_map` and
/// `gid_map` are checked here. `plan` is the manifest's, if one is given.
pub fn id_ranges(host: &Host, plan: Option<&crate::plan::Plan>) -> Option<Check> {
    use crate::host::{SubIdGrant, parse_subid_grants};
    use crate::plan::IdMapping;
    if host.uid != 0 {
        return None;
    }
    let name = "root's id ranges";
    let grants = |file: &str| parse_subid_grants(&host.read(file).unwrap_or_default());
    let (uid_grants, gid_grants) = (grants("/etc/subuid"), grants("/etc/subgid"));
    let overlapping = |map: &[IdMapping], grants: &[SubIdGrant], file: &str| {
        map.iter()
            .flat_map(|m| {
                grants.iter().filter(move |g| {
                    u64::from(g.start) < m.outside_end()
                        && u64::from(m.outside) < u64::from(g.start) + u64::from(g.count)
                })
            })
            .map(|g| {
                format!(
                    "{file} grants {} ids {}..{}",
                    g.owner,
                    g.start,
                    u64::from(g.start) + u64::from(g.count) - 1
                )
            })
            .collect::<Vec<_>>()
    };
    if let Some(user) = plan.and_then(|p| p.user.as_ref()) {
        let pool = user.pool.as_ref();
        let mut found = Vec::new();
        if pool.is_none_or(|p| p.uid_base.is_none()) {
            found.extend(overlapping(&user.uid_map, &uid_grants, "/etc/subuid"));
        }
        if pool.is_none_or(|p| p.gid_base.is_none()) {
            found.extend(overlapping(&user.gid_map, &gid_grants, "/etc/subgid"));
        }
        if !found.is_empty() {
            return Some(
                Check::new(
                    name,
                    Status::Warn,
                    format!(
                        "the manifest maps host ids that are someone else's: {}; they can enter them \
                         (unshare --map-auto) and signal or trace the sandbox's processes",
                        found.join("; ")
                    ),
                )
                .fix("map ids no one is granted in uid_map and gid_map, or leave both out: each of root's sandboxes then leases a block of its own"),
            );
        }
    }
    let pool = crate::validate::id_pool(&uid_grants, &gid_grants, true, true);
    let usable: u32 = pool.free.iter().map(|(start, end)| end - start).sum();
    let skipped = pool.blocks - usable;
    let detail = format!(
        "each sandbox without uid_map/gid_map leases a block of 65536 of {}: {usable} blocks free of any grant{}",
        pool.text(),
        if skipped > 0 {
            format!(", {skipped} skipped for grants in /etc/subuid or /etc/subgid")
        } else {
            String::new()
        }
    );
    Some(match (usable, pool.reserved) {
        (0, _) => Check::new(name, Status::Fail, detail).fix(
            "reserve ids no one is granted for sandboxes: `sandbox:START:COUNT` in /etc/subuid and /etc/subgid (COUNT a multiple of 65536)",
        ),
        // Reserved ids that someone is granted too: a mistake in the files.
        (_, true) if skipped > 0 => Check::new(name, Status::Warn, detail)
            .fix("give the `sandbox` grant ids no other line of /etc/subuid and /etc/subgid grants"),
        (_, true) => Check::new(name, Status::Ok, detail),
        (_, false) => Check::new(name, Status::Ok, format!(
            "{detail}; a `sandbox:START:COUNT` line in /etc/subuid and /etc/subgid reserves them, so useradd grants them to no one"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(files: &[(&str, &str)], uid: u32) -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let host = Host {
            root: dir.path().to_path_buf(),
            uid,
            user: Some("ann".into()),
            landlock_abi: 7,
            userns_probe: None,
            programs: vec![
                ("newuidmap".into(), "/usr/bin/newuidmap".into()),
                ("newgidmap".into(), "/usr/bin/newgidmap".into()),
            ],
            cgroup_layout: "v2".into(),
            cgroups: delegated_v2(),
            weighs_io: true,
            systemd: false,
        };
        (dir, host)
    }

    fn delegated_v2() -> crate::cgroup::CgroupHost {
        use crate::cgroup::{Access, CgroupHost, Controller};
        let base = PathBuf::from("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service");
        CgroupHost {
            version: Some(crate::plan::CgroupVersion::V2),
            controllers: Controller::ALL
                .iter()
                .map(|c| {
                    (
                        *c,
                        Access::Usable {
                            base: base.clone(),
                            hierarchy: vec![],
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn pure_v2_with_and_without_delegation() {
        use crate::cgroup::{Access, Controller};
        let (_dir, mut host) = fake(HEALTHY, 1000);
        let check = find(&checks(&host), "cgroups").clone();
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(
            check.detail.contains("usable by this caller: memory, cpu"),
            "{}",
            check.detail
        );
        let base = PathBuf::from("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service");
        for (controller, access) in host.cgroups.controllers.iter_mut() {
            if matches!(controller, Controller::Memory | Controller::Pids) {
                *access = Access::NotDelegated { base: base.clone() };
            }
        }
        let check = find(&checks(&host), "cgroups").clone();
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.detail.contains("memory limits cannot be applied"),
            "{}",
            check.detail
        );
        assert!(
            check.detail.contains(&format!(
                "groups go under {}, which is not delegated memory, pids",
                base.display()
            )),
            "{}",
            check.detail
        );
        let fix = check.fix.unwrap();
        assert!(
            fix.to_lowercase().contains("delegat"),
            "the fix says how to delegate: {fix}"
        );
        // A login shell's scope on a systemd host: nothing writable, the fix is systemd-run.
        let scope = PathBuf::from("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope");
        for (_, access) in host.cgroups.controllers.iter_mut() {
            *access = Access::NotWritable { dir: scope.clone() };
        }
        host.systemd = true;
        let check = find(&checks(&host), "cgroups").clone();
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.detail.contains("usable by this caller: none"),
            "{}",
            check.detail
        );
        let fix = check.fix.unwrap();
        assert!(
            fix.contains("`systemd-run --user --scope -p Delegate=yes -- sandbox up ...`"),
            "{fix}"
        );
    }

    const HEALTHY: &[(&str, &str)] = &[
        ("/proc/sys/kernel/osrelease", "6.8.0-40-generic\n"),
        ("/proc/sys/user/max_user_namespaces", "63000\n"),
        (
            "/proc/sys/kernel/seccomp/actions_avail",
            "kill_process kill_thread trap errno user_notif trace log allow\n",
        ),
        (
            "/proc/filesystems",
            "nodev\ttmpfs\nnodev\toverlay\n\text4\n",
        ),
        ("/etc/subuid", "ann:100000:65536\n"),
        ("/etc/subgid", "ann:100000:65536\n"),
    ];

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_healthy_host_is_ok() {
        let (_dir, host) = fake(HEALTHY, 1000);
        let checks = checks(&host);
        for name in [
            "user namespaces",
            "subordinate ids",
            "kernel",
            "landlock",
            "seccomp",
            "overlayfs",
        ] {
            assert_eq!(
                find(&checks, name).status,
                Status::Ok,
                "{:?}",
                find(&checks, name)
            );
        }
        assert_eq!(find(&checks, "pasta").status, Status::Warn);
    }

    /// io_weight alone needs it, so the host stays fine; a manifest setting it is refused by
    /// validation.
    #[test]
    fn a_kernel_that_weighs_no_io_is_said() {
        let (_dir, mut host) = fake(HEALTHY, 1000);
        assert!(
            !find(&checks(&host), "cgroups")
                .detail
                .contains("I/O weight")
        );
        host.weighs_io = false;
        let checks = checks(&host);
        let cgroups = find(&checks, "cgroups");
        assert_eq!(cgroups.status, Status::Ok);
        assert!(
            cgroups
                .detail
                .ends_with("; no I/O weight (io_weight needs BFQ, `modprobe bfq`, or io.cost)"),
            "{cgroups:?}"
        );
    }

    #[test]
    fn ubuntu_apparmor_restriction_fails_rootless_with_the_fix() {
        let mut files = HEALTHY.to_vec();
        files.push((
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1\n",
        ));
        let (_dir, host) = fake(&files, 1000);
        let check = find(&checks(&host), "user namespaces").clone();
        assert_eq!(check.status, Status::Fail);
        let fix = check.fix.unwrap();
        assert!(
            fix.contains("apparmor_restrict_unprivileged_userns=0") && fix.contains("userns,"),
            "{fix}"
        );
        let (_dir, root) = fake(&files, 0);
        assert_eq!(
            find(&checks(&root), "user namespaces").status,
            Status::Ok,
            "root is not restricted"
        );
    }

    #[test]
    fn disabled_user_namespaces_name_the_sysctl() {
        let mut files = HEALTHY.to_vec();
        files.push(("/proc/sys/kernel/unprivileged_userns_clone", "0\n"));
        let (_dir, host) = fake(&files, 1000);
        assert!(
            find(&checks(&host), "user namespaces")
                .fix
                .as_deref()
                .unwrap()
                .contains("unprivileged_userns_clone=1")
        );
        let mut files = HEALTHY.to_vec();
        files[1] = ("/proc/sys/user/max_user_namespaces", "0\n");
        let (_dir, host) = fake(&files, 0);
        assert!(
            find(&checks(&host), "user namespaces")
                .fix
                .as_deref()
                .unwrap()
                .contains("max_user_namespaces")
        );
    }

    #[test]
    fn missing_grants_and_helpers_are_explained() {
        let files: Vec<_> = HEALTHY
            .iter()
            .filter(|(p, _)| !p.starts_with("/etc/sub"))
            .copied()
            .collect();
        let (_dir, host) = fake(&files, 1000);
        assert!(
            find(&checks(&host), "subordinate ids")
                .fix
                .as_deref()
                .unwrap()
                .contains("usermod --add-subuids")
        );
        let (_dir, mut host) = fake(HEALTHY, 1000);
        host.programs.clear();
        assert!(
            find(&checks(&host), "subordinate ids")
                .fix
                .as_deref()
                .unwrap()
                .contains("apt install uidmap")
        );
    }

    #[test]
    fn roots_ranges_that_are_someone_elses_are_reported() {
        let (_dir, rootless) = fake(HEALTHY, 1000);
        assert!(id_ranges(&rootless, None).is_none());
        let (_dir, root) = fake(HEALTHY, 0);
        let check = id_ranges(&root, None).unwrap();
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(
            check
                .detail
                .contains("ids 524288..1879048191, the default region"),
            "{check:?}"
        );

        // A manifest mapping the range useradd gives the first user.
        let plan = |text: &str| {
            let caller = crate::host::Caller::ann(0);
            let host = crate::host::HostFacts::fixed(caller.clone(), Default::default());
            let loaded = crate::manifest::load_str(
                Path::new("/p/sandbox.toml"),
                &format!("{text}[rootfs]\nhost = true\n"),
                &caller.vars(),
            );
            let validated = crate::validate::validate(
                &loaded,
                &host,
                &crate::validate::Invocation::inspecting(),
            );
            validated.plan.unwrap()
        };
        let old_default = plan(
            "uid_map = [{ inside = 0, outside = 100000, count = 65536 }]\n\
             gid_map = [{ inside = 0, outside = 100000, count = 65536 }]\n",
        );
        let check = id_ranges(&root, Some(&old_default)).unwrap();
        assert_eq!(check.status, Status::Warn, "{check:?}");
        assert!(
            check
                .detail
                .contains("/etc/subuid grants ann ids 100000..165535")
                && check.detail.contains("/etc/subgid grants ann"),
            "{check:?}"
        );
        let leased = plan("");
        assert_eq!(id_ranges(&root, Some(&leased)).unwrap().status, Status::Ok);

        // Grants in the region are skipped; a `sandbox` grant is the pool.
        let mut files = HEALTHY.to_vec();
        files.retain(|(p, _)| !p.starts_with("/etc/sub"));
        files.push(("/etc/subuid", "bob:524288:65536\n"));
        let (_dir, root) = fake(&files, 0);
        let check = id_ranges(&root, None).unwrap();
        assert!(check.detail.contains("1 skipped for grants"), "{check:?}");
        files.pop();
        files.push(("/etc/subuid", "sandbox:2000000:131072\n"));
        files.push(("/etc/subgid", "sandbox:2000000:131072\nbob:2000000:1\n"));
        let (_dir, root) = fake(&files, 0);
        let check = id_ranges(&root, None).unwrap();
        assert!(
            check
                .detail
                .contains("ids 2000000..2131071, the `sandbox` grant: 1 blocks free"),
            "{check:?}"
        );
        assert_eq!(check.status, Status::Warn, "bob is granted a reserved id");
        files.pop();
        files.push((
            "/etc/subgid",
            "sandbox:2000000:131072\nbob:2000000:131072\n",
        ));
        let (_dir, root) = fake(&files, 0);
        let check = id_ranges(&root, None).unwrap();
        assert_eq!(check.status, Status::Fail, "{check:?}");
    }

    #[test]
    fn old_kernels_and_missing_features() {
        let mut files = HEALTHY.to_vec();
        files[0] = ("/proc/sys/kernel/osrelease", "5.10.0-28-amd64\n");
        files.retain(|(p, _)| *p != "/proc/sys/kernel/seccomp/actions_avail");
        let (_dir, mut host) = fake(&files, 1000);
        host.landlock_abi = 0;
        let checks = checks(&host);
        assert_eq!(find(&checks, "kernel").status, Status::Fail);
        assert_eq!(find(&checks, "seccomp").status, Status::Fail);
        assert_eq!(find(&checks, "landlock").status, Status::Warn);
        assert_eq!(find(&checks, "overlayfs").status, Status::Warn);
    }
}
