//! Phase `os`: swap off, kernel modules and sysctls, SELinux permissive, firewalld
//! stopped, the registry's address in `/etc/hosts` when the inventory gives one.

use super::super::checks::PlanContext;
use super::super::steps::{run, write};
use super::super::{HostSteps, Step};
use super::host;
use crate::render::os;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    ctx.cluster
        .nodes
        .iter()
        .map(|n| {
            let mut s = system();
            s.extend(hosts_registry(ctx));
            host(n, 0, s)
        })
        .collect()
}

fn system() -> Vec<Step> {
    vec![
        run(
            "os/swap",
            "swap off now and at boot (fstab line commented)",
            "swapoff -a && sed -ri '/^[^#].*[[:space:]]swap[[:space:]]/s/^/# (bundle: swap off) /' /etc/fstab".into(),
            Some("! swapon --noheadings --show | grep -q . && ! grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab".into()),
        ),
        write("os/modules-file", "kernel modules loaded at boot", os::MODULES_PATH, os::modules_conf(), "0644"),
        run("os/modules", "load the kernel modules now", format!("modprobe -a {}", os::MODULES.join(" ")), None),
        write("os/sysctl-file", "forwarding and bridge netfilter sysctls", os::SYSCTL_PATH, os::sysctl_conf(), "0644"),
        run("os/sysctl", "apply the sysctls now", format!("sysctl -q --load {}", os::SYSCTL_PATH), None),
        run(
            "os/selinux",
            "SELinux permissive (as kubeadm's install guide asks)",
            "command -v setenforce >/dev/null || exit 0; setenforce 0 2>/dev/null || true; sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config".into(),
            Some("! command -v getenforce >/dev/null || { [ \"$(getenforce)\" != Enforcing ] && ! grep -qx 'SELINUX=enforcing' /etc/selinux/config; }".into()),
        ),
        run(
            "os/firewalld",
            "firewalld stopped and disabled (the CNI and kube-proxy manage packet filtering)",
            "systemctl disable --now firewalld".into(),
            Some("! systemctl is-enabled --quiet firewalld 2>/dev/null && ! systemctl is-active --quiet firewalld".into()),
        ),
    ]
}

/// `spec.registry.address` in `/etc/hosts` (the host without its port).
fn hosts_registry(ctx: &PlanContext) -> Option<Step> {
    let cluster = ctx.cluster;
    let addr = cluster.registry_address?;
    let registry = &cluster.registry_host;
    let host_only = registry.split(':').next().unwrap_or(registry);
    let line = format!("{addr} {host_only}");
    Some(run(
        "os/hosts-registry",
        "the registry's address in /etc/hosts",
        format!("printf '%s\\n' '{line}' >> /etc/hosts"),
        Some(format!("grep -qxF '{line}' /etc/hosts")),
    ))
}
