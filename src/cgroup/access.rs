//! Which controllers this caller can use, and where its groups go: what validation checks the
//! `[cgroup]` limits against, and what `sandbox doctor` reports.
//!
//! Where a sandbox's group is made (its *base*):
//! - v1: below the caller's own group in each hierarchy, as runc does for relative paths, so
//!   the caller's own limits still apply. v1 has no delegation: the caller must be able to
//!   write that directory (root, or a group root handed over with chown).
//! - v2: the topmost ancestor of the caller's group that the caller can still write: the root
//!   for root, the delegated subtree for a user (`user@1000.service` under systemd). Going up
//!   sidesteps the no-internal-process rule, which forbids handing controllers down from the
//!   caller's own (populated) group; moving a process between two groups needs write access to
//!   their common ancestor's cgroup.procs, which is the base (cgroup-v2.rst, "Delegation
//!   Containment").

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{AccessFlags, access};
use serde::Serialize;

use super::Controller;
use super::detect::{Hierarchy, Layout, detect};
use crate::plan::CgroupVersion;

/// What this caller can do with each controller on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupHost {
    /// `None` when no cgroup hierarchy is mounted.
    pub version: Option<CgroupVersion>,
    pub controllers: Vec<(Controller, Access)>,
}

/// Whether a controller is usable, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Access {
    /// Groups can be made under `base`; `hierarchy` lists, on v1, the controllers mounted
    /// together in that hierarchy (needed to mount it again).
    Usable {
        base: PathBuf,
        hierarchy: Vec<String>,
    },
    /// No cgroup file system is mounted at all.
    NoCgroups,
    /// v1: no hierarchy carries this controller (not mounted, or not in this kernel).
    Missing,
    /// The mount does not show the caller's own group (a container mounting another subtree).
    OutOfReach {
        mount_point: PathBuf,
    },
    ReadOnly {
        dir: PathBuf,
    },
    NotWritable {
        dir: PathBuf,
    },
    /// v2: the controller is not in the base's cgroup.controllers.
    NotDelegated {
        base: PathBuf,
    },
    /// v2: the base holds processes and does not hand the controller down yet, which the
    /// no-internal-process rule then forbids.
    Busy {
        base: PathBuf,
    },
}

/// Probe this process's cgroups: the layout from /proc, then the permissions on disk.
pub fn probe() -> CgroupHost {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    CgroupHost::of(&detect(
        &read("/proc/self/mountinfo"),
        &read("/proc/self/cgroup"),
    ))
}

/// The controllers this caller can use here (for `sandbox doctor`).
pub fn usable() -> Vec<(Controller, PathBuf)> {
    probe()
        .controllers
        .into_iter()
        .filter_map(|(controller, access)| match access {
            Access::Usable { base, .. } => Some((controller, base)),
            _ => None,
        })
        .collect()
}

impl CgroupHost {
    /// Check each controller of `layout` against the file system it names.
    pub fn of(layout: &Layout) -> CgroupHost {
        let version = layout.version();
        let controllers = match version {
            None => Vec::new(),
            Some(CgroupVersion::V1) => v1(layout),
            Some(CgroupVersion::V2) => layout.v2.as_ref().map(v2).unwrap_or_default(),
        };
        CgroupHost {
            version,
            controllers,
        }
    }

    pub fn access(&self, controller: Controller) -> &Access {
        self.controllers
            .iter()
            .find(|(c, _)| *c == controller)
            .map_or(&Access::NoCgroups, |(_, access)| access)
    }
}

fn v1(layout: &Layout) -> Vec<(Controller, Access)> {
    Controller::ALL
        .iter()
        .map(|&controller| {
            let name = controller
                .kernel_name(CgroupVersion::V1)
                .expect("v1 names all");
            let access = match layout.v1_hierarchy(name) {
                None => Access::Missing,
                Some(Hierarchy {
                    own: None,
                    mount_point,
                    ..
                }) => Access::OutOfReach {
                    mount_point: mount_point.clone(),
                },
                Some(Hierarchy {
                    own: Some(own),
                    controllers,
                    ..
                }) => match writable(own, false) {
                    Ok(()) => Access::Usable {
                        base: own.clone(),
                        hierarchy: controllers.clone(),
                    },
                    Err(errno) => denied(errno, own),
                },
            };
            (controller, access)
        })
        .collect()
}

fn v2(hierarchy: &Hierarchy) -> Vec<(Controller, Access)> {
    let every = |access: Access| {
        Controller::ALL
            .iter()
            .map(|&c| (c, access.clone()))
            .collect::<Vec<_>>()
    };
    let Some(own) = &hierarchy.own else {
        return every(Access::OutOfReach {
            mount_point: hierarchy.mount_point.clone(),
        });
    };
    let mut base: Option<&Path> = None;
    let mut dir = own.as_path();
    loop {
        match writable(dir, true) {
            Ok(()) => base = Some(dir),
            Err(errno) if base.is_none() => return every(denied(errno, own)),
            Err(_) => break,
        }
        match dir.parent() {
            Some(parent) if dir != hierarchy.mount_point => dir = parent,
            _ => break,
        }
    }
    let base = base.expect("the loop returns when nothing is writable");
    let read = |file: &str| std::fs::read_to_string(base.join(file)).unwrap_or_default();
    let available = read("cgroup.controllers");
    let passed_down = read("cgroup.subtree_control");
    // The root group is exempt from the no-internal-process rule; only it lacks cgroup.type.
    let busy = base.join("cgroup.type").exists() && !read("cgroup.procs").trim().is_empty();
    Controller::ALL
        .iter()
        .map(|&controller| {
            let words = |text: &str, name: &str| text.split_whitespace().any(|w| w == name);
            let access = match controller.kernel_name(CgroupVersion::V2) {
                Some(name) if !words(&available, name) => Access::NotDelegated {
                    base: base.to_path_buf(),
                },
                Some(name) if busy && !words(&passed_down, name) => Access::Busy {
                    base: base.to_path_buf(),
                },
                _ => Access::Usable {
                    base: base.to_path_buf(),
                    hierarchy: Vec::new(),
                },
            };
            (controller, access)
        })
        .collect()
}

/// Whether the kernel weighs the I/O of groups, which `io_weight` needs beyond a usable io
/// controller: BFQ (or CFQ, before Linux 5.0) once registered is listed among every block
/// device's schedulers, and its weight files exist; on v2, io.cost too, whose io.cost.qos only
/// the hierarchy's root has. Probed only for a manifest that sets `io_weight`.
pub fn kernel_weighs_io(version: CgroupVersion, base: &Path) -> bool {
    let cost = version == CgroupVersion::V2
        && base.ancestors().any(|dir| dir.join("io.cost.qos").exists());
    let weighing_scheduler = |device: std::fs::DirEntry| {
        std::fs::read_to_string(device.path().join("queue/scheduler")).is_ok_and(|schedulers| {
            schedulers
                .split_whitespace()
                .any(|s| matches!(s.trim_matches(['[', ']']), "bfq" | "cfq"))
        })
    };
    cost || std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .any(weighing_scheduler)
}

/// Can this process make groups in `dir` (and, on v2, move processes through it)?
fn writable(dir: &Path, v2: bool) -> Result<(), Errno> {
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK)?;
    if v2 {
        access(&dir.join("cgroup.procs"), AccessFlags::W_OK)?;
    }
    Ok(())
}

fn denied(errno: Errno, dir: &Path) -> Access {
    match errno {
        Errno::EROFS => Access::ReadOnly {
            dir: dir.to_path_buf(),
        },
        _ => Access::NotWritable {
            dir: dir.to_path_buf(),
        },
    }
}

impl Access {
    /// Why the controller cannot be used, and what to do about it; `None` when it can.
    /// `systemd_run`: on a systemd host, the command that repeats this run in a delegated scope.
    pub fn problem(
        &self,
        controller: Controller,
        version: Option<CgroupVersion>,
        root: bool,
        systemd_run: Option<&str>,
    ) -> Option<(String, String)> {
        let c = controller.name();
        let v1_name = controller.kernel_name(CgroupVersion::V1).unwrap_or(c);
        Some(match self {
            Access::Usable { .. } => return None,
            Access::NoCgroups => (
                "no cgroup file system is mounted".into(),
                "mount cgroup v2: `mount -t cgroup2 none /sys/fs/cgroup`".into(),
            ),
            Access::Missing => (
                format!("this host has no cgroup v1 hierarchy with the {v1_name} controller"),
                format!(
                    "mount it (`mkdir /sys/fs/cgroup/{v1_name} && mount -t cgroup -o {v1_name} cgroup /sys/fs/cgroup/{v1_name}`), or remove the limit"
                ),
            ),
            Access::OutOfReach { mount_point } => (
                format!(
                    "the cgroup file system at {} does not show this process's own group",
                    mount_point.display()
                ),
                "mount the hierarchy so that it includes the caller's group (a container needs its own cgroup namespace)".into(),
            ),
            Access::ReadOnly { dir } => (
                format!("{} is on a read-only mount", dir.display()),
                "remount the cgroup file system read-write (containers mount it read-only unless given their own writable cgroup), or remove the limit".into(),
            ),
            Access::NotWritable { dir } if version == Some(CgroupVersion::V1) && !root => (
                format!(
                    "cgroup v1 has no delegation, and this user may not create groups in {}",
                    dir.display()
                ),
                format!(
                    "run `sandbox` as root, remove the limit, or have root hand you a group: `mkdir {d}/$USER && chown -R $USER {d}/$USER`, then start from it with `echo $$ > {d}/$USER/cgroup.procs` (for each controller)",
                    d = dir.display()
                ),
            ),
            Access::NotWritable { dir } => (
                format!("this user may not create groups in {}", dir.display()),
                if root {
                    "check that the cgroup file system is writable here".into()
                } else if let Some(command) = systemd_run {
                    // Like podman's and crun's systemd cgroup manager, but through systemd-run:
                    // the launcher speaks no D-Bus (docs/manifest.md says why).
                    format!(
                        "systemd delegates no cgroup to a login session's scope; run it in a scope of your user manager that does: `{command}`"
                    )
                } else {
                    "run from a delegated cgroup: under systemd, `systemd-run --user --scope -p Delegate=yes sandbox up ...`; without systemd, have root create one (`mkdir -p /sys/fs/cgroup/$USER/shell && echo +memory +cpu +pids +io > /sys/fs/cgroup/$USER/cgroup.subtree_control && chown -R $USER /sys/fs/cgroup/$USER`) and move your shell into it (`echo $$ > /sys/fs/cgroup/$USER/shell/cgroup.procs`)".into()
                },
            ),
            Access::NotDelegated { base } => (
                format!(
                    "the {c} controller is not delegated to {}",
                    base.display()
                ),
                format!(
                    "as root, enable it in the parent: `echo +{c} > {}/cgroup.subtree_control` (under systemd: `systemctl edit user@.service` with `[Service]` `Delegate=cpu io memory pids`)",
                    base.parent().unwrap_or(base).display()
                ),
            ),
            Access::Busy { base } => (
                format!(
                    "{} holds processes, so cgroup v2 forbids it to hand the {c} controller down to a child group",
                    base.display()
                ),
                format!(
                    "move its processes into a leaf group (e.g. `mkdir {b}/init` and write each pid of {b}/cgroup.procs to {b}/init/cgroup.procs), then `echo +{c} > {b}/cgroup.subtree_control`",
                    b = base.display()
                ),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 tree in a temporary directory: `dirs` relative to the mount, each with the files
    /// the kernel would show.
    fn tree(dirs: &[(&str, &str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (dir, controllers, procs) in dirs {
            let path = root.path().join(dir);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("cgroup.controllers"), controllers).unwrap();
            std::fs::write(path.join("cgroup.subtree_control"), "").unwrap();
            std::fs::write(path.join("cgroup.procs"), procs).unwrap();
            if !dir.is_empty() {
                std::fs::write(path.join("cgroup.type"), "domain\n").unwrap();
            }
        }
        root
    }

    fn v2_layout(mount: &Path, own: &str) -> Layout {
        detect(
            &format!("24 1 0:22 / {} rw - cgroup2 cgroup2 rw\n", mount.display()),
            &format!("0::{own}\n"),
        )
    }

    #[test]
    fn v2_uses_the_topmost_writable_ancestor() {
        // The tree belongs to whoever runs the test, so all of it is writable: the base is the mount.
        let root = tree(&[
            ("", "cpu io memory pids\n", "1\n"),
            ("user.slice", "memory pids\n", ""),
            ("user.slice/term.scope", "memory pids\n", "42\n"),
        ]);
        let host = CgroupHost::of(&v2_layout(root.path(), "/user.slice/term.scope"));
        assert_eq!(host.version, Some(CgroupVersion::V2));
        assert_eq!(
            host.access(Controller::Memory),
            &Access::Usable {
                base: root.path().to_path_buf(),
                hierarchy: vec![]
            }
        );
    }

    #[test]
    fn v2_controllers_not_delegated_or_busy() {
        let root = tree(&[("", "memory pids\n", "7\n"), ("leaf", "memory\n", "")]);
        // Make the mount itself look like a non-root group with processes.
        std::fs::write(root.path().join("cgroup.type"), "domain\n").unwrap();
        let host = CgroupHost::of(&v2_layout(root.path(), "/"));
        let base = root.path().to_path_buf();
        assert_eq!(
            host.access(Controller::Io),
            &Access::NotDelegated { base: base.clone() }
        );
        assert_eq!(host.access(Controller::Memory), &Access::Busy { base });
        // Accounting every v2 group has needs nothing handed down.
        assert!(matches!(
            host.access(Controller::Cpuacct),
            Access::Usable { .. }
        ));
        std::fs::write(root.path().join("cgroup.subtree_control"), "memory\n").unwrap();
        let host = CgroupHost::of(&v2_layout(root.path(), "/"));
        assert!(matches!(
            host.access(Controller::Memory),
            Access::Usable { .. }
        ));
    }

    #[test]
    fn out_of_reach_and_no_cgroups() {
        let layout = detect(
            "40 1 0:37 /docker/a /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/elsewhere\n",
        );
        assert_eq!(
            CgroupHost::of(&layout).access(Controller::Pids),
            &Access::OutOfReach {
                mount_point: "/sys/fs/cgroup".into()
            }
        );
        let none = CgroupHost::of(&Layout::default());
        assert_eq!(none.version, None);
        assert_eq!(none.access(Controller::Memory), &Access::NoCgroups);
        let (message, help) = none
            .access(Controller::Memory)
            .problem(Controller::Memory, None, false, None)
            .unwrap();
        assert!(message.contains("no cgroup"), "{message}");
        assert!(help.contains("cgroup2"), "{help}");
    }

    #[test]
    fn v1_rootless_gets_a_clear_reason() {
        let access = Access::NotWritable {
            dir: "/sys/fs/cgroup/memory".into(),
        };
        let (message, help) = access
            .problem(Controller::Memory, Some(CgroupVersion::V1), false, None)
            .unwrap();
        assert!(message.contains("cgroup v1 has no delegation"), "{message}");
        assert!(help.contains("run `sandbox` as root"), "{help}");
        assert!(help.contains("/sys/fs/cgroup/memory/$USER"), "{help}");
        let v2 = access
            .problem(Controller::Memory, Some(CgroupVersion::V2), false, None)
            .unwrap();
        assert!(v2.1.contains("Delegate=yes"), "{}", v2.1);
        let command =
            "systemd-run --user --scope -p Delegate=yes -- sandbox up --trust sandbox.toml";
        let systemd = access
            .problem(
                Controller::Memory,
                Some(CgroupVersion::V2),
                false,
                Some(command),
            )
            .unwrap();
        assert!(
            systemd.1.ends_with(&format!("`{command}`")),
            "{}",
            systemd.1
        );
    }
}
