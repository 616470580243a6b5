//! `bundle inspect`: what a bundle carries, read from its index alone.

use std::path::PathBuf;

use bundle_format::shown::shown;
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
    let key = args
        .pubkey
        .as_deref()
        .map(bundle_format::sign::PublicKey::from_file)
        .transpose()?;
    let (index, signature) = read_index(&args.bundle, key.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&index)?);
        return Ok(());
    }
    // Every string here comes from the bundle (unsigned, without --pubkey): shown with
    // control characters escaped, so a crafted name cannot rewrite the screen.
    let field = |name: &str, value: &dyn std::fmt::Display| {
        println!("{:<11} {}", format!("{name}:"), shown(&value.to_string()))
    };
    field("name", &index.name);
    field("version", &index.version);
    field("created", &index.created);
    if let Some(k) = &index.kubernetes_version {
        field("kubernetes", k);
    }
    if let Some(c) = &index.cni {
        field("cni", &format!("{} (files/{})", c.name, c.manifest));
    }
    match &signature {
        Some(s) => field("signature", &format!("good, key {}", s.key_id)),
        None => field("signature", &"not checked (pass --pubkey)"),
    }
    println!("\nimages ({}):", index.images.len());
    print_table(index.images.iter().map(|i| {
        let platforms = if i.platforms.is_empty() {
            "-".to_string()
        } else {
            i.platforms.join(",")
        };
        vec![
            i.reference.to_string(),
            i.digest.to_string(),
            platforms,
            HumanBytes(i.size).to_string(),
        ]
    }));
    println!("\nfiles ({}):", index.files.len());
    print_table(index.files.iter().map(|f| {
        vec![
            f.name.clone(),
            f.sha256.to_string(),
            HumanBytes(f.size).to_string(),
            f.url.clone(),
        ]
    }));
    for r in &index.rpms {
        println!(
            "\nrpms {} (releasever {}, {}; {} packages):",
            shown(&r.target),
            shown(&r.releasever),
            shown(&r.arch),
            r.packages.len()
        );
        if !r.module_streams.is_empty() {
            let streams: Vec<String> = r.module_streams.iter().map(|m| shown(m)).collect();
            println!("module streams: {}", streams.join(", "));
        }
        print_table(r.packages.iter().map(|p| {
            vec![
                p.nevra.clone(),
                HumanBytes(p.size).to_string(),
                p.source_repo.clone(),
            ]
        }));
    }
    println!(
        "\ntotal: {} entries, {}",
        index.entries.len(),
        HumanBytes(index.total_size())
    );
    Ok(())
}

/// Prints rows with columns padded to their widest cell, two spaces apart.
fn print_table(rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<width$}", width = widths[c]))
            .map(|cell| shown(&cell))
            .collect();
        println!("  {}", cells.join("  ").trim_end());
    }
}
