use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Output, exit, find_manifest, load_and_validate};
use crate::diagnostics::Problem;
use crate::exec::{self, ExecError, StepFailure};
use crate::host::HostFacts;
use crate::manifest::Loaded;
use crate::plan::{Plan, RootSource, render_text};
use crate::rootfs::{self, Cache, PreparedRoot, Progress, RootfsError};
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The manifest (default: sandbox.toml here or in a parent folder).
    pub manifest: Option<PathBuf>,
    /// Replace the sandbox's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Print each step with its duration.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the plan instead of running it (same as `sandbox plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// The command to run, instead of process.command.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(args: UpArgs, out: &Output) -> ExitCode {
    let path = match find_manifest(args.manifest.as_deref()) {
        Ok(path) => path,
        Err(message) => {
            out.error(&message);
            return ExitCode::from(exit::LAUNCHER_FAILED);
        }
    };
    let host = HostFacts::live();
    let invocation = Invocation {
        command: (!args.command.is_empty()).then_some(args.command),
        name: args.name,
    };
    let (loaded, validated) = load_and_validate(&path, &host, &invocation);
    out.problems(&validated.problems, &loaded);
    let Some(plan) = validated.plan else {
        return ExitCode::from(exit::LAUNCHER_FAILED);
    };
    if args.dry_run {
        print!("{}", render_text(&plan, args.verbose));
        return ExitCode::SUCCESS;
    }
    if args.verbose {
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let root = match prepare_root(&plan, &host, out, &loaded) {
        Ok(root) => root,
        Err(problem) => {
            out.problems(&[*problem], &loaded);
            return ExitCode::from(exit::LAUNCHER_FAILED);
        }
    };
    if args.verbose
        && let Some(root) = &root
    {
        match root.unpacked {
            Some(took) => eprintln!(
                "sandbox: rootfs         unpacked {} in {:.3} ms",
                root.digest,
                took.as_secs_f64() * 1e3
            ),
            None => eprintln!("sandbox: rootfs         cached {}", root.digest),
        }
    }
    // `root` stays alive (its cache entry locked in use) until the sandbox is gone.
    match exec::run(&plan, root.as_ref().map(|r| r.dir.as_path())) {
        Ok((outcome, timings)) => {
            if args.verbose {
                for (step, duration) in &timings {
                    eprintln!(
                        "sandbox: {step:<14} {:>8.3} ms",
                        duration.as_secs_f64() * 1e3
                    );
                }
            }
            if let Some(failure) = &outcome.failure {
                out.problems(&[failure_problem(failure, &loaded)], &loaded);
            }
            ExitCode::from(outcome.status)
        }
        Err(error) => {
            let problem = match &error {
                ExecError::Step(failure) => failure_problem(failure, &loaded),
                other => Problem::error("sandbox::exec::setup", other.to_string()),
            };
            out.problems(&[problem], &loaded);
            ExitCode::from(exit::LAUNCHER_FAILED)
        }
    }
}

/// Unpack a tar or OCI root, or find it in the cache. Progress bars only on a terminal; they
/// are finished (and leave no thread) before the sandbox is cloned.
fn prepare_root(
    plan: &Plan,
    host: &HostFacts,
    out: &Output,
    loaded: &Loaded,
) -> Result<Option<PreparedRoot>, Box<Problem>> {
    if !matches!(
        plan.root.source,
        RootSource::Tar { .. } | RootSource::Oci { .. }
    ) {
        return Ok(None);
    }
    let progress = Progress {
        visible: !out.quiet && std::io::stderr().is_terminal(),
    };
    let prepared = rootfs::cache::locate(&host.caller.env, host.caller.is_root())
        .and_then(Cache::open)
        .map_err(RootfsError::from)
        .and_then(|cache| rootfs::prepare(&plan.root.source, &cache, progress));
    prepared.map_err(|error| {
        let key = error.key(&plan.root.source);
        let code = match error {
            RootfsError::Sha256 { .. } => "sandbox::rootfs::sha256-mismatch",
            RootfsError::Cache(_) => "sandbox::rootfs::cache",
            _ => "sandbox::rootfs::unpack",
        };
        let mut problem = Problem::error(code, error.to_string());
        if let Some(span) = loaded.provenance.get(key) {
            problem = problem.at(*span, "this root");
        }
        Box::new(problem)
    })
}

/// A failed step as a diagnostic, underlining the manifest key behind it when there is one.
fn failure_problem(failure: &StepFailure, loaded: &Loaded) -> Problem {
    let code = match failure.step {
        crate::plan::StepId::User => "sandbox::exec::user",
        crate::plan::StepId::Mount => "sandbox::exec::mount",
        crate::plan::StepId::Pid => "sandbox::exec::pid",
        crate::plan::StepId::Net => "sandbox::exec::net",
        crate::plan::StepId::Chroot => "sandbox::exec::chroot",
        crate::plan::StepId::Cgroup => "sandbox::exec::cgroup",
        crate::plan::StepId::Security => "sandbox::exec::security",
        crate::plan::StepId::Exec => "sandbox::exec::exec",
    };
    let mut problem = Problem::error(code, failure.to_string());
    if let Some(span) = failure
        .key
        .as_ref()
        .and_then(|key| loaded.provenance.get(key))
    {
        problem = problem.at(*span, format!("{} failed here", failure.step.name()));
    }
    if let Some(advice) = failure.advice() {
        problem = problem.help(advice);
    }
    problem
}
