//! `[security]`.

use std::path::PathBuf;

use super::super::Cx;
use super::get;
use crate::diagnostics::Problem;
use crate::manifest::values::{Rlimit, RlimitValue};
use crate::manifest::{
    Landlock, Seccomp, SeccompAction, SeccompPreset, SeccompTable, Security, Spanned,
};
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
        Some(Seccomp::Custom(table)) => custom_seccomp(cx, table),
    };

    let no_new_privileges = get(&security.no_new_privileges).unwrap_or(true);
    if let Some(Seccomp::Custom(table)) = security.seccomp.as_ref().map(|s| &s.value) {
        check_launcher_allowed(cx, table, &seccomp, no_new_privileges);
    }

    let landlock = security.landlock.as_ref().map(|l| landlock(cx, &l.value));

    let (rlimits, raise_hard_limits) = rlimits(cx, security);

    SecurityPlan {
        capabilities,
        no_new_privileges,
        seccomp,
        landlock,
        rlimits,
        raise_hard_limits,
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
    }
}

/// A custom `seccomp` table: a deny list with default_action = "allow", else an allow list.
fn custom_seccomp(cx: &mut Cx, table: &SeccompTable) -> SeccompPlan {
    let names =
        |list: &Option<Spanned<Vec<Spanned<crate::manifest::values::Syscall>>>>| -> Vec<String> {
            list.as_ref()
                .map(|l| l.value.iter().map(|s| s.value.0.clone()).collect())
                .unwrap_or_default()
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
    if let (Some(errno_key), SeccompAction::Kill) = (&table.errno, table.default_action.value) {
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

/// What a custom profile refuses that the sandbox's own start needs.
fn check_launcher_allowed(
    cx: &mut Cx,
    table: &SeccompTable,
    seccomp: &SeccompPlan,
    no_new_privileges: bool,
) {
    let blocked = crate::plan::seccomp::blocks_launcher(seccomp, no_new_privileges);
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

/// The paths and ports landlock allows.
fn landlock(cx: &mut Cx, l: &Landlock) -> LandlockPlan {
    let mut paths = |list: &Option<Spanned<Vec<Spanned<String>>>>| -> Vec<PathBuf> {
        list.iter()
            .flat_map(|l| l.value.iter())
            .filter_map(|p| cx.target_path(p, "a landlock path"))
            .collect()
    };
    let (read, write, execute) = (paths(&l.read), paths(&l.write), paths(&l.execute));
    let ports = |list: &Option<Spanned<Vec<Spanned<u16>>>>| -> Option<Vec<u16>> {
        list.as_ref()
            .map(|l| l.value.iter().map(|p| p.value).collect())
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
        check_landlock_abi(cx, l, &plan);
    }
    plan
}

/// A required landlock that this kernel cannot enforce, in full or for the rules asked.
fn check_landlock_abi(cx: &mut Cx, l: &Landlock, plan: &LandlockPlan) {
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
        let kernel = cx
            .host
            .kernel()
            .map(|(major, minor)| format!("Linux {major}.{minor}, "))
            .unwrap_or_default();
        let mut problem = Problem::error(
            "sandbox::landlock::abi",
            format!(
                "this kernel's landlock ({kernel}ABI {abi}) cannot enforce {}",
                missing.join(", ")
            ),
        );
        problem = match tcp.split_first() {
            Some((first, rest)) => rest
                .iter()
                .fold(problem.at(*first, "cannot be enforced here"), |p, span| {
                    p.also(*span, "nor this")
                }),
            None => problem.at_span(required_span),
        };
        cx.report(problem.help(
            "run on the Linux release named for each, or later, or set `required = false` to apply what the kernel supports",
        ));
    }
}

/// The rlimits the command starts with (no core dumps unless asked), and those above the
/// caller's hard limit, which the launcher raises.
fn rlimits(cx: &mut Cx, security: &Security) -> (Vec<(Rlimit, RlimitValue)>, Vec<Rlimit>) {
    let mut rlimits: Vec<(Rlimit, RlimitValue)> = Vec::new();
    let mut raise_hard_limits = Vec::new();
    for (name, value) in security.rlimits.iter().flat_map(|r| &r.value) {
        if above_hard_limit(cx, name, value) {
            raise_hard_limits.push(name.value);
        }
        rlimits.push((name.value, value.value));
    }
    if !rlimits.iter().any(|(name, _)| *name == Rlimit::Core) {
        rlimits.push((Rlimit::Core, RlimitValue::Limited(0)));
    }
    rlimits.sort_by_key(|(name, _)| *name);
    (rlimits, raise_hard_limits)
}

/// Whether `name = value` is above the caller's hard limit, which the launcher then raises for
/// itself before the sandbox starts (no process in a user namespace may raise one). Only a
/// caller with CAP_SYS_RESOURCE may; for any other, it is an error here rather than EPERM at
/// start.
fn above_hard_limit(cx: &mut Cx, name: &Spanned<Rlimit>, value: &Spanned<RlimitValue>) -> bool {
    let (rlimit, wanted) = (name.value, value.value.as_raw());
    let hard = cx.host.hard_limit(rlimit);
    if wanted <= hard {
        return false;
    }
    let shown = |limit: u64| match limit {
        libc::RLIM_INFINITY => "unlimited".to_string(),
        n => n.to_string(),
    };
    if cx.host.may_raise_hard_limits() {
        let nr_open = cx.host.nr_open();
        if rlimit == Rlimit::Nofile && wanted > nr_open {
            cx.report(
                Problem::error(
                    "sandbox::rlimit::above-nr-open",
                    format!(
                        "`nofile = {}` is above fs.nr_open ({nr_open}), the most open files any process may have",
                        shown(wanted)
                    ),
                )
                .at(value.span, format!("at most {nr_open}"))
                .help(format!(
                    "lower it to at most {nr_open}, or raise the kernel's limit as root: `sysctl fs.nr_open={}`",
                    shown(wanted)
                )),
            );
        }
        return true;
    }
    let key = rlimit.name();
    let (flag, unit, item) = limit_tools(rlimit);
    let asked = match value.value {
        RlimitValue::Unlimited => "unlimited".to_string(),
        RlimitValue::Limited(n) => n.div_ceil(unit).to_string(),
    };
    let conf = item.map_or(String::new(), |item| {
        format!(", or a `hard {item}` line in /etc/security/limits.conf (see limits.conf(5); then log in again)")
    });
    let root = if cx.host.caller.is_root() {
        "; root here lacks CAP_SYS_RESOURCE (as in many containers and VMs), so only what starts this machine or container can raise it"
    } else {
        ""
    };
    cx.report(
        Problem::error(
            "sandbox::rlimit::above-hard-limit",
            format!(
                "`{key} = {}` is above the caller's hard limit ({}), which only a process with CAP_SYS_RESOURCE may raise",
                shown(wanted),
                shown(hard)
            ),
        )
        .at(value.span, format!("the hard limit is {}", shown(hard)))
        .help(format!(
            "lower it to at most {}, or start `sandbox` with a higher hard limit: `ulimit -H{flag} {asked}` in a shell that may raise it (root's, before it switches to your user){conf}{root}",
            shown(hard)
        )),
    );
    false
}

/// How a shell and pam_limits name a limit: bash's `ulimit` option and the unit it counts in
/// (bytes per unit), and the item of /etc/security/limits.conf (none for rttime).
fn limit_tools(rlimit: Rlimit) -> (char, u64, Option<&'static str>) {
    /// `ulimit` options, in the order of [`Rlimit::ALL`].
    const OPTIONS: &str = "vctdfxlqenumrRis";
    let index = Rlimit::ALL
        .iter()
        .position(|r| *r == rlimit)
        .expect("listed");
    let option = char::from(OPTIONS.as_bytes()[index]);
    let unit = match rlimit {
        Rlimit::As
        | Rlimit::Core
        | Rlimit::Data
        | Rlimit::Fsize
        | Rlimit::Memlock
        | Rlimit::Rss
        | Rlimit::Stack => 1024,
        _ => 1,
    };
    (
        option,
        unit,
        (rlimit != Rlimit::Rttime).then(|| rlimit.name()),
    )
}

/// Rlimits standing in for cgroup limits the host cannot apply; one the manifest sets itself
/// wins. A caller's hard limit below one already limits more: it stays.
pub(super) fn add_fallback_rlimits(
    cx: &Cx,
    security: &mut SecurityPlan,
    rlimits: Vec<(Rlimit, RlimitValue)>,
) {
    for (name, value) in rlimits {
        if !security.rlimits.iter().any(|(set, _)| *set == name) {
            let hard = cx.host.hard_limit(name);
            let value = match value {
                RlimitValue::Limited(n) if n > hard => RlimitValue::Limited(hard),
                value => value,
            };
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

#[cfg(test)]
mod tests {
    use crate::diagnostics::Problem;
    use crate::host::{Caller, FixedFacts, HostFacts};
    use crate::manifest::load_str;
    use crate::manifest::values::{Rlimit, RlimitValue};
    use crate::plan::Plan;
    use crate::validate::{Invocation, validate};

    /// Validate `extra` (after a host root) for a caller of `euid` with a hard nofile of 20000
    /// and a hard data limit of 1 GiB, with or without CAP_SYS_RESOURCE.
    fn validate_with(
        euid: u32,
        sys_resource: bool,
        extra: &str,
    ) -> (Option<Plan>, Vec<Problem>, String) {
        validate_on(
            euid,
            FixedFacts {
                hard_limits: vec![(Rlimit::Nofile, 20_000), (Rlimit::Data, 1 << 30)],
                sys_resource,
                ..FixedFacts::default()
            },
            extra,
        )
    }

    /// Validate `extra` (after a host root) for a caller of `euid` on a host with `facts`.
    fn validate_on(
        euid: u32,
        facts: FixedFacts,
        extra: &str,
    ) -> (Option<Plan>, Vec<Problem>, String) {
        let caller = Caller {
            uid: euid,
            gid: euid,
            euid,
            user: None,
            home: None,
            env: Default::default(),
        };
        let host = HostFacts::fixed(caller.clone(), facts);
        let text = format!("[rootfs]\nhost = true\n[process]\ncommand = [\"/bin/sh\"]\n{extra}");
        let loaded = load_str(
            std::path::Path::new("/project/sandbox.toml"),
            &text,
            &caller.vars(),
        );
        let validated = validate(&loaded, &host, &Invocation::default());
        (validated.plan, validated.problems, text)
    }

    #[test]
    fn landlock_rules_an_older_kernel_cannot_enforce_are_refused_with_its_version() {
        let (plan, problems, text) = validate_on(
            1000,
            FixedFacts {
                landlock_abi: 2,
                kernel: Some((6, 1)),
                ..FixedFacts::default()
            },
            "[security.landlock]\nread = [\"/usr\"]\nconnect_tcp = [443]\nrequired = true\n",
        );
        assert!(plan.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        assert_eq!(problem.code, "sandbox::landlock::abi");
        assert!(
            problem
                .message
                .starts_with("this kernel's landlock (Linux 6.1, ABI 2) cannot enforce")
                && problem
                    .message
                    .contains("TCP bind/connect rules (ABI 4, Linux 6.7)"),
            "{}",
            problem.message
        );
        let span = problem.span.expect("at the TCP rules");
        assert_eq!(&text[span.start..span.end], "[443]");
        let help = problem.help.as_deref().unwrap();
        assert!(help.contains("`required = false`"), "{help}");
    }

    #[test]
    fn an_rlimit_above_the_hard_limit_is_refused_at_its_value() {
        let (plan, problems, text) =
            validate_with(1000, false, "[security.rlimits]\nnofile = 65536\n");
        assert!(plan.is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        assert_eq!(problem.code, "sandbox::rlimit::above-hard-limit");
        assert!(
            problem.message.contains("`nofile = 65536`") && problem.message.contains("(20000)"),
            "{}",
            problem.message
        );
        let span = problem.span.expect("at the value");
        assert_eq!(&text[span.start..span.end], "65536");
        let help = problem.help.as_deref().unwrap();
        assert!(help.contains("at most 20000"), "{help}");
        assert!(help.contains("`ulimit -Hn 65536`"), "{help}");
        assert!(help.contains("`hard nofile`"), "{help}");
        assert!(!help.contains("root here"), "{help}");

        let (plan, problems, _) =
            validate_with(1000, false, "[security.rlimits]\nnofile = 20000\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(
            plan.unwrap().security.raise_hard_limits.is_empty(),
            "the hard limit itself is fine"
        );
    }

    #[test]
    fn the_fix_counts_in_the_shells_units_and_says_when_even_root_cannot() {
        let (_, problems, _) = validate_with(
            0,
            false,
            "[security.rlimits]\ndata = \"2G\"\nnproc = \"unlimited\"\n",
        );
        // nproc has no hard limit here (unlimited): only data is refused.
        assert_eq!(problems.len(), 1, "{problems:?}");
        let help = problems[0].help.as_deref().unwrap();
        assert!(
            help.contains("`ulimit -Hd 2097152`"),
            "KiB, as bash counts: {help}"
        );
        assert!(help.contains("root here lacks CAP_SYS_RESOURCE"), "{help}");
        let (_, problems, _) =
            validate_with(1000, false, "[security.rlimits]\nnofile = \"unlimited\"\n");
        assert!(
            problems[0].message.contains("`nofile = unlimited`"),
            "{}",
            problems[0].message
        );
        assert!(
            problems[0]
                .help
                .as_deref()
                .unwrap()
                .contains("`ulimit -Hn unlimited`")
        );
    }

    #[test]
    fn a_caller_with_cap_sys_resource_raises_the_hard_limit_up_to_nr_open() {
        let (plan, problems, _) = validate_with(0, true, "[security.rlimits]\nnofile = 65536\n");
        assert!(problems.is_empty(), "{problems:?}");
        let plan = plan.unwrap();
        assert_eq!(plan.security.raise_hard_limits, [Rlimit::Nofile]);
        assert!(
            crate::plan::render_text(&plan, false).contains(
                "nofile=65536 (above the caller's hard limit, which the launcher raises)"
            )
        );
        let (_, problems, _) = validate_with(0, true, "[security.rlimits]\nnofile = 2000000\n");
        let codes: Vec<_> = problems.iter().map(|p| p.code).collect();
        assert_eq!(codes, ["sandbox::rlimit::above-nr-open"]);
        assert!(
            problems[0]
                .help
                .as_deref()
                .unwrap()
                .contains("sysctl fs.nr_open=2000000")
        );
    }

    #[test]
    fn a_fallback_rlimit_keeps_a_lower_hard_limit() {
        // No cgroup mounted in these facts: `memory` falls back to RLIMIT_DATA, above the hard
        // limit of 1 GiB, which already limits more.
        let (plan, problems, _) =
            validate_with(1000, false, "[cgroup]\nmemory = \"4G\"\nrequired = false\n");
        assert!(problems.iter().all(|p| !p.is_error()), "{problems:?}");
        let rlimits = plan.unwrap().security.rlimits;
        assert!(
            rlimits.contains(&(Rlimit::Data, RlimitValue::Limited(1 << 30))),
            "{rlimits:?}"
        );
    }
}
