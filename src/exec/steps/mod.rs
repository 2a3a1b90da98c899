//! One module per step of the plan. A step's `parent` half runs in the supervisor before the
//! child is released; its `child` half runs in the sandbox, in the order of
//! [`CHILD_STEPS`](super::CHILD_STEPS). A half with nothing to do is absent.

pub mod cgroup;
pub mod chroot;
pub mod command;
pub mod mount;
pub mod net;
pub mod pid;
pub mod security;
pub mod user;
