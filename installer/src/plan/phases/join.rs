//! Phase `join`: refresh the uploaded certificates (they expire after 2 hours), then
//! one master at a time, each waiting for its etcd member to be started (a voter, not
//! a learner) and every member healthy before the next one joins, then every worker
//! at once.

use super::super::checks::PlanContext;
use super::super::steps::{completion, join, kubeconfigs, run, wait};
use super::super::{HostSteps, Step};
use super::host;
use crate::inventory::Node;
use crate::render::kubeadm;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let mut hosts = Vec::new();
    let mut wave = 0;
    if ctx.masters.len() > 1 {
        hosts.push(host(ctx.first, wave, vec![upload_certs()]));
        wave += 1;
    }
    for m in ctx.masters.iter().skip(1) {
        hosts.push(host(m, wave, master(ctx, m)));
        wave += 1;
    }
    for w in ctx.cluster.workers_only() {
        hosts.push(host(w, wave, join(ctx, w).into()));
    }
    hosts
}

fn upload_certs() -> Step {
    run(
        "join/upload-certs",
        "upload the control plane certificates again (kubeadm deletes them after 2 hours)",
        format!(
            "kubeadm init phase upload-certs --upload-certs --config {}",
            kubeadm::INIT_PATH
        ),
        None,
    )
}

/// A master joins, its API server answers, and it waits for its etcd member.
fn master(ctx: &PlanContext, m: &Node) -> Vec<Step> {
    let mut s: Vec<Step> = join(ctx, m).into();
    s.push(wait(
        "join/apiserver",
        "this master's API server is ready",
        format!(
            "curl -ksf -o /dev/null {}",
            kubeadm::readyz(&m.address, 6443)
        ),
        300,
    ));
    s.extend(kubeconfigs("join", &ctx.cluster.admin_users));
    if ctx.cluster.shell_completion {
        s.push(completion("join"));
    }
    if !ctx.cluster.external_etcd() {
        s.push(etcd_member(ctx, m));
    }
    s
}

/// Where a master waits for its etcd member: started, a voter, every member healthy.
fn etcd_member(ctx: &PlanContext, m: &Node) -> Step {
    let etcdctl = &ctx.etcdctl;
    wait(
        "join/etcd",
        &format!(
            "this master's etcd member is started and every member healthy (etcd on `{}` asked) before the next master joins",
            ctx.first.name
        ),
        format!(
            "{etcdctl} member list | awk -F', ' '$2 == \"started\" && $3 == \"{}\" && $6 == \"false\" {{ found = 1 }} END {{ exit !found }}' && {etcdctl} endpoint health --cluster",
            m.name
        ),
        300,
    )
}
