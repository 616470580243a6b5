//! `bundle completion SHELL`: the shell's completion script, generated from the clap
//! definitions (clap_complete), on stdout.

use clap_complete::Shell;

/// Arguments of `bundle completion`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Load it in the current shell, or install it where the shell finds it:
  bash:  source <(bundle completion bash)
         bundle completion bash > ~/.local/share/bash-completion/completions/bundle
  zsh:   bundle completion zsh > \"${fpath[1]}/_bundle\"
  fish:  bundle completion fish > ~/.config/fish/completions/bundle.fish"
)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args, mut cli: clap::Command) -> anyhow::Result<()> {
    let name = cli.get_name().to_string();
    clap_complete::generate(args.shell, &mut cli, name, &mut std::io::stdout());
    Ok(())
}
