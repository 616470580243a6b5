//! `bundle install` without `--dry-run`: verify, plan, then carry the plan out on
//! every host over SSH, recording each step in the state folder so a re-run resumes.
//!
//! Order: phases in order; within a phase, hosts of one wave in parallel (at most
//! `parallel` at once) and waves one after the other (the planner puts `kubeadm init`
//! alone, control-plane joins one per wave, then all workers in one wave). In
//! `preflight` every check runs on every host and all failures are reported together;
//! elsewhere a failure lets the hosts of its wave finish their current phase and then
//! stops the install, naming host, step, command, exit code and the last lines of
//! output, with the command that resumes.
//!
//! A step is skipped when: a file is already there with the same content, mode and
//! owner; a command's `check` holds (unless a file in its `afterChangeOf` was written
//! and its restart is still pending); a step without check finished before with the
//! same definition (not in `verify`, which always looks again).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::report::{Event, HostStatus, Reporter};
use crate::exec::{last_lines, Output, Redactor, SshHost, SshTarget};
use crate::inventory::Inventory;
use crate::plan::{HostStep, HostSteps, OnFailure, Phase, PhaseName, Plan, Step};
use crate::repo_server::RepoServer;
use crate::secrets::{Secret, Secrets};
use crate::state::{self, StateDir, StepRecord, StepStatus};
use crate::Error;

/// Lines of output shown with a failure.
pub const FAILURE_TAIL_LINES: usize = 15;

/// What `bundle install` needs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// `cluster.yaml`.
    pub inventory: PathBuf,
    /// The trusted public key.
    pub pubkey: PathBuf,
    /// The state folder (default: [`default_state_dir`]).
    pub state: Option<PathBuf>,
    /// Accept a non-HA control plane.
    pub force: bool,
    /// Hosts worked on at the same time within a wave.
    pub parallel: usize,
    /// Start at this phase (earlier phases are taken as done).
    pub from: Option<PhaseName>,
    /// Work on these hosts only (all when empty).
    pub only: Vec<String>,
    /// Apply a changed plan without asking.
    pub yes: bool,
    /// Do not push the images (they are in the registry already).
    pub skip_push: bool,
    /// Run the HA drill after the install.
    pub drill: bool,
    /// The sudo password for `become: sudo` (asked through the reporter when needed).
    pub become_password: Option<String>,
}

impl ApplyOptions {
    /// Defaults: parallel 10, everything else off.
    pub fn new(bundle: PathBuf, inventory: PathBuf, pubkey: PathBuf) -> Self {
        ApplyOptions {
            bundle,
            inventory,
            pubkey,
            state: None,
            force: false,
            parallel: 10,
            from: None,
            only: vec![],
            yes: false,
            skip_push: false,
            drill: false,
            become_password: None,
        }
    }
}

/// What an install did.
#[derive(Debug)]
pub struct ApplyOutcome {
    /// The plan carried out.
    pub plan: Plan,
    /// The state folder.
    pub state: PathBuf,
    /// Steps carried out.
    pub ran: usize,
    /// Steps skipped.
    pub skipped: usize,
    /// Warnings (steps with `onFailure: warn` that failed).
    pub warnings: Vec<String>,
}

/// The state folder used when none is given: `bundle-state/CLUSTER` beside the
/// inventory.
pub fn default_state_dir(inventory: &Path, cluster: &str) -> PathBuf {
    inventory
        .parent()
        .unwrap_or(Path::new(""))
        .join("bundle-state")
        .join(cluster)
}

/// Verifies, plans and installs. See the module documentation.
pub fn apply(opts: &ApplyOptions, reporter: &dyn Reporter) -> Result<ApplyOutcome, Error> {
    let rt = runtime()?;
    rt.block_on(apply_async(opts, reporter))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::State {
            path: PathBuf::from("."),
            detail: format!("cannot start the async runtime: {e}"),
        })
}

async fn apply_async(opts: &ApplyOptions, reporter: &dyn Reporter) -> Result<ApplyOutcome, Error> {
    // The inventory first, to find the state folder; then verification extracts the
    // yum repository into it.
    let inventory = Inventory::load(&opts.inventory)?;
    // Before the bundle's verification, which can take minutes.
    let pull_password = pull_password(&inventory)?;
    let state_root = opts
        .state
        .clone()
        .unwrap_or_else(|| default_state_dir(&opts.inventory, &inventory.metadata.name));
    let state = StateDir::open(&state_root)?;
    let _lock = state.lock()?;
    let repo_dir = state.repo_dir();
    let prepared = {
        let (inv, b, k, f) = (
            opts.inventory.clone(),
            opts.bundle.clone(),
            opts.pubkey.clone(),
            opts.force,
        );
        let rd = repo_dir.clone();
        tokio::task::spawn_blocking(move || super::prepare(&inv, &b, &k, f, Some(&rd)))
            .await
            .expect("verification does not panic")?
    };
    let plan = prepared.plan;
    for w in &prepared.warnings {
        reporter.event(&Event::Warning {
            host: None,
            message: w.to_string(),
        });
    }
    reporter.event(&Event::Planned {
        bundle: plan.bundle.clone(),
        entries: prepared.entries_verified,
        steps: plan.step_count(),
        hosts: plan.hosts.len(),
        state: state_root.display().to_string(),
    });
    for h in &opts.only {
        if !plan.hosts.iter().any(|p| &p.name == h) {
            return Err(Error::UnknownHost {
                host: h.clone(),
                inventory: opts.inventory.clone(),
            });
        }
    }

    confirm_plan_change(&state, &plan, opts.yes, reporter)?;
    let secrets = Secrets::load_or_create(&state_root.join("secrets.json"))?;
    crate::plan::write_plan_dir(&plan, &state_root)?;
    state.set_applied_plan(&plan)?;

    let resume = resume_command(opts, &state_root);
    let run = RunOptions {
        parallel: opts.parallel,
        from: opts.from,
        only: opts.only.clone(),
        become_password: opts.become_password.clone(),
        resume,
    };
    let mut engine = Engine::connect(
        &plan,
        &state,
        &secrets,
        &prepared.inventory,
        &opts.inventory,
        &run.only,
        run.parallel,
        run.become_password.clone(),
        run.resume.clone(),
        reporter,
    )
    .await?;
    engine.set_pull_password(pull_password.as_deref());
    push_images(opts, &prepared.cluster, pull_password.as_deref(), reporter).await?;
    let (ran, skipped) = execute(&engine, &plan, &state, run.from, reporter).await?;
    if opts.drill {
        super::drill::drill(&engine, &prepared.cluster).await?;
    }
    let warnings = engine.warnings.lock().expect("not poisoned").clone();
    engine.close().await;
    Ok(ApplyOutcome {
        plan,
        state: state_root,
        ran,
        skipped,
        warnings,
    })
}

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
/// created when missing). [`apply`] is this after verification and planning; tests and
/// benchmarks call it with plans of their own. Returns (steps carried out, skipped).
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
        let secrets = Secrets::load_or_create(&state.join("secrets.json"))?;
        state_dir.set_applied_plan(plan)?;
        let engine = Engine::connect(
            plan,
            &state_dir,
            &secrets,
            &inventory,
            inventory_path,
            &opts.only,
            opts.parallel,
            opts.become_password.clone(),
            opts.resume.clone(),
            reporter,
        )
        .await?;
        let r = execute(&engine, plan, &state_dir, opts.from, reporter).await;
        engine.close().await;
        r
    })
}

/// Serves the repository when the plan says so, then runs the phases from `from`.
async fn execute(
    engine: &Engine<'_>,
    plan: &Plan,
    state: &StateDir,
    from: Option<PhaseName>,
    reporter: &dyn Reporter,
) -> Result<(usize, usize), Error> {
    let _server = match &plan.repo_served_by_deploy {
        Some(r) => {
            let ip: std::net::IpAddr = r.bind.parse().map_err(|_| Error::RepoServe {
                address: r.bind.clone(),
                source: std::io::Error::other("not an IP address"),
            })?;
            let server = RepoServer::start(
                &crate::render::host_port(&ip, r.port),
                &state.repo_dir().join("rpms"),
            )
            .await?;
            reporter.event(&Event::RepoServing {
                url: plan.repo_url.clone(),
            });
            Some(server)
        }
        None => None,
    };
    let start = from.unwrap_or(PhaseName::Preflight);
    let (mut ran, mut skipped) = (0, 0);
    for phase in plan.phases.iter().filter(|p| p.name >= start) {
        let (r, s) = engine.run_phase(phase).await?;
        ran += r;
        skipped += s;
    }
    Ok((ran, skipped))
}

/// Shows how the plan differs from the last run's and asks (or needs `--yes`).
pub(crate) fn confirm_plan_change(
    state: &StateDir,
    plan: &Plan,
    yes: bool,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let Some(old) = state.applied_plan()? else {
        return Ok(());
    };
    let changes = state::diff_plans(&old, plan);
    if changes.is_empty() {
        return Ok(());
    }
    reporter.event(&Event::PlanChanged {
        changes: changes.iter().map(ToString::to_string).collect(),
    });
    if yes || reporter.confirm("Apply the changed plan?") {
        Ok(())
    } else {
        Err(Error::PlanChangeNotConfirmed)
    }
}

/// The command that resumes this install.
fn resume_command(opts: &ApplyOptions, state: &Path) -> String {
    let q = |p: &Path| crate::exec::shell_quote(&p.display().to_string());
    let mut s = format!(
        "bundle install {} --inventory {} --pubkey {}",
        q(&opts.bundle),
        q(&opts.inventory),
        q(&opts.pubkey)
    );
    if opts.state.is_some() {
        s.push_str(&format!(" --state {}", q(state)));
    }
    if opts.force {
        s.push_str(" --force");
    }
    for h in &opts.only {
        s.push_str(&format!(" --only {h}"));
    }
    // The images were pushed (or skipped) before any phase ran.
    s.push_str(" --skip-push");
    s
}

/// Pushes the bundle's images to the registry before any host needs them, with
/// `bundle push`'s code and the inventory's mapping (`spec.registry.map`); the
/// registry's CA is `spec.registry.caFile`, credentials as `bundle push` finds them
/// (`BUNDLE_REGISTRY_USERNAME`/`_PASSWORD`, docker config). Missing Harbor projects
/// are created public when nodes pull anonymously. Then (also with `--skip-push`)
/// checks that the nodes will be able to pull: one image of every project, with the
/// nodes' credentials or none.
async fn push_images(
    opts: &ApplyOptions,
    cluster: &crate::Cluster,
    pull_password: Option<&str>,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    use bundle_registry::push::{plan as push_plan, push, Connection, NoReport, PushOptions};
    let err = |source: bundle_registry::Error| Error::Push {
        registry: cluster.registry_host.clone(),
        source: Box::new(source),
    };
    let key = bundle_format::sign::PublicKey::from_file(&opts.pubkey).map_err(|source| {
        Error::PublicKey {
            path: opts.pubkey.clone(),
            source,
        }
    })?;
    let plan = {
        let (b, k, m) = (opts.bundle.clone(), key.clone(), cluster.mapping.clone());
        tokio::task::spawn_blocking(move || push_plan(&b, Some(&k), false, &m))
            .await
            .expect("push planning does not panic")
            .map_err(err)?
    };
    let ca_files: Vec<PathBuf> = cluster
        .registry_ca_file
        .iter()
        .map(|f| crate::inventory::resolve_relative(&opts.inventory, f))
        .collect();
    let node = Connection {
        host: cluster.registry_host.clone(),
        plain_http: false,
        ca_files: ca_files.clone(),
        credentials: cluster
            .registry_pull_username
            .clone()
            .zip(pull_password)
            .map(|(username, password)| bundle_registry::Credentials {
                username,
                password: password.to_string(),
            }),
    };
    if opts.skip_push {
        reporter.event(&Event::Note {
            message: "images not pushed (`--skip-push`)".into(),
        });
        // The images may have gone in another way, from a machine that can reach the
        // registry when this one cannot: a warning, not a stop.
        if let Err(e) = check_node_pulls(&node, &plan, cluster, reporter).await {
            let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source());
            reporter.event(&Event::Warning {
                host: None,
                message: chain.map(|e| e.to_string()).collect::<Vec<_>>().join(": "),
            });
        }
        return Ok(());
    }
    let (credentials, _) =
        bundle_registry::credentials::resolve(&cluster.registry_host, None, None).map_err(err)?;
    reporter.event(&Event::Note {
        message: format!(
            "pushing {} images to `{}`",
            plan.images.len(),
            cluster.registry_host
        ),
    });
    let summary = push(
        &opts.bundle,
        &plan,
        &PushOptions {
            connection: Connection {
                host: cluster.registry_host.clone(),
                plain_http: false,
                ca_files,
                credentials,
            },
            key: Some(key),
            public_projects: cluster.registry_pull_username.is_none(),
            ..PushOptions::default()
        },
        &NoReport,
    )
    .await
    .map_err(err)?;
    reporter.event(&Event::Note {
        message: format!(
            "pushed {} images to `{}` ({} blobs sent, {} already there)",
            summary.images.len(),
            summary.registry,
            summary.blobs_pushed,
            summary.blobs_skipped
        ),
    });
    check_node_pulls(&node, &plan, cluster, reporter).await
}

/// Pulls one image of every target project the way the nodes will (their account, or
/// anonymously), so that a private project stops the install before any host waits
/// for images it cannot get.
async fn check_node_pulls(
    node: &bundle_registry::push::Connection,
    plan: &bundle_registry::push::PushPlan,
    cluster: &crate::Cluster,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let mut seen = std::collections::BTreeSet::new();
    for image in &plan.images {
        let repository = image.repository();
        let project = bundle_registry::mapping::project_of(repository);
        if !seen.insert(project.to_string()) {
            continue;
        }
        let reference = image.digest.to_string();
        bundle_registry::push::check_pull(node, repository, &reference)
            .await
            .map_err(|source| Error::NodesCannotPull {
                registry: cluster.registry_host.clone(),
                repository: repository.to_string(),
                project: project.to_string(),
                account: cluster.registry_pull_username.clone(),
                source: Box::new(source),
            })?;
    }
    let who = match &cluster.registry_pull_username {
        Some(u) => format!("as `{u}`"),
        None => "anonymously".into(),
    };
    reporter.event(&Event::Note {
        message: format!(
            "nodes can pull {who} from `{}` ({} checked)",
            cluster.registry_host,
            seen.into_iter().collect::<Vec<_>>().join(", ")
        ),
    });
    Ok(())
}

/// The nodes' pull password when the inventory names a pull account: from
/// `BUNDLE_REGISTRY_PULL_PASSWORD`, checked before any host is touched. It goes into
/// containerd's TOML as a basic string, so quotes, backslashes and control characters
/// are refused rather than escaped behind the operator's back.
pub(crate) fn pull_password(inventory: &Inventory) -> Result<Option<String>, Error> {
    let Some(username) = &inventory.spec.registry.pull_username else {
        return Ok(None);
    };
    let problem = match std::env::var(PULL_PASSWORD_ENV) {
        Ok(p) if p.is_empty() => "is empty",
        Ok(p) if p.chars().any(|c| c.is_control() || c == '"' || c == '\\') => {
            "holds a quote, backslash or control character"
        }
        Ok(p) => return Ok(Some(p)),
        Err(_) => "is not set",
    };
    Err(Error::PullPassword {
        username: username.clone(),
        problem: problem.into(),
    })
}

/// Where the nodes' pull password comes from.
pub const PULL_PASSWORD_ENV: &str = "BUNDLE_REGISTRY_PULL_PASSWORD";

/// The outcome of one host's steps in a phase.
#[derive(Debug, Default)]
struct HostRun {
    ran: usize,
    skipped: usize,
    failure: Option<Failure>,
    /// Preflight: every failed check.
    problems: Vec<String>,
}

#[derive(Debug, Clone)]
struct Failure {
    step: String,
    command: String,
    exit_code: Option<i32>,
    tail: String,
}

/// Connected hosts and everything needed to carry steps out.
pub(crate) struct Engine<'a> {
    pub(crate) plan: &'a Plan,
    plan_hash: String,
    state: &'a StateDir,
    secrets: &'a Secrets,
    redactor: Redactor,
    pub(crate) hosts: BTreeMap<String, SshHost>,
    only: Vec<String>,
    parallel: usize,
    /// Captured values by host, then name.
    captures: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Extra placeholder values (a fresh bootstrap token for `nodes add`).
    pub(crate) overrides: BTreeMap<String, String>,
    warnings: Mutex<Vec<String>>,
    resume: String,
    pub(crate) reporter: &'a dyn Reporter,
    _control: tempfile::TempDir,
}

impl<'a> Engine<'a> {
    /// Connects to every host taking part (all of the plan's, or `only`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn connect(
        plan: &'a Plan,
        state: &'a StateDir,
        secrets: &'a Secrets,
        inventory: &Inventory,
        inventory_path: &Path,
        only: &[String],
        parallel: usize,
        become_password: Option<String>,
        resume: String,
        reporter: &'a dyn Reporter,
    ) -> Result<Engine<'a>, Error> {
        // Control sockets need a short path.
        let control = tempfile::Builder::new()
            .prefix("bundle-ssh-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| Error::State {
                path: std::env::temp_dir(),
                detail: format!("cannot create the ssh control folder: {e}"),
            })?;
        let names: Vec<String> = plan
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .filter(|h| only.is_empty() || only.contains(h))
            .collect();
        let targets: Vec<SshTarget> = names
            .iter()
            .map(|n| {
                SshTarget::from_inventory(inventory, inventory_path, n).ok_or_else(|| {
                    Error::UnknownHost {
                        host: n.clone(),
                        inventory: inventory_path.to_path_buf(),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        let results = join_all(
            targets
                .into_iter()
                .map(|t| SshHost::connect(t, control.path())),
        )
        .await;
        let mut hosts = BTreeMap::new();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(h) => {
                    reporter.event(&Event::Connected {
                        host: h.target().name.clone(),
                        address: h.target().display(),
                    });
                    hosts.insert(h.target().name.clone(), h);
                }
                Err(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    } else {
                        reporter.event(&Event::Warning {
                            host: None,
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
        if let Some(e) = first_err {
            for (_, h) in hosts {
                h.close().await;
            }
            return Err(e);
        }

        // sudo: find out who needs a password, ask once, check it everywhere.
        let mut password = become_password;
        let mut redactor = Redactor::default();
        for s in Secret::ALL {
            redactor.add(s.name(), secrets.get(s));
        }
        for h in hosts.values_mut() {
            if !h.set_up_become(password.as_deref()).await? {
                if password.is_none() {
                    password = reporter.become_password(&h.target().user);
                }
                if !h.set_up_become(password.as_deref()).await? {
                    return Err(Error::BecomePasswordNeeded {
                        host: h.target().name.clone(),
                        user: h.target().user.clone(),
                    });
                }
            }
        }
        if let Some(p) = &password {
            redactor.add("become-password", p);
        }

        let engine = Engine {
            plan,
            plan_hash: state::plan_hash(plan),
            state,
            secrets,
            redactor,
            hosts,
            only: only.to_vec(),
            parallel: parallel.max(1),
            captures: Mutex::new(BTreeMap::new()),
            overrides: BTreeMap::new(),
            warnings: Mutex::new(vec![]),
            resume,
            reporter,
            _control: control,
        };
        engine.restore_captures()?;
        Ok(engine)
    }

    /// Hides `value` from every log and record from now on.
    pub(crate) fn add_secret(&mut self, name: &str, value: &str) {
        self.redactor.add(name, value);
    }

    /// The nodes' pull password, written where the plan has its placeholder.
    pub(crate) fn set_pull_password(&mut self, password: Option<&str>) {
        if let Some(p) = password {
            self.add_secret("registry-pull-password", p);
            self.overrides
                .insert(crate::render::containerd::PULL_PASSWORD.into(), p.into());
        }
    }

    /// Closes every connection.
    pub(crate) async fn close(self) {
        for (_, h) in self.hosts {
            h.close().await;
        }
    }

    /// Captured values of earlier runs, from the records.
    fn restore_captures(&self) -> Result<(), Error> {
        let mut caps = self.captures.lock().expect("not poisoned");
        for h in &self.plan.hosts {
            let latest = self.state.latest(&h.name)?;
            for (_, step) in self.plan.host_steps(&h.name) {
                if let HostStep::Run {
                    capture: Some(name),
                    ..
                } = &step.action
                {
                    if let Some(v) = latest.get(&step.id).and_then(|r| r.capture.clone()) {
                        caps.entry(h.name.clone())
                            .or_default()
                            .insert(name.clone(), v);
                    }
                }
            }
        }
        Ok(())
    }

    /// `<runtime:NAME>` values: every host's captures (names are unique where used).
    fn runtime_values(&self) -> BTreeMap<String, String> {
        let caps = self.captures.lock().expect("not poisoned");
        let mut out = BTreeMap::new();
        for m in caps.values() {
            out.extend(m.clone());
        }
        out
    }

    /// Fills in secrets and runtime values.
    fn resolve(&self, text: &str) -> String {
        let mut values = self.secrets.values(&self.runtime_values());
        values.extend(self.overrides.clone());
        crate::secrets::fill(text, &values)
    }

    /// Runs one phase; returns (steps carried out, steps skipped).
    pub(crate) async fn run_phase(&self, phase: &Phase) -> Result<(usize, usize), Error> {
        let hosts: Vec<&HostSteps> = phase
            .hosts
            .iter()
            .filter(|h| self.only.is_empty() || self.only.contains(&h.host))
            .collect();
        if hosts.is_empty() {
            return Ok((0, 0));
        }
        let name = phase.name.as_str().to_string();
        self.reporter.event(&Event::PhaseStarted {
            phase: name.clone(),
            hosts: hosts.iter().map(|h| h.host.clone()).collect(),
        });
        for h in &hosts {
            self.host_event(phase.name, h, HostStatus::Waiting, 0, 0);
        }
        let preflight = phase.name == PhaseName::Preflight;
        let waves: BTreeSet<u32> = hosts.iter().map(|h| h.wave).collect();
        let sem = tokio::sync::Semaphore::new(self.parallel);
        let (mut ran, mut skipped) = (0, 0);
        let mut problems = Vec::new();
        for (i, wave) in waves.iter().enumerate() {
            let members: Vec<&HostSteps> =
                hosts.iter().copied().filter(|h| h.wave == *wave).collect();
            let results = join_all(members.iter().map(|h| async {
                let _permit = sem.acquire().await.expect("never closed");
                self.run_host(phase.name, h, preflight).await
            }))
            .await;
            let mut failed: Vec<(&HostSteps, Failure)> = Vec::new();
            for (h, r) in members.iter().zip(results) {
                let r = r?;
                ran += r.ran;
                skipped += r.skipped;
                problems.extend(r.problems);
                if let Some(f) = r.failure {
                    failed.push((h, f));
                }
            }
            if let Some((h, f)) = failed.first() {
                // Later waves do not start.
                for later in hosts
                    .iter()
                    .filter(|x| waves.iter().skip(i + 1).any(|w| *w == x.wave))
                {
                    self.host_event(phase.name, later, HostStatus::NotRun, 0, 0);
                }
                return Err(Error::StepFailed(Box::new(crate::error::StepFailure {
                    host: h.host.clone(),
                    phase: name,
                    step: f.step.clone(),
                    command: f.command.clone(),
                    exit_code: f.exit_code,
                    output_tail: f.tail.clone(),
                    log: self.state.log_path(&h.host),
                    resume: format!("{} --from {}", self.resume, phase.name.as_str()),
                    others: failed
                        .iter()
                        .skip(1)
                        .map(|(h, f)| format!("{}: {}", h.host, f.step))
                        .collect(),
                })));
            }
        }
        if preflight {
            problems.extend(self.unique_capture_problems());
            if !problems.is_empty() {
                return Err(Error::Preflight {
                    failures: problems,
                    resume: self.resume.clone(),
                });
            }
        }
        self.reporter.event(&Event::PhaseFinished {
            phase: name,
            ran,
            skipped,
        });
        Ok((ran, skipped))
    }

    /// Values that must differ between hosts but do not.
    fn unique_capture_problems(&self) -> Vec<String> {
        let caps = self.captures.lock().expect("not poisoned");
        let mut out = Vec::new();
        for name in &self.plan.unique_captures {
            let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (host, m) in caps.iter() {
                if let Some(v) = m.get(name).filter(|v| !v.trim().is_empty()) {
                    seen.entry(v.as_str()).or_default().push(host.as_str());
                }
            }
            for (v, hosts) in seen {
                if hosts.len() > 1 {
                    out.push(format!(
                        "{}: the same {name} `{}` (it must be unique)",
                        hosts.join(", "),
                        v.trim()
                    ));
                }
            }
        }
        out
    }

    fn host_event(
        &self,
        phase: PhaseName,
        h: &HostSteps,
        status: HostStatus,
        ran: usize,
        skipped: usize,
    ) {
        self.reporter.event(&Event::HostPhase {
            phase: phase.as_str().into(),
            host: h.host.clone(),
            status,
            ran,
            skipped,
            total: h.steps.len(),
        });
    }

    /// One host's steps of a phase, in order.
    async fn run_host(
        &self,
        phase: PhaseName,
        hs: &HostSteps,
        preflight: bool,
    ) -> Result<HostRun, Error> {
        let host = self
            .hosts
            .get(&hs.host)
            .expect("connected to every host taking part");
        let latest = self.state.latest(&hs.host)?;
        let mut pending = self.state.pending(&hs.host);
        let mut out = HostRun::default();
        let mut warned = false;
        self.host_event(phase, hs, HostStatus::Running, 0, 0);
        for step in &hs.steps {
            self.reporter.event(&Event::StepStarted {
                phase: phase.as_str().into(),
                host: hs.host.clone(),
                step: step.id.clone(),
                description: step.description.clone(),
            });
            let result = self
                .run_step(phase, host, step, latest.get(&step.id), &mut pending)
                .await?;
            self.reporter.event(&Event::StepFinished {
                phase: phase.as_str().into(),
                host: hs.host.clone(),
                step: step.id.clone(),
                status: result.status,
                reason: result.reason.clone(),
            });
            match result.status {
                StepStatus::Skipped => out.skipped += 1,
                StepStatus::Done => out.ran += 1,
                StepStatus::Warned => {
                    out.ran += 1;
                    warned = true;
                    let msg = format!(
                        "{}: {} ({})",
                        step.id,
                        last_lines(&result.output, 1),
                        step.description
                    );
                    self.warnings
                        .lock()
                        .expect("not poisoned")
                        .push(format!("{}: {msg}", hs.host));
                    self.reporter.event(&Event::Warning {
                        host: Some(hs.host.clone()),
                        message: msg,
                    });
                }
                StepStatus::Failed => {
                    out.ran += 1;
                    if preflight {
                        out.problems.push(format!(
                            "{}: {}: {}",
                            hs.host,
                            step.id,
                            last_lines(&result.output, 1)
                        ));
                        continue;
                    }
                    out.failure = Some(Failure {
                        step: step.id.clone(),
                        command: result.command,
                        exit_code: result.exit_code,
                        tail: last_lines(&result.output, FAILURE_TAIL_LINES),
                    });
                    break;
                }
            }
            self.host_event(phase, hs, HostStatus::Running, out.ran, out.skipped);
        }
        let status = if out.failure.is_some() || !out.problems.is_empty() {
            HostStatus::Failed
        } else if warned {
            HostStatus::Warned
        } else {
            HostStatus::Done
        };
        self.host_event(phase, hs, status, out.ran, out.skipped);
        Ok(out)
    }

    /// Carries out (or skips) one step and records it.
    async fn run_step(
        &self,
        phase: PhaseName,
        host: &SshHost,
        step: &Step,
        last: Option<&StepRecord>,
        pending: &mut BTreeSet<String>,
    ) -> Result<StepResult, Error> {
        let name = &host.target().name;
        let hash = state::step_hash(step);
        let started = state::now();
        let t0 = Instant::now();
        let finished_before = phase != PhaseName::Verify
            && last.is_some_and(|r| {
                r.step_hash == hash
                    && matches!(
                        r.status,
                        StepStatus::Done | StepStatus::Skipped | StepStatus::Warned
                    )
            });
        let mut result = match &step.action {
            HostStep::WriteFile {
                path,
                content,
                mode,
                owner,
            } => {
                let content = self.resolve(content);
                let command = format!("write {path} ({mode} {owner})");
                if let Some(p) = unresolved(&content) {
                    let why = match p.starts_with("<secret:") {
                        true => format!("{p} was not supplied: `bundle install` reads the pull password from {PULL_PASSWORD_ENV}"),
                        false => format!("{p} is not known yet: run the phase that captures it first (`--from init`)"),
                    };
                    StepResult::failed(command, None, why)
                } else if host
                    .file_matches(path, content.as_bytes(), mode, owner)
                    .await?
                {
                    StepResult::skipped(command, "already there")
                } else {
                    let out = host
                        .write_file(path, content.as_bytes(), mode, owner)
                        .await?;
                    if out.success() {
                        pending.insert(path.clone());
                        self.state.set_pending(name, pending)?;
                        StepResult::done(command, &out, &self.redactor)
                    } else {
                        StepResult::from_output(command, &out, &self.redactor, OnFailure::Stop)
                    }
                }
            }
            HostStep::CopyFromBundle { entries, dest } => {
                let command = format!("copy bundle entries {entries}* to {dest}");
                self.copy_from_bundle(host, entries, dest, command).await?
            }
            HostStep::Run {
                command,
                check,
                after_change_of,
                capture,
                on_failure,
            } => {
                let triggered: Vec<&String> = after_change_of
                    .iter()
                    .filter(|f| pending.contains(*f))
                    .collect();
                let mut skip = None;
                if triggered.is_empty() {
                    if let Some(check) = check {
                        let c = host.run(check, None).await?;
                        self.log(name, phase, step, &format!("check: {check}"), &c);
                        if c.success() {
                            skip = Some("check holds");
                        }
                    } else if finished_before
                        && (capture.is_none() || last.and_then(|r| r.capture.as_ref()).is_some())
                    {
                        skip = Some("finished before");
                    }
                }
                match skip {
                    Some(why) => {
                        let mut r = StepResult::skipped(command.clone(), why);
                        r.capture = last
                            .and_then(|l| l.capture.clone())
                            .filter(|_| capture.is_some());
                        r
                    }
                    None => {
                        let out = host.run(command, None).await?;
                        let mut r = StepResult::from_output(
                            command.clone(),
                            &out,
                            &self.redactor,
                            *on_failure,
                        );
                        if out.success() {
                            if capture.is_some() {
                                r.capture =
                                    Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
                            }
                            if !after_change_of.is_empty() {
                                for f in after_change_of {
                                    pending.remove(f);
                                }
                                self.state.set_pending(name, pending)?;
                            }
                        }
                        r
                    }
                }
            }
            HostStep::WaitFor {
                condition,
                timeout_secs,
            } => {
                if finished_before {
                    StepResult::skipped(condition.clone(), "finished before")
                } else {
                    let deadline = Instant::now() + Duration::from_secs(*timeout_secs);
                    loop {
                        let out = host.run(condition, None).await?;
                        if out.success() {
                            break StepResult::done(condition.clone(), &out, &self.redactor);
                        }
                        if Instant::now() >= deadline {
                            let mut r = StepResult::from_output(
                                condition.clone(),
                                &out,
                                &self.redactor,
                                OnFailure::Stop,
                            );
                            r.output = format!(
                                "{}\n(still failing after {timeout_secs}s)",
                                r.output.trim_end()
                            );
                            break r;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        };
        if let (
            Some(v),
            HostStep::Run {
                capture: Some(n), ..
            },
        ) = (&result.capture, &step.action)
        {
            self.captures
                .lock()
                .expect("not poisoned")
                .entry(name.clone())
                .or_default()
                .insert(n.clone(), v.clone());
        }
        result.output = self.redactor.redact(&result.output);
        self.state.log(
            name,
            &format!(
                "=== {started} [{}] {}: {}\n$ {}\n{}{}--- {} ({:.1}s)\n",
                phase.as_str(),
                step.id,
                step.description,
                result.command,
                result.output,
                if result.output.is_empty() || result.output.ends_with('\n') {
                    ""
                } else {
                    "\n"
                },
                match (result.status, &result.reason, result.exit_code) {
                    (StepStatus::Skipped, Some(r), _) => format!("skipped: {r}"),
                    (_, _, Some(c)) => format!("exit {c}"),
                    (s, _, None) => format!("{s:?}").to_lowercase(),
                },
                t0.elapsed().as_secs_f64()
            ),
        );
        let output = tail_bytes(&result.output, state::RECORD_OUTPUT_MAX);
        self.state.append(
            name,
            &StepRecord {
                plan_hash: self.plan_hash.clone(),
                phase: phase.as_str().into(),
                step: step.id.clone(),
                step_hash: hash,
                status: result.status,
                reason: result.reason.clone(),
                started,
                finished: state::now(),
                exit_code: result.exit_code,
                output,
                capture: result.capture.clone(),
            },
        )?;
        Ok(result)
    }

    fn log(&self, host: &str, phase: PhaseName, step: &Step, what: &str, out: &Output) {
        self.state.log(
            host,
            &format!(
                "--- {} [{}] {} {what}: exit {}\n{}",
                state::now(),
                phase.as_str(),
                step.id,
                out.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into()),
                self.redactor.redact(&out.text())
            ),
        );
    }

    /// Copies the extracted repository folder to the host as a tar stream, unless the
    /// host already has this exact tree (a digest file beside it says so).
    async fn copy_from_bundle(
        &self,
        host: &SshHost,
        entries: &str,
        dest: &str,
        command: String,
    ) -> Result<StepResult, Error> {
        let src = self.state.repo_dir().join(entries.trim_end_matches('/'));
        let tarball = {
            let s2 = src.clone();
            tokio::task::spawn_blocking(move || tar_folder(&s2))
                .await
                .expect("tar does not panic")
                .map_err(|e| Error::State {
                    path: src.clone(),
                    detail: format!("cannot read the extracted repository: {e}"),
                })?
        };
        let digest = bundle_format::Sha256Digest::of(&tarball).hex();
        let marker = format!("{}/.bundle-tree-sha256", dest.trim_end_matches('/'));
        if host
            .file_matches(&marker, digest.as_bytes(), "0644", "root:root")
            .await?
        {
            return Ok(StepResult::skipped(command, "already there"));
        }
        let d = crate::exec::shell_quote(dest);
        let out = host
            .run(
                &format!("set -e; rm -rf {d}; mkdir -p {d}; tar -C {d} --no-same-owner -xf -; chmod -R u=rwX,go=rX {d}"),
                Some(&tarball),
            )
            .await?;
        if !out.success() {
            return Ok(StepResult::from_output(
                command,
                &out,
                &self.redactor,
                OnFailure::Stop,
            ));
        }
        let out = host
            .write_file(&marker, digest.as_bytes(), "0644", "root:root")
            .await?;
        Ok(StepResult::from_output(
            command,
            &out,
            &self.redactor,
            OnFailure::Stop,
        ))
    }
}

/// A deterministic tar of a folder (sorted, no times or owners).
// The repository is bounded by the bundle and held in memory once per copy; the
// deploy-node server (`servedBy: deploy`) avoids the copy altogether.
fn tar_folder(src: &Path) -> std::io::Result<Vec<u8>> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && !e.file_name().to_string_lossy().ends_with(".partial") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let data = std::fs::read(&f)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, rel, data.as_slice())?;
    }
    b.into_inner()
}

/// A placeholder left in a file about to be written: a runtime value not captured
/// yet, or a secret nobody supplied.
fn unresolved(text: &str) -> Option<&str> {
    let i = text.find("<runtime:").or_else(|| text.find("<secret:"))?;
    let end = text[i..].find('>')? + i + 1;
    Some(&text[i..end])
}

fn tail_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

#[derive(Debug)]
struct StepResult {
    status: StepStatus,
    reason: Option<String>,
    command: String,
    exit_code: Option<i32>,
    output: String,
    capture: Option<String>,
}

impl StepResult {
    fn skipped(command: String, why: &str) -> Self {
        StepResult {
            status: StepStatus::Skipped,
            reason: Some(why.into()),
            command,
            exit_code: None,
            output: String::new(),
            capture: None,
        }
    }

    fn done(command: String, out: &Output, r: &Redactor) -> Self {
        StepResult {
            status: StepStatus::Done,
            reason: None,
            command,
            exit_code: out.code,
            output: r.redact(&out.text()),
            capture: None,
        }
    }

    fn failed(command: String, code: Option<i32>, output: String) -> Self {
        StepResult {
            status: StepStatus::Failed,
            reason: None,
            command,
            exit_code: code,
            output,
            capture: None,
        }
    }

    fn from_output(command: String, out: &Output, r: &Redactor, on_failure: OnFailure) -> Self {
        let mut s = Self::done(command, out, r);
        if !out.success() {
            s.status = match on_failure {
                OnFailure::Stop => StepStatus::Failed,
                OnFailure::Warn => StepStatus::Warned,
            };
        }
        s
    }
}
