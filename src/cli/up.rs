use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Output, exit};
use crate::diagnostics::Problem;
use crate::exec::{self, ExecError, StepFailure};
use crate::manifest::Loaded;
use crate::plan::render_text;
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
    /// Run a manifest that asks for more than the default jail this once, without recording it
    /// (for CI scripts that run their own checked-in manifest).
    #[arg(long)]
    pub trust: bool,
    /// The command to run, instead of process.command.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(args: UpArgs, out: &Output) -> ExitCode {
    let invocation = Invocation {
        command: (!args.command.is_empty()).then_some(args.command),
        name: args.name,
    };
    let prepared = match super::prepare(
        args.manifest.as_deref(),
        &invocation,
        out,
        exit::LAUNCHER_FAILED,
    ) {
        Ok(prepared) => prepared,
        Err(code) => return code,
    };
    let super::Prepared { host, loaded, plan } = prepared;
    if args.dry_run {
        print!("{}", render_text(&plan, args.verbose));
        return ExitCode::SUCCESS;
    }
    if !super::trust::may_run(&plan, &loaded, &host, args.trust, out) {
        return ExitCode::from(exit::LAUNCHER_FAILED);
    }
    if args.verbose {
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
    }
    match exec::run(&plan) {
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
