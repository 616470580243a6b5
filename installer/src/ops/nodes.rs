//! `bundle nodes add`: join a host added to the inventory after the install, with a
//! fresh bootstrap token made on the first master (never logged). A master also gets
//! the control plane's certificates uploaded again under a fresh certificate key, and
//! every master's load balancer is configured again for it (see [`crate::plan::addition`]).

use super::apply::ApplyOptions;
use super::common::{confirm_plan_change, connect, record_plan, Installed, NodeSecrets};
use super::prepare::{prepare, Sources};
use crate::inventory::Cluster;
use crate::plan::{addition, Plan};
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
    let node_secrets = NodeSecrets::read(&installed.inventory, &o.inventory)?;
    let state = &installed.state;
    let src = Sources {
        inventory: &o.inventory,
        bundle: &o.bundle,
        pubkey: &o.pubkey,
        force: o.force,
    };
    let prepared = prepare(src, Some(&state.repo_dir()))?;
    let plan = &prepared.plan;
    let (first, master) = check_new_host(plan, &prepared.cluster, opts)?;
    let sub = addition(plan, &prepared.cluster, &opts.host);
    confirm_plan_change(state, plan, true, reporter)?;
    let secrets = record_plan(state, plan)?;

    let run = RunOptions {
        parallel: o.parallel,
        from: None,
        only: sub.hosts_taking_part(),
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
    node_secrets.give_to(&mut engine);
    let result = async {
        fresh_token(&mut engine, &first, state).await?;
        if master {
            fresh_certificate_key(&mut engine, &first, state, &plan.kubeadm_api_version).await?;
        }
        let _server = serve_repo(plan, state, reporter).await?;
        let (mut ran, mut skipped) = (0, 0);
        for phase in sub.phases {
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

/// The host to add must be in the plan; returns the first master's name and whether
/// the host is a master.
fn check_new_host(
    plan: &Plan,
    cluster: &Cluster,
    opts: &AddOptions,
) -> Result<(String, bool), Error> {
    let Some(new) = plan.hosts.iter().find(|h| h.name == opts.host) else {
        return Err(Error::UnknownHost {
            host: opts.host.clone(),
            inventory: opts.install.inventory.clone(),
        });
    };
    if new.roles.iter().any(|r| r == "etcd") {
        return Err(Error::NotWithExternalEtcd {
            operation: format!("`bundle nodes add` of the etcd host `{}`", opts.host),
            by_hand: "add the member with `etcdctl member add` on a healthy etcd host, then start it with --initial-cluster-state=existing (etcd's runtime reconfiguration guide); its certificates come from the same CA (`etcd-pki/ca.*` in the state folder's secrets.json)".into(),
        });
    }
    let master = new.roles.iter().any(|r| r == "master");
    Ok((cluster.first_master().name.clone(), master))
}

/// A fresh bootstrap token made on `first` (the install's expires after 24 hours),
/// filled in where the plan has the token's placeholder and hidden from every output.
async fn fresh_token(engine: &mut Engine<'_>, first: &str, state: &StateDir) -> Result<(), Error> {
    let command = "kubeadm token create --ttl 2h0m0s";
    let out = on_first(engine, first, state, ("nodes/token", command), None, true).await?;
    let token = out.trim().to_string();
    engine.add_secret("fresh-bootstrap-token", &token);
    engine.fill_in(Secret::BootstrapToken.placeholder(), token);
    engine.reporter.event(&Event::Note {
        message: format!("made a fresh bootstrap token on `{first}` (valid 2 hours)"),
    });
    Ok(())
}

/// The control plane's certificates uploaded again on `first` under a fresh key (kubeadm
/// deletes them two hours after an upload, and the install's key is not reused), filled
/// in where the plan has the key's placeholder. The key travels in a configuration on
/// standard input, never in a command line.
async fn fresh_certificate_key(
    engine: &mut Engine<'_>,
    first: &str,
    state: &StateDir,
    kubeadm_api: &str,
) -> Result<(), Error> {
    let key = crate::secrets::Secrets::generate()?
        .get(Secret::CertificateKey)
        .to_string();
    engine.add_secret("fresh-certificate-key", &key);
    let config = format!(
        "apiVersion: {}\nkind: InitConfiguration\ncertificateKey: \"{key}\"\n",
        kubeadm_api
    );
    let command = "f=$(mktemp) && trap 'rm -f \"$f\"' EXIT && chmod 0600 \"$f\" && cat >\"$f\" && kubeadm init phase upload-certs --upload-certs --config \"$f\" >/dev/null";
    let step = ("nodes/upload-certs", command);
    on_first(engine, first, state, step, Some(config.as_bytes()), false).await?;
    engine.fill_in(Secret::CertificateKey.placeholder(), key);
    engine.reporter.event(&Event::Note {
        message: format!("uploaded the control plane's certificates on `{first}` under a fresh certificate key (valid 2 hours)"),
    });
    Ok(())
}

/// Runs `(step id, command)` on the first master: its standard output, or the failure
/// as a step's (also when it `prints` nothing though it should).
async fn on_first(
    engine: &Engine<'_>,
    first: &str,
    state: &StateDir,
    (step, command): (&str, &str),
    stdin: Option<&[u8]>,
    prints: bool,
) -> Result<String, Error> {
    let out = engine
        .host(first)
        .expect("the first master is connected")
        .run(command, stdin)
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.success() && !(prints && stdout.trim().is_empty()) {
        return Ok(stdout);
    }
    Err(Error::StepFailed(Box::new(crate::error::StepFailure {
        host: first.into(),
        phase: "join".into(),
        step: step.into(),
        command: command.into(),
        exit_code: out.code,
        output_tail: crate::exec::last_lines(&String::from_utf8_lossy(&out.stderr), 15),
        log: state.log_path(first),
        resume: "run the same command again".into(),
        others: vec![],
    })))
}
