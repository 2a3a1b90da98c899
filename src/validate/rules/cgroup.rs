//! `[cgroup]`: limits in kernel units, and where the host lets this caller apply them.
//!
//! Each limit needs a controller this caller can use; one it cannot (rootless on cgroup v1,
//! a controller not delegated, a read-only mount) is an error at the limit's key, decided here
//! from the host's facts rather than found out half-way through starting the sandbox.

use std::path::Path;

use super::super::Cx;
use super::get;
use crate::cgroup::{Access, Controller};
use crate::diagnostics::Problem;
use crate::manifest::values::{Rlimit, RlimitValue};
use crate::manifest::{Cgroup, Span, Spanned};
use crate::plan::{
    CgroupHierarchy, CgroupLimits, CgroupPlan, CgroupVersion, MountOp, MountStep, Namespaces,
};

pub const DEFAULT_PARENT: &str = "sandbox";
/// The CFS period the quota is expressed in (the kernel's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Below this the sandbox could not even start its init.
const MIN_MEMORY: u64 = 1 << 20;

/// The sandbox's own group: when the manifest sets a limit, or `stats` (`up --stats`) asks for
/// its accounting.
/// What stands in for limits a host cannot apply, with `required = false`.
#[derive(Default)]
pub(super) struct Fallback {
    pub rlimits: Vec<(Rlimit, RlimitValue)>,
    pub warnings: Vec<String>,
}

/// The rlimit that approximates a cgroup limit, when there is one: its value, its kernel name
/// and what it really limits.
fn rlimit_for(
    key: &str,
    limits: &CgroupLimits,
) -> Option<(Rlimit, u64, &'static str, &'static str)> {
    match key {
        "memory" => limits.memory.map(|m| {
            (
                Rlimit::Data,
                m,
                "RLIMIT_DATA",
                "the heap and private mappings of each process, not the sandbox's total",
            )
        }),
        "pids" => limits.pids.map(|p| {
            (
                Rlimit::Nproc,
                p as u64,
                "RLIMIT_NPROC",
                "which counts every process of your user on this host, not only the sandbox's",
            )
        }),
        _ => None,
    }
}

pub(super) fn cgroup(
    cx: &mut Cx,
    namespaces: &Namespaces,
    mounts: &[MountStep],
    stats: bool,
    fallback: &mut Fallback,
) -> Option<CgroupPlan> {
    let loaded = cx.loaded;
    let none = Cgroup::default();
    let cgroup = loaded.manifest.cgroup.as_ref().map_or(&none, |c| &c.value);
    let mut limits = CgroupLimits {
        cpu_period_us: CPU_PERIOD_US,
        ..CgroupLimits::default()
    };

    if let Some(memory) = &cgroup.memory {
        if memory.value.0 < MIN_MEMORY {
            out_of_range(
                cx,
                memory.span,
                "`memory` is below 1M",
                "a sandbox needs at least \"1M\"; sizes without a suffix are bytes",
            );
        }
        limits.memory = Some(memory.value.0);
    }
    if let Some(swap) = &cgroup.memory_swap {
        if cgroup.memory.is_none() {
            cx.report(
                Problem::error(
                    "sandbox::cgroup::swap-without-memory",
                    "`memory_swap` needs a `memory` limit",
                )
                .at(swap.span, "swap on top of what?")
                .help("set `memory` too: swap is allowed on top of it"),
            );
        }
        limits.memory_swap = Some(swap.value.0);
    }
    if let Some(cpus) = &cgroup.cpus {
        let quota = cpus.value * CPU_PERIOD_US as f64;
        if !cpus.value.is_finite() || quota < 1000.0 || cpus.value > 4096.0 {
            out_of_range(
                cx,
                cpus.span,
                "`cpus` is out of range",
                "use a number of cores from 0.01 to 4096, e.g. 1.5",
            );
        } else {
            limits.cpu_quota_us = Some(quota.round() as u64);
        }
    }
    limits.cpu_weight = weight(cx, &cgroup.cpu_weight, "cpu_weight");
    limits.io_weight = weight(cx, &cgroup.io_weight, "io_weight");
    if let Some(pids) = &cgroup.pids {
        if pids.value == 0 {
            out_of_range(
                cx,
                pids.span,
                "`pids` is 0",
                "allow at least 1 task (the sandbox's init counts)",
            );
        }
        limits.pids = Some(pids.value);
    }

    let parent = match &cgroup.parent {
        Some(parent) => {
            let valid = !parent.value.is_empty()
                && parent.value.split('/').all(|part| {
                    !part.is_empty()
                        && part != "."
                        && part != ".."
                        && part
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
                });
            if !valid {
                cx.report(
                    Problem::error("sandbox::cgroup::parent", format!("invalid cgroup parent \"{}\"", parent.value))
                        .at(parent.span, "not a relative cgroup path")
                        .help("write a relative path of names such as \"sandbox\" or \"ci/jobs\" (no leading `/`, no `..`)"),
                );
            }
            parent.value.clone()
        }
        None => DEFAULT_PARENT.to_string(),
    };
    if limits.is_empty() && !stats {
        return None;
    }
    let host = cx.host.cgroup();
    let version = host.version;
    let root = cx.host.caller.is_root();
    let mut hierarchies: Vec<CgroupHierarchy> = Vec::new();
    let mut join = |controller: Controller| {
        let Access::Usable { base, hierarchy } = host.access(controller) else {
            return false;
        };
        match version {
            Some(CgroupVersion::V2) => {
                if hierarchies.is_empty() {
                    hierarchies.push(CgroupHierarchy {
                        base: base.clone(),
                        controllers: Vec::new(),
                    });
                }
                let handed = &mut hierarchies[0].controllers;
                if let Some(name) = controller.kernel_name(CgroupVersion::V2)
                    && !handed.iter().any(|c| c == name)
                {
                    handed.push(name.to_string());
                }
            }
            _ => {
                if !hierarchies.iter().any(|h| &h.base == base) {
                    hierarchies.push(CgroupHierarchy {
                        base: base.clone(),
                        controllers: hierarchy.clone(),
                    });
                }
            }
        }
        true
    };

    // The limits that survived their own checks, each with the span to point at.
    let span = |value: Option<Span>, set: bool| value.filter(|_| set);
    let needed = [
        (
            span(
                cgroup.memory.as_ref().map(|s| s.span),
                limits.memory.is_some(),
            ),
            "memory",
            Controller::Memory,
        ),
        (
            span(
                cgroup.memory_swap.as_ref().map(|s| s.span),
                limits.memory_swap.is_some(),
            ),
            "memory_swap",
            Controller::Memory,
        ),
        (
            span(
                cgroup.cpus.as_ref().map(|s| s.span),
                limits.cpu_quota_us.is_some(),
            ),
            "cpus",
            Controller::Cpu,
        ),
        (
            span(
                cgroup.cpu_weight.as_ref().map(|s| s.span),
                limits.cpu_weight.is_some(),
            ),
            "cpu_weight",
            Controller::Cpu,
        ),
        (
            span(cgroup.pids.as_ref().map(|s| s.span), limits.pids.is_some()),
            "pids",
            Controller::Pids,
        ),
        (
            span(
                cgroup.io_weight.as_ref().map(|s| s.span),
                limits.io_weight.is_some(),
            ),
            "io_weight",
            Controller::Io,
        ),
    ];
    let mut unusable = Vec::new();
    for (span, key, controller) in needed {
        let Some(span) = span else {
            continue;
        };
        let problem = match host.access(controller) {
            Access::Usable { base, .. }
                if key == "io_weight"
                    && version.is_some_and(|v| !cx.host.kernel_weighs_io(v, base)) =>
            {
                Some((
                    "this kernel weighs no group's I/O: no block device offers the BFQ scheduler, and there is no io.cost".into(),
                    "load BFQ (`modprobe bfq`) and choose it for the disk (`echo bfq > /sys/block/DEV/queue/scheduler`), or remove io_weight".into(),
                ))
            }
            Access::Usable { .. } => None,
            // Only a refusal asks whether systemd manages the host.
            access => access.problem(controller, version, root, cx.host.systemd_run().as_deref()),
        };
        match problem {
            Some(problem) => unusable.push((span, key, controller, problem)),
            None => {
                join(controller);
            }
        }
    }
    // Accounting for --stats, and v1's freezer, which only matters when no pid namespace
    // ends every process with the sandbox: used where usable, not required.
    let mut optional = Vec::new();
    if stats {
        optional.extend([Controller::Memory, Controller::Cpuacct, Controller::Pids]);
    }
    if version == Some(CgroupVersion::V1) && !namespaces.pid {
        optional.push(Controller::Freezer);
    }
    for controller in optional {
        join(controller);
    }

    let required = cgroup.required.as_ref().is_none_or(|r| r.value);
    let asked_for_limits = !limits.is_empty();
    let mut fell_back = Vec::new();
    for (span, key, controller, (message, help)) in unusable {
        if required {
            cx.report(
                Problem::error(
                    "sandbox::cgroup::unavailable",
                    format!("`{key}` needs the {} controller: {message}", controller.name()),
                )
                .at(span, format!("needs the {} controller", controller.name()))
                .help(format!("{help}; or set `required = false` in [cgroup] to fall back to rlimits where they exist")),
            );
            continue;
        }
        let (instead, what) = match rlimit_for(key, &limits) {
            Some((rlimit, value, name, what)) => {
                fallback.rlimits.push((rlimit, RlimitValue::Limited(value)));
                (format!("falls back to {name}"), format!(", {what}"))
            }
            None => ("is not applied".to_string(), String::new()),
        };
        // Out of the plan: the group gets the limits that can be applied, and nothing is
        // written for this one.
        limits.clear(key);
        cx.report(
            Problem::warning(
                "sandbox::cgroup::fallback",
                format!(
                    "cgroup: `{key}` {instead}{what} ({} controller: {message})",
                    controller.name()
                ),
            )
            .at(span, format!("needs the {} controller", controller.name()))
            .help(help)
            .detail(),
        );
        fell_back.push(format!("`{key}` {instead}"));
    }
    // One line for them all: the same few lines on every `check`, `plan` and `up` of a host
    // that cannot delegate cgroups would bury everything else.
    if !fell_back.is_empty() {
        let summary = format!(
            "cgroup: {}: their controllers cannot be used here (required = false; `-v` says why and how to fix it)",
            fell_back.join(", ")
        );
        let at = cgroup.required.as_ref().map(|r| r.span);
        cx.report(
            Problem::warning("sandbox::cgroup::fallback", summary.clone())
                .at_span(at)
                .summary(),
        );
        fallback.warnings.push(summary);
    }
    if hierarchies.is_empty() {
        // With limits, each unusable one was reported at its key; without, only --stats asked.
        if !asked_for_limits
            && let Some((message, help)) = host.access(Controller::Cpuacct).problem(
                Controller::Cpuacct,
                version,
                root,
                cx.host.systemd_run().as_deref(),
            )
        {
            cx.report(
                Problem::error(
                    "sandbox::cgroup::unavailable",
                    format!("`--stats` needs the sandbox's own cgroup: {message}"),
                )
                .help(help),
            );
        }
        return None;
    }
    Some(CgroupPlan {
        parent,
        limits,
        version: version.expect("a usable controller means a mounted hierarchy"),
        hierarchies,
        stats,
        view: namespaces.cgroup && sysfs_holds_cgroup_dir(mounts),
    })
}

/// Whether the sandbox's /sys/fs/cgroup is the empty directory of a sysfs on /sys: the last
/// mount covering it is that sysfs, and nothing is mounted below it.
fn sysfs_holds_cgroup_dir(mounts: &[MountStep]) -> bool {
    let dir = Path::new("/sys/fs/cgroup");
    let covering = mounts.iter().rev().find(|m| {
        let target = m.op.target();
        dir.starts_with(target) && target != Path::new("/")
    });
    matches!(covering.map(|m| &m.op), Some(MountOp::Sysfs { target }) if target == Path::new("/sys"))
        && !mounts.iter().any(|m| m.op.target().starts_with(dir))
}

fn weight(cx: &mut Cx, value: &Option<Spanned<u32>>, key: &str) -> Option<u32> {
    let value = value.as_ref()?;
    if !(1..=10_000).contains(&value.value) {
        out_of_range(
            cx,
            value.span,
            &format!("`{key}` is out of range"),
            "use a weight from 1 to 10000 (100 is the default)",
        );
        return None;
    }
    get(&Some(value.clone()))
}

fn out_of_range(cx: &mut Cx, span: Span, message: &str, help: &str) {
    cx.report(
        Problem::error("sandbox::cgroup::out-of-range", message)
            .at(span, "out of range")
            .help(help),
    );
}
