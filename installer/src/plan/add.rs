//! The plan of `bundle nodes add`, cut from the install plan of the inventory with the
//! new host: the host's own preflight, repo, os and containerd steps and its join; for a
//! master also every master's load balancer configured again for it (reloaded where it
//! runs: the VIP stays where it is) and the cluster's checks on every master. The
//! certificates the joining master downloads are uploaded again with a fresh key by the
//! operation itself, not by a step: the key must not be the install's.

use super::phases::{host, lb};
use super::{Phase, PhaseName, Plan};
use crate::inventory::Cluster;

/// The steps that add `new` (a host of `cluster`) to the cluster `plan` installs.
pub fn addition(plan: &Plan, cluster: &Cluster, new: &str) -> Plan {
    let master = cluster.masters().any(|m| m.name == new);
    let first = cluster.first_master().name.clone();
    let mut p = plan.clone();
    p.phases = plan
        .phases
        .iter()
        .filter_map(|ph| {
            let hosts = match ph.name {
                PhaseName::Init | PhaseName::Cni => return None,
                PhaseName::Lb if !master => return None,
                PhaseName::Lb => cluster
                    .masters()
                    .enumerate()
                    .map(|(i, m)| host(m, 0, lb::configured_again(cluster, m, i, m.name == new)))
                    .collect(),
                PhaseName::Join => ph.hosts.iter().filter(|h| h.host == new).cloned().collect(),
                PhaseName::Verify => ph
                    .hosts
                    .iter()
                    .filter(|h| {
                        h.host == new
                            || h.host == first
                            || (master && cluster.masters().any(|m| m.name == h.host))
                    })
                    .cloned()
                    .collect(),
                _ => ph.hosts.iter().filter(|h| h.host == new).cloned().collect(),
            };
            Some(Phase {
                name: ph.name,
                hosts,
            })
        })
        .collect();
    p
}
