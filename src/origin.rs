//! Where a setting of the plan came from in the manifest: a `[[mount]]` entry, an `egress` or
//! `dns` entry, or a key. Validate, plan, trust, the executor's failures and the diagnostics
//! pass it along and decide by its variant; its text (`mount[2]`, `process.cwd`) is the path
//! that [`crate::manifest::Loaded::provenance`] holds a span for, and what `plan --json`,
//! state files and the trust hash have always held.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// The `[[mount]]` entry of this index: `mount[2]`.
    Mount(usize),
    /// The `network.egress` entry of this index.
    Egress(usize),
    /// The `network.dns` server of this index.
    Dns(usize),
    /// Any other key, by its dotted path: `rootfs.host`, `security.rlimits.nofile`.
    Key(Cow<'static, str>),
}

impl Origin {
    /// The manifest path, as provenance maps are keyed.
    pub fn path(&self) -> Cow<'_, str> {
        match self {
            Origin::Key(key) => Cow::Borrowed(key),
            indexed => Cow::Owned(indexed.to_string()),
        }
    }

    /// Whether this is the key `key`.
    pub fn is_key(&self, key: &str) -> bool {
        matches!(self, Origin::Key(own) if own == key)
    }

    /// A path written out: an indexed entry becomes its variant, so that an origin equals
    /// itself read back from a state file or the handshake.
    fn parse(path: Cow<'static, str>) -> Origin {
        let index = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|number| number.parse().ok())
        };
        if let Some(index) = index("mount[") {
            Origin::Mount(index)
        } else if let Some(index) = index("network.egress[") {
            Origin::Egress(index)
        } else if let Some(index) = index("network.dns[") {
            Origin::Dns(index)
        } else {
            Origin::Key(path)
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Mount(index) => write!(f, "mount[{index}]"),
            Origin::Egress(index) => write!(f, "network.egress[{index}]"),
            Origin::Dns(index) => write!(f, "network.dns[{index}]"),
            Origin::Key(key) => f.write_str(key),
        }
    }
}

impl From<&'static str> for Origin {
    fn from(path: &'static str) -> Origin {
        Origin::parse(Cow::Borrowed(path))
    }
}

impl From<String> for Origin {
    fn from(path: String) -> Origin {
        Origin::parse(Cow::Owned(path))
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Origin, D::Error> {
        String::deserialize(deserializer).map(Origin::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_reads_back_as_written() {
        for origin in [
            Origin::Mount(2),
            Origin::Egress(0),
            Origin::Dns(11),
            Origin::from("rootfs.host"),
            Origin::from("mount[x]".to_string()),
        ] {
            let text = serde_json::to_string(&origin).expect("serializes");
            assert_eq!(text, format!("\"{origin}\""));
            assert_eq!(
                serde_json::from_str::<Origin>(&text).expect("parses"),
                origin
            );
        }
        assert_eq!(Origin::from("mount[3]".to_string()), Origin::Mount(3));
        assert_eq!(Origin::from("network.dns[0]"), Origin::Dns(0));
        assert_eq!(Origin::Dns(1).path(), "network.dns[1]");
        assert!(Origin::from("rootfs").is_key("rootfs"));
        assert!(!Origin::Mount(0).is_key("mount[0]"));
    }
}
