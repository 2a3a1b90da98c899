//! One module per step of the plan. Each step's halves, all of one shape, are listed in the
//! step table [`STEPS`](super::order::STEPS): a `prepare` half runs in the launcher before the
//! clone, a `parent` half in the supervisor before the child is released, a `child` half in
//! the sandbox, each in the table's order. A half with nothing to do is absent.

pub mod cgroup;
pub mod chroot;
pub mod command;
pub mod mount;
pub mod net;
pub mod pid;
pub mod security;
pub mod user;
