//! Stage 2: [`Loaded`] manifest + [`HostFacts`] -> [`Plan`], or every problem at once.
//!
//! Each rule group lives in `rules/` and returns its part of the plan, reporting problems on the
//! shared [`Cx`] as it goes; a part that has an error still yields a placeholder so the other
//! groups can be checked too. The plan is only handed out when no rule reported an error.

mod paths;
mod rules;

use std::path::PathBuf;

pub use paths::{TargetError, normalize_target};
pub use rules::idmap::id_pool;

use crate::diagnostics::Problem;
use crate::host::HostFacts;
use crate::manifest::{Loaded, Span, Spanned};
use crate::plan::Plan;

/// What the command line adds to the manifest.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The command after `--`, which replaces `process.command`.
    pub command: Option<Vec<String>>,
    /// `--name`, which replaces `name`.
    pub name: Option<String>,
    /// `up --stats`: the sandbox gets its own cgroup for the accounting, even without limits.
    pub stats: bool,
}

impl Invocation {
    /// For looking at what a manifest asks for (`allow`, `doctor`): the command does not matter,
    /// so a manifest meant to take its command from `--` is not refused for lacking one.
    pub fn inspecting() -> Invocation {
        Invocation {
            command: Some(vec!["/bin/true".into()]),
            ..Invocation::default()
        }
    }
}

/// The outcome of validation: a plan when there is no error, and every problem found
/// (warnings included, also alongside a plan).
#[derive(Debug)]
pub struct Validated {
    pub plan: Option<Plan>,
    pub problems: Vec<Problem>,
}

/// Validate a loaded manifest for this host and caller.
pub fn validate(loaded: &Loaded, host: &HostFacts, invocation: &Invocation) -> Validated {
    let mut cx = Cx {
        loaded,
        host,
        problems: loaded.problems.clone(),
    };
    let plan = rules::plan(&mut cx, invocation);
    let has_errors = cx.problems.iter().any(Problem::is_error);
    let mut problems = cx.problems;
    // In file order, as a reader goes through the manifest; spans order files by load order.
    problems.sort_by_key(|p| p.span.map_or((0, 0), |s| (1, s.start)));
    Validated {
        plan: (!has_errors).then_some(plan),
        problems,
    }
}

/// The state shared by the rules: inputs, and the problems found so far.
pub(crate) struct Cx<'a> {
    pub loaded: &'a Loaded,
    pub host: &'a HostFacts,
    pub problems: Vec<Problem>,
}

impl Cx<'_> {
    pub fn report(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Report a problem that is about a value being absent, unless the load already reported
    /// an error for that key (so a mistyped value is not also "missing").
    pub fn report_absent(&mut self, key: &str, problem: Problem) {
        if !self.loaded.was_dropped(key) && !self.loaded.incomplete {
            self.problems.push(problem);
        }
    }

    /// A span to point at for a whole table or the file when nothing better exists.
    pub fn span_of(&self, key: &str) -> Option<Span> {
        self.loaded.provenance.get(key).copied()
    }

    /// Resolve a host path written in the manifest: relative paths are relative to the folder
    /// of the file that wrote them (which is not always the main manifest's, with `extends`),
    /// and every symlink is followed, so the plan (and the trust check) sees where it leads.
    /// Reports and returns `None` for an empty path (it would silently name that folder) and
    /// one with a NUL byte (which no system call takes); `what` names it in the message.
    pub fn host_path(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
        let error = if value.value.is_empty() {
            TargetError::Empty
        } else if value.value.contains('\0') {
            TargetError::Nul
        } else {
            let base = self
                .loaded
                .sources
                .dir_of(value.span)
                .unwrap_or(&self.loaded.project_dir);
            return Some(crate::hostpath::resolve(&base.join(&value.value)));
        };
        let problem = match error {
            TargetError::Empty => {
                Problem::error("sandbox::path::empty", format!("{what} is an empty path"))
                    .help("write the path; use \".\" for the manifest's own folder")
            }
            other => other.problem(what),
        };
        self.report(problem.at(value.span, error.label()));
        None
    }

    /// A path inside the sandbox: absolute, without `..`, normalized. Reports and returns `None`
    /// when it is not.
    pub fn target_path(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
        match normalize_target(&value.value) {
            Ok(path) => Some(path),
            Err(error) => {
                self.report(error.problem(what).at(value.span, error.label()));
                None
            }
        }
    }
}
