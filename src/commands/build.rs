//! `bundle build`: the connected side's one command.

use std::path::PathBuf;
use std::sync::Mutex;

use bundle_builder::images::{Mirrors, ResolvedImage};
use bundle_builder::manifest::ManifestSource;
use bundle_builder::ops::build::{build, BuildOptions};
use bundle_builder::BuildReporter;
use bundle_format::write::WriteOptions;
use bundle_registry::{ClientOptions, ProxySettings};
use indicatif::{HumanBytes, ProgressBar};

use crate::commands::keys;
use crate::report::hinted;
use crate::ui::Ui;

/// Arguments of `bundle build`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pinned manifest (default: the built-in Kubernetes v1.29.2 + calico manifest)
    #[arg(long, short, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Output file (default: bundles/<name>-<version>.tar.zst)
    #[arg(long, short, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Secret key to sign with (default: your key pair under ~/.config/bundle, created on first use)
    #[arg(long, value_name = "SECRET_KEY")]
    key: Option<PathBuf>,
    /// Download cache (default: $XDG_CACHE_HOME/bundle or ~/.cache/bundle)
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Pull a registry's images through a mirror, path unchanged: registry.k8s.io=mirror.corp:5000
    #[arg(long, value_name = "REGISTRY=HOST[:PORT]")]
    mirror: Vec<String>,
    /// Registry spoken to over plain HTTP (repeatable)
    #[arg(long, value_name = "HOST:PORT")]
    plain_http: Vec<String>,
    /// Extra CA certificate(s) to trust, PEM
    #[arg(long, value_name = "PEM")]
    ca_file: Vec<PathBuf>,
    /// Parallel downloads
    #[arg(long, short, default_value_t = 8, value_name = "N")]
    jobs: usize,
    /// Fail if upstream no longer matches the lock (a moved tag is caught, not followed)
    #[arg(long)]
    locked: bool,
    /// Lock file (default: beside the manifest, `<manifest>.lock.json`)
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// zstd level (1-19); layers and RPMs are already compressed, so low is fast and as small
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    level: i32,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let signer = keys::signing_key(args.key.as_deref(), ui)?;
    let opts = BuildOptions {
        manifest: args
            .manifest
            .map(ManifestSource::File)
            .unwrap_or(ManifestSource::Default),
        output: args.output,
        output_dir: PathBuf::from("bundles"),
        signer,
        cache_dir: args.cache.map(Ok).unwrap_or_else(default_cache)?,
        mirrors: parse_mirrors(&args.mirror)?,
        registry: ClientOptions {
            plain_http: args.plain_http,
            ca_files: args.ca_file,
            proxy: ProxySettings::from_env(),
            ..Default::default()
        },
        jobs: args.jobs,
        locked: args.locked,
        lock_path: args.lock,
        write: WriteOptions {
            level: args.level,
            threads: 0,
        },
        created: None,
    };
    ui.status("Building", opts.manifest.display());
    let reporter = Reporter {
        ui,
        bar: Mutex::new(None),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(build(&opts, &reporter))?;
    let s = &summary;
    ui.status(
        "Finished",
        format!(
            "`{}` ({}, {} images, {} files, {} RPMs; fetched {} in {} downloads, {} from cache)",
            s.bundle.path.display(),
            HumanBytes(s.bundle.size),
            s.index.images.len(),
            s.index.files.len(),
            s.index.rpms.iter().map(|r| r.packages.len()).sum::<usize>(),
            HumanBytes(s.bytes_fetched),
            s.fetched,
            HumanBytes(s.bytes_cached)
        ),
    );
    ui.status(
        "Signed",
        format!(
            "by key {} (check with `bundle verify` or `minisign -V`)",
            s.key_id
        ),
    );
    ui.status(
        "Checksum",
        format!("`{}`", s.bundle.checksum_path.display()),
    );
    ui.status("Locked", format!("`{}`", s.lock_path.display()));
    println!("{}", s.bundle.path.display());
    Ok(())
}

fn default_cache() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(d).join("bundle"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("bundle")),
        None => Err(hinted("cannot find a cache folder", "pass `--cache DIR`")),
    }
}

fn parse_mirrors(specs: &[String]) -> anyhow::Result<Mirrors> {
    let mut m = Mirrors::default();
    for s in specs {
        match s.split_once('=') {
            Some((from, to)) if !from.is_empty() && !to.is_empty() && !to.contains('/') => {
                m.0.insert(from.to_string(), to.to_string());
            }
            _ => {
                return Err(hinted(
                    format!("`--mirror {s}` is not REGISTRY=HOST[:PORT]"),
                    "for example `--mirror registry.k8s.io=mirror.corp:5000`",
                ))
            }
        }
    }
    Ok(m)
}

/// Shows a build's progress: status lines everywhere, a byte bar on a terminal.
struct Reporter<'a> {
    ui: &'a Ui,
    bar: Mutex<Option<ProgressBar>>,
}

impl Reporter<'_> {
    fn start_bar(&self, label: &str, total: u64) {
        let bar = self.ui.bytes_bar(label, total);
        *self.bar.lock().expect("bar lock") = Some(bar);
    }
    fn finish_bar(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }
}

impl BuildReporter for Reporter<'_> {
    fn resolved(&self, image: &ResolvedImage) {
        let platforms = if image.platforms.is_empty() {
            String::new()
        } else {
            format!(" [{}]", image.platforms.join(", "))
        };
        self.ui.status(
            "Resolved",
            format!("{} → {}{platforms}", image.reference, image.top.digest),
        );
    }
    fn fetch_started(&self, to_fetch: u64, cached: u64) {
        self.ui.status(
            "Fetching",
            format!(
                "{} ({} already cached)",
                HumanBytes(to_fetch),
                HumanBytes(cached)
            ),
        );
        self.start_bar("Fetching", to_fetch);
    }
    fn rpm_fetch_started(&self, target: &str, packages: usize, to_fetch: u64, cached: u64) {
        self.ui.status(
            "Fetching",
            format!(
                "RPMs for `{target}`: {packages} package{}, {} ({} already cached)",
                if packages == 1 { "" } else { "s" },
                HumanBytes(to_fetch),
                HumanBytes(cached)
            ),
        );
        self.start_bar("RPMs", to_fetch);
    }
    fn fetched(&self, bytes: u64) {
        if let Some(bar) = &*self.bar.lock().expect("bar lock") {
            bar.inc(bytes);
        }
    }
    fn fetch_finished(&self) {
        self.finish_bar();
    }
    fn write_started(&self, total: u64) {
        self.ui
            .status("Writing", format!("{} of entries", HumanBytes(total)));
        self.start_bar("Writing", total);
    }
    fn written(&self, so_far: u64) {
        if let Some(bar) = &*self.bar.lock().expect("bar lock") {
            bar.set_position(so_far);
        }
    }
    fn write_finished(&self) {
        self.finish_bar();
    }
    fn warn(&self, message: &str) {
        self.ui.warn(message);
    }
}
