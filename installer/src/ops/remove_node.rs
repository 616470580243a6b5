//! `bundle nodes remove HOST`: take a node out of the installed cluster. From the
//! first remaining master: drain, delete the node, and for a master remove its etcd
//! member (by name, or by address if it never started), also when the host itself is
//! gone; then `kubeadm reset` and the install undone on the host when it answers, and
//! for a master the remaining masters' haproxy and keepalived configured without it
//! and reloaded. Fewer than three masters left is refused without `--force`; the last
//! master never goes.

use std::path::PathBuf;

use super::common::Installed;
use super::reset::reset_script;
use crate::inventory::Inventory;
use crate::plan::{removal, Plan, PlanHost, Removal};
use crate::report::{Event, Reporter};
use crate::run::connect::connect;
use crate::run::{HostBook, RunOptions};
use crate::state::StateDir;
use crate::{Error, Problems};

/// What `bundle nodes remove` needs.
#[derive(Debug, Clone)]
pub struct RemoveOptions {
    /// `cluster.yaml` (how to reach the hosts; the host may already be gone from it).
    pub inventory: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// The host to remove.
    pub host: String,
    /// Leave fewer than three masters.
    pub force: bool,
    /// Do not ask.
    pub yes: bool,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// What was done.
#[derive(Debug)]
pub struct RemoveOutcome {
    /// Steps carried out.
    pub ran: usize,
    /// Steps skipped.
    pub skipped: usize,
    /// The host answered and was reset.
    pub reset: bool,
}

/// Removes the host. See the module documentation.
pub fn remove(opts: &RemoveOptions, reporter: &dyn Reporter) -> Result<RemoveOutcome, Error> {
    crate::run::runtime()?.block_on(remove_async(opts, reporter))
}

async fn remove_async(
    opts: &RemoveOptions,
    reporter: &dyn Reporter,
) -> Result<RemoveOutcome, Error> {
    let opened = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let (inventory, state, installed) = (&opened.inventory, &opened.state, &opened.plan);
    let removed = check_removable(installed, opts)?.clone();
    let cluster = cluster_without(inventory, opts)?;
    let what = format!(
        "removing `{}` from the cluster `{}`",
        opts.host, installed.cluster
    );
    if !opts.yes && !reporter.confirm(&format!("Go ahead with {what} (drain, delete, reset)?")) {
        return Err(Error::NotConfirmed { what });
    }
    let book = HostBook {
        inventory,
        path: &opts.inventory,
    };
    let reachable = probe(book, &opts.host, opts.become_password.clone(), reporter).await;
    let plan = removal(&Removal {
        installed,
        cluster: &cluster,
        host: &removed,
        reachable,
        reset_script: reset_script(installed, &opts.host),
    });
    let secrets = opened.secrets(&plan)?;
    let run = RunOptions {
        parallel: 10,
        from: None,
        only: plan.hosts_taking_part(),
        become_password: opts.become_password.clone(),
        resume: format!(
            "bundle nodes remove {} --inventory {}{} --yes",
            opts.host,
            opts.inventory.display(),
            if opts.force { " --force" } else { "" }
        ),
    };
    let engine = opened
        .engine(&plan, &secrets, &opts.inventory, &run, reporter)
        .await?;
    let result = engine.execute(None).await;
    engine.close().await;
    let (ran, skipped) = result?;
    forget(state, installed, &opts.host)?;
    Ok(RemoveOutcome {
        ran,
        skipped,
        reset: reachable,
    })
}

/// The host is in the installed plan, and enough masters stay.
fn check_removable<'p>(installed: &'p Plan, opts: &RemoveOptions) -> Result<&'p PlanHost, Error> {
    let Some(host) = installed.hosts.iter().find(|h| h.name == opts.host) else {
        return Err(Error::UnknownHost {
            host: opts.host.clone(),
            inventory: opts.inventory.clone(),
        });
    };
    if host.roles.iter().any(|r| r == "etcd") {
        return Err(Error::NotWithExternalEtcd {
            operation: format!("`bundle nodes remove` of the etcd host `{}`", opts.host),
            by_hand: "remove its member with `etcdctl member remove ID` on another etcd host, stop the member (move /etc/kubernetes/manifests/etcd.yaml away), then update every master's `etcd.external.endpoints` in the kubeadm-config ConfigMap and kube-apiserver's --etcd-servers".into(),
        });
    }
    let is_master = |h: &PlanHost| h.roles.iter().any(|r| r == "master");
    if is_master(host) {
        let left = installed.hosts.iter().filter(|h| is_master(h)).count() - 1;
        if left == 0 {
            return Err(Error::LastMaster {
                host: opts.host.clone(),
            });
        }
        if left < 3 && !opts.force {
            return Err(Error::TooFewMasters {
                host: opts.host.clone(),
                left,
            });
        }
    }
    Ok(host)
}

/// The inventory's cluster without the host (whether or not the file still lists it).
fn cluster_without(inventory: &Inventory, opts: &RemoveOptions) -> Result<crate::Cluster, Error> {
    let mut rest = inventory.clone();
    rest.spec.hosts.retain(|h| h.name != opts.host);
    let (cluster, _) = rest.validate(true).map_err(|problems| Error::Inventory {
        path: opts.inventory.clone(),
        problems: Problems(problems),
    })?;
    Ok(cluster)
}

/// Whether the host answers over SSH (sudo included); a host that does not is still
/// removed from the cluster, with a warning.
async fn probe(
    book: HostBook<'_>,
    host: &str,
    become_password: Option<String>,
    reporter: &dyn Reporter,
) -> bool {
    match connect(book, &[host.to_string()], become_password, None, reporter).await {
        Ok(c) => {
            c.close().await;
            true
        }
        Err(e) => {
            reporter.event(&Event::Warning {
                host: Some(host.into()),
                message: format!("{e}: it is removed from the cluster but not reset; run `kubeadm reset -f` on it before it joins again"),
            });
            false
        }
    }
}

/// The state forgets the host: its records, and its part of the installed plan.
fn forget(state: &StateDir, installed: &Plan, host: &str) -> Result<(), Error> {
    let mut plan = installed.clone();
    plan.hosts.retain(|h| h.name != host);
    for phase in &mut plan.phases {
        phase.hosts.retain(|h| h.host != host);
    }
    state.forget(host)?;
    state.set_applied_plan(&plan)?;
    Ok(())
}
