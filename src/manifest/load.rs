//! Finding, reading and merging manifest files.

use crate::origin::Origin;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

use super::Manifest;
use super::de::NodeDeserializer;
use super::node::{self, IdGen, Node, NodeId, NodeKind};
use super::source::{FileId, SourceMap, Span};
use super::vars::Vars;
use crate::diagnostics::Problem;
use crate::hostpath;

/// The result of loading a manifest: everything valid in it, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub sources: SourceMap,
    pub manifest: Manifest,
    pub problems: Vec<Problem>,
    /// The main manifest file.
    pub path: PathBuf,
    /// The main manifest's folder (`${PROJECT_DIR}`).
    pub project_dir: PathBuf,
    /// Where each key of the merged manifest was set, by dotted path (`mount[1].target`).
    pub provenance: BTreeMap<String, Span>,
    /// Key paths whose values were dropped because of an error: later rules stay quiet about
    /// them (a bad `rootfs.path` is not also "no rootfs source").
    pub dropped: Vec<String>,
    /// Keys whose values were dropped because of an error, by the span of the table that held
    /// them: a rule that would complain the key is absent stays quiet (see [`Loaded::dropped_from`]).
    pub dropped_entries: Vec<(Span, String)>,
    /// The `extends` entries, resolved, with the span that named each.
    pub extends: Vec<(PathBuf, Span)>,
    /// A file could not be read or parsed, so the merged manifest is missing parts: rules about
    /// what is absent would only add noise.
    pub incomplete: bool,
}

impl Loaded {
    /// Where `origin` was written, if it was.
    pub fn span_of(&self, origin: &Origin) -> Option<Span> {
        self.provenance.get(&*origin.path()).copied()
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    /// True when `key` of the table written at `table` was dropped for an error (so its
    /// absence is no news).
    pub fn dropped_from(&self, table: Span, key: &str) -> bool {
        self.dropped_entries
            .iter()
            .any(|(span, k)| *span == table && k == key)
    }

    /// True when `key`, a key inside it or the table holding it was dropped for an error.
    pub fn was_dropped(&self, key: &str) -> bool {
        let within = |inner: &str, outer: &str| {
            inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        };
        self.dropped
            .iter()
            .any(|d| within(d, key) || within(key, d))
    }
}

/// The manifest for a folder: `sandbox.toml` there or in the nearest parent, as cargo finds
/// Cargo.toml.
pub fn discover(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("sandbox.toml"))
        .find(|candidate| candidate.is_file())
}

/// `sandbox.local.toml` beside `sandbox.toml` (`ci.local.toml` beside `ci.toml`): one person's
/// overrides, merged last and kept out of version control.
pub fn local_override_path(manifest: &Path) -> Option<PathBuf> {
    let stem = manifest.file_stem()?.to_str()?;
    if stem.ends_with(".local") {
        return None;
    }
    Some(manifest.with_file_name(format!("{stem}.local.toml")))
}

/// Load a manifest file with everything it extends and its local override.
pub fn load(path: &Path, vars: &Vars) -> Loaded {
    let path = absolute(path);
    let project_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let vars = Vars {
        project_dir: project_dir.display().to_string(),
        ..vars.clone()
    };
    let mut loader = Loader::new(vars);
    let mut tree = match read_manifest_file(&path) {
        Ok(bytes) => loader.load_file(&path, bytes, &mut Vec::new()),
        Err(error) => {
            loader.unreadable(&error);
            None
        }
    };
    // One person's overrides: when the file is there but cannot be read, the sandbox would not
    // be the one they asked for.
    if let Some(local) = local_override_path(&path)
        && std::fs::symlink_metadata(&local).is_ok()
        && let Some(tree) = tree.as_mut()
    {
        let over = match read_manifest_file(&local) {
            Ok(bytes) => loader.load_file(&local, bytes, &mut vec![path.clone()]),
            Err(error) => {
                loader.unreadable(&error);
                None
            }
        };
        if let Some(over) = over {
            node::merge(tree, over);
        }
    }
    loader.finish(tree, path, project_dir)
}

/// Load a manifest from text, as if it were the file `path` (used by tests and the fuzzer;
/// `extends` is resolved relative to `path`'s folder on the real file system).
pub fn load_str(path: &Path, text: &str, vars: &Vars) -> Loaded {
    let path = absolute(path);
    let project_dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let vars = Vars {
        project_dir: project_dir.display().to_string(),
        ..vars.clone()
    };
    let mut loader = Loader::new(vars);
    let tree = loader.load_text(&path, text.to_string(), &mut Vec::new());
    loader.finish(tree, path, project_dir)
}

/// The most a manifest file (the main one, one it extends, the local override) may hold: far
/// more than any manifest needs (ten thousand mounts take about 400 KiB).
const MAX_MANIFEST_FILE: u64 = 4 << 20;

/// Read a manifest file. Manifests come with `git clone`, so the paths, the main one included,
/// are a stranger's: `extends = ["/dev/zero"]` would read until memory runs out, a FIFO named
/// `sandbox.toml` would wait for a writer.
fn read_manifest_file(path: &Path) -> Result<Vec<u8>, crate::input::InputError> {
    crate::input::read_regular_file(path, MAX_MANIFEST_FILE)
}

/// toml_parser's message for a value nested past its recursion limit.
const TOO_DEEP: &str = "cannot recurse further; max recursion depth met";
/// toml_parser's message for an integer written with a leading zero (`umask = 022`).
const LEADING_ZERO: &str = "unexpected leading zero";

/// What is wrong with a file's TOML, at the error's place.
fn syntax_problem(text: &str, base: usize, error: &toml::de::Error) -> Problem {
    let (message, start) = (error.message(), error.span().map(|r| r.start));
    if message == TOO_DEEP
        && let Some(start) = start
    {
        let from = nesting_start(text, start).unwrap_or(start);
        Problem::error(
            "sandbox::manifest::syntax",
            "invalid TOML: this value nests arrays and tables deeper than the parser goes",
        )
        .at(
            Span::new(base + from, base + from + 1),
            "nested too deep from here",
        )
        .help("no manifest value nests more than a few levels; flatten this one")
    } else if message.starts_with(LEADING_ZERO)
        && let Some(start) = start
    {
        leading_zero(text, base, start)
    } else {
        Problem::error(
            "sandbox::manifest::syntax",
            format!("invalid TOML: {message}"),
        )
        .at_span(
            error
                .span()
                .map(|r| Span::new(base + r.start, base + r.end)),
        )
        .label("here")
        .help("see https://toml.io for the syntax")
    }
}

/// `umask = 022`: TOML has no leading zeros, and the reader most likely meant an octal mode.
fn leading_zero(text: &str, base: usize, start: usize) -> Problem {
    let written = text[start..]
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .map_or(&text[start..], |end| &text[start..start + end]);
    let digits = written.replace('_', "");
    let help = if digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        format!(
            "TOML integers cannot start with 0; for an octal mode write it as a string, \"{digits}\", or as 0o{digits}"
        )
    } else {
        format!(
            "TOML integers cannot start with 0: write {}",
            digits.trim_start_matches('0')
        )
    };
    Problem::error(
        "sandbox::manifest::syntax",
        format!("invalid TOML: the number {digits} starts with 0"),
    )
    .at(
        Span::new(base + start, base + start + written.len()),
        "leading zero",
    )
    .help(help)
}

/// Where the nesting that holds `offset` starts: the outermost `[` or `{` still open there,
/// by the parser's own tokens (a bracket in a string is not one). The parser reports a value
/// nested too deep at the bracket past its limit, far into the line; the reader needs to know
/// which value it is.
fn nesting_start(text: &str, offset: usize) -> Option<usize> {
    use toml_parser::parser::EventReceiver;
    use toml_parser::{ErrorSink, Span as TokenSpan};
    struct Opens {
        offset: usize,
        open: Vec<usize>,
        found: Option<usize>,
    }
    impl Opens {
        /// Whether to go on into the value: not past the bracket the parser stopped at, so
        /// this walk never recurses deeper than the parser did.
        fn open(&mut self, span: TokenSpan) -> bool {
            if span.start() == self.offset {
                self.found = self.found.or(self.open.first().copied());
                return false;
            }
            self.open.push(span.start());
            true
        }
    }
    impl EventReceiver for Opens {
        fn inline_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) -> bool {
            self.open(span)
        }
        fn array_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) -> bool {
            self.open(span)
        }
        fn inline_table_close(&mut self, _: TokenSpan, _: &mut dyn ErrorSink) {
            self.open.pop();
        }
        fn array_close(&mut self, _: TokenSpan, _: &mut dyn ErrorSink) {
            self.open.pop();
        }
    }
    let tokens = toml_parser::Source::new(text).lex().into_vec();
    let mut opens = Opens {
        offset,
        open: Vec::new(),
        found: None,
    };
    toml_parser::parser::parse_document(&tokens, &mut opens, &mut ());
    opens.found
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The most passes of deserialization one load makes to find errors one by one (see
/// [`Loader::finish`]); so also the most errors it reports from them.
const MAX_PASSES: usize = 100;

struct Loader {
    vars: Vars,
    sources: SourceMap,
    ids: IdGen,
    problems: Vec<Problem>,
    extends: Vec<(PathBuf, Span)>,
    incomplete: bool,
    /// Nodes whose value was reported as an error (a variable that does not expand, an integer
    /// that does not fit): dropped before deserializing, so no rule checks the unusable value.
    bad_nodes: Vec<NodeId>,
}

impl Loader {
    fn new(vars: Vars) -> Self {
        Loader {
            vars,
            sources: SourceMap::default(),
            ids: IdGen::default(),
            problems: Vec::new(),
            extends: Vec::new(),
            incomplete: false,
            bad_nodes: Vec::new(),
        }
    }

    /// A file that cannot be read at all: the merged manifest misses it.
    fn unreadable(&mut self, error: &crate::input::InputError) {
        self.problems.push(
            Problem::error("sandbox::manifest::unreadable", error.to_string())
                .help("check the path; `sandbox init` writes a starter sandbox.toml"),
        );
        self.incomplete = true;
    }

    /// [`Loader::load_text`] for a file's bytes; TOML is UTF-8, and bytes that are not are
    /// pointed at (the file is shown with U+FFFD in their place).
    fn load_file(&mut self, path: &Path, bytes: Vec<u8>, stack: &mut Vec<PathBuf>) -> Option<Node> {
        let error = match String::from_utf8(bytes) {
            Ok(text) => return self.load_text(path, text, stack),
            Err(error) => error,
        };
        let at = error.utf8_error().valid_up_to();
        let bad = error.as_bytes()[at];
        let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
        let file = self.sources.add(path.to_path_buf(), text);
        let start = self.sources.base(file) + at;
        self.problems.push(
            Problem::error(
                "sandbox::manifest::syntax",
                format!("invalid TOML: the byte 0x{bad:02x} is not UTF-8, and a TOML file is"),
            )
            .at(Span::new(start, start + '\u{fffd}'.len_utf8()), "not UTF-8")
            .help(
                "save the file as UTF-8 (iconv -f LATIN1 -t UTF-8, or your editor's encoding menu)",
            ),
        );
        self.incomplete = true;
        None
    }

    /// Parse one file, expand its variables and merge in what it extends. `stack` holds the
    /// files being loaded above this one, for cycle detection.
    fn load_text(&mut self, path: &Path, text: String, stack: &mut Vec<PathBuf>) -> Option<Node> {
        let file = self.sources.add(path.to_path_buf(), text);
        let mut tree = self.parse(file)?;
        self.expand_variables(&mut tree);
        let Some(extends) = tree.take("extends") else {
            return Some(tree);
        };
        Some(self.extend(path, tree, &extends.value, stack))
    }

    /// The tree of a file's TOML; `None` when it is not valid TOML (each error is reported).
    fn parse(&mut self, file: FileId) -> Option<Node> {
        let base = self.sources.base(file);
        let text = self.sources.file(file).text.clone();
        let (table, syntax_errors) = DeTable::parse_recoverable(&text);
        let syntax_failed = !syntax_errors.is_empty();
        let syntax_spans: Vec<std::ops::Range<usize>> =
            syntax_errors.iter().filter_map(|e| e.span()).collect();
        for error in &syntax_errors {
            self.problems.push(syntax_problem(&text, base, error));
        }
        let mut convert_errors = Vec::new();
        let tree = node::from_toml(table, base, &mut self.ids, &mut convert_errors);
        for error in convert_errors {
            self.bad_nodes.push(error.node);
            // What the parser made of text it already reported is no value to judge.
            let (start, end) = (error.span.start - base, error.span.end - base);
            if syntax_spans
                .iter()
                .any(|s| s.start <= end && start <= s.end)
            {
                continue;
            }
            self.problems.push(
                Problem::error("sandbox::manifest::invalid-value", error.message)
                    .at(error.span, "too large")
                    .help("use a smaller number"),
            );
        }
        if syntax_failed {
            // What the parser recovered is a guess; checking it would only add noise.
            self.incomplete = true;
            return None;
        }
        Some(tree)
    }

    /// Expand the variables of every string; one that cannot be is reported and its node
    /// dropped.
    fn expand_variables(&mut self, tree: &mut Node) {
        let mut var_errors = Vec::new();
        self.vars.expand_tree(tree, &mut var_errors);
        for (id, span, error) in var_errors {
            self.bad_nodes.push(id);
            self.problems.push(
                Problem::error("sandbox::manifest::undefined-variable", error.to_string())
                    .at(span, "in this string")
                    .help(error.help()),
            );
        }
    }

    /// `tree` merged over the files its `extends` names, in order, each loaded in turn.
    fn extend(
        &mut self,
        path: &Path,
        tree: Node,
        extends: &Node,
        stack: &mut Vec<PathBuf>,
    ) -> Node {
        let mut merged: Option<Node> = None;
        stack.push(path.to_path_buf());
        for (target, span) in self.extends_entries(extends) {
            // Judged (`extends` from outside the project), read and shown where it leads.
            let resolved = hostpath::resolve(&absolute(
                &path.parent().unwrap_or(Path::new("/")).join(&target),
            ));
            if stack.iter().any(|p| hostpath::resolve(p) == resolved) {
                let chain: Vec<String> = stack
                    .iter()
                    .chain([&resolved])
                    .map(|p| p.display().to_string())
                    .collect();
                self.problems.push(
                    Problem::error(
                        "sandbox::extends::cycle",
                        format!("`extends` makes a cycle: {}", chain.join(" -> ")),
                    )
                    .at(span, "extends a file that extends this one")
                    .help("remove one of the `extends` entries in the cycle"),
                );
                self.incomplete = true;
                continue;
            }
            let bytes = match crate::input::read_resolved_file(&resolved, MAX_MANIFEST_FILE) {
                Ok(bytes) => bytes,
                Err(error) => {
                    self.problems.push(
                        Problem::error("sandbox::extends::missing", error.to_string())
                            .at(span, "this file cannot be read")
                            .help(
                                "paths in `extends` are relative to the manifest that names them",
                            ),
                    );
                    self.incomplete = true;
                    continue;
                }
            };
            self.extends.push((resolved.clone(), span));
            if let Some(parent) = self.load_file(&resolved, bytes, stack) {
                match merged.as_mut() {
                    Some(merged) => node::merge(merged, parent),
                    None => merged = Some(parent),
                }
            }
        }
        stack.pop();
        match merged {
            Some(mut merged) => {
                node::merge(&mut merged, tree);
                merged
            }
            None => tree,
        }
    }

    fn extends_entries(&mut self, value: &Node) -> Vec<(String, Span)> {
        let bad_type = |node: &Node| {
            Problem::error(
                "sandbox::manifest::wrong-type",
                format!("expected a path, found {}", node.kind.type_name()),
            )
            .at(node.span, "not a path")
            .help("write extends = [\"../base.toml\"]")
        };
        match &value.kind {
            _ if self.bad_nodes.contains(&value.id) => Vec::new(),
            NodeKind::String(s) => vec![(s.clone(), value.span)],
            NodeKind::Array(items) => items
                .iter()
                .filter(|item| !self.bad_nodes.contains(&item.id))
                .filter_map(|item| match &item.kind {
                    NodeKind::String(s) => Some((s.clone(), item.span)),
                    _ => {
                        self.problems.push(bad_type(item));
                        None
                    }
                })
                .collect(),
            _ => {
                self.problems.push(bad_type(value));
                Vec::new()
            }
        }
    }

    fn finish(mut self, tree: Option<Node>, path: PathBuf, project_dir: PathBuf) -> Loaded {
        let mut dropped = Vec::new();
        // Table entries dropped for an error, by (table, key): a required key that is missing
        // only because of that is not reported a second time.
        let mut entries: Vec<(NodeId, Span, String)> = Vec::new();
        let (manifest, provenance) = match tree {
            Some(mut tree) => {
                let bad: HashSet<NodeId> =
                    std::mem::take(&mut self.bad_nodes).into_iter().collect();
                drop_nodes(&mut tree, &bad, &mut dropped, &mut entries);
                // Each error costs one more pass over the whole tree: past MAX_PASSES, an error
                // drops its whole top-level entry (all of `mount`, say) unreported, so a file of
                // ten thousand bad entries costs a bounded number of passes.
                let mut passes = 0;
                // Where the first unreported error is.
                let mut unreported: Option<Option<Span>> = None;
                let manifest = loop {
                    passes += 1;
                    match Manifest::deserialize(NodeDeserializer::new(&tree)) {
                        Ok(manifest) => break manifest,
                        Err(error) => {
                            // A key missing because its value was dropped for an error already
                            // reported: the table is dropped too, without a second report.
                            let consequence = matches!(
                                (error.node, error.missing),
                                (Some(id), Some(missing))
                                    if entries.iter().any(|(t, _, k)| *t == id && k == missing)
                            );
                            let mut node = error.node;
                            if passes > MAX_PASSES {
                                node = node.map(|id| top_level_of(&tree, id));
                                if !consequence {
                                    unreported.get_or_insert(error.span);
                                }
                            } else if !consequence {
                                let mut problem = Problem::error(error.code, error.message.clone())
                                    .at_span(error.span);
                                problem.label = Some(label_for(error.code).into());
                                problem.help = error.help.clone();
                                self.problems.push(problem);
                            }
                            let node = node.map(|id| HashSet::from([id]));
                            let before = (dropped.len(), entries.len());
                            if !node.is_some_and(|id| {
                                drop_nodes(&mut tree, &id, &mut dropped, &mut entries) > 0
                            }) {
                                break Manifest::default();
                            }
                            // `comand` meant `command`: what a missing `command` would cause is
                            // this mistake's consequence, not another one.
                            if let Some(meant) = error.meant
                                && let Some((table, span, key)) = entries.get(before.1).cloned()
                                && let Some(path) = dropped.get(before.0).cloned()
                            {
                                let parent = path.strip_suffix(key.as_str()).unwrap_or_default();
                                dropped.push(format!("{parent}{meant}"));
                                entries.push((table, span, meant.to_string()));
                            }
                        }
                    }
                };
                if let Some(span) = unreported {
                    self.incomplete = true;
                    self.problems.push(
                        Problem::error(
                            "sandbox::manifest::too-many-errors",
                            "more errors follow; only the first ones are shown",
                        )
                        .at_span(span)
                        .label("the first of them")
                        .help("fix the errors above and check again"),
                    );
                }
                let mut provenance = BTreeMap::new();
                tree.walk(&mut String::new(), &mut |key, node, key_span| {
                    if !key.is_empty() {
                        provenance.insert(
                            key.to_string(),
                            key_span.filter(|_| !is_table(node)).unwrap_or(node.span),
                        );
                    }
                });
                (manifest, provenance)
            }
            None => (Manifest::default(), BTreeMap::new()),
        };
        let dropped_entries = entries
            .into_iter()
            .map(|(_, span, key)| (span, key))
            .collect();
        Loaded {
            sources: self.sources,
            manifest,
            problems: self.problems,
            path,
            project_dir,
            provenance,
            dropped,
            dropped_entries,
            extends: self.extends,
            incomplete: self.incomplete,
        }
    }
}

/// Remove the nodes `ids` from the tree in one walk, noting each removed key path in `dropped`
/// and, for a table entry, its (table id, table span, key) in `entries`. Returns how many were
/// removed: none when a later file replaced them.
///
/// A bad element of a plain array drops the whole array: a shorter `command` or `dns` would be
/// a different value, not a missing one. Tables in an array (`[[mount]]`) are dropped alone.
fn drop_nodes(
    tree: &mut Node,
    ids: &HashSet<NodeId>,
    dropped: &mut Vec<String>,
    entries: &mut Vec<(NodeId, Span, String)>,
) -> usize {
    fn poisoned(node: &Node, ids: &HashSet<NodeId>) -> bool {
        ids.contains(&node.id)
            || matches!(&node.kind, NodeKind::Array(items)
                if items.iter().any(|item| !is_table(item) && poisoned(item, ids)))
    }
    fn walk(
        node: &mut Node,
        path: &mut String,
        ids: &HashSet<NodeId>,
        dropped: &mut Vec<String>,
        entries: &mut Vec<(NodeId, Span, String)>,
    ) -> usize {
        let (id, span, len) = (node.id, node.span, path.len());
        let mut removed = 0;
        match &mut node.kind {
            NodeKind::Table(table) => table.retain_mut(|entry| {
                if len > 0 {
                    path.push('.');
                }
                path.push_str(&entry.key);
                let keep = !poisoned(&entry.value, ids);
                if keep {
                    removed += walk(&mut entry.value, path, ids, dropped, entries);
                } else {
                    dropped.push(path.clone());
                    entries.push((id, span, entry.key.clone()));
                    removed += 1;
                }
                path.truncate(len);
                keep
            }),
            NodeKind::Array(items) => {
                let mut index = 0;
                items.retain_mut(|item| {
                    path.push_str(&format!("[{index}]"));
                    index += 1;
                    let keep = !(is_table(item) && ids.contains(&item.id));
                    if keep {
                        removed += walk(item, path, ids, dropped, entries);
                    } else {
                        dropped.push(path.clone());
                        removed += 1;
                    }
                    path.truncate(len);
                    keep
                });
            }
            _ => {}
        }
        removed
    }
    walk(tree, &mut String::new(), ids, dropped, entries)
}

/// The entry of the document table that holds node `id`.
fn top_level_of(tree: &Node, id: NodeId) -> NodeId {
    let mut id = id;
    while let Some(parent) = tree.parent_of(id)
        && parent.id != tree.id
    {
        id = parent.id;
    }
    id
}

fn is_table(node: &Node) -> bool {
    matches!(node.kind, NodeKind::Table(_))
}

fn label_for(code: &str) -> &'static str {
    match code {
        "sandbox::manifest::unknown-key" => "unknown key",
        "sandbox::manifest::missing-key" => "in this table",
        "sandbox::manifest::wrong-type" => "wrong type",
        "sandbox::manifest::unknown-value" => "unknown value",
        _ => "invalid value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            home: Some("/home/ann".into()),
            user: Some("ann".into()),
            uid: 1000,
            gid: 1000,
            ..Vars::default()
        }
    }

    fn load_text(text: &str) -> Loaded {
        load_str(Path::new("/project/sandbox.toml"), text, &vars())
    }

    fn codes(loaded: &Loaded) -> Vec<&str> {
        loaded.problems.iter().map(|p| p.code).collect()
    }

    #[test]
    fn a_valid_manifest_has_no_problems() {
        let loaded =
            load_text("version = 1\n[rootfs]\nhost = true\n[process]\ncommand = ['/bin/true']\n");
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        assert!(loaded.manifest.rootfs.unwrap().value.host.unwrap().value);
    }

    #[test]
    fn every_error_is_reported_and_valid_parts_survive() {
        let loaded = load_text(
            "[rootfs]\nhost = true\nreadonly = 'yes'\n[cgroup]\nmemory = '12 MB'\npids = -1\ncpus = 1.5\n[uts]\nhostnme = 'x'\n",
        );
        let mut found = codes(&loaded);
        found.sort();
        assert_eq!(
            found,
            [
                "sandbox::manifest::invalid-value",
                "sandbox::manifest::invalid-value",
                "sandbox::manifest::unknown-key",
                "sandbox::manifest::wrong-type"
            ],
            "{:#?}",
            loaded.problems
        );
        let cgroup = loaded.manifest.cgroup.as_ref().unwrap();
        assert_eq!(cgroup.cpus.as_ref().unwrap().value, 1.5);
        assert!(cgroup.memory.is_none());
        assert!(loaded.manifest.rootfs.as_ref().unwrap().host.is_some());
        let unknown = loaded
            .problems
            .iter()
            .find(|p| p.code.ends_with("unknown-key"))
            .unwrap();
        assert_eq!(unknown.help.as_deref(), Some("did you mean `hostname`?"));
        assert!(loaded.was_dropped("cgroup.memory"));
        assert!(loaded.was_dropped("cgroup"));
        assert!(!loaded.was_dropped("rootfs.host"));
    }

    #[test]
    fn a_missing_required_key_drops_only_that_entry() {
        let loaded =
            load_text("[[mount]]\ntype = 'tmpfs'\n[[mount]]\ntype = 'tmpfs'\ntarget = '/tmp'\n");
        assert_eq!(codes(&loaded), ["sandbox::manifest::missing-key"]);
        assert_eq!(loaded.manifest.mount.unwrap().len(), 1);
    }

    #[test]
    fn spans_point_at_the_offending_value() {
        let text = "[cgroup]\nmemory = '12 MB'\n";
        let loaded = load_text(text);
        let span = loaded.problems[0].span.unwrap();
        let location = loaded.sources.locate(span).unwrap();
        assert_eq!((location.line, location.column), (2, 10));
    }

    #[test]
    fn a_value_reported_once_is_not_checked_again() {
        // An undefined variable and a too-large integer drop their value: `cwd` is not also
        // "relative", `pids` is not also 0, and a required key whose value was dropped is not
        // also "missing".
        let loaded = load_text(
            "[process]\ncwd = '${NOPE}'\n[cgroup]\npids = 99999999999999999999\n[[mount]]\ntype = 'tmpfs'\ntarget = '${NOPE}/x'\n[[uid_map]]\ninside = 0\noutside = -1\ncount = 1\n[[gid_map]]\ninside = 0\ncount = 1\n",
        );
        let mut found = codes(&loaded);
        found.sort();
        assert_eq!(
            found,
            [
                "sandbox::manifest::invalid-value",
                "sandbox::manifest::invalid-value",
                "sandbox::manifest::missing-key",
                "sandbox::manifest::undefined-variable",
                "sandbox::manifest::undefined-variable",
            ],
            "{:#?}",
            loaded.problems
        );
        let missing = loaded
            .problems
            .iter()
            .find(|p| p.code.ends_with("missing-key"))
            .unwrap();
        assert_eq!(missing.message, "missing key `outside`");
        // The [[gid_map]] table that really lacks `outside`, not the [[uid_map]] whose
        // `outside` was dropped.
        assert_eq!(
            loaded.sources.locate(missing.span.unwrap()).unwrap().line,
            12
        );
        let manifest = &loaded.manifest;
        assert!(manifest.process.as_ref().unwrap().cwd.is_none());
        assert!(manifest.cgroup.as_ref().unwrap().pids.is_none());
        assert!(manifest.mount.as_ref().unwrap().is_empty());
        assert!(loaded.was_dropped("process.cwd"));
        assert!(loaded.was_dropped("cgroup.pids"));
        assert!(loaded.was_dropped("mount"));
    }

    #[test]
    fn a_bad_element_drops_its_whole_array_and_is_remembered() {
        let loaded = load_text(
            "[process]\ncommand = ['${NOPE}', '-c']\n[[mount]]\ntype = 'bind'\nsource = 5\ntarget = '/x'\n",
        );
        assert_eq!(
            codes(&loaded),
            [
                "sandbox::manifest::undefined-variable",
                "sandbox::manifest::wrong-type"
            ]
        );
        // Not a shorter command: no command at all, and known to be dropped.
        assert!(loaded.manifest.process.as_ref().unwrap().command.is_none());
        assert!(loaded.was_dropped("process.command"));
        let mounts = loaded.manifest.mount.as_ref().unwrap();
        assert!(mounts[0].source.is_none());
        assert!(loaded.dropped_from(mounts[0].span, "source"));
        assert!(!loaded.dropped_from(mounts[0].span, "target"));
    }

    /// Ten thousand bad entries: the first errors are reported, the rest marked by one
    /// problem, and each pass of the loader is one deserialization, so a bounded number of
    /// passes is a bounded multiple of one (linear) pass.
    #[test]
    fn errors_past_the_cap_cost_a_bounded_number_of_passes() {
        let mut text = String::from("[rootfs]\nhost = true\n[process]\ncommand = ['/bin/true']\n");
        for i in 0..10_000 {
            text.push_str(&format!(
                "[[mount]]\ntype = 'tmpfs'\ntarget = '/m{i}'\nsise = '1M'\n"
            ));
        }
        let loaded = load_text(&text);
        let found = codes(&loaded);
        assert_eq!(found.len(), MAX_PASSES + 1, "{found:?}");
        assert!(
            found[..MAX_PASSES]
                .iter()
                .all(|c| *c == "sandbox::manifest::unknown-key")
        );
        assert_eq!(found[MAX_PASSES], "sandbox::manifest::too-many-errors");
        assert!(loaded.incomplete && loaded.was_dropped("mount"));
        // What was not in error survives.
        assert!(loaded.manifest.process.is_some());
    }

    /// A mode written as TOML's octal integer is the mode it spells; a decimal one is refused
    /// with the two ways to write it.
    #[test]
    fn modes_are_octal_strings_or_octal_integers() {
        let loaded = load_text(
            "[process]\numask = 0o027\n[[mount]]\ntype = 'dir'\ntarget = '/d'\nmode = 0o1777\n",
        );
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let process = loaded.manifest.process.as_ref().unwrap();
        assert_eq!(process.umask.as_ref().unwrap().value.0, 0o027);
        let mount = &loaded.manifest.mount.as_ref().unwrap()[0];
        assert_eq!(mount.mode.as_ref().unwrap().value.0, 0o1777);
        let decimal = load_text("[process]\numask = 22\n");
        assert_eq!(codes(&decimal), ["sandbox::manifest::invalid-value"]);
        let help = decimal.problems[0].help.as_deref().unwrap();
        assert!(
            help.contains("\"0022\"") && help.contains("0o0022"),
            "{help}"
        );
        // Any other integer key takes an octal integer as the number it is.
        let loaded = load_text("[process]\nuser = 0o10\n");
        let process = loaded.manifest.process.as_ref().unwrap();
        assert_eq!(process.user.as_ref().unwrap().value, 8);
    }

    #[test]
    fn an_unreadable_manifest_is_one_problem() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(&dir.path().join("sandbox.toml"), &vars());
        assert_eq!(codes(&loaded), ["sandbox::manifest::unreadable"]);
        assert!(loaded.incomplete);
    }

    #[test]
    fn syntax_errors_are_problems_not_panics() {
        let loaded = load_text("[rootfs\nhost = \n");
        assert!(
            codes(&loaded)
                .iter()
                .all(|c| *c == "sandbox::manifest::syntax"),
            "{:#?}",
            loaded.problems
        );
        assert!(loaded.has_errors());
    }

    #[test]
    fn variables_expand_and_undefined_ones_are_reported() {
        let loaded = load_text("[process]\ncwd = '${PROJECT_DIR}/x'\ncommand = ['${NOPE}']\n");
        let process = loaded.manifest.process.as_ref().unwrap();
        assert_eq!(process.cwd.as_ref().unwrap().value, "/project/x");
        assert_eq!(codes(&loaded), ["sandbox::manifest::undefined-variable"]);
    }

    #[test]
    fn extends_merges_and_detects_cycles_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.toml"),
            "[rootfs]\nhost = true\n[process]\ncommand = ['a']\ncwd = '/base'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("a.toml"), "extends = ['b.toml']\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "extends = ['a.toml']\n").unwrap();
        let main = dir.path().join("sandbox.toml");
        std::fs::write(&main, "extends = ['base.toml']\n[process]\ncwd = '/main'\n").unwrap();
        let loaded = load(&main, &vars());
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let process = loaded.manifest.process.as_ref().unwrap();
        assert_eq!(process.cwd.as_ref().unwrap().value, "/main");
        assert_eq!(process.command.as_ref().unwrap().value[0].value, "a");
        let cwd_at = loaded
            .sources
            .locate(loaded.provenance["process.cwd"])
            .unwrap();
        assert!(cwd_at.file.ends_with("sandbox.toml"), "{cwd_at}");
        let command_at = loaded
            .sources
            .locate(loaded.provenance["process.command"])
            .unwrap();
        assert!(command_at.file.ends_with("base.toml"), "{command_at}");

        let cyclic = load(&dir.path().join("a.toml"), &vars());
        assert_eq!(codes(&cyclic), ["sandbox::extends::cycle"]);
        std::fs::write(&main, "extends = ['nope.toml']\n").unwrap();
        assert_eq!(codes(&load(&main, &vars())), ["sandbox::extends::missing"]);
    }

    #[test]
    fn extends_reads_only_regular_files_of_reasonable_size() {
        // A cloned manifest names the files: a device would be read until memory runs out
        // (/dev/zero) or wait for the terminal (/dev/stdin, /dev/tty); no device is a manifest.
        for target in ["/dev/zero", "/dev/null", "/"] {
            let loaded = load_text(&format!("extends = ['{target}']\n"));
            assert_eq!(codes(&loaded), ["sandbox::extends::missing"], "{target}");
            assert!(
                loaded.problems[0].message.contains("not a regular file"),
                "{}",
                loaded.problems[0].message
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let mut text = "# padding\n".repeat((MAX_MANIFEST_FILE / 10) as usize + 1);
        std::fs::write(&big, &text).unwrap();
        let main = dir.path().join("sandbox.toml");
        std::fs::write(&main, "extends = ['big.toml']\n").unwrap();
        let loaded = load(&main, &vars());
        assert_eq!(codes(&loaded), ["sandbox::extends::missing"]);
        assert!(loaded.problems[0].message.contains("larger than 4096 KiB"));
        text.truncate(MAX_MANIFEST_FILE as usize - 100);
        std::fs::write(&big, &text).unwrap();
        assert!(load(&main, &vars()).problems.is_empty());
    }

    #[test]
    fn the_local_override_is_merged_last() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("sandbox.toml");
        std::fs::write(&main, "[process]\ncwd = '/main'\nuser = 1\n").unwrap();
        std::fs::write(
            dir.path().join("sandbox.local.toml"),
            "[process]\ncwd = '/mine'\n",
        )
        .unwrap();
        let loaded = load(&main, &vars());
        let process = loaded.manifest.process.unwrap().value;
        assert_eq!(process.cwd.unwrap().value, "/mine");
        assert_eq!(process.user.unwrap().value, 1);
        assert_eq!(
            local_override_path(Path::new("/x/ci.toml")).unwrap(),
            Path::new("/x/ci.local.toml")
        );
        assert_eq!(local_override_path(Path::new("/x/ci.local.toml")), None);
    }

    #[test]
    fn discovery_walks_up_to_the_nearest_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sandbox.toml"), "").unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(discover(&deep).unwrap(), dir.path().join("sandbox.toml"));
    }
}
