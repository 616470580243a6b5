//! `bundle push`: a bundle's images into a registry, digests intact.
//!
//! [`plan`] checks the signature, reads the manifests (each checked against the signed
//! index) and maps names; no network. [`push`] then:
//!
//! 1. pings the registry (challenge, credentials) and, for a Harbor, makes sure every
//!    target project exists;
//! 2. asks `HEAD` for every blob in every repository that needs it (in parallel):
//!    a blob present in one repository is mounted into the others without reading it
//!    from the bundle; present everywhere, it is skipped;
//! 3. makes one verifying pass over the archive: blobs still missing are spooled to a
//!    scratch folder as they stream by and uploaded in parallel (`jobs`) once their
//!    hash matched, then mounted into the other repositories that need them; every
//!    other entry is hashed and dropped;
//! 4. only when the whole bundle verified: manifests are put raw (children before
//!    indexes), then tags, last.
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

pub(crate) mod http;
mod plan;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bundle_format::sign::PublicKey;
use bundle_format::verify::{verify, BoxError, EntrySink, VerifyOptions};
use bundle_format::{EntryRecord, Sha256Digest};
use futures_util::stream::{self, StreamExt, TryStreamExt};

pub use http::Connection;
pub use plan::{plan, PlannedBlob, PlannedImage, PlannedManifest, PushPlan};

use crate::harbor::{self, ProjectOutcome};
use crate::{Error, RetryPolicy};
use http::{Attempt, AttemptResult, Session};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The registry and how to reach it.
    pub connection: Connection,
    /// Parallel requests (HEADs, uploads, manifests).
    pub jobs: usize,
    /// Where missing blobs are spooled while the bundle is verified (default: the
    /// system's temp folder). Needs at most the size of the blobs missing from the
    /// registry; each file is removed once uploaded.
    pub scratch_dir: Option<PathBuf>,
    /// Retries for transient failures (5xx, 429, resets).
    pub retry: RetryPolicy,
    /// Check the whole bundle (signature already checked by [`plan`]).
    pub key: Option<PublicKey>,
    /// Accept an unsigned bundle.
    pub allow_unsigned: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        Self {
            connection: Connection::default(),
            jobs: 8,
            scratch_dir: None,
            retry: RetryPolicy::default(),
            key: None,
            allow_unsigned: false,
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

/// Progress of a push; the CLI draws bars from it. Called from several threads.
pub trait PushReporter: Sync + Send {
    /// Connected; `harbor` says whether projects are managed.
    fn connected(&self, _registry: &str, _harbor: bool) {}
    /// A Harbor project was checked or created.
    fn project(&self, _name: &str, _created: bool) {}
    /// Presence checked: bytes to upload, bytes already present.
    fn transfer_started(&self, _to_upload: u64, _present: u64, _bundle_bytes: u64) {}
    /// Bytes of the bundle verified so far.
    fn verified(&self, _bytes: u64) {}
    /// Bytes sent.
    fn uploaded(&self, _bytes: u64) {}
    /// Verification and uploads are done.
    fn transfer_finished(&self) {}
    /// An image's manifests and tag are in place.
    fn image_pushed(&self, _image: &PlannedImage) {}
    /// A transient failure is being retried.
    fn retrying(&self, _what: &str, _error: &str) {}
}

/// A reporter that shows nothing.
pub struct NoReport;
impl PushReporter for NoReport {}

struct Ctx<'a> {
    session: Session,
    retry: RetryPolicy,
    reporter: &'a dyn PushReporter,
    retries: AtomicU64,
    /// Bytes sent by uploads so far (failed attempts taken back); reported by the
    /// upload loop on a timer, as uploads run on other tasks.
    sent: Arc<AtomicU64>,
}

impl Ctx<'_> {
    /// Runs `op` with the retry policy; returns the final error.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = AttemptResult<T>>,
    {
        let mut delay = self.retry.initial_delay;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Attempt {
                    error,
                    transient: true,
                }) if attempt < self.retry.attempts => {
                    let text = Attempt {
                        error,
                        transient: true,
                    }
                    .to_string();
                    tracing::warn!(
                        "{what}: {text}; retrying in {delay:?} (attempt {attempt} of {})",
                        self.retry.attempts
                    );
                    self.reporter.retrying(what, &text);
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max_delay);
                    attempt += 1;
                }
                Err(a) => return Err(a.error),
            }
        }
    }
}

/// What must happen to one blob.
#[derive(Debug, Clone)]
struct BlobWork {
    digest: Sha256Digest,
    size: u64,
    /// Repositories missing it.
    missing: Vec<String>,
    /// A repository that has it (mount source), when any.
    present_in: Option<String>,
}

/// Pushes `plan` (from [`plan`]) of `bundle` as `opts` say.
pub async fn push(
    bundle: &Path,
    plan: &PushPlan,
    opts: &PushOptions,
    reporter: &dyn PushReporter,
) -> Result<PushSummary, Error> {
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let ctx = Ctx {
        session: Session::new(&opts.connection)?,
        retry: opts.retry,
        reporter,
        retries: AtomicU64::new(0),
        sent: Arc::new(AtomicU64::new(0)),
    };
    let s = &ctx.session;
    let mut summary = PushSummary {
        registry: plan.host.clone(),
        ..Default::default()
    };

    // 1. Registry and projects.
    ctx.retry("GET /v2/", || s.ping()).await?;
    let is_harbor = ctx
        .retry("GET /api/v2.0/systeminfo", || harbor::detect(s))
        .await?
        .is_some();
    summary.harbor = is_harbor;
    reporter.connected(&plan.host, is_harbor);
    if is_harbor {
        for project in &plan.projects {
            let outcome = ctx
                .retry(&format!("project `{project}`"), || {
                    harbor::ensure_project(s, project)
                })
                .await?;
            reporter.project(project, outcome == ProjectOutcome::Created);
            if outcome == ProjectOutcome::Created {
                summary.projects_created.push(project.clone());
            }
        }
    }

    // 2. What is there already.
    let pairs: Vec<(Sha256Digest, String)> = plan
        .blobs
        .iter()
        .flat_map(|(d, b)| b.repositories.iter().map(move |r| (*d, r.clone())))
        .collect();
    let presence: Vec<(Sha256Digest, String, bool)> = stream::iter(pairs)
        .map(|(d, r)| {
            let ctx = &ctx;
            async move {
                let present = ctx
                    .retry(&format!("HEAD blob {r}@{d}"), || {
                        ctx.session.blob_exists(&r, &d)
                    })
                    .await?;
                Ok::<_, Error>((d, r, present))
            }
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    let mut work: BTreeMap<Sha256Digest, BlobWork> = plan
        .blobs
        .iter()
        .map(|(d, b)| {
            (
                *d,
                BlobWork {
                    digest: *d,
                    size: b.size,
                    missing: Vec::new(),
                    present_in: None,
                },
            )
        })
        .collect();
    for (d, r, present) in presence {
        let w = work.get_mut(&d).expect("planned blob");
        if present {
            summary.blobs_skipped += 1;
            summary.bytes_skipped += w.size;
            w.present_in.get_or_insert(r);
        } else {
            w.missing.push(r);
        }
    }
    for w in work.values_mut() {
        w.missing.sort();
    }

    // Mount what one repository has into the others that lack it.
    let mounts: Vec<BlobWork> = work
        .values()
        .filter(|w| w.present_in.is_some() && !w.missing.is_empty())
        .cloned()
        .collect();
    let mounted: Vec<(Sha256Digest, Vec<String>)> = stream::iter(mounts)
        .map(|w| {
            let ctx = &ctx;
            async move {
                let from = w.present_in.clone().expect("filtered");
                let mut failed = Vec::new();
                for to in &w.missing {
                    if !ctx
                        .retry(&format!("mount {} into {to}", w.digest), || {
                            ctx.session.mount(to, &from, &w.digest)
                        })
                        .await?
                    {
                        failed.push(to.clone());
                    }
                }
                Ok::<_, Error>((w.digest, failed))
            }
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    for (d, failed) in mounted {
        let w = work.get_mut(&d).expect("planned blob");
        summary.blobs_mounted += w.missing.len() - failed.len();
        summary.bytes_skipped += w.size * (w.missing.len() - failed.len()) as u64;
        w.missing = failed;
    }

    // 3. One verifying pass; missing blobs spooled and uploaded while it streams.
    let to_upload: HashMap<String, BlobWork> = work
        .values()
        .filter(|w| !w.missing.is_empty())
        .map(|w| (format!("images/blobs/sha256/{}", w.digest.hex()), w.clone()))
        .collect();
    let upload_bytes: u64 = to_upload.values().map(|w| w.size).sum();
    let present_bytes: u64 = plan.blob_bytes() - upload_bytes;
    tracing::info!(
        "presence checked in {:.2?}: {} blobs to upload ({upload_bytes} bytes), {present_bytes} bytes present or mounted",
        started.elapsed(),
        to_upload.len()
    );
    reporter.transfer_started(upload_bytes, present_bytes, plan.index.total_size());
    let scratch_base = opts.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = open_scratch(&scratch_base).map_err(|source| Error::Io {
        path: scratch_base.clone(),
        source,
    })?;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Spooled>(64);
    let abort = Arc::new(AtomicBool::new(false));
    let verify_opts = VerifyOptions {
        key: opts.key.clone(),
        allow_unsigned: opts.allow_unsigned,
    };
    let sink = SpoolSink {
        wanted: to_upload,
        dir: scratch.path().to_path_buf(),
        tx,
        abort: abort.clone(),
        current: None,
        verified_bytes: 0,
    };
    let bundle_path = bundle.to_path_buf();
    // The verifier is synchronous: it runs on a blocking thread while uploads run here.
    let verifying = tokio::task::spawn_blocking(move || {
        let mut sink = sink;
        verify(&bundle_path, &verify_opts, &mut sink)
    });
    let uploads = async {
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut first_error: Option<Error> = None;
        let (mut pushed, mut mounted, mut bytes) = (0usize, 0usize, 0u64);
        let mut open = true;
        let mut pending = std::collections::VecDeque::new();
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        let mut reported = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = ctx.sent.load(Ordering::Relaxed);
                    if now > reported {
                        reporter.uploaded(now - reported);
                        reported = now;
                    }
                }
                // Always listening: the verifier never waits for uploads; blobs wait
                // in the scratch folder until an upload slot is free.
                msg = rx.recv(), if open => match msg {
                    Some(Spooled::Verified(n)) => reporter.verified(n),
                    Some(Spooled::Blob(w, file)) => pending.push_back((w, file)),
                    None => open = false,
                },
                Some(done) = running.next(), if !running.is_empty() => match done {
                    Ok((size, m)) => {
                        pushed += 1;
                        mounted += m;
                        bytes += size;
                    }
                    Err(e) => {
                        abort.store(true, Ordering::SeqCst);
                        first_error.get_or_insert(e);
                    }
                },
            }
            while running.len() < jobs {
                let Some((w, file)) = pending.pop_front() else {
                    break;
                };
                let ctx = &ctx;
                running.push(async move {
                    let r = upload_one(ctx, &w, &file).await;
                    let _ = std::fs::remove_file(&file);
                    r.map(|m| (w.size, m))
                });
            }
            if first_error.is_some() {
                pending.clear();
            }
            if !open && running.is_empty() && pending.is_empty() {
                break;
            }
        }
        let now = ctx.sent.load(Ordering::Relaxed);
        if now > reported {
            reporter.uploaded(now - reported);
        }
        (first_error, pushed, mounted, bytes)
    };
    let (verified, (upload_error, pushed, mounted, bytes)) = tokio::join!(verifying, uploads);
    let verified = verified.expect("the verifier thread does not panic");
    reporter.transfer_finished();
    tracing::info!(
        "bundle verified and blobs uploaded after {:.2?}",
        started.elapsed()
    );
    drop(scratch);
    if let Some(e) = upload_error {
        return Err(e);
    }
    match verified {
        Ok(_) => {}
        Err(bundle_format::Error::Consumer { source, .. }) if abort.load(Ordering::SeqCst) => {
            return Err(Error::Protocol {
                registry: plan.host.clone(),
                what: "upload".into(),
                detail: source.to_string(),
            });
        }
        Err(source) => {
            return Err(Error::Bundle {
                path: bundle.to_path_buf(),
                source,
            })
        }
    }
    summary.blobs_pushed = pushed;
    summary.blobs_mounted += mounted;
    summary.bytes_pushed = bytes;

    // 4. Manifests (children first), then tags.
    let results: Vec<(usize, usize)> = stream::iter(plan.images.iter())
        .map(|image| {
            let ctx = &ctx;
            async move {
                let repo = image.repository();
                let (mut put, mut skipped) = (0, 0);
                for d in &image.manifests {
                    let m = &plan.manifests[d];
                    let reference = d.to_string();
                    let have = ctx
                        .retry(&format!("HEAD manifest {repo}@{d}"), || {
                            ctx.session.manifest_digest(repo, &reference)
                        })
                        .await?;
                    if have.is_some() {
                        skipped += 1;
                        continue;
                    }
                    ctx.retry(&format!("PUT manifest {repo}@{d}"), || {
                        ctx.session
                            .put_manifest(repo, &reference, &m.media_type, &m.bytes)
                    })
                    .await?;
                    put += 1;
                }
                Ok::<_, Error>((put, skipped))
            }
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    summary.manifests_pushed = results.iter().map(|r| r.0).sum();
    summary.manifests_skipped = results.iter().map(|r| r.1).sum();
    let tags: Vec<bool> = stream::iter(plan.images.iter())
        .map(|image| {
            let ctx = &ctx;
            async move {
                let repo = image.repository();
                let Some(tag) = &image.target.tag else {
                    ctx.reporter.image_pushed(image);
                    return Ok::<_, Error>(None);
                };
                let digest = image.digest.to_string();
                let have = ctx
                    .retry(&format!("HEAD tag {repo}:{tag}"), || {
                        ctx.session.manifest_digest(repo, tag)
                    })
                    .await?;
                let changed = have.as_deref() != Some(digest.as_str());
                if changed {
                    let m = &plan.manifests[&image.digest];
                    ctx.retry(&format!("PUT tag {repo}:{tag}"), || {
                        ctx.session.put_manifest(repo, tag, &m.media_type, &m.bytes)
                    })
                    .await?;
                }
                ctx.reporter.image_pushed(image);
                Ok(Some(changed))
            }
        })
        .buffer_unordered(jobs)
        .try_collect::<Vec<Option<bool>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    summary.tags_pushed = tags.iter().filter(|c| **c).count();
    summary.tags_skipped = tags.len() - summary.tags_pushed;
    summary.images = plan
        .images
        .iter()
        .map(|i| PushedImage {
            source: i.source.to_string(),
            target: match &i.target.tag {
                Some(_) => i.target.to_string(),
                None => format!("{}@{}", i.target, i.digest),
            },
            digest: i.digest.to_string(),
        })
        .collect();
    summary.retries = ctx.retries.load(Ordering::Relaxed);
    summary.token_requests = s.token_requests.load(Ordering::Relaxed);
    summary.seconds = started.elapsed().as_secs_f64();
    tracing::info!("manifests and tags done after {:.2?}", started.elapsed());
    Ok(summary)
}

/// A scratch folder `bundle-push-<pid>-…` under `base`. Folders left by pushes that
/// were killed (their PID is gone) are removed first, so an interrupted push does not
/// leak disk space.
fn open_scratch(base: &Path) -> io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(base)?;
    if Path::new("/proc/self").exists() {
        for entry in std::fs::read_dir(base)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("bundle-push-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                tracing::info!(
                    "removing `{}`, left by an interrupted push",
                    entry.path().display()
                );
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("bundle-push-{}-", std::process::id()))
        .tempdir_in(base)
}

/// Uploads one spooled blob into its first missing repository and mounts it into the
/// others (uploading again where a mount is refused). Returns how many were mounted.
async fn upload_one(ctx: &Ctx<'_>, w: &BlobWork, file: &Path) -> Result<usize, Error> {
    let (first, rest) = w.missing.split_first().expect("a missing repository");
    // Progress counts bytes as they leave; a failed attempt's bytes are taken back.
    let attempt = Arc::new(AtomicU64::new(0));
    let (this, total) = (attempt.clone(), ctx.sent.clone());
    let report: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
        this.fetch_add(n, Ordering::Relaxed);
        total.fetch_add(n, Ordering::Relaxed);
    });
    let start_attempt = || {
        let previous = attempt.swap(0, Ordering::Relaxed);
        ctx.sent.fetch_sub(previous, Ordering::Relaxed);
    };
    ctx.retry(&format!("upload {} into {first}", w.digest), || {
        start_attempt();
        ctx.session
            .upload(first, &w.digest, w.size, file, report.clone())
    })
    .await?;
    // Kept: the bytes of the successful attempt stay counted.
    attempt.store(0, Ordering::Relaxed);
    let mut mounted = 0;
    for to in rest {
        if ctx
            .retry(&format!("mount {} into {to}", w.digest), || {
                ctx.session.mount(to, first, &w.digest)
            })
            .await?
        {
            mounted += 1;
        } else {
            ctx.retry(&format!("upload {} into {to}", w.digest), || {
                start_attempt();
                ctx.session
                    .upload(to, &w.digest, w.size, file, report.clone())
            })
            .await?;
        }
    }
    Ok(mounted)
}

/// What the verifying thread tells the uploader.
enum Spooled {
    /// Bytes of the bundle verified so far.
    Verified(u64),
    /// A verified blob in the scratch folder, to upload.
    Blob(BlobWork, PathBuf),
}

/// Spools the entries that must be uploaded; hands each over once verified.
struct SpoolSink {
    wanted: HashMap<String, BlobWork>,
    dir: PathBuf,
    tx: tokio::sync::mpsc::Sender<Spooled>,
    abort: Arc<AtomicBool>,
    current: Option<PathBuf>,
    verified_bytes: u64,
}

impl EntrySink for SpoolSink {
    fn entry(&mut self, record: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        if self.abort.load(Ordering::SeqCst) {
            return Err("an upload failed".into());
        }
        if !self.wanted.contains_key(record.path.as_str()) {
            return Ok(());
        }
        let path = self.dir.join(record.sha256.hex());
        let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
        io::copy(data, &mut out)?;
        out.flush()?;
        self.current = Some(path);
        Ok(())
    }

    fn verified(&mut self, record: &EntryRecord) -> Result<(), BoxError> {
        self.verified_bytes += record.size;
        let mut msgs = vec![Spooled::Verified(self.verified_bytes)];
        if let Some(path) = self.current.take() {
            let w = self
                .wanted
                .remove(record.path.as_str())
                .expect("spooled entries are wanted");
            msgs.push(Spooled::Blob(w, path));
        }
        for m in msgs {
            if self.tx.blocking_send(m).is_err() {
                return Err("the uploader stopped".into());
            }
        }
        Ok(())
    }
}
