//! The cluster inventory (`cluster.yaml`): what users write, how it is read, and the
//! checks that run before any plan.
//!
//! [`Inventory`] mirrors the file (camelCase, unknown fields refused);
//! [`Inventory::validate`] turns it into a [`Cluster`] with defaults filled in and every
//! address parsed, or lists every [`Problem`] at once, each naming its field.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bundle_registry::mapping::{ImageMapping, Override};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Problems};
use crate::net::Cidr;

/// `apiVersion` this version reads.
pub const API_VERSION: &str = "bundle/v1alpha1";
/// `spec.repo.servedBy` value for the machine running `bundle install`.
pub const DEPLOY: &str = "deploy";
/// `kind` of an inventory.
pub const KIND: &str = "Cluster";

/// The inventory file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    /// `bundle/v1alpha1`.
    pub api_version: String,
    /// `Cluster`.
    pub kind: String,
    /// Name of the cluster.
    pub metadata: Metadata,
    /// What to install where.
    pub spec: Spec,
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Cluster name (kubeadm `clusterName`).
    pub name: String,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Every machine of the cluster.
    pub hosts: Vec<HostSpec>,
    /// How to reach the hosts (used by executors, not by planning).
    #[serde(default)]
    pub ssh: SshSpec,
    /// The highly available API endpoint.
    pub control_plane_endpoint: EndpointSpec,
    /// The registry the images were pushed to.
    pub registry: RegistrySpec,
    /// Pod and service networks, and the CNI.
    pub network: NetworkSpec,
    /// kube-proxy settings.
    #[serde(default)]
    pub kube_proxy: KubeProxySpec,
    /// Where the bundle's yum repository is served from.
    pub repo: RepoSpec,
}

/// One host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostSpec {
    /// Node name and hostname (RFC 1123 label, lowercase).
    pub name: String,
    /// IP address the cluster uses to reach it.
    pub address: String,
    /// `master`, `worker`, or both.
    pub roles: Vec<String>,
    /// Interface carrying the VIP on this host when it differs from
    /// `spec.controlPlaneEndpoint.interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// How to reach this host when it differs from `spec.ssh` (fields given here win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshSpec>,
}

/// `spec.ssh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshSpec {
    /// Login user (`root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Port (22).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    /// `known_hosts` file checked strictly (ssh's default files when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts_file: Option<String>,
    /// Jump host(s), as ssh's `-J` takes them (`admin@bastion:22,other`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_jump: Option<String>,
    /// An ssh configuration file used instead of `~/.ssh/config` (ssh's `-F`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
    /// `sudo` to run commands as root when `user` is not root.
    #[serde(default, rename = "become", skip_serializing_if = "Option::is_none")]
    pub become_method: Option<String>,
}

impl SshSpec {
    /// `self` with the fields `over` sets replaced.
    pub fn merged(&self, over: Option<&SshSpec>) -> SshSpec {
        let Some(o) = over else { return self.clone() };
        SshSpec {
            user: o.user.clone().or_else(|| self.user.clone()),
            port: o.port.or(self.port),
            identity_file: o
                .identity_file
                .clone()
                .or_else(|| self.identity_file.clone()),
            known_hosts_file: o
                .known_hosts_file
                .clone()
                .or_else(|| self.known_hosts_file.clone()),
            proxy_jump: o.proxy_jump.clone().or_else(|| self.proxy_jump.clone()),
            config_file: o.config_file.clone().or_else(|| self.config_file.clone()),
            become_method: o
                .become_method
                .clone()
                .or_else(|| self.become_method.clone()),
        }
    }
}

/// `spec.controlPlaneEndpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSpec {
    /// Virtual IP held by keepalived.
    pub vip: String,
    /// haproxy's port on every master (8443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Interface the VIP is added to.
    pub interface: String,
    /// VRRP virtual router id, 1-255 (51); unique per network segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_router_id: Option<u8>,
    /// VRRP over unicast to the other masters (true) instead of multicast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast: Option<bool>,
    /// haproxy statistics port, bound on 127.0.0.1 (8404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_port: Option<u16>,
}

/// `spec.registry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySpec {
    /// Registry host, with port if not 443 (`harbor.example.com`).
    pub host: String,
    /// CA certificate (PEM) the registry's certificate chains to, relative to the
    /// inventory's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Address to put in every host's `/etc/hosts` for the registry, when DNS does not
    /// resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Image name overrides `SRC_PREFIX=DEST_PREFIX`, as given to `bundle push --map`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub map: Vec<String>,
    /// The account nodes pull images with (a Harbor robot account with pull rights);
    /// its password comes from `BUNDLE_REGISTRY_PULL_PASSWORD` when installing. Without
    /// it nodes pull anonymously, and missing Harbor projects are created public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_username: Option<String>,
}

/// `spec.network`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// `calico` or `flannel`: must be the CNI the bundle carries.
    pub cni: String,
    /// Pod network.
    pub pod_subnet: String,
    /// Service network.
    pub service_subnet: String,
    /// Cluster DNS domain (`cluster.local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
}

/// `spec.kubeProxy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeProxySpec {
    /// `ipvs` (default) or `iptables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// `spec.repo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoSpec {
    /// Host serving the bundle's yum repository to the others, or `deploy`: the
    /// machine running `bundle install` serves it while the install runs.
    pub served_by: String,
    /// With `servedBy: deploy`: the deploy node's address as the hosts reach it (the
    /// repository server binds to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP port (8081).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Which of the bundle's RPM targets to install (`el9-x86_64`); needed only when the
    /// bundle carries more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A host's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Node name and hostname.
    pub name: String,
    /// Address.
    pub address: IpAddr,
    /// Runs the control plane, etcd, haproxy and keepalived.
    pub master: bool,
    /// Runs workloads.
    pub worker: bool,
    /// Interface for the VIP (masters).
    pub interface: String,
}

/// A checked inventory with defaults filled in: the planner's input.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Hosts in inventory order; the first master initialises the cluster.
    pub nodes: Vec<Node>,
    /// Virtual IP.
    pub vip: IpAddr,
    /// haproxy port.
    pub lb_port: u16,
    /// VRRP virtual router id.
    pub virtual_router_id: u8,
    /// VRRP unicast.
    pub unicast: bool,
    /// haproxy stats port.
    pub stats_port: u16,
    /// Registry host.
    pub registry_host: String,
    /// Registry CA file as written (resolved by the caller).
    pub registry_ca_file: Option<String>,
    /// Registry address for `/etc/hosts`.
    pub registry_address: Option<IpAddr>,
    /// Account the nodes' containerd pulls with; `None`: anonymous pulls.
    pub registry_pull_username: Option<String>,
    /// The image mapping (same as `bundle push`).
    #[serde(skip)]
    pub mapping: ImageMapping,
    /// CNI name.
    pub cni: String,
    /// Pod network.
    pub pod_subnet: Cidr,
    /// Service network.
    pub service_subnet: Cidr,
    /// DNS domain.
    pub dns_domain: String,
    /// kube-proxy mode.
    pub proxy_mode: String,
    /// Index in `nodes` of the repo host; `None`: the deploy node serves the
    /// repository while the install runs.
    pub repo_host: Option<usize>,
    /// Address the hosts fetch the repository from.
    pub repo_address: IpAddr,
    /// Repo HTTP port.
    pub repo_port: u16,
    /// RPM target asked for.
    pub repo_target: Option<String>,
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Cluster {
    /// Masters in inventory order.
    pub fn masters(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.master)
    }

    /// The master that runs `kubeadm init`.
    pub fn first_master(&self) -> &Node {
        self.masters().next().expect("validation requires a master")
    }

    /// The host serving the yum repository (`None`: the deploy node does).
    pub fn repo_node(&self) -> Option<&Node> {
        self.repo_host.map(|i| &self.nodes[i])
    }
}

impl Inventory {
    /// Reads and parses `path` (no checks beyond the shape; see [`Inventory::validate`]).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::InventoryRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Yaml(detail) => Error::InventoryParse {
                path: path.to_path_buf(),
                detail,
            },
            ParseError::Fields(problems) => Error::Inventory {
                path: path.to_path_buf(),
                problems: Problems(problems),
            },
        })
    }

    /// Parses inventory text. Unknown fields are reported all at once with their
    /// path (`spec.hosts[3].gpu`), checked against the JSON Schema
    /// ([`SCHEMA`]); type and syntax errors come with line and column.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| ParseError::Yaml(e.to_string()))?;
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        let mut problems = Vec::new();
        unknown_fields(&schema, &value, "", &mut problems);
        if !problems.is_empty() {
            return Err(ParseError::Fields(problems));
        }
        serde_saphyr::from_str(text).map_err(|e| ParseError::Yaml(e.to_string()))
    }

    /// Checks everything that can be checked without the bundle; with `force`, a
    /// control plane that is not HA (even or fewer than three masters) is a warning.
    /// Returns the cluster and the warnings, or every problem found.
    pub fn validate(&self, force: bool) -> Result<(Cluster, Vec<Problem>), Vec<Problem>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut p = |field: &str, message: String| problems.push(Problem::new(field, message));

        if self.api_version != API_VERSION {
            p(
                "apiVersion",
                format!(
                    "`{}` is not supported; expected `{API_VERSION}`",
                    self.api_version
                ),
            );
        }
        if self.kind != KIND {
            p(
                "kind",
                format!("`{}` is not supported; expected `{KIND}`", self.kind),
            );
        }
        if !is_dns_subdomain(&self.metadata.name) {
            p(
                "metadata.name",
                format!(
                    "`{}` must be lowercase letters, digits, `-` and `.`",
                    self.metadata.name
                ),
            );
        }
        let spec = &self.spec;
        let ep = &spec.control_plane_endpoint;
        if spec.hosts.is_empty() {
            p("spec.hosts", "no hosts are listed".into());
        }

        let mut nodes = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
        for (i, h) in spec.hosts.iter().enumerate() {
            let f = |s: &str| format!("spec.hosts[{i}].{s}");
            if !is_dns_label(&h.name) {
                p(&f("name"), format!("`{}` is not a valid node name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit", h.name));
            } else if let Some(first) = names.insert(&h.name, i) {
                names.insert(&h.name, first);
                p(
                    &f("name"),
                    format!(
                        "`{}` is also the name of `spec.hosts[{first}]`; host names must be unique",
                        h.name
                    ),
                );
            }
            let address = match h.address.parse::<IpAddr>() {
                Ok(a) if a.is_unspecified() || a.is_loopback() || a.is_multicast() => {
                    p(
                        &f("address"),
                        format!("`{}` cannot be a node address", h.address),
                    );
                    None
                }
                Ok(a) => {
                    if let Some(first) = addresses.insert(a, i) {
                        addresses.insert(a, first);
                        p(&f("address"), format!("`{a}` is also the address of `spec.hosts[{first}]` (`{}`); addresses must be unique", spec.hosts[first].name));
                    }
                    Some(a)
                }
                Err(_) => {
                    p(
                        &f("address"),
                        format!("`{}` is not an IP address", h.address),
                    );
                    None
                }
            };
            let (mut master, mut worker) = (false, false);
            if h.roles.is_empty() {
                p(
                    &f("roles"),
                    "no roles; give `master`, `worker` or both".into(),
                );
            }
            for (j, r) in h.roles.iter().enumerate() {
                match r.as_str() {
                    "master" => master = true,
                    "worker" => worker = true,
                    other => p(
                        &format!("spec.hosts[{i}].roles[{j}]"),
                        format!("unknown role `{other}`; roles are `master` and `worker`"),
                    ),
                }
            }
            if let Some(iface) = &h.interface {
                if !is_interface(iface) {
                    p(
                        &f("interface"),
                        format!("`{iface}` is not an interface name"),
                    );
                }
            }
            if let Some(address) = address {
                nodes.push(Node {
                    name: h.name.clone(),
                    address,
                    master,
                    worker,
                    interface: h.interface.clone().unwrap_or_else(|| ep.interface.clone()),
                });
            }
        }

        let masters = spec
            .hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == "master"))
            .count();
        if masters == 0 && !spec.hosts.is_empty() {
            p("spec.hosts", "no host has the `master` role".into());
        } else if masters > 0 && (masters < 3 || masters % 2 == 0) {
            let why = if masters < 3 {
                format!("{masters} master{} cannot keep etcd quorum when one fails; an HA control plane needs 3, 5 or 7", if masters == 1 { "" } else { "s" })
            } else {
                format!(
                    "{masters} masters tolerate no more failures than {}; use an odd number",
                    masters - 1
                )
            };
            let pr = Problem::new(
                "spec.hosts",
                format!("{why} (pass `--force` to install anyway)"),
            );
            if force {
                warnings.push(Problem::new("spec.hosts", why));
            } else {
                problems.push(pr);
            }
        } else if masters > 9 {
            problems.push(Problem::new("spec.hosts", format!("{masters} masters: at most 9 are supported (etcd slows down with more members)")));
        }
        let mut p = |field: &str, message: String| problems.push(Problem::new(field, message));

        let pod = parse_cidr(&mut p, "spec.network.podSubnet", &spec.network.pod_subnet);
        let svc = parse_cidr(
            &mut p,
            "spec.network.serviceSubnet",
            &spec.network.service_subnet,
        );
        if let (Some(pod), Some(svc)) = (pod, svc) {
            if pod.overlaps(&svc) {
                p(
                    "spec.network.serviceSubnet",
                    format!("`{svc}` overlaps the pod network `{pod}` (`spec.network.podSubnet`)"),
                );
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            let idx = spec
                .hosts
                .iter()
                .position(|h| h.name == n.name && h.address.parse().ok() == Some(n.address))
                .unwrap_or(i);
            for (net, field) in [
                (pod, "spec.network.podSubnet"),
                (svc, "spec.network.serviceSubnet"),
            ] {
                if let Some(net) = net.filter(|net| net.contains(n.address)) {
                    p(&format!("spec.hosts[{idx}].address"), format!("`{}` is inside `{net}` (`{field}`); host, pod and service networks must not overlap", n.address));
                }
            }
        }

        let vip = match ep.vip.parse::<IpAddr>() {
            Ok(vip) => {
                if let Some(&i) = addresses.get(&vip) {
                    p("spec.controlPlaneEndpoint.vip", format!("`{vip}` is the address of `spec.hosts[{i}]` (`{}`); the VIP must be a free address", spec.hosts[i].name));
                }
                for (net, field) in [
                    (pod, "spec.network.podSubnet"),
                    (svc, "spec.network.serviceSubnet"),
                ] {
                    if let Some(net) = net.filter(|net| net.contains(vip)) {
                        p("spec.controlPlaneEndpoint.vip", format!("`{vip}` is inside `{net}` (`{field}`); the VIP must be on the hosts' network"));
                    }
                }
                if nodes.iter().any(|n| n.address.is_ipv4() != vip.is_ipv4()) {
                    p(
                        "spec.controlPlaneEndpoint.vip",
                        format!("`{vip}` is not of the same address family as the hosts"),
                    );
                }
                Some(vip)
            }
            Err(_) => {
                p(
                    "spec.controlPlaneEndpoint.vip",
                    format!("`{}` is not an IP address", ep.vip),
                );
                None
            }
        };
        let lb_port = ep.port.unwrap_or(8443);
        let stats_port = ep.stats_port.unwrap_or(8404);
        for (port, field) in [
            (lb_port, "spec.controlPlaneEndpoint.port"),
            (stats_port, "spec.controlPlaneEndpoint.statsPort"),
        ] {
            if port == 0 {
                p(field, "0 is not a port".into());
            } else if RESERVED_PORTS.contains(&port) {
                p(field, format!("{port} is used by Kubernetes on the masters (6443, 2379, 2380, 10250, 10257, 10259)"));
            }
        }
        if lb_port == stats_port {
            p(
                "spec.controlPlaneEndpoint.statsPort",
                format!("{stats_port} is also `spec.controlPlaneEndpoint.port`"),
            );
        }
        if !is_interface(&ep.interface) {
            p(
                "spec.controlPlaneEndpoint.interface",
                format!("`{}` is not an interface name", ep.interface),
            );
        }
        let vrid = ep.virtual_router_id.unwrap_or(51);
        if vrid == 0 {
            p(
                "spec.controlPlaneEndpoint.virtualRouterId",
                "must be 1-255".into(),
            );
        }

        let registry_host = spec.registry.host.trim().to_string();
        let mut overrides = Vec::new();
        for (i, m) in spec.registry.map.iter().enumerate() {
            match m.parse::<Override>() {
                Ok(o) => overrides.push(o),
                Err(e) => p(&format!("spec.registry.map[{i}]"), e.to_string()),
            }
        }
        let mapping = match ImageMapping::new(&registry_host, overrides) {
            Ok(m) => Some(m),
            Err(e) => {
                p("spec.registry.host", e.to_string());
                None
            }
        };
        let registry_address = match &spec.registry.address {
            None => None,
            Some(a) => match a.parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    p(
                        "spec.registry.address",
                        format!("`{a}` is not an IP address"),
                    );
                    None
                }
            },
        };

        let pull_username = spec.registry.pull_username.clone();
        if let Some(u) = &pull_username {
            // It goes into containerd's TOML as a basic string.
            if u.is_empty()
                || u.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
            {
                p(
                    "spec.registry.pullUsername",
                    format!("`{u}` is not an account name (no spaces, quotes or backslashes)"),
                );
            }
        }

        if !["calico", "flannel"].contains(&spec.network.cni.as_str()) {
            p(
                "spec.network.cni",
                format!(
                    "`{}` is not supported; use `calico` or `flannel`",
                    spec.network.cni
                ),
            );
        }
        let dns_domain = spec
            .network
            .dns_domain
            .clone()
            .unwrap_or_else(|| "cluster.local".into());
        if !is_dns_subdomain(&dns_domain) {
            p(
                "spec.network.dnsDomain",
                format!("`{dns_domain}` is not a DNS domain"),
            );
        }
        let proxy_mode = spec
            .kube_proxy
            .mode
            .clone()
            .unwrap_or_else(|| "ipvs".into());
        if !["ipvs", "iptables"].contains(&proxy_mode.as_str()) {
            p(
                "spec.kubeProxy.mode",
                format!("`{proxy_mode}` is not supported; use `ipvs` or `iptables`"),
            );
        }

        let by_deploy = spec.repo.served_by == DEPLOY;
        let repo_host = nodes.iter().position(|n| n.name == spec.repo.served_by);
        let mut repo_address = repo_host.map(|i| nodes[i].address);
        if by_deploy {
            if spec.hosts.iter().any(|h| h.name == DEPLOY) {
                p(
                    "spec.repo.servedBy",
                    format!("`{DEPLOY}` names the deploy node, but a host is also called `{DEPLOY}`; rename the host"),
                );
            }
            match spec.repo.address.as_deref().map(str::parse::<IpAddr>) {
                None => p(
                    "spec.repo.address",
                    "`servedBy: deploy` needs the deploy node's address as the hosts reach it"
                        .into(),
                ),
                Some(Err(_)) => p(
                    "spec.repo.address",
                    format!(
                        "`{}` is not an IP address",
                        spec.repo.address.as_deref().unwrap_or_default()
                    ),
                ),
                Some(Ok(a)) => {
                    if let Some(&i) = addresses.get(&a) {
                        p("spec.repo.address", format!("`{a}` is the address of `spec.hosts[{i}]`; to serve from that host use `servedBy: {}`", spec.hosts[i].name));
                    }
                    repo_address = Some(a);
                }
            }
        } else if spec.repo.address.is_some() {
            p(
                "spec.repo.address",
                "only used with `servedBy: deploy` (a host serves from its own address)".into(),
            );
        }
        if !by_deploy
            && repo_host.is_none()
            && !spec.hosts.iter().any(|h| h.name == spec.repo.served_by)
        {
            p(
                "spec.repo.servedBy",
                format!(
                    "`{}` is not the name of a host in `spec.hosts` (or `{DEPLOY}` for the deploy node)",
                    spec.repo.served_by
                ),
            );
        }
        let repo_port = spec.repo.port.unwrap_or(8081);
        if repo_port == 0 {
            p("spec.repo.port", "0 is not a port".into());
        }
        if let Some(repo_host) = repo_host {
            if nodes[repo_host].master && [lb_port, stats_port].contains(&repo_port)
                || RESERVED_PORTS.contains(&repo_port)
            {
                p(
                    "spec.repo.port",
                    format!("{repo_port} is already used on `{}`", spec.repo.served_by),
                );
            }
        }
        let mut ssh_specs = vec![("spec.ssh".to_string(), &spec.ssh)];
        for (i, h) in spec.hosts.iter().enumerate() {
            if let Some(s) = &h.ssh {
                ssh_specs.push((format!("spec.hosts[{i}].ssh"), s));
            }
        }
        for (field, s) in ssh_specs {
            if let Some(user) = &s.user {
                if user.is_empty() || user.contains(char::is_whitespace) || user.starts_with('-') {
                    p(
                        &format!("{field}.user"),
                        format!("`{user}` is not a user name"),
                    );
                }
            }
            if s.port == Some(0) {
                p(&format!("{field}.port"), "0 is not a port".into());
            }
            if let Some(b) = &s.become_method {
                if b != "sudo" {
                    p(
                        &format!("{field}.become"),
                        format!("`{b}` is not supported; use `sudo`"),
                    );
                }
            }
            if let Some(j) = &s.proxy_jump {
                if j.is_empty() || j.starts_with('-') || j.contains(char::is_whitespace) {
                    p(
                        &format!("{field}.proxyJump"),
                        format!("`{j}` is not a jump host list"),
                    );
                }
            }
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        let cluster = Cluster {
            name: self.metadata.name.clone(),
            nodes,
            vip: vip.expect("checked"),
            lb_port,
            virtual_router_id: vrid,
            unicast: ep.unicast.unwrap_or(true),
            stats_port,
            registry_host,
            registry_ca_file: spec.registry.ca_file.clone(),
            registry_address,
            registry_pull_username: pull_username,
            mapping: mapping.expect("checked"),
            cni: spec.network.cni.clone(),
            pod_subnet: pod.expect("checked"),
            service_subnet: svc.expect("checked"),
            dns_domain,
            proxy_mode,
            repo_host,
            repo_address: repo_address.expect("checked"),
            repo_port,
            repo_target: spec.repo.target.clone(),
        };
        Ok((cluster, warnings))
    }

    /// [`Inventory::load`] then [`Inventory::validate`], with the problems as an error
    /// naming the file.
    pub fn load_cluster(path: &Path, force: bool) -> Result<(Cluster, Vec<Problem>), Error> {
        Self::load(path)?
            .validate(force)
            .map_err(|problems| Error::Inventory {
                path: path.to_path_buf(),
                problems: Problems(problems),
            })
    }
}

/// Why inventory text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// YAML syntax or a value of the wrong type (the parser's message, with line).
    Yaml(String),
    /// Fields the schema does not know.
    Fields(Vec<Problem>),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Yaml(e) => f.write_str(e),
            ParseError::Fields(p) => write!(f, "{}", Problems(p.clone())),
        }
    }
}

/// The inventory's JSON Schema (`installer/cluster.schema.json`).
pub const SCHEMA: &str = include_str!("../cluster.schema.json");

/// Lists fields of `value` that `schema` (objects with `additionalProperties: false`)
/// does not know, with their paths.
fn unknown_fields(
    schema: &serde_json::Value,
    value: &serde_json::Value,
    path: &str,
    out: &mut Vec<Problem>,
) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (k, v) in map {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match props.get(k) {
                    Some(s) => unknown_fields(s, v, &child, out),
                    None if closed => {
                        let known: Vec<&str> = props.keys().map(String::as_str).collect();
                        out.push(Problem::new(
                            child,
                            format!("unknown field `{k}`; expected one of {}", known.join(", ")),
                        ));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    unknown_fields(s, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// Ports kubeadm's control plane and kubelet take on the masters.
pub const RESERVED_PORTS: &[u16] = &[6443, 2379, 2380, 10250, 10257, 10259];

fn parse_cidr(p: &mut impl FnMut(&str, String), field: &str, s: &str) -> Option<Cidr> {
    match s.parse::<Cidr>() {
        Ok(c) => Some(c),
        Err(e) => {
            p(field, format!("`{s}` is not a network: {e}"));
            None
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_interface(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
}

/// Resolves a path from the inventory against the inventory's folder.
pub fn resolve_relative(inventory: &Path, file: &str) -> PathBuf {
    let file = expand_home(file);
    if file.is_absolute() {
        file
    } else {
        inventory.parent().unwrap_or(Path::new("")).join(file)
    }
}

fn expand_home(file: &str) -> PathBuf {
    match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(file),
    }
}

/// The commented template `bundle init` writes.
pub const TEMPLATE: &str = include_str!("../cluster.template.yaml");
