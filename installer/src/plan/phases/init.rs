//! Phase `init`: `kubeadm init` on the first master, the CA hash every join pins,
//! root's kubeconfig, and the API answering through the VIP.

use super::super::checks::PlanContext;
use super::super::steps::{capture, completion, kubeconfigs, run, wait, write};
use super::super::HostSteps;
use super::host;
use crate::render::kubeadm;
use crate::secrets::CA_CERT_HASH;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let cluster = ctx.cluster;
    let api = ctx.kubeadm_api;
    let mut s = vec![
        write(
            "init/config",
            &format!("kubeadm configuration ({api}){}", kube_proxy_settings(cluster)),
            kubeadm::INIT_PATH,
            kubeadm::init_config(cluster, api, &ctx.facts.kubernetes_version, &ctx.image_repository),
            "0600",
        ),
        run("init/pull", "pull the control plane images from the registry", format!("kubeadm config images pull --config {}", kubeadm::INIT_PATH), Some("test -f /etc/kubernetes/admin.conf".into())),
        run(
            "init/kubeadm",
            "kubeadm init (certificates uploaded for the other masters)",
            format!("kubeadm init --config {} --upload-certs", kubeadm::INIT_PATH),
            Some("test -f /etc/kubernetes/admin.conf".into()),
        ),
        capture(
            "init/ca-cert-hash",
            "hash of the cluster CA's public key, pinned by every join",
            "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum | sed 's/^\\([0-9a-f]*\\).*/sha256:\\1/'".into(),
            CA_CERT_HASH,
        ),
    ];
    s.extend(kubeconfigs("init", &cluster.admin_users));
    if cluster.shell_completion {
        s.push(completion("init"));
    }
    s.push(wait(
        "init/endpoint",
        &format!("the API answers through the VIP {}", ctx.endpoint),
        format!(
            "curl -ksf -o /dev/null {}",
            kubeadm::readyz(&cluster.vip, cluster.lb_port)
        ),
        300,
    ));
    vec![host(ctx.first, 0, s)]
}

/// kube-proxy's IPVS settings when they are not the defaults (`rr`, no strictARP).
fn kube_proxy_settings(cluster: &crate::inventory::Cluster) -> String {
    if cluster.proxy_mode != "ipvs" {
        return String::new();
    }
    let mut s = Vec::new();
    if cluster.ipvs_scheduler != "rr" {
        s.push(format!("scheduler {}", cluster.ipvs_scheduler));
    }
    if cluster.ipvs_strict_arp {
        s.push("strictARP".to_string());
    }
    if s.is_empty() {
        String::new()
    } else {
        format!("; kube-proxy ipvs: {}", s.join(", "))
    }
}
