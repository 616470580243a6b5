//! [`Inventory::validate`]: every check that needs no bundle, in the order the
//! problems are listed, each section a function of its own.

use std::collections::HashMap;
use std::net::IpAddr;

use bundle_registry::mapping::{ImageMapping, Override};

use super::{
    is_dns_label, is_dns_subdomain, is_interface, normalize_arch, parse_cidr, Cluster, CniOptions,
    Encapsulation, Inventory, Node, SshSpec, API_VERSION, ARCHES, DEFAULT_ARCH, DEPLOY,
    FLANNEL_BACKENDS, IPVS_SCHEDULERS, KIND, MTU_MAX, MTU_MIN, RESERVED_PORTS,
};
use crate::error::Problem;
use crate::net::Cidr;

/// The inventory being checked and the problems found so far.
struct Check<'a> {
    inv: &'a Inventory,
    problems: Vec<Problem>,
}

/// Hosts with parsed addresses, and where each address was first seen.
struct Hosts {
    nodes: Vec<Node>,
    addresses: HashMap<IpAddr, usize>,
}

/// `spec.controlPlaneEndpoint` with defaults filled in.
struct Endpoint {
    vip: Option<IpAddr>,
    lb_port: u16,
    stats_port: u16,
    vrid: u8,
}

/// `spec.registry`, checked.
struct Registry {
    host: String,
    mapping: Option<ImageMapping>,
    address: Option<IpAddr>,
}

/// `spec.repo`, checked.
struct Repo {
    host: Option<usize>,
    address: Option<IpAddr>,
    port: u16,
}

pub(super) fn validate(
    inv: &Inventory,
    force: bool,
) -> Result<(Cluster, Vec<Problem>), Vec<Problem>> {
    let mut c = Check {
        inv,
        problems: Vec::new(),
    };
    c.header();
    let hosts = c.hosts();
    let mut warnings = c.masters(force);
    let (pod, svc) = c.networks(&hosts.nodes);
    let ep = c.endpoint(&hosts, pod, svc);
    let registry = c.registry();
    warnings.extend(c.plain_http());
    c.client_certificate();
    let (dns_domain, proxy_mode) = c.network_options();
    let (ipvs_scheduler, ipvs_strict_arp) = c.ipvs(&proxy_mode);
    let cni_options = c.cni_options();
    let repo = c.repo(&hosts, &ep);
    c.ssh();
    c.admin();
    warnings.extend(c.external_etcd(force));
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let (Some(vip), Some(mapping), Some(pod_subnet), Some(service_subnet), Some(repo_address)) =
        (ep.vip, registry.mapping, pod, svc, repo.address)
    else {
        unreachable!("each of these is a problem when missing");
    };
    let spec = &inv.spec;
    let cluster = Cluster {
        name: inv.metadata.name.clone(),
        nodes: hosts.nodes,
        vip,
        lb_port: ep.lb_port,
        virtual_router_id: ep.vrid,
        unicast: spec.control_plane_endpoint.unicast.unwrap_or(true),
        preempt: spec.control_plane_endpoint.preempt.unwrap_or(true),
        stats_port: ep.stats_port,
        registry_host: registry.host,
        registry_ca_file: spec.registry.ca_file.clone(),
        registry_address: registry.address,
        registry_pull_username: spec.registry.pull_username.clone(),
        registry_plain_http: spec.registry.plain_http.unwrap_or(false),
        registry_client_files: spec
            .registry
            .client_cert_file
            .clone()
            .zip(spec.registry.client_key_file.clone()),
        mapping,
        cni: spec.network.cni.clone(),
        pod_subnet,
        service_subnet,
        dns_domain,
        proxy_mode,
        ipvs_scheduler,
        ipvs_strict_arp,
        cni_options,
        repo_host: repo.host,
        repo_address,
        repo_port: repo.port,
        repo_target: spec.repo.target.clone(),
        admin_users: spec.admin.users.clone(),
        shell_completion: spec.admin.completion.unwrap_or(true),
    };
    Ok((cluster, warnings))
}

impl Check<'_> {
    fn p(&mut self, field: &str, message: String) {
        self.problems.push(Problem::new(field, message));
    }

    /// `apiVersion`, `kind`, `metadata.name`.
    fn header(&mut self) {
        let inv = self.inv;
        if inv.api_version != API_VERSION {
            self.p(
                "apiVersion",
                format!(
                    "`{}` is not supported; expected `{API_VERSION}`",
                    inv.api_version
                ),
            );
        }
        if inv.kind != KIND {
            self.p(
                "kind",
                format!("`{}` is not supported; expected `{KIND}`", inv.kind),
            );
        }
        if !is_dns_subdomain(&inv.metadata.name) {
            self.p(
                "metadata.name",
                format!(
                    "`{}` must be lowercase letters, digits, `-` and `.`",
                    inv.metadata.name
                ),
            );
        }
    }

    /// Every host: name, address, roles, interface; unique names and addresses.
    fn hosts(&mut self) -> Hosts {
        let spec = &self.inv.spec;
        if spec.hosts.is_empty() {
            self.p("spec.hosts", "no hosts are listed".into());
        }
        let mut nodes = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
        for (i, h) in spec.hosts.iter().enumerate() {
            let f = |s: &str| format!("spec.hosts[{i}].{s}");
            if !is_dns_label(&h.name) {
                self.p(&f("name"), format!("`{}` is not a valid node name: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit", h.name));
            } else if let Some(first) = names.insert(&h.name, i) {
                names.insert(&h.name, first);
                self.p(
                    &f("name"),
                    format!(
                        "`{}` is also the name of `spec.hosts[{first}]`; host names must be unique",
                        h.name
                    ),
                );
            }
            let address = self.host_address(i, &mut addresses);
            let (master, worker, etcd) = self.roles(i);
            if let Some(iface) = &h.interface {
                if !is_interface(iface) {
                    self.p(
                        &f("interface"),
                        format!("`{iface}` is not an interface name"),
                    );
                }
            }
            let arch = self.host_arch(i);
            if let Some(address) = address {
                nodes.push(Node {
                    name: h.name.clone(),
                    address,
                    master,
                    worker,
                    etcd,
                    interface: h
                        .interface
                        .clone()
                        .unwrap_or_else(|| spec.control_plane_endpoint.interface.clone()),
                    arch,
                });
            }
        }
        Hosts { nodes, addresses }
    }

    /// `spec.hosts[i].arch`: one Kubernetes runs on, `x86_64` when not given.
    fn host_arch(&mut self, i: usize) -> String {
        let Some(raw) = self.inv.spec.hosts[i].arch.as_deref() else {
            return DEFAULT_ARCH.into();
        };
        let arch = normalize_arch(raw);
        if !ARCHES.iter().any(|(a, _)| *a == arch) {
            let known: Vec<&str> = ARCHES.iter().map(|(a, _)| *a).collect();
            self.p(
                &format!("spec.hosts[{i}].arch"),
                format!(
                    "`{raw}` is not an architecture Kubernetes runs on: use one of {} (as `uname -m` prints it)",
                    known.join(", ")
                ),
            );
        }
        arch.to_string()
    }

    /// `spec.hosts[i].address`: a usable address no other host has.
    fn host_address(&mut self, i: usize, addresses: &mut HashMap<IpAddr, usize>) -> Option<IpAddr> {
        let hosts = &self.inv.spec.hosts;
        let field = format!("spec.hosts[{i}].address");
        let raw = &hosts[i].address;
        match raw.parse::<IpAddr>() {
            Ok(a) if a.is_unspecified() || a.is_loopback() || a.is_multicast() => {
                self.p(&field, format!("`{raw}` cannot be a node address"));
                None
            }
            Ok(a) => {
                if let Some(first) = addresses.insert(a, i) {
                    addresses.insert(a, first);
                    self.p(&field, format!("`{a}` is also the address of `spec.hosts[{first}]` (`{}`); addresses must be unique", hosts[first].name));
                }
                Some(a)
            }
            Err(_) => {
                self.p(&field, format!("`{raw}` is not an IP address"));
                None
            }
        }
    }

    /// `spec.hosts[i].roles`: (master, worker, etcd).
    fn roles(&mut self, i: usize) -> (bool, bool, bool) {
        let h = &self.inv.spec.hosts[i];
        let (mut master, mut worker, mut etcd) = (false, false, false);
        if h.roles.is_empty() {
            self.p(
                &format!("spec.hosts[{i}].roles"),
                "no roles; give `master`, `worker` or both (or `etcd` alone)".into(),
            );
        }
        for (j, r) in h.roles.iter().enumerate() {
            match r.as_str() {
                "master" => master = true,
                "worker" => worker = true,
                "etcd" => etcd = true,
                other => self.p(
                    &format!("spec.hosts[{i}].roles[{j}]"),
                    format!("unknown role `{other}`; roles are `master`, `worker` and `etcd`"),
                ),
            }
        }
        if etcd && (master || worker) {
            // A master already runs a member (stacked etcd); a worker's pods would
            // share the disk etcd's latency depends on.
            self.p(
                &format!("spec.hosts[{i}].roles"),
                "`etcd` is a role of its own: an external etcd host is neither master nor worker"
                    .into(),
            );
        }
        (master, worker, etcd)
    }

    /// An HA number of masters; with `force`, a warning. Returns the warnings.
    fn masters(&mut self, force: bool) -> Vec<Problem> {
        let hosts = &self.inv.spec.hosts;
        let masters = hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == "master"))
            .count();
        let mut warnings = Vec::new();
        if masters == 0 && !hosts.is_empty() {
            self.p("spec.hosts", "no host has the `master` role".into());
        } else if masters > 0 && (masters < 3 || masters % 2 == 0) {
            let why = if masters < 3 {
                format!("{masters} master{} cannot keep etcd quorum when one fails; an HA control plane needs 3, 5 or 7", if masters == 1 { "" } else { "s" })
            } else {
                format!(
                    "{masters} masters tolerate no more failures than {}; use an odd number",
                    masters - 1
                )
            };
            if force {
                warnings.push(Problem::new("spec.hosts", why));
            } else {
                self.p(
                    "spec.hosts",
                    format!("{why} (pass `--force` to install anyway)"),
                );
            }
        } else if masters > 9 {
            self.p("spec.hosts", format!("{masters} masters: at most 9 are supported (etcd slows down with more members)"));
        }
        warnings
    }

    /// Pod and service networks: valid, apart, and holding no host.
    fn networks(&mut self, nodes: &[Node]) -> (Option<Cidr>, Option<Cidr>) {
        let spec = &self.inv.spec;
        let mut p = |field: &str, message: String| self.problems.push(Problem::new(field, message));
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
        (pod, svc)
    }

    /// `spec.controlPlaneEndpoint`: the VIP, ports, interface, router id.
    fn endpoint(&mut self, hosts: &Hosts, pod: Option<Cidr>, svc: Option<Cidr>) -> Endpoint {
        let ep = &self.inv.spec.control_plane_endpoint;
        let vip = self.vip(hosts, pod, svc);
        let lb_port = ep.port.unwrap_or(8443);
        let stats_port = ep.stats_port.unwrap_or(8404);
        for (port, field) in [
            (lb_port, "spec.controlPlaneEndpoint.port"),
            (stats_port, "spec.controlPlaneEndpoint.statsPort"),
        ] {
            if port == 0 {
                self.p(field, "0 is not a port".into());
            } else if RESERVED_PORTS.contains(&port) {
                self.p(field, format!("{port} is used by Kubernetes on the masters (6443, 2379, 2380, 10250, 10257, 10259)"));
            }
        }
        if lb_port == stats_port {
            self.p(
                "spec.controlPlaneEndpoint.statsPort",
                format!("{stats_port} is also `spec.controlPlaneEndpoint.port`"),
            );
        }
        if !is_interface(&ep.interface) {
            self.p(
                "spec.controlPlaneEndpoint.interface",
                format!("`{}` is not an interface name", ep.interface),
            );
        }
        let vrid = ep.virtual_router_id.unwrap_or(51);
        if vrid == 0 {
            self.p(
                "spec.controlPlaneEndpoint.virtualRouterId",
                "must be 1-255".into(),
            );
        }
        Endpoint {
            vip,
            lb_port,
            stats_port,
            vrid,
        }
    }

    /// The VIP: free, outside the pod and service networks, of the hosts' family.
    fn vip(&mut self, hosts: &Hosts, pod: Option<Cidr>, svc: Option<Cidr>) -> Option<IpAddr> {
        let spec = &self.inv.spec;
        let field = "spec.controlPlaneEndpoint.vip";
        let Ok(vip) = spec.control_plane_endpoint.vip.parse::<IpAddr>() else {
            let raw = &spec.control_plane_endpoint.vip;
            self.p(field, format!("`{raw}` is not an IP address"));
            return None;
        };
        if let Some(&i) = hosts.addresses.get(&vip) {
            self.p(field, format!("`{vip}` is the address of `spec.hosts[{i}]` (`{}`); the VIP must be a free address", spec.hosts[i].name));
        }
        for (net, net_field) in [
            (pod, "spec.network.podSubnet"),
            (svc, "spec.network.serviceSubnet"),
        ] {
            if let Some(net) = net.filter(|net| net.contains(vip)) {
                self.p(field, format!("`{vip}` is inside `{net}` (`{net_field}`); the VIP must be on the hosts' network"));
            }
        }
        if hosts
            .nodes
            .iter()
            .any(|n| n.address.is_ipv4() != vip.is_ipv4())
        {
            self.p(
                field,
                format!("`{vip}` is not of the same address family as the hosts"),
            );
        }
        Some(vip)
    }

    /// `spec.registry`: host, mapping overrides, address, pull account.
    fn registry(&mut self) -> Registry {
        let spec = &self.inv.spec.registry;
        let host = spec.host.trim().to_string();
        let mut overrides = Vec::new();
        for (i, m) in spec.map.iter().enumerate() {
            match m.parse::<Override>() {
                Ok(o) => overrides.push(o),
                Err(e) => self.p(&format!("spec.registry.map[{i}]"), e.to_string()),
            }
        }
        let mapping = match ImageMapping::new(&host, overrides) {
            Ok(m) => Some(m),
            Err(e) => {
                self.p("spec.registry.host", e.to_string());
                None
            }
        };
        let address = match &spec.address {
            None => None,
            Some(a) => match a.parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.p(
                        "spec.registry.address",
                        format!("`{a}` is not an IP address"),
                    );
                    None
                }
            },
        };
        if let Some(u) = &spec.pull_username {
            // It goes into containerd's TOML as a basic string.
            if u.is_empty()
                || u.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
            {
                self.p(
                    "spec.registry.pullUsername",
                    format!("`{u}` is not an account name (no spaces, quotes or backslashes)"),
                );
            }
        }
        Registry {
            host,
            mapping,
            address,
        }
    }

    /// `spec.registry.clientCertFile` and `clientKeyFile`: both or neither.
    fn client_certificate(&mut self) {
        let spec = &self.inv.spec.registry;
        match (&spec.client_cert_file, &spec.client_key_file) {
            (Some(_), None) => self.p(
                "spec.registry.clientKeyFile",
                "missing: `clientCertFile` needs its key".into(),
            ),
            (None, Some(_)) => self.p(
                "spec.registry.clientCertFile",
                "missing: `clientKeyFile` needs its certificate".into(),
            ),
            _ => {}
        }
    }

    /// `spec.registry.plainHttp`: a problem beside a CA file (one of the two is a
    /// mistake), otherwise a warning that says what it gives up.
    fn plain_http(&mut self) -> Option<Problem> {
        let spec = &self.inv.spec.registry;
        if spec.plain_http != Some(true) {
            return None;
        }
        if spec.ca_file.is_some() || spec.client_cert_file.is_some() {
            self.p(
                "spec.registry.plainHttp",
                "`caFile` or `clientCertFile` is set too: a registry without TLS has no certificates (remove one or the other)".into(),
            );
            return None;
        }
        let secrets = match spec.pull_username {
            Some(_) => "the pushing account's and the nodes' passwords",
            None => "the pushing account's password",
        };
        Some(Problem::new(
            "spec.registry.plainHttp",
            format!(
                "`{}` is spoken to over plain HTTP: {secrets} and every image cross the network unencrypted, and anyone on the path can serve the nodes other images under the same tags; give the registry a certificate (even a self-signed one, with `caFile`) when you can",
                spec.host.trim()
            ),
        ))
    }

    /// The CNI, the DNS domain and kube-proxy's mode: (DNS domain, proxy mode).
    fn network_options(&mut self) -> (String, String) {
        let spec = &self.inv.spec;
        if !["calico", "flannel"].contains(&spec.network.cni.as_str()) {
            self.p(
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
            self.p(
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
            self.p(
                "spec.kubeProxy.mode",
                format!("`{proxy_mode}` is not supported; use `ipvs` or `iptables`"),
            );
        }
        (dns_domain, proxy_mode)
    }

    /// `spec.kubeProxy.scheduler` and `strictARP`, which only ipvs mode takes:
    /// (scheduler, strictARP).
    fn ipvs(&mut self, proxy_mode: &str) -> (String, bool) {
        let kp = &self.inv.spec.kube_proxy;
        let scheduler = kp.scheduler.clone().unwrap_or_else(|| "rr".into());
        if !IPVS_SCHEDULERS.contains(&scheduler.as_str()) {
            self.p(
                "spec.kubeProxy.scheduler",
                format!("`{scheduler}` is not one of {}", IPVS_SCHEDULERS.join(", ")),
            );
        }
        if proxy_mode == "iptables" {
            if kp.scheduler.is_some() {
                self.p(
                    "spec.kubeProxy.scheduler",
                    "applies to `mode: ipvs` only; remove it or use ipvs".into(),
                );
            }
            if kp.strict_arp.is_some() {
                self.p(
                    "spec.kubeProxy.strictARP",
                    "applies to `mode: ipvs` only; remove it or use ipvs".into(),
                );
            }
        }
        (scheduler, kp.strict_arp.unwrap_or(false))
    }

    /// `spec.network.calico` and `spec.network.flannel`, each with its own CNI only.
    fn cni_options(&mut self) -> CniOptions {
        let net = &self.inv.spec.network;
        let mut o = CniOptions::default();
        if let Some(calico) = &net.calico {
            if net.cni != "calico" {
                self.p(
                    "spec.network.calico",
                    format!("is set but the CNI is `{}`; remove it", net.cni),
                );
            }
            if let Some(e) = &calico.encapsulation {
                match Encapsulation::ALL.iter().find(|(name, _)| name == e) {
                    Some((_, v)) => o.calico_encapsulation = Some(*v),
                    None => {
                        let names: Vec<&str> = Encapsulation::ALL.iter().map(|(n, _)| *n).collect();
                        self.p(
                            "spec.network.calico.encapsulation",
                            format!("`{e}` is not one of {}", names.join(", ")),
                        );
                    }
                }
            }
            if let Some(mtu) = calico.mtu {
                if !(MTU_MIN..=MTU_MAX).contains(&mtu) {
                    self.p(
                        "spec.network.calico.mtu",
                        format!("`{mtu}` is outside {MTU_MIN}-{MTU_MAX}"),
                    );
                }
                o.calico_mtu = Some(mtu);
            }
        }
        if let Some(flannel) = &net.flannel {
            if net.cni != "flannel" {
                self.p(
                    "spec.network.flannel",
                    format!("is set but the CNI is `{}`; remove it", net.cni),
                );
            }
            if let Some(b) = &flannel.backend {
                if FLANNEL_BACKENDS.contains(&b.as_str()) {
                    o.flannel_backend = Some(b.clone());
                } else {
                    self.p(
                        "spec.network.flannel.backend",
                        format!("`{b}` is not one of {}", FLANNEL_BACKENDS.join(", ")),
                    );
                }
            }
        }
        o
    }

    /// `spec.repo`: who serves, from which address, on which port.
    fn repo(&mut self, hosts: &Hosts, ep: &Endpoint) -> Repo {
        let spec = &self.inv.spec;
        let served_by = &spec.repo.served_by;
        let by_deploy = served_by == DEPLOY;
        let host = hosts.nodes.iter().position(|n| &n.name == served_by);
        let mut address = host.map(|i| hosts.nodes[i].address);
        if by_deploy {
            if spec.hosts.iter().any(|h| h.name == DEPLOY) {
                self.p(
                    "spec.repo.servedBy",
                    format!("`{DEPLOY}` names the deploy node, but a host is also called `{DEPLOY}`; rename the host"),
                );
            }
            address = self.deploy_address(hosts);
        } else if spec.repo.address.is_some() {
            self.p(
                "spec.repo.address",
                "only used with `servedBy: deploy` (a host serves from its own address)".into(),
            );
        }
        if !by_deploy && host.is_none() && !spec.hosts.iter().any(|h| &h.name == served_by) {
            self.p(
                "spec.repo.servedBy",
                format!(
                    "`{served_by}` is not the name of a host in `spec.hosts` (or `{DEPLOY}` for the deploy node)",
                ),
            );
        }
        let port = spec.repo.port.unwrap_or(8081);
        if port == 0 {
            self.p("spec.repo.port", "0 is not a port".into());
        }
        if let Some(h) = host {
            if hosts.nodes[h].master && [ep.lb_port, ep.stats_port].contains(&port)
                || RESERVED_PORTS.contains(&port)
            {
                self.p(
                    "spec.repo.port",
                    format!("{port} is already used on `{served_by}`"),
                );
            }
        }
        Repo {
            host,
            address,
            port,
        }
    }

    /// `spec.repo.address` for `servedBy: deploy`: given, and no host's.
    fn deploy_address(&mut self, hosts: &Hosts) -> Option<IpAddr> {
        let spec = &self.inv.spec;
        match spec.repo.address.as_deref().map(str::parse::<IpAddr>) {
            None => {
                self.p(
                    "spec.repo.address",
                    "`servedBy: deploy` needs the deploy node's address as the hosts reach it"
                        .into(),
                );
                None
            }
            Some(Err(_)) => {
                self.p(
                    "spec.repo.address",
                    format!(
                        "`{}` is not an IP address",
                        spec.repo.address.as_deref().unwrap_or_default()
                    ),
                );
                None
            }
            Some(Ok(a)) => {
                if let Some(&i) = hosts.addresses.get(&a) {
                    self.p("spec.repo.address", format!("`{a}` is the address of `spec.hosts[{i}]`; to serve from that host use `servedBy: {}`", spec.hosts[i].name));
                }
                Some(a)
            }
        }
    }

    /// `spec.ssh` and every host's own `ssh`.
    /// `spec.etcd.external.hosts`: exactly the hosts with the role `etcd`, an odd
    /// number of at least 3 (with `--force`, fewer is a warning, as for masters).
    fn external_etcd(&mut self, force: bool) -> Vec<Problem> {
        let hosts = &self.inv.spec.hosts;
        let with_role: Vec<&str> = hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == "etcd"))
            .map(|h| h.name.as_str())
            .collect();
        let Some(etcd) = &self.inv.spec.etcd else {
            if !with_role.is_empty() {
                self.p("spec.etcd", format!("{} ha{} the role `etcd`, but `spec.etcd.external.hosts` is not set; list them there for external etcd", with_role.join(", "), if with_role.len() == 1 { "s" } else { "ve" }));
            }
            return vec![];
        };
        let listed = &etcd.external.hosts;
        for (i, name) in listed.iter().enumerate() {
            let field = format!("spec.etcd.external.hosts[{i}]");
            if listed[..i].contains(name) {
                self.p(&field, format!("`{name}` is listed twice"));
            } else if !with_role.contains(&name.as_str()) {
                let hint = match hosts.iter().any(|h| &h.name == name) {
                    true => "give it the role `etcd` (and no other)",
                    false => "it is not in `spec.hosts`",
                };
                self.p(&field, format!("`{name}` is not an etcd host: {hint}"));
            }
        }
        for name in with_role.iter().filter(|n| !listed.iter().any(|l| l == *n)) {
            self.p(
                "spec.etcd.external.hosts",
                format!("`{name}` has the role `etcd` but is not listed"),
            );
        }
        let n = listed.len();
        let why = match n {
            0 => {
                self.p("spec.etcd.external.hosts", "no hosts: external etcd needs 3, 5 or 7 (or leave `spec.etcd` out for etcd on the masters)".into());
                return vec![];
            }
            1 | 2 => format!(
                "{n} etcd member{} cannot keep quorum when one fails; HA needs 3, 5 or 7",
                if n == 1 { "" } else { "s" }
            ),
            _ if n % 2 == 0 => format!(
                "{n} etcd members tolerate no more failures than {}; use an odd number",
                n - 1
            ),
            _ if n > 7 => format!(
                "{n} etcd members: at most 7 are supported (every write waits for a majority)"
            ),
            _ => return vec![],
        };
        if force && n <= 7 {
            return vec![Problem::new("spec.etcd.external.hosts", why)];
        }
        let how = if n <= 7 {
            " (pass `--force` to install anyway)"
        } else {
            ""
        };
        self.p("spec.etcd.external.hosts", format!("{why}{how}"));
        vec![]
    }

    /// `spec.admin.users`: login names that go unquoted into shell commands, and not
    /// root (who gets the kubeconfig anyway).
    fn admin(&mut self) {
        let users = &self.inv.spec.admin.users;
        for (i, user) in users.iter().enumerate() {
            let field = format!("spec.admin.users[{i}]");
            let login = user.len() <= 32
                && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && user
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
            if !login {
                self.p(&field, format!("`{user}` is not a login name (lower-case letters, digits, `_`, `.`, `-`; at most 32)"));
            } else if user == "root" {
                self.p(
                    &field,
                    "root always gets the admin kubeconfig; list other users here".into(),
                );
            } else if users[..i].contains(user) {
                self.p(&field, format!("`{user}` is listed twice"));
            }
        }
    }

    fn ssh(&mut self) {
        let spec = &self.inv.spec;
        let mut specs: Vec<(String, &SshSpec)> = vec![("spec.ssh".to_string(), &spec.ssh)];
        for (i, h) in spec.hosts.iter().enumerate() {
            if let Some(s) = &h.ssh {
                specs.push((format!("spec.hosts[{i}].ssh"), s));
            }
        }
        for (field, s) in specs {
            if let Some(user) = &s.user {
                if user.is_empty() || user.contains(char::is_whitespace) || user.starts_with('-') {
                    self.p(
                        &format!("{field}.user"),
                        format!("`{user}` is not a user name"),
                    );
                }
            }
            if s.port == Some(0) {
                self.p(&format!("{field}.port"), "0 is not a port".into());
            }
            if let Some(b) = &s.become_method {
                if b != "sudo" {
                    self.p(
                        &format!("{field}.become"),
                        format!("`{b}` is not supported; use `sudo`"),
                    );
                }
            }
            if let Some(j) = &s.proxy_jump {
                if j.is_empty() || j.starts_with('-') || j.contains(char::is_whitespace) {
                    self.p(
                        &format!("{field}.proxyJump"),
                        format!("`{j}` is not a jump host list"),
                    );
                }
            }
        }
    }
}
