use std::path::PathBuf;

use bundle_installer::ops::backup::{backup, BackupOptions};

use crate::args::ExecArgs;
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle backup`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Folder the backup goes into [default: backups/ in the state folder]
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Keep only the newest N backups of this cluster in that folder
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, args.exec.json);
    let outcome = backup(
        &BackupOptions {
            inventory: args.inventory,
            state: args.exec.state.clone(),
            output: args.output,
            keep: args.keep,
            become_password: args.exec.become_password()?,
        },
        &reporter,
    )?;
    reporter.finish();
    if args.exec.json {
        println!("{}", serde_json::to_string_pretty(&outcome.manifest)?);
        return Ok(());
    }
    let m = &outcome.manifest;
    ui.status(
        "Backed up",
        format!(
            "`{}` from `{}` (etcd revision {}, {} keys) into {}",
            m.cluster,
            m.host,
            m.snapshot.revision,
            m.snapshot.total_keys,
            outcome.dir.display()
        ),
    );
    for dir in &outcome.removed {
        ui.status("Removed", format!("{} (--keep)", dir.display()));
    }
    Ok(())
}
