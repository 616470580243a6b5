use crate::ui::Ui;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ui: &Ui) -> anyhow::Result<()> {
    anyhow::bail!("not built")
}
