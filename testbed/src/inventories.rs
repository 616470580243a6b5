//! Sample cluster inventories (`cluster.yaml`) for plan tests: the same site in every
//! test that plans without hosts, so snapshots and assertions agree on names.

/// The example site: `masters` masters and `workers` workers named
/// `server5`, `server6`, … at `172.25.19.5`, …; VIP `172.25.19.100:8443`; Harbor at
/// `harbor.example.com` with its CA in `harbor-ca.crt`; calico; the yum repo served by
/// `server5` on port 8081.
pub fn sample_inventory(masters: usize, workers: usize) -> String {
    let mut hosts = String::new();
    for i in 0..masters + workers {
        let role = if i < masters { "master" } else { "worker" };
        hosts.push_str(&format!(
            "    - {{name: server{n}, address: 172.25.19.{n}, roles: [{role}]}}\n",
            n = i + 5
        ));
    }
    format!(
        "apiVersion: bundle/v1alpha1
kind: Cluster
metadata: {{name: prod}}
spec:
  hosts:
{hosts}  ssh: {{user: root, port: 22, identityFile: ~/.ssh/id_ed25519}}
  controlPlaneEndpoint: {{vip: 172.25.19.100, port: 8443, interface: eth0}}
  registry: {{host: harbor.example.com, caFile: harbor-ca.crt}}
  network: {{cni: calico, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}}
  kubeProxy: {{mode: ipvs}}
  repo: {{servedBy: server5, port: 8081}}
"
    )
}
