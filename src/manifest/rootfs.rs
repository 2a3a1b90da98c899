//! `[rootfs]`: where the sandbox's root file system comes from.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use super::source::Spanned;

/// The root file system: exactly one source (`host`, `path`, `tar` or `oci`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    /// A fresh root holding read-only binds of the host's /usr, /bin, /sbin, /lib* and /etc.
    pub host: Option<Spanned<bool>>,
    /// A directory to use as the root (relative to the manifest's folder).
    pub path: Option<Spanned<String>>,
    /// A tarball (.tar, .tar.gz, .tar.zst, .tar.xz), unpacked once into a cache and shared
    /// read-only.
    pub tar: Option<Spanned<String>>,
    /// An OCI image layout (a directory or a .tar): its layers, unpacked once into a cache, and
    /// its config's Entrypoint, Cmd, Env, WorkingDir and User as [process] defaults.
    pub oci: Option<Spanned<String>>,
    /// The expected SHA-256, checked before use: of the tarball for `tar`, of the image's
    /// manifest for `oci`.
    pub sha256: Option<Spanned<String>>,
    /// How to make a `path`, `tar` or `oci` root that is not there yet (a command and what it
    /// needs, e.g. "./make-rootfs.sh (needs debootstrap and a Debian mirror)"), which the
    /// diagnostic for a missing root shows.
    pub made_by: Option<Spanned<String>>,
    /// Mount the root read-only (default true).
    pub readonly: Option<Spanned<bool>>,
    /// true: an ephemeral writable layer (tmpfs upper) over the read-only source; or a table
    /// `{ upper = "./.sandbox/upper" }` to keep the changes in a directory.
    pub overlay: Option<Spanned<Overlay>>,
    /// As root, id-map the host directories the root is made of (`path`, the host's dirs of
    /// `host`, a kept `upper`) through the sandbox's map, so their owners' files are the
    /// sandbox's. Default: only directories of the caller's own (not the host's system
    /// directories); true asks for it whatever they are, which `sandbox up` asks to allow.
    pub idmap: Option<Spanned<bool>>,
    /// Mount a fresh /proc (default: true when the sandbox has its own pid namespace).
    pub proc: Option<Spanned<bool>>,
    /// Mount a minimal /dev: null zero full random urandom tty, ptmx and pts, shm, fd links
    /// (default true).
    pub dev: Option<Spanned<bool>>,
    /// Mount a tmpfs on /tmp (default true).
    pub tmp: Option<Spanned<bool>>,
}

/// `overlay = true | false | { upper = "dir" }`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Overlay {
    Enabled(bool),
    Kept(KeptOverlay),
}

/// An overlay whose writable layer is kept in a directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeptOverlay {
    /// The directory that keeps the changes (relative to the manifest's folder).
    pub upper: Spanned<String>,
}

impl<'de> Deserialize<'de> for Overlay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Overlay;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a table { upper = \"dir\" }")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Overlay, E> {
                Ok(Overlay::Enabled(b))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Overlay, A::Error> {
                KeptOverlay::deserialize(MapAccessDeserializer::new(map)).map(Overlay::Kept)
            }
        }
        deserializer.deserialize_any(V)
    }
}
