//! `[cgroup]`: limits in kernel units.

use super::super::Cx;
use super::get;
use crate::diagnostics::Problem;
use crate::manifest::{Span, Spanned};
use crate::plan::{CgroupLimits, CgroupPlan};

pub const DEFAULT_PARENT: &str = "sandbox";
/// The CFS period the quota is expressed in (the kernel's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Below this the sandbox could not even start its init.
const MIN_MEMORY: u64 = 1 << 20;

pub(super) fn cgroup(cx: &mut Cx) -> Option<CgroupPlan> {
    let loaded = cx.loaded;
    let cgroup = &loaded.manifest.cgroup.as_ref()?.value;
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
    (!limits.is_empty()).then_some(CgroupPlan { parent, limits })
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
