//! `[security]`.

use std::path::PathBuf;

use super::super::Cx;
use super::get;
use crate::diagnostics::Problem;
use crate::manifest::values::{Rlimit, RlimitValue};
use crate::manifest::{Seccomp, SeccompAction, SeccompPreset, Security, Spanned};
use crate::plan::{LANDLOCK_NET_ABI, LandlockPlan, MountOp, MountStep, SeccompPlan, SecurityPlan};

/// Hidden when /proc is mounted: kernel memory, keys and scheduler internals (OCI defaults).
const MASKED_PROC: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
];
/// Read-only when /proc is mounted (OCI defaults).
const READONLY_PROC: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
const MASKED_SYS: &[&str] = &["/sys/firmware", "/sys/devices/virtual/powercap"];

pub(super) fn security(cx: &mut Cx) -> SecurityPlan {
    let loaded = cx.loaded;
    let default = Security::default();
    let security = loaded
        .manifest
        .security
        .as_ref()
        .map_or(&default, |s| &s.value);

    let mut capabilities: Vec<_> = security
        .capabilities
        .as_ref()
        .map(|c| c.value.iter().map(|c| c.value).collect())
        .unwrap_or_default();
    capabilities.sort();
    capabilities.dedup();

    let seccomp = match security.seccomp.as_ref().map(|s| &s.value) {
        None | Some(Seccomp::Named(SeccompPreset::Default)) => SeccompPlan::Default,
        Some(Seccomp::Named(SeccompPreset::Off)) => SeccompPlan::Off,
        Some(Seccomp::Custom(table)) => {
            let names = |list: &Option<Spanned<Vec<Spanned<crate::manifest::values::Syscall>>>>| -> Vec<String> {
                list.as_ref().map(|l| l.value.iter().map(|s| s.value.0.clone()).collect()).unwrap_or_default()
            };
            let errno = get(&table.errno).map_or(libc::EPERM, |e| e.0);
            let (wrong, right) = match table.default_action.value {
                SeccompAction::Allow => (&table.allow, "deny"),
                SeccompAction::Errno | SeccompAction::Kill => (&table.deny, "allow"),
            };
            if let Some(wrong) = wrong {
                let action = serde_json::to_value(table.default_action.value)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                cx.report(
                    Problem::error(
                        "sandbox::seccomp::wrong-list",
                        format!("with default_action = \"{action}\" the list is `{right}`"),
                    )
                    .at(wrong.span, "this list would have no effect")
                    .also(table.default_action.span, "default action")
                    .help(format!(
                        "rename the key to `{right}`, or change default_action"
                    )),
                );
            }
            if let (Some(errno_key), SeccompAction::Kill) =
                (&table.errno, table.default_action.value)
            {
                cx.report(
                    Problem::error(
                        "sandbox::seccomp::errno-with-kill",
                        "`errno` has no effect with default_action = \"kill\"",
                    )
                    .at(errno_key.span, "never returned")
                    .help("remove `errno`, or use default_action = \"errno\""),
                );
            }
            match table.default_action.value {
                SeccompAction::Allow => SeccompPlan::DenyList {
                    deny: names(&table.deny),
                    errno,
                },
                SeccompAction::Errno => SeccompPlan::AllowList {
                    allow: names(&table.allow),
                    errno: Some(errno),
                },
                SeccompAction::Kill => SeccompPlan::AllowList {
                    allow: names(&table.allow),
                    errno: None,
                },
            }
        }
    };

    let no_new_privileges = get(&security.no_new_privileges).unwrap_or(true);
    if let Some(Seccomp::Custom(table)) = security.seccomp.as_ref().map(|s| &s.value) {
        let blocked = crate::plan::seccomp::blocks_launcher(&seccomp, no_new_privileges);
        let (list, wrong) = match table.default_action.value {
            SeccompAction::Allow => (&table.deny, &table.allow),
            SeccompAction::Errno | SeccompAction::Kill => (&table.allow, &table.deny),
        };
        // A misnamed list is already reported; what it lacks would only repeat that.
        if !blocked.is_empty() && wrong.is_none() {
            let span = list.as_ref().map_or(table.default_action.span, |l| l.span);
            let why = if no_new_privileges {
                "the command is started with execve after the filter is in place".to_string()
            } else {
                "with no_new_privileges = false the filter goes in before the launcher drops \
                 capabilities and changes uid, then execs the command"
                    .to_string()
            };
            cx.report(
                Problem::error(
                    "sandbox::seccomp::blocks-launcher",
                    format!(
                        "this profile refuses {}, which the sandbox needs to start the command",
                        blocked.join(", ")
                    ),
                )
                .at(span, "here")
                .help(format!("{why}: allow {}", blocked.join(", "))),
            );
        }
    }

    let landlock = security.landlock.as_ref().map(|landlock| {
        let l = &landlock.value;
        let mut paths = |list: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<PathBuf> {
            list.iter()
                .flat_map(|l| l.value.iter())
                .filter_map(|p| cx.target_path(p, "a landlock path"))
                .collect()
        };
        let (read, write, execute) = (paths(&l.read), paths(&l.write), paths(&l.execute));
        let ports = |list: &Option<Spanned<Vec<Spanned<u16>>>>| -> Option<Vec<u16>> {
            list.as_ref().map(|l| l.value.iter().map(|p| p.value).collect())
        };
        let plan = LandlockPlan {
            read,
            write,
            execute,
            bind_tcp: ports(&l.bind_tcp),
            connect_tcp: ports(&l.connect_tcp),
            required: get(&l.required).unwrap_or(false),
        };
        if plan.required {
            let abi = cx.host.landlock_abi();
            let missing = plan.unenforceable(abi);
            let required_span = l.required.as_ref().map(|r| r.span);
            if abi == 0 {
                cx.report(
                    Problem::error("sandbox::landlock::unsupported", "landlock is required but this kernel does not offer it")
                        .at_span(required_span)
                        .help("boot a kernel with landlock enabled (CONFIG_SECURITY_LANDLOCK, lsm=...,landlock), or set `required = false`; `sandbox doctor` shows the details"),
                );
            } else if !missing.is_empty() {
                // Point at the TCP rules when they are what the kernel lacks, else at `required`.
                let tcp = [&l.bind_tcp, &l.connect_tcp]
                    .into_iter()
                    .flatten()
                    .map(|list| list.span)
                    .filter(|_| abi < LANDLOCK_NET_ABI)
                    .collect::<Vec<_>>();
                let mut problem = Problem::error(
                    "sandbox::landlock::abi",
                    format!("this kernel's landlock (ABI {abi}) cannot enforce {}", missing.join(", ")),
                );
                problem = match tcp.split_first() {
                    Some((first, rest)) => rest.iter().fold(
                        problem.at(*first, "cannot be enforced here"),
                        |p, span| p.also(*span, "nor this"),
                    ),
                    None => problem.at_span(required_span),
                };
                cx.report(problem.help(
                    "run on a newer kernel, or set `required = false` to apply what the kernel supports",
                ));
            }
        }
        plan
    });

    let mut rlimits: Vec<(Rlimit, RlimitValue)> = security
        .rlimits
        .as_ref()
        .map(|r| r.value.iter().map(|(k, v)| (k.value, v.value)).collect())
        .unwrap_or_default();
    if !rlimits.iter().any(|(name, _)| *name == Rlimit::Core) {
        rlimits.push((Rlimit::Core, RlimitValue::Limited(0)));
    }
    rlimits.sort_by_key(|(name, _)| *name);

    SecurityPlan {
        capabilities,
        no_new_privileges,
        seccomp,
        landlock,
        rlimits,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
    }
}

/// Rlimits standing in for cgroup limits the host cannot apply; one the manifest sets itself
/// wins.
pub(super) fn add_fallback_rlimits(
    security: &mut SecurityPlan,
    rlimits: Vec<(Rlimit, RlimitValue)>,
) {
    for (name, value) in rlimits {
        if !security.rlimits.iter().any(|(set, _)| *set == name) {
            security.rlimits.push((name, value));
        }
    }
    security.rlimits.sort_by_key(|(name, _)| *name);
}

/// Hide the kernel's sensitive /proc and /sys entries when the sandbox mounts those.
pub(super) fn mask_kernel_paths(security: &mut SecurityPlan, mounts: &[MountStep]) {
    let mounted = |want: fn(&MountOp) -> bool| {
        mounts
            .iter()
            .filter(|m| want(&m.op))
            .map(|m| m.op.target().clone())
            .collect::<Vec<_>>()
    };
    for proc in mounted(|op| matches!(op, MountOp::Proc { .. })) {
        security.masked_paths.extend(
            MASKED_PROC
                .iter()
                .map(|p| proc.join(p.trim_start_matches("/proc/"))),
        );
        security.readonly_paths.extend(
            READONLY_PROC
                .iter()
                .map(|p| proc.join(p.trim_start_matches("/proc/"))),
        );
    }
    for sys in mounted(|op| matches!(op, MountOp::Sysfs { .. })) {
        security.masked_paths.extend(
            MASKED_SYS
                .iter()
                .map(|p| sys.join(p.trim_start_matches("/sys/"))),
        );
    }
}

/// What the plan will do less well than asked, said once in `plan` and `up -v`.
pub(super) fn warnings(cx: &Cx, security: &SecurityPlan) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(landlock) = &security.landlock
        && !landlock.required
    {
        let abi = cx.host.landlock_abi();
        let missing = landlock.unenforceable(abi);
        if abi == 0 {
            warnings.push("landlock: this kernel has no landlock; the rules are not enforced (required = false)".into());
        } else if !missing.is_empty() {
            warnings.push(format!(
                "landlock: this kernel (ABI {abi}) cannot enforce {}; the rest is applied (required = false)",
                missing.join(", ")
            ));
        }
    }
    warnings
}
