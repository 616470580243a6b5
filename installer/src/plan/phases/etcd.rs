//! Phase `etcd` (external etcd only): on every etcd host the certificates, the
//! kubelet that runs nothing but the member's static pod, the image and the pod;
//! then the cluster healthy, asked on the first etcd host; then every master holds
//! the etcd CA and the API server's client certificate, and the first master reaches
//! every member with them, as its API server is about to.

use super::super::checks::PlanContext;
use super::super::commands::{CRICTL_ETCDCTL, ETCD_CONTAINER};
use super::super::steps::{run, step, wait, write};
use super::super::{HostStep, HostSteps, OnFailure, Step};
use super::host;
use crate::inventory::Node;
use crate::pki::{self, APISERVER_CLIENT_CRT, APISERVER_CLIENT_KEY, ETCD_DIR, MEMBER_CERTS};
use crate::render::etcd;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    let (Some(image), Some(first)) = (&ctx.etcd_image, ctx.cluster.etcd_hosts().next()) else {
        return vec![];
    };
    let mut hosts: Vec<HostSteps> = ctx
        .cluster
        .etcd_hosts()
        .map(|n| host(n, 0, member(ctx, n, image)))
        .collect();
    hosts.push(host(first, 1, vec![cluster_healthy(ctx)]));
    for m in &ctx.masters {
        let mut s = client_certificate();
        if m.name == ctx.first.name {
            s.push(reached_as_apiserver(ctx));
        }
        hosts.push(host(m, 2, s));
    }
    hosts
}

/// A member's certificates, kubelet, image and static pod.
fn member(ctx: &PlanContext, n: &Node, image: &str) -> Vec<Step> {
    let mut s = vec![ca_certificate()];
    s.extend(member_certificates("etcd/", &n.name));
    s.push(run(
        "etcd/pull",
        "pull etcd's image from the registry",
        format!("crictl pull {image}"),
        Some(format!("crictl inspecti {image} >/dev/null 2>&1")),
    ));
    s.extend(kubelet());
    s.push(write(
        "etcd/manifest",
        &format!(
            "the member's static pod ({} of {})",
            n.name,
            ctx.cluster.etcd_hosts().count()
        ),
        etcd::MANIFEST_PATH,
        etcd::manifest(ctx.cluster, n, image),
        "0600",
    ));
    s
}

/// The member `name`'s server, peer and health-check client certificates and keys,
/// as `<secret:…>` placeholders, in steps named `{id}CERT-crt` and `{id}CERT-key`
/// (a renewal writes them again).
pub(crate) fn member_certificates(id: &str, name: &str) -> Vec<Step> {
    let mut s = Vec::new();
    for cert in MEMBER_CERTS {
        let entry = format!("{name}/{cert}");
        s.push(write(
            &format!("{id}{cert}-crt"),
            &format!("etcd's {cert} certificate"),
            &format!("{ETCD_DIR}/{cert}.crt"),
            pki::placeholder(&format!("{entry}.crt")),
            "0644",
        ));
        s.push(write(
            &format!("{id}{cert}-key"),
            &format!("etcd's {cert} key"),
            &format!("{ETCD_DIR}/{cert}.key"),
            pki::placeholder(&format!("{entry}.key")),
            "0600",
        ));
    }
    s
}

fn ca_certificate() -> Step {
    write(
        "etcd/ca",
        "the etcd CA's certificate",
        &format!("{ETCD_DIR}/ca.crt"),
        pki::placeholder("ca.crt"),
        "0644",
    )
}

/// The kubelet as etcd's service manager: its configuration, the drop-in, and a
/// restart whenever either changed (systemd reads drop-ins on daemon-reload only).
fn kubelet() -> Vec<Step> {
    let files = vec![
        etcd::KUBELET_CONFIG_PATH.to_string(),
        etcd::KUBELET_DROP_IN_PATH.to_string(),
    ];
    vec![
        write(
            "etcd/kubelet-config",
            "the kubelet's configuration: static pods only, no API server",
            etcd::KUBELET_CONFIG_PATH,
            etcd::kubelet_config(),
            "0644",
        ),
        write(
            "etcd/kubelet-drop-in",
            "the kubelet started with that configuration alone",
            etcd::KUBELET_DROP_IN_PATH,
            etcd::kubelet_drop_in(),
            "0644",
        ),
        step(
            "etcd/kubelet",
            "enable the kubelet and restart it when its configuration changed",
            HostStep::Run {
                command: "systemctl daemon-reload && systemctl enable kubelet && systemctl restart kubelet".into(),
                check: Some("systemctl is-active --quiet kubelet".into()),
                after_change_of: files,
                capture: None,
                on_failure: OnFailure::Stop,
            },
        ),
    ]
}

/// Every member started and healthy: the members wait for each other to form the
/// cluster, so this waits once, after all of them were started.
fn cluster_healthy(ctx: &PlanContext) -> Step {
    members_healthy("etcd/healthy", ctx.cluster.etcd_hosts().count())
}

/// `n` members started, every one healthy, asked through this host's member.
pub(crate) fn members_healthy(id: &str, n: usize) -> Step {
    wait(
        id,
        &format!("etcd has {n} started members, every one healthy"),
        format!("{ETCD_CONTAINER}; [ \"$({CRICTL_ETCDCTL} member list | grep -c ', started, ')\" -eq {n} ] && {CRICTL_ETCDCTL} endpoint health --cluster"),
        300,
    )
}

/// What the API servers connect to etcd with (kubeadm's `--upload-certs` also hands
/// them to joining masters; written here so that every master has them first).
fn client_certificate() -> Vec<Step> {
    let mut s = vec![ca_certificate()];
    s.extend(apiserver_client_certificate("etcd/"));
    s
}

/// The API server's etcd client certificate and key, in steps `{id}apiserver-client-…`.
pub(crate) fn apiserver_client_certificate(id: &str) -> Vec<Step> {
    vec![
        write(
            &format!("{id}apiserver-client-crt"),
            "the API server's etcd client certificate",
            APISERVER_CLIENT_CRT,
            pki::placeholder("apiserver-etcd-client.crt"),
            "0644",
        ),
        write(
            &format!("{id}apiserver-client-key"),
            "the API server's etcd client key",
            APISERVER_CLIENT_KEY,
            pki::placeholder("apiserver-etcd-client.key"),
            "0600",
        ),
    ]
}

/// Every member answers `/health` to the API server's certificate, from this master.
fn reached_as_apiserver(ctx: &PlanContext) -> Step {
    reached_by_client_certificate("etcd/reached", &etcd::client_urls(ctx.cluster))
}

/// Every member at `urls` answers `/health` to the API server's certificate, from
/// this master.
pub(crate) fn reached_by_client_certificate(id: &str, urls: &[String]) -> Step {
    let urls = urls.join(" ");
    wait(
        id,
        "every member answers the API server's client certificate from this master",
        format!("for u in {urls}; do curl -sf --max-time 5 --cacert {ETCD_DIR}/ca.crt --cert {APISERVER_CLIENT_CRT} --key {APISERVER_CLIENT_KEY} \"$u/health\" | grep -q '\"health\":\"true\"' || exit 1; done"),
        120,
    )
}
