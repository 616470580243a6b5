//! Shared fixtures: inventories, bundle facts, and the CNI manifests in `fixtures/`.
#![allow(dead_code)]

use bundle_format::ImageReference;
use bundle_installer::facts::{CniFacts, RpmFact, RpmRepoFacts};
use bundle_installer::release::Release;
use bundle_installer::{BundleFacts, Cluster, Inventory, PlanInputs};

pub const CALICO: &str = include_str!("../fixtures/calico.yaml");
pub const FLANNEL: &str = include_str!("../fixtures/flannel.yaml");

pub const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTestOnlyNotARealCertificate\n-----END CERTIFICATE-----\n";

/// An inventory like the issue's, with `masters` masters and `workers` workers.
pub fn inventory_yaml(masters: usize, workers: usize) -> String {
    bundle_testbed::inventories::sample_inventory(masters, workers)
}

pub fn cluster_from(yaml: &str) -> Cluster {
    let inv = Inventory::parse(yaml).expect("inventory parses");
    inv.validate(false).expect("inventory is valid").0
}

/// The sample inventory (3 masters, 1 worker) with three external etcd hosts,
/// `etcd1`–`etcd3` at 172.25.19.21–23.
pub fn external_etcd_inventory() -> String {
    let etcd_hosts: String = (1..=3)
        .map(|i| format!("    - {{name: etcd{i}, address: 172.25.19.2{i}, roles: [etcd]}}\n"))
        .collect();
    inventory_yaml(3, 1)
        .replace("  ssh:", &format!("{etcd_hosts}  ssh:"))
        .replace(
            "  kubeProxy:",
            "  etcd: {external: {hosts: [etcd1, etcd2, etcd3]}}\n  kubeProxy:",
        )
}

pub fn cluster(masters: usize, workers: usize) -> Cluster {
    cluster_from(&inventory_yaml(masters, workers))
}

pub fn r(s: &str) -> ImageReference {
    s.parse().unwrap()
}

fn rpm(name: &str, version: &str, release: &str, arch: &str) -> RpmFact {
    RpmFact {
        name: name.into(),
        nevra: format!("{name}-{version}-{release}.{arch}"),
        version: version.into(),
    }
}

/// A bundle carrying Kubernetes `k8s` (`v1.29.2`), containerd `containerd` (None: no
/// package) and the CNI `cni`.
pub fn facts_with(k8s: &str, containerd: Option<&str>, cni: &str) -> BundleFacts {
    let kv = k8s;
    let mut images: Vec<ImageReference> = vec![
        r(&format!("registry.k8s.io/kube-apiserver:{kv}")),
        r(&format!("registry.k8s.io/kube-controller-manager:{kv}")),
        r(&format!("registry.k8s.io/kube-scheduler:{kv}")),
        r(&format!("registry.k8s.io/kube-proxy:{kv}")),
        r("registry.k8s.io/etcd:3.5.10-0"),
        r("registry.k8s.io/coredns/coredns:v1.11.1"),
        r("registry.k8s.io/pause:3.9"),
        r("docker.io/calico/cni:v3.26.4"),
        r("docker.io/calico/node:v3.26.4"),
        r("docker.io/calico/kube-controllers:v3.26.4"),
        r("docker.io/flannel/flannel:v0.24.2"),
        r("docker.io/flannel/flannel-cni-plugin:v1.4.0-flannel1"),
    ];
    images.sort();
    let kver = kv.trim_start_matches('v');
    let mut packages = vec![
        rpm("kubeadm", kver, "150500.1.1", "x86_64"),
        rpm("kubelet", kver, "150500.1.1", "x86_64"),
        rpm("kubectl", kver, "150500.1.1", "x86_64"),
        rpm("cri-tools", "1.29.0", "150500.1.1", "x86_64"),
        rpm("kubernetes-cni", "1.3.0", "150500.1.1", "x86_64"),
        rpm("haproxy", "2.4.22", "3.el9_3", "x86_64"),
        rpm("keepalived", "2.2.8", "3.el9", "x86_64"),
        rpm("ipvsadm", "1.31", "6.el9", "x86_64"),
        rpm("conntrack-tools", "1.4.7", "2.el9", "x86_64"),
        rpm("socat", "1.7.4.1", "5.el9", "x86_64"),
    ];
    if let Some(v) = containerd {
        packages.push(rpm("containerd.io", v, "3.1.el9", "x86_64"));
    }
    packages.sort_by(|a, b| a.nevra.cmp(&b.nevra));
    BundleFacts {
        bundle: format!("k8s {kv}"),
        kubernetes_version: kv.into(),
        containerd_version: containerd.map(String::from),
        images,
        image_platforms: vec!["linux/amd64".into()],
        cni: Some(CniFacts {
            name: cni.into(),
            file: format!("{cni}.yaml"),
            manifest: if cni == "flannel" {
                FLANNEL.into()
            } else {
                CALICO.into()
            },
        }),
        rpm_repos: vec![RpmRepoFacts {
            target: "el9-x86_64".into(),
            releasever: "9".into(),
            arch: "x86_64".into(),
            packages,
            gpg_keys: vec!["keys/RPM-GPG-KEY-kubernetes".into()],
            module_streams: vec![],
        }],
        release: Release {
            bundle: "k8s".into(),
            version: kv.into(),
            kubernetes_version: kv.into(),
            index_sha256: "5e".repeat(32),
            key_id: Some("4E2F6D0B3C1A9F87".into()),
        },
    }
}

pub fn facts() -> BundleFacts {
    facts_with("v1.29.2", Some("1.6.28"), "calico")
}

pub fn inputs() -> PlanInputs {
    PlanInputs {
        registry_ca: Some(CA_PEM.into()),
        registry_client_cert: None,
        warnings: vec![],
    }
}

/// The content of `path` in `host`'s steps.
pub fn file_of(plan: &bundle_installer::Plan, host: &str, path: &str) -> String {
    plan.host_files(host)
        .find(|(p, ..)| *p == path)
        .map(|(_, c, ..)| c.to_string())
        .unwrap_or_else(|| panic!("{host} gets no {path}"))
}
