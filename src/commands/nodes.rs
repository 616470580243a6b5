use std::path::PathBuf;

use bundle_installer::ops::apply::ApplyOptions;
use bundle_installer::ops::nodes::{add, AddOptions};
use bundle_installer::ops::{remove, RemoveOptions};

use crate::args::ExecArgs;
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle nodes`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: NodesCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum NodesCommand {
    /// Join a worker or master added to the inventory after the install (fresh token and certificate key; the masters' load balancers reloaded)
    Add(AddArgs),
    /// Take a node out: drain, delete, its etcd member removed (masters), reset, the
    /// load balancers reloaded without it
    Remove(RemoveArgs),
}

/// Arguments of `bundle nodes remove`.
#[derive(clap::Args, Debug)]
pub struct RemoveArgs {
    /// The node's name
    pub host: String,
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Go on although fewer than three masters stay
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Arguments of `bundle nodes add`.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The bundle the cluster was installed from
    pub bundle: PathBuf,
    /// The new host's name in the inventory
    pub host: String,
    /// The cluster inventory, with the new host in `spec.hosts`
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Public key the bundle must be signed with
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Accept a control plane that is not highly available
    #[arg(long)]
    pub force: bool,
    /// Hosts worked on at the same time within a phase
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub parallel: usize,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    match args.command {
        NodesCommand::Add(a) => run_add(a, ui),
        NodesCommand::Remove(r) => run_remove(r, ui),
    }
}

fn run_remove(r: RemoveArgs, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, r.exec.json);
    let outcome = remove(
        &RemoveOptions {
            inventory: r.inventory,
            state: r.exec.state.clone(),
            host: r.host.clone(),
            force: r.force,
            yes: r.exec.yes,
            become_password: r.exec.become_password()?,
        },
        &reporter,
    )?;
    reporter.finish();
    if !r.exec.json {
        let reset = if outcome.reset {
            "reset"
        } else {
            "not reset (unreachable)"
        };
        ui.status(
            "Removed",
            format!(
                "`{}` ({} steps carried out, {} already done; the host {reset})",
                r.host, outcome.ran, outcome.skipped
            ),
        );
    }
    Ok(())
}

fn run_add(a: AddArgs, ui: &Ui) -> anyhow::Result<()> {
    let mut install = ApplyOptions::new(a.bundle, a.inventory, a.pubkey);
    install.state = a.exec.state.clone();
    install.force = a.force;
    install.parallel = a.parallel;
    install.yes = a.exec.yes;
    install.become_password = a.exec.become_password()?;
    let reporter = CliReporter::new(ui, a.exec.json);
    let outcome = add(
        &AddOptions {
            install,
            host: a.host.clone(),
        },
        &reporter,
    )?;
    reporter.finish();
    if !a.exec.json {
        ui.status(
            "Joined",
            format!(
                "`{}` ({} steps carried out, {} already done)",
                a.host, outcome.ran, outcome.skipped
            ),
        );
    }
    Ok(())
}
