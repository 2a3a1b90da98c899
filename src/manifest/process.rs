//! `[process]`: what runs inside, as whom, with which environment.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::source::Spanned;
use super::values::{Duration, Mode};

/// The command and its environment.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// The command and its arguments; required unless given after `--` on the command line.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// The working directory inside the sandbox (default "/").
    pub cwd: Option<Spanned<String>>,
    /// The uid inside the sandbox (default 0).
    pub user: Option<Spanned<u32>>,
    /// The gid inside the sandbox (default 0).
    pub group: Option<Spanned<u32>>,
    /// Supplementary gids inside the sandbox (default none).
    pub groups: Option<Spanned<Vec<Spanned<u32>>>>,
    /// Environment variables. The environment is empty except these, PATH and `inherit_env`.
    pub env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Names copied from the caller's environment when present (default ["TERM"]).
    pub inherit_env: Option<Spanned<Vec<Spanned<String>>>>,
    /// auto (a new pty when stdin is a terminal), always, or never (default auto).
    pub tty: Option<Spanned<Tty>>,
    /// Wall-clock limit; then SIGTERM, 2 s grace, SIGKILL, and exit status 124.
    pub timeout: Option<Spanned<Duration>>,
    /// The umask, in octal (default "022").
    pub umask: Option<Spanned<Mode>>,
    /// Pin what a test jail can pin: hostname, environment, machine-id, TZ, LANG, clocks.
    pub deterministic: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tty {
    Auto,
    Always,
    Never,
}
