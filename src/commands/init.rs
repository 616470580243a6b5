use std::path::PathBuf;

use crate::ui::Ui;

/// Arguments of `bundle init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the commented inventory template (never overwritten)
    #[arg(short, long, default_value = "cluster.yaml")]
    pub output: PathBuf,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    bundle_installer::ops::init(&args.output)?;
    ui.status(
        "Wrote",
        format!(
            "{} (edit it, then `bundle install BUNDLE --inventory {} --dry-run --plan-out plan/`)",
            args.output.display(),
            args.output.display()
        ),
    );
    Ok(())
}
