//! `[cgroup]`: resource limits.

use schemars::JsonSchema;
use serde::Deserialize;

use super::source::Spanned;
use super::values::Size;

/// Resource limits, enforced through the sandbox's own cgroup. All optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cgroup {
    /// Hard memory limit (v2 memory.max, v1 memory.limit_in_bytes).
    pub memory: Option<Spanned<Size>>,
    /// Swap allowed on top of `memory`.
    pub memory_swap: Option<Spanned<Size>>,
    /// CPU quota, in cores (e.g. 1.5).
    pub cpus: Option<Spanned<f64>>,
    /// CPU weight, 1 to 10000 (default 100).
    pub cpu_weight: Option<Spanned<u32>>,
    /// Maximum number of tasks.
    pub pids: Option<Spanned<u32>>,
    /// IO weight, 1 to 10000.
    pub io_weight: Option<Spanned<u32>>,
    /// The cgroup under which each sandbox gets its own group (default "sandbox").
    pub parent: Option<Spanned<String>>,
    /// Refuse to start when a limit cannot be applied (default true). false: a limit whose
    /// controller is unusable falls back to an rlimit where one exists (memory: RLIMIT_DATA per
    /// process; pids: RLIMIT_NPROC per user), or is dropped, with a warning.
    pub required: Option<Spanned<bool>>,
}
