//! The plan: for each of nine phases, the hosts taking part and their ordered,
//! typed steps. Executors carry steps out and record the finished ones by id; each
//! step's `check` (a command that succeeds when the step's effect is already there)
//! lets a re-run skip it.
//!
//! Plans hold no secrets (see [`crate::secrets`]) and print deterministically:
//! [`Plan::to_text`] is for people, [`Plan::to_json`] for executors.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The nine phases, in order.
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
}

impl PhaseName {
    /// Every phase in order.
    pub const ALL: [PhaseName; 9] = [
        PhaseName::Preflight,
        PhaseName::Repo,
        PhaseName::Os,
        PhaseName::Containerd,
        PhaseName::Lb,
        PhaseName::Init,
        PhaseName::Join,
        PhaseName::Cni,
        PhaseName::Verify,
    ];

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Preflight => "preflight",
            PhaseName::Repo => "repo",
            PhaseName::Os => "os",
            PhaseName::Containerd => "containerd",
            PhaseName::Lb => "lb",
            PhaseName::Init => "init",
            PhaseName::Join => "join",
            PhaseName::Cni => "cni",
            PhaseName::Verify => "verify",
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
    /// Entry prefix in the bundle (`rpms/el9-x86_64/`); served under its last part.
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
    /// Yum repository URL.
    pub repo_url: String,
    /// Set when the deploy node serves the repository while the install runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_served_by_deploy: Option<DeployRepo>,
    /// Hosts in inventory order.
    pub hosts: Vec<PlanHost>,
    /// Things the operator should know (assumptions, warnings).
    pub notes: Vec<String>,
    /// Captured values that must differ between hosts (checked after preflight).
    pub unique_captures: Vec<String>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
}

/// Plan format version written to `plan.json`.
pub const PLAN_VERSION: u32 = 1;

impl Plan {
    /// Number of steps over all hosts.
    pub fn step_count(&self) -> usize {
        self.phases
            .iter()
            .flat_map(|p| &p.hosts)
            .map(|h| h.steps.len())
            .sum()
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

    /// The plan for people: summary, then every phase's steps per host. File contents
    /// are in the host folders; here each file shows its size and digest.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(
            w,
            "Plan for cluster `{}` from bundle {}",
            self.cluster, self.bundle
        );
        let _ = writeln!(
            w,
            "  Kubernetes {} (kubeadm config {}), containerd config version {}",
            self.kubernetes_version, self.kubeadm_api_version, self.containerd_config_version
        );
        let _ = writeln!(
            w,
            "  control plane endpoint {} (keepalived VIP, haproxy on every master)",
            self.control_plane_endpoint
        );
        let _ = writeln!(
            w,
            "  registry {}, yum repository {}{}",
            self.registry,
            self.repo_url,
            if self.repo_served_by_deploy.is_some() {
                " (served by the deploy node while the install runs)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            w,
            "  {} hosts, {} steps",
            self.hosts.len(),
            self.step_count()
        );
        let _ = writeln!(w);
        let name_w = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        let addr_w = self
            .hosts
            .iter()
            .map(|h| h.address.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(w, "Hosts:");
        for h in &self.hosts {
            let duties = if h.duties.is_empty() {
                String::new()
            } else {
                format!("  ({})", h.duties.join(", "))
            };
            let _ = writeln!(
                w,
                "  {:name_w$}  {:addr_w$}  {}{}",
                h.name,
                h.address,
                h.roles.join("+"),
                duties
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(w);
            let _ = writeln!(w, "Notes:");
            for n in &self.notes {
                let _ = writeln!(w, "  - {n}");
            }
        }
        for (i, phase) in self.phases.iter().enumerate() {
            let _ = writeln!(w);
            let _ = writeln!(
                w,
                "Phase {}/{}: {}",
                i + 1,
                self.phases.len(),
                phase.name.as_str()
            );
            let waves = phase
                .hosts
                .iter()
                .map(|h| h.wave)
                .collect::<std::collections::BTreeSet<_>>();
            for h in &phase.hosts {
                let wave = if waves.len() > 1 {
                    format!(" (wave {})", h.wave + 1)
                } else {
                    String::new()
                };
                let _ = writeln!(w, "  {}{}", h.host, wave);
                for s in &h.steps {
                    write_step(w, s);
                }
            }
        }
        out
    }
}

fn write_step(w: &mut String, s: &Step) {
    let _ = writeln!(w, "    [{}] {}", s.id, s.description);
    match &s.action {
        HostStep::WriteFile {
            path,
            content,
            mode,
            owner,
        } => {
            let digest = bundle_format::Sha256Digest::of(content.as_bytes()).hex();
            let _ = writeln!(
                w,
                "      write {path} ({mode} {owner}, {} bytes, sha256 {})",
                content.len(),
                &digest[..12]
            );
        }
        HostStep::CopyFromBundle { entries, dest } => {
            let _ = writeln!(w, "      copy bundle entries {entries}* to {dest}");
        }
        HostStep::Run {
            command,
            check,
            after_change_of,
            capture,
            on_failure,
        } => {
            for (i, line) in command.lines().enumerate() {
                let _ = writeln!(w, "      {} {line}", if i == 0 { "$" } else { " " });
            }
            if let Some(c) = check {
                let _ = writeln!(w, "      skip if: {c}");
            }
            if !after_change_of.is_empty() {
                let _ = writeln!(
                    w,
                    "      also after a change of: {}",
                    after_change_of.join(", ")
                );
            }
            if let Some(c) = capture {
                let _ = writeln!(w, "      output saved as <runtime:{c}>");
            }
            if *on_failure == OnFailure::Warn {
                let _ = writeln!(w, "      a failure is a warning");
            }
        }
        HostStep::WaitFor {
            condition,
            timeout_secs,
        } => {
            let _ = writeln!(w, "      wait up to {timeout_secs}s for: {condition}");
        }
    }
}

/// Where `path` (absolute on the host) goes under the host's folder: `files/etc/…`.
/// `None` for a path with `..` or not absolute.
pub fn host_file_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("files");
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

/// Writes `plan.json`, `plan.txt` and, for each host, `HOST/steps.txt` and every file
/// under `HOST/files/`. Host folders are rebuilt from scratch.
pub fn write_plan_dir(plan: &Plan, dir: &Path) -> Result<(), Error> {
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    for h in &plan.hosts {
        let host_dir = dir.join(&h.name);
        if host_dir.exists() {
            std::fs::remove_dir_all(&host_dir).map_err(werr(&host_dir))?;
        }
        std::fs::create_dir_all(&host_dir).map_err(werr(&host_dir))?;
        let mut steps = String::new();
        let _ = writeln!(
            steps,
            "# {} ({}) — steps in order; files are under files/",
            h.name, h.address
        );
        let mut last = None;
        for (phase, s) in plan.host_steps(&h.name) {
            if last != Some(phase) {
                let _ = writeln!(steps, "\n## {}", phase.as_str());
                last = Some(phase);
            }
            write_step(&mut steps, s);
        }
        let p = host_dir.join("steps.txt");
        std::fs::write(&p, steps).map_err(werr(&p))?;
        for (path, content, _, _) in plan.host_files(&h.name) {
            let rel = host_file_path(path).expect("the planner writes absolute paths only");
            let p = host_dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(werr(parent))?;
            }
            std::fs::write(&p, content).map_err(werr(&p))?;
        }
    }
    let p = dir.join("plan.json");
    std::fs::write(&p, plan.to_json()).map_err(werr(&p))?;
    let p = dir.join("plan.txt");
    std::fs::write(&p, plan.to_text()).map_err(werr(&p))?;
    Ok(())
}
