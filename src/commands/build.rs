//! `bundle build`: the connected side's one command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use bundle_builder::images::{Mirrors, ResolvedImage};
use bundle_builder::manifest::ManifestSource;
use bundle_builder::ops::build::{build, BuildOptions, ResolveOptions};
use bundle_builder::ops::dry_run::{dry_run, DryRun};
use bundle_builder::BuildReporter;
use bundle_format::write::WriteOptions;
use bundle_registry::credentials::{self, Source};
use bundle_registry::{ClientOptions, Credentials, ProxySettings};
use indicatif::{HumanBytes, ProgressBar};

use crate::commands::{keys, login};
use crate::report::hinted;
use crate::ui::Ui;

/// Arguments of `bundle build`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
Credentials, per registry: for the registry named by --registry-login, --username (or \
BUNDLE_REGISTRY_USERNAME) with the password from --password-stdin (or \
BUNDLE_REGISTRY_PASSWORD); for every other registry, what `docker login`, `podman login` \
or `skopeo login` stored: docker's config.json (auths, credHelpers, credsStore; \
$DOCKER_CONFIG or ~/.docker), then containers' auth.json ($REGISTRY_AUTH_FILE or \
$XDG_RUNTIME_DIR/containers/auth.json); else anonymous. An image pulled through --mirror \
is pulled with the mirror's credentials: name the mirror in --registry-login.

Rate limits: a registry answering 429 Too Many Requests (Docker Hub's anonymous pull \
limit) is retried after the wait it asks for (Retry-After), up to 60 s per wait; a longer \
wait fails the build at once, saying so. Blobs already fetched stay in the cache.

TLS: the system's trust store, plus --ca-file and --cert-dir for every registry; without \
either, each registry's folder in /etc/containers/certs.d and /etc/docker/certs.d \
(ca.crt and any *.crt; client.cert and client.key for a registry that asks for a client \
certificate); BUNDLE_CERTS_D replaces those two roots. A self-signed server certificate \
(openssl req -x509) is accepted when it is itself one of the trusted certificates.")]
pub struct Args {
    /// Pinned manifest (default: the built-in Kubernetes v1.29.2 + calico manifest)
    #[arg(long, short, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Output file (default: bundles/NAME-VERSION.tar.zst)
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
    /// Extra CA certificate(s) to trust, PEM (or a registry's own self-signed certificate)
    #[arg(long, value_name = "PEM")]
    ca_file: Vec<PathBuf>,
    /// Certificates as skopeo's --cert-dir: *.crt are CAs, NAME.cert with NAME.key a client
    /// certificate
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// The registry --username and --password-stdin log in to (a mirror's name when pulling
    /// through one); other registries use docker's or podman's stored logins
    #[arg(long, value_name = "HOST[:PORT]")]
    registry_login: Option<String>,
    /// Account for --registry-login (or BUNDLE_REGISTRY_USERNAME)
    #[arg(long, value_name = "USER", requires = "registry_login")]
    username: Option<String>,
    /// Read the --registry-login password (or token) from standard input (or set
    /// BUNDLE_REGISTRY_PASSWORD)
    #[arg(long, requires = "registry_login")]
    password_stdin: bool,
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
    /// Resolve everything (image digests and sizes, the RPM closure) and say what would be
    /// fetched and how big the bundle will be; download no blob, file or package, write no
    /// bundle or lock
    #[arg(long, conflicts_with_all = ["locked", "output"])]
    dry_run: bool,
    /// With --dry-run: the plan as JSON on stdout
    #[arg(long, requires = "dry_run")]
    json: bool,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    if args.dry_run {
        return run_dry(args, ui);
    }
    let signer = keys::signing_key(args.key.as_deref(), ui)?;
    let opts = BuildOptions {
        resolve: resolve_options(&args, ui)?,
        output: args.output,
        output_dir: PathBuf::from("bundles"),
        signer,
        locked: args.locked,
        lock_path: args.lock,
        write: WriteOptions {
            level: args.level,
            threads: 0,
        },
        created: None,
    };
    ui.status("Building", opts.resolve.manifest.display());
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

/// The manifest, cache and upstreams a build and a dry run both resolve from.
fn resolve_options(args: &Args, ui: &Ui) -> anyhow::Result<ResolveOptions> {
    let mirrors = parse_mirrors(&args.mirror)?;
    let credentials = registry_login(args, &mirrors, ui)?;
    Ok(ResolveOptions {
        manifest: args
            .manifest
            .clone()
            .map(ManifestSource::File)
            .unwrap_or(ManifestSource::Default),
        cache_dir: args.cache.clone().map(Ok).unwrap_or_else(default_cache)?,
        mirrors,
        registry: ClientOptions {
            plain_http: args.plain_http.clone(),
            ca_files: args.ca_file.clone(),
            cert_dir: args.cert_dir.clone(),
            credentials,
            proxy: ProxySettings::from_env(),
            ..Default::default()
        },
        jobs: args.jobs,
    })
}

/// `--dry-run`: the same inputs, resolved and reported; no key is needed.
fn run_dry(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let opts = resolve_options(&args, ui)?;
    ui.status("Resolving", opts.manifest.display());
    let reporter = Reporter {
        ui,
        bar: Mutex::new(None),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let plan = runtime.block_on(dry_run(&opts, &reporter))?;
    if args.json {
        println!("{}", serde_json::to_string(&plan)?);
        return Ok(());
    }
    print_dry_run(&plan);
    Ok(())
}

fn print_dry_run(p: &DryRun) {
    println!("{}", p.bundle);
    println!(
        "images ({}, {} once shared layers count once, {} cached):",
        p.images.len(),
        HumanBytes(p.image_bytes),
        HumanBytes(p.image_bytes_cached)
    );
    for i in &p.images {
        println!(
            "  {}  {}  {}  from {}",
            i.reference,
            i.digest,
            HumanBytes(i.bytes),
            i.source
        );
    }
    println!("files ({}):", p.files.len());
    for f in &p.files {
        let size = f.cached_bytes.map_or("not cached".to_string(), |b| {
            format!("{} cached", HumanBytes(b))
        });
        println!("  {}  {}  {}", f.name, size, f.url);
    }
    println!("rpms:");
    for t in &p.rpms {
        println!(
            "  {}  {} packages  {}  ({} cached)",
            t.target,
            t.packages,
            HumanBytes(t.bytes),
            HumanBytes(t.cached_bytes)
        );
        if !t.module_streams.is_empty() {
            println!("    module streams: {}", t.module_streams.join(", "));
        }
    }
    println!(
        "bundle: about {} of entries; to download now: {}",
        HumanBytes(p.bundle_bytes),
        HumanBytes(p.to_download)
    );
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

/// The credentials given for `--registry-login HOST`, by host. Without that flag the
/// environment's password is not used: it names no registry, and a build talks to many.
fn registry_login(
    args: &Args,
    mirrors: &Mirrors,
    ui: &Ui,
) -> anyhow::Result<BTreeMap<String, Credentials>> {
    let Some(host) = &args.registry_login else {
        if std::env::var_os(credentials::PASSWORD_ENV).is_some_and(|v| !v.is_empty()) {
            ui.warn(format!(
                "{} is ignored: `bundle build` sends it only to the registry named by `--registry-login HOST`",
                credentials::PASSWORD_ENV
            ));
        }
        return Ok(BTreeMap::new());
    };
    if let Some(mirror) = mirrors.0.get(host) {
        return Err(hinted(
            format!("`--registry-login {host}` names a registry pulled through mirror `{mirror}`"),
            format!("credentials go to the registry pulled from: `--registry-login {mirror}`"),
        ));
    }
    let password = match args.password_stdin {
        true => Some(login::password_from_stdin("build")?),
        false => None,
    };
    match credentials::resolve(host, args.username.clone(), password)? {
        (Some(c), Source::Given | Source::Environment) => {
            Ok(BTreeMap::from([(host.clone(), c)]))
        }
        _ => Err(hinted(
            format!("`--registry-login {host}` was given no password"),
            format!(
                "pipe it in with `--password-stdin` or set {}; without `--registry-login`, docker's and podman's stored logins are used",
                credentials::PASSWORD_ENV
            ),
        )),
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
