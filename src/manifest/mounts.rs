//! `[[mount]]`: mounts applied in order after the root.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::Serialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor, value::SeqAccessDeserializer};

use super::source::Spanned;
use super::values::{Mode, Size};

/// One mount. `target` is a path inside the sandbox.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// What to mount.
    #[serde(rename = "type")]
    pub kind: Spanned<MountType>,
    /// bind: host path (relative to the manifest's folder); overlay: lower dir(s); symlink: the
    /// link's text.
    pub source: Option<Spanned<Sources>>,
    /// Where, inside the sandbox (absolute).
    pub target: Spanned<String>,
    /// Read-only (bind default true, others false).
    pub readonly: Option<Spanned<bool>>,
    /// As root, an id-mapped mount. bind: files owned by the caller appear owned by
    /// process.user; overlay: the layers' owners are the sandbox's. Default: only a folder of
    /// the caller's own (not the host's system directories, nor anyone else's); true asks for it
    /// whatever the folder, which `sandbox up` asks to allow.
    pub idmap: Option<Spanned<bool>>,
    /// Skip silently when the source is missing.
    pub optional: Option<Spanned<bool>>,
    /// tmpfs: the size limit.
    pub size: Option<Spanned<Size>>,
    /// tmpfs, file, dir: the mode, in octal.
    pub mode: Option<Spanned<Mode>>,
    /// file: the file's content.
    pub content: Option<Spanned<String>>,
    /// overlay: a directory keeping the writable layer (default: an ephemeral tmpfs).
    pub upper: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Tmpfs,
    Proc,
    Sysfs,
    Dev,
    Devpts,
    Mqueue,
    Overlay,
    Symlink,
    File,
    Dir,
}

impl MountType {
    pub fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Tmpfs => "tmpfs",
            MountType::Proc => "proc",
            MountType::Sysfs => "sysfs",
            MountType::Dev => "dev",
            MountType::Devpts => "devpts",
            MountType::Mqueue => "mqueue",
            MountType::Overlay => "overlay",
            MountType::Symlink => "symlink",
            MountType::File => "file",
            MountType::Dir => "dir",
        }
    }
}

/// One path, or several (overlay lower dirs, top first).
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Sources {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for Sources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sources;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or an array of paths")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Sources, E> {
                Ok(Sources::One(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Sources, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(Sources::Many)
            }
        }
        deserializer.deserialize_any(V)
    }
}
