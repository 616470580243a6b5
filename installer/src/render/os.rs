//! Kernel modules and sysctls Kubernetes needs.

/// `/etc/modules-load.d/` file.
pub const MODULES_PATH: &str = "/etc/modules-load.d/kubernetes.conf";
/// `/etc/sysctl.d/` file.
pub const SYSCTL_PATH: &str = "/etc/sysctl.d/90-kubernetes.conf";

/// Modules: overlay and bridge netfilter for containerd and the CNI, IPVS for
/// kube-proxy, conntrack.
pub const MODULES: &[&str] = &[
    "br_netfilter",
    "overlay",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_sh",
    "nf_conntrack",
];

/// Sysctls set by [`sysctl_conf`].
pub const SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
];

/// modules-load.d content.
pub fn modules_conf() -> String {
    let mut s = String::from("# Written by bundle: modules Kubernetes needs, loaded at boot.\n");
    for m in MODULES {
        s.push_str(m);
        s.push('\n');
    }
    s
}

/// sysctl.d content.
pub fn sysctl_conf() -> String {
    let mut s =
        String::from("# Written by bundle: forwarding and bridged traffic through iptables.\n");
    for (k, v) in SYSCTLS {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}
