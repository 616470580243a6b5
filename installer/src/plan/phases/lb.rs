//! Phase `lb`: haproxy (TCP to every master's API server) and keepalived (the VIP)
//! on every master; the first master is keepalived MASTER and waits for the VIP.

use super::super::checks::PlanContext;
use super::super::steps::{restart, run, wait, write};
use super::super::HostSteps;
use super::host;
use crate::render::{haproxy, keepalived};

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let cluster = ctx.cluster;
    let mut hosts = Vec::new();
    for (i, m) in ctx.masters.iter().enumerate() {
        let mut s = vec![
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
            restart("lb/haproxy-restart", "haproxy", vec![haproxy::PATH.into()]),
            write(
                "lb/keepalived-config",
                &format!(
                    "keepalived: {} priority {}",
                    if i == 0 { "MASTER" } else { "BACKUP" },
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
            restart(
                "lb/keepalived-restart",
                "keepalived",
                vec![keepalived::PATH.into()],
            ),
        ];
        if i == 0 {
            s.push(wait(
                "lb/vip",
                &format!("the VIP {} is up on this master", cluster.vip),
                format!(
                    "ip -o addr show dev {} | grep -qw '{}'",
                    m.interface, cluster.vip
                ),
                60,
            ));
        }
        hosts.push(host(m, 0, s));
    }
    hosts
}
