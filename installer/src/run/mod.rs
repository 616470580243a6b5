//! The executor: carries a [`Plan`] out on connected hosts and records every step in
//! the state folder, so a re-run resumes. Every operation that touches hosts (install,
//! reset, nodes add, the drill, and the lifecycle operations to come) reaches them
//! through `connect` and runs steps through `Engine`.
//!
//! Order: phases in order; within a phase, hosts of one wave in parallel (at most
//! `parallel` at once) and waves one after the other (the planner puts `kubeadm init`
//! alone, control-plane joins one per wave, then all workers in one wave). In
//! `preflight` every check runs on every host and all failures are reported together;
//! elsewhere a failure lets the hosts of its wave finish their current phase and then
//! stops, naming host, step, command, exit code and the last lines of output, with the
//! command that resumes.
//!
//! | file | holds |
//! |---|---|
//! | `connect.rs` | reaching hosts: parallel connections, sudo, the redactor |
//! | `decide.rs` | the skip/redo rule, a pure function |
//! | `actions.rs` | carrying out each kind of step |
//! | `record.rs` | a step's outcome, the host's log and the state records |
//! | `phase.rs` | a phase's waves and each host's steps in order |
//! | `tree.rs` | the extracted repository as a deterministic tar stream, for the copy to a host |

mod actions;
pub(crate) mod connect;
mod decide;
mod phase;
mod record;
mod tree;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

pub(crate) use connect::HostBook;

use crate::exec::{Redactor, SshHost};
use crate::inventory::Inventory;
use crate::plan::{HostStep, PhaseName, Plan};
use crate::repo_server::RepoServer;
use crate::report::{Event, Reporter};
use crate::secrets::Secrets;
use crate::state::{self, StateDir};
use crate::Error;

/// Lines of output shown with a failure.
pub const FAILURE_TAIL_LINES: usize = 15;

/// How to carry out a plan already made (see [`run_plan`]).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Hosts worked on at the same time within a wave.
    pub parallel: usize,
    /// Start at this phase.
    pub from: Option<PhaseName>,
    /// These hosts only (all when empty).
    pub only: Vec<String>,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
    /// The command that resumes (shown with a failure).
    pub resume: String,
}

/// Carries out `plan` on the hosts of `inventory` (read from `inventory_path`),
/// recording in the state folder `state` (its `secrets.json` fills the placeholders;
/// created when missing). `bundle install` is this after verification and planning;
/// tests and benchmarks call it with plans of their own. Returns (steps carried out,
/// skipped).
pub fn run_plan(
    plan: &Plan,
    inventory_path: &Path,
    state: &Path,
    opts: &RunOptions,
    reporter: &dyn Reporter,
) -> Result<(usize, usize), Error> {
    runtime()?.block_on(async {
        let inventory = Inventory::load(inventory_path)?;
        let state_dir = StateDir::open(state)?;
        let _lock = state_dir.lock()?;
        let secrets = Secrets::load_for_plan(&state.join("secrets.json"), plan)?;
        state_dir.set_applied_plan(plan)?;
        let parts = EngineParts {
            plan,
            state: &state_dir,
            secrets: &secrets,
            reporter,
        };
        let book = HostBook {
            inventory: &inventory,
            path: inventory_path,
        };
        let engine = Engine::connect(parts, book, opts).await?;
        let r = engine.execute(opts.from).await;
        engine.close().await;
        r
    })
}

/// A multi-threaded runtime for the operations that talk to hosts and registries.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })
}

/// What an [`Engine`] works with, besides its hosts.
#[derive(Clone, Copy)]
pub(crate) struct EngineParts<'a> {
    pub plan: &'a Plan,
    pub state: &'a StateDir,
    pub secrets: &'a Secrets,
    pub reporter: &'a dyn Reporter,
}

/// Connected hosts and everything needed to carry steps out.
pub(crate) struct Engine<'a> {
    pub(crate) plan: &'a Plan,
    plan_hash: String,
    state: &'a StateDir,
    secrets: &'a Secrets,
    redactor: Redactor,
    connected: connect::Connected,
    only: Vec<String>,
    parallel: usize,
    /// Captured values by host, then name.
    captures: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Extra placeholder values (a fresh bootstrap token for `nodes add`).
    overrides: BTreeMap<String, String>,
    warnings: Mutex<Vec<String>>,
    resume: String,
    pub(crate) reporter: &'a dyn Reporter,
}

impl<'a> Engine<'a> {
    /// Connects to every host taking part (all of the plan's, or `opts.only`).
    pub(crate) async fn connect(
        parts: EngineParts<'a>,
        book: HostBook<'_>,
        opts: &RunOptions,
    ) -> Result<Engine<'a>, Error> {
        let names: Vec<String> = parts
            .plan
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .filter(|h| opts.only.is_empty() || opts.only.contains(h))
            .collect();
        let mut connected = connect::connect(
            book,
            &names,
            opts.become_password.clone(),
            Some(parts.secrets),
            parts.reporter,
        )
        .await?;
        let engine = Engine {
            plan: parts.plan,
            plan_hash: state::plan_hash(parts.plan),
            state: parts.state,
            secrets: parts.secrets,
            redactor: std::mem::take(&mut connected.redactor),
            connected,
            only: opts.only.clone(),
            parallel: opts.parallel.max(1),
            captures: Mutex::new(BTreeMap::new()),
            overrides: BTreeMap::new(),
            warnings: Mutex::new(vec![]),
            resume: opts.resume.clone(),
            reporter: parts.reporter,
        };
        engine.restore_captures()?;
        Ok(engine)
    }

    /// A connected host.
    pub(crate) fn host(&self, name: &str) -> Option<&SshHost> {
        self.connected.hosts.get(name)
    }

    /// Hides `value` from every log and record from now on.
    pub(crate) fn add_secret(&mut self, name: &str, value: &str) {
        self.redactor.add(name, value);
    }

    /// Writes `value` where the plan has the placeholder `placeholder`.
    pub(crate) fn fill_in(&mut self, placeholder: String, value: String) {
        self.overrides.insert(placeholder, value);
    }

    /// The nodes' pull password, written where the plan has its placeholder.
    pub(crate) fn set_pull_password(&mut self, password: Option<&str>) {
        if let Some(p) = password {
            self.add_secret("registry-pull-password", p);
            self.fill_in(crate::render::containerd::PULL_PASSWORD.into(), p.into());
        }
    }

    /// The key of the nodes' registry client certificate, written where the plan has
    /// its placeholder.
    pub(crate) fn set_registry_client_key(&mut self, key: Option<&str>) {
        if let Some(k) = key {
            self.add_secret("registry-client-key", k);
            self.fill_in(crate::render::containerd::CLIENT_KEY.into(), k.into());
        }
    }

    /// Warnings so far (steps with `onFailure: warn` that failed).
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("not poisoned").clone()
    }

    /// Closes every connection.
    pub(crate) async fn close(self) {
        self.connected.close().await;
    }

    /// Serves the repository when the plan says so, then runs the phases from `from`.
    /// Returns (steps carried out, skipped).
    pub(crate) async fn execute(&self, from: Option<PhaseName>) -> Result<(usize, usize), Error> {
        let _server = serve_repo(self.plan, self.state, self.reporter).await?;
        let start = from.unwrap_or(PhaseName::Preflight);
        let (mut ran, mut skipped) = (0, 0);
        for phase in self.plan.phases.iter().filter(|p| p.name >= start) {
            let (r, s) = self.run_phase(phase).await?;
            ran += r;
            skipped += s;
        }
        Ok((ran, skipped))
    }

    fn step_log(&self) -> record::StepLog<'_> {
        record::StepLog {
            state: self.state,
            redactor: &self.redactor,
            plan_hash: &self.plan_hash,
        }
    }

    /// Captured values of earlier runs, from the records.
    fn restore_captures(&self) -> Result<(), Error> {
        for h in &self.plan.hosts {
            let latest = self.state.latest(&h.name)?;
            for (_, step) in self.plan.host_steps(&h.name) {
                if let HostStep::Run {
                    capture: Some(name),
                    ..
                } = &step.action
                {
                    if let Some(v) = latest.get(&step.id).and_then(|r| r.capture.as_ref()) {
                        self.keep_capture(&h.name, name, v);
                    }
                }
            }
        }
        Ok(())
    }

    fn keep_capture(&self, host: &str, name: &str, value: &str) {
        self.captures
            .lock()
            .expect("not poisoned")
            .entry(host.to_string())
            .or_default()
            .insert(name.to_string(), value.to_string());
    }

    /// Fills in secrets and runtime values (every host's captures: names are unique
    /// where used).
    fn resolve(&self, text: &str) -> String {
        let mut runtime = BTreeMap::new();
        for m in self.captures.lock().expect("not poisoned").values() {
            runtime.extend(m.clone());
        }
        let mut values = self.secrets.values(&runtime);
        values.extend(self.overrides.clone());
        crate::secrets::fill(text, &values)
    }
}

/// Starts the deploy node's repository server when the plan has one; it serves until
/// the returned value is dropped.
pub(crate) async fn serve_repo(
    plan: &Plan,
    state: &StateDir,
    reporter: &dyn Reporter,
) -> Result<Option<RepoServer>, Error> {
    let Some(r) = &plan.repo_served_by_deploy else {
        return Ok(None);
    };
    let ip: std::net::IpAddr = r.bind.parse().map_err(|_| Error::RepoServe {
        address: r.bind.clone(),
        source: std::io::Error::other("not an IP address"),
    })?;
    let server = RepoServer::start(
        &crate::render::host_port(&ip, r.port),
        &state.extracted_rpms(),
    )
    .await?;
    reporter.event(&Event::RepoServing {
        url: plan.repo_url.clone(),
    });
    Ok(Some(server))
}
