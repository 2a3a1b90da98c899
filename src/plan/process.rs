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
    /// The whole environment, in order: nothing else is inherited.
    pub env: Vec<(String, String)>,
    pub tty: Tty,
    /// Milliseconds of wall-clock time before SIGTERM.
    pub timeout_ms: Option<u64>,
    pub umask: u32,
    /// Pin what a test jail can pin: see `process.deterministic` in docs/manifest.md.
    pub deterministic: bool,
}
