use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::manifest::Tty;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPlan {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The whole environment, in order: nothing else is inherited, but for `named_env`.
    pub env: Vec<(String, String)>,
    /// Variables the command gets set to its user's name in the root's /etc/passwd, as login(1)
    /// sets them (USER and LOGNAME, unless `env` or `inherit_env` set them): the root is only
    /// there when the command starts. Left unset when the root does not name the uid.
    pub named_env: Vec<String>,
    pub tty: Tty,
    /// Milliseconds of wall-clock time before SIGTERM.
    pub timeout_ms: Option<u64>,
    pub umask: u32,
    /// Pin what a test jail can pin: see `process.deterministic` in docs/manifest.md.
    pub deterministic: bool,
}
