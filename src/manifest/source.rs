//! Source files and spans.
//!
//! A manifest can be assembled from several files (`extends`, `sandbox.local.toml`), and a
//! diagnostic or a provenance note must still point at the right file. Every loaded file gets a
//! disjoint range of "global" byte offsets, like rustc's source map, so a single `Span` names both
//! the file and the bytes inside it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer};

/// A byte range in the global offset space of a [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// One file that took part in a manifest.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as it was opened (absolute).
    pub path: PathBuf,
    /// The path as shown to people: relative to the current folder when possible.
    pub display: String,
    pub text: Arc<String>,
    /// The text as a diagnostic shows it: control characters made visible, offsets kept; made
    /// when a diagnostic first shows the file (see [`SourceFile::shown`]), and `None` when it
    /// is the text itself.
    shown: Arc<std::sync::OnceLock<Option<String>>>,
    base: usize,
    /// Where each line starts, and the number of characters before every [`CHAR_STEP`]th
    /// byte: a lookup is a binary search and a short count, not a count from the top of the
    /// file (which made a location per key quadratic in the size of a manifest, even one
    /// written on a single line).
    index: Arc<LineIndex>,
}

/// See [`SourceFile::index`].
#[derive(Debug)]
struct LineIndex {
    line_starts: Vec<usize>,
    /// (byte offset, characters before it), at char boundaries about [`CHAR_STEP`] apart.
    chars: Vec<(usize, usize)>,
}

const CHAR_STEP: usize = 1024;

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut chars = vec![(0, 0)];
        let (mut offset, mut count) = (0, 0);
        while offset + CHAR_STEP < text.len() {
            let mut next = offset + CHAR_STEP;
            while !text.is_char_boundary(next) {
                next += 1;
            }
            count += text[offset..next].chars().count();
            offset = next;
            chars.push((offset, count));
        }
        LineIndex { line_starts, chars }
    }

    /// The number of characters before byte `offset` (a char boundary).
    fn chars_before(&self, text: &str, offset: usize) -> usize {
        let (at, count) = self.chars[self.chars.partition_point(|&(at, _)| at <= offset) - 1];
        count + text[at..offset].chars().count()
    }
}

impl SourceFile {
    /// The text as a diagnostic shows it. Scanning for characters to hide took a launch's
    /// load about 3% of its instructions, for diagnostics most launches never show.
    fn shown(&self) -> &str {
        let shown = self
            .shown
            .get_or_init(|| match crate::escape::same_width(&self.text) {
                std::borrow::Cow::Borrowed(_) => None,
                std::borrow::Cow::Owned(shown) => Some(shown),
            });
        shown.as_deref().unwrap_or(&self.text)
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// 1-based line and column of a byte offset local to this file.
    pub fn line_col(&self, local: usize) -> (usize, usize) {
        let mut local = local.min(self.text.len());
        while !self.text.is_char_boundary(local) {
            local -= 1;
        }
        let starts = &self.index.line_starts;
        let line = starts.partition_point(|&start| start <= local);
        let line_start = starts[line - 1];
        let column = self.index.chars_before(&self.text, local)
            - self.index.chars_before(&self.text, line_start)
            + 1;
        (line, column)
    }
}

/// Where something was written: a file, a line and a column, plus the local byte range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub offset: usize,
    #[serde(skip)]
    pub len: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// All files of one load, each owning a disjoint range of global offsets.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    next_base: usize,
}

/// Index of a file in a [`SourceMap`].
pub type FileId = usize;

impl SourceMap {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        let display = display_path(&path);
        let base = self.next_base;
        // One byte of gap so that an empty span at the end of a file still belongs to it.
        self.next_base += text.len() + 1;
        let index = Arc::new(LineIndex::new(&text));
        self.files.push(SourceFile {
            path,
            display,
            text: Arc::new(text),
            shown: Arc::default(),
            base,
            index,
        });
        self.files.len() - 1
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    pub fn base(&self, id: FileId) -> usize {
        self.files[id].base
    }

    /// The file a span belongs to, and the span made local to that file.
    pub fn resolve(&self, span: Span) -> Option<(&SourceFile, usize, usize)> {
        let file = self.files.iter().rev().find(|f| f.base <= span.start)?;
        let start = span.start - file.base;
        let end = span
            .end
            .saturating_sub(file.base)
            .clamp(start, file.text.len());
        Some((file, start.min(file.text.len()), end))
    }

    pub fn locate(&self, span: Span) -> Option<Location> {
        let (file, start, end) = self.resolve(span)?;
        let (line, column) = file.line_col(start);
        Some(Location {
            file: file.display.clone(),
            line,
            column,
            offset: start,
            len: end - start,
        })
    }

    /// The folder of the file a span was written in: relative paths are relative to it.
    pub fn dir_of(&self, span: Span) -> Option<&Path> {
        self.resolve(span).map(|(file, _, _)| file.dir())
    }
}

fn display_path(path: &Path) -> String {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    crate::escape::escaped(&shown).to_string()
}

/// Diagnostics read the file through this, so miette sees only the lines around a label
/// (its own reading counts lines from the top of the file, once per diagnostic), and shows the
/// text with control characters made visible.
impl miette::SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let starts = &self.index.line_starts;
        let line_of = |offset: usize| starts.partition_point(|&start| start <= offset) - 1;
        let first = line_of(span.offset()).saturating_sub(context_lines_before);
        let last = line_of(span.offset() + span.len()) + context_lines_after + 1;
        let window_start = starts[first];
        let shown = self.shown();
        let window_end = starts.get(last + 1).copied().unwrap_or(shown.len());
        let window = &shown.as_bytes()[window_start..window_end];
        let local = miette::SourceSpan::new(
            span.offset().saturating_sub(window_start).into(),
            span.len(),
        );
        let contents = <[u8] as miette::SourceCode>::read_span(
            window,
            &local,
            context_lines_before,
            context_lines_after,
        )?;
        let data = contents.data();
        Ok(Box::new(
            miette::MietteSpanContents::new_named(
                self.display.clone(),
                data,
                miette::SourceSpan::new(
                    (contents.span().offset() + window_start).into(),
                    contents.span().len(),
                ),
                contents.line() + first,
                contents.column(),
                contents.line_count() + first,
            )
            .with_language("toml"),
        ))
    }
}

/// A value with the span it was read from.
///
/// Our own type rather than `toml::Spanned`: it carries global spans (so the file is known),
/// derives a transparent JSON Schema, and compares by value only.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }

    pub fn get(&self) -> &T {
        &self.value
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned {
            value: f(self.value),
            span: self.span,
        }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Spanned<T> {}
impl<T: PartialOrd> PartialOrd for Spanned<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for Spanned<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl<T: std::hash::Hash> std::hash::Hash for Spanned<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}
impl<T: std::borrow::Borrow<str>> std::borrow::Borrow<str> for Spanned<T> {
    fn borrow(&self) -> &str {
        self.value.borrow()
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// The struct name and fields by which [`Spanned`] asks a deserializer for its span. Only the
/// manifest deserializer (`manifest::de`) answers; any other deserializer sees an ordinary
/// struct and fails, which is right: spans only exist for manifest text.
pub(crate) const SPANNED_NAME: &str = "$sandbox::Spanned";
pub(crate) const SPANNED_START: &str = "$start";
pub(crate) const SPANNED_END: &str = "$end";
pub(crate) const SPANNED_VALUE: &str = "$value";
pub(crate) const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

enum SpannedField {
    Start,
    End,
    Value,
}

impl<'de> Deserialize<'de> for SpannedField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = SpannedField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a span field")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<SpannedField, E> {
                match key {
                    SPANNED_START => Ok(SpannedField::Start),
                    SPANNED_END => Ok(SpannedField::End),
                    SPANNED_VALUE => Ok(SpannedField::Value),
                    other => Err(de::Error::unknown_field(other, SPANNED_FIELDS)),
                }
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpannedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a spanned value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut start = None;
                let mut end = None;
                let mut value = None;
                while let Some(key) = map.next_key::<SpannedField>()? {
                    match key {
                        SpannedField::Start => start = Some(map.next_value()?),
                        SpannedField::End => end = Some(map.next_value()?),
                        SpannedField::Value => value = Some(map.next_value()?),
                    }
                }
                match (start, end, value) {
                    (Some(start), Some(end), Some(value)) => Ok(Spanned {
                        value,
                        span: Span { start, end },
                    }),
                    _ => Err(de::Error::custom(
                        "a spanned value needs start, end and value",
                    )),
                }
            }
        }
        deserializer.deserialize_struct(
            SPANNED_NAME,
            SPANNED_FIELDS,
            SpannedVisitor(std::marker::PhantomData),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_resolve_to_their_file_and_line() {
        let mut map = SourceMap::default();
        let a = map.add("/p/a.toml".into(), "x = 1\ny = 2\n".into());
        let b = map.add("/p/b.toml".into(), "z = 3\n".into());
        let span_y = Span::new(map.base(a) + 6, map.base(a) + 7);
        let loc = map.locate(span_y).unwrap();
        assert_eq!((loc.line, loc.column), (2, 1));
        assert!(loc.file.ends_with("a.toml"));
        let span_z = Span::new(map.base(b) + 4, map.base(b) + 5);
        let loc = map.locate(span_z).unwrap();
        assert!(loc.file.ends_with("b.toml"));
        assert_eq!((loc.line, loc.column, loc.offset, loc.len), (1, 5, 4, 1));
    }

    #[test]
    fn lines_and_columns_count_characters_across_index_steps() {
        let line = format!("{}é{}\n", "a".repeat(CHAR_STEP), "b".repeat(3 * CHAR_STEP));
        let text = format!("x = 1\n{line}{line}");
        let mut map = SourceMap::default();
        let id = map.add("/p/a.toml".into(), text.clone());
        let file = map.file(id);
        for local in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            let before = &text[..local];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[start..].chars().count() + 1;
            assert_eq!(file.line_col(local), (line, column), "at {local}");
        }
    }

    #[test]
    fn an_empty_span_at_the_end_of_a_file_stays_in_that_file() {
        let mut map = SourceMap::default();
        let a = map.add("/p/a.toml".into(), "ab".into());
        map.add("/p/b.toml".into(), "cd".into());
        let end = Span::new(map.base(a) + 2, map.base(a) + 2);
        assert!(map.locate(end).unwrap().file.ends_with("a.toml"));
    }

    #[test]
    fn a_diagnostic_reads_terminal_controls_as_question_marks_at_the_same_offsets() {
        let mut map = SourceMap::default();
        let text = "x = 1\nname = \"\u{1b}[2J\"\n";
        let id = map.add("/p/a.toml".into(), text.into());
        let file = map.file(id);
        let span = miette::SourceSpan::new(6.into(), text.len() - 7);
        let read = miette::SourceCode::read_span(file, &span, 0, 0).unwrap();
        assert_eq!(std::str::from_utf8(read.data()).unwrap(), "name = \"?[2J\"");
        assert_eq!(*file.text, text, "the text itself is kept");
    }
}
