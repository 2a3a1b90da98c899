//! Problems found in a manifest, and their rendering as miette diagnostics or JSON.
//!
//! Every stage that reads a manifest reports [`Problem`]s with global spans; this module turns
//! them into reports that show the right file, line and column.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, SourceCode};
use serde::Serialize;

use crate::escape::printable;
use crate::manifest::source::SourceFile;
use crate::manifest::{Location, SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// How much of a problem the human output shows; JSON always carries the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shown {
    /// In full.
    #[default]
    Always,
    /// As one line standing for the problems marked [`Shown::Verbose`], which `-v` shows
    /// instead.
    Summary,
    /// In full with `-v`; otherwise a [`Shown::Summary`] stands for it.
    Verbose,
}

/// One thing wrong (or worth a warning) in a manifest.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Stable code, e.g. `sandbox::idmap::overlap`; used by tests and the docs.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The offending key or value.
    pub span: Option<Span>,
    /// Text shown at the span.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// Other places that matter (the first of two duplicates, the other end of an overlap).
    pub related: Vec<(Span, String)>,
    pub shown: Shown,
}

impl Problem {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            code,
            severity: Severity::Error,
            message: message.into(),
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
            shown: Shown::Always,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.span = Some(span);
        self.label = Some(label.into());
        self
    }

    pub fn at_span(mut self, span: Option<Span>) -> Self {
        self.span = span;
        self
    }

    /// The text at the span, when the span was set with [`Problem::at_span`].
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }

    /// Shown in human output as one line, standing for details that `-v` shows instead.
    pub fn summary(mut self) -> Self {
        self.shown = Shown::Summary;
        self
    }

    /// Shown in human output only with `-v`; a summary stands for it otherwise.
    pub fn detail(mut self) -> Self {
        self.shown = Shown::Verbose;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A problem bound to its source text, ready for miette.
#[derive(Debug)]
pub struct Report {
    problem: Problem,
    source: Option<SourceFile>,
    labels: Vec<LabeledSpan>,
    location: Option<Location>,
}

impl Report {
    pub fn new(problem: Problem, sources: &SourceMap) -> Report {
        let resolved = problem.span.and_then(|span| sources.resolve(span));
        let location = problem.span.and_then(|span| sources.locate(span));
        let (source, labels) = match resolved {
            Some((file, start, end)) => {
                let source = file.clone();
                let mut labels = vec![LabeledSpan::new_primary_with_span(
                    problem.label.as_deref().map(|l| printable(l).into_owned()),
                    (start, end - start),
                )];
                for (span, text) in &problem.related {
                    // Related places in another file cannot be drawn on this one's snippet; they
                    // are named in the help text instead (see `related_elsewhere`).
                    if let Some((other, s, e)) = sources.resolve(*span)
                        && other.path == file.path
                    {
                        labels.push(LabeledSpan::new_with_span(
                            Some(printable(text).into_owned()),
                            (s, e - s),
                        ));
                    }
                }
                (Some(source), labels)
            }
            None => (None, Vec::new()),
        };
        let mut problem = problem;
        let elsewhere = related_elsewhere(&problem, sources);
        if !elsewhere.is_empty() {
            let help = problem
                .help
                .take()
                .map(|h| format!("{h}\n"))
                .unwrap_or_default();
            problem.help = Some(format!("{help}{}", elsewhere.join("\n")));
        }
        // The message and help quote names and values from the manifest, an archive or the
        // file system.
        problem.message = printable(&problem.message).into_owned();
        problem.help = problem.help.map(|h| printable(&h).into_owned());
        Report {
            problem,
            source,
            labels,
            location,
        }
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }
}

fn related_elsewhere(problem: &Problem, sources: &SourceMap) -> Vec<String> {
    let main_file = problem
        .span
        .and_then(|s| sources.resolve(s))
        .map(|(f, _, _)| f.path.clone());
    problem
        .related
        .iter()
        .filter_map(|(span, text)| {
            let (file, _, _) = sources.resolve(*span)?;
            (Some(&file.path) != main_file.as_ref())
                .then(|| format!("{text}: {}", sources.locate(*span).expect("resolved span")))
        })
        .collect()
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for Report {}

impl Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.problem.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// The machine-readable form of a problem (`sandbox check --format json`).
#[derive(Debug, Serialize)]
pub struct JsonProblem<'a> {
    pub severity: Severity,
    pub code: &'a str,
    pub message: &'a str,
    pub file: Option<&'a str>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub help: Option<&'a str>,
}

impl<'a> From<&'a Report> for JsonProblem<'a> {
    fn from(report: &'a Report) -> Self {
        let location = report.location();
        JsonProblem {
            severity: report.problem.severity,
            code: report.problem.code,
            message: &report.problem.message,
            file: location.map(|l| l.file.as_str()),
            line: location.map(|l| l.line),
            column: location.map(|l| l.column),
            help: report.problem.help.as_deref(),
        }
    }
}

/// A report as one line, `file:line:col: warning: message` (a summary, see [`Shown`]).
pub fn render_line(report: &Report) -> String {
    let severity = match report.problem.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    match report.location() {
        Some(location) => format!("{location}: {severity}: {}\n", report.problem.message),
        None => format!("{severity}: {}\n", report.problem.message),
    }
}

/// The words textwrap would break `line` into, except that a span in backticks is one word: a
/// command the help says to run stays on one line, ready to copy (a line break in it would run
/// its first half). Such a span longer than a line runs past the width rather than being cut.
fn quoted_whole(line: &str) -> Box<dyn Iterator<Item = textwrap::core::Word<'_>> + '_> {
    let mut words = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for word in textwrap::WordSeparator::new().find_words(line) {
        // The words are consecutive slices of `line`: this one ends after its whitespace.
        let end =
            word.whitespace.as_ptr() as usize - line.as_ptr() as usize + word.whitespace.len();
        quoted ^= word.word.matches('`').count() % 2 == 1;
        if !quoted {
            words.push(textwrap::core::Word::from(&line[start..end]));
            start = end;
        }
    }
    if start < line.len() {
        words.push(textwrap::core::Word::from(&line[start..]));
    }
    Box::new(words.into_iter())
}

/// Where a word may be split at a line's end: at its hyphens, as textwrap does, unless it is
/// (or holds) a span in backticks, which [`quoted_whole`] keeps whole.
fn unquoted_hyphens(word: &str) -> Vec<usize> {
    if word.contains('`') {
        Vec::new()
    } else {
        textwrap::WordSplitter::HyphenSplitter.split_points(word)
    }
}

/// Render a report as text, with or without colours and Unicode.
pub fn render(report: &Report, color: bool) -> String {
    let theme = if color {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_word_separator(textwrap::WordSeparator::Custom(quoted_whole))
        .with_word_splitter(textwrap::WordSplitter::Custom(unquoted_hyphens))
        .with_break_words(false)
        .render_report(&mut out, report)
        .expect("rendering to a String cannot fail");
    // A plain `file:line:col` line first, so editors and CI logs can jump to the place.
    match report.location() {
        Some(location) => format!("{location}: {}\n{out}", report.problem.message),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_in_backticks_is_never_wrapped() {
        let command = "systemd-run --user --scope -p Delegate=yes -- sandbox up --trust /home/someone/projects/a-rather-long-name/sandbox.toml -- true";
        let report = Report::new(
            Problem::error("sandbox::test", "a message long enough to be wrapped somewhere, as every message of this length is")
                .help(format!("run it in a scope of your user manager that does: `{command}`; or set `required = false` in [cgroup] to fall back to rlimits where they exist")),
            &SourceMap::default(),
        );
        let text = render(&report, false);
        assert!(
            text.lines()
                .any(|line| line.trim_start().starts_with(&format!("`{command}`"))),
            "{text}"
        );
        // Text outside backticks still wraps at the width.
        assert!(
            text.lines()
                .filter(|line| !line.contains(command))
                .all(|line| line.chars().count() <= 100),
            "{text}"
        );
    }
}
