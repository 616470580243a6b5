//! The verifying pass that uploads: `jobs` threads each read their own zstd frames (a
//! bundle without seek table is read by one); a blob the registry still lacks streams
//! from the archive straight into its upload while it is hashed, then is mounted into
//! the other repositories that need it; every other entry is hashed and dropped. No
//! scratch disk: a failed upload is repeated from a fresh read of its frame, once the
//! verifier confirmed the hash.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bundle_format::verify::{
    read_entry, verify, BoxError, EntryLocation, EntrySink, VerifyOptions,
};
use bundle_format::{EntryRecord, Sha256Digest};

use super::ctx::Ctx;
use super::http::Attempt;
use super::presence::BlobWork;
use super::PushPlan;
use crate::Error;

/// How the verifying pass checks the bundle.
pub(super) struct Verification {
    pub key: Option<bundle_format::sign::PublicKey>,
    pub allow_unsigned: bool,
    pub jobs: usize,
}

/// Verifies the whole bundle and uploads, on the way, every blob still missing from some
/// repository of `work`. Blocks this worker thread while the runtime's other workers
/// drive the requests.
pub(super) fn verify_and_upload(
    ctx: &Ctx<'_>,
    bundle: &Path,
    plan: &PushPlan,
    work: &BTreeMap<Sha256Digest, BlobWork>,
    check: Verification,
    started: Instant,
) -> Result<UploadTally, Error> {
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
    ctx.reporter
        .transfer_started(upload_bytes, present_bytes, plan.index.total_size());
    let sink = UploadSink::new(ctx, bundle, to_upload);
    let verify_opts = VerifyOptions {
        key: check.key,
        allow_unsigned: check.allow_unsigned,
        threads: check.jobs.min(MAX_UPLOAD_THREADS),
    };
    // The verifier's threads block on reads and uploads; the runtime's other workers
    // drive the requests meanwhile.
    let verified = tokio::task::block_in_place(|| verify(bundle, &verify_opts, &sink));
    ctx.reporter.transfer_finished();
    tracing::info!(
        "bundle verified and blobs uploaded after {:.2?}",
        started.elapsed()
    );
    let uploads = sink.finish();
    match verified {
        Ok(_) => Ok(uploads),
        Err(bundle_format::Error::Consumer { .. }) if uploads.error.is_some() => {
            Err(uploads.error.expect("checked"))
        }
        Err(source) => Err(Error::Bundle {
            path: bundle.to_path_buf(),
            source,
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
pub(super) struct UploadTally {
    pub pushed: usize,
    pub mounted: usize,
    pub bytes: u64,
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
