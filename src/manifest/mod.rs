//! Stage 1: TOML text -> [`Manifest`], the typed mirror of `sandbox.toml`.
//!
//! Types here spell keys exactly as the file does and keep the span of every value, so later
//! stages can point diagnostics at the line that set it. Nothing is defaulted or resolved here:
//! that is `validate`'s job.

mod cgroup;
pub mod de;
mod idmap;
mod load;
mod mounts;
mod namespaces;
mod network;
pub mod node;
mod process;
mod rootfs;
mod security;
pub mod source;
pub mod values;
pub mod vars;

use schemars::JsonSchema;
use serde::Deserialize;

pub use cgroup::Cgroup;
pub use idmap::{AutoKeyword, IdMapSpec, IdRange, Outside};
pub use load::{Loaded, discover, load, load_str, local_override_path};
pub use mounts::{Mount, MountType, Sources};
pub use namespaces::{Namespaces, Time, Uts};
pub use network::{Network, NetworkMode};
pub use process::{Process, Tty};
pub use rootfs::{KeptOverlay, Overlay, Rootfs};
pub use security::{Landlock, Seccomp, SeccompAction, SeccompPreset, SeccompTable, Security};
pub use source::{Location, SourceMap, Span, Spanned};

/// A `sandbox.toml` manifest, version 1.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sandbox.toml",
    description = "A sandbox manifest (version 1). See docs/manifest.md."
)]
pub struct Manifest {
    /// The manifest format version; only 1 exists.
    pub version: Option<Spanned<i64>>,
    /// The sandbox name (default: the manifest's folder name). [a-z0-9][a-z0-9_.-]{0,62}
    pub name: Option<Spanned<String>>,
    /// Manifests merged first; this file wins. Tables merge key by key, arrays of tables append,
    /// plain arrays replace.
    #[schemars(with = "Option<ExtendsPaths>")]
    pub extends: Option<Spanned<Vec<Spanned<String>>>>,
    /// The root file system.
    pub rootfs: Option<Spanned<Rootfs>>,
    /// The command and its environment.
    pub process: Option<Spanned<Process>>,
    /// Which namespaces are the sandbox's own.
    pub namespaces: Option<Spanned<Namespaces>>,
    /// Hostname and domain name.
    pub uts: Option<Spanned<Uts>>,
    /// Clock offsets (needs namespaces.time = true).
    pub time: Option<Spanned<Time>>,
    /// User id mapping: "auto" or [[uid_map]] ranges.
    pub uid_map: Option<Spanned<IdMapSpec>>,
    /// Group id mapping: "auto" or [[gid_map]] ranges.
    pub gid_map: Option<Spanned<IdMapSpec>>,
    /// Mounts, applied in order after the root.
    pub mount: Option<Vec<Spanned<Mount>>>,
    /// Resource limits.
    pub cgroup: Option<Spanned<Cgroup>>,
    /// Networking.
    pub network: Option<Spanned<Network>>,
    /// Capabilities, no_new_privs, seccomp, landlock, rlimits.
    pub security: Option<Spanned<Security>>,
}

/// The schema of `extends`: one path or a list (the loader reads it before the typed manifest,
/// and takes both).
struct ExtendsPaths;

impl JsonSchema for ExtendsPaths {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExtendsPaths".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // `items` only constrains arrays: this is "a string, or an array of strings".
        schemars::json_schema!({
            "type": ["string", "array"],
            "items": { "type": "string" }
        })
    }
}

/// The JSON Schema of the manifest (draft-07, for editors such as taplo).
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Manifest>();
    serde_json::to_value(schema).expect("a schema serializes")
}
