//! An external etcd member (`spec.etcd.external`) as kubeadm's guide runs it: a
//! static pod, `/etc/kubernetes/manifests/etcd.yaml`, under a kubelet that manages
//! nothing else (a drop-in replaces its command line with a local
//! `KubeletConfiguration`: no API server, no authentication from outside, listening on
//! 127.0.0.1). The pod's flags are those etcd 3.4 and 3.5 both take, the certificates
//! kubeadm's layout under `/etc/kubernetes/pki/etcd`.

use std::fmt::Write as _;

use crate::inventory::{Cluster, Node};
use crate::pki::ETCD_DIR;
use crate::render::containerd::CRI_SOCKET;
use crate::render::host_port;

/// The static pod manifest.
pub const MANIFEST_PATH: &str = "/etc/kubernetes/manifests/etcd.yaml";
/// The standalone kubelet's configuration.
pub const KUBELET_CONFIG_PATH: &str = "/etc/systemd/system/kubelet.service.d/kubelet.conf";
/// The drop-in that starts the kubelet with it (after kubeadm's `10-kubeadm.conf`).
pub const KUBELET_DROP_IN_PATH: &str =
    "/etc/systemd/system/kubelet.service.d/20-etcd-service-manager.conf";
/// etcd's data.
pub const DATA_DIR: &str = "/var/lib/etcd";

/// `https://ADDRESS:2379` of every member, the control plane's `etcd.external.endpoints`.
pub fn client_urls(cluster: &Cluster) -> Vec<String> {
    cluster
        .etcd_hosts()
        .map(|n| format!("https://{}", host_port(&n.address, 2379)))
        .collect()
}

/// `NAME=https://ADDRESS:2380,…`: the first cluster, every member from the start.
fn initial_cluster(cluster: &Cluster) -> String {
    cluster
        .etcd_hosts()
        .map(|n| format!("{}=https://{}", n.name, host_port(&n.address, 2380)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The static pod of `member`, running `image`.
pub fn manifest(cluster: &Cluster, member: &Node, image: &str) -> String {
    let ip = &member.address;
    let client = format!("https://{}", host_port(ip, 2379));
    let peer = format!("https://{}", host_port(ip, 2380));
    let flags = [
        format!("--name={}", member.name),
        format!("--data-dir={DATA_DIR}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-client-urls=https://127.0.0.1:2379,{client}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--listen-peer-urls={peer}"),
        "--listen-metrics-urls=http://127.0.0.1:2381".to_string(),
        format!("--initial-cluster={}", initial_cluster(cluster)),
        "--initial-cluster-state=new".to_string(),
        format!("--initial-cluster-token={}-etcd", cluster.name),
        format!("--cert-file={ETCD_DIR}/server.crt"),
        format!("--key-file={ETCD_DIR}/server.key"),
        "--client-cert-auth=true".to_string(),
        format!("--trusted-ca-file={ETCD_DIR}/ca.crt"),
        format!("--peer-cert-file={ETCD_DIR}/peer.crt"),
        format!("--peer-key-file={ETCD_DIR}/peer.key"),
        "--peer-client-cert-auth=true".to_string(),
        format!("--peer-trusted-ca-file={ETCD_DIR}/ca.crt"),
        "--snapshot-count=10000".to_string(),
    ];
    let mut s = String::from("# Written by bundle: an external etcd member (static pod).\n");
    let _ = write!(
        s,
        "apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: {client}
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
"
    );
    for f in &flags {
        let _ = writeln!(s, "    - {f}");
    }
    let _ = write!(
        s,
        "    image: {image}
    imagePullPolicy: IfNotPresent
    name: etcd
    livenessProbe:
      httpGet:
        host: 127.0.0.1
        path: /health
        port: 2381
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      failureThreshold: 8
    volumeMounts:
    - mountPath: {DATA_DIR}
      name: etcd-data
    - mountPath: {ETCD_DIR}
      name: etcd-certs
      readOnly: true
  hostNetwork: true
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: {ETCD_DIR}
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: {DATA_DIR}
      type: DirectoryOrCreate
    name: etcd-data
"
    );
    s
}

/// The kubelet's own configuration on an etcd host: static pods only.
pub fn kubelet_config() -> String {
    format!(
        "# Written by bundle: this kubelet runs the etcd static pod and nothing else.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
cgroupDriver: systemd
address: 127.0.0.1
containerRuntimeEndpoint: {CRI_SOCKET}
staticPodPath: /etc/kubernetes/manifests
"
    )
}

/// The drop-in: the kubelet started with [`kubelet_config`] alone (no kubeconfig:
/// it never registers with an API server).
pub fn kubelet_drop_in() -> String {
    format!(
        "# Written by bundle: the kubelet of an external etcd host.
[Service]
ExecStart=
ExecStart=/usr/bin/kubelet --config={KUBELET_CONFIG_PATH}
Restart=always
"
    )
}
