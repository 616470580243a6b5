//! A real etcd cluster (Debian's `etcd-server` 3.4) on test masters, as kubeadm sets it
//! up: one CA and a server and a peer certificate per member under
//! `/etc/kubernetes/pki/etcd`, data in `/var/lib/etcd`, and each member described by a
//! kubeadm-shaped static pod manifest, `/etc/kubernetes/manifests/etcd.yaml` (a Pod
//! whose container's `command` is `etcd --name=… --data-dir=/var/lib/etcd …`).
//!
//! Test hosts run no kubelet. A named test double stands in for the kubelet's static
//! pod handling of that one file, `assets/static-pod-runner.sh` (installed as
//! [`RUNNER_PATH`]): a loop that runs the manifest's command while the file exists,
//! stops the process when the file is moved away and starts it again when it comes
//! back, as the kubelet does with the pod. So moving the manifest aside stops a member
//! ([`stop`]), as on a real master, and `bundle restore` meets what it meets there.
//!
//! The fake `crictl` lists a running `etcd` process as the etcd container and runs
//! `crictl exec` commands on the host, where the pod's hostPaths are.

use anyhow::{bail, Result};

use super::hosts::TestCluster;
use crate::doubles::kube_fakes;

/// The real `etcdctl` on a test master, with its member's certificate.
pub const ETCDCTL: &str = "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key";

/// kubeadm's static pod manifest of etcd.
pub const MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";

/// Where the static pod runner (the kubelet's stand-in for etcd) is installed on a host.
pub const RUNNER_PATH: &str = "/usr/local/libexec/bundle-testbed/static-pod-runner";

/// Its PID on the host (in the host's PID namespace; the testbed ends it with the host).
pub const RUNNER_PID: &str = "/run/bundle-testbed/static-pod-runner.pid";

/// The etcd image the manifest names: the version that really runs (kubeadm 1.29
/// would name 3.5; nothing pulls it here).
pub const IMAGE: &str = "registry.k8s.io/etcd:3.4.23-0";

const RUNNER: &str = include_str!("../../assets/static-pod-runner.sh");

/// Starts one member on each of `masters` (their names are the members'): certificates,
/// the manifest, the fake `crictl` (the same script as its RPM's) and the static pod
/// runner; waits until every member is healthy.
pub fn start(c: &TestCluster, masters: &[&str]) -> Result<()> {
    let cluster: Vec<String> = masters
        .iter()
        .map(|m| format!("{m}=https://{}:2380", c.host(m).address))
        .collect();
    let first = masters[0];
    run(
        c,
        first,
        "mkdir -p /etc/kubernetes/pki/etcd && cd /etc/kubernetes/pki/etcd && \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=etcd-ca -keyout ca.key -out ca.crt 2>/dev/null",
    )?;
    let ca_crt = run(c, first, "base64 -w0 /etc/kubernetes/pki/etcd/ca.crt")?;
    let ca_key = run(c, first, "base64 -w0 /etc/kubernetes/pki/etcd/ca.key")?;
    let (_, crictl_files) = kube_fakes::cri_tools_spec("1");
    let crictl = shell_quote(&crictl_files[0].1);
    let runner = shell_quote(RUNNER);
    for m in masters {
        let ip = c.host(m).address.to_string();
        let manifest = shell_quote(&manifest(m, &ip, &cluster.join(",")));
        run(
            c,
            m,
            &format!(
                "set -e; mkdir -p /etc/kubernetes/pki/etcd /etc/kubernetes/manifests /var/lib/etcd /run/bundle-testbed {runner_dir}
cd /etc/kubernetes/pki/etcd
echo {ca_crt} | base64 -d > ca.crt; echo {ca_key} | base64 -d > ca.key
printf '%s' {crictl} > /usr/bin/crictl; chmod 0755 /usr/bin/crictl
printf '%s' {runner} > {RUNNER_PATH}; chmod 0755 {RUNNER_PATH}
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN={m} -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:{ip},DNS:localhost,DNS:{m}\\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 365 -extfile san.ext -out server.crt 2>/dev/null
cp server.crt peer.crt; cp server.key peer.key
printf '%s' {manifest} > {MANIFEST}
setsid {RUNNER_PATH} {MANIFEST} /var/log/etcd.log > /dev/null 2>&1 < /dev/null &
echo $! > {RUNNER_PID}",
                runner_dir = RUNNER_PATH.rsplit_once('/').expect("a path").0,
            ),
        )?;
    }
    for m in masters {
        run(
            c,
            m,
            &format!("for i in $(seq 100); do {ETCDCTL} endpoint health >/dev/null 2>&1 && exit 0; sleep 0.3; done; cat /var/log/etcd.log >&2; exit 1"),
        )?;
    }
    Ok(())
}

/// Starts the static pod runner alone on `host`, for a plan that writes the member's
/// certificates and manifest itself (external etcd): it waits for
/// [`MANIFEST`] to appear and runs its command from then on, as a kubelet would.
pub fn start_runner(c: &TestCluster, host: &str) -> Result<()> {
    let runner = shell_quote(RUNNER);
    run(
        c,
        host,
        &format!(
            "set -e; mkdir -p /run/bundle-testbed {runner_dir}
printf '%s' {runner} > {RUNNER_PATH}; chmod 0755 {RUNNER_PATH}
setsid {RUNNER_PATH} {MANIFEST} /var/log/etcd.log > /dev/null 2>&1 < /dev/null &
echo $! > {RUNNER_PID}",
            runner_dir = RUNNER_PATH.rsplit_once('/').expect("a path").0,
        ),
    )?;
    Ok(())
}

/// Stops `host`'s member as an operator stops a static pod: its manifest moved out of
/// the manifests folder (to `/etc/kubernetes/etcd.yaml.stopped`); returns once no
/// `etcd` process runs there.
pub fn stop(c: &TestCluster, host: &str) -> Result<()> {
    run(
        c,
        host,
        &format!("mv {MANIFEST} /etc/kubernetes/etcd.yaml.stopped; for i in $(seq 300); do pgrep -x etcd >/dev/null || exit 0; sleep 0.1; done; echo 'etcd did not stop' >&2; exit 1"),
    )?;
    Ok(())
}

/// The static pod manifest kubeadm writes for the member `name` at `ip` (the flags an
/// etcd 3.4 accepts; kubeadm's experimental ones left out), first start of `cluster`.
pub fn manifest(name: &str, ip: &str, cluster: &str) -> String {
    let pki = "/etc/kubernetes/pki/etcd";
    let flags = [
        format!("--advertise-client-urls=https://{ip}:2379"),
        format!("--cert-file={pki}/server.crt"),
        "--client-cert-auth=true".into(),
        "--data-dir=/var/lib/etcd".into(),
        format!("--initial-advertise-peer-urls=https://{ip}:2380"),
        format!("--initial-cluster={cluster}"),
        "--initial-cluster-state=new".into(),
        format!("--key-file={pki}/server.key"),
        format!("--listen-client-urls=https://127.0.0.1:2379,https://{ip}:2379"),
        format!("--listen-peer-urls=https://{ip}:2380"),
        format!("--name={name}"),
        format!("--peer-cert-file={pki}/peer.crt"),
        "--peer-client-cert-auth=true".into(),
        format!("--peer-key-file={pki}/peer.key"),
        format!("--peer-trusted-ca-file={pki}/ca.crt"),
        "--snapshot-count=10000".into(),
        format!("--trusted-ca-file={pki}/ca.crt"),
    ];
    let command: String = flags.iter().map(|f| format!("    - {f}\n")).collect();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://{ip}:2379
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
{command}    image: {IMAGE}
    imagePullPolicy: IfNotPresent
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: {pki}
      name: etcd-certs
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: {pki}
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
"
    )
}

fn run(c: &TestCluster, host: &str, script: &str) -> Result<String> {
    let out = c.run_in_host(host, script);
    if !out.status.success() {
        bail!(
            "on `{host}`: {script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
