//! `bundle push`: a bundle's images into a registry, digests intact.
//!
//! [`plan`] checks the signature, reads the manifests (each checked against the signed
//! index) and maps names; no network. [`push`] then:
//!
//! 1. pings the registry (challenge, credentials) and, for a Harbor, makes sure every
//!    target project exists (`connect`);
//! 2. asks `HEAD` for every blob in every repository that needs it (in parallel):
//!    a blob present in one repository is mounted into the others without reading it
//!    from the bundle; present everywhere, it is skipped (`presence`);
//! 3. makes one verifying pass over the archive, `jobs` threads each reading its own
//!    zstd frames (a bundle without seek table is read by one): a blob still missing
//!    streams straight from the archive into its upload while it is hashed (the
//!    registry checks `?digest=` too and keeps nothing that does not match), then is
//!    mounted into the other repositories that need it; every other entry is hashed and
//!    dropped. No scratch disk: a failed upload is repeated from a fresh read of its
//!    frame, once the verifier confirmed the hash (`upload`);
//! 4. only when the whole bundle verified: manifests are put raw (children before
//!    indexes), then tags, last (`manifests`).
//!
//! A push stopped anywhere and run again finds what is already there with `HEAD` and
//! sends only the rest. A bundle that fails verification leaves blobs at most (inert,
//! unnamed); no manifest and no tag.
//!
//! Harbor projects are created in step 1, before the bundle is fully verified (a
//! project is an empty namespace; manifests and tags wait for verification).
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> Result<(), bundle_registry::Error> {
//! use bundle_registry::mapping::ImageMapping;
//! use bundle_registry::push::{plan, push, Connection, NoReport, PushOptions};
//! let key = bundle_format::sign::PublicKey::from_file("bundle.pub".as_ref()).unwrap();
//! let bundle = std::path::Path::new("k8s.tar.zst");
//! let mapping = ImageMapping::new("harbor.example.com", vec![]).unwrap();
//! let plan = plan(bundle, Some(&key), false, &mapping)?;
//! let opts = PushOptions {
//!     connection: Connection { host: "harbor.example.com".into(), ..Default::default() },
//!     key: Some(key),
//!     ..Default::default()
//! };
//! let summary = push(bundle, &plan, &opts, &NoReport).await?;
//! println!("{} blobs pushed, {} skipped", summary.blobs_pushed, summary.blobs_skipped);
//! # Ok(()) }
//! ```

mod ctx;
pub(crate) mod http;
mod manifests;
mod plan;
mod presence;
mod report;
mod upload;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bundle_format::sign::PublicKey;

pub use http::Connection;
pub use plan::{plan, PlannedBlob, PlannedImage, PlannedManifest, PushPlan};
pub use report::{NoReport, PushReporter};

use crate::harbor::{self, ProjectOutcome};
use crate::{Error, RetryPolicy};
use ctx::Ctx;
use http::{Attempt, Session};
use upload::Verification;

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The registry and how to reach it.
    pub connection: Connection,
    /// Parallel requests (HEADs, manifests), and threads verifying the bundle, each
    /// uploading the blob it reads (at most 16 of those).
    pub jobs: usize,
    /// Retries for transient failures (5xx, 429, resets).
    pub retry: RetryPolicy,
    /// Check the whole bundle (signature already checked by [`plan`]).
    pub key: Option<PublicKey>,
    /// Accept an unsigned bundle.
    pub allow_unsigned: bool,
    /// Create missing Harbor projects public (anonymous pulls), not private.
    pub public_projects: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            connection: Connection::default(),
            jobs: 8,
            retry: RetryPolicy::default(),
            key: None,
            allow_unsigned: false,
            public_projects: false,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushSummary {
    /// Target registry.
    pub registry: String,
    /// Whether it is a Harbor.
    pub harbor: bool,
    /// Harbor projects created.
    pub projects_created: Vec<String>,
    /// Images pushed: `source → target@digest`.
    pub images: Vec<PushedImage>,
    /// Blob uploads (a blob uploaded once and mounted elsewhere counts once).
    pub blobs_pushed: usize,
    /// Blobs mounted from another repository of the registry.
    pub blobs_mounted: usize,
    /// Blob × repository pairs already present.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_pushed: u64,
    /// Bytes of blobs already present or mounted (not sent).
    pub bytes_skipped: u64,
    /// Manifests and indexes put.
    pub manifests_pushed: usize,
    /// Manifests already present.
    pub manifests_skipped: usize,
    /// Tags set (or moved).
    pub tags_pushed: usize,
    /// Tags already pointing at the right digest.
    pub tags_skipped: usize,
    /// Requests retried after transient failures.
    pub retries: u64,
    /// Bearer tokens fetched.
    pub token_requests: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// One pushed image.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedImage {
    /// Name in the bundle.
    pub source: String,
    /// Name in the registry (tag, or digest only).
    pub target: String,
    /// Digest in both.
    pub digest: String,
}

/// Pushes `plan` (from [`plan`]) of `bundle` as `opts` say.
pub async fn push(
    bundle: &Path,
    plan: &PushPlan,
    opts: &PushOptions,
    reporter: &dyn PushReporter,
) -> Result<PushSummary, Error> {
    // Verifier threads hand blobs to requests running on the runtime's workers while
    // this task waits in `block_in_place`: a current-thread runtime cannot do that.
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        return Err(Error::CurrentThreadRuntime);
    }
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let ctx = Ctx::new(Session::new(&opts.connection)?, opts.retry, reporter);
    let mut summary = PushSummary {
        registry: plan.host.clone(),
        ..Default::default()
    };
    (summary.harbor, summary.projects_created) = connect(&ctx, plan, opts.public_projects).await?;

    let mut presence = presence::check(&ctx, plan, jobs).await?;
    presence::mount(&ctx, &mut presence, jobs).await?;
    summary.blobs_skipped = presence.skipped;
    summary.blobs_mounted = presence.mounted;
    summary.bytes_skipped = presence.bytes_skipped;

    let check = Verification {
        key: opts.key.clone(),
        allow_unsigned: opts.allow_unsigned,
        jobs,
    };
    let uploads = upload::verify_and_upload(&ctx, bundle, plan, &presence.work, check, started)?;
    summary.blobs_pushed = uploads.pushed;
    summary.blobs_mounted += uploads.mounted;
    summary.bytes_pushed = uploads.bytes;

    let manifests = manifests::put_manifests(&ctx, plan, jobs).await?;
    summary.manifests_pushed = manifests.put;
    summary.manifests_skipped = manifests.skipped;
    let tags = manifests::put_tags(&ctx, plan, jobs).await?;
    summary.tags_pushed = tags.put;
    summary.tags_skipped = tags.skipped;

    summary.images = pushed_images(plan);
    summary.retries = ctx.retries();
    summary.token_requests = ctx.session.token_requests.load(Ordering::Relaxed);
    summary.seconds = started.elapsed().as_secs_f64();
    tracing::info!("manifests and tags done after {:.2?}", started.elapsed());
    Ok(summary)
}

/// Pings the registry and, for a Harbor, makes sure every target project exists
/// (created `public` or private). Returns whether it is a Harbor and the projects
/// created.
async fn connect(
    ctx: &Ctx<'_>,
    plan: &PushPlan,
    public: bool,
) -> Result<(bool, Vec<String>), Error> {
    let s = &ctx.session;
    ctx.retry("GET /v2/", || s.ping()).await?;
    let is_harbor = ctx
        .retry("GET /api/v2.0/systeminfo", || harbor::detect(s))
        .await?
        .is_some();
    ctx.reporter.connected(&plan.host, is_harbor);
    let mut created = Vec::new();
    if !is_harbor {
        return Ok((false, created));
    }
    for project in &plan.projects {
        let outcome = ctx
            .retry(&format!("project `{project}`"), || {
                harbor::ensure_project(s, project, public)
            })
            .await?;
        ctx.reporter
            .project(project, outcome == ProjectOutcome::Created);
        if outcome == ProjectOutcome::Created {
            created.push(project.clone());
        }
    }
    Ok((true, created))
}

/// `source → target` of every image: the tag, or the digest for an untagged one.
fn pushed_images(plan: &PushPlan) -> Vec<PushedImage> {
    plan.images
        .iter()
        .map(|i| PushedImage {
            source: i.source.to_string(),
            target: match &i.target.tag {
                Some(_) => i.target.to_string(),
                None => format!("{}@{}", i.target, i.digest),
            },
            digest: i.digest.to_string(),
        })
        .collect()
}

/// Checks that `connection`'s account (none: anonymous) may pull `repository` at
/// `reference` (a tag or digest), as a cluster node will after the push: `GET /v2/`,
/// then `HEAD` of the manifest. `Denied` or `BadCredentials` when the registry refuses,
/// `NotFound` when it has no such manifest.
pub async fn check_pull(
    connection: &Connection,
    repository: &str,
    reference: &str,
) -> Result<(), Error> {
    let session = Session::new(connection)?.read_only();
    let retry = RetryPolicy::default();
    let transient = |a: &Attempt| a.transient;
    retry
        .run("GET /v2/", transient, || session.ping())
        .await
        .map_err(|a| a.error)?;
    let found = retry
        .run("HEAD manifest", transient, || {
            session.manifest_digest(repository, reference)
        })
        .await
        .map_err(|a| a.error)?;
    match found {
        Some(_) => Ok(()),
        None => Err(Error::NotFound {
            reference: format!("{}/{repository}:{reference}", connection.host),
            registry: connection.host.clone(),
        }),
    }
}
