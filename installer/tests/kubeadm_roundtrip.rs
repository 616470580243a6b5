//! The kubeadm configuration parsed back into structs that mirror the upstream API
//! (field names from kubeadm's `cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go` and
//! `v1beta4/types.go`), refusing unknown fields: a misspelt or misplaced field fails.
//! v1beta3 `extraArgs` are maps; v1beta4 ones are lists of `{name, value}`.

#![allow(dead_code)] // the mirror structs list upstream fields the tests do not read

mod common;

use std::collections::BTreeMap;

use bundle_installer::render::kubeadm::{INIT_PATH, JOIN_PATH};
use bundle_installer::{plan, Plan};
use common::*;
use serde::Deserialize;

/// `kubeletExtraArgs` / `extraArgs` in either API version.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum ExtraArgs {
    /// v1beta3: `map[string]string`.
    Map(BTreeMap<String, String>),
    /// v1beta4: `[]Arg`.
    List(Vec<Arg>),
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Arg {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BootstrapToken {
    token: String,
    description: Option<String>,
    ttl: Option<String>,
    usages: Vec<String>,
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeRegistrationOptions {
    name: String,
    #[serde(rename = "criSocket")]
    cri_socket: String,
    taints: Option<Vec<serde_json::Value>>,
    kubelet_extra_args: Option<ExtraArgs>,
    ignore_preflight_errors: Option<Vec<String>>,
    image_pull_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiEndpoint {
    advertise_address: String,
    bind_port: i32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InitConfiguration {
    api_version: String,
    kind: String,
    bootstrap_tokens: Vec<BootstrapToken>,
    node_registration: NodeRegistrationOptions,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    certificate_key: String,
    skip_phases: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Networking {
    service_subnet: String,
    pod_subnet: String,
    dns_domain: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiServer {
    #[serde(rename = "certSANs")]
    cert_sans: Vec<String>,
    extra_args: Option<ExtraArgs>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LocalEtcd {
    data_dir: String,
    image_repository: Option<String>,
    extra_args: Option<ExtraArgs>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Etcd {
    local: Option<LocalEtcd>,
    external: Option<ExternalEtcd>,
}

/// upstream `ExternalEtcd`: `endpoints`, `caFile`, `certFile`, `keyFile`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExternalEtcd {
    endpoints: Vec<String>,
    ca_file: String,
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClusterConfiguration {
    api_version: String,
    kind: String,
    cluster_name: String,
    kubernetes_version: String,
    control_plane_endpoint: String,
    image_repository: String,
    networking: Networking,
    #[serde(rename = "apiServer")]
    api_server: ApiServer,
    etcd: Etcd,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubeProxyIpvs {
    scheduler: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubeProxyConfiguration {
    api_version: String,
    kind: String,
    mode: String,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: String,
    ipvs: Option<KubeProxyIpvs>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KubeletConfiguration {
    api_version: String,
    kind: String,
    cgroup_driver: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BootstrapTokenDiscovery {
    token: String,
    api_server_endpoint: String,
    ca_cert_hashes: Vec<String>,
    unsafe_skip_ca_verification: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Discovery {
    bootstrap_token: BootstrapTokenDiscovery,
    tls_bootstrap_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    certificate_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinConfiguration {
    api_version: String,
    kind: String,
    discovery: Discovery,
    node_registration: NodeRegistrationOptions,
    control_plane: Option<JoinControlPlane>,
}

/// Splits a multi-document file and returns the documents' text by `kind`.
fn documents(text: &str) -> BTreeMap<String, String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
    let raw: Vec<&str> = text.split("\n---\n").collect();
    assert_eq!(docs.len(), raw.len());
    docs.iter()
        .zip(raw)
        .map(|(d, r)| (d["kind"].as_str().expect("kind").to_string(), r.to_string()))
        .collect()
}

fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> T {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn the_plan(k8s: &str) -> Plan {
    plan(
        &cluster(3, 1),
        &facts_with(k8s, Some("1.7.13"), "calico"),
        &inputs(),
    )
    .unwrap()
}

fn check_init(k8s: &str, api: &str) {
    let plan = the_plan(k8s);
    assert_eq!(plan.kubeadm_api_version, api);
    let docs = documents(&file_of(&plan, "server5", INIT_PATH));
    assert_eq!(
        docs.keys().collect::<Vec<_>>(),
        [
            "ClusterConfiguration",
            "InitConfiguration",
            "KubeProxyConfiguration",
            "KubeletConfiguration"
        ]
    );

    let init: InitConfiguration = parse(&docs["InitConfiguration"]);
    assert_eq!(
        (init.api_version.as_str(), init.kind.as_str()),
        (api, "InitConfiguration")
    );
    assert_eq!(init.bootstrap_tokens[0].token, "<secret:bootstrap-token>");
    assert_eq!(
        init.bootstrap_tokens[0].usages,
        ["signing", "authentication"]
    );
    assert_eq!(init.certificate_key, "<secret:certificate-key>");
    assert_eq!(init.local_api_endpoint.advertise_address, "172.25.19.5");
    assert_eq!(init.local_api_endpoint.bind_port, 6443);
    assert_eq!(init.node_registration.name, "server5");
    assert_eq!(
        init.node_registration.cri_socket,
        "unix:///run/containerd/containerd.sock"
    );
    let node_ip = init
        .node_registration
        .kubelet_extra_args
        .expect("kubeletExtraArgs");
    if api.ends_with("v1beta4") {
        assert_eq!(
            node_ip,
            ExtraArgs::List(vec![Arg {
                name: "node-ip".into(),
                value: "172.25.19.5".into()
            }])
        );
    } else {
        assert_eq!(
            node_ip,
            ExtraArgs::Map([("node-ip".to_string(), "172.25.19.5".to_string())].into())
        );
    }

    let cc: ClusterConfiguration = parse(&docs["ClusterConfiguration"]);
    assert_eq!(cc.api_version, api);
    assert_eq!(cc.cluster_name, "prod");
    assert_eq!(cc.kubernetes_version, k8s);
    assert_eq!(cc.control_plane_endpoint, "172.25.19.100:8443");
    assert_eq!(cc.image_repository, "harbor.example.com/k8s");
    assert_eq!(cc.networking.pod_subnet, "10.244.0.0/16");
    assert_eq!(cc.networking.service_subnet, "10.96.0.0/12");
    assert_eq!(
        cc.api_server.cert_sans,
        [
            "172.25.19.100",
            "server5",
            "172.25.19.5",
            "server6",
            "172.25.19.6",
            "server7",
            "172.25.19.7"
        ]
    );
    assert_eq!(
        cc.etcd.local.expect("stacked etcd").data_dir,
        "/var/lib/etcd"
    );
    assert!(cc.etcd.external.is_none());

    let kp: KubeProxyConfiguration = parse(&docs["KubeProxyConfiguration"]);
    assert_eq!(
        (
            kp.api_version.as_str(),
            kp.mode.as_str(),
            kp.cluster_cidr.as_str()
        ),
        ("kubeproxy.config.k8s.io/v1alpha1", "ipvs", "10.244.0.0/16")
    );
    let kc: KubeletConfiguration = parse(&docs["KubeletConfiguration"]);
    assert_eq!(
        (kc.api_version.as_str(), kc.cgroup_driver.as_str()),
        ("kubelet.config.k8s.io/v1beta1", "systemd")
    );
}

fn check_join(k8s: &str, api: &str) {
    let plan = the_plan(k8s);
    let master: JoinConfiguration = parse(&file_of(&plan, "server6", JOIN_PATH));
    assert_eq!(
        (master.api_version.as_str(), master.kind.as_str()),
        (api, "JoinConfiguration")
    );
    let d = &master.discovery.bootstrap_token;
    assert_eq!(d.api_server_endpoint, "172.25.19.100:8443");
    assert_eq!(d.token, "<secret:bootstrap-token>");
    assert_eq!(d.ca_cert_hashes, ["<runtime:ca-cert-hash>"]);
    assert_eq!(
        d.unsafe_skip_ca_verification, None,
        "never skip CA verification"
    );
    let cp = master
        .control_plane
        .expect("a master joins the control plane");
    assert_eq!(cp.certificate_key, "<secret:certificate-key>");
    assert_eq!(cp.local_api_endpoint.advertise_address, "172.25.19.6");

    let worker: JoinConfiguration = parse(&file_of(&plan, "server8", JOIN_PATH));
    assert!(worker.control_plane.is_none());
    assert_eq!(worker.node_registration.name, "server8");
}

#[test]
fn kubeadm_v1beta3_below_1_31_round_trips() {
    check_init("v1.29.2", "kubeadm.k8s.io/v1beta3");
    check_join("v1.29.2", "kubeadm.k8s.io/v1beta3");
    check_init("v1.30.5", "kubeadm.k8s.io/v1beta3");
}

#[test]
fn kubeadm_v1beta4_from_1_31_round_trips() {
    check_init("v1.31.0", "kubeadm.k8s.io/v1beta4");
    check_join("v1.31.0", "kubeadm.k8s.io/v1beta4");
    check_init("v1.32.1", "kubeadm.k8s.io/v1beta4");
}

#[test]
fn a_master_that_is_also_a_worker_has_no_taints() {
    let yaml = inventory_yaml(3, 0).replace(
        "address: 172.25.19.7, roles: [master]",
        "address: 172.25.19.7, roles: [master, worker]",
    );
    let plan = plan(&cluster_from(&yaml), &facts(), &inputs()).unwrap();
    let join: JoinConfiguration = parse(&file_of(&plan, "server7", JOIN_PATH));
    assert_eq!(join.node_registration.taints, Some(vec![]));
    let join: JoinConfiguration = parse(&file_of(&plan, "server6", JOIN_PATH));
    assert_eq!(join.node_registration.taints, None);
}

#[test]
fn the_mirror_structs_refuse_a_field_upstream_does_not_have() {
    // Negative control for the round trip: a misplaced field is caught.
    let plan = the_plan("v1.29.2");
    let docs = documents(&file_of(&plan, "server5", INIT_PATH));
    let bad = docs["ClusterConfiguration"]
        .replace("clusterName:", "podSubnet: \"10.0.0.0/8\"\nclusterName:");
    assert!(serde_saphyr::from_str::<ClusterConfiguration>(&bad).is_err());
}

#[test]
fn external_etcd_is_the_cluster_configurations_etcd_external_in_both_apis() {
    for (k8s, api) in [
        ("v1.29.2", "kubeadm.k8s.io/v1beta3"),
        ("v1.31.1", "kubeadm.k8s.io/v1beta4"),
    ] {
        let cluster = cluster_from(&external_etcd_inventory());
        let plan = plan(
            &cluster,
            &facts_with(k8s, Some("1.7.13"), "calico"),
            &inputs(),
        )
        .unwrap();
        let docs = documents(&file_of(&plan, "server5", INIT_PATH));
        let cc: ClusterConfiguration = parse(&docs["ClusterConfiguration"]);
        assert_eq!(cc.api_version, api);
        assert!(cc.etcd.local.is_none(), "{api}");
        let ext = cc.etcd.external.expect("etcd.external");
        assert_eq!(
            ext.endpoints,
            [
                "https://172.25.19.21:2379",
                "https://172.25.19.22:2379",
                "https://172.25.19.23:2379"
            ]
        );
        assert_eq!(ext.ca_file, "/etc/kubernetes/pki/etcd/ca.crt");
        assert_eq!(
            ext.cert_file,
            "/etc/kubernetes/pki/apiserver-etcd-client.crt"
        );
        assert_eq!(
            ext.key_file,
            "/etc/kubernetes/pki/apiserver-etcd-client.key"
        );
    }
}
