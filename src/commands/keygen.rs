//! `bundle keygen`: a minisign key pair for signing bundles.

use std::io::IsTerminal;
use std::path::PathBuf;

use bundle_format::sign::{generate_key_pair, KeyPairPaths};

use crate::report::hinted;
use crate::ui::Ui;

/// Arguments of `bundle keygen`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Writes PREFIX.key (secret, mode 0600) and PREFIX.pub
    #[arg(long, short, value_name = "PREFIX")]
    output: PathBuf,
    /// Do not protect the secret key with a password (for automation)
    #[arg(long)]
    unencrypted: bool,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let paths = KeyPairPaths::for_prefix(&args.output);
    let password = if args.unencrypted {
        None
    } else {
        Some(new_password()?)
    };
    let key_id = generate_key_pair(&paths, password)?;
    ui.status(
        "Created",
        format!(
            "key pair {key_id}: secret key `{}`, public key `{}`",
            paths.secret.display(),
            paths.public.display()
        ),
    );
    ui.status(
        "",
        "copy the public key to the isolated side; keep the secret key on the build machine",
    );
    Ok(())
}

/// The new key's password: BUNDLE_KEY_PASSWORD, or asked twice on the terminal.
fn new_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("BUNDLE_KEY_PASSWORD") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            "a password-protected key needs a password, and there is no terminal to ask for it",
            "set BUNDLE_KEY_PASSWORD, or pass `--unencrypted` for a key without password",
        ));
    }
    let first = rpassword::prompt_password("Password for the new secret key: ")?;
    let second = rpassword::prompt_password("Password again: ")?;
    if first != second {
        anyhow::bail!("the passwords do not match");
    }
    Ok(first)
}
