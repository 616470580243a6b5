//! `bundle install` without `--dry-run`: verify, plan, push the images, then carry
//! the plan out on every host over SSH ([`crate::run`]), recording each step in the
//! state folder so a re-run resumes.

use std::path::{Path, PathBuf};

use super::common::{confirm_plan_change, connect, open_state, record_plan, NodeSecrets};
use super::prepare::{prepare, Prepared, Sources};
use super::push::{push_images, ImagePush};
use crate::plan::{PhaseName, Plan};
use crate::report::{Event, Reporter};
use crate::run::runtime;
use crate::run::RunOptions;
use crate::state::StateDir;
use crate::Error;

/// What `bundle install` needs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// `cluster.yaml`.
    pub inventory: PathBuf,
    /// The trusted public key.
    pub pubkey: PathBuf,
    /// The state folder (default: [`super::default_state_dir`]).
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

/// Verifies, plans and installs. See the module documentation.
pub fn apply(opts: &ApplyOptions, reporter: &dyn Reporter) -> Result<ApplyOutcome, Error> {
    runtime()?.block_on(apply_async(opts, reporter))
}

async fn apply_async(opts: &ApplyOptions, reporter: &dyn Reporter) -> Result<ApplyOutcome, Error> {
    // The inventory first, to find the state folder; then verification extracts the
    // yum repository into it.
    let inventory = crate::Inventory::load(&opts.inventory)?;
    // Before the bundle's verification, which can take minutes.
    let node_secrets = NodeSecrets::read(&inventory, &opts.inventory)?;
    let (state, _lock) = open_state(opts.state.as_deref(), &opts.inventory, &inventory)?;
    let prepared = prepare_blocking(opts, &state).await?;
    let plan = &prepared.plan;
    report_planned(&prepared, &state, reporter);
    super::common::check_only(&opts.only, plan, &opts.inventory)?;
    confirm_plan_change(&state, plan, opts.yes, reporter)?;
    let secrets = record_plan(&state, plan)?;

    let run = RunOptions {
        parallel: opts.parallel,
        from: opts.from,
        only: opts.only.clone(),
        become_password: opts.become_password.clone(),
        resume: resume_command(opts, state.root()),
    };
    let mut engine = connect(&prepared, &state, &secrets, &run, reporter).await?;
    node_secrets.give_to(&mut engine);
    let job = ImagePush {
        bundle: &opts.bundle,
        pubkey: &opts.pubkey,
        inventory: &opts.inventory,
        cluster: &prepared.cluster,
        pull_password: node_secrets.pull_password.as_deref(),
        skip_push: opts.skip_push,
    };
    let result = async {
        push_images(&job, reporter).await?;
        let counts = engine.execute(run.from).await?;
        let first = prepared.cluster.first_master().name.clone();
        super::common::keep_admin_kubeconfig(&engine, &first, &state, reporter).await;
        if opts.drill {
            super::drill::drill(&engine, &prepared.cluster).await?;
        }
        Ok::<_, Error>(counts)
    }
    .await;
    let warnings = engine.warnings();
    engine.close().await;
    let (ran, skipped) = result?;
    // The hosts and the cluster have it since the verify phase.
    prepared.release.write(state.root())?;
    Ok(ApplyOutcome {
        plan: prepared.plan,
        state: state.root().to_path_buf(),
        ran,
        skipped,
        warnings,
    })
}

/// Verifies and plans on a blocking thread (verification reads the whole bundle),
/// extracting the yum repository into the state folder.
async fn prepare_blocking(opts: &ApplyOptions, state: &StateDir) -> Result<Prepared, Error> {
    let (inventory, bundle, pubkey) = (
        opts.inventory.clone(),
        opts.bundle.clone(),
        opts.pubkey.clone(),
    );
    let (force, repo_dir) = (opts.force, state.repo_dir());
    tokio::task::spawn_blocking(move || {
        let src = Sources {
            inventory: &inventory,
            bundle: &bundle,
            pubkey: &pubkey,
            force,
        };
        prepare(src, Some(&repo_dir))
    })
    .await
    .expect("verification does not panic")
}

fn report_planned(prepared: &Prepared, state: &StateDir, reporter: &dyn Reporter) {
    for w in &prepared.warnings {
        reporter.event(&Event::Warning {
            host: None,
            message: w.to_string(),
        });
    }
    let plan = &prepared.plan;
    reporter.event(&Event::Planned {
        bundle: plan.bundle.clone(),
        entries: prepared.entries_verified,
        steps: plan.step_count(),
        hosts: plan.hosts.len(),
        state: state.root().display().to_string(),
    });
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
