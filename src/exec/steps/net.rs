//! Network namespace.
//!
//! The child half brings `lo` up: a fresh network namespace has only a loopback interface, and
//! it starts down (network_namespaces(7)).

use crate::exec::error::{OrFail, StepFailure};
use crate::exec::sys;
use crate::plan::{NetPlan, Plan, StepId};

pub fn child(plan: &Plan) -> Result<(), StepFailure> {
    if plan.net == NetPlan::Host {
        return Ok(());
    }
    sys::loopback_up()
        .or_fail(StepId::Net, || "bringing lo up".into())
        .map_err(|f| f.with_key("network.mode"))
}
