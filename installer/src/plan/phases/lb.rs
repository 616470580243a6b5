//! Phase `lb`: haproxy (TCP to every master's API server) and keepalived (the VIP)
//! on every master; the first master is keepalived MASTER and waits for the VIP.

use super::super::checks::PlanContext;
use super::super::steps::{restart, run, step, wait, write};
use super::super::{HostStep, HostSteps, OnFailure, Step};
use super::host;
use crate::inventory::{Cluster, Node};
use crate::render::{haproxy, keepalived};

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let cluster = ctx.cluster;
    let mut hosts = Vec::new();
    for (i, m) in ctx.masters.iter().enumerate() {
        let [haproxy_config, haproxy_check] = haproxy_steps(cluster);
        let [keepalived_config, keepalived_check] = keepalived_steps(cluster, m, i);
        let mut s = vec![
            haproxy_config,
            haproxy_check,
            restart("lb/haproxy-restart", "haproxy", vec![haproxy::PATH.into()]),
            keepalived_config,
            keepalived_check,
            restart(
                "lb/keepalived-restart",
                "keepalived",
                vec![keepalived::PATH.into()],
            ),
        ];
        if i == 0 {
            s.push(vip_up(cluster, m));
        }
        hosts.push(host(m, 0, s));
    }
    hosts
}

/// haproxy's configuration for the masters of `cluster`, and its check.
pub(in crate::plan) fn haproxy_steps(cluster: &Cluster) -> [Step; 2] {
    [
        write(
            "lb/haproxy-config",
            &format!("haproxy: TCP {} to every master's 6443", cluster.lb_port),
            haproxy::PATH,
            haproxy::render(cluster),
            "0644",
        ),
        run(
            "lb/haproxy-check",
            "haproxy accepts its configuration",
            format!("haproxy -c -q -f {}", haproxy::PATH),
            None,
        ),
    ]
}

/// The first master waits for the VIP: on itself, or, without preemption (where the
/// first keepalived to start may win the election and keep it), on any master.
fn vip_up(cluster: &Cluster, first: &Node) -> Step {
    match cluster.preempt {
        true => wait(
            "lb/vip",
            &format!("the VIP {} is up on this master", cluster.vip),
            format!(
                "ip -o addr show dev {} | grep -qw '{}'",
                first.interface, cluster.vip
            ),
            60,
        ),
        false => wait(
            "lb/vip",
            &format!(
                "the VIP {} answers (held by whichever master won)",
                cluster.vip
            ),
            format!("ping -c 1 -W 1 {} >/dev/null 2>&1", cluster.vip),
            60,
        ),
    }
}

/// keepalived's configuration on master `m` (the `i`th), and its check.
pub(in crate::plan) fn keepalived_steps(cluster: &Cluster, m: &Node, i: usize) -> [Step; 2] {
    [
        write(
            "lb/keepalived-config",
            &format!(
                "keepalived: {} priority {}",
                keepalived::initial_state(cluster, i),
                keepalived::priority(i)
            ),
            keepalived::PATH,
            keepalived::render(cluster, m, i),
            "0600",
        ),
        run(
            "lb/keepalived-check",
            "keepalived accepts its configuration",
            format!("keepalived -t -f {}", keepalived::PATH),
            None,
        ),
    ]
}

/// The load balancer of master `m` (the `i`th) configured again for the masters of
/// `cluster` after one was added or removed: reloaded where it runs (keepalived
/// re-reads its configuration on SIGHUP and keeps the VIP; haproxy lets its old process
/// finish its connections), started on a master that joins (`starts`).
pub(in crate::plan) fn configured_again(
    cluster: &Cluster,
    m: &Node,
    i: usize,
    starts: bool,
) -> Vec<Step> {
    let [h, hc] = haproxy_steps(cluster);
    let [k, kc] = keepalived_steps(cluster, m, i);
    let apply = |unit: &str, path: &str| match starts {
        true => restart(&format!("lb/{unit}-restart"), unit, vec![path.into()]),
        false => reload(unit, path),
    };
    vec![
        h,
        hc,
        apply("haproxy", haproxy::PATH),
        k,
        kc,
        apply("keepalived", keepalived::PATH),
    ]
}

/// Reloads `unit` after its configuration `path` changed.
fn reload(unit: &str, path: &str) -> Step {
    step(
        &format!("lb/{unit}-reload"),
        &format!("reload {unit} with its new configuration"),
        HostStep::Run {
            command: format!("systemctl reload {unit}"),
            check: Some(format!("systemctl is-active --quiet {unit}")),
            after_change_of: vec![path.into()],
            capture: None,
            on_failure: OnFailure::Stop,
        },
    )
}
