//! `bundle man DIR`: man pages generated from the clap definitions (clap_mangen), one
//! for `bundle` and one for each subcommand (`bundle-install.1`, `bundle-nodes-add.1`).

use std::path::PathBuf;

use anyhow::Context;

use crate::ui::Ui;

/// Arguments of `bundle man`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder to write the pages into (created if missing); read one with `man -l DIR/bundle.1`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run(args: Args, cli: clap::Command, ui: &Ui) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create `{}`", args.dir.display()))?;
    clap_mangen::generate_to(cli, &args.dir)
        .with_context(|| format!("cannot write man pages into `{}`", args.dir.display()))?;
    ui.status("Wrote", format!("man pages into {}", args.dir.display()));
    Ok(())
}
