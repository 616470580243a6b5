//! `bundle inspect`: what a bundle carries, read from its index alone.

use std::path::PathBuf;

use bundle_format::verify::read_index;
use indicatif::HumanBytes;

use crate::ui::Ui;

/// Arguments of `bundle inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`.tar.zst`)
    bundle: PathBuf,
    /// Check the index's signature with this public key (entries are not read; use `bundle verify`)
    #[arg(long, value_name = "PUB")]
    pubkey: Option<PathBuf>,
    /// Print the index as JSON, for scripts
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, _ui: &Ui) -> anyhow::Result<()> {
    let key = args.pubkey.as_deref().map(bundle_format::sign::PublicKey::from_file).transpose()?;
    let (index, signature) = read_index(&args.bundle, key.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&index)?);
        return Ok(());
    }
    println!("name:      {}", index.name);
    println!("version:   {}", index.version);
    println!("created:   {}", index.created);
    if let Some(k) = &index.kubernetes_version {
        println!("kubernetes: {k}");
    }
    if let Some(c) = &index.cni {
        println!("cni:       {} (files/{})", c.name, c.manifest);
    }
    match &signature {
        Some(s) => println!("signature: good, key {}", s.key_id),
        None => println!("signature: not checked (pass --pubkey)"),
    }
    println!("\nimages ({}):", index.images.len());
    for i in &index.images {
        let platforms = if i.platforms.is_empty() { "-".to_string() } else { i.platforms.join(",") };
        println!("  {}  {}  {}  {}", i.reference, i.digest, platforms, HumanBytes(i.size));
    }
    println!("\nfiles ({}):", index.files.len());
    for f in &index.files {
        println!("  {}  sha256:{}  {}  {}", f.name, f.sha256.hex(), HumanBytes(f.size), f.url);
    }
    for r in &index.rpms {
        println!("\nrpms {} (releasever {}, {}; {} packages):", r.target, r.releasever, r.arch, r.packages.len());
        for p in &r.packages {
            println!("  {}  {}  {}", p.nevra, HumanBytes(p.size), p.source_repo);
        }
    }
    println!("\ntotal: {} entries, {}", index.entries.len(), HumanBytes(index.total_size()));
    Ok(())
}
