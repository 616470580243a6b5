//! `bundle nodes add`: join a worker added to the inventory after the install, with a
//! fresh bootstrap token made on the first master (never logged).

use super::apply::{ApplyOptions, Engine};
use super::report::{Event, Reporter};
use crate::plan::{Phase, PhaseName, Plan};
use crate::secrets::{Secret, Secrets};
use crate::state::StateDir;
use crate::Error;

/// What `bundle nodes add` needs: the install's options and the new host.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// Bundle, inventory (with the new host), key, state folder, sudo password.
    pub install: ApplyOptions,
    /// The new worker's name in the inventory.
    pub host: String,
}

/// What was done.
#[derive(Debug)]
pub struct AddOutcome {
    /// Steps carried out.
    pub ran: usize,
    /// Steps skipped.
    pub skipped: usize,
}

/// Joins `host` as a worker: its preflight, repo, os, containerd and join phases,
/// then the cluster checks.
pub fn add(opts: &AddOptions, reporter: &dyn Reporter) -> Result<AddOutcome, Error> {
    super::apply::runtime()?.block_on(add_async(opts, reporter))
}

async fn add_async(opts: &AddOptions, reporter: &dyn Reporter) -> Result<AddOutcome, Error> {
    let o = &opts.install;
    let inventory = crate::Inventory::load(&o.inventory)?;
    let pull_password = super::apply::pull_password(&inventory)?;
    let root = o
        .state
        .clone()
        .unwrap_or_else(|| super::apply::default_state_dir(&o.inventory, &inventory.metadata.name));
    let state = StateDir::open(&root)?;
    let _lock = state.lock()?;
    if state.applied_plan()?.is_none() {
        return Err(Error::State {
            path: root.clone(),
            detail:
                "no install was recorded here: install the cluster first (or pass its `--state`)"
                    .into(),
        });
    }
    let prepared = super::prepare(
        &o.inventory,
        &o.bundle,
        &o.pubkey,
        o.force,
        Some(&state.repo_dir()),
    )?;
    let plan = prepared.plan;
    let Some(new) = plan.hosts.iter().find(|h| h.name == opts.host) else {
        return Err(Error::UnknownHost {
            host: opts.host.clone(),
            inventory: o.inventory.clone(),
        });
    };
    if new.roles.iter().any(|r| r == "master") {
        return Err(Error::NodesAddMaster {
            host: opts.host.clone(),
        });
    }
    let first = prepared.cluster.first_master().name.clone();
    super::apply::confirm_plan_change(&state, &plan, true, reporter)?;
    let secrets = Secrets::load_or_create(&root.join("secrets.json"))?;
    crate::plan::write_plan_dir(&plan, &root)?;
    state.set_applied_plan(&plan)?;

    let only = vec![first.clone(), opts.host.clone()];
    let mut engine = Engine::connect(
        &plan,
        &state,
        &secrets,
        &prepared.inventory,
        &o.inventory,
        &only,
        o.parallel,
        o.become_password.clone(),
        format!(
            "bundle nodes add {} --inventory {} --pubkey {} {}",
            o.bundle.display(),
            o.inventory.display(),
            o.pubkey.display(),
            opts.host
        ),
        reporter,
    )
    .await?;
    engine.set_pull_password(pull_password.as_deref());

    // A fresh token: the install's expires after 24 hours.
    let out = engine.hosts[&first]
        .run("kubeadm token create --ttl 2h0m0s", None)
        .await?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.success() || token.is_empty() {
        return Err(Error::StepFailed(Box::new(crate::error::StepFailure {
            host: first.clone(),
            phase: "join".into(),
            step: "nodes/token".into(),
            command: "kubeadm token create --ttl 2h0m0s".into(),
            exit_code: out.code,
            output_tail: crate::exec::last_lines(&String::from_utf8_lossy(&out.stderr), 15),
            log: state.log_path(&first),
            resume: "run the same command again".into(),
            others: vec![],
        })));
    }
    engine.add_secret("fresh-bootstrap-token", &token);
    engine
        .overrides
        .insert(Secret::BootstrapToken.placeholder(), token);
    reporter.event(&Event::Note {
        message: format!("made a fresh bootstrap token on `{first}` (valid 2 hours)"),
    });

    let _server = match &plan.repo_served_by_deploy {
        Some(r) => Some(
            crate::repo_server::RepoServer::start(
                &format!("{}:{}", r.bind, r.port),
                &state.repo_dir().join("rpms"),
            )
            .await?,
        ),
        None => None,
    };

    let (mut ran, mut skipped) = (0, 0);
    for phase in sub_plan(&plan, &opts.host, &first).phases {
        let (r, s) = engine.run_phase(&phase).await?;
        ran += r;
        skipped += s;
    }
    engine.close().await;
    Ok(AddOutcome { ran, skipped })
}

/// The new host's steps up to its join, then the first master's cluster checks.
fn sub_plan(plan: &Plan, host: &str, first: &str) -> Plan {
    let mut p = plan.clone();
    p.phases = plan
        .phases
        .iter()
        .filter(|ph| {
            ph.name != PhaseName::Lb && ph.name != PhaseName::Init && ph.name != PhaseName::Cni
        })
        .map(|ph| Phase {
            name: ph.name,
            hosts: ph
                .hosts
                .iter()
                .filter(|h| h.host == host || (ph.name == PhaseName::Verify && h.host == first))
                .cloned()
                .collect(),
        })
        .collect();
    p
}
