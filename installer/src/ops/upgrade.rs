//! `bundle upgrade NEW_BUNDLE`: carry an installed cluster to the next bundle.
//!
//! The new bundle is verified (its repository extracted beside the installed one) and
//! held against the installed release by [`crate::upgrade::gate`]; a refused bundle
//! leaves the hosts, the registry and the state folder as they were. Then the images
//! are pushed (the registry skips what it has), the plan of [`crate::plan::upgrade()`]
//! runs, and an etcd snapshot is taken to the deploy node before the control plane is
//! touched. `upgrade.json` in the state folder says an upgrade is under way: a re-run
//! with the same bundle goes on (finished steps are skipped, the snapshot is not taken
//! again), another bundle is refused until it finished. Once it did, the new release is
//! recorded and the new bundle's install plan becomes the cluster's.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::backup::{backup_installed, BackupJob};
use super::common::{Installed, NodeSecrets};
use super::prepare::{prepare, Prepared, Sources};
use super::push::{push_images, ImagePush};
use crate::plan::{PhaseName, Plan};
use crate::release::Release;
use crate::report::{Event, Reporter};
use crate::run::{serve_repo, Engine, RunOptions};
use crate::state::StateDir;
use crate::upgrade::{gate, Change, GateOptions};
use crate::Error;

/// The upgrade under way, in the state folder.
pub const UPGRADE_FILE: &str = "upgrade.json";
/// Where the upgrade's plan folder is written in the state folder.
pub const PLAN_DIR: &str = "upgrade";

/// What `bundle upgrade` needs.
#[derive(Debug, Clone)]
pub struct UpgradeOptions {
    /// The new bundle.
    pub bundle: PathBuf,
    /// `cluster.yaml`.
    pub inventory: PathBuf,
    /// The key the new bundle must be signed with.
    pub pubkey: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// Workers drained at the same time.
    pub parallel: usize,
    /// What the gate lets through besides a newer release.
    pub gate: GateOptions,
    /// Contact no host: write the plan here.
    pub plan_out: Option<PathBuf>,
    /// Start at this phase of the upgrade plan; earlier ones are taken as done.
    pub from: Option<PhaseName>,
    /// Do not ask.
    pub yes: bool,
    /// Do not push the images (they are in the registry already).
    pub skip_push: bool,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// What an upgrade did (or, with `plan_out`, would do).
#[derive(Debug)]
pub struct UpgradeOutcome {
    /// The installed release.
    pub from: Release,
    /// The release upgraded to.
    pub to: Release,
    /// What kind of change.
    pub change: Change,
    /// The upgrade's plan.
    pub plan: Plan,
    /// The snapshot taken before the control plane was touched.
    pub backup: Option<PathBuf>,
    /// Steps carried out.
    pub ran: usize,
    /// Steps skipped.
    pub skipped: usize,
}

/// `upgrade.json`: an upgrade under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnderWay {
    /// The release it goes to.
    to: Release,
    /// Its etcd snapshot, once taken.
    backup: Option<PathBuf>,
}

/// Upgrades. See the module documentation.
pub fn upgrade(opts: &UpgradeOptions, reporter: &dyn Reporter) -> Result<UpgradeOutcome, Error> {
    crate::run::runtime()?.block_on(upgrade_async(opts, reporter))
}

async fn upgrade_async(
    opts: &UpgradeOptions,
    reporter: &dyn Reporter,
) -> Result<UpgradeOutcome, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let node_secrets = NodeSecrets::read(&installed.inventory, &opts.inventory)?;
    let state = &installed.state;
    let from = Release::read(state.root())?.ok_or_else(|| Error::NoRelease {
        state: state.root().to_path_buf(),
    })?;
    let staging = state.internal().join("repo.upgrade");
    let checked = async {
        let prepared = prepare_into(opts, &staging).await?;
        let change = admit(state, &from, &prepared.release, opts)?;
        let plan = crate::plan::upgrade(
            &prepared.cluster,
            &prepared.facts,
            &prepared.inputs,
            opts.parallel,
        )
        .map_err(|problems| Error::Inventory {
            path: opts.inventory.clone(),
            problems: crate::Problems(problems),
        })?;
        Ok::<_, Error>((prepared, change, plan))
    }
    .await;
    let (prepared, change, plan) = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut outcome = UpgradeOutcome {
        from,
        to: prepared.release.clone(),
        change,
        plan,
        backup: None,
        ran: 0,
        skipped: 0,
    };
    if let Some(dir) = &opts.plan_out {
        let _ = std::fs::remove_dir_all(&staging);
        crate::plan::write_plan_dir(&outcome.plan, dir)?;
        return Ok(outcome);
    }
    confirm(&outcome, opts, reporter)?;
    swap_repo(state, &staging)?;
    carry_out(
        &installed,
        &prepared,
        &mut outcome,
        opts,
        &node_secrets,
        reporter,
    )
    .await?;
    finish(state, &prepared)?;
    Ok(outcome)
}

/// Verifies the new bundle on a blocking thread, extracting its repository into
/// `staging` (the installed one stays until the upgrade is admitted).
async fn prepare_into(opts: &UpgradeOptions, staging: &Path) -> Result<Prepared, Error> {
    let _ = std::fs::remove_dir_all(staging);
    let (inventory, bundle, pubkey, staging) = (
        opts.inventory.clone(),
        opts.bundle.clone(),
        opts.pubkey.clone(),
        staging.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        let src = Sources {
            inventory: &inventory,
            bundle: &bundle,
            pubkey: &pubkey,
            force: true,
        };
        prepare(src, Some(&staging))
    })
    .await
    .expect("verification does not panic")
}

/// The gate, and no other upgrade half done.
fn admit(
    state: &StateDir,
    from: &Release,
    to: &Release,
    opts: &UpgradeOptions,
) -> Result<Change, Error> {
    if let Some(under_way) = read_under_way(state)? {
        if under_way.to.index_sha256 != to.index_sha256 {
            return Err(Error::UpgradeUnfinished {
                target: format!("{} {}", under_way.to.bundle, under_way.to.version),
                offered: format!("{} {}", to.bundle, to.version),
                state: state.root().to_path_buf(),
            });
        }
    }
    gate::check(from, to, &opts.gate).map_err(Error::UpgradeRefused)
}

fn confirm(
    outcome: &UpgradeOutcome,
    opts: &UpgradeOptions,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let what = format!(
        "upgrading `{}` from {} {} to {} {} (Kubernetes {} → {})",
        outcome.plan.cluster,
        outcome.from.bundle,
        outcome.from.version,
        outcome.to.bundle,
        outcome.to.version,
        outcome.from.kubernetes_version,
        outcome.to.kubernetes_version
    );
    if opts.yes || reporter.confirm(&format!("Go ahead with {what}?")) {
        Ok(())
    } else {
        Err(Error::NotConfirmed { what })
    }
}

/// The new repository replaces the installed one in the state folder.
fn swap_repo(state: &StateDir, staging: &Path) -> Result<(), Error> {
    let repo = state.repo_dir();
    let old = state.internal().join("repo.old");
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::State { path, source }
    };
    let _ = std::fs::remove_dir_all(&old);
    if repo.exists() {
        std::fs::rename(&repo, &old).map_err(err(&repo))?;
    }
    std::fs::rename(staging, &repo).map_err(err(staging))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Pushes, then runs the phases, the snapshot before the control plane's.
async fn carry_out(
    installed: &Installed,
    prepared: &Prepared,
    outcome: &mut UpgradeOutcome,
    opts: &UpgradeOptions,
    node_secrets: &NodeSecrets,
    reporter: &dyn Reporter,
) -> Result<(), Error> {
    let state = &installed.state;
    let mut under_way = read_under_way(state)?.unwrap_or(UnderWay {
        to: outcome.to.clone(),
        backup: None,
    });
    write_under_way(state, &under_way)?;
    let plan = &outcome.plan;
    crate::plan::write_plan_dir(plan, &state.root().join(PLAN_DIR))?;
    let secrets = installed.secrets(plan)?;
    let run = RunOptions {
        parallel: 10,
        from: None,
        only: vec![],
        become_password: opts.become_password.clone(),
        resume: resume_command(opts),
    };
    let mut engine = installed
        .engine(plan, &secrets, &opts.inventory, &run, reporter)
        .await?;
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
        let _server = serve_repo(plan, state, reporter).await?;
        let (mut ran, mut skipped) = (0, 0);
        for phase in &plan.phases {
            if phase.name == PhaseName::Upgrade && under_way.backup.is_none() {
                under_way.backup = Some(snapshot(installed, opts, reporter).await?);
                write_under_way(state, &under_way)?;
            }
            if skipped_by_from(plan, phase.name, opts.from) {
                continue;
            }
            let (r, s) = engine.run_phase(phase).await?;
            ran += r;
            skipped += s;
        }
        let first = prepared.cluster.first_master().name.clone();
        super::common::keep_admin_kubeconfig(&engine, &first, state, reporter).await;
        Ok::<_, Error>((ran, skipped))
    }
    .await;
    if result.is_err() {
        report_cordoned(&engine, plan, reporter).await;
    }
    engine.close().await;
    (outcome.ran, outcome.skipped) = result?;
    outcome.backup = under_way.backup;
    Ok(())
}

/// `--from`: the phases of the plan before it are taken as done.
fn skipped_by_from(plan: &Plan, phase: PhaseName, from: Option<PhaseName>) -> bool {
    let at = |name| plan.phases.iter().position(|p| p.name == name);
    from.is_some_and(|f| at(phase) < at(f))
}

/// The etcd snapshot, copied to the deploy node, before the control plane changes.
async fn snapshot(
    installed: &Installed,
    opts: &UpgradeOptions,
    reporter: &dyn Reporter,
) -> Result<PathBuf, Error> {
    let job = BackupJob {
        inventory_path: &opts.inventory,
        output: None,
        keep: None,
        become_password: opts.become_password.clone(),
    };
    let taken = backup_installed(installed, &job, reporter).await?;
    reporter.event(&Event::Warning {
        host: None,
        message: format!(
            "etcd snapshot taken before the upgrade: {} (restore it with `bundle restore` if the upgrade must be undone)",
            taken.dir.display()
        ),
    });
    Ok(taken.dir)
}

/// After a failure: the nodes left cordoned, and how to go on.
async fn report_cordoned(engine: &Engine<'_>, plan: &Plan, reporter: &dyn Reporter) {
    let Some(first) = plan.phases.iter().find_map(|p| {
        (p.name == PhaseName::Nodes)
            .then(|| p.hosts.first().map(|h| h.host.clone()))
            .flatten()
    }) else {
        return;
    };
    let Some(host) = engine.host(&first) else {
        return;
    };
    let command = format!(
        "{} get nodes --no-headers | awk '$2 ~ /SchedulingDisabled/ {{print $1}}'",
        crate::plan::kubectl()
    );
    let Ok(out) = host.run(&command, None).await else {
        return;
    };
    for node in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        reporter.event(&Event::Warning {
            host: Some(node.to_string()),
            message: format!("`{node}` is cordoned: it was drained for the upgrade. Running the same `bundle upgrade` again goes on from it; `kubectl uncordon {node}` puts it back in service as it is"),
        });
    }
}

/// The release recorded, the new install plan the cluster's, the upgrade no longer
/// under way.
fn finish(state: &StateDir, prepared: &Prepared) -> Result<(), Error> {
    prepared.release.write(state.root())?;
    state.set_applied_plan(&prepared.plan)?;
    let path = state.root().join(UPGRADE_FILE);
    std::fs::remove_file(&path).map_err(|source| Error::State { path, source })
}

fn read_under_way(state: &StateDir) -> Result<Option<UnderWay>, Error> {
    crate::state::read_record(&state.root().join(UPGRADE_FILE))
}

fn write_under_way(state: &StateDir, under_way: &UnderWay) -> Result<(), Error> {
    crate::state::write_record(&state.root().join(UPGRADE_FILE), under_way)
}

/// The command that goes on with this upgrade.
fn resume_command(opts: &UpgradeOptions) -> String {
    let q = |p: &Path| crate::exec::shell_quote(&p.display().to_string());
    let mut s = format!(
        "bundle upgrade {} --inventory {} --pubkey {} --yes --skip-push",
        q(&opts.bundle),
        q(&opts.inventory),
        q(&opts.pubkey)
    );
    if let Some(state) = &opts.state {
        s.push_str(&format!(" --state {}", q(state)));
    }
    if opts.parallel != 1 {
        s.push_str(&format!(" --parallel {}", opts.parallel));
    }
    if opts.gate.allow_downgrade {
        s.push_str(" --allow-downgrade");
    }
    if let Some(k) = &opts.gate.new_key {
        s.push_str(&format!(" --new-key {k}"));
    }
    s
}
