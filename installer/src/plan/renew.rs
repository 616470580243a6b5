//! The plan of `bundle certs renew`.
//!
//! With external etcd (`spec.etcd.external`) the members come first, which kubeadm's
//! own renewal leaves to the operator: on each etcd host in turn (one wave each, so
//! that quorum is never at stake) its renewed certificates written, its container
//! stopped so that its kubelet starts it on them, and the whole cluster healthy again
//! before the next member. The certificates themselves are issued on the deploy node
//! and kept in `secrets.json` before this plan runs (see [`crate::pki`]); the plan
//! holds `<secret:…>` placeholders only.
//!
//! Then on each master in turn (one wave each, so the control plane never restarts on
//! two at once): with external etcd the API server's renewed etcd client certificate;
//! `kubeadm certs renew all`; the control plane's containers stopped so the kubelet
//! starts them on the new certificates (they do not all reload them); the API server
//! waited for (and, with external etcd, every member reached with the new client
//! certificate); root's kubeconfig copied again from the renewed `admin.conf`.

use super::phases::etcd::{
    apiserver_client_certificate, member_certificates, members_healthy,
    reached_by_client_certificate,
};
use super::steps::{kubeconfigs, run, wait};
use super::{HostSteps, Phase, PhaseName, Plan, PlanHost, Step};
use crate::render::host_port;

/// Containers kubeadm runs as static pods, restarted after a renewal.
const CONTROL_PLANE: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

/// The renewal plan for `masters` (in order) of the cluster installed with
/// `installed`, after its external etcd members (in plan order) when it has them.
/// Pure, as [`super::plan()`] is.
pub fn renewal(installed: &Plan, masters: &[String]) -> Plan {
    let members: Vec<&PlanHost> = installed.hosts_with_role("etcd").collect();
    let mut hosts: Vec<HostSteps> = members
        .iter()
        .enumerate()
        .map(|(i, m)| HostSteps {
            host: m.name.clone(),
            wave: i as u32,
            steps: member_steps(m, members.len()),
        })
        .collect();
    let urls: Vec<String> = members.iter().filter_map(|m| client_url(m)).collect();
    let first_master_wave = members.len();
    hosts.extend(masters.iter().enumerate().map(|(i, m)| HostSteps {
        host: m.clone(),
        wave: (first_master_wave + i) as u32,
        steps: master_steps(installed, &urls),
    }));
    let mut plan = installed.clone();
    plan.hosts
        .retain(|h| masters.contains(&h.name) || members.iter().any(|m| m.name == h.name));
    plan.phases = vec![Phase {
        name: PhaseName::Renew,
        hosts,
    }];
    plan.repo_served_by_deploy = None;
    plan
}

/// `https://ADDRESS:2379`, as the etcd phase gave it to the API servers.
fn client_url(member: &PlanHost) -> Option<String> {
    let ip = member.address.parse().ok()?;
    Some(format!("https://{}", host_port(&ip, 2379)))
}

/// One external member: its new certificates, a restart, the cluster healthy again
/// (asked through this member, so that it must be back and serving first).
fn member_steps(member: &PlanHost, members: usize) -> Vec<Step> {
    let mut s = member_certificates("renew/etcd-", &member.name);
    s.push(run(
        "renew/etcd-restart",
        "the member's container stopped: its kubelet starts it on the new certificates",
        "crictl ps --name etcd -q | xargs -r crictl stop >/dev/null".into(),
        None,
    ));
    s.push(members_healthy("renew/etcd-healthy", members));
    s
}

/// One master: kubeadm's renewal, the control plane restarted, the API server and
/// (external etcd, `etcd_urls` not empty) the members reached again.
fn master_steps(installed: &Plan, etcd_urls: &[String]) -> Vec<Step> {
    let restart = format!(
        "for c in {}; do crictl ps --name \"$c\" -q | xargs -r crictl stop >/dev/null; done",
        CONTROL_PLANE.join(" ")
    );
    let external = !etcd_urls.is_empty();
    let mut s = Vec::new();
    if external {
        s.extend(apiserver_client_certificate("renew/etcd-"));
    }
    s.push(run(
        "renew/certs",
        "kubeadm renews every certificate it issued",
        "kubeadm certs renew all".into(),
        None,
    ));
    s.push(run(
        "renew/restart",
        "the control plane's containers restarted on the new certificates",
        restart,
        None,
    ));
    s.push(wait(
        "renew/api",
        "the API server answers on this master",
        "curl -ksf -o /dev/null https://127.0.0.1:6443/readyz".into(),
        300,
    ));
    if external {
        s.push(reached_by_client_certificate(
            "renew/etcd-reached",
            etcd_urls,
        ));
    }
    s.extend(kubeconfigs("renew", &installed.admin_users));
    s
}
