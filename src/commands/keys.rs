//! Where keys are: explicit paths, or the user's default pair under the XDG config
//! folder (`$XDG_CONFIG_HOME/bundle/bundle.{key,pub}`, else `~/.config/bundle/`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use bundle_format::sign::{generate_key_pair, KeyPairPaths, KeyPassword, PublicKey, SecretKey};

use crate::report::hinted;
use crate::ui::Ui;

/// The default key pair's paths.
pub fn default_pair() -> anyhow::Result<KeyPairPaths> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => {
                return Err(hinted(
                    "cannot find a config folder for the default key",
                    "set XDG_CONFIG_HOME or HOME, or pass `--key`",
                ))
            }
        },
    };
    Ok(KeyPairPaths::for_prefix(
        &config.join("bundle").join("bundle"),
    ))
}

/// The signing key: `--key PATH`, or the default pair, created on first use.
pub fn signing_key(path: Option<&Path>, ui: &Ui) -> anyhow::Result<SecretKey> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let pair = default_pair()?;
            if !pair.secret.exists() {
                let id = generate_key_pair(&pair, None)?;
                ui.warn(format!(
                    "created your default signing key {id} at `{}` (no password; make a protected one with `bundle keygen` and pass `--key`)",
                    pair.secret.display()
                ));
                ui.warn(format!(
                    "the public key `{}` must travel to the isolated side to verify bundles",
                    pair.public.display()
                ));
            }
            pair.secret
        }
    };
    let password = if !SecretKey::is_encrypted(&path)? {
        KeyPassword::None
    } else if let Ok(p) = std::env::var("BUNDLE_KEY_PASSWORD") {
        KeyPassword::Given(p)
    } else if std::io::stdin().is_terminal() {
        KeyPassword::Prompt
    } else {
        KeyPassword::None
    };
    Ok(SecretKey::from_file(&path, password)?)
}

/// The verification key: `--pubkey PATH`, or the default pair's public key if it exists.
/// `None` only when unsigned bundles are allowed.
pub fn public_key(path: Option<&Path>, allow_unsigned: bool) -> anyhow::Result<Option<PublicKey>> {
    if let Some(p) = path {
        return Ok(Some(PublicKey::from_file(p)?));
    }
    let pair = default_pair()?;
    if pair.public.exists() {
        return Ok(Some(PublicKey::from_file(&pair.public)?));
    }
    if allow_unsigned {
        return Ok(None);
    }
    Err(hinted(
        "no public key to check the bundle's signature with",
        "pass `--pubkey FILE` with the public key of whoever built the bundle",
    ))
}
