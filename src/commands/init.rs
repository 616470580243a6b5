use std::path::PathBuf;

use anyhow::Context;

use crate::ui::Ui;

/// Arguments of `bundle init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to write the commented inventory template (never overwritten)
    #[arg(short, long, default_value = "cluster.yaml")]
    pub output: PathBuf,
}

/// The schema's file name, beside the inventory: the template's
/// `# yaml-language-server: $schema=./cluster.schema.json` line names it.
pub const SCHEMA_FILE: &str = "cluster.schema.json";

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    bundle_installer::ops::init(&args.output)?;
    // Rewritten on every init: it is this binary's schema, and an older copy would
    // mislead the editor.
    let dir = match args.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let schema = dir.join(SCHEMA_FILE);
    std::fs::write(&schema, bundle_installer::inventory::SCHEMA)
        .with_context(|| format!("cannot write `{}`", schema.display()))?;
    ui.status(
        "Wrote",
        format!(
            "{} (edit it, then `bundle install BUNDLE --inventory {} --dry-run --plan-out plan/`)",
            args.output.display(),
            args.output.display()
        ),
    );
    ui.status(
        "Wrote",
        format!(
            "{} (its JSON Schema, for editors; `bundle schema inventory` prints it)",
            schema.display()
        ),
    );
    Ok(())
}
