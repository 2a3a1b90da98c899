//! Library use without root: parse a manifest from a string, validate it for this machine and
//! caller, and print the plan `sandbox up` would carry out (or every problem found).
//!
//!     cargo run --example plan_from_str
//!     cargo run --example plan_from_str -- path/to/sandbox.toml
//!
//! Nothing is mounted or started: loading, validation and planning are pure functions of the
//! text and the host's facts.

use std::path::PathBuf;
use std::process::ExitCode;

use sandbox::diagnostics::{Report, render};
use sandbox::host::HostFacts;
use sandbox::manifest;
use sandbox::plan::render_text;
use sandbox::validate::{Invocation, validate};

/// Used when no file is given. `${PROJECT_DIR}` is the folder of the path the text is loaded as.
const MANIFEST: &str = r#"
name = "example"

[rootfs]
host = true                 # the host's /usr, /bin, /lib and /etc, read-only

[process]
command = ["/bin/sh", "-c", "echo hello from $(hostname)"]
cwd = "/work"

[[mount]]
type = "bind"
source = "${PROJECT_DIR}"
target = "/work"

[[mount]]
type = "tmpfs"
target = "/scratch"
size = "64M"

[cgroup]
memory = "256M"
pids = 64
"#;

fn main() -> ExitCode {
    let (path, text) = match std::env::args_os().nth(1).map(PathBuf::from) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => (path, text),
            Err(error) => {
                eprintln!("cannot read {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        },
        // As if the text were ./sandbox.toml: relative paths and ${PROJECT_DIR} are this folder.
        None => (PathBuf::from("sandbox.toml"), MANIFEST.to_string()),
    };

    // The facts validation depends on (caller, subuid grants, helpers, landlock ABI) are probed
    // lazily; tests use `HostFacts::fixed` instead.
    let host = HostFacts::live();
    // 1. Text -> manifest: every syntax, type and variable problem, with spans.
    let loaded = manifest::load_str(&path, &text, &host.caller.vars());
    // 2. Manifest + host -> plan: every rule; a plan only when there is no error.
    let validated = validate(&loaded, &host, &Invocation::default());

    for problem in &validated.problems {
        let report = Report::new(problem.clone(), &loaded.sources);
        eprint!("{}", render(&report, false));
    }
    match validated.plan {
        // 3. The plan as `sandbox plan --explain` prints it.
        Some(plan) => {
            print!("{}", render_text(&plan, true));
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}
