//! `uid_map` / `gid_map`.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor, value::SeqAccessDeserializer};

use super::source::Spanned;

/// `"auto"` (a range from the caller's /etc/subuid or /etc/subgid grant), or a list of ranges.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum IdMapSpec {
    Auto(AutoKeyword),
    Ranges(Vec<Spanned<IdRange>>),
}

/// The keyword "auto".
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoKeyword {
    Auto,
}

/// One mapped range: ids inside..inside+count map to outside..outside+count.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRange {
    /// First id inside the sandbox.
    pub inside: Spanned<u32>,
    /// First id outside: a number, or "self" for the caller's own id.
    pub outside: Spanned<Outside>,
    /// How many ids (at least 1).
    pub count: Spanned<u32>,
}

/// An outside id: a number, or "self".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    Id(u32),
    Caller,
}

impl JsonSchema for Outside {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Outside".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An id outside the sandbox, or \"self\" for the caller's own id.",
            "anyOf": [ { "type": "integer", "minimum": 0, "maximum": 4294967294u32 }, { "const": "self" } ]
        })
    }
}

impl<'de> Deserialize<'de> for Outside {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Outside;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an id or \"self\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Outside, E> {
                u32::try_from(n).map(Outside::Id).map_err(|_| {
                    E::invalid_value(de::Unexpected::Signed(n), &"an id from 0 to 4294967294")
                })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Outside, E> {
                match s {
                    "self" => Ok(Outside::Caller),
                    _ => Err(E::invalid_value(
                        de::Unexpected::Str(s),
                        &"an id or \"self\"",
                    )),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for IdMapSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdMapSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\" or [[ranges]]")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IdMapSpec, E> {
                match s {
                    "auto" => Ok(IdMapSpec::Auto(AutoKeyword::Auto)),
                    _ => Err(E::invalid_value(
                        de::Unexpected::Str(s),
                        &"\"auto\" or [[ranges]]",
                    )),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IdMapSpec, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(IdMapSpec::Ranges)
            }
        }
        deserializer.deserialize_any(V)
    }
}
