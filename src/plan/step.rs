//! The steps of a plan, in the order the executor takes them: user -> mount -> pid -> net ->
//! chroot -> cgroup -> security -> exec.

use serde::{Deserialize, Serialize};

/// The executor's steps. [`StepId::ORDER`] is the one order every reader of a plan follows:
/// `sandbox up` takes the steps' halves in it (`exec::order`), `sandbox plan` and
/// `plan --explain` print them in it, and `sandbox export` translates them in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepId {
    User,
    Mount,
    Pid,
    Net,
    Chroot,
    Cgroup,
    Security,
    Exec,
}

impl StepId {
    pub const ORDER: [StepId; 8] = [
        StepId::User,
        StepId::Mount,
        StepId::Pid,
        StepId::Net,
        StepId::Chroot,
        StepId::Cgroup,
        StepId::Security,
        StepId::Exec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StepId::User => "user",
            StepId::Mount => "mount",
            StepId::Pid => "pid",
            StepId::Net => "net",
            StepId::Chroot => "chroot",
            StepId::Cgroup => "cgroup",
            StepId::Security => "security",
            StepId::Exec => "exec",
        }
    }
}
