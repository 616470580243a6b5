//! `bundle nodes add`: join a worker added to the inventory after the install, with a
//! fresh bootstrap token made on the first master (never logged).

use super::apply::ApplyOptions;
use super::common::{confirm_plan_change, connect, pull_password, record_plan, Installed};
use super::prepare::{prepare, Sources};
use crate::inventory::Cluster;
use crate::plan::{Phase, PhaseName, Plan};
use crate::report::{Event, Reporter};
use crate::run::{serve_repo, Engine, RunOptions};
use crate::secrets::Secret;
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
    crate::run::runtime()?.block_on(add_async(opts, reporter))
}

async fn add_async(opts: &AddOptions, reporter: &dyn Reporter) -> Result<AddOutcome, Error> {
    let o = &opts.install;
    let installed = Installed::open(&o.inventory, o.state.as_deref())?;
    let pull_password = pull_password(&installed.inventory)?;
    let state = &installed.state;
    let src = Sources {
        inventory: &o.inventory,
        bundle: &o.bundle,
        pubkey: &o.pubkey,
        force: o.force,
    };
    let prepared = prepare(src, Some(&state.repo_dir()))?;
    let plan = &prepared.plan;
    let first = check_new_worker(plan, &prepared.cluster, opts)?;
    confirm_plan_change(state, plan, true, reporter)?;
    let secrets = record_plan(state, plan)?;

    let run = RunOptions {
        parallel: o.parallel,
        from: None,
        only: vec![first.clone(), opts.host.clone()],
        become_password: o.become_password.clone(),
        resume: format!(
            "bundle nodes add {} --inventory {} --pubkey {} {}",
            o.bundle.display(),
            o.inventory.display(),
            o.pubkey.display(),
            opts.host
        ),
    };
    let mut engine = connect(&prepared, state, &secrets, &run, reporter).await?;
    engine.set_pull_password(pull_password.as_deref());
    let result = async {
        fresh_token(&mut engine, &first, state).await?;
        let _server = serve_repo(plan, state, reporter).await?;
        let (mut ran, mut skipped) = (0, 0);
        for phase in sub_plan(plan, &opts.host, &first).phases {
            let (r, s) = engine.run_phase(&phase).await?;
            ran += r;
            skipped += s;
        }
        Ok(AddOutcome { ran, skipped })
    }
    .await;
    engine.close().await;
    result
}

/// The host to add must be a worker of the plan; returns the first master's name.
fn check_new_worker(plan: &Plan, cluster: &Cluster, opts: &AddOptions) -> Result<String, Error> {
    let Some(new) = plan.hosts.iter().find(|h| h.name == opts.host) else {
        return Err(Error::UnknownHost {
            host: opts.host.clone(),
            inventory: opts.install.inventory.clone(),
        });
    };
    if new.roles.iter().any(|r| r == "master") {
        return Err(Error::NodesAddMaster {
            host: opts.host.clone(),
        });
    }
    Ok(cluster.first_master().name.clone())
}

/// A fresh bootstrap token made on `first` (the install's expires after 24 hours),
/// filled in where the plan has the token's placeholder and hidden from every output.
async fn fresh_token(engine: &mut Engine<'_>, first: &str, state: &StateDir) -> Result<(), Error> {
    let command = "kubeadm token create --ttl 2h0m0s";
    let out = engine
        .host(first)
        .expect("the first master is connected")
        .run(command, None)
        .await?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.success() || token.is_empty() {
        return Err(Error::StepFailed(Box::new(crate::error::StepFailure {
            host: first.into(),
            phase: "join".into(),
            step: "nodes/token".into(),
            command: command.into(),
            exit_code: out.code,
            output_tail: crate::exec::last_lines(&String::from_utf8_lossy(&out.stderr), 15),
            log: state.log_path(first),
            resume: "run the same command again".into(),
            others: vec![],
        })));
    }
    engine.add_secret("fresh-bootstrap-token", &token);
    engine.fill_in(Secret::BootstrapToken.placeholder(), token);
    engine.reporter.event(&Event::Note {
        message: format!("made a fresh bootstrap token on `{first}` (valid 2 hours)"),
    });
    Ok(())
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
