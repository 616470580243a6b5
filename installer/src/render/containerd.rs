//! containerd's `/etc/containerd/config.toml` and the registry host files under
//! `/etc/containerd/certs.d/`.
//!
//! Config version 2 for containerd 1.x (CRI plugin `io.containerd.grpc.v1.cri`),
//! version 3 for 2.x (`io.containerd.cri.v1.images` and `io.containerd.cri.v1.runtime`).
//! Both: `SystemdCgroup = true` (kubelet's cgroup driver is systemd), the sandbox
//! image from the registry, and `config_path` pointing at `certs.d`.
//!
//! # Pull credentials
//!
//! With `spec.registry.pullUsername`, the registry's credentials go under
//! `registry.configs."HOST".auth` (the only place containerd takes them from for
//! image pulls, kubeadm's included: `hosts.toml` holds no secrets). The password is
//! the placeholder [`PULL_PASSWORD`], filled in when the file is written on the host,
//! and the file is then mode 0600. containerd marks `configs.auth` deprecated but
//! keeps it until a secret store replaces it; kubelet's `imagePullSecrets` do not
//! reach the static control-plane pods.
//!
//! # Mirrors
//!
//! Images the install names itself (kubeadm's, the sandbox, the CNI's) are rewritten
//! to `HOST/...` through the image mapping, so they never need a mirror. The mirrors
//! are for everything else users deploy later with upstream names (`docker.io/…`,
//! `quay.io/…`): containerd's `hosts.toml` can only *prepend* a path to the
//! repository, so a mirror is exact only where the mapping is "prefix + same path".
//! That holds for `docker.io`, `quay.io`, `ghcr.io` (kept as is: the mirror is the
//! registry's plain `/v2/` root) and for one-component `registry.k8s.io` names
//! (`registry.k8s.io/pause` → `HOST/k8s/pause`: the mirror root is `/v2/k8s` with
//! `override_path = true`, which tells containerd the URL path is the full API
//! root). Nested `registry.k8s.io` names are flattened by the mapping and cannot be
//! mirrored; they are reached through rewritten references only.

use std::fmt::Write as _;

use crate::inventory::Cluster;

/// containerd's CRI socket (kubeadm `criSocket`).
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// Main config path.
pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";
/// Registry host folder.
pub const CERTS_D: &str = "/etc/containerd/certs.d";
/// Upstream registries mirrored to the registry.
pub const MIRRORED: &[(&str, &str)] = &[
    ("docker.io", "https://registry-1.docker.io"),
    ("registry.k8s.io", "https://registry.k8s.io"),
    ("quay.io", "https://quay.io"),
    ("ghcr.io", "https://ghcr.io"),
];

/// Placeholder for the nodes' pull password (from `BUNDLE_REGISTRY_PULL_PASSWORD`).
pub const PULL_PASSWORD: &str = "<secret:registry-pull-password>";

/// Nodes pull from `host` as `username` (password: [`PULL_PASSWORD`]).
#[derive(Debug, Clone, Copy)]
pub struct PullAuth<'a> {
    /// Registry `HOST[:PORT]`.
    pub host: &'a str,
    /// The account.
    pub username: &'a str,
}

/// Config version for a containerd major version.
pub fn config_version(containerd_major: u32) -> u32 {
    if containerd_major >= 2 {
        3
    } else {
        2
    }
}

/// Renders config.toml.
pub fn config(version: u32, sandbox_image: &str, auth: Option<PullAuth<'_>>) -> String {
    let head = "# Written by bundle: do not edit, `bundle install` rewrites it.\n";
    let mut out = base_config(version, sandbox_image, head);
    if let Some(a) = auth {
        let plugin = if version >= 3 {
            "io.containerd.cri.v1.images"
        } else {
            "io.containerd.grpc.v1.cri"
        };
        let _ = write!(
            out,
            "\n[plugins.\"{plugin}\".registry.configs.\"{host}\".auth]\n  username = \"{user}\"\n  password = \"{PULL_PASSWORD}\"\n",
            host = a.host,
            user = a.username,
        );
    }
    out
}

fn base_config(version: u32, sandbox_image: &str, head: &str) -> String {
    if version >= 3 {
        format!(
            r#"{head}version = 3

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{sandbox_image}"

[plugins."io.containerd.cri.v1.images".registry]
  config_path = "{CERTS_D}"

[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = true
"#
        )
    } else {
        format!(
            r#"{head}version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "{CERTS_D}"
"#
        )
    }
}

/// Path of the registry's CA on the hosts, when the inventory gives one.
pub fn ca_path(cluster: &Cluster) -> String {
    format!("{CERTS_D}/{}/ca.crt", cluster.registry_host)
}

/// Paths of the client certificate and key the nodes present (mutual TLS).
pub fn client_paths(cluster: &Cluster) -> (String, String) {
    let dir = format!("{CERTS_D}/{}", cluster.registry_host);
    (format!("{dir}/client.cert"), format!("{dir}/client.key"))
}

/// Placeholder of the client key, filled in from `spec.registry.clientKeyFile` when
/// the file is written on a host.
pub const CLIENT_KEY: &str = "<secret:registry-client-key>";

/// What a `[host."…"]` entry trusts and presents.
struct HostTls {
    ca: Option<String>,
    client: Option<(String, String)>,
}

fn host_entry(s: &mut String, url: &str, override_path: bool, tls: &HostTls) {
    let _ = writeln!(s, "[host.\"{url}\"]");
    let _ = writeln!(s, "  capabilities = [\"pull\", \"resolve\"]");
    if override_path {
        let _ = writeln!(s, "  override_path = true");
    }
    if let Some(ca) = &tls.ca {
        let _ = writeln!(s, "  ca = \"{ca}\"");
    }
    if let Some((cert, key)) = &tls.client {
        let _ = writeln!(s, "  client = [[\"{cert}\", \"{key}\"]]");
    }
}

/// Every `hosts.toml`: (path, content). The registry's own first, then the mirrors.
/// With `plainHttp` every URL is `http://`, which is all containerd needs to skip TLS
/// for that host (no `skip_verify`: there is no certificate to skip).
pub fn hosts_files(cluster: &Cluster, with_ca: bool) -> Vec<(String, String)> {
    let host = &cluster.registry_host;
    let root = cluster.registry_url();
    let tls = HostTls {
        ca: with_ca.then(|| ca_path(cluster)),
        client: cluster
            .registry_client_files
            .is_some()
            .then(|| client_paths(cluster)),
    };
    let mut out = Vec::new();
    let mut s = format!("# Written by bundle: the cluster's registry.\nserver = \"{root}\"\n\n");
    host_entry(&mut s, &root, false, &tls);
    out.push((format!("{CERTS_D}/{host}/hosts.toml"), s));
    for (upstream, server) in MIRRORED {
        let prefix = cluster.mapping.mirror_prefix(upstream);
        let mut s = format!("# Written by bundle: `{upstream}` images are served by {host}.\nserver = \"{server}\"\n\n");
        if prefix.is_empty() {
            host_entry(&mut s, &root, false, &tls);
        } else {
            // The mapping puts `{upstream}/NAME` at `{host}/{prefix}/NAME`: the API
            // root of this mirror is `/v2/{prefix}`, which needs override_path.
            host_entry(&mut s, &format!("{root}/v2/{prefix}"), true, &tls);
        }
        out.push((format!("{CERTS_D}/{upstream}/hosts.toml"), s));
    }
    out
}

/// A shell command that prints the HTTP status the registry's `/v2/` answers with,
/// as the nodes reach it (their CA file, their scheme); curl's error on stderr.
pub fn registry_probe(cluster: &Cluster) -> String {
    let mut cacert = match &cluster.registry_ca_file {
        Some(_) => format!(" --cacert {}", ca_path(cluster)),
        None => String::new(),
    };
    if cluster.registry_client_files.is_some() {
        let (cert, key) = client_paths(cluster);
        cacert.push_str(&format!(" --cert {cert} --key {key}"));
    }
    format!(
        "curl -sS -o /dev/null -w '%{{http_code}}'{cacert} {}/v2/",
        cluster.registry_url()
    )
}

/// `/etc/crictl.yaml`, so `crictl` talks to containerd without flags.
pub fn crictl_yaml() -> String {
    format!("runtime-endpoint: {CRI_SOCKET}\nimage-endpoint: {CRI_SOCKET}\ntimeout: 10\n")
}
