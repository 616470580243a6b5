//! kubeadm configuration in the upstream API for the bundle's Kubernetes version:
//! `kubeadm.k8s.io/v1beta3` below 1.31, `kubeadm.k8s.io/v1beta4` from 1.31 (where
//! `extraArgs` and `kubeletExtraArgs` become lists of `{name, value}`), plus the
//! `KubeProxyConfiguration` and `KubeletConfiguration` documents `kubeadm init` takes.
//!
//! Secrets are `<secret:…>` placeholders and the CA hash a `<runtime:…>` one.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::inventory::{Cluster, Node};
use crate::render::containerd::CRI_SOCKET;
use crate::render::host_port;
use crate::secrets::{runtime_placeholder, Secret, CA_CERT_HASH};

/// Init config path on the first master.
pub const INIT_PATH: &str = "/etc/kubernetes/bundle/kubeadm-init.yaml";
/// Join config path.
pub const JOIN_PATH: &str = "/etc/kubernetes/bundle/kubeadm-join.yaml";

/// Upgrade config path on every node (`kubeadm.k8s.io/v1beta4` targets only).
pub const UPGRADE_PATH: &str = "/etc/kubernetes/bundle/kubeadm-upgrade.yaml";

/// The `UpgradeConfiguration` for an upgrade to `version` (`v1.31.2`), which kubeadm
/// reads from v1beta4 on; `None` for v1beta3, whose `kubeadm upgrade` takes flags only.
/// Certificates are renewed and etcd upgraded, kubeadm's defaults, written out so the
/// plan says what happens.
pub fn upgrade_config(api: &str, version: &str) -> Option<String> {
    is_v1beta4(api).then(|| {
        format!(
            "apiVersion: {api}\nkind: UpgradeConfiguration\napply:\n  kubernetesVersion: {v}\n  certificateRenewal: true\n  etcdUpgrade: true\nplan:\n  kubernetesVersion: {v}\nnode:\n  certificateRenewal: true\n  etcdUpgrade: true\n",
            v = q(version)
        )
    })
}

/// The kubeadm API group version for a Kubernetes (major, minor).
pub fn api_version(minor: (u32, u32)) -> &'static str {
    if minor >= (1, 31) {
        "kubeadm.k8s.io/v1beta4"
    } else {
        "kubeadm.k8s.io/v1beta3"
    }
}

fn is_v1beta4(api: &str) -> bool {
    api.ends_with("v1beta4")
}

/// A double-quoted YAML string.
pub fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn extra_args(out: &mut String, indent: &str, key: &str, api: &str, args: &[(&str, String)]) {
    if args.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for (name, value) in args {
        if is_v1beta4(api) {
            let _ = writeln!(
                out,
                "{indent}  - name: {}\n{indent}    value: {}",
                q(name),
                q(value)
            );
        } else {
            let _ = writeln!(out, "{indent}  {name}: {}", q(value));
        }
    }
}

fn node_registration(out: &mut String, api: &str, node: &Node) {
    let _ = writeln!(out, "nodeRegistration:");
    let _ = writeln!(out, "  name: {}", q(&node.name));
    let _ = writeln!(out, "  criSocket: {}", q(CRI_SOCKET));
    if node.master && node.worker {
        // A master that is also a worker: no control-plane taint.
        let _ = writeln!(out, "  taints: []");
    }
    extra_args(
        out,
        "  ",
        "kubeletExtraArgs",
        api,
        &[("node-ip", node.address.to_string())],
    );
}

/// Subject alternative names of the API server certificate: VIP, then every
/// master's name and address.
pub fn cert_sans(cluster: &Cluster) -> Vec<String> {
    let mut sans = vec![cluster.vip.to_string()];
    for m in cluster.masters() {
        sans.push(m.name.clone());
        sans.push(m.address.to_string());
    }
    sans
}

/// The `kubeadm init --config` file for the first master.
pub fn init_config(
    cluster: &Cluster,
    api: &str,
    kubernetes_version: &str,
    image_repository: &str,
) -> String {
    let node = cluster.first_master();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by bundle for `kubeadm init --config`; secrets are filled in on the host."
    );
    let _ = writeln!(s, "apiVersion: {api}\nkind: InitConfiguration");
    let _ = writeln!(s, "bootstrapTokens:");
    let _ = writeln!(s, "  - token: {}", q(&Secret::BootstrapToken.placeholder()));
    let _ = writeln!(
        s,
        "    description: \"bundle install: joins the cluster's hosts\""
    );
    let _ = writeln!(s, "    ttl: \"24h0m0s\"");
    let _ = writeln!(s, "    usages: [\"signing\", \"authentication\"]");
    let _ = writeln!(
        s,
        "    groups: [\"system:bootstrappers:kubeadm:default-node-token\"]"
    );
    let _ = writeln!(
        s,
        "certificateKey: {}",
        q(&Secret::CertificateKey.placeholder())
    );
    let _ = writeln!(
        s,
        "localAPIEndpoint:\n  advertiseAddress: {}\n  bindPort: 6443",
        q(&node.address.to_string())
    );
    node_registration(&mut s, api, node);
    let _ = writeln!(s, "---");
    let _ = writeln!(s, "apiVersion: {api}\nkind: ClusterConfiguration");
    let _ = writeln!(s, "clusterName: {}", q(&cluster.name));
    let _ = writeln!(s, "kubernetesVersion: {}", q(kubernetes_version));
    let _ = writeln!(
        s,
        "controlPlaneEndpoint: {}",
        q(&host_port(&cluster.vip, cluster.lb_port))
    );
    let _ = writeln!(s, "imageRepository: {}", q(image_repository));
    let _ = writeln!(s, "networking:");
    let _ = writeln!(s, "  podSubnet: {}", q(&cluster.pod_subnet.to_string()));
    let _ = writeln!(
        s,
        "  serviceSubnet: {}",
        q(&cluster.service_subnet.to_string())
    );
    let _ = writeln!(s, "  dnsDomain: {}", q(&cluster.dns_domain));
    let _ = writeln!(s, "apiServer:\n  certSANs:");
    for san in cert_sans(cluster) {
        let _ = writeln!(s, "    - {}", q(&san));
    }
    etcd_config(&mut s, cluster);
    let _ = writeln!(s, "---");
    let _ = writeln!(
        s,
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration"
    );
    let _ = writeln!(s, "mode: {}", q(&cluster.proxy_mode));
    let _ = writeln!(s, "clusterCIDR: {}", q(&cluster.pod_subnet.to_string()));
    if cluster.proxy_mode == "ipvs" {
        let _ = writeln!(s, "ipvs:\n  scheduler: {}", q(&cluster.ipvs_scheduler));
        if cluster.ipvs_strict_arp {
            let _ = writeln!(s, "  strictARP: true");
        }
    }
    let _ = writeln!(s, "---");
    let _ = writeln!(
        s,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration"
    );
    let _ = writeln!(s, "cgroupDriver: \"systemd\"");
    s
}

/// `ClusterConfiguration.etcd`: stacked on the masters, or the external members with
/// the CA and the API server's client certificate (which `--upload-certs` also hands
/// to the joining masters).
fn etcd_config(s: &mut String, cluster: &Cluster) {
    if !cluster.external_etcd() {
        let _ = writeln!(s, "etcd:\n  local:\n    dataDir: \"/var/lib/etcd\"");
        return;
    }
    let _ = writeln!(s, "etcd:\n  external:\n    endpoints:");
    for url in crate::render::etcd::client_urls(cluster) {
        let _ = writeln!(s, "      - {}", q(&url));
    }
    let _ = writeln!(
        s,
        "    caFile: {}",
        q(&format!("{}/ca.crt", crate::pki::ETCD_DIR))
    );
    let _ = writeln!(s, "    certFile: {}", q(crate::pki::APISERVER_CLIENT_CRT));
    let _ = writeln!(s, "    keyFile: {}", q(crate::pki::APISERVER_CLIENT_KEY));
}

/// The `kubeadm join --config` file for `node`. Control-plane joins carry the
/// certificate key; discovery always pins the CA by hash (never
/// `unsafeSkipCAVerification`).
pub fn join_config(cluster: &Cluster, api: &str, node: &Node) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by bundle for `kubeadm join --config`; secrets are filled in on the host."
    );
    let _ = writeln!(s, "apiVersion: {api}\nkind: JoinConfiguration");
    let _ = writeln!(s, "discovery:\n  bootstrapToken:");
    let _ = writeln!(
        s,
        "    apiServerEndpoint: {}",
        q(&host_port(&cluster.vip, cluster.lb_port))
    );
    let _ = writeln!(s, "    token: {}", q(&Secret::BootstrapToken.placeholder()));
    let _ = writeln!(
        s,
        "    caCertHashes:\n      - {}",
        q(&runtime_placeholder(CA_CERT_HASH))
    );
    node_registration(&mut s, api, node);
    if node.master {
        let _ = writeln!(s, "controlPlane:");
        let _ = writeln!(
            s,
            "  localAPIEndpoint:\n    advertiseAddress: {}\n    bindPort: 6443",
            q(&node.address.to_string())
        );
        let _ = writeln!(
            s,
            "  certificateKey: {}",
            q(&Secret::CertificateKey.placeholder())
        );
    }
    s
}

/// The `/readyz` URL of the API server on `addr`.
pub fn readyz(addr: &IpAddr, port: u16) -> String {
    format!("https://{}/readyz", host_port(addr, port))
}
