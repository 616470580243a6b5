//! The plan of `bundle certs renew`: on each master in turn (one wave each, so the
//! control plane never restarts on two at once), `kubeadm certs renew all`, the control
//! plane's containers stopped so the kubelet starts them on the new certificates (they
//! do not all reload them), the API server waited for, and root's kubeconfig copied
//! again from the renewed `admin.conf`.

use super::steps::{kubeconfigs, run, wait};
use super::{HostSteps, Phase, PhaseName, Plan};

/// Containers kubeadm runs as static pods, restarted after a renewal.
const CONTROL_PLANE: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

/// The renewal plan for `masters` (in order) of the cluster installed with
/// `installed`. Pure, as [`super::plan()`] is.
pub fn renewal(installed: &Plan, masters: &[String]) -> Plan {
    let restart = format!(
        "for c in {}; do crictl ps --name \"$c\" -q | xargs -r crictl stop >/dev/null; done",
        CONTROL_PLANE.join(" ")
    );
    let hosts = masters
        .iter()
        .enumerate()
        .map(|(i, m)| HostSteps {
            host: m.clone(),
            wave: i as u32,
            steps: vec![
                run(
                    "renew/certs",
                    "kubeadm renews every certificate it issued",
                    "kubeadm certs renew all".into(),
                    None,
                ),
                run(
                    "renew/restart",
                    "the control plane's containers restarted on the new certificates",
                    restart.clone(),
                    None,
                ),
                wait(
                    "renew/api",
                    "the API server answers on this master",
                    "curl -ksf -o /dev/null https://127.0.0.1:6443/readyz".into(),
                    300,
                ),
            ]
            .into_iter()
            .chain(kubeconfigs("renew", &installed.admin_users))
            .collect(),
        })
        .collect();
    let mut plan = installed.clone();
    plan.hosts.retain(|h| masters.contains(&h.name));
    plan.phases = vec![Phase {
        name: PhaseName::Renew,
        hosts,
    }];
    plan.repo_served_by_deploy = None;
    plan
}
