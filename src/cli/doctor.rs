use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{Output, exit, load_and_validate};
use crate::doctor::{Check, Host, Status, checks};
use crate::host::HostFacts;
use crate::plan::{MountOp, NetPlan, Plan, SeccompPlan};
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A manifest to check against this host (default: sandbox.toml here or in a parent
    /// folder, when there is one; else the host alone).
    pub manifest: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Mark the checks the plan depends on (a needed check that is not ok means it cannot run).
fn mark_needed(checks: &mut [Check], plan: Option<&Plan>) {
    for check in checks.iter_mut() {
        check.needed = match (check.name.as_str(), plan) {
            ("kernel", _) => true,
            ("user namespaces", None) => true,
            ("seccomp", None) => true,
            (_, None) => false,
            ("user namespaces", Some(p)) => p.namespaces.user,
            ("seccomp", Some(p)) => p.security.seccomp != SeccompPlan::Off,
            ("subordinate ids", Some(p)) => p
                .user
                .as_ref()
                .is_some_and(|u| matches!(u.writer, crate::plan::MapWriter::Helper { .. })),
            ("landlock", Some(p)) => p.security.landlock.as_ref().is_some_and(|l| l.required),
            ("overlayfs", Some(p)) => {
                p.root.overlay.is_some()
                    || p.mounts
                        .iter()
                        .any(|m| matches!(m.op, MountOp::Overlay { .. }))
            }
            ("pasta", Some(p)) => matches!(p.net, NetPlan::Pasta(_)),
            ("nftables", Some(p)) => matches!(p.net, NetPlan::Bridge(_)),
            ("cgroups", Some(p)) => p.cgroup.as_ref().is_some_and(|c| !c.limits.is_empty()),
            ("idmapped mounts", Some(p)) => p
                .mounts
                .iter()
                .any(|m| matches!(m.op, MountOp::Bind { idmap: Some(_), .. })),
            _ => false,
        };
    }
}

pub fn run(args: DoctorArgs, out: &Output) -> u8 {
    let facts = HostFacts::live();
    let host = Host::live(&facts.caller);
    let mut checks = checks(&host);
    let mut manifest_ok = true;
    let mut problems = Vec::new();
    // Like every command, the nearest manifest when none is named; without one, the host.
    let manifest = match &args.manifest {
        Some(path) => match super::locate(Some(path), out, exit::INVALID) {
            Ok(path) => Some(path),
            Err(code) => return code,
        },
        None => super::find_manifest(None).ok(),
    };
    let plan = match &manifest {
        None => None,
        Some(path) => {
            let with_command = Invocation::inspecting();
            let (loaded, validated) = load_and_validate(path, &facts, &with_command);
            manifest_ok = validated.plan.is_some();
            if !args.json {
                out.problems(&validated.problems, &loaded);
            }
            problems = validated
                .problems
                .iter()
                .filter(|p| p.is_error())
                .map(|p| p.message.clone())
                .collect();
            validated.plan
        }
    };
    checks.extend(crate::doctor::id_ranges(&host, plan.as_ref()));
    mark_needed(&mut checks, plan.as_ref());
    let blocking = |c: &Check| c.needed && c.status != Status::Ok;
    let can_run = manifest_ok && !checks.iter().any(blocking);
    if args.json {
        let report = json!({
            "can_run": can_run,
            "manifest": manifest,
            "checks": checks,
            "manifest_problems": problems,
        });
        show!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
    } else {
        for check in &checks {
            let status = match (check.status, blocking(check)) {
                (Status::Ok, _) => "ok  ",
                (_, true) | (Status::Fail, _) => "FAIL",
                (Status::Warn, false) => "warn",
            };
            show!("{status}  {:<16} {}", check.name, check.detail);
            if let Some(fix) = check.fix.as_ref().filter(|_| check.status != Status::Ok) {
                show!("      {:<16} fix: {fix}", "");
            }
        }
        let verdict = match (&manifest, can_run) {
            (Some(path), true) => format!("{} can run here", path.display()),
            (Some(path), false) => format!("{} cannot run here", path.display()),
            (None, true) => "this host can run sandboxes".into(),
            (None, false) => "this host cannot run sandboxes".into(),
        };
        show!("{verdict}");
    }
    if can_run {
        exit::SUCCESS
    } else {
        exit::INVALID
    }
}
