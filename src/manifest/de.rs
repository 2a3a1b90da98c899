//! A serde deserializer over the node tree.
//!
//! Errors carry the id and span of the node they arose at. The loader removes that node and
//! deserializes again, until the tree deserializes cleanly: serde stops at the first error, but
//! this way every bad key and value of a file is reported in one run, and the manifest that
//! comes out holds everything that was valid.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::node::{Node, NodeId, NodeKind};
use super::source::{SPANNED_END, SPANNED_NAME, SPANNED_START, SPANNED_VALUE, Span};

/// What went wrong at which node.
#[derive(Debug, Clone)]
pub struct Error {
    pub message: String,
    pub help: Option<String>,
    /// The node to drop before trying again; `None` for errors not yet tied to a node.
    pub node: Option<NodeId>,
    pub span: Option<Span>,
    pub code: &'static str,
    /// For `missing-key`: the key that is missing.
    pub missing: Option<&'static str>,
    /// For `unknown-key`: the key it most likely meant, which counts as written (and dropped):
    /// rules do not also complain that it is missing.
    pub meant: Option<&'static str>,
}

impl Error {
    fn at(mut self, node: &Node) -> Self {
        if self.node.is_none() {
            self.node = Some(node.id);
            self.span = Some(node.span);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The newtype name by which a value asks how an integer was written: an integer written in
/// octal (`0o755`) is handed over as that text, which a file mode parses as the mode it spells.
/// Any other deserializer sees an ordinary newtype.
pub(crate) const OCTAL_NAME: &str = "$sandbox::Octal";

/// Value parsers (sizes, durations, ...) put their advice after this separator, so that it
/// survives serde's string-only `custom` errors and becomes the diagnostic's help line.
pub const HELP_SEPARATOR: &str = "\n\u{1f}";

fn describe_expected(expected: &str) -> String {
    let expected = expected.trim();
    match expected {
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "a boolean" => "true or false".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.into(),
    }
}

/// The values an integer type that serde names holds.
fn integer_range(name: &str) -> Option<(i128, i128)> {
    Some(match name {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        _ => return None,
    })
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let text = msg.to_string();
        let (message, help) = match text.split_once(HELP_SEPARATOR) {
            Some((message, help)) => (message.to_string(), Some(help.to_string())),
            None => (text, None),
        };
        Error {
            message,
            help,
            node: None,
            span: None,
            code: "sandbox::manifest::invalid-value",
            missing: None,
            meant: None,
        }
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        let found = match unexpected {
            de::Unexpected::Str(s) => format!("the string \"{s}\""),
            de::Unexpected::Signed(n) => format!("the integer {n}"),
            de::Unexpected::Unsigned(n) => format!("the integer {n}"),
            de::Unexpected::Float(n) => format!("the number {n}"),
            de::Unexpected::Bool(b) => format!("`{b}`"),
            de::Unexpected::Seq => "an array".into(),
            de::Unexpected::Map => "a table".into(),
            other => other.to_string(),
        };
        Error {
            message: format!(
                "expected {}, found {found}",
                describe_expected(&expected.to_string())
            ),
            help: None,
            node: None,
            span: None,
            code: "sandbox::manifest::wrong-type",
            missing: None,
            meant: None,
        }
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        let number = match unexpected {
            de::Unexpected::Signed(n) => Some(i128::from(n)),
            de::Unexpected::Unsigned(n) => Some(i128::from(n)),
            _ => None,
        };
        // An integer that does not fit the key's type (serde names the type it expected).
        if let Some(n) = number
            && let Some((min, max)) = integer_range(expected.to_string().trim())
        {
            return Error {
                message: format!("the integer {n} is out of range"),
                help: Some(format!("use an integer from {min} to {max}")),
                node: None,
                span: None,
                code: "sandbox::manifest::invalid-value",
                missing: None,
                meant: None,
            };
        }
        let mut error = Self::invalid_type(unexpected, expected);
        error.code = "sandbox::manifest::invalid-value";
        error
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let meant = suggest(field, expected);
        let help = match meant {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("the keys here are: {}", expected.join(", ")),
        };
        Error {
            message: format!("unknown key `{}`", crate::escape::escaped(field)),
            help: Some(help),
            node: None,
            span: None,
            code: "sandbox::manifest::unknown-key",
            missing: None,
            meant,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let choices = expected
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match suggest(variant, expected) {
            Some(best) => format!("did you mean \"{best}\"? (one of {choices})"),
            None => format!("use one of {choices}"),
        };
        Error {
            message: format!("unknown value \"{variant}\""),
            help: Some(help),
            node: None,
            span: None,
            code: "sandbox::manifest::unknown-value",
            missing: None,
            meant: None,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            message: format!("missing key `{field}`"),
            help: Some(format!("add `{field} = ...` to this table")),
            node: None,
            span: None,
            code: "sandbox::manifest::missing-key",
            missing: Some(field),
            meant: None,
        }
    }
}

/// The candidate a misspelt name most likely meant (keys, values, capabilities, system calls,
/// errno names): the one candidate it is the start of (`CAP_NET_BIND` is CAP_NET_BIND_SERVICE,
/// not the closer-spelt CAP_NET_ADMIN), else the closest one, if close enough to be a typo.
/// Case does not matter.
pub fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut started = candidates
        .iter()
        .filter(|c| c.len() > lower.len() && c.to_ascii_lowercase().starts_with(&lower));
    if lower.len() >= 3
        && let (Some(only), None) = (started.next(), started.next())
    {
        return Some(only);
    }
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Deserializes one node.
pub struct NodeDeserializer<'a> {
    node: &'a Node,
}

impl<'a> NodeDeserializer<'a> {
    pub fn new(node: &'a Node) -> Self {
        NodeDeserializer { node }
    }

    fn type_error(&self, expected: &str) -> Error {
        Error {
            message: format!("expected {expected}, found {}", self.node.kind.type_name()),
            help: None,
            node: None,
            span: None,
            code: "sandbox::manifest::wrong-type",
            missing: None,
            meant: None,
        }
        .at(self.node)
    }
}

impl<'de> Deserializer<'de> for NodeDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let node = self.node;
        let result = match &node.kind {
            NodeKind::String(s) | NodeKind::Datetime(s) => visitor.visit_borrowed_str(s),
            NodeKind::Integer { value, .. } => visitor.visit_i64(*value),
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Boolean(b) => visitor.visit_bool(*b),
            NodeKind::Array(items) => visitor.visit_seq(SeqDeserializer {
                items: items.iter(),
            }),
            NodeKind::Table(entries) => visitor.visit_map(MapDeserializer {
                entries: entries.iter(),
                value: None,
            }),
        };
        result.map_err(|e| e.at(node))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // TOML has no null: a key that is present is always `Some`.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == OCTAL_NAME
            && let NodeKind::Integer { value, octal: true } = self.node.kind
        {
            return visitor
                .visit_str(&format!("0o{value:o}"))
                .map_err(|e: Error| e.at(self.node));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let node = self.node;
        if name == SPANNED_NAME {
            return visitor.visit_map(SpannedDeserializer {
                span: node.span,
                value: Some(self),
                state: 0,
            });
        }
        match &node.kind {
            NodeKind::Table(_) => self.deserialize_any(visitor),
            _ => Err(self.type_error("a table")),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Array(_) => self.deserialize_any(visitor),
            _ => Err(self.type_error("an array")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Table(_) => self.deserialize_any(visitor),
            _ => Err(self.type_error("a table")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let node = self.node;
        match &node.kind {
            NodeKind::String(s) => {
                if !variants.contains(&s.as_str()) {
                    return Err(<Error as de::Error>::unknown_variant(s, variants).at(node));
                }
                visitor
                    .visit_enum(UnitVariant { name: s })
                    .map_err(|e| e.at(node))
            }
            _ => {
                let choices = variants
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(self.type_error(&format!("one of {choices}")))
            }
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

struct SeqDeserializer<'a> {
    items: std::slice::Iter<'a, Node>,
}

impl<'de> SeqAccess<'de> for SeqDeserializer<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(node) => seed.deserialize(NodeDeserializer { node }).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDeserializer<'a> {
    entries: std::slice::Iter<'a, super::node::Entry>,
    value: Option<&'a Node>,
}

impl<'de> MapAccess<'de> for MapDeserializer<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(&entry.value);
        let key = KeyDeserializer {
            key: &entry.key,
            span: entry.key_span,
        };
        seed.deserialize(key).map(Some).map_err(|e| {
            // An unknown key: drop its whole entry, but point at the key itself.
            let mut error = e.at(&entry.value);
            error.span = Some(entry.key_span);
            error
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let node = self
            .value
            .take()
            .expect("next_value_seed after next_key_seed");
        seed.deserialize(NodeDeserializer { node })
    }
}

/// A table key. Keys are deserialized like strings, except that unknown struct fields are
/// reported against them.
struct KeyDeserializer<'a> {
    key: &'a str,
    span: Span,
}

impl<'de> Deserializer<'de> for KeyDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.key)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if !variants.contains(&self.key) {
            return Err(<Error as de::Error>::unknown_variant(self.key, variants));
        }
        visitor.visit_enum(UnitVariant { name: self.key })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED_NAME {
            let span = self.span;
            return visitor.visit_map(SpannedDeserializer {
                span,
                value: Some(self),
                state: 0,
            });
        }
        self.deserialize_any(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple tuple_struct map
        identifier ignored_any
    }
}

/// Answers `Spanned<T>`'s request for start, end and value, for a node or a table key.
struct SpannedDeserializer<D> {
    span: Span,
    value: Option<D>,
    state: u8,
}

impl<'de, D: Deserializer<'de, Error = Error>> MapAccess<'de> for SpannedDeserializer<D> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = match self.state {
            0 => SPANNED_START,
            1 => SPANNED_END,
            2 => SPANNED_VALUE,
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.state += 1;
        match self.state {
            1 => seed.deserialize(self.span.start.into_deserializer()),
            2 => seed.deserialize(self.span.end.into_deserializer()),
            _ => seed.deserialize(self.value.take().expect("the value is asked for once")),
        }
    }
}

struct UnitVariant<'a> {
    name: &'a str,
}

impl<'de> EnumAccess<'de> for UnitVariant<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let value = seed.deserialize(self.name.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(de::Error::custom("expected a plain string value"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("expected a plain string value"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::custom("expected a plain string value"))
    }
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn a_name_cut_short_is_suggested_by_prefix_else_by_spelling() {
        let capabilities = ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"];
        assert_eq!(
            suggest("CAP_NET_BIND", &capabilities),
            Some("CAP_NET_BIND_SERVICE")
        );
        assert_eq!(suggest("cap_net_rw", &capabilities), Some("CAP_NET_RAW"));
        let keys = ["command", "cwd", "env", "inherit_env", "umask"];
        assert_eq!(suggest("comm", &keys), Some("command"));
        assert_eq!(suggest("comand", &keys), Some("command"));
        assert_eq!(
            suggest("clock_gett", &["clock_gettime", "clock_settime"]),
            Some("clock_gettime")
        );
        // Too short, or the start of several, or like nothing: no guess.
        assert_eq!(suggest("c", &keys), None);
        assert_eq!(suggest("zzzzzz", &keys), None);
    }
}
