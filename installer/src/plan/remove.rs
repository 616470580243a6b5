//! The plan of `bundle nodes remove`, made of the install's own steps: the node
//! drained and deleted from the first remaining master (and, for a master, its etcd
//! member removed, also when the host is gone), the host reset when it can be reached,
//! and the remaining masters' haproxy and keepalived configured without it and
//! reloaded (keepalived re-reads its configuration on SIGHUP: the VIP stays where it is).

use super::phases::{host, lb};
use super::steps::{etcdctl, kubectl, run, step};
use super::{HostStep, HostSteps, OnFailure, Phase, PhaseName, Plan, PlanHost, Step};
use crate::inventory::Cluster;

/// What the removal of one host needs.
#[derive(Debug)]
pub struct Removal<'a> {
    /// The plan the cluster was installed with (its summary is kept).
    pub installed: &'a Plan,
    /// The cluster without the host.
    pub cluster: &'a Cluster,
    /// The host removed, as the installed plan knows it.
    pub host: &'a PlanHost,
    /// It answered over SSH: it is reset too.
    pub reachable: bool,
    /// The commands that undo the install on it.
    pub reset_script: String,
}

/// The removal plan. Pure, as [`super::plan()`] is.
pub fn removal(r: &Removal) -> Plan {
    let first = r.cluster.first_master();
    let master = r.host.roles.iter().any(|x| x == "master");
    let mut phases = vec![Phase {
        name: PhaseName::Remove,
        hosts: vec![host(first, 0, detach(r, master))],
    }];
    if r.reachable {
        phases.push(Phase {
            name: PhaseName::Reset,
            hosts: vec![HostSteps {
                host: r.host.name.clone(),
                wave: 0,
                steps: vec![run(
                    "reset/host",
                    "kubeadm reset, the install's services stopped and its files removed",
                    r.reset_script.clone(),
                    None,
                )],
            }],
        });
    }
    if master {
        phases.push(Phase {
            name: PhaseName::Lb,
            hosts: r
                .cluster
                .masters()
                .enumerate()
                .map(|(i, m)| host(m, 0, lb::configured_again(r.cluster, m, i, false)))
                .collect(),
        });
    }
    let mut plan = r.installed.clone();
    plan.hosts
        .retain(|h| h.name == r.host.name || r.cluster.nodes.iter().any(|n| n.name == h.name));
    plan.phases = phases;
    plan.repo_served_by_deploy = None;
    plan
}

/// Drain, delete, and for a master the etcd member, asked of the first master.
fn detach(r: &Removal, master: bool) -> Vec<Step> {
    let (name, k) = (&r.host.name, kubectl());
    // A host that is gone cannot evict its pods: the drain only warns then.
    let drain_failure = if r.reachable {
        OnFailure::Stop
    } else {
        OnFailure::Warn
    };
    let mut s = vec![
        step(
            "remove/drain",
            &format!("drain `{name}`"),
            HostStep::Run {
                command: format!(
                    "{k} drain {name} --ignore-daemonsets --delete-emptydir-data --timeout=300s"
                ),
                check: Some(format!("! {k} get node {name} >/dev/null 2>&1")),
                after_change_of: vec![],
                capture: None,
                on_failure: drain_failure,
            },
        ),
        run(
            "remove/node",
            &format!("delete the node `{name}`"),
            format!("{k} delete node {name}"),
            Some(format!("! {k} get node {name} >/dev/null 2>&1")),
        ),
    ];
    if master {
        let etcdctl = etcdctl(&r.cluster.first_master().name);
        // By name, or by peer address for a member that never started.
        let find = format!(
            "{etcdctl} member list | awk -F', ' '$3 == \"{name}\" || $4 == \"https://{}:2380\" {{print $1}}'",
            r.host.address
        );
        s.push(run(
            "remove/etcd-member",
            &format!("remove `{name}`'s etcd member"),
            format!("id=$({find}); [ -z \"$id\" ] || {etcdctl} member remove \"$id\""),
            Some(format!("[ -z \"$({find})\" ]")),
        ));
    }
    s
}
