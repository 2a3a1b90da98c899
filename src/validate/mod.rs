//! Stage 2: [`Loaded`] manifest + [`HostFacts`] -> [`Plan`], or every problem at once.
//!
//! Each rule group lives in `rules/` and returns its part of the plan, reporting problems on the
//! shared [`Cx`] as it goes; a part that has an error still yields a placeholder so the other
//! groups can be checked too. The plan is only handed out when no rule reported an error.

mod paths;
mod rules;

use std::path::{Path, PathBuf};

pub use paths::{TargetError, normalize_target};

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
}

impl Invocation {
    /// For looking at what a manifest asks for (`allow`, `doctor`): the command does not matter,
    /// so a manifest meant to take its command from `--` is not refused for lacking one.
    pub fn inspecting() -> Invocation {
        Invocation {
            command: Some(vec!["/bin/true".into()]),
            name: None,
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
    /// of the file that wrote them (which is not always the main manifest's, with `extends`).
    pub fn host_path(&self, value: &Spanned<String>) -> PathBuf {
        let base = self
            .loaded
            .sources
            .dir_of(value.span)
            .unwrap_or(&self.loaded.project_dir);
        let joined = base.join(&value.value);
        lexical_clean(&joined)
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

/// Remove `.` components and repeated slashes without touching the file system (a `..` in a
/// host path is kept: it is the user's to write, and the kernel resolves it).
fn lexical_clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}
