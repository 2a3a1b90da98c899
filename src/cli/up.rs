use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Output, exit, find_manifest, load_and_validate};
use crate::host::HostFacts;
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
    out.error("`sandbox up` cannot run sandboxes yet: the executor is not implemented. `sandbox plan` shows what it will do.");
    ExitCode::from(exit::LAUNCHER_FAILED)
}
