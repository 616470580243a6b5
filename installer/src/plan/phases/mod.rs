//! One file per phase, in the order they run; each `steps` turns the
//! [`PlanContext`] into the hosts taking part and their steps.

pub(super) mod cni;
pub(super) mod containerd;
pub(super) mod etcd;
mod init;
mod join;
pub(super) mod lb;
mod os;
mod preflight;
pub(super) mod repo;
mod verify;

use super::checks::PlanContext;
use super::{HostSteps, PhaseName, Step};
use crate::inventory::Node;

/// The hosts taking part in `phase`, with their steps.
pub(super) fn steps(phase: PhaseName, ctx: &PlanContext) -> Vec<HostSteps> {
    let hosts = match phase {
        PhaseName::Preflight => preflight::steps(ctx),
        PhaseName::Repo => repo::steps(ctx),
        PhaseName::Os => os::steps(ctx),
        PhaseName::Containerd => containerd::steps(ctx),
        PhaseName::Etcd => etcd::steps(ctx),
        PhaseName::Lb => lb::steps(ctx),
        PhaseName::Init => init::steps(ctx),
        PhaseName::Join => join::steps(ctx),
        PhaseName::Cni => cni::steps(ctx),
        PhaseName::Verify => verify::steps(ctx),
        // Phases of the lifecycle operations, not of an install.
        PhaseName::Remove
        | PhaseName::Reset
        | PhaseName::Renew
        | PhaseName::Upgrade
        | PhaseName::Nodes
        | PhaseName::Restore => vec![],
    };
    hosts.into_iter().filter(|h| !h.steps.is_empty()).collect()
}

/// `node`'s steps in `wave`.
pub(super) fn host(node: &Node, wave: u32, steps: Vec<Step>) -> HostSteps {
    HostSteps {
        host: node.name.clone(),
        wave,
        steps,
    }
}
