//! `bundle verify`: signature first, then every entry against the index, in one
//! streaming pass without extracting.

use std::path::PathBuf;

use bundle_format::verify::{verify, CheckOnly, VerifyOptions};
use indicatif::HumanBytes;

use crate::args::KeyArgs;
use crate::commands::keys;
use crate::ui::Ui;

/// Arguments of `bundle verify`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`)
    bundle: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let key = keys::public_key(args.key.pubkey.as_deref(), args.key.allow_unsigned)?;
    let opts = VerifyOptions {
        key,
        allow_unsigned: args.key.allow_unsigned,
        threads: 0,
    };
    let report = verify(&args.bundle, &opts, &CheckOnly)?;
    if report.signature.is_none() {
        ui.warn(format!("`{}` was NOT checked for a signature (--allow-unsigned): its content matches its own index, but nothing proves who made it", args.bundle.display()));
    }
    if args.json {
        let out = serde_json::json!({
            "bundle": args.bundle,
            "name": report.index.name,
            "version": report.index.version,
            "entries": report.entries,
            "bytes": report.bytes,
            "framesReadInParallel": report.frames,
            "signedBy": report.signature.as_ref().map(|s| &s.key_id),
            "verified": true,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let signer = match &report.signature {
            Some(s) => format!("signed by key {}", s.key_id),
            None => "unsigned".to_string(),
        };
        println!(
            "verified {} {}: {} entries, {} ({} bytes), {signer}",
            report.index.name,
            report.index.version,
            report.entries,
            HumanBytes(report.bytes),
            report.bytes
        );
    }
    Ok(())
}
