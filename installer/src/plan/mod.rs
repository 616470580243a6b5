//! The plan: for each of nine phases, the hosts taking part and their ordered,
//! typed steps. Executors carry steps out and record the finished ones by id; each
//! step's `check` (a command that succeeds when the step's effect is already there)
//! lets a re-run skip it.
//!
//! Plans hold no secrets (see [`crate::secrets`]) and print deterministically:
//! [`Plan::to_text`] is for people, [`Plan::to_json`] for executors.
//!
//! [`plan()`] makes one, purely: the bundle and inventory checks (`checks`) give a
//! context of plain values, and each phase's module under `phases/` turns it into
//! that phase's steps, from the helpers in `steps`.
//!
//! | file | holds |
//! |---|---|
//! | `checks.rs` | the checks that need the bundle, and the [`PlanContext`] they give |
//! | `commands.rs` | `kubectl` and `etcdctl` as every phase runs them |
//! | `steps.rs` | step constructors; the kubeconfig and join configuration steps |
//! | `text.rs` | `plan.txt`, `steps.txt`, the plan folder |
//! | `remove.rs`, `renew.rs`, `upgrade.rs`, `restore.rs` | the lifecycle operations' plans, from the install's |
//! | `phases/*.rs` | one file per phase: `preflight`, `repo`, `os`, `containerd`, `lb`, `init`, `join`, `cni`, `verify` |

mod add;
mod checks;
mod commands;
mod phases;
mod remove;
mod renew;
mod repos;
mod restore;
mod steps;
mod text;
mod upgrade;

use serde::{Deserialize, Serialize};

pub use add::addition;
pub use checks::{PlanContext, PlanInputs, LB_PACKAGES, NODE_PACKAGES, REQUIRED_NODE_PACKAGES};
pub(crate) use commands::{kubectl, CRICTL_ETCDCTL, ETCD_CONTAINER};
pub use remove::{removal, Removal};
pub use renew::renewal;
pub use restore::{restoration, Restoration, RestoreMember, MANIFESTS_ASIDE, SNAPSHOT_PATH};
pub(crate) use steps::BASH_COMPLETION_D;
pub use text::{host_file_path, write_plan_dir};
pub use upgrade::upgrade;

use crate::facts::BundleFacts;
use crate::inventory::Cluster;
use crate::Problem;

/// Plans the install of `facts`' bundle on `cluster`. Checks that need the bundle
/// (CNI carried, images the CNI names, packages) are reported as problems naming
/// the inventory field they concern. No I/O, no SSH, no clock, no randomness: the
/// same input gives the same plan, byte for byte.
pub fn plan(
    cluster: &Cluster,
    facts: &BundleFacts,
    inputs: &PlanInputs,
) -> Result<Plan, Vec<Problem>> {
    let ctx = checks::check(cluster, facts, inputs)?;
    let phases = PhaseName::ALL
        .iter()
        .map(|&name| Phase {
            name,
            hosts: phases::steps(name, &ctx),
        })
        // Only the etcd phase is optional: every other one shows, even when a
        // re-plan finds nothing left for it to do.
        .filter(|p| p.name != PhaseName::Etcd || !p.hosts.is_empty())
        .collect();
    let mut plan = ctx.into_plan(phases);
    plan.notes.push("the bootstrap token is valid for 24 hours after `kubeadm init`; joins after that need a new one".into());
    Ok(plan)
}

/// The phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    /// Checks that change nothing; every failure on every host is reported together.
    Preflight,
    /// The bundle's yum repository served from one host; packages installed on all.
    Repo,
    /// Swap, kernel modules, sysctls, SELinux, firewalld, hostname, /etc/hosts.
    Os,
    /// containerd configured for the registry.
    Containerd,
    /// External etcd (`spec.etcd.external`): certificates, the members as static pods,
    /// the API servers' client certificate. Left out of plans with stacked etcd.
    Etcd,
    /// haproxy and keepalived on the masters.
    Lb,
    /// `kubeadm init` on the first master.
    Init,
    /// Other masters, one at a time, then workers.
    Join,
    /// The CNI manifest, rewritten for the registry and the pod network.
    Cni,
    /// The cluster checked end to end.
    Verify,
    /// `bundle nodes remove`: the node drained and deleted, its etcd member removed.
    Remove,
    /// `bundle nodes remove`: the removed host reset.
    Reset,
    /// `bundle certs renew`: kubeadm's certificates renewed, master by master.
    Renew,
    /// `bundle upgrade`: the control plane, master by master (`kubeadm upgrade`).
    Upgrade,
    /// `bundle upgrade`: each node drained, its packages upgraded, uncordoned.
    Nodes,
    /// `bundle restore`: etcd restored from a snapshot on every master.
    Restore,
}

impl PhaseName {
    /// Every phase of an install, in order.
    pub const ALL: [PhaseName; 10] = [
        PhaseName::Preflight,
        PhaseName::Repo,
        PhaseName::Os,
        PhaseName::Containerd,
        PhaseName::Etcd,
        PhaseName::Lb,
        PhaseName::Init,
        PhaseName::Join,
        PhaseName::Cni,
        PhaseName::Verify,
    ];

    /// Its steps are carried out every time, never skipped for having finished before:
    /// checks that must look again, and operations meant to happen again.
    pub fn looks_again(self) -> bool {
        matches!(self, PhaseName::Verify | PhaseName::Renew)
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Preflight => "preflight",
            PhaseName::Repo => "repo",
            PhaseName::Os => "os",
            PhaseName::Containerd => "containerd",
            PhaseName::Etcd => "etcd",
            PhaseName::Lb => "lb",
            PhaseName::Init => "init",
            PhaseName::Join => "join",
            PhaseName::Cni => "cni",
            PhaseName::Verify => "verify",
            PhaseName::Remove => "remove",
            PhaseName::Reset => "reset",
            PhaseName::Renew => "renew",
            PhaseName::Upgrade => "upgrade",
            PhaseName::Nodes => "nodes",
            PhaseName::Restore => "restore",
        }
    }
}

/// What to do when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// Stop the install (in preflight: after every check on every host has run).
    Stop,
    /// Report a warning and carry on.
    Warn,
}

/// One typed action on a host. Commands run as root with `sh -c`; they hold no
/// secrets (those live in files, as placeholders the executor fills in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum HostStep {
    /// Write a file (parent folders created, mode and owner set); skipped when the
    /// host already has exactly this content, mode and owner.
    #[serde(rename_all = "camelCase")]
    WriteFile {
        /// Absolute path on the host.
        path: String,
        /// Content, with `<secret:…>` / `<runtime:…>` placeholders.
        content: String,
        /// Octal mode (`0644`).
        mode: String,
        /// `user:group`.
        owner: String,
    },
    /// Copy a folder of the bundle to the host (the yum repository).
    #[serde(rename_all = "camelCase")]
    CopyFromBundle {
        /// Entry prefix in the bundle (`rpms/el9-x86_64/`).
        entries: String,
        /// Folder on the host.
        dest: String,
    },
    /// Run a command.
    #[serde(rename_all = "camelCase")]
    Run {
        /// Shell command.
        command: String,
        /// Command that succeeds when the effect is already there; `None`: the
        /// command is itself idempotent and always runs.
        check: Option<String>,
        /// Also run (even when `check` passes) when one of these files was written
        /// by this execution: restarts after a configuration change.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        after_change_of: Vec<String>,
        /// Store the trimmed standard output under this name (`<runtime:NAME>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capture: Option<String>,
        /// What a failure means.
        on_failure: OnFailure,
    },
    /// Poll a command until it succeeds.
    #[serde(rename_all = "camelCase")]
    WaitFor {
        /// Shell command that succeeds once the condition holds.
        condition: String,
        /// Give up after this many seconds.
        timeout_secs: u64,
    },
}

/// A step with its stable id and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Unique within the host and stable across plans: `phase/what`.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// The action.
    #[serde(flatten)]
    pub action: HostStep,
}

/// One host's steps in one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSteps {
    /// Host name.
    pub host: String,
    /// Hosts of the same wave run at the same time, waves one after the other.
    pub wave: u32,
    /// Ordered steps.
    pub steps: Vec<Step>,
}

/// One phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Which.
    pub name: PhaseName,
    /// Hosts taking part, in wave order.
    pub hosts: Vec<HostSteps>,
}

/// The yum repository the deploy node serves while the install runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRepo {
    /// Address bound (the deploy node's address as the hosts reach it).
    pub bind: String,
    /// Port.
    pub port: u16,
    /// The first master's target's entry prefix (`rpms/el9-x86_64/`), served under its
    /// last part; every other target in the bundle is served beside it the same way.
    pub entries: String,
}

/// A host in the plan's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanHost {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// `master`, `worker`.
    pub roles: Vec<String>,
    /// Its part: `init`, `keepalived MASTER`, `repo`, ...
    pub duties: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Plan format version.
    pub plan_version: u32,
    /// Cluster name.
    pub cluster: String,
    /// Bundle name and version.
    pub bundle: String,
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// `kubeadm.k8s.io/v1beta3` or `…/v1beta4`.
    pub kubeadm_api_version: String,
    /// containerd config version (2 or 3).
    pub containerd_config_version: u32,
    /// `VIP:PORT`.
    pub control_plane_endpoint: String,
    /// Registry host.
    pub registry: String,
    /// Yum repository URL of the first master's architecture (each host's `.repo` file
    /// names its own).
    pub repo_url: String,
    /// Set when the deploy node serves the repository while the install runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_served_by_deploy: Option<DeployRepo>,
    /// Hosts in inventory order.
    pub hosts: Vec<PlanHost>,
    /// Things the operator should know (assumptions, warnings).
    pub notes: Vec<String>,
    /// Users besides root with the admin kubeconfig on the masters
    /// (`spec.admin.users`), refreshed wherever root's is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<String>,
    /// Captured values that must differ between hosts (checked after preflight).
    pub unique_captures: Vec<String>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
}

/// Plan format version written to `plan.json`.
pub const PLAN_VERSION: u32 = 1;

impl Plan {
    /// The hosts with `role` (`master`, `worker`, `etcd`), in plan order.
    pub fn hosts_with_role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a PlanHost> + 'a {
        self.hosts
            .iter()
            .filter(move |h| h.roles.iter().any(|r| r == role))
    }

    /// Number of steps over all hosts.
    pub fn step_count(&self) -> usize {
        self.phases
            .iter()
            .flat_map(|p| &p.hosts)
            .map(|h| h.steps.len())
            .sum()
    }

    /// The hosts with steps in some phase, sorted.
    pub fn hosts_taking_part(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .phases
            .iter()
            .flat_map(|p| p.hosts.iter().map(|h| h.host.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every step of `host`, in execution order, with its phase.
    pub fn host_steps<'a>(
        &'a self,
        host: &'a str,
    ) -> impl Iterator<Item = (PhaseName, &'a Step)> + 'a {
        self.phases.iter().flat_map(move |p| {
            p.hosts
                .iter()
                .filter(move |h| h.host == host)
                .flat_map(move |h| h.steps.iter().map(move |s| (p.name, s)))
        })
    }

    /// Every file `host` gets: (path, content, mode, owner), in step order.
    pub fn host_files<'a>(
        &'a self,
        host: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a str, &'a str)> + 'a {
        self.host_steps(host).filter_map(|(_, s)| match &s.action {
            HostStep::WriteFile {
                path,
                content,
                mode,
                owner,
            } => Some((
                path.as_str(),
                content.as_str(),
                mode.as_str(),
                owner.as_str(),
            )),
            _ => None,
        })
    }

    /// The machine-readable plan (pretty JSON, trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plan serializes");
        s.push('\n');
        s
    }
}

/// A plan with `hosts` (name, address, role) and no phases, for unit tests of what
/// reads an installed plan.
#[cfg(test)]
pub(crate) fn sample_plan(hosts: &[(&str, &str, &str)]) -> Plan {
    Plan {
        plan_version: 1,
        cluster: "prod".into(),
        bundle: "b 1".into(),
        kubernetes_version: "v1.29.2".into(),
        kubeadm_api_version: "kubeadm.k8s.io/v1beta3".into(),
        containerd_config_version: 2,
        control_plane_endpoint: "10.0.0.100:8443".into(),
        registry: "r".into(),
        repo_url: "http://r/".into(),
        repo_served_by_deploy: None,
        hosts: hosts
            .iter()
            .map(|(name, address, role)| PlanHost {
                name: name.to_string(),
                address: address.to_string(),
                roles: vec![role.to_string()],
                duties: vec![],
            })
            .collect(),
        notes: vec![],
        admin_users: vec![],
        unique_captures: vec![],
        phases: vec![],
    }
}
