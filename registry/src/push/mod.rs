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
//! 3. makes one verifying pass over the archive, `jobs` threads each reading its own
//!    zstd frames (a bundle without seek table is read by one): a blob still missing
//!    streams straight from the archive into its upload while it is hashed (the
//!    registry checks `?digest=` too and keeps nothing that does not match), then is
//!    mounted into the other repositories that need it; every other entry is hashed and
//!    dropped. No scratch disk: a failed upload is repeated from a fresh read of its
//!    frame, once the verifier confirmed the hash;
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
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bundle_format::sign::PublicKey;
use bundle_format::verify::{
    read_entry, verify, BoxError, EntryLocation, EntrySink, VerifyOptions,
};
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
    /// Shared with the upload requests spawned on the runtime.
    session: Arc<Session>,
    retry: RetryPolicy,
    reporter: &'a dyn PushReporter,
    retries: AtomicU64,
}

impl Ctx<'_> {
    /// Logs, reports and counts a retry of `what` after `failed`.
    fn note_retry(&self, what: &str, failed: &Attempt, attempt: u32, delay: std::time::Duration) {
        tracing::warn!(
            "{what}: {failed}; retrying in {delay:?} (attempt {attempt} of {})",
            self.retry.attempts
        );
        self.reporter.retrying(what, &failed.to_string());
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `op` with the retry policy; returns the final error.
    async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = AttemptResult<T>>,
    {
        let mut waits = self.retry.backoff().enumerate();
        loop {
            let failed = match op().await {
                Ok(v) => return Ok(v),
                Err(failed) => failed,
            };
            let delay = self.next_wait(what, &mut waits, failed)?;
            tokio::time::sleep(delay).await;
        }
    }

    /// After `failed`: the wait before the next attempt, reported and counted, or the
    /// error when it is not transient or the attempts are used up.
    fn next_wait(
        &self,
        what: &str,
        waits: &mut impl Iterator<Item = (usize, std::time::Duration)>,
        failed: Attempt,
    ) -> Result<std::time::Duration, Error> {
        match waits.next() {
            Some((i, delay)) if failed.transient => {
                self.note_retry(what, &failed, i as u32 + 1, delay);
                Ok(delay)
            }
            _ => Err(failed.error),
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
    // Verifier threads hand blobs to requests running on the runtime's workers while
    // this task waits in `block_in_place`: a current-thread runtime cannot do that.
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        return Err(Error::CurrentThreadRuntime);
    }
    let started = Instant::now();
    let jobs = opts.jobs.max(1);
    let ctx = Ctx {
        session: Arc::new(Session::new(&opts.connection)?),
        retry: opts.retry,
        reporter,
        retries: AtomicU64::new(0),
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
                    harbor::ensure_project(s, project, opts.public_projects)
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

    // 3. One verifying pass, several frames at once; each missing blob streams from
    //    the archive straight into its upload while it is hashed.
    let to_upload: HashMap<String, BlobWork> = work
        .values()
        .filter(|w| !w.missing.is_empty())
        .map(|w| {
            (
                format!("{}{}", bundle_format::layout::BLOBS, w.digest.hex()),
                w.clone(),
            )
        })
        .collect();
    let upload_bytes: u64 = to_upload.values().map(|w| w.size).sum();
    let present_bytes: u64 = plan.blob_bytes() - upload_bytes;
    tracing::info!(
        "presence checked in {:.2?}: {} blobs to upload ({upload_bytes} bytes), {present_bytes} bytes present or mounted",
        started.elapsed(),
        to_upload.len()
    );
    reporter.transfer_started(upload_bytes, present_bytes, plan.index.total_size());
    let sink = UploadSink::new(&ctx, bundle, to_upload);
    let verify_opts = VerifyOptions {
        key: opts.key.clone(),
        allow_unsigned: opts.allow_unsigned,
        threads: jobs.min(MAX_UPLOAD_THREADS),
    };
    // The verifier's threads block on reads and uploads; the runtime's other workers
    // drive the requests meanwhile.
    let verified = tokio::task::block_in_place(|| verify(bundle, &verify_opts, &sink));
    reporter.transfer_finished();
    tracing::info!(
        "bundle verified and blobs uploaded after {:.2?}",
        started.elapsed()
    );
    let uploads = sink.finish();
    match verified {
        Ok(_) => {}
        Err(bundle_format::Error::Consumer { .. }) if uploads.error.is_some() => {
            return Err(uploads.error.expect("checked"));
        }
        Err(source) => {
            return Err(Error::Bundle {
                path: bundle.to_path_buf(),
                source,
            })
        }
    }
    summary.blobs_pushed = uploads.pushed;
    summary.blobs_mounted += uploads.mounted;
    summary.bytes_pushed = uploads.bytes;

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

/// Each verifier thread holds about 4 MiB (zstd window, read buffer, chunks in flight):
/// more than this many would cost memory without helping a registry take blobs faster.
const MAX_UPLOAD_THREADS: usize = 16;

/// Size of the chunks handed from a verifier thread to its upload.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight per upload.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A streamed upload attempt: bytes handed over, and how it ended.
type Streamed = (u64, Result<(), Attempt>);

/// What the uploads of the verifying pass did.
#[derive(Default)]
struct UploadTally {
    pushed: usize,
    mounted: usize,
    bytes: u64,
    error: Option<Error>,
}

/// Uploads the blobs the registry lacks as the verifier streams them by, one upload per
/// verifier thread. The first attempt streams from the verifier itself; a failed
/// attempt is repeated from a fresh read of the entry ([`read_entry`]), only once the
/// verifier confirmed its hash.
struct UploadSink<'c, 'r> {
    ctx: &'c Ctx<'r>,
    bundle: &'c Path,
    wanted: HashMap<String, BlobWork>,
    runtime: tokio::runtime::Handle,
    /// Outcome of the streamed first attempt (and the bytes it counted as uploaded),
    /// per entry, until `verified` sees it.
    streamed: Mutex<HashMap<String, Streamed>>,
    verified_bytes: AtomicU64,
    tally: Mutex<UploadTally>,
}

impl<'c, 'r> UploadSink<'c, 'r> {
    fn new(ctx: &'c Ctx<'r>, bundle: &'c Path, wanted: HashMap<String, BlobWork>) -> Self {
        Self {
            ctx,
            bundle,
            wanted,
            runtime: tokio::runtime::Handle::current(),
            streamed: Mutex::new(HashMap::new()),
            verified_bytes: AtomicU64::new(0),
            tally: Mutex::new(UploadTally::default()),
        }
    }

    fn finish(self) -> UploadTally {
        self.tally.into_inner().expect("not poisoned")
    }

    /// One upload attempt of `w` into `repository`, its bytes read from `data` on this
    /// thread while the request runs on the runtime. Returns the bytes handed over.
    fn stream(&self, w: &BlobWork, repository: &str, data: &mut dyn Read, count: bool) -> Streamed {
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
        let session = self.ctx.session.clone();
        let (repo, digest, size) = (repository.to_string(), w.digest, w.size);
        let request = self
            .runtime
            .spawn(async move { session.upload(&repo, &digest, size, rx).await });
        let mut sent = 0u64;
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            let n = match (&mut *data).take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    // Abort the request: the registry must not take a short blob.
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                    break;
                }
            };
            if tx.blocking_send(Ok(bytes::Bytes::from(buf))).is_err() {
                break; // the request ended early; its result says why
            }
            sent += n as u64;
            if count {
                self.ctx.reporter.uploaded(n as u64);
            }
        }
        drop(tx);
        let result = self.runtime.block_on(request).unwrap_or_else(|e| {
            Err(Attempt {
                error: Error::Protocol {
                    registry: self.ctx.session.host().to_string(),
                    what: format!("upload {}", w.digest),
                    detail: e.to_string(),
                },
                transient: false,
            })
        });
        (sent, result)
    }

    /// Repeats a failed upload into `repository` from fresh reads of the entry, with the
    /// retry policy's backoff; `sent` is what the failed attempt counted as uploaded.
    fn retry_upload(
        &self,
        w: &BlobWork,
        record: &EntryRecord,
        at: EntryLocation,
        repository: &str,
        mut failed: Attempt,
        sent: u64,
    ) -> Result<(), Error> {
        let what = format!("upload {} into {repository}", w.digest);
        // The streamed attempt was the first.
        let mut waits = self.ctx.retry.backoff().enumerate();
        loop {
            let delay = self.ctx.next_wait(&what, &mut waits, failed)?;
            std::thread::sleep(delay);
            match self.stream_again(w, record, at, repository)? {
                Ok(()) => {
                    self.ctx.reporter.uploaded(w.size.saturating_sub(sent));
                    return Ok(());
                }
                Err(e) => failed = e,
            }
        }
    }

    /// One more upload attempt of `w` into `repository`, from a fresh read of its entry;
    /// the outer error is the bundle's (the entry no longer reads back as verified).
    fn stream_again(
        &self,
        w: &BlobWork,
        record: &EntryRecord,
        at: EntryLocation,
        repository: &str,
    ) -> Result<Result<(), Attempt>, Error> {
        read_entry(self.bundle, record, at, |data| {
            self.stream(w, repository, data, false).1
        })
        .map_err(|source| Error::Bundle {
            path: self.bundle.to_path_buf(),
            source,
        })
    }

    /// After the first upload: mounts into the other repositories that need the blob,
    /// uploading again where a mount is refused. Returns how many were mounted.
    fn spread(
        &self,
        w: &BlobWork,
        record: &EntryRecord,
        at: EntryLocation,
    ) -> Result<usize, Error> {
        let (first, rest) = w.missing.split_first().expect("a missing repository");
        let mut mounted = 0;
        for to in rest {
            let what = format!("mount {} into {to}", w.digest);
            let done = self.runtime.block_on(
                self.ctx
                    .retry(&what, || self.ctx.session.mount(to, first, &w.digest)),
            )?;
            if done {
                mounted += 1;
                continue;
            }
            if let Err(failed) = self.stream_again(w, record, at, to)? {
                self.retry_upload(w, record, at, to, failed, w.size)?;
            }
        }
        Ok(mounted)
    }

    fn fail(&self, error: Error) -> BoxError {
        let text = error.to_string();
        self.tally
            .lock()
            .expect("not poisoned")
            .error
            .get_or_insert(error);
        text.into()
    }
}

impl EntrySink for UploadSink<'_, '_> {
    fn entry(&self, record: &EntryRecord, data: &mut dyn Read) -> Result<(), BoxError> {
        let Some(w) = self.wanted.get(record.path.as_str()) else {
            return Ok(());
        };
        // After a failed upload, no new ones, but verification goes on: a damaged entry
        // in an earlier frame must still be the error reported, not the registry's.
        if self.tally.lock().expect("not poisoned").error.is_some() {
            return Ok(());
        }
        let first = w.missing.first().expect("a missing repository");
        // Any failure waits for `verified`: a bundle that fails its hash reports that,
        // not the registry's refusal of the same bytes.
        let outcome = self.stream(w, first, data, true);
        self.streamed
            .lock()
            .expect("not poisoned")
            .insert(record.path.to_string(), outcome);
        Ok(())
    }

    fn verified(&self, record: &EntryRecord, at: EntryLocation) -> Result<(), BoxError> {
        let total = self
            .verified_bytes
            .fetch_add(record.size, Ordering::Relaxed)
            + record.size;
        self.ctx.reporter.verified(total);
        let Some(w) = self.wanted.get(record.path.as_str()) else {
            return Ok(());
        };
        let streamed = self
            .streamed
            .lock()
            .expect("not poisoned")
            .remove(record.path.as_str());
        // Not streamed: another upload had failed already (its error is reported).
        let Some((sent, outcome)) = streamed else {
            return Ok(());
        };
        let first = w.missing.first().expect("a missing repository");
        if let Err(failed) = outcome {
            self.retry_upload(w, record, at, first, failed, sent)
                .map_err(|e| self.fail(e))?;
        }
        let mounted = self.spread(w, record, at).map_err(|e| self.fail(e))?;
        let mut tally = self.tally.lock().expect("not poisoned");
        tally.pushed += 1;
        tally.mounted += mounted;
        tally.bytes += w.size;
        Ok(())
    }
}
