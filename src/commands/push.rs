//! `bundle push`: a bundle's images into Harbor or any OCI registry.

use std::path::PathBuf;
use std::sync::Mutex;

use bundle_registry::mapping::{ImageMapping, Override};
use bundle_registry::push::{
    plan, push, Connection, PlannedImage, PushOptions, PushPlan, PushReporter, PushSummary,
};
use bundle_registry::{credentials, RetryPolicy};
use indicatif::{HumanBytes, ProgressBar};

use crate::args::KeyArgs;
use crate::commands::{keys, login};
use crate::ui::Ui;

/// Arguments of `bundle push`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
The bundle is verified while it is pushed: the signature before the first request, every \
entry against the signed index, --jobs threads each reading its own part of the archive. \
Blobs the registry lacks stream from the archive straight into their uploads as they are \
hashed (the registry checks each blob's digest too); no free disk space is needed. No \
manifest and no tag is pushed unless the whole bundle verified.

Names: registry.k8s.io/kube-apiserver:v1.29.2 → HOST/k8s/kube-apiserver:v1.29.2, \
registry.k8s.io/coredns/coredns → HOST/k8s/coredns, docker.io/calico/node → \
HOST/calico/node; other registries keep their path. --map overrides by source prefix.

Credentials: --username with --password-stdin, else BUNDLE_REGISTRY_USERNAME and \
BUNDLE_REGISTRY_PASSWORD, else your docker config.json (auths and credential helpers).

TLS: the system's trust store, plus --ca-file and --cert-dir; without either, the \
registry's folder in /etc/containers/certs.d and /etc/docker/certs.d (ca.crt and any \
*.crt; client.cert and client.key for a registry that asks for a client certificate); \
BUNDLE_CERTS_D replaces those two roots. A self-signed server certificate (openssl req \
-x509) is accepted when it is itself one of the trusted certificates.

A push that stopped midway can simply be run again: what the registry has is skipped.")]
pub struct Args {
    /// The bundle (`.tar.zst`)
    bundle: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
    /// Target registry: Harbor or any OCI registry
    #[arg(long, value_name = "HOST[:PORT]")]
    registry: String,
    /// Extra CA certificate(s) to trust for the registry, PEM (or the registry's own
    /// self-signed certificate)
    #[arg(long, value_name = "PEM")]
    ca_file: Vec<PathBuf>,
    /// Certificates for the registry as skopeo's --cert-dir: *.crt are CAs, NAME.cert with
    /// NAME.key a client certificate
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Speak plain HTTP to the registry (no TLS)
    #[arg(long)]
    plain_http: bool,
    /// Registry account (or BUNDLE_REGISTRY_USERNAME)
    #[arg(long, value_name = "USER")]
    username: Option<String>,
    /// Read the password (or token) from standard input (or set BUNDLE_REGISTRY_PASSWORD)
    #[arg(long)]
    password_stdin: bool,
    /// Send images under SRC_PREFIX to DEST_PREFIX instead: docker.io/calico=cni/calico (repeatable)
    #[arg(long = "map", value_name = "SRC=DEST")]
    maps: Vec<Override>,
    /// Parallel requests, and threads reading the bundle, each uploading what it reads (up to 16, about 4 MiB each)
    #[arg(long, short, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Create missing Harbor projects public, so that nodes pull without credentials
    /// (existing projects are left as they are)
    #[arg(long)]
    public: bool,
    /// Print the name mapping and what would be created, push nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let key = keys::public_key(args.key.pubkey.as_deref(), args.key.allow_unsigned)?;
    let mapping = ImageMapping::new(&args.registry, args.maps.clone())?;
    let plan = plan(
        &args.bundle,
        key.as_ref(),
        args.key.allow_unsigned,
        &mapping,
    )?;
    if plan.signed_by.is_none() {
        ui.warn(format!(
            "`{}` was NOT checked for a signature (--allow-unsigned)",
            args.bundle.display()
        ));
    }
    if args.dry_run {
        print_plan(&plan, args.json)?;
        return Ok(());
    }
    let password = match args.password_stdin {
        true => Some(login::password_from_stdin("push")?),
        false => None,
    };
    let (credentials, source) =
        credentials::resolve(&args.registry, args.username.clone(), password)?;
    if let Some(c) = &credentials {
        tracing::info!("registry account `{}` (from {source:?})", c.username);
    }
    let opts = PushOptions {
        connection: Connection {
            host: args.registry.clone(),
            plain_http: args.plain_http,
            ca_files: args.ca_file.clone(),
            cert_dir: args.cert_dir.clone(),
            credentials,
            proxy: None,
        },
        jobs: args.jobs as usize,
        retry: RetryPolicy::default(),
        key,
        allow_unsigned: args.key.allow_unsigned,
        public_projects: args.public,
    };
    if let Some(k) = &plan.signed_by {
        ui.status(
            "Checked",
            format!("signature of `{}` by key {k}", args.bundle.display()),
        );
    }
    ui.status(
        "Pushing",
        format!(
            "{} images ({} in {} blobs) into `{}`",
            plan.images.len(),
            HumanBytes(plan.blob_bytes()),
            plan.blobs.len(),
            plan.host
        ),
    );
    let reporter = Reporter {
        ui,
        public: args.public,
        verify_bar: Mutex::new(None),
        upload_bar: Mutex::new(None),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(push(&args.bundle, &plan, &opts, &reporter))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn print_plan(plan: &PushPlan, json: bool) -> anyhow::Result<()> {
    if json {
        let images: Vec<_> = plan
            .images
            .iter()
            .map(|i| serde_json::json!({"source": i.source.to_string(), "target": i.target.to_string(), "digest": i.digest.to_string(), "manifests": i.manifests.len(), "size": i.size}))
            .collect();
        let out = serde_json::json!({
            "registry": plan.host,
            "images": images,
            "projects": plan.projects,
            "repositories": plan.repositories(),
            "blobs": plan.blobs.len(),
            "blobBytes": plan.blob_bytes(),
            "manifests": plan.manifests.len(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let width = plan
        .images
        .iter()
        .map(|i| i.source.to_string().len())
        .max()
        .unwrap_or(0);
    for i in &plan.images {
        println!(
            "{:width$}  →  {}  ({})",
            i.source.to_string(),
            i.target,
            i.digest
        );
    }
    println!();
    println!(
        "Harbor projects (created when missing): {}",
        plan.projects.join(", ")
    );
    println!("repositories: {}", plan.repositories().join(", "));
    println!(
        "{} blobs ({}), {} manifests; nothing was pushed (--dry-run)",
        plan.blobs.len(),
        HumanBytes(plan.blob_bytes()),
        plan.manifests.len()
    );
    Ok(())
}

fn print_summary(s: &PushSummary) {
    for i in &s.images {
        println!("{}  →  {}", i.source, i.target);
    }
    eprintln!(
        "{:>12} {} images into `{}` in {:.1}s: {} blobs pushed ({}), {} mounted, {} already present; {} manifests pushed, {} present; {} tags set, {} unchanged{}{}",
        "Finished",
        s.images.len(),
        s.registry,
        s.seconds,
        s.blobs_pushed,
        HumanBytes(s.bytes_pushed),
        s.blobs_mounted,
        s.blobs_skipped,
        s.manifests_pushed,
        s.manifests_skipped,
        s.tags_pushed,
        s.tags_skipped,
        if s.projects_created.is_empty() { String::new() } else { format!("; Harbor projects created: {}", s.projects_created.join(", ")) },
        if s.retries == 0 { String::new() } else { format!("; {} requests retried", s.retries) },
    );
}

/// Shows a push's progress: status lines everywhere, byte bars on a terminal.
struct Reporter<'a> {
    ui: &'a Ui,
    /// Projects are created public.
    public: bool,
    verify_bar: Mutex<Option<ProgressBar>>,
    upload_bar: Mutex<Option<ProgressBar>>,
}

impl PushReporter for Reporter<'_> {
    fn connected(&self, registry: &str, harbor: bool) {
        if harbor {
            self.ui
                .status("Connected", format!("to Harbor at `{registry}`"));
        }
    }
    fn project(&self, name: &str, created: bool) {
        if created {
            self.ui.status(
                "Created",
                format!(
                    "Harbor project `{name}` ({})",
                    if self.public { "public" } else { "private" }
                ),
            );
        }
    }
    fn transfer_started(&self, to_upload: u64, present: u64, bundle_bytes: u64) {
        self.ui.status(
            "Uploading",
            format!(
                "{} ({} already in the registry)",
                HumanBytes(to_upload),
                HumanBytes(present)
            ),
        );
        *self.verify_bar.lock().expect("bar") = Some(self.ui.bytes_bar("Verifying", bundle_bytes));
        if to_upload > 0 {
            *self.upload_bar.lock().expect("bar") = Some(self.ui.bytes_bar("Uploading", to_upload));
        }
    }
    fn verified(&self, bytes: u64) {
        if let Some(b) = &*self.verify_bar.lock().expect("bar") {
            b.set_position(bytes);
        }
    }
    fn uploaded(&self, bytes: u64) {
        if let Some(b) = &*self.upload_bar.lock().expect("bar") {
            b.inc(bytes);
        }
    }
    fn transfer_finished(&self) {
        for bar in [&self.verify_bar, &self.upload_bar] {
            if let Some(b) = bar.lock().expect("bar").take() {
                b.finish_and_clear();
            }
        }
    }
    fn image_pushed(&self, image: &PlannedImage) {
        self.ui
            .status("Pushed", format!("{} → {}", image.source, image.target));
    }
    fn retrying(&self, what: &str, error: &str) {
        self.ui.warn(format!("{what}: {error}; retrying"));
    }
}
