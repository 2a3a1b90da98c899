//! The manifest as a tree of spanned nodes.
//!
//! Files are parsed by `toml` into its spanned `DeTable`, turned into this tree (global spans,
//! one id per node), merged along `extends`, variable-expanded, and only then deserialized into
//! the typed [`Manifest`](super::Manifest). Keeping our own tree lets the loader merge files
//! while every value still knows the file and line it came from, and lets the deserializer drop
//! a bad node and try again, so that every error of a file is reported, not only the first.

use toml::de::{DeTable, DeValue};

use super::source::Span;

/// Identity of a node, unique within one load.
pub type NodeId = u32;

#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    String(String),
    /// `octal`: written as `0o...`, which a file mode reads as the mode it spells.
    Integer {
        value: i64,
        octal: bool,
    },
    Float(f64),
    Boolean(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl NodeKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::String(_) => "a string",
            NodeKind::Integer { .. } => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Boolean(_) => "a boolean",
            NodeKind::Datetime(_) => "a date-time",
            NodeKind::Array(_) => "an array",
            NodeKind::Table(_) => "a table",
        }
    }
}

fn all_tables(items: &[Node]) -> bool {
    items.iter().all(|n| matches!(n.kind, NodeKind::Table(_)))
}

/// Hands out node ids for one load.
#[derive(Debug, Default)]
pub struct IdGen(NodeId);

impl IdGen {
    fn next(&mut self) -> NodeId {
        self.0 += 1;
        self.0
    }
}

/// A value the parser accepted but that does not fit in our node (an integer beyond i64).
#[derive(Debug)]
pub struct ConvertError {
    pub message: String,
    pub span: Span,
    /// The node that holds a placeholder instead of the value: the loader drops it.
    pub node: NodeId,
}

/// Convert a parsed file into a node tree whose spans are shifted by `base`.
pub fn from_toml(
    table: toml::Spanned<DeTable<'_>>,
    base: usize,
    ids: &mut IdGen,
    errors: &mut Vec<ConvertError>,
) -> Node {
    let span = table.span();
    let value = toml::Spanned::new(span, DeValue::Table(table.into_inner()));
    let mut node = convert(value, base, ids, errors);
    // The document table has no header; give it the whole first line so that a diagnostic about
    // the file as a whole has something to point at.
    node.span = Span::new(base, base);
    node
}

fn convert(
    value: toml::Spanned<DeValue<'_>>,
    base: usize,
    ids: &mut IdGen,
    errors: &mut Vec<ConvertError>,
) -> Node {
    let range = value.span();
    let span = Span::new(base + range.start, base + range.end);
    let id = ids.next();
    let kind = match value.into_inner() {
        DeValue::String(s) => NodeKind::String(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(value) => NodeKind::Integer {
                value,
                octal: i.radix() == 8,
            },
            Err(_) => {
                errors.push(ConvertError {
                    message: format!("integer {} does not fit in 64 bits", i.as_str()),
                    span,
                    node: id,
                });
                NodeKind::Integer {
                    value: 0,
                    octal: false,
                }
            }
        },
        DeValue::Float(f) => NodeKind::Float(parse_toml_float(f.as_str())),
        DeValue::Boolean(b) => NodeKind::Boolean(b),
        DeValue::Datetime(d) => NodeKind::Datetime(d.to_string()),
        DeValue::Array(items) => NodeKind::Array(
            items
                .iter()
                .cloned()
                .map(|item| convert(item, base, ids, errors))
                .collect(),
        ),
        DeValue::Table(table) => NodeKind::Table(
            table
                .into_iter()
                .map(|(key, value)| {
                    let key_range = key.span();
                    Entry {
                        key: key.into_inner().into_owned(),
                        key_span: Span::new(base + key_range.start, base + key_range.end),
                        value: convert(value, base, ids, errors),
                    }
                })
                .collect(),
        ),
    };
    Node { id, span, kind }
}

fn parse_toml_float(text: &str) -> f64 {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    match cleaned.as_str() {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" | "+nan" | "-nan" => f64::NAN,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

impl Node {
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            NodeKind::Table(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// Remove the entry with key `key` from a table node, returning it.
    pub fn take(&mut self, key: &str) -> Option<Entry> {
        match &mut self.kind {
            NodeKind::Table(entries) => {
                let index = entries.iter().position(|e| e.key == key)?;
                Some(entries.remove(index))
            }
            _ => None,
        }
    }

    /// Remove the node with identity `id` from this tree (a table entry or an array element).
    /// Returns false when it is not found or is this node itself.
    pub fn remove(&mut self, id: NodeId) -> bool {
        match &mut self.kind {
            NodeKind::Table(entries) => {
                if let Some(index) = entries.iter().position(|e| e.value.id == id) {
                    entries.remove(index);
                    return true;
                }
                entries.iter_mut().any(|e| e.value.remove(id))
            }
            NodeKind::Array(items) => {
                if let Some(index) = items.iter().position(|n| n.id == id) {
                    items.remove(index);
                    return true;
                }
                items.iter_mut().any(|n| n.remove(id))
            }
            _ => false,
        }
    }

    /// The table or array that holds node `id` directly.
    pub fn parent_of(&self, id: NodeId) -> Option<&Node> {
        match &self.kind {
            NodeKind::Table(entries) => {
                if entries.iter().any(|entry| entry.value.id == id) {
                    return Some(self);
                }
                entries.iter().find_map(|entry| entry.value.parent_of(id))
            }
            NodeKind::Array(items) => {
                if items.iter().any(|item| item.id == id) {
                    return Some(self);
                }
                items.iter().find_map(|item| item.parent_of(id))
            }
            _ => None,
        }
    }

    /// Visit every node with the dotted key path that leads to it (`mount[2].target`).
    pub fn walk(&self, path: &mut String, f: &mut dyn FnMut(&str, &Node, Option<Span>)) {
        self.walk_inner(path, None, f)
    }

    fn walk_inner(
        &self,
        path: &mut String,
        key_span: Option<Span>,
        f: &mut dyn FnMut(&str, &Node, Option<Span>),
    ) {
        f(path, self, key_span);
        let len = path.len();
        match &self.kind {
            NodeKind::Table(entries) => {
                for entry in entries {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&entry.key);
                    entry.value.walk_inner(path, Some(entry.key_span), f);
                    path.truncate(len);
                }
            }
            NodeKind::Array(items) => {
                // An item has no key of its own: it is located by its value.
                for (index, item) in items.iter().enumerate() {
                    path.push_str(&format!("[{index}]"));
                    item.walk_inner(path, None, f);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
}

/// The `[rootfs]` keys that name a source: a file that sets one replaces the source it extends,
/// instead of adding a second one.
pub const ROOTFS_SOURCES: &[&str] = &["host", "path", "tar", "oci"];

/// Merge `over` onto `base`: tables merge key by key, arrays of tables append, anything else is
/// replaced by `over`'s value.
pub fn merge(base: &mut Node, over: Node) {
    let NodeKind::Table(over_entries) = over.kind else {
        *base = over;
        return;
    };
    let NodeKind::Table(base_entries) = &mut base.kind else {
        *base = Node {
            kind: NodeKind::Table(over_entries),
            ..over
        };
        return;
    };
    base.span = over.span;
    for entry in over_entries {
        if entry.key == "rootfs"
            && let Some(over_table) = entry.value.entries()
            && over_table
                .iter()
                .any(|e| ROOTFS_SOURCES.contains(&e.key.as_str()))
            && let Some(base_rootfs) = base_entries.iter_mut().find(|e| e.key == "rootfs")
            && let NodeKind::Table(base_table) = &mut base_rootfs.value.kind
        {
            base_table.retain(|e| !ROOTFS_SOURCES.contains(&e.key.as_str()));
        }
        match base_entries.iter_mut().find(|e| e.key == entry.key) {
            Some(existing) => match (&mut existing.value.kind, entry.value.kind) {
                (NodeKind::Table(_), over_kind @ NodeKind::Table(_)) => {
                    let over_node = Node {
                        kind: over_kind,
                        ..entry.value
                    };
                    existing.key_span = entry.key_span;
                    merge(&mut existing.value, over_node);
                }
                (NodeKind::Array(base_items), NodeKind::Array(over_items))
                    if !over_items.is_empty()
                        && all_tables(&over_items)
                        && all_tables(base_items) =>
                {
                    base_items.extend(over_items);
                }
                (_, over_kind) => {
                    existing.key_span = entry.key_span;
                    existing.value = Node {
                        kind: over_kind,
                        ..entry.value
                    };
                }
            },
            None => base_entries.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, ids: &mut IdGen) -> Node {
        let (table, errors) = DeTable::parse_recoverable(text);
        assert!(errors.is_empty(), "{errors:?}");
        from_toml(table, 0, ids, &mut Vec::new())
    }

    fn to_json(node: &Node) -> serde_json::Value {
        match &node.kind {
            NodeKind::String(s) | NodeKind::Datetime(s) => s.clone().into(),
            NodeKind::Integer { value, .. } => (*value).into(),
            NodeKind::Float(f) => (*f).into(),
            NodeKind::Boolean(b) => (*b).into(),
            NodeKind::Array(items) => items.iter().map(to_json).collect(),
            NodeKind::Table(entries) => entries
                .iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        }
    }

    fn merged(base: &str, over: &str) -> serde_json::Value {
        let mut ids = IdGen::default();
        let mut base = parse(base, &mut ids);
        merge(&mut base, parse(over, &mut ids));
        to_json(&base)
    }

    #[test]
    fn tables_merge_key_by_key() {
        let out = merged(
            "[process]\ncwd = '/a'\nuser = 1\n[process.env]\nA = '1'\nB = '2'\n",
            "[process]\nuser = 2\n[process.env]\nB = '3'\nC = '4'\n",
        );
        assert_eq!(
            out,
            serde_json::json!({"process": {"cwd": "/a", "user": 2, "env": {"A": "1", "B": "3", "C": "4"}}})
        );
    }

    #[test]
    fn arrays_of_tables_append_and_plain_arrays_replace() {
        let out = merged(
            "[[mount]]\ntarget = '/a'\n[process]\ncommand = ['a', 'b']\n",
            "[[mount]]\ntarget = '/b'\n[process]\ncommand = ['c']\n",
        );
        assert_eq!(
            out,
            serde_json::json!({"mount": [{"target": "/a"}, {"target": "/b"}], "process": {"command": ["c"]}})
        );
    }

    #[test]
    fn a_value_of_another_kind_replaces() {
        let out = merged("uid_map = 'auto'\n", "[[uid_map]]\ninside = 0\n");
        assert_eq!(out, serde_json::json!({"uid_map": [{"inside": 0}]}));
        let out = merged("[[uid_map]]\ninside = 0\n", "uid_map = 'auto'\n");
        assert_eq!(out, serde_json::json!({"uid_map": "auto"}));
    }

    #[test]
    fn a_rootfs_source_replaces_the_extended_source() {
        let out = merged(
            "[rootfs]\nhost = true\nreadonly = false\n",
            "[rootfs]\npath = './r'\n",
        );
        assert_eq!(
            out,
            serde_json::json!({"rootfs": {"readonly": false, "path": "./r"}})
        );
        let out = merged("[rootfs]\nhost = true\n", "[rootfs]\nreadonly = false\n");
        assert_eq!(
            out,
            serde_json::json!({"rootfs": {"host": true, "readonly": false}})
        );
    }

    #[test]
    fn remove_drops_a_nested_node() {
        let mut ids = IdGen::default();
        let mut root = parse("[a]\nb = 1\nc = [1, 2]\n", &mut ids);
        let c1 = root.get("a").unwrap().get("c").unwrap();
        let NodeKind::Array(items) = &c1.kind else {
            panic!()
        };
        let id = items[0].id;
        assert!(root.remove(id));
        assert_eq!(to_json(&root), serde_json::json!({"a": {"b": 1, "c": [2]}}));
        let b = root.get("a").unwrap().get("b").unwrap().id;
        let a = root.get("a").unwrap().id;
        let c = root.get("a").unwrap().get("c").unwrap().id;
        let NodeKind::Array(items) = &root.get("a").unwrap().get("c").unwrap().kind else {
            panic!()
        };
        assert_eq!(root.parent_of(items[0].id).map(|n| n.id), Some(c));
        assert_eq!(root.parent_of(b).map(|n| n.id), Some(a));
        assert_eq!(root.parent_of(a).map(|n| n.id), Some(root.id));
        assert!(root.parent_of(root.id).is_none());
        assert!(root.remove(b));
        assert!(root.parent_of(b).is_none());
        assert!(!root.remove(b));
    }

    #[test]
    fn walk_names_every_key_path() {
        let mut ids = IdGen::default();
        let root = parse("[[mount]]\ntarget = '/a'\n[cgroup]\npids = 3\n", &mut ids);
        let mut paths = Vec::new();
        root.walk(&mut String::new(), &mut |path, _, _| {
            paths.push(path.to_string())
        });
        assert_eq!(
            paths,
            [
                "",
                "mount",
                "mount[0]",
                "mount[0].target",
                "cgroup",
                "cgroup.pids"
            ]
        );
    }
}
