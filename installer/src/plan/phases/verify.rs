//! Phase `verify`: every node Ready and one etcd member per master (asked on the
//! first master; with external etcd, one per etcd host, asked on the first of them,
//! every member healthy), every haproxy backend UP, the API answering on the VIP from every
//! host. A re-run always looks again. Once a host's checks passed, the release is
//! recorded on it (and, from the first master, in the cluster).

use super::super::checks::PlanContext;
use super::super::commands::{CRICTL_ETCDCTL, ETCD_CONTAINER};
use super::super::steps::{or_fail, run, wait, write};
use super::super::{HostSteps, Step};
use super::host;
use crate::release;
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
            if ctx
                .cluster
                .etcd_hosts()
                .next()
                .is_some_and(|e| e.name == n.name)
            {
                s.push(external_etcd_members(ctx));
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
            s.extend(record_release(ctx, n.name == ctx.first.name));
            host(n, 0, s)
        })
        .collect()
}

/// Nodes Ready and (stacked) etcd's members, asked once.
fn cluster_checks(ctx: &PlanContext) -> Vec<Step> {
    let node_count = ctx.cluster.kube_nodes().count();
    let masters = ctx.masters.len();
    let (kubectl, etcdctl) = (&ctx.kubectl, &ctx.etcdctl);
    let nodes = wait(
        "verify/nodes-ready",
        &format!("all {node_count} nodes Ready"),
        format!("[ \"$({kubectl} get nodes --no-headers | awk '$2 == \"Ready\"' | wc -l)\" -eq {node_count} ]"),
        600,
    );
    if ctx.cluster.external_etcd() {
        return vec![nodes];
    }
    vec![
        nodes,
        run(
            "verify/etcd-members",
            &format!("etcd has {masters} started members, one per master"),
            or_fail(
                &format!("[ \"$({etcdctl} member list | grep -c ', started, ')\" -eq {masters} ]"),
                "etcd members differ from the masters",
            ),
            None,
        ),
    ]
}

/// The external members, asked on the first etcd host through its own member.
fn external_etcd_members(ctx: &PlanContext) -> Step {
    let n = ctx.cluster.etcd_hosts().count();
    run(
        "verify/etcd-members",
        &format!("etcd has {n} started members, one per etcd host, every one healthy"),
        or_fail(
            &format!("{ETCD_CONTAINER}; [ \"$({CRICTL_ETCDCTL} member list | grep -c ', started, ')\" -eq {n} ] && {CRICTL_ETCDCTL} endpoint health --cluster >/dev/null"),
            "etcd's members differ from the etcd hosts, or one is unhealthy",
        ),
        None,
    )
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

/// `/etc/bundle/release.json` on the host; on the first master also the ConfigMap
/// `kube-system/bundle-release`, applied (again on every run: `apply` is idempotent).
fn record_release(ctx: &PlanContext, first: bool) -> Vec<Step> {
    let r = &ctx.facts.release;
    let mut s = vec![write(
        "verify/release",
        &format!("record the release installed ({} {})", r.bundle, r.version),
        release::HOST_PATH,
        r.to_json(),
        "0644",
    )];
    if first {
        s.push(write(
            "verify/release-configmap",
            &format!("the ConfigMap kube-system/{}", release::CONFIGMAP),
            release::CONFIGMAP_PATH,
            r.configmap(),
            "0644",
        ));
        s.push(run(
            "verify/release-apply",
            "record the release in the cluster",
            format!("{} apply -f {}", ctx.kubectl, release::CONFIGMAP_PATH),
            None,
        ));
    }
    s
}
