use std::path::PathBuf;

use bundle_installer::ops::apply::ApplyOptions;
use bundle_installer::ops::nodes::{add, AddOptions};

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
    /// Join a worker added to the inventory after the install (with a fresh token)
    Add(AddArgs),
}

/// Arguments of `bundle nodes add`.
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The bundle the cluster was installed from
    pub bundle: PathBuf,
    /// The new worker's name in the inventory
    pub host: String,
    /// The cluster inventory, with the new worker in `spec.hosts`
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Public key the bundle must be signed with
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Accept a control plane that is not highly available
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let NodesCommand::Add(a) = args.command;
    let mut install = ApplyOptions::new(a.bundle, a.inventory, a.pubkey);
    install.state = a.exec.state.clone();
    install.force = a.force;
    install.parallel = a.exec.parallel;
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
