//! Phase `verify`: every node Ready and one etcd member per master (asked on the
//! first master), every haproxy backend UP, the API answering on the VIP from every
//! host. A re-run always looks again. Once a host's checks passed, the release is
//! recorded on it (and, from the first master, in the cluster).

use super::super::checks::PlanContext;
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
