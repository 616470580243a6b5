//! `bundle build`: manifest → resolved images, files and RPMs in the cache → one
//! signed archive, plus its lock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use bundle_format::index::{
    BundleIndex, CniRecord, EntryRecord, FileRecord, ImageRecord, SCHEMA_VERSION,
};
use bundle_format::oci::{self, Descriptor};
use bundle_format::sign::SecretKey;
use bundle_format::write::{write_bundle, EntrySource, WriteOptions, WriteSummary};
use bundle_format::{EntryPath, Sha256Digest};
use bundle_registry::{ClientOptions, RegistryClient};
use futures_util::{StreamExt, TryStreamExt};

use crate::cache::Cache;
use crate::http::HttpSettings;
use crate::images::{self, Mirrors, PullSource, ResolvedImage};
use crate::lock::{default_lock_path, BuildLock, LockedFile, LockedImage, LOCK_VERSION};
use crate::manifest::{BundleManifest, ManifestSource};
use crate::rpm::{self, RpmFetchOptions};
use crate::{files, BuildReporter, Error};

/// What to resolve and where from: the inputs a build and a dry run share.
pub struct ResolveOptions {
    /// The manifest.
    pub manifest: ManifestSource,
    /// Content-addressed cache.
    pub cache_dir: PathBuf,
    /// Registry mirrors.
    pub mirrors: Mirrors,
    /// TLS, plain HTTP, credentials, proxies, retries.
    pub registry: ClientOptions,
    /// Parallel transfers.
    pub jobs: usize,
}

/// Everything `bundle build` needs.
pub struct BuildOptions {
    /// The manifest, cache and upstreams.
    pub resolve: ResolveOptions,
    /// Output file; default `<output_dir>/<name>-<version>.tar.zst`.
    pub output: Option<PathBuf>,
    /// Folder for the default output name.
    pub output_dir: PathBuf,
    /// Key that signs `bundle.json`.
    pub signer: SecretKey,
    /// Fail when upstream differs from the lock.
    pub locked: bool,
    /// Lock path; default beside the manifest (or the output, for the built-in one).
    pub lock_path: Option<PathBuf>,
    /// Compression.
    pub write: WriteOptions,
    /// `created` in the index (RFC 3339); default now.
    pub created: Option<String>,
}

/// What a build did.
#[derive(Debug)]
pub struct BuildSummary {
    /// The archive written.
    pub bundle: WriteSummary,
    /// The lock written.
    pub lock_path: PathBuf,
    /// The index written.
    pub index: BundleIndex,
    /// Blobs, files and packages downloaded this time.
    pub fetched: usize,
    /// Bytes downloaded this time.
    pub bytes_fetched: u64,
    /// Bytes found in the cache.
    pub bytes_cached: u64,
    /// Key that signed it.
    pub key_id: String,
}

/// Runs a build.
pub async fn build(opts: &BuildOptions, report: &dyn BuildReporter) -> Result<BuildSummary, Error> {
    let manifest = opts.resolve.manifest.load()?;
    let output = opts
        .output
        .clone()
        .unwrap_or_else(|| manifest.default_output(&opts.output_dir));
    let manifest_file = match &opts.resolve.manifest {
        ManifestSource::File(p) => Some(p.as_path()),
        ManifestSource::Default => None,
    };
    let lock_path = opts
        .lock_path
        .clone()
        .unwrap_or_else(|| default_lock_path(manifest_file, &output));
    let old_lock = BuildLock::read(&lock_path)?;
    if opts.locked && old_lock.is_none() {
        return Err(Error::Lock {
            path: lock_path,
            detail: "`--locked` needs a lock, and there is none".into(),
        });
    }
    let up = Upstream::open(&opts.resolve)?;
    let (cache, client, http) = (&up.cache, &up.client, &up.http);
    let mut resolved = up.resolve_images(&opts.resolve, &manifest, report).await?;
    check_lock(
        opts.locked,
        old_lock.as_ref(),
        &lock_path,
        &manifest,
        &resolved,
        report,
    )?;

    let (blobs, fetch_stats) =
        match fetch_content(client, http, cache, &manifest, &resolved, opts, report).await {
            Ok(r) => r,
            Err(e) => return Err(up.name_proxy(e, &opts.resolve).await),
        };
    for image in resolved.iter_mut().filter(|i| i.platforms.is_empty()) {
        image
            .platforms
            .extend(images::platform_from_config(cache, image));
    }
    let rpm_output = rpm::fetch(
        &manifest.spec.rpms,
        &up.rpm_options(
            &opts.resolve,
            &manifest,
            match opts.locked {
                true => old_lock.as_ref().map(|l| l.rpms.clone()),
                false => None,
            },
        ),
        report,
    )
    .await?;

    let (index, sources) = assemble_index(
        &manifest,
        &resolved,
        &blobs,
        cache,
        rpm_output.entries,
        rpm_output.records,
        opts.created.clone(),
    );
    let trusted = format!(
        "bundle:{} version:{} created:{}",
        index.name, index.version, index.created
    );
    let signature = opts.signer.sign(&index.to_json(), &trusted)?;
    report.write_started(index.total_size());
    let write_opts = opts.write;
    let out = output.clone();
    let idx = index.clone();
    let progress = std::sync::Arc::new(AtomicU64::new(0));
    let bundle = {
        let report_progress = |n: u64| progress.store(n, Ordering::Relaxed);
        let written = write_in_background(
            &out,
            &idx,
            &signature,
            &sources,
            write_opts,
            &report_progress,
            report,
            &progress,
        );
        written?
    };
    report.write_finished();
    let lock = BuildLock {
        lock_version: LOCK_VERSION,
        images: resolved
            .iter()
            .map(|i| LockedImage {
                reference: i.reference.clone(),
                digest: i.upstream_digest,
            })
            .collect(),
        files: index
            .files
            .iter()
            .map(|f| LockedFile {
                name: f.name.clone(),
                url: f.url.clone(),
                sha256: f.sha256,
            })
            .collect(),
        rpms: index.rpms.clone(),
    };
    lock.write(&lock_path)?;
    Ok(BuildSummary {
        bundle,
        lock_path,
        index,
        fetched: fetch_stats.0,
        bytes_fetched: fetch_stats.1,
        bytes_cached: fetch_stats.2,
        key_id: opts.signer.key_id(),
    })
}

/// Writing is blocking work (tar, zstd, file I/O); it runs on a thread of its own while
/// this one relays progress to the reporter.
#[allow(clippy::too_many_arguments)]
fn write_in_background(
    out: &std::path::Path,
    index: &BundleIndex,
    signature: &str,
    sources: &[EntrySource],
    opts: WriteOptions,
    on_progress: &(dyn Fn(u64) + Sync),
    report: &dyn BuildReporter,
    progress: &AtomicU64,
) -> Result<WriteSummary, Error> {
    std::thread::scope(|s| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let writer = s.spawn(move || {
            let result = write_bundle(out, index, Some(signature), sources, opts, on_progress);
            drop(done_tx);
            result
        });
        // Relay progress every 100 ms, and go on the moment the writer is done.
        let tick = std::time::Duration::from_millis(100);
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(tick) {
            report.written(progress.load(Ordering::Relaxed));
        }
        report.written(progress.load(Ordering::Relaxed));
        let summary = writer
            .join()
            .expect("writer thread does not panic")
            .map_err(Error::from)?;
        if !summary.seekable {
            tracing::warn!(
                "`{}` has an entry of 4 GiB or more, which the seek table cannot describe: it is written without one, and `bundle verify` and `bundle push` read it in one pass",
                out.display()
            );
        }
        Ok(summary)
    })
}

/// The cache and the clients a build or a dry run talks to upstream with, made once
/// from the [`ResolveOptions`].
pub(super) struct Upstream {
    pub cache: Cache,
    pub client: RegistryClient,
    /// Files' and RPM repositories' TLS roots and proxies.
    pub http_settings: HttpSettings,
    pub http: reqwest::Client,
}

impl Upstream {
    pub fn open(opts: &ResolveOptions) -> Result<Self, Error> {
        let cache = Cache::open(&opts.cache_dir)?;
        let client = RegistryClient::new(&opts.registry).map_err(|source| Error::Image {
            reference: "(client setup)".into(),
            source: Box::new(source),
        })?;
        let http_settings = HttpSettings {
            ca_files: opts.registry.ca_files.clone(),
            proxy: opts.registry.proxy.clone(),
        };
        if http_settings.proxy.is_set() {
            tracing::info!("proxies: {}", http_settings.proxy.describe());
        }
        let http = http_client(&http_settings)?;
        Ok(Self {
            cache,
            client,
            http_settings,
            http,
        })
    }

    /// Every image of `manifest` resolved to what the bundle stores (manifests cached,
    /// no blob fetched); a failure behind a proxy is told as the proxy's when it is.
    pub async fn resolve_images(
        &self,
        opts: &ResolveOptions,
        manifest: &BundleManifest,
        report: &dyn BuildReporter,
    ) -> Result<Vec<ResolvedImage>, Error> {
        let (client, cache, mirrors) = (&self.client, &self.cache, &opts.mirrors);
        let resolved = futures_util::stream::iter(&manifest.spec.images)
            .map(|r| async move {
                let image = images::resolve(
                    client,
                    cache,
                    r,
                    mirrors.source_of(r),
                    &manifest.spec.platforms,
                )
                .await?;
                report.resolved(&image);
                Ok::<_, Error>(image)
            })
            .buffered(opts.jobs.max(1))
            .try_collect()
            .await;
        match resolved {
            Ok(r) => Ok(r),
            Err(e) => Err(self.name_proxy(e, opts).await),
        }
    }

    /// The RPM step's options: this cache, these TLS roots and proxies.
    pub fn rpm_options(
        &self,
        opts: &ResolveOptions,
        manifest: &BundleManifest,
        locked: Option<Vec<bundle_format::index::RpmRepoRecord>>,
    ) -> RpmFetchOptions {
        RpmFetchOptions {
            cache_dir: opts.cache_dir.clone(),
            work_dir: opts.cache_dir.join("work").join(&manifest.metadata.name),
            http: self.http_settings.clone(),
            jobs: opts.jobs.max(1),
            locked,
        }
    }

    /// A registry error that is the proxy's doing, told as such. A pull's error does not
    /// say whether the proxy or the registry answered (a proxy refusing `CONNECT` reads
    /// as a failed connection), so when a proxy carries the registry's traffic, one
    /// probe of `/v2/` through the same proxy asks it.
    pub async fn name_proxy(&self, e: Error, opts: &ResolveOptions) -> Error {
        let Error::Image { reference, source } = e else {
            return e;
        };
        let proxy = &opts.registry.proxy;
        let named = reference.split('/').next().unwrap_or_default();
        // The registry pulled from: the `--mirror` for it, if any.
        let registry = opts.mirrors.0.get(named).map_or(named, String::as_str);
        let scheme = match opts.registry.plain_http.iter().any(|h| h == registry) {
            true => "http",
            false => "https",
        };
        let url = format!("{scheme}://{registry}/v2/");
        if proxy.for_url(&url).is_none() {
            return Error::Image { reference, source };
        }
        let refusal = match self.http.get(&url).send().await {
            Ok(resp) => proxy.diagnose(&url, None, Some(resp.status().as_u16())),
            Err(e) => proxy.diagnose(&url, Some(&crate::rpm::error_chain(&e)), None),
        };
        match refusal {
            Some(refusal) => Error::Proxy {
                what: format!("image `{reference}`"),
                source: refusal,
            },
            None => Error::Image { reference, source },
        }
    }
}

fn http_client(settings: &HttpSettings) -> Result<reqwest::Client, Error> {
    let setup = |detail: String| Error::FileDownload {
        name: "(client setup)".into(),
        url: String::new(),
        detail,
    };
    let b = settings.builder().map_err(|e| match e.path {
        Some(path) => Error::Lock {
            path,
            detail: e.reason,
        },
        None => setup(e.reason),
    })?;
    b.build().map_err(|e| setup(e.to_string()))
}

fn check_lock(
    locked: bool,
    lock: Option<&BuildLock>,
    lock_path: &std::path::Path,
    manifest: &BundleManifest,
    images: &[ResolvedImage],
    report: &dyn BuildReporter,
) -> Result<(), Error> {
    let Some(lock) = lock else { return Ok(()) };
    for image in images {
        match (lock.image(&image.reference), locked) {
            (Some(l), _) if l.digest == image.upstream_digest => {}
            (Some(l), true) => {
                return Err(Error::LockMismatch {
                    what: image.reference.to_string(),
                    locked: l.digest.to_string(),
                    upstream: image.upstream_digest.to_string(),
                })
            }
            (Some(l), false) => report.warn(&format!(
                "`{}` moved upstream: was {}, now {}; the lock is updated",
                image.reference, l.digest, image.upstream_digest
            )),
            (None, true) => {
                return Err(Error::LockMissing {
                    what: image.reference.to_string(),
                    lock: lock_path.into(),
                })
            }
            (None, false) => {}
        }
    }
    if locked {
        for f in &manifest.spec.files {
            let pinned = Sha256Digest::from_hex(&f.sha256).expect("checked when read");
            match lock.file(&f.name) {
                Some(l) if l.sha256 == pinned => {}
                Some(l) => {
                    return Err(Error::LockMismatch {
                        what: format!("file {}", f.name),
                        locked: l.sha256.hex(),
                        upstream: f.sha256.clone(),
                    })
                }
                None => {
                    return Err(Error::LockMissing {
                        what: format!("file {}", f.name),
                        lock: lock_path.into(),
                    })
                }
            }
        }
    }
    Ok(())
}

/// (fetched count, bytes fetched, bytes cached)
type FetchStats = (usize, u64, u64);

/// Fetches every blob not yet cached (each once, however many images share it), then
/// the files. Returns every blob the layout needs with its size.
#[allow(clippy::too_many_arguments)]
async fn fetch_content(
    client: &RegistryClient,
    http: &reqwest::Client,
    cache: &Cache,
    manifest: &BundleManifest,
    images: &[ResolvedImage],
    opts: &BuildOptions,
    report: &dyn BuildReporter,
) -> Result<(BTreeMap<Sha256Digest, u64>, FetchStats), Error> {
    let mut wanted: BTreeMap<Sha256Digest, (u64, &PullSource, &ResolvedImage)> = BTreeMap::new();
    let mut all = BTreeMap::new();
    for image in images {
        for (d, s) in &image.manifests {
            all.insert(*d, *s);
        }
        for (d, s) in &image.blobs {
            all.insert(*d, *s);
            wanted.entry(*d).or_insert((*s, &image.source, image));
        }
    }
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(d, (s, _, _))| cache.blob_size(d) != Some(*s))
        .collect();
    let to_fetch: u64 = missing.iter().map(|(_, (s, _, _))| s).sum();
    let cached: u64 = all.values().sum::<u64>() - to_fetch;
    report.fetch_started(to_fetch, cached);
    let count = missing.len();
    futures_util::stream::iter(missing)
        .map(|(digest, (size, source, image))| async move {
            client
                .pull_blob_to_file(
                    &source.registry,
                    &source.repository,
                    digest,
                    &cache.blob_path(digest),
                )
                .await
                .map_err(|e| Error::Image {
                    reference: image.reference.to_string(),
                    source: Box::new(e),
                })?;
            report.fetched(*size);
            Ok::<_, Error>(())
        })
        .buffer_unordered(opts.resolve.jobs.max(1))
        .try_collect::<()>()
        .await?;
    let mut stats = (count, to_fetch, cached);
    for f in &manifest.spec.files {
        let (size, fetched) = files::fetch(
            http,
            &opts.resolve.registry.proxy,
            cache,
            f,
            &opts.resolve.registry.retry,
            &|n| report.fetched(n),
        )
        .await?;
        if fetched {
            stats.0 += 1;
            stats.1 += size;
        } else {
            stats.2 += size;
        }
    }
    report.fetch_finished();
    Ok((all, stats))
}

fn entry(path: String, size: u64, sha256: Sha256Digest) -> EntryRecord {
    EntryRecord {
        path: EntryPath::new(&path).expect("generated paths are safe"),
        size,
        sha256,
    }
}

/// Lays out the archive: `images/oci-layout`, `images/index.json`, blobs sorted by
/// digest, files in manifest order, then the RPM repositories.
fn assemble_index(
    manifest: &BundleManifest,
    images: &[ResolvedImage],
    blobs: &BTreeMap<Sha256Digest, u64>,
    cache: &Cache,
    rpm_entries: Vec<(EntryRecord, PathBuf)>,
    rpm_records: Vec<bundle_format::RpmRepoRecord>,
    created: Option<String>,
) -> (BundleIndex, Vec<EntrySource>) {
    let mut entries = Vec::new();
    let mut sources = Vec::new();
    let mut push = |record: EntryRecord, source: EntrySource| {
        entries.push(record);
        sources.push(source);
    };
    if !images.is_empty() {
        let named: Vec<(String, Descriptor)> = images
            .iter()
            .map(|i| (i.reference.to_string(), i.top.clone()))
            .collect();
        let layout_index = oci::layout_index(&named);
        push(
            entry(
                "images/oci-layout".into(),
                oci::OCI_LAYOUT_FILE.len() as u64,
                Sha256Digest::of(oci::OCI_LAYOUT_FILE),
            ),
            EntrySource::Bytes(oci::OCI_LAYOUT_FILE.to_vec()),
        );
        push(
            entry(
                "images/index.json".into(),
                layout_index.len() as u64,
                Sha256Digest::of(&layout_index),
            ),
            EntrySource::Bytes(layout_index),
        );
        for (digest, size) in blobs {
            push(
                entry(
                    format!("{}{}", bundle_format::layout::BLOBS, digest.hex()),
                    *size,
                    *digest,
                ),
                EntrySource::File(cache.blob_path(digest)),
            );
        }
    }
    let mut files = Vec::new();
    for f in &manifest.spec.files {
        let sha256 = Sha256Digest::from_hex(&f.sha256).expect("checked when read");
        let size = cache.blob_size(&sha256).expect("fetched before assembly");
        let path = format!("{}{}", bundle_format::layout::FILES, f.name);
        push(
            entry(path.clone(), size, sha256),
            EntrySource::File(cache.blob_path(&sha256)),
        );
        files.push(FileRecord {
            name: f.name.clone(),
            url: f.url.clone(),
            path: EntryPath::new(&path).expect("checked name"),
            size,
            sha256,
        });
    }
    for (record, path) in rpm_entries {
        push(record, EntrySource::File(path));
    }
    let index = BundleIndex {
        schema_version: SCHEMA_VERSION,
        name: manifest.metadata.name.clone(),
        version: manifest.metadata.version.clone(),
        created: created.unwrap_or_else(now_rfc3339),
        generator: concat!("bundle ", env!("CARGO_PKG_VERSION")).into(),
        kubernetes_version: manifest.spec.kubernetes_version.clone(),
        cni: manifest.spec.cni.as_ref().map(|c| CniRecord {
            name: c.name.clone(),
            manifest: c.manifest.clone(),
        }),
        entries,
        images: images
            .iter()
            .map(|i| ImageRecord {
                reference: i.reference.clone(),
                digest: i.top.digest,
                media_type: i.top.media_type.clone(),
                platforms: i.platforms.clone(),
                source_digest: (i.upstream_digest != i.top.digest).then_some(i.upstream_digest),
                size: i.size(),
            })
            .collect(),
        files,
        rpms: rpm_records,
    };
    (index, sources)
}

/// Now, or `SOURCE_DATE_EPOCH` for reproducible builds.
fn now_rfc3339() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
