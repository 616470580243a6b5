//! Phase `verify`: every node Ready and one etcd member per master (asked on the
//! first master), every haproxy backend UP, the API answering on the VIP from every
//! host. A re-run always looks again.

use super::super::checks::PlanContext;
use super::super::steps::{or_fail, run, wait};
use super::super::{HostSteps, Step};
use super::host;
use crate::render::{haproxy, kubeadm};

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    ctx.cluster
        .nodes
        .iter()
        .map(|n| {
            let mut s = Vec::new();
            if n.name == ctx.first.name {
                s.extend(cluster_checks(ctx));
            }
            if n.master {
                s.push(haproxy_backends(ctx));
            }
            s.push(run(
                "verify/vip",
                &format!("the API answers on the VIP {} from this host", ctx.endpoint),
                format!(
                    "curl -ksf -o /dev/null {}",
                    kubeadm::readyz(&ctx.cluster.vip, ctx.cluster.lb_port)
                ),
                None,
            ));
            host(n, 0, s)
        })
        .collect()
}

/// Nodes Ready and etcd's members, asked once.
fn cluster_checks(ctx: &PlanContext) -> [Step; 2] {
    let node_count = ctx.cluster.nodes.len();
    let masters = ctx.masters.len();
    let (kubectl, etcdctl) = (&ctx.kubectl, &ctx.etcdctl);
    [
        wait(
            "verify/nodes-ready",
            &format!("all {node_count} nodes Ready"),
            format!("[ \"$({kubectl} get nodes --no-headers | awk '$2 == \"Ready\"' | wc -l)\" -eq {node_count} ]"),
            600,
        ),
        run(
            "verify/etcd-members",
            &format!("etcd has {masters} started members, one per master"),
            or_fail(
                &format!(
                    "[ \"$({etcdctl} member list | grep -c ', started, ')\" -eq {masters} ]"
                ),
                "etcd members differ from the masters",
            ),
            None,
        ),
    ]
}

fn haproxy_backends(ctx: &PlanContext) -> Step {
    wait(
        "verify/haproxy-backends",
        "every haproxy backend is UP",
        format!(
            "curl -fsS 'http://127.0.0.1:{}/stats;csv' | awk -F, '$1 == \"{b}\" && $2 != \"BACKEND\" {{ n++; if ($18 != \"UP\") bad = 1 }} END {{ exit (bad || n != {}) }}'",
            ctx.cluster.stats_port,
            ctx.masters.len(),
            b = haproxy::BACKEND
        ),
        120,
    )
}
