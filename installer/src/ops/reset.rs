//! `bundle reset`: undo what the last install's plan did on its hosts: `kubeadm reset`,
//! the services it started stopped and disabled (containerd last, after `kubeadm reset`
//! has removed the containers through it and the kubelet is stopped), every file it
//! wrote removed (the yum `.repo` file and containerd's configuration among them), the
//! VIP dropped. Packages stay installed. The state folder forgets the hosts, so a later
//! install starts from scratch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;

use super::report::{Event, HostStatus, Reporter};
use crate::exec::{shell_quote, SshHost, SshTarget};
use crate::inventory::Inventory;
use crate::plan::{HostStep, Plan};
use crate::state::StateDir;
use crate::Error;

/// What `bundle reset` needs.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// `cluster.yaml` (for how to reach the hosts).
    pub inventory: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// Reset these hosts only (all when empty).
    pub only: Vec<String>,
    /// Do not ask.
    pub yes: bool,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// What was reset.
#[derive(Debug)]
pub struct ResetOutcome {
    /// Hosts reset.
    pub hosts: Vec<String>,
}

/// Units the plan starts, stopped and disabled by a reset, in this order: containerd
/// after the kubelet, which would otherwise start the pods again.
const UNITS: &[&str] = &[
    "keepalived",
    "haproxy",
    "kubelet",
    "containerd",
    "bundle-repo.service",
];

/// The commands that undo `plan` on `host`.
pub fn reset_script(plan: &Plan, host: &str) -> String {
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for (_, s) in plan.host_steps(host) {
        match &s.action {
            HostStep::WriteFile { path, .. } => {
                files.insert(path.clone());
            }
            HostStep::CopyFromBundle { dest, .. } => {
                dirs.insert(dest.clone());
            }
            _ => {}
        }
    }
    let mut s = String::from("if command -v kubeadm >/dev/null 2>&1; then kubeadm reset -f >/dev/null 2>&1 || kubeadm reset -f; fi\n");
    for u in UNITS {
        s.push_str(&format!(
            "if systemctl cat {u} >/dev/null 2>&1 || systemctl is-active --quiet {u}; then systemctl disable --now {u} >/dev/null 2>&1 || systemctl stop {u} || true; fi\n"
        ));
    }
    if let Some((vip, _)) = plan.control_plane_endpoint.rsplit_once(':') {
        let vip = vip.trim_matches(['[', ']']);
        s.push_str(&format!(
            "ip -o addr show | awk '$4 ~ /^{}\\// {{print $2, $4}}' | while read -r dev addr; do ip addr del \"$addr\" dev \"$dev\"; done\n",
            vip.replace('.', "\\.")
        ));
    }
    for f in &files {
        s.push_str(&format!("rm -f {}\n", shell_quote(f)));
    }
    for d in dirs.iter().chain(
        [
            "/etc/kubernetes/bundle".to_string(),
            "/root/.kube/config".to_string(),
        ]
        .iter(),
    ) {
        s.push_str(&format!("rm -rf {}\n", shell_quote(d)));
    }
    s.push_str("systemctl daemon-reload >/dev/null 2>&1 || true\n");
    s
}

/// Resets the hosts of the last install. Workers first, all at once; then the
/// masters one at a time, the first master last.
pub fn reset(opts: &ResetOptions, reporter: &dyn Reporter) -> Result<ResetOutcome, Error> {
    super::apply::runtime()?.block_on(reset_async(opts, reporter))
}

async fn reset_async(opts: &ResetOptions, reporter: &dyn Reporter) -> Result<ResetOutcome, Error> {
    let inventory = Inventory::load(&opts.inventory)?;
    let root = opts.state.clone().unwrap_or_else(|| {
        super::apply::default_state_dir(&opts.inventory, &inventory.metadata.name)
    });
    let state = StateDir::open(&root)?;
    let _lock = state.lock()?;
    let plan = state.applied_plan()?.ok_or_else(|| Error::State {
        path: root.clone(),
        detail: "no install was recorded here (pass the install's `--state`)".into(),
    })?;
    let mut hosts: Vec<&crate::plan::PlanHost> = plan
        .hosts
        .iter()
        .filter(|h| opts.only.is_empty() || opts.only.contains(&h.name))
        .collect();
    for h in &opts.only {
        if !plan.hosts.iter().any(|p| &p.name == h) {
            return Err(Error::UnknownHost {
                host: h.clone(),
                inventory: opts.inventory.clone(),
            });
        }
    }
    // Workers, then masters from the last to the first.
    hosts.sort_by_key(|h| h.roles.iter().any(|r| r == "master"));
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    if !opts.yes
        && !reporter.confirm(&format!(
            "Reset {} (kubeadm reset, services stopped, files removed)?",
            names.join(", ")
        ))
    {
        return Err(Error::NotConfirmed {
            what: format!("resetting {}", names.join(", ")),
        });
    }
    let control = tempfile::Builder::new()
        .prefix("bundle-ssh-")
        .tempdir()
        .map_err(|e| Error::State {
            path: std::env::temp_dir(),
            detail: e.to_string(),
        })?;
    let mut conns = Vec::new();
    for n in &names {
        let t = target(&inventory, &opts.inventory, n)?;
        let mut h = SshHost::connect(t, control.path()).await?;
        if !h.set_up_become(opts.become_password.as_deref()).await? {
            return Err(Error::BecomePasswordNeeded {
                host: n.clone(),
                user: h.target().user.clone(),
            });
        }
        conns.push(h);
    }
    let (workers, masters): (Vec<&SshHost>, Vec<&SshHost>) = conns.iter().partition(|h| {
        !plan
            .hosts
            .iter()
            .any(|p| p.name == h.target().name && p.roles.iter().any(|r| r == "master"))
    });
    for r in join_all(
        workers
            .into_iter()
            .map(|h| reset_one(h, &plan, &state, opts, reporter)),
    )
    .await
    {
        r?;
    }
    for h in masters.into_iter().rev() {
        reset_one(h, &plan, &state, opts, reporter).await?;
    }
    for h in conns {
        h.close().await;
    }
    Ok(ResetOutcome { hosts: names })
}

fn target(inventory: &Inventory, path: &Path, host: &str) -> Result<SshTarget, Error> {
    SshTarget::from_inventory(inventory, path, host).ok_or_else(|| Error::UnknownHost {
        host: host.into(),
        inventory: path.to_path_buf(),
    })
}

async fn reset_one(
    h: &SshHost,
    plan: &Plan,
    state: &StateDir,
    opts: &ResetOptions,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    {
        let name = h.target().name.clone();
        reporter.event(&Event::HostPhase {
            phase: "reset".into(),
            host: name.clone(),
            status: HostStatus::Running,
            ran: 0,
            skipped: 0,
            total: 1,
        });
        let script = reset_script(plan, &name);
        let out = h.run(&script, None).await?;
        state.log(
            &name,
            &format!(
                "=== {} [reset]\n$ {script}\n{}--- exit {:?}\n",
                crate::state::now(),
                out.text(),
                out.code
            ),
        );
        if !out.success() {
            return Err(Error::StepFailed(Box::new(crate::error::StepFailure {
                host: name.clone(),
                phase: "reset".into(),
                step: "reset".into(),
                command: "kubeadm reset -f; systemctl disable --now …; rm -f …".into(),
                exit_code: out.code,
                output_tail: crate::exec::last_lines(&out.text(), 15),
                log: state.log_path(&name),
                resume: format!(
                    "bundle reset --inventory {} --only {name} --yes",
                    opts.inventory.display()
                ),
                others: vec![],
            })));
        }
        state.forget(&name)?;
        reporter.event(&Event::HostPhase {
            phase: "reset".into(),
            host: name,
            status: HostStatus::Done,
            ran: 1,
            skipped: 0,
            total: 1,
        });
        Ok(())
    }
}
