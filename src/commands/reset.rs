use std::path::PathBuf;

use bundle_installer::ops::reset::{reset, ResetOptions};

use crate::args::{ExecArgs, HostsArgs};
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle reset`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub hosts: HostsArgs,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, args.exec.json);
    let outcome = reset(
        &ResetOptions {
            inventory: args.inventory,
            state: args.exec.state.clone(),
            only: args.hosts.only.clone(),
            yes: args.exec.yes,
            become_password: args.exec.become_password()?,
        },
        &reporter,
    )?;
    reporter.finish();
    if !args.exec.json {
        ui.status("Reset", outcome.hosts.join(", "));
    }
    Ok(())
}
