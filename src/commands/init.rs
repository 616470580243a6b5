use crate::ui::Ui;

/// Arguments of `bundle init`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ui: &Ui) -> anyhow::Result<()> {
    Err(bundle_installer::Error::NotBuilt("`bundle init`").into())
}
