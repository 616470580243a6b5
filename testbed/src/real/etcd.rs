//! A real etcd cluster (Debian's `etcd-server` 3.4) on test masters, with TLS as kubeadm
//! sets it up: one CA and one certificate per member under `/etc/kubernetes/pki/etcd`,
//! data under `/var/lib/etcd`. It stands in for the etcd static pods: the fake `crictl`
//! lists a running `etcd` process as the etcd container and runs `crictl exec` commands
//! on the host, where the pod's hostPaths are.

use anyhow::{bail, Result};

use super::hosts::TestCluster;
use crate::doubles::kube_fakes;

/// The real `etcdctl` on a test master, with its member's certificate.
pub const ETCDCTL: &str = "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key";

/// Starts one member on each of `masters` (their names are the members'), installs the
/// fake `crictl` there (the same script as its RPM's), and waits until every member is healthy.
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
    for m in masters {
        let ip = c.host(m).address;
        run(
            c,
            m,
            &format!(
                "set -e; mkdir -p /etc/kubernetes/pki/etcd /var/lib/etcd; cd /etc/kubernetes/pki/etcd
echo {ca_crt} | base64 -d > ca.crt; echo {ca_key} | base64 -d > ca.key
printf '%s' {crictl} > /usr/bin/crictl; chmod 0755 /usr/bin/crictl
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN={m} -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,IP:{ip},DNS:localhost,DNS:{m}\\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -days 365 -extfile san.ext -out server.crt 2>/dev/null
setsid etcd --name {m} --data-dir /var/lib/etcd/member-data \
  --listen-client-urls https://127.0.0.1:2379,https://{ip}:2379 --advertise-client-urls https://{ip}:2379 \
  --listen-peer-urls https://{ip}:2380 --initial-advertise-peer-urls https://{ip}:2380 \
  --initial-cluster {cluster} --initial-cluster-state new \
  --cert-file server.crt --key-file server.key --trusted-ca-file ca.crt --client-cert-auth \
  --peer-cert-file server.crt --peer-key-file server.key --peer-trusted-ca-file ca.crt --peer-client-cert-auth \
  > /var/log/etcd.log 2>&1 < /dev/null &",
                cluster = cluster.join(","),
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
