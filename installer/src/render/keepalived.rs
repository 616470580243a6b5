//! `/etc/keepalived/keepalived.conf` on every master: the first master starts as
//! MASTER, the others as BACKUP with falling priorities; a track script lowers a
//! master's priority below every healthy one when its haproxy is down.
//!
//! Without preemption (`controlPlaneEndpoint.preempt: false`) every master starts as
//! BACKUP with `nopreempt`, so a master that comes back (a reboot, `bundle nodes add`)
//! does not take the VIP from the one holding it. A priority change would then move
//! nothing, so the track script has no weight: a master whose haproxy is down goes to
//! FAULT and lets the VIP go.

use std::fmt::Write as _;

use crate::inventory::{Cluster, Node};
use crate::secrets::Secret;

/// Path on the host.
pub const PATH: &str = "/etc/keepalived/keepalived.conf";

/// Priority of the `i`-th master: 200, 190, 180, ... (at most 9 masters: ≥ 120).
pub fn priority(i: usize) -> u32 {
    200 - 10 * i as u32
}

/// The `state` the `i`-th master starts in: the first is MASTER, unless nobody
/// preempts (then all are BACKUP and the election picks the highest priority).
pub fn initial_state(cluster: &Cluster, i: usize) -> &'static str {
    if i == 0 && cluster.preempt {
        "MASTER"
    } else {
        "BACKUP"
    }
}

/// How much a failing track script lowers the priority: enough to drop any master
/// below every healthy one.
pub const TRACK_WEIGHT: i32 = -100;

/// Renders keepalived.conf for `node`, the `index`-th master.
pub fn render(cluster: &Cluster, node: &Node, index: usize) -> String {
    let mut s = String::new();
    let state = initial_state(cluster, index);
    let weight = match cluster.preempt {
        true => format!("\n    weight {TRACK_WEIGHT}"),
        false => String::new(),
    };
    let nopreempt = match cluster.preempt {
        true => "",
        false => "\n    nopreempt",
    };
    let _ = write!(
        s,
        "# Written by bundle for cluster `{cluster_name}`: do not edit, `bundle install` rewrites it.
global_defs {{
    router_id {name}
    enable_script_security
    script_user root
}}

# Lowers this master's priority when its haproxy is not running, so the VIP moves
# to a master whose haproxy serves.
vrrp_script check_haproxy {{
    script \"/usr/bin/pgrep -x haproxy\"
    interval 2
    timeout 2
    fall 2
    rise 2{weight}
}}

vrrp_instance kube_apiserver {{
    state {state}
    interface {iface}
    virtual_router_id {vrid}
    priority {prio}{nopreempt}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass {auth}
    }}
",
        cluster_name = cluster.name,
        name = node.name,
        iface = node.interface,
        vrid = cluster.virtual_router_id,
        prio = priority(index),
        auth = Secret::KeepalivedAuth.placeholder(),
    );
    if cluster.unicast {
        let _ = writeln!(s, "    unicast_src_ip {}", node.address);
        let _ = writeln!(s, "    unicast_peer {{");
        for m in cluster.masters().filter(|m| m.name != node.name) {
            let _ = writeln!(s, "        {}", m.address);
        }
        let _ = writeln!(s, "    }}");
    }
    let prefix = if cluster.vip.is_ipv4() { 32 } else { 128 };
    let _ = write!(
        s,
        "    virtual_ipaddress {{
        {vip}/{prefix} dev {iface}
    }}
    track_script {{
        check_haproxy
    }}
}}
",
        vip = cluster.vip,
        iface = node.interface
    );
    s
}
