//! `bundle schema manifest|inventory`: the JSON Schema the loader checks a file
//! against, on stdout, for editors and CI.

/// Arguments of `bundle schema`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Editors with a YAML language server check a file against a saved schema when
its first line names it:  # yaml-language-server: $schema=./cluster.schema.json"
)]
pub struct Args {
    /// Which file's schema
    #[arg(value_enum)]
    pub which: Which,
}

/// The files that have a schema.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Which {
    /// A pinned manifest for `bundle build` (`manifests/*.yaml`)
    Manifest,
    /// A cluster inventory for `bundle install` (`cluster.yaml`, from `bundle init`)
    Inventory,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use std::io::Write;
    let text = match args.which {
        Which::Manifest => bundle_builder::manifest::SCHEMA,
        Which::Inventory => bundle_installer::inventory::SCHEMA,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}
