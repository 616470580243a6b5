//! The plan of `bundle upgrade`, made of the install's own steps where they exist and
//! kubeadm's documented upgrade around them:
//!
//! 1. `preflight`: every node Ready, etcd healthy (asked on the first master); on
//!    every node 2 GiB free under `/var/lib` and the new images pulled as the node pulls.
//! 2. `repo`: the new bundle's repository served, every host's `.repo` file rewritten.
//! 3. `upgrade`: the control plane, masters one at a time: the new kubeadm, then on the
//!    first `kubeadm upgrade plan` (which must offer the target) and `upgrade apply`,
//!    on the others `kubeadm upgrade node`.
//! 4. `nodes`: every node drained (from the first master), its packages upgraded
//!    (containerd's configuration rewritten for the new version), containerd and the
//!    kubelet restarted, uncordoned and waited for Ready at the new version: masters
//!    one at a time, then workers in groups of `--parallel`.
//! 5. `cni`: the new manifest applied when it differs from what the cluster runs.
//! 6. `verify`: the install's checks; the new release recorded.
//!
//! The etcd snapshot taken between `repo` and `upgrade` is the operation's, not a step
//! (it is copied to the deploy node). Steps that have no check of their own name the
//! target bundle in their description, so a finished one is skipped on a re-run of the
//! same upgrade and carried out again by the next.

use super::checks::{self, PlanContext, PlanInputs};
use super::commands::{CRICTL_ETCDCTL, ETCD_CONTAINER};
use super::phases::{self, cni, containerd, host, repo};
use super::steps::{completion, kubeconfigs, run, step, wait, write};
use super::{HostStep, HostSteps, OnFailure, Phase, PhaseName, Plan, Step};
use crate::facts::BundleFacts;
use crate::inventory::{Cluster, Node};
use crate::render::kubeadm;
use crate::Problem;

/// Free space each node needs under `/var/lib` (images and packages), in KiB.
const FREE_KIB: u64 = 2 * 1024 * 1024;

/// The control plane images a master runs (kube-proxy runs on every node).
const CONTROL_PLANE_IMAGES: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Plans the upgrade of `cluster` to `facts`' bundle; `workers_at_once` workers are
/// drained at the same time. Pure, as [`super::plan()`] is.
pub fn upgrade(
    cluster: &Cluster,
    facts: &BundleFacts,
    inputs: &PlanInputs,
    workers_at_once: usize,
) -> Result<Plan, Vec<Problem>> {
    let ctx = checks::check(cluster, facts, inputs)?;
    let target = Target::of(&ctx);
    let workers_at_once = workers_at_once.max(1);
    let phases = vec![
        (PhaseName::Preflight, preflight(&ctx, &target)),
        (PhaseName::Repo, repository(&ctx)),
        (PhaseName::Upgrade, control_plane(&ctx, &target)),
        (PhaseName::Nodes, nodes(&ctx, &target, workers_at_once)),
        (PhaseName::Cni, network(&ctx, &target)),
        (PhaseName::Verify, phases::steps(PhaseName::Verify, &ctx)),
    ]
    .into_iter()
    .map(|(name, hosts)| Phase { name, hosts })
    .collect();
    let mut plan = ctx.into_plan(phases);
    plan.notes.push("an etcd snapshot is taken and copied to the deploy node before phase upgrade changes the control plane (`bundle restore` brings it back)".into());
    plan.notes.push(format!(
        "workers are drained {workers_at_once} at a time (`--parallel`); masters one at a time"
    ));
    Ok(plan)
}

/// What the upgrade goes to.
struct Target {
    /// `v1.30.1`.
    version: String,
    /// `to BUNDLE VERSION`, ending the description of every step without a check.
    label: String,
    /// The upgrade configuration (v1beta4 only).
    config: Option<String>,
}

impl Target {
    fn of(ctx: &PlanContext) -> Target {
        let version = ctx.facts.kubernetes_version.clone();
        Target {
            label: format!("to {}", ctx.facts.bundle),
            config: kubeadm::upgrade_config(ctx.kubeadm_api, &version),
            version,
        }
    }

    /// `--config FILE` where kubeadm reads an `UpgradeConfiguration`, else the version
    /// as its argument (`upgrade plan` and `apply`); `upgrade node` takes no version.
    fn args(&self, with_version: bool) -> String {
        match (&self.config, with_version) {
            (Some(_), _) => format!(" --config {}", kubeadm::UPGRADE_PATH),
            (None, true) => format!(" {}", self.version),
            (None, false) => String::new(),
        }
    }

    /// Succeeds once this master's API server static pod runs the target version.
    fn control_plane_at_target(&self) -> String {
        format!(
            "grep -Eq 'image: .*/kube-apiserver:{}[[:space:]]*$' /etc/kubernetes/manifests/kube-apiserver.yaml",
            self.version
        )
    }
}

fn preflight(ctx: &PlanContext, t: &Target) -> Vec<HostSteps> {
    let kubectl = &ctx.kubectl;
    // External etcd hosts are not upgraded (their member keeps its image); their
    // members must be healthy all the same.
    let external = ctx.cluster.etcd_hosts().next().map(|e| {
        host(
            e,
            0,
            vec![run(
                "preflight/etcd-health",
                &format!(
                    "every external etcd member is healthy before the upgrade {}",
                    t.label
                ),
                format!("{ETCD_CONTAINER}; {CRICTL_ETCDCTL} endpoint health --cluster"),
                None,
            )],
        )
    });
    ctx.cluster
        .kube_nodes()
        .map(|n| {
            let mut s = Vec::new();
            if n.name == ctx.first.name {
                s.push(run(
                    "preflight/nodes-ready",
                    &format!("every node is Ready before the upgrade {}", t.label),
                    format!("bad=$({kubectl} get nodes --no-headers | awk '$2 !~ /^Ready/ {{print $1 \" is \" $2}}'); [ -z \"$bad\" ] || {{ echo \"$bad\" >&2; exit 1; }}"),
                    None,
                ));
                if !ctx.cluster.external_etcd() {
                    s.push(run(
                        "preflight/etcd-health",
                        &format!("every etcd member is healthy before the upgrade {}", t.label),
                        format!("{} endpoint health --cluster", ctx.etcdctl),
                        None,
                    ));
                }
            }
            s.push(run(
                "preflight/free-space",
                &format!("2 GiB free under /var/lib for the upgrade {}", t.label),
                format!("avail=$(df -Pk /var/lib | awk 'NR == 2 {{print $4}}'); [ \"$avail\" -ge {FREE_KIB} ] || {{ echo \"only $((avail / 1024)) MiB free under /var/lib; the upgrade needs 2048 MiB for the new images and packages\" >&2; exit 1; }}"),
                None,
            ));
            s.push(pull(ctx, t, n));
            host(n, 0, s)
        })
        .chain(external)
        .collect()
}

/// The new images this node runs, pulled through containerd as the kubelet will.
fn pull(ctx: &PlanContext, t: &Target, n: &Node) -> Step {
    let mut names = vec!["kube-proxy"];
    if n.master {
        names.extend(CONTROL_PLANE_IMAGES);
    }
    let images: Vec<String> = names
        .iter()
        .map(|i| format!("{}/{i}:{}", ctx.image_repository, t.version))
        .collect();
    run(
        "preflight/pull",
        &format!("the new images pull from the registry {}", t.label),
        format!(
            "for i in {}; do crictl pull \"$i\" >/dev/null || exit 1; done",
            images.join(" ")
        ),
        Some(format!(
            "for i in {}; do crictl inspecti \"$i\" >/dev/null 2>&1 || exit 1; done",
            images.join(" ")
        )),
    )
}

/// The new repository served, and named in every host's `.repo` file.
fn repository(ctx: &PlanContext) -> Vec<HostSteps> {
    ctx.cluster
        .nodes
        .iter()
        .map(|n| {
            let mut s = repo::served(ctx, n);
            s.push(repo::repo_file(ctx, n));
            s.extend(repo::module_streams(ctx, n));
            host(n, if ctx.serves_repo(n) { 0 } else { 1 }, s)
        })
        .collect()
}

/// The new kubeadm and, when kubeadm reads one, the upgrade configuration.
fn kubeadm_package(ctx: &PlanContext, t: &Target, n: &Node, phase: &str) -> Vec<Step> {
    let pkgs = [kubeadm_nevra(ctx, n)];
    let mut s = vec![run(
        &format!("{phase}/kubeadm"),
        &format!("install {}", pkgs[0]),
        repo::dnf_install(ctx, n, &pkgs, true),
        Some(repo::rpm_q(&pkgs)),
    )];
    if let Some(config) = &t.config {
        s.push(write(
            &format!("{phase}/config"),
            &format!("kubeadm's UpgradeConfiguration ({})", ctx.kubeadm_api),
            kubeadm::UPGRADE_PATH,
            config.clone(),
            "0600",
        ));
    }
    s
}

/// The NEVRA of the new kubeadm for `n`'s architecture.
fn kubeadm_nevra(ctx: &PlanContext, n: &Node) -> String {
    ctx.repo(n)
        .node_packages
        .iter()
        .find(|p| {
            p.strip_prefix("kubeadm-")
                .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
        })
        .cloned()
        // Checked with the bundle: every node package is carried.
        .unwrap_or_else(|| "kubeadm".into())
}

/// Masters one at a time: `upgrade plan` and `apply` on the first, `upgrade node` on
/// the others.
fn control_plane(ctx: &PlanContext, t: &Target) -> Vec<HostSteps> {
    ctx.masters
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut s = kubeadm_package(ctx, t, m, "upgrade");
            if i == 0 {
                s.push(upgrade_plan(t));
                s.push(run(
                    "upgrade/apply",
                    &format!(
                        "kubeadm upgrade apply {}: the control plane, etcd and the addons",
                        t.version
                    ),
                    format!("kubeadm upgrade apply{} --yes", t.args(true)),
                    Some(t.control_plane_at_target()),
                ));
            } else {
                s.push(run(
                    "upgrade/node",
                    &format!(
                        "kubeadm upgrade node: this master's control plane to {}",
                        t.version
                    ),
                    format!("kubeadm upgrade node{}", t.args(false)),
                    Some(t.control_plane_at_target()),
                ));
            }
            s.extend(kubeconfigs("upgrade", &ctx.cluster.admin_users));
            if ctx.cluster.shell_completion {
                s.push(completion("upgrade"));
            }
            host(m, i as u32, s)
        })
        .collect()
}

/// `kubeadm upgrade plan`, which must offer the target: a kubeadm that does not is
/// not the one the bundle carries.
fn upgrade_plan(t: &Target) -> Step {
    let v = &t.version;
    run(
        "upgrade/plan",
        &format!("kubeadm upgrade plan offers {v}"),
        format!(
            "out=$(kubeadm upgrade plan{} 2>&1); rc=$?; echo \"$out\"; [ $rc -eq 0 ] || exit $rc; echo \"$out\" | grep -q 'kubeadm upgrade apply {v}' || {{ echo 'kubeadm upgrade plan does not offer {v}' >&2; exit 1; }}",
            t.args(true)
        ),
        Some(t.control_plane_at_target()),
    )
}

/// Each node in its drained window; masters alone, then workers `at_once` at a time.
/// A group takes three waves: drained from the first master, upgraded on the nodes,
/// uncordoned and waited for from the first master.
fn nodes(ctx: &PlanContext, t: &Target, at_once: usize) -> Vec<HostSteps> {
    let workers: Vec<&Node> = ctx.cluster.workers_only().collect();
    let groups = ctx
        .masters
        .iter()
        .map(|m| vec![*m])
        .chain(workers.chunks(at_once).map(<[&Node]>::to_vec));
    let first = ctx.first;
    let mut hosts = Vec::new();
    for (k, group) in groups.enumerate() {
        let wave = 3 * k as u32;
        let drains = group.iter().map(|n| drain(ctx, t, n)).collect();
        hosts.push(host(first, wave, drains));
        hosts.extend(
            group
                .iter()
                .map(|n| host(n, wave + 1, drained_window(ctx, t, n))),
        );
        let back = group
            .iter()
            .flat_map(|n| back_in_service(ctx, t, n))
            .collect();
        hosts.push(host(first, wave + 2, back));
    }
    hosts
}

fn drain(ctx: &PlanContext, t: &Target, n: &Node) -> Step {
    run(
        &format!("nodes/drain-{}", n.name),
        &format!("drain `{}` for its upgrade {}", n.name, t.label),
        format!(
            "{} drain {} --ignore-daemonsets --delete-emptydir-data --timeout=300s",
            ctx.kubectl, n.name
        ),
        None,
    )
}

/// On the drained node: (a worker's kubeadm), containerd's configuration for the new
/// version, the new packages, containerd and the kubelet restarted.
fn drained_window(ctx: &PlanContext, t: &Target, n: &Node) -> Vec<Step> {
    let mut s = Vec::new();
    if !n.master {
        s.extend(kubeadm_package(ctx, t, n, "nodes"));
        s.push(run(
            "nodes/kubeadm-node",
            &format!(
                "kubeadm upgrade node: the kubelet's configuration {}",
                t.label
            ),
            format!("kubeadm upgrade node{}", t.args(false)),
            None,
        ));
    }
    let (files, paths) = containerd::config_files(ctx);
    s.extend(files);
    let pkgs = repo::packages(ctx, n);
    s.push(run(
        "nodes/packages",
        "install the new bundle's exact package versions (kubelet, kubectl, containerd, …)",
        repo::dnf_install(ctx, n, &pkgs, true),
        Some(repo::rpm_q(&pkgs)),
    ));
    s.push(step(
        "nodes/restart",
        &format!("containerd and the kubelet restarted {}", t.label),
        HostStep::Run {
            command: "systemctl daemon-reload && systemctl restart containerd && systemctl restart kubelet".into(),
            check: None,
            after_change_of: paths,
            capture: None,
            on_failure: OnFailure::Stop,
        },
    ));
    s.push(wait(
        "nodes/containerd-ready",
        &format!("containerd's CRI answers {}", t.label),
        "crictl info >/dev/null".into(),
        60,
    ));
    s
}

/// Uncordoned, then Ready with the new kubelet.
fn back_in_service(ctx: &PlanContext, t: &Target, n: &Node) -> [Step; 2] {
    let (kubectl, name, v) = (&ctx.kubectl, &n.name, &t.version);
    [
        run(
            &format!("nodes/uncordon-{name}"),
            &format!("uncordon `{name}` after its upgrade {}", t.label),
            format!("{kubectl} uncordon {name}"),
            None,
        ),
        wait(
            &format!("nodes/ready-{name}"),
            &format!("`{name}` is Ready with kubelet {v}"),
            format!("{kubectl} get node {name} --no-headers | awk '{{ exit !($2 == \"Ready\" && $5 == \"{v}\") }}'"),
            600,
        ),
    ]
}

/// The new CNI manifest, applied when it differs from what the cluster runs.
fn network(ctx: &PlanContext, t: &Target) -> Vec<HostSteps> {
    let apply = step(
        "cni/apply",
        "apply the new manifest where it differs from the cluster's",
        HostStep::Run {
            command: cni::apply_command(ctx),
            // `kubectl diff` exits 0 when the cluster already matches.
            check: Some(format!(
                "{} diff --server-side --force-conflicts -f {} >/dev/null",
                ctx.kubectl,
                crate::render::cni::PATH
            )),
            after_change_of: vec![crate::render::cni::PATH.into()],
            capture: None,
            on_failure: OnFailure::Stop,
        },
    );
    let s = vec![
        cni::manifest(ctx),
        apply,
        cni::rollout(ctx, &format!(" {}", t.label)),
    ];
    vec![host(ctx.first, 0, s)]
}
