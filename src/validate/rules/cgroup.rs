//! `[cgroup]`: limits in kernel units, and where the host lets this caller apply them.
//!
//! Each limit needs a controller this caller can use; one it cannot (rootless on cgroup v1,
//! a controller not delegated, a read-only mount) is an error at the limit's key, decided here
//! from the host's facts rather than found out half-way through starting the sandbox.

use std::path::Path;

use super::super::Cx;
use crate::cgroup::{Access, CgroupHost, Controller};
use crate::diagnostics::Problem;
use crate::manifest::values::{Rlimit, RlimitValue};
use crate::manifest::{Cgroup, Span};
use crate::plan::{
    Asked, CgroupHierarchy, CgroupLimit, CgroupLimits, CgroupPlan, CgroupVersion, MountOp,
    MountStep, Namespaces,
};

pub const DEFAULT_PARENT: &str = "sandbox";

/// What stands in for limits a host cannot apply, with `required = false`.
#[derive(Default)]
pub(super) struct Fallback {
    pub rlimits: Vec<(Rlimit, RlimitValue)>,
    pub warnings: Vec<String>,
}

/// A limit whose controller this caller cannot use, with why and what to do about it.
struct Unusable {
    span: Span,
    limit: CgroupLimit,
    value: u64,
    why: String,
    help: String,
}

/// The sandbox's own group: when the manifest sets a limit, or `stats` (`up --stats`) asks for
/// its accounting.
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
    let asked = asked(cx, cgroup);
    let parent = parent(cx, cgroup);
    if asked.is_empty() && !stats {
        return None;
    }
    let host = cx.host.cgroup();
    let version = host.version;
    let mut hierarchies = Hierarchies {
        host,
        version,
        list: Vec::new(),
    };
    let mut unusable = Vec::new();
    for &(span, limit, value) in &asked {
        match refusal(cx, limit) {
            Some((why, help)) => unusable.push(Unusable {
                span,
                limit,
                value,
                why,
                help,
            }),
            None => hierarchies.join(limit.controller()),
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
        hierarchies.join(controller);
    }

    let mut limits: CgroupLimits = asked
        .iter()
        .map(|&(_, limit, value)| (limit, value))
        .collect();
    fall_back(cx, cgroup, unusable, &mut limits, fallback);
    if hierarchies.list.is_empty() {
        // With limits, each unusable one was reported at its key; without, only --stats asked.
        if asked.is_empty() {
            stats_unavailable(cx);
        }
        return None;
    }
    Some(CgroupPlan {
        parent,
        limits,
        version: version.expect("a usable controller means a mounted hierarchy"),
        hierarchies: hierarchies.list,
        stats,
        view: namespaces.cgroup && sysfs_holds_cgroup_dir(mounts),
    })
}

/// The limits `[cgroup]` asks for, each at its span with its value in kernel units: a value
/// out of range is an error at its key (and left out when it has no kernel form).
fn asked(cx: &mut Cx, cgroup: &Cgroup) -> Vec<(Span, CgroupLimit, u64)> {
    let mut asked = Vec::new();
    for limit in CgroupLimit::ALL {
        let Some(Asked {
            span,
            value,
            out_of_range,
        }) = limit.asked(cgroup)
        else {
            continue;
        };
        if let Some((message, help)) = out_of_range {
            cx.report(
                Problem::error("sandbox::cgroup::out-of-range", message)
                    .at(span, "out of range")
                    .help(help),
            );
        }
        if limit == CgroupLimit::MemorySwap && cgroup.memory.is_none() {
            cx.report(
                Problem::error(
                    "sandbox::cgroup::swap-without-memory",
                    "`memory_swap` needs a `memory` limit",
                )
                .at(span, "swap on top of what?")
                .help("set `memory` too: swap is allowed on top of it"),
            );
        }
        if let Some(value) = value {
            asked.push((span, limit, value));
        }
    }
    asked
}

/// The group under which the sandbox's own group is made.
fn parent(cx: &mut Cx, cgroup: &Cgroup) -> String {
    let Some(parent) = &cgroup.parent else {
        return DEFAULT_PARENT.to_string();
    };
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

/// Why this caller cannot apply `limit` here, and what to do about it; `None` when it can.
fn refusal(cx: &Cx, limit: CgroupLimit) -> Option<(String, String)> {
    let host = cx.host.cgroup();
    let controller = limit.controller();
    match host.access(controller) {
        Access::Usable { base, .. }
            if limit == CgroupLimit::IoWeight
                && host.version.is_some_and(|v| !cx.host.kernel_weighs_io(v, base)) =>
        {
            Some((
                "this kernel weighs no group's I/O: no block device offers the BFQ scheduler, and there is no io.cost".into(),
                "load BFQ (`modprobe bfq`) and choose it for the disk (`echo bfq > /sys/block/DEV/queue/scheduler`), or remove io_weight".into(),
            ))
        }
        Access::Usable { .. } => None,
        // Only a refusal asks whether systemd manages the host.
        access => access.problem(
            controller,
            host.version,
            cx.host.caller.is_root(),
            cx.host.systemd_run().as_deref(),
        ),
    }
}

/// The hierarchies the sandbox's group is made in, as the controllers it uses join them.
struct Hierarchies<'h> {
    host: &'h CgroupHost,
    version: Option<CgroupVersion>,
    list: Vec<CgroupHierarchy>,
}

impl Hierarchies<'_> {
    /// Add the hierarchy that carries `controller`, when this caller can use it: on v2 the one
    /// hierarchy, handing the controller down; on v1 the controller's own.
    fn join(&mut self, controller: Controller) {
        let Access::Usable { base, hierarchy } = self.host.access(controller) else {
            return;
        };
        if self.version != Some(CgroupVersion::V2) {
            if !self.list.iter().any(|h| &h.base == base) {
                self.list.push(CgroupHierarchy {
                    base: base.clone(),
                    controllers: hierarchy.clone(),
                });
            }
            return;
        }
        if self.list.is_empty() {
            self.list.push(CgroupHierarchy {
                base: base.clone(),
                controllers: Vec::new(),
            });
        }
        let handed = &mut self.list[0].controllers;
        if let Some(name) = controller.kernel_name(CgroupVersion::V2)
            && !handed.iter().any(|c| c == name)
        {
            handed.push(name.to_string());
        }
    }
}

/// The limits this caller cannot apply: each an error at its key, or with `required = false`
/// an rlimit where one approximates it (else nothing), a warning, and left out of `limits`.
fn fall_back(
    cx: &mut Cx,
    cgroup: &Cgroup,
    unusable: Vec<Unusable>,
    limits: &mut CgroupLimits,
    fallback: &mut Fallback,
) {
    let required = cgroup.required.as_ref().is_none_or(|r| r.value);
    let mut fell_back = Vec::new();
    for Unusable {
        span,
        limit,
        value,
        why,
        help,
    } in unusable
    {
        let (key, controller) = (limit.key(), limit.controller().name());
        if required {
            cx.report(
                Problem::error(
                    "sandbox::cgroup::unavailable",
                    format!("`{key}` needs the {controller} controller: {why}"),
                )
                .at(span, format!("needs the {controller} controller"))
                .help(format!("{help}; or set `required = false` in [cgroup] to fall back to rlimits where they exist")),
            );
            continue;
        }
        let (instead, what) = match limit.rlimit() {
            Some((rlimit, what)) => {
                fallback.rlimits.push((rlimit, RlimitValue::Limited(value)));
                (
                    format!("falls back to RLIMIT_{}", rlimit.name().to_uppercase()),
                    format!(", {what}"),
                )
            }
            None => ("is not applied".to_string(), String::new()),
        };
        // Out of the plan: the group gets the limits that can be applied, and nothing is
        // written for this one.
        limits.remove(limit);
        cx.report(
            Problem::warning(
                "sandbox::cgroup::fallback",
                format!("cgroup: `{key}` {instead}{what} ({controller} controller: {why})"),
            )
            .at(span, format!("needs the {controller} controller"))
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
}

/// `--stats` alone asks for a group, and no controller of its accounting can be used.
fn stats_unavailable(cx: &mut Cx) {
    let host = cx.host.cgroup();
    let problem = host.access(Controller::Cpuacct).problem(
        Controller::Cpuacct,
        host.version,
        cx.host.caller.is_root(),
        cx.host.systemd_run().as_deref(),
    );
    if let Some((message, help)) = problem {
        cx.report(
            Problem::error(
                "sandbox::cgroup::unavailable",
                format!("`--stats` needs the sandbox's own cgroup: {message}"),
            )
            .help(help),
        );
    }
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
