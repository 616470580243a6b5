use crate::ui::Ui;

/// Arguments of `bundle push`.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ui: &Ui) -> anyhow::Result<()> {
    anyhow::bail!("`bundle push` is not built yet")
}
