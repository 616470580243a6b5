//! `/etc/haproxy/haproxy.cfg` on every master: TCP on the endpoint port to every
//! master's kube-apiserver, with health checks against `/readyz`, and statistics on a
//! port of their own bound to 127.0.0.1.

use std::fmt::Write as _;

use crate::inventory::Cluster;
use crate::render::host_port;

/// Path on the host.
pub const PATH: &str = "/etc/haproxy/haproxy.cfg";
/// The backend's name (verify reads it from the statistics).
pub const BACKEND: &str = "kube-apiserver";

/// Renders haproxy.cfg.
pub fn render(cluster: &Cluster) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "# Written by bundle for cluster `{name}`: do not edit, `bundle install` rewrites it.
global
    log /dev/log local0
    maxconn 20000
    user haproxy
    group haproxy

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    retries 3
    timeout connect 5s
    # API watches are long-lived connections.
    timeout client 1h
    timeout server 1h
    timeout check 5s

frontend kube-apiserver-lb
    bind *:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    # Health check: kube-apiserver's /readyz over TLS (anonymous access is allowed).
    option httpchk
    http-check connect ssl
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server inter 2s downinter 5s rise 2 fall 2 check check-ssl verify none
",
        name = cluster.name,
        port = cluster.lb_port
    );
    for m in cluster.masters() {
        let _ = writeln!(s, "    server {} {}", m.name, host_port(&m.address, 6443));
    }
    let _ = write!(
        s,
        "
listen stats
    mode http
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
    stats refresh 10s
",
        stats = cluster.stats_port
    );
    s
}
