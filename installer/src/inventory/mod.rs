//! The cluster inventory (`cluster.yaml`): what users write, how it is read, and the
//! checks that run before any plan.
//!
//! [`Inventory`] mirrors the file (camelCase, unknown fields refused);
//! [`Inventory::validate`] turns it into a [`Cluster`] with defaults filled in and every
//! address parsed, or lists every [`Problem`] at once, each naming its field.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use bundle_registry::mapping::ImageMapping;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Problems};
use crate::net::Cidr;

mod validate;

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
    /// Who administers the cluster from the masters.
    #[serde(default, skip_serializing_if = "AdminSpec::is_default")]
    pub admin: AdminSpec,
    /// Where etcd runs; unset: stacked, one member on every master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSpec>,
}

/// `spec.etcd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EtcdSpec {
    /// etcd on hosts of its own (kubeadm's "external etcd" topology).
    pub external: ExternalEtcdSpec,
}

/// `spec.etcd.external`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalEtcdSpec {
    /// Names of the `spec.hosts` entries with the role `etcd`, one member each.
    pub hosts: Vec<String>,
}

/// `spec.admin`: the masters as the people who run the cluster log in to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminSpec {
    /// Users (existing on every master) who get `~/.kube/config`, a copy of
    /// `admin.conf`: cluster-admin, as kubeadm's guide sets up for a regular user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// kubectl and kubeadm bash completion in `/etc/bash_completion.d` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<bool>,
}

impl AdminSpec {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
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
    /// The host's CPU architecture as `uname -m` prints it (`x86_64`, the default, or
    /// `aarch64`; `amd64` and `arm64` are read as those). It picks the bundle's RPM
    /// target the host installs from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
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
    /// A master whose priority is higher takes the VIP back when it returns (true,
    /// keepalived's default); false: the VIP stays where it is (`nopreempt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<bool>,
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
    /// The registry speaks plain HTTP (docker's `insecure-registries`): pushes and the
    /// nodes' pulls go unencrypted and unauthenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_http: Option<bool>,
    /// Client certificate (PEM) the registry requires (mutual TLS), relative to the
    /// inventory's folder; with `clientKeyFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    /// Its private key (PEM), relative to the inventory's folder; it reaches the nodes
    /// only when the install writes it (never in a plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
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
    /// calico's settings (with `cni: calico` only); unset: the manifest's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calico: Option<CalicoSpec>,
    /// flannel's settings (with `cni: flannel` only); unset: the manifest's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flannel: Option<FlannelSpec>,
}

/// `spec.network.calico`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoSpec {
    /// The default pool's encapsulation: `IPIP`, `IPIPCrossSubnet`, `VXLAN`,
    /// `VXLANCrossSubnet` or `None` (the manifest's, IPIP, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encapsulation: Option<String>,
    /// MTU of the pods' interfaces and tunnels (`veth_mtu`; the manifest's `0`,
    /// detected by calico, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// `spec.network.flannel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlannelSpec {
    /// `host-gw` (routes between hosts on one layer-2 network) or `vxlan` (the
    /// manifest's, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// `spec.kubeProxy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeProxySpec {
    /// `ipvs` (default) or `iptables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// IPVS scheduler (`rr`, the default; `wrr`, `lc`, ...); ipvs mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// IPVS `strictARP` (false), which MetalLB needs; ipvs mode only.
    #[serde(default, rename = "strictARP", skip_serializing_if = "Option::is_none")]
    pub strict_arp: Option<bool>,
}

/// IPVS schedulers kube-proxy accepts.
pub const IPVS_SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh",
];

/// flannel backends the inventory takes.
pub const FLANNEL_BACKENDS: &[&str] = &["host-gw", "vxlan"];

/// Lowest calico MTU taken (IPv4's minimum).
pub const MTU_MIN: u32 = 576;
/// Highest calico MTU taken (jumbo frames).
pub const MTU_MAX: u32 = 9000;

/// calico's encapsulation of the default IPv4 pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encapsulation {
    /// IP in IP, always.
    #[serde(rename = "IPIP")]
    Ipip,
    /// IP in IP between subnets only.
    #[serde(rename = "IPIPCrossSubnet")]
    IpipCrossSubnet,
    /// VXLAN, always.
    #[serde(rename = "VXLAN")]
    Vxlan,
    /// VXLAN between subnets only.
    #[serde(rename = "VXLANCrossSubnet")]
    VxlanCrossSubnet,
    /// None: routes by BGP on one layer-2 network.
    None,
}

impl Encapsulation {
    /// Every value, as written in the inventory.
    pub const ALL: [(&'static str, Encapsulation); 5] = [
        ("IPIP", Encapsulation::Ipip),
        ("IPIPCrossSubnet", Encapsulation::IpipCrossSubnet),
        ("VXLAN", Encapsulation::Vxlan),
        ("VXLANCrossSubnet", Encapsulation::VxlanCrossSubnet),
        ("None", Encapsulation::None),
    ];

    /// The value as written in the inventory (`IPIPCrossSubnet`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("None", |(n, _)| *n)
    }

    /// `CALICO_IPV4POOL_IPIP`'s value.
    pub fn ipip_mode(self) -> &'static str {
        match self {
            Encapsulation::Ipip => "Always",
            Encapsulation::IpipCrossSubnet => "CrossSubnet",
            _ => "Never",
        }
    }

    /// `CALICO_IPV4POOL_VXLAN`'s value.
    pub fn vxlan_mode(self) -> &'static str {
        match self {
            Encapsulation::Vxlan => "Always",
            Encapsulation::VxlanCrossSubnet => "CrossSubnet",
            _ => "Never",
        }
    }
}

/// The CNI settings the manifest's rewrite applies; `None`: the manifest's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CniOptions {
    /// calico's encapsulation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calico_encapsulation: Option<Encapsulation>,
    /// calico's MTU (`veth_mtu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calico_mtu: Option<u32>,
    /// flannel's `Backend.Type` (`host-gw`, `vxlan`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flannel_backend: Option<String>,
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
    /// Runs an external etcd member, and nothing else of the cluster.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub etcd: bool,
    /// Interface for the VIP (masters).
    pub interface: String,
    /// CPU architecture as `uname -m` prints it (`x86_64`, `aarch64`).
    #[serde(skip_serializing_if = "is_default_arch")]
    pub arch: String,
}

/// The architecture a host has when the inventory does not say.
pub const DEFAULT_ARCH: &str = "x86_64";

/// Architectures a host may have: `uname -m`'s name, the RPM architecture and the
/// OCI image platform's.
pub const ARCHES: &[(&str, &str)] = &[
    ("x86_64", "linux/amd64"),
    ("aarch64", "linux/arm64"),
    ("ppc64le", "linux/ppc64le"),
    ("s390x", "linux/s390x"),
];

/// `amd64` and `arm64` (Debian's and Go's names) as `uname -m` prints them.
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// The OCI platform (`linux/arm64`) of a host architecture (`aarch64`).
pub fn image_platform(arch: &str) -> Option<&'static str> {
    ARCHES.iter().find(|(a, _)| *a == arch).map(|(_, p)| *p)
}

fn is_default_arch(arch: &str) -> bool {
    arch == DEFAULT_ARCH
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
    /// VRRP preemption (false: `nopreempt`, every master starts as BACKUP).
    pub preempt: bool,
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
    /// The registry is spoken to over plain HTTP (`spec.registry.plainHttp`).
    pub registry_plain_http: bool,
    /// Client certificate and key files as written (mutual TLS), resolved by the caller.
    pub registry_client_files: Option<(String, String)>,
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
    /// IPVS scheduler (ipvs mode).
    pub ipvs_scheduler: String,
    /// IPVS `strictARP` (ipvs mode).
    pub ipvs_strict_arp: bool,
    /// CNI settings for the manifest's rewrite.
    pub cni_options: CniOptions,
    /// Index in `nodes` of the repo host; `None`: the deploy node serves the
    /// repository while the install runs.
    pub repo_host: Option<usize>,
    /// Address the hosts fetch the repository from.
    pub repo_address: IpAddr,
    /// Repo HTTP port.
    pub repo_port: u16,
    /// RPM target asked for.
    pub repo_target: Option<String>,
    /// Users who get the admin kubeconfig on every master.
    pub admin_users: Vec<String>,
    /// kubectl and kubeadm bash completion on the masters.
    pub shell_completion: bool,
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

    /// Hosts that are Kubernetes nodes (masters and workers), in inventory order.
    pub fn kube_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.master || n.worker)
    }

    /// Nodes that join as workers only.
    pub fn workers_only(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.worker && !n.master)
    }

    /// External etcd members in inventory order; none when etcd is stacked.
    pub fn etcd_hosts(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.etcd)
    }

    /// etcd runs on hosts of its own (`spec.etcd.external`).
    pub fn external_etcd(&self) -> bool {
        self.nodes.iter().any(|n| n.etcd)
    }

    /// The master that runs `kubeadm init`.
    pub fn first_master(&self) -> &Node {
        self.masters().next().expect("validation requires a master")
    }

    /// The registry's root URL, `https://HOST` (or `http://HOST` with `plainHttp`).
    pub fn registry_url(&self) -> String {
        let scheme = if self.registry_plain_http {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.registry_host)
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
        validate::validate(self, force)
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
pub const SCHEMA: &str = include_str!("../../cluster.schema.json");

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
pub const TEMPLATE: &str = include_str!("../../cluster.template.yaml");
