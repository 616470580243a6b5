//! `bundle reset`: undo what the last install's plan did on its hosts: `kubeadm reset`,
//! the services it started stopped and disabled (containerd last, after `kubeadm reset`
//! has removed the containers through it and the kubelet is stopped), every file it
//! wrote removed (the yum `.repo` file and containerd's configuration among them), the
//! VIP dropped. Packages stay installed. The state folder forgets the hosts, so a later
//! install starts from scratch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use futures_util::future::join_all;

use super::common::{check_only, Installed};
use crate::error::StepFailure;
use crate::exec::{last_lines, shell_quote, Redactor, SshHost};
use crate::plan::{HostStep, Plan, PlanHost};
use crate::report::{Event, HostStatus, Reporter};
use crate::run::{connect::connect, HostBook, FAILURE_TAIL_LINES};
use crate::secrets::Secrets;
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
    let etcd_member = plan
        .hosts
        .iter()
        .any(|h| h.name == host && h.roles.iter().any(|r| r == "etcd"));
    if etcd_member {
        // The member's data: a new install makes a new cluster with a new CA.
        s.push_str(&format!("rm -rf {}\n", crate::render::etcd::DATA_DIR));
    }
    for user in &plan.admin_users {
        s.push_str(&format!(
            "home=$(getent passwd {user} | cut -d: -f6); [ -z \"$home\" ] || rm -f \"$home/.kube/config\"\n"
        ));
    }
    if plan
        .host_steps(host)
        .any(|(_, s)| s.id.ends_with("/completion"))
    {
        for tool in ["kubectl", "kubeadm"] {
            s.push_str(&format!(
                "rm -f {}/{tool}\n",
                crate::plan::BASH_COMPLETION_D
            ));
        }
    }
    s.push_str("systemctl daemon-reload >/dev/null 2>&1 || true\n");
    s
}

/// Resets the hosts of the last install. Workers first, all at once; then the
/// masters one at a time, the first master last.
pub fn reset(opts: &ResetOptions, reporter: &dyn Reporter) -> Result<ResetOutcome, Error> {
    crate::run::runtime()?.block_on(reset_async(opts, reporter))
}

async fn reset_async(opts: &ResetOptions, reporter: &dyn Reporter) -> Result<ResetOutcome, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let (inventory, state, plan) = (&installed.inventory, &installed.state, &installed.plan);
    check_only(&opts.only, plan, &opts.inventory)?;
    let (workers, masters) = reset_order(plan, &opts.only);
    let names: Vec<String> = workers.iter().chain(&masters).cloned().collect();
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
    let secrets = Secrets::load_or_create(&state.root().join("secrets.json"))?;
    let book = HostBook {
        inventory,
        path: &opts.inventory,
    };
    let connected = connect(
        book,
        &names,
        opts.become_password.clone(),
        Some(&secrets),
        reporter,
    )
    .await?;
    let reset = HostReset {
        plan,
        state,
        redactor: &connected.redactor,
        inventory: &opts.inventory,
        reporter,
    };
    let result = async {
        let all_workers = join_all(workers.iter().map(|w| reset.host(&connected.hosts[w])));
        all_workers
            .await
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()?;
        for m in masters.iter().rev() {
            reset.host(&connected.hosts[m]).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    connected.close().await;
    result?;
    Ok(ResetOutcome { hosts: names })
}

/// The hosts to reset (all of the plan's, or `only`), workers and masters, each in
/// inventory order.
fn reset_order(plan: &Plan, only: &[String]) -> (Vec<String>, Vec<String>) {
    let (masters, workers): (Vec<&PlanHost>, Vec<&PlanHost>) = plan
        .hosts
        .iter()
        .filter(|h| only.is_empty() || only.contains(&h.name))
        .partition(|h| h.roles.iter().any(|r| r == "master"));
    let names = |hs: Vec<&PlanHost>| hs.into_iter().map(|h| h.name.clone()).collect();
    (names(workers), names(masters))
}

/// What resetting one host needs.
struct HostReset<'a> {
    plan: &'a Plan,
    state: &'a StateDir,
    redactor: &'a Redactor,
    inventory: &'a Path,
    reporter: &'a dyn Reporter,
}

impl HostReset<'_> {
    /// Runs the reset script on `h`, logs its output (redacted) and forgets the host.
    async fn host(&self, h: &SshHost) -> Result<(), Error> {
        let name = h.target().name.clone();
        self.status(&name, HostStatus::Running, 0);
        let script = reset_script(self.plan, &name);
        let out = h.run(&script, None).await?;
        let output = self.redactor.redact(&out.text());
        self.state.log(
            &name,
            &format!(
                "=== {} [reset]\n$ {script}\n{output}--- exit {:?}\n",
                crate::state::now(),
                out.code
            ),
        );
        if !out.success() {
            self.status(&name, HostStatus::Failed, 1);
            return Err(Error::StepFailed(Box::new(StepFailure {
                host: name.clone(),
                phase: "reset".into(),
                step: "reset".into(),
                command: "kubeadm reset -f; systemctl disable --now …; rm -f …".into(),
                exit_code: out.code,
                output_tail: last_lines(&output, FAILURE_TAIL_LINES),
                log: self.state.log_path(&name),
                resume: format!(
                    "bundle reset --inventory {} --only {name} --yes",
                    self.inventory.display()
                ),
                others: vec![],
            })));
        }
        self.state.forget(&name)?;
        self.status(&name, HostStatus::Done, 1);
        Ok(())
    }

    fn status(&self, host: &str, status: HostStatus, ran: usize) {
        self.reporter.event(&Event::HostPhase {
            phase: "reset".into(),
            host: host.into(),
            status,
            ran,
            skipped: 0,
            total: 1,
        });
    }
}
