use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{Output, exit, find_manifest, load_and_validate};
use crate::diagnostics::{JsonProblem, Report, Shown};
use crate::host::HostFacts;
use crate::validate::Invocation;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests to check (default: sandbox.toml here or in a parent folder).
    pub manifests: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(args: CheckArgs, out: &Output) -> u8 {
    let host = HostFacts::live();
    let arguments: Vec<Option<PathBuf>> = if args.manifests.is_empty() {
        vec![None]
    } else {
        args.manifests.into_iter().map(Some).collect()
    };
    let mut all_valid = true;
    let mut results = Vec::new();
    for argument in arguments {
        let path = match find_manifest(argument.as_deref()) {
            Ok(path) => path,
            Err(message) => {
                all_valid = false;
                match args.format {
                    Format::Human => out.error(&message),
                    Format::Json => results
                        .push(json!({ "manifest": argument, "valid": false, "error": message })),
                }
                continue;
            }
        };
        let (loaded, validated) = load_and_validate(&path, &host, &Invocation::default());
        let valid = validated.plan.is_some();
        all_valid &= valid;
        match args.format {
            Format::Human => {
                out.problems(&validated.problems, &loaded);
                let errors = validated.problems.iter().filter(|p| p.is_error()).count();
                let warnings = validated
                    .problems
                    .iter()
                    .filter(|p| !p.is_error() && out.shows(p))
                    .count();
                if let Some(plan) = &validated.plan {
                    let asked = super::trust::requests_of(plan, &loaded, &host);
                    if !asked.is_empty() && !out.quiet {
                        say!(
                            "note: {} asks for more than the default jail; `sandbox up` runs it once allowed (`sandbox allow`):\n{}",
                            path.display(),
                            super::trust::describe(&asked, &loaded)
                        );
                    }
                }
                if !valid && !out.quiet {
                    say!(
                        "{}: {errors} error{}, {warnings} warning{}",
                        path.display(),
                        plural(errors),
                        plural(warnings)
                    );
                } else if valid && !out.quiet {
                    say!(
                        "{}: valid{}",
                        path.display(),
                        if warnings > 0 {
                            format!(", {warnings} warning{}", plural(warnings))
                        } else {
                            String::new()
                        }
                    );
                }
            }
            Format::Json => {
                // The details, not the line that sums them up for people.
                let reports: Vec<Report> = validated
                    .problems
                    .into_iter()
                    .filter(|p| p.shown != Shown::Summary)
                    .map(|p| Report::new(p, &loaded.sources))
                    .collect();
                let problems: Vec<JsonProblem> = reports.iter().map(JsonProblem::from).collect();
                results.push(json!({ "manifest": path, "valid": valid, "problems": problems }));
            }
        }
    }
    if args.format == Format::Json {
        show!(
            "{}",
            serde_json::to_string_pretty(&json!({ "valid": all_valid, "manifests": results }))
                .expect("JSON")
        );
    }
    if all_valid {
        exit::SUCCESS
    } else {
        exit::INVALID
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
