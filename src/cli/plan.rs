use std::path::PathBuf;

use clap::Args;

use super::{Output, exit};
use crate::plan::{render_json, render_text};
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The manifest (default: sandbox.toml here or in a parent folder).
    pub manifest: Option<PathBuf>,
    /// Print JSON: {"steps": [{"step": "user", ...}, ...]}.
    #[arg(long)]
    pub json: bool,
    /// Show where each setting came from (file:line, or default).
    #[arg(long)]
    pub explain: bool,
    /// Replace the sandbox's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The command to plan for, instead of process.command.
    #[arg(last = true)]
    pub command: Vec<String>,
}

pub fn run(args: PlanArgs, out: &Output) -> u8 {
    let invocation = Invocation {
        command: (!args.command.is_empty()).then_some(args.command),
        name: args.name,
        stats: false,
    };
    let plan = match super::prepare(args.manifest.as_deref(), &invocation, out, exit::INVALID) {
        Ok(prepared) => prepared.plan,
        Err(code) => return code,
    };
    if args.json {
        show!(
            "{}",
            serde_json::to_string_pretty(&render_json(&plan, args.explain)).expect("JSON")
        );
    } else {
        show!(text crate::escape::printable(&render_text(&plan, args.explain)));
    }
    exit::SUCCESS
}
