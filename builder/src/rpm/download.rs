//! Streaming downloads into the content-addressed cache (`<cache>/blobs/sha256/<hex>`):
//! bytes flow through the hashers into a `.partial` file that is renamed once the digest
//! checks out, so a cached blob is always complete and a re-run skips it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bundle_registry::{ProxyRefusal, ProxySettings};

use bundle_format::digest::Hasher;
use bundle_format::Sha256Digest;
use sha2::Digest;
use tokio::io::AsyncWriteExt;

/// How many times a request is tried on 5xx, 429 and connection errors.
const ATTEMPTS: u32 = 4;

/// A checksum an upstream publishes for a file (repomd for metadata, primary for RPMs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// SHA-256 (the cache key itself).
    Sha256(Sha256Digest),
    /// SHA-224 / SHA-384 / SHA-512, hex, checked beside the SHA-256 that keys the cache.
    Other { kind: &'static str, hex: String },
}

impl Expected {
    /// From a repo metadata checksum. SHA-1 and MD5 are refused: they do not protect
    /// against a tampered mirror, and every maintained repo publishes SHA-256.
    pub(crate) fn from_metadata(c: &rpmrepo_metadata::Checksum) -> Result<Self, String> {
        use rpmrepo_metadata::Checksum as C;
        let other = |kind: &'static str, hex: &str| Expected::Other {
            kind,
            hex: hex.to_ascii_lowercase(),
        };
        Ok(match c {
            C::Sha256(hex) => Expected::Sha256(
                Sha256Digest::from_hex(&hex.to_ascii_lowercase())
                    .map_err(|e| format!("bad sha256 `{hex}`: {e}"))?,
            ),
            C::Sha224(hex) => other("sha224", hex),
            C::Sha384(hex) => other("sha384", hex),
            C::Sha512(hex) => other("sha512", hex),
            C::Sha1(_) => return Err("checksum type `sha1` is too weak to trust".into()),
            C::Md5(_) => return Err("checksum type `md5` is too weak to trust".into()),
            C::Unknown(_) | C::Empty => return Err("no usable checksum".into()),
        })
    }

    /// `sha256:ab12…`.
    pub(crate) fn display(&self) -> String {
        match self {
            Expected::Sha256(d) => format!("sha256:{}", d.hex()),
            Expected::Other { kind, hex } => format!("{kind}:{hex}"),
        }
    }
}

/// A blob in the cache.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub sha256: Sha256Digest,
    pub size: u64,
    pub path: PathBuf,
}

/// `<cache>/blobs/sha256/<hex>`.
pub(crate) fn blob_path(cache_dir: &Path, digest: &Sha256Digest) -> PathBuf {
    cache_dir.join("blobs").join("sha256").join(digest.hex())
}

/// One repo's way to the network: its client (TLS roots, client certificate, proxies
/// set), the build's proxies to name in errors, and its Basic credentials. No `Debug`:
/// it holds a password.
#[derive(Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub proxy: Arc<ProxySettings>,
    /// `username` and the password read from `passwordEnv`.
    pub basic: Option<(String, String)>,
}

impl Http {
    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        let req = self.client.get(url);
        match &self.basic {
            // reqwest marks the header sensitive: it is never logged.
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }
}

/// What went wrong with one download, before the caller names the subject.
#[derive(Debug)]
pub(crate) enum DownloadError {
    /// The proxy refused the request (it is named; no retry).
    Proxy(ProxyRefusal),
    /// Connection failed or the server answered with an error status (after retries).
    Unreachable(String),
    /// The server answered 404 / 403 / … (no retry).
    Status(reqwest::StatusCode),
    /// The bytes do not match the published checksum.
    Mismatch { expected: String, actual: String },
    /// Local file system.
    Io(PathBuf, std::io::Error),
}

fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(attempt))
}

/// GETs `url`, retrying with backoff on 5xx, 429 and connection errors. A proxy's
/// refusal is not retried: it names the proxy instead.
pub(crate) async fn get(http: &Http, url: &str) -> Result<reqwest::Response, DownloadError> {
    let mut attempt = 0;
    loop {
        let last = attempt + 1 >= ATTEMPTS;
        let sent = http.request(url).send().await;
        let refusal = match &sent {
            Ok(resp) => http.proxy.diagnose(url, None, Some(resp.status().as_u16())),
            Err(e) => http.proxy.diagnose(url, Some(&error_chain(e)), None),
        };
        if let Some(refusal) = refusal {
            return Err(DownloadError::Proxy(refusal));
        }
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(resp),
            Ok(resp) if retryable(resp.status()) && !last => {
                tracing::debug!(url, status = %resp.status(), attempt, "retrying");
            }
            Ok(resp) if retryable(resp.status()) => {
                return Err(DownloadError::Unreachable(format!(
                    "HTTP {} after {ATTEMPTS} attempts",
                    resp.status()
                )))
            }
            Ok(resp) => return Err(DownloadError::Status(resp.status())),
            Err(e) if !last && (e.is_connect() || e.is_timeout() || e.is_request()) => {
                tracing::debug!(url, error = %e, attempt, "retrying");
            }
            Err(e) => {
                return Err(DownloadError::Unreachable(
                    http.proxy.redact(&error_chain(&e)),
                ))
            }
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// A small body (repomd.xml, a GPG key) into memory, with retries.
pub(crate) async fn get_small(
    http: &Http,
    url: &str,
    limit: u64,
) -> Result<Vec<u8>, DownloadError> {
    let mut attempt = 0;
    loop {
        let resp = get(http, url).await?;
        let mut body = Vec::new();
        let mut resp = resp;
        let result: Result<(), reqwest::Error> = async {
            while let Some(chunk) = resp.chunk().await? {
                body.extend_from_slice(&chunk);
                if body.len() as u64 > limit {
                    break;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) if body.len() as u64 > limit => {
                return Err(DownloadError::Unreachable(format!(
                    "response larger than {limit} bytes"
                )))
            }
            Ok(()) => return Ok(body),
            Err(e) if attempt + 1 < ATTEMPTS => {
                tracing::debug!(url, error = %e, attempt, "body failed, retrying")
            }
            Err(e) => {
                return Err(DownloadError::Unreachable(
                    http.proxy.redact(&error_chain(&e)),
                ))
            }
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// Full error text including sources (reqwest hides the useful part in the chain).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

static PARTIAL: AtomicU64 = AtomicU64::new(0);

enum OtherHasher {
    None,
    Sha224(sha2::Sha224),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl OtherHasher {
    fn for_expected(e: &Expected) -> Self {
        match e {
            Expected::Other { kind: "sha224", .. } => OtherHasher::Sha224(sha2::Sha224::new()),
            Expected::Other { kind: "sha384", .. } => OtherHasher::Sha384(sha2::Sha384::new()),
            Expected::Other { kind: "sha512", .. } => OtherHasher::Sha512(sha2::Sha512::new()),
            _ => OtherHasher::None,
        }
    }
    fn update(&mut self, data: &[u8]) {
        match self {
            OtherHasher::None => {}
            OtherHasher::Sha224(h) => h.update(data),
            OtherHasher::Sha384(h) => h.update(data),
            OtherHasher::Sha512(h) => h.update(data),
        }
    }
    fn finish(self) -> String {
        match self {
            OtherHasher::None => String::new(),
            OtherHasher::Sha224(h) => hex::encode(h.finalize()),
            OtherHasher::Sha384(h) => hex::encode(h.finalize()),
            OtherHasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Downloads `url` into the cache, streaming, checking `expected`. Skips the download
/// when a blob with the expected SHA-256 is already cached. Retries on transient errors,
/// also when the connection drops mid-body.
pub(crate) async fn to_cache(
    http: &Http,
    cache_dir: &Path,
    url: &str,
    expected: &Expected,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Blob, DownloadError> {
    if let Expected::Sha256(d) = expected {
        let path = blob_path(cache_dir, d);
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            tracing::debug!(url, "cached");
            return Ok(Blob {
                sha256: *d,
                size: meta.len(),
                path,
            });
        }
    }
    let dir = cache_dir.join("blobs").join("sha256");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| DownloadError::Io(dir.clone(), e))?;
    let partial = dir.join(format!(
        ".partial-{}-{}",
        std::process::id(),
        PARTIAL.fetch_add(1, Ordering::Relaxed)
    ));

    let mut attempt = 0;
    let (sha256, size, other) = loop {
        let resp = get(http, url).await?;
        match stream_body(resp, &partial, expected, on_bytes).await {
            Ok(done) => break done,
            Err(StreamError::Io(e)) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(DownloadError::Io(partial, e));
            }
            Err(StreamError::Net(e)) if attempt + 1 < ATTEMPTS => {
                tracing::debug!(url, error = %e, attempt, "body failed, retrying");
            }
            Err(StreamError::Net(e)) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(DownloadError::Unreachable(
                    http.proxy.redact(&error_chain(&e)),
                ));
            }
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    };

    let mismatch = match expected {
        Expected::Sha256(d) => (*d != sha256).then(|| format!("sha256:{}", sha256.hex())),
        Expected::Other { kind, hex } => (*hex != other).then(|| format!("{kind}:{other}")),
    };
    if let Some(actual) = mismatch {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(DownloadError::Mismatch {
            expected: expected.display(),
            actual,
        });
    }
    let path = blob_path(cache_dir, &sha256);
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|e| DownloadError::Io(path.clone(), e))?;
    Ok(Blob { sha256, size, path })
}

enum StreamError {
    Net(reqwest::Error),
    Io(std::io::Error),
}

async fn stream_body(
    mut resp: reqwest::Response,
    partial: &Path,
    expected: &Expected,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(Sha256Digest, u64, String), StreamError> {
    let file = tokio::fs::File::create(partial)
        .await
        .map_err(StreamError::Io)?;
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut sha = Hasher::new();
    let mut other = OtherHasher::for_expected(expected);
    while let Some(chunk) = resp.chunk().await.map_err(StreamError::Net)? {
        sha.update(&chunk);
        other.update(&chunk);
        out.write_all(&chunk).await.map_err(StreamError::Io)?;
        on_bytes(chunk.len() as u64);
    }
    out.flush().await.map_err(StreamError::Io)?;
    out.into_inner().sync_all().await.map_err(StreamError::Io)?;
    let size = sha.len();
    Ok((sha.finish(), size, other.finish()))
}
