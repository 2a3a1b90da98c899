//! `[security]`: capabilities, no_new_privs, seccomp, landlock, rlimits.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize};

use super::source::Spanned;
use super::values::{Capability, Errno, Rlimit, RlimitValue, Syscall};

/// Security settings, applied last, right before the command starts.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Capabilities kept (e.g. "CAP_NET_BIND_SERVICE"); all others are dropped (default none).
    pub capabilities: Option<Spanned<Vec<Spanned<Capability>>>>,
    /// Set no_new_privs, so setuid binaries gain nothing (default true).
    pub no_new_privileges: Option<Spanned<bool>>,
    /// "default", "off", or a table with default_action and allow or deny lists.
    pub seccomp: Option<Spanned<Seccomp>>,
    /// Landlock file system and network rules.
    pub landlock: Option<Spanned<Landlock>>,
    /// Resource limits as in getrlimit(2): lower-case names without RLIMIT_.
    pub rlimits: Option<Spanned<BTreeMap<Spanned<Rlimit>, Spanned<RlimitValue>>>>,
}

/// A seccomp profile.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Seccomp {
    Named(SeccompPreset),
    Custom(SeccompTable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeccompPreset {
    /// A deny-list at least as strict as Docker's default.
    Default,
    /// No filter.
    Off,
}

/// A custom profile: a default action plus the calls that get the other outcome.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeccompTable {
    /// What happens to calls not listed: allow (then `deny` lists what fails), errno or kill
    /// (then `allow` lists what works).
    pub default_action: Spanned<SeccompAction>,
    /// With default_action = "allow": the calls that fail.
    pub deny: Option<Spanned<Vec<Spanned<Syscall>>>>,
    /// With default_action = "errno" or "kill": the calls that work.
    pub allow: Option<Spanned<Vec<Spanned<Syscall>>>>,
    /// The error denied calls return (default "EPERM").
    pub errno: Option<Spanned<Errno>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeccompAction {
    Allow,
    Errno,
    Kill,
}

impl<'de> Deserialize<'de> for Seccomp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Seccomp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"default\", \"off\" or a table")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Seccomp, E> {
                match s {
                    "default" => Ok(Seccomp::Named(SeccompPreset::Default)),
                    "off" => Ok(Seccomp::Named(SeccompPreset::Off)),
                    other => Err(E::unknown_variant(other, &["default", "off"])),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Seccomp, A::Error> {
                SeccompTable::deserialize(MapAccessDeserializer::new(map)).map(Seccomp::Custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Landlock rules: paths inside the sandbox; everything else in the file system is denied.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Landlock {
    /// Paths that may be read.
    pub read: Option<Spanned<Vec<Spanned<String>>>>,
    /// Paths that may be read and written.
    pub write: Option<Spanned<Vec<Spanned<String>>>>,
    /// Paths from which programs may be executed (and read).
    pub execute: Option<Spanned<Vec<Spanned<String>>>>,
    /// TCP ports that may be bound (landlock ABI 4 or later); absent: binding is not
    /// restricted, `[]`: no port may be bound.
    pub bind_tcp: Option<Spanned<Vec<Spanned<u16>>>>,
    /// TCP ports that may be connected to (landlock ABI 4 or later); absent: not restricted,
    /// `[]`: no connection.
    pub connect_tcp: Option<Spanned<Vec<Spanned<u16>>>>,
    /// Refuse to start when the kernel cannot enforce every rule (default false).
    pub required: Option<Spanned<bool>>,
}
