//! The step table: each step of [`StepId::ORDER`] with its halves, all of one shape, taking a
//! [`Context`]. `sandbox up` runs every `prepare` half (before the clone, in the launcher),
//! every `parent` half (in the supervisor, once the sandbox's process exists and before it is
//! released) while the sandbox runs every `early` half, then, in the sandbox, every `child`
//! half while the supervisor runs every `released` half, each in this order. The security and
//! exec steps run in the command's own process ([`super::steps::command::exec`]), so they have
//! no half here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::unistd::Pid;

use super::StepFailure;
use super::steps::mount::Source;
use super::steps::net::Network;
use super::steps::user::Exiting;
use super::steps::{cgroup, chroot, mount, net, pid, user};
use crate::cgroup::Group;
use crate::hostpath::HostFiles;
use crate::netlink::Socket;
use crate::plan::{Plan, StepId};
use crate::sys::Sys;

/// An entry of the plan a step prepares something for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// The root's source.
    Root,
    /// The root's kept overlay layer.
    RootUpper,
    /// `mounts[i]`'s source (a bind).
    Mount(usize),
    /// `mounts[i]`'s `j`th lower layer (an overlay).
    Lower(usize, usize),
    /// `mounts[i]`'s kept upper layer (an overlay).
    Upper(usize),
}

/// What the prepare halves made, by step and entry; `None` for an optional source that was
/// absent when the plan was judged.
pub type Prepared = BTreeMap<(StepId, Entry), Option<Source>>;

/// What the halves share. Made before the clone; the sandbox's process starts with a copy.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub sys: &'a dyn Sys,
    /// The unpacked tree of a tar or OCI root.
    pub root: Option<&'a Path>,
    /// The host paths of the plan, opened when it was judged; consumed by the prepare halves.
    pub files: Option<HostFiles>,
    pub prepared: Prepared,
    /// The helper process of an id-mapped mount, reaped once the sandbox runs.
    pub helper: Option<Exiting>,
    /// The sandbox's group, made before the clone.
    pub group: Option<Group<'static>>,
    /// The sandbox's setup process, once cloned.
    pub child: Option<Pid>,
    /// What the supervisor set up for the network; dropped (undone) before the sandbox is
    /// killed on a failure (see `exec::run`).
    pub network: Option<Network<'a>>,
    /// The sandbox's leased address on its bridge: in the supervisor once its net half leased
    /// it, in the sandbox once `Go` brought it.
    pub address: Option<Ipv4Addr>,
    /// In the sandbox: the new root, from the mount step to the chroot step.
    pub new_root: Option<OwnedFd>,
    /// In the sandbox: the egress rules' netlink socket, for the supervisor.
    pub egress: Option<Socket>,
    /// A netlink socket of the sandbox's network namespace, opened by the net step's early half
    /// in the sandbox, for its released half in the supervisor.
    pub netlink: Option<Socket>,
    /// In the sandbox: its /proc/self/ns, opened while the host's /proc is there, and the
    /// namespaces opened from it once all exist.
    pub own_namespaces: Option<OwnedFd>,
    pub namespaces: Vec<OwnedFd>,
}

impl<'a> Context<'a> {
    pub fn new(plan: &'a Plan, sys: &'a dyn Sys, root: Option<&'a Path>, files: HostFiles) -> Self {
        Context {
            plan,
            sys,
            root,
            files: Some(files),
            prepared: Prepared::new(),
            helper: None,
            group: None,
            child: None,
            network: None,
            address: None,
            new_root: None,
            egress: None,
            netlink: None,
            own_namespaces: None,
            namespaces: Vec::new(),
        }
    }

    /// The sandbox's setup process, for the parent halves.
    pub fn child_pid(&self) -> i32 {
        self.child
            .expect("parent halves run once the sandbox exists")
            .as_raw()
    }
}

pub type Half = fn(&mut Context<'_>) -> Result<(), StepFailure>;
/// A prepare half says whether it made anything: its time is reported only then.
pub type Prepare = fn(&mut Context<'_>) -> Result<bool, StepFailure>;

/// A step's halves; `prepare` with the name its time is reported under.
pub struct Step {
    pub id: StepId,
    pub prepare: Option<(&'static str, Prepare)>,
    pub parent: Option<Half>,
    /// In the sandbox as soon as it exists, while the supervisor runs the parent halves: work
    /// that needs neither the id maps nor anything the supervisor makes, taken off the
    /// launch's critical path. Its time counts in the step's child half.
    pub early: Option<Half>,
    pub child: Option<Half>,
    /// In the supervisor once the sandbox is released, while it runs its child halves, with
    /// what its early halves handed over: work taken off the sandbox's critical path, done
    /// before the command starts.
    pub released: Option<Half>,
}

/// Every step, in [`StepId::ORDER`].
pub const STEPS: [Step; 8] = [
    Step {
        id: StepId::User,
        prepare: None,
        parent: Some(user::parent_half),
        early: None,
        child: Some(user::child_half),
        released: None,
    },
    Step {
        id: StepId::Mount,
        prepare: Some(("mount (prepare)", mount::prepare_half)),
        parent: Some(mount::parent_half),
        early: None,
        child: Some(mount::child_half),
        released: None,
    },
    Step {
        id: StepId::Pid,
        prepare: None,
        parent: None,
        early: None,
        child: Some(pid::child_half),
        released: None,
    },
    Step {
        id: StepId::Net,
        prepare: None,
        parent: Some(net::parent_half),
        early: Some(net::early_half),
        child: Some(net::child_half),
        released: Some(net::released_half),
    },
    Step {
        id: StepId::Chroot,
        prepare: None,
        parent: None,
        early: None,
        child: Some(chroot::child_half),
        released: None,
    },
    Step {
        id: StepId::Cgroup,
        prepare: Some(("cgroup (parent)", cgroup::prepare_half)),
        parent: None,
        early: None,
        child: Some(cgroup::child_half),
        released: None,
    },
    Step {
        id: StepId::Security,
        prepare: None,
        parent: None,
        early: None,
        child: None,
        released: None,
    },
    Step {
        id: StepId::Exec,
        prepare: None,
        parent: None,
        early: None,
        child: None,
        released: None,
    },
];

/// How many child halves there are: one timing each.
pub fn child_halves() -> usize {
    STEPS.iter().filter(|step| step.child.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_plan_and_export_take_the_steps_in_one_order() {
        let table: Vec<StepId> = STEPS.iter().map(|step| step.id).collect();
        assert_eq!(table, StepId::ORDER, "sandbox up");
        let plan = crate::plan::for_tests();
        let printed: Vec<StepId> = crate::plan::steps(&plan).iter().map(|s| s.id).collect();
        let mut order = StepId::ORDER.iter();
        assert!(
            printed.iter().all(|id| order.any(|next| next == id)),
            "sandbox plan prints {printed:?}, out of order"
        );
        let arch = crate::manifest::values::Arch::X86_64;
        let exported = crate::export::translate(&plan, arch, Path::new("/bundle"), &|_| true);
        let mut exported: Vec<StepId> = exported.unwrap().mappings.iter().map(|m| m.step).collect();
        exported.dedup();
        let mut order = StepId::ORDER.iter();
        assert!(
            exported.iter().all(|id| order.any(|next| next == id)),
            "sandbox export translates {exported:?}, out of order"
        );
    }
}
