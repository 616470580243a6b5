use std::path::PathBuf;

use bundle_installer::ops::restore::{restore, RestoreOptions};
use bundle_installer::plan::PhaseName;

use crate::args::ExecArgs;
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle restore`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The backup's folder, as `bundle backup` wrote it (backup.json, etcd-snapshot.db)
    #[arg(value_name = "BACKUP_DIR")]
    pub backup: PathBuf,
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Restore a backup taken on another Kubernetes minor than the cluster runs
    #[arg(long)]
    pub force: bool,
    /// The resume hint's phase (a restore has one: `restore`; it goes on where it stopped)
    #[arg(long, value_name = "PHASE", hide = true, value_parser = parse_restore_phase)]
    pub from: Option<PhaseName>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

fn parse_restore_phase(s: &str) -> Result<PhaseName, String> {
    (s == PhaseName::Restore.as_str())
        .then_some(PhaseName::Restore)
        .ok_or_else(|| "a restore has one phase: restore".to_string())
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, args.exec.json);
    let outcome = restore(
        &RestoreOptions {
            backup: args.backup,
            inventory: args.inventory,
            state: args.exec.state.clone(),
            force: args.force,
            yes: args.exec.yes,
            become_password: args.exec.become_password()?,
        },
        &reporter,
    )?;
    reporter.finish();
    if args.exec.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    ui.status(
        "Restored",
        format!(
            "`{}` to the backup taken {} (etcd revision {}) on {} ({} steps carried out, {} already done)",
            outcome.cluster,
            outcome.taken,
            outcome.revision,
            outcome.masters.join(", "),
            outcome.ran,
            outcome.skipped
        ),
    );
    ui.status(
        "Kept",
        format!(
            "the data from before on every master as {} (remove it once the cluster is checked)",
            outcome.kept
        ),
    );
    Ok(())
}
