//! The checks that need the bundle (Kubernetes images, the CNI, the RPM repository and
//! its packages), each problem naming the inventory field it concerns, and the
//! [`PlanContext`] of plain values every phase plans from once they all pass.

use std::collections::BTreeSet;

use bundle_format::ImageReference;

use super::commands::{etcdctl, kubectl};
use super::repos::{arch_repos, ArchRepo};
use super::{DeployRepo, Phase, Plan, PlanHost, PLAN_VERSION};
use crate::facts::{BundleFacts, CniFacts, RpmRepoFacts};
use crate::inventory::{Cluster, Node};
use crate::render::{self, containerd, keepalived, kubeadm};
use crate::Problem;

/// Inputs to planning besides the cluster and the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanInputs {
    /// The registry's CA certificate (PEM), from `spec.registry.caFile`.
    pub registry_ca: Option<String>,
    /// The client certificate (PEM) the nodes present, from
    /// `spec.registry.clientCertFile` (its key is filled in when written).
    pub registry_client_cert: Option<String>,
    /// Warnings from validation (non-HA control plane with `--force`), for the notes.
    pub warnings: Vec<Problem>,
}

/// Packages every node gets, when the bundle carries them.
pub const NODE_PACKAGES: &[&str] = &[
    "kubeadm",
    "kubelet",
    "kubectl",
    "cri-tools",
    "kubernetes-cni",
    "containerd.io",
    "containerd",
    "runc",
    "ipvsadm",
    "ipset",
    "conntrack-tools",
    "socat",
    "iproute-tc",
];
/// Packages a node cannot do without.
pub const REQUIRED_NODE_PACKAGES: &[&str] = &["kubeadm", "kubelet", "kubectl"];
/// Packages masters get in addition.
pub const LB_PACKAGES: &[&str] = &["haproxy", "keepalived"];

/// Everything the phases plan from: the checked cluster and bundle, and the values
/// the checks worked out. Built only when every check passed, so nothing is missing.
#[derive(Debug)]
pub struct PlanContext<'a> {
    /// The validated inventory.
    pub cluster: &'a Cluster,
    /// The bundle.
    pub facts: &'a BundleFacts,
    /// The registry's CA certificate, when the inventory names one.
    pub registry_ca: Option<&'a str>,
    /// The nodes' client certificate, when the registry wants one.
    pub registry_client_cert: Option<&'a str>,
    /// `kubeadm.k8s.io/v1beta3` or `v1beta4`.
    pub kubeadm_api: &'static str,
    /// containerd's configuration version (2 or 3).
    pub containerd_config_version: u32,
    /// kubeadm's `imageRepository`.
    pub image_repository: String,
    /// The pause image, as the nodes pull it.
    pub sandbox_image: String,
    /// The etcd image external members run, as they pull it (`None`: stacked etcd,
    /// kubeadm picks its own).
    pub etcd_image: Option<String>,
    /// The CNI the bundle carries and the inventory asks for.
    pub cni: &'a CniFacts,
    /// Its manifest, rewritten for the registry and the pod network.
    pub cni_manifest: String,
    /// The RPM repositories installed from, one per architecture in use, the first
    /// master's first.
    pub repos: Vec<ArchRepo<'a>>,
    /// `VIP:PORT`.
    pub endpoint: String,
    /// The first master: `kubeadm init`, keepalived MASTER.
    pub first: &'a Node,
    /// Masters in inventory order.
    pub masters: Vec<&'a Node>,
    /// `kubectl` with the admin kubeconfig.
    pub kubectl: String,
    /// `etcdctl` in the first master's etcd pod, through the API (any host with
    /// `admin.conf`).
    pub etcdctl: String,
    notes: Vec<String>,
}

impl PlanContext<'_> {
    /// The repository `n` installs from (its architecture's).
    pub fn repo(&self, n: &Node) -> &ArchRepo<'_> {
        self.repos
            .iter()
            .find(|r| r.arch == n.arch)
            // The checks found one for every host's architecture.
            .unwrap_or(&self.repos[0])
    }

    /// The first master's repository: the plan's summary names it.
    pub fn primary_repo(&self) -> &ArchRepo<'_> {
        &self.repos[0]
    }

    /// Whether `node` serves the yum repository (`spec.repo.servedBy`).
    pub fn serves_repo(&self, node: &Node) -> bool {
        self.cluster
            .repo_node()
            .is_some_and(|r| r.name == node.name)
    }

    /// The plan: these phases with the hosts' duties and the notes.
    pub(super) fn into_plan(self, phases: Vec<Phase>) -> Plan {
        let cluster = self.cluster;
        let hosts = cluster.nodes.iter().map(|n| self.plan_host(n)).collect();
        let primary = self.primary_repo();
        let repo_url = primary.base.clone();
        let entries = format!(
            "{}{}/",
            bundle_format::layout::RPMS,
            primary.rpm_repo.target
        );
        let mut notes = self.notes;
        notes.push("secrets appear as <secret:NAME> and are filled in from secrets.json when files are written on the hosts".into());
        let mut seen = BTreeSet::new();
        notes.retain(|n| seen.insert(n.clone()));
        Plan {
            plan_version: PLAN_VERSION,
            cluster: cluster.name.clone(),
            bundle: self.facts.bundle.clone(),
            kubernetes_version: self.facts.kubernetes_version.clone(),
            kubeadm_api_version: self.kubeadm_api.into(),
            containerd_config_version: self.containerd_config_version,
            control_plane_endpoint: self.endpoint,
            registry: cluster.registry_host.clone(),
            repo_url,
            repo_served_by_deploy: cluster.repo_node().is_none().then(|| DeployRepo {
                bind: cluster.repo_address.to_string(),
                port: cluster.repo_port,
                entries,
            }),
            hosts,
            notes,
            admin_users: cluster.admin_users.clone(),
            unique_captures: vec![
                "hostname".into(),
                "product-uuid".into(),
                "mac-addresses".into(),
            ],
            phases,
        }
    }

    /// A host, its roles and its duties.
    fn plan_host(&self, n: &Node) -> PlanHost {
        let mut roles = vec![];
        if n.master {
            roles.push("master".to_string());
        }
        if n.worker {
            roles.push("worker".to_string());
        }
        if n.etcd {
            roles.push("etcd".to_string());
        }
        let mut duties = vec![];
        if n.name == self.first.name {
            duties.push("kubeadm init".to_string());
        }
        if let Some(i) = self.masters.iter().position(|m| m.name == n.name) {
            duties.push(format!(
                "keepalived {} {}",
                keepalived::initial_state(self.cluster, i),
                keepalived::priority(i)
            ));
        }
        if n.etcd {
            duties.push("etcd member".to_string());
        }
        if self.serves_repo(n) {
            duties.push(format!("yum repository on port {}", self.cluster.repo_port));
        }
        PlanHost {
            name: n.name.clone(),
            address: n.address.to_string(),
            roles,
            duties,
        }
    }
}

/// Problems and notes gathered by the checks.
#[derive(Default)]
pub(super) struct Findings {
    problems: Vec<Problem>,
    pub(super) notes: Vec<String>,
}

impl Findings {
    pub(super) fn problem(&mut self, field: &str, message: String) {
        self.problems.push(Problem::new(field, message));
    }
}

/// Runs every check; all problems at once, or the context to plan from.
pub(super) fn check<'a>(
    cluster: &'a Cluster,
    facts: &'a BundleFacts,
    inputs: &'a PlanInputs,
) -> Result<PlanContext<'a>, Vec<Problem>> {
    let mut f = Findings {
        problems: vec![],
        notes: inputs
            .warnings
            .iter()
            .map(|w| format!("`{}`: {}", w.field, w.message))
            .collect(),
    };
    let kubeadm_api = kubeadm::api_version(kubernetes_minor(facts, &mut f));
    if facts.containerd_version.is_none() {
        f.notes.push("the bundle carries no `containerd.io` or `containerd` package: assuming containerd 1.x (config version 2) is already on the hosts".into());
    }
    let containerd_config_version = containerd::config_version(facts.containerd_major());
    let image_repository = check_kubeadm_images(cluster, facts, &mut f);
    let sandbox_image = sandbox_image(cluster, facts, &mut f);
    let etcd_image = cluster
        .external_etcd()
        .then(|| newest_k8s_image(cluster, facts, "etcd"))
        .flatten();
    let cni = check_cni(cluster, facts, &mut f);
    let repos = arch_repos(cluster, facts, &mut f);
    if inputs.registry_ca.is_none() {
        f.notes.push(format!(
            "no `spec.registry.caFile`: the hosts must already trust the certificate of `{}`",
            cluster.registry_host
        ));
    }
    let (Some(repos), Some((cni, cni_manifest)), true) = (repos, cni, f.problems.is_empty()) else {
        return Err(f.problems);
    };
    let first = cluster.first_master();
    let kubectl = kubectl();
    let etcdctl = etcdctl(&first.name);
    Ok(PlanContext {
        cluster,
        facts,
        registry_ca: inputs.registry_ca.as_deref(),
        registry_client_cert: inputs.registry_client_cert.as_deref(),
        kubeadm_api,
        containerd_config_version,
        image_repository,
        sandbox_image,
        etcd_image,
        cni,
        cni_manifest,
        repos,
        endpoint: render::host_port(&cluster.vip, cluster.lb_port),
        first,
        masters: cluster.masters().collect(),
        kubectl,
        etcdctl,
        notes: f.notes,
    })
}

/// The bundle's Kubernetes minor version (`(1, 0)` with a problem when unreadable).
fn kubernetes_minor(facts: &BundleFacts, f: &mut Findings) -> (u32, u32) {
    facts.kubernetes_minor().unwrap_or_else(|| {
        f.problem(
            "bundle",
            format!(
                "Kubernetes version `{}` is not `vMAJOR.MINOR.PATCH`",
                facts.kubernetes_version
            ),
        );
        (1, 0)
    })
}

fn k8s_ref(repo: &str, tag: &str) -> ImageReference {
    ImageReference {
        registry: "registry.k8s.io".into(),
        repository: repo.into(),
        tag: Some(tag.into()),
        digest: None,
    }
}

/// The images kubeadm pulls, from IMAGE_REPOSITORY/NAME, which the mapping must agree
/// with: carried by the bundle and mapped where kubeadm looks. Returns kubeadm's
/// `imageRepository`.
fn check_kubeadm_images(cluster: &Cluster, facts: &BundleFacts, f: &mut Findings) -> String {
    let mapping = &cluster.mapping;
    let apiserver = mapping.map(&k8s_ref("kube-apiserver", &facts.kubernetes_version));
    let image_repository = match apiserver.repository.rsplit_once('/') {
        Some((parent, _)) => format!("{}/{parent}", mapping.host()),
        None => mapping.host().to_string(),
    };
    // kubeadm flattens the only nested name it pulls (coredns/coredns) under imageRepository.
    let nested = "coredns/coredns";
    let mapped = mapping.map(&k8s_ref(nested, "x"));
    let leaf = "coredns";
    if mapped.name() != format!("{image_repository}/{leaf}") {
        f.problem(
            "spec.registry.map",
            format!("kubeadm pulls `{image_repository}/{leaf}` but the mapping sends `registry.k8s.io/{nested}` to `{}`", mapped.name()),
        );
    }
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ] {
        let want = k8s_ref(component, &facts.kubernetes_version);
        if !render::cni::carried(&want, &facts.images) {
            f.problem(
                "bundle",
                format!("the bundle does not carry `{want}`, which kubeadm needs"),
            );
        }
    }
    for name in ["etcd", "coredns/coredns"] {
        if !facts
            .images
            .iter()
            .any(|i| i.registry == "registry.k8s.io" && i.repository == name)
        {
            f.problem(
                "bundle",
                format!(
                    "the bundle carries no `registry.k8s.io/{name}` image, which kubeadm needs"
                ),
            );
        }
    }
    image_repository
}

/// The newest pause image the bundle carries, as the nodes pull it.
fn sandbox_image(cluster: &Cluster, facts: &BundleFacts, f: &mut Findings) -> String {
    newest_k8s_image(cluster, facts, "pause").unwrap_or_else(|| {
        f.problem(
            "bundle",
            "the bundle carries no `registry.k8s.io/pause` image (the sandbox image)".to_string(),
        );
        String::new()
    })
}

/// The newest tag of `registry.k8s.io/NAME` the bundle carries, as the nodes pull it.
fn newest_k8s_image(cluster: &Cluster, facts: &BundleFacts, name: &str) -> Option<String> {
    let newest = facts
        .images
        .iter()
        .filter(|i| {
            bundle_registry::mapping::K8S_REGISTRIES.contains(&i.registry.as_str())
                && i.repository == name
                && i.tag.is_some()
        })
        .max_by_key(|i| version_key(i.tag.as_deref().unwrap_or_default()))?;
    let untagged = ImageReference {
        digest: None,
        ..newest.clone()
    };
    Some(cluster.mapping.map(&untagged).to_string())
}

/// The CNI the inventory asks for, carried by the bundle, and its rewritten manifest.
fn check_cni<'a>(
    cluster: &Cluster,
    facts: &'a BundleFacts,
    f: &mut Findings,
) -> Option<(&'a CniFacts, String)> {
    let c = match &facts.cni {
        Some(c) if c.name == cluster.cni => c,
        Some(c) => {
            let message = format!("the bundle carries `{}`, not `{}`", c.name, cluster.cni);
            f.problem("spec.network.cni", message);
            return None;
        }
        None => {
            let message = format!(
                "the bundle carries no CNI; `{}` cannot be installed",
                cluster.cni
            );
            f.problem("spec.network.cni", message);
            return None;
        }
    };
    match render::cni::rewrite(
        &c.name,
        &c.manifest,
        &cluster.mapping,
        &cluster.pod_subnet,
        &facts.images,
        &cluster.cni_options,
    ) {
        Ok(r) => {
            f.notes.extend(r.notes.iter().cloned());
            Some((c, r.text))
        }
        Err(ps) => {
            for p in ps {
                let message = format!("the {} manifest `{}`: {p}", c.name, c.file);
                f.problem("spec.network.cni", message);
            }
            None
        }
    }
}

/// The newest NEVRA of each of `names` in `repo`; a missing `required` one is a
/// problem.
pub(super) fn pick(
    repo: Option<&RpmRepoFacts>,
    names: &[&str],
    required: &[&str],
    f: &mut Findings,
) -> Vec<String> {
    let Some(r) = repo else { return vec![] };
    let mut out = Vec::new();
    for name in names {
        if let Some(p) = r
            .packages
            .iter()
            .filter(|p| &p.name == name)
            .max_by_key(|p| version_key(&p.version))
        {
            out.push(p.nevra.clone());
        } else if required.contains(name) {
            let message = format!(
                "the bundle's `{}` repository has no `{name}` package",
                r.target
            );
            f.problem("bundle", message);
        }
    }
    out
}

/// Numeric comparison of dotted versions (`3.10` > `3.9`).
fn version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}
