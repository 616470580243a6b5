//! Pulling from registries: manifests raw, blobs streamed to files.
//!
//! Pulls speak the distribution protocol through the same session as pushes
//! ([`crate::push::http::Session`], read-only: tokens with `pull` scope), not through
//! oci-client, for three reasons:
//!
//! - TLS: oci-client builds its own reqwest client from a list of extra roots and cannot
//!   take a rustls configuration, so the verifier of [`crate::tls`] (a self-signed
//!   `openssl req -x509` certificate the user trusts, client certificates, certs.d
//!   folders) could not be used, and such registries would be refused
//!   (`CaUsedAsEndEntity`);
//! - rate limits: its errors keep the status but drop the `Retry-After` header, which
//!   Docker Hub's `429 TOOMANYREQUESTS` comes with;
//! - credentials: it takes one `RegistryAuth` per call, while a build pulls from many
//!   registries, each with its own credentials (or none).
//!
//! Each registry gets one session, made on first use with that registry's TLS
//! ([`crate::tls::SiteTls`]) and credentials (given for it, else docker's or podman's
//! stored login: [`crate::credentials::from_config_files`]), and pinged once. Every
//! request walks the [`RetryPolicy`]; blobs are written through a `.partial` file and
//! hashed on the way, so an interrupted pull never leaves a truncated blob under its
//! final name and memory does not grow with blob size.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bundle_format::digest::Hasher;
use bundle_format::{oci, Sha256Digest};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

use crate::push::http::{Attempt, AttemptResult, Connection, Session, MANIFEST_ACCEPT};
use crate::tls::SiteTls;
use crate::{credentials, Error, RetryPolicy};

/// Username and password for a registry. The password never appears in `Debug`.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `HOST:PORT`s spoken to over plain HTTP.
    pub plain_http: Vec<String>,
    /// PEM files with extra CA certificates to trust (or a registry's self-signed
    /// certificate itself), for every registry.
    pub ca_files: Vec<PathBuf>,
    /// A folder as skopeo's `--cert-dir`. With neither this nor `ca_files`, each
    /// registry's `certs.d` folders are read (see [`crate::tls`]).
    pub cert_dir: Option<PathBuf>,
    /// Credentials given for named registries (`HOST[:PORT]` as the manifest or a
    /// mirror names it). Every other registry gets docker's or podman's stored login,
    /// or none.
    pub credentials: BTreeMap<String, Credentials>,
    /// Retry policy; the default retries 5 times.
    pub retry: RetryPolicy,
    /// Proxies (`HTTPS_PROXY`…), the same for pulls as for every other download.
    pub proxy: crate::ProxySettings,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The exact bytes (their digest is the manifest's identity).
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub digest: Sha256Digest,
    /// Media type from the manifest's `mediaType` field (or inferred for old indexes).
    pub media_type: String,
}

/// A registry client for pulls, from any number of registries.
pub struct RegistryClient {
    opts: ClientOptions,
    registries: Mutex<HashMap<String, Arc<OnceCell<Arc<Upstream>>>>>,
}

/// One registry's session, and where its credentials came from (for messages).
struct Upstream {
    session: Session,
    credentials_from: Option<String>,
}

/// Largest manifest read; real ones are a few KiB, so a larger answer is refused
/// rather than held in memory.
const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

impl RegistryClient {
    /// Builds a client; reads the CA files and the `--cert-dir` folder once, so that a
    /// bad one fails before any request.
    pub fn new(opts: &ClientOptions) -> Result<Self, Error> {
        if !opts.ca_files.is_empty() || opts.cert_dir.is_some() {
            SiteTls::load("", &opts.ca_files, opts.cert_dir.as_deref())?;
        }
        Ok(Self {
            opts: opts.clone(),
            registries: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches a manifest or index by tag or digest, raw. When `selector` is a digest,
    /// the content is checked against it.
    pub async fn pull_manifest(
        &self,
        registry: &str,
        repository: &str,
        selector: &str,
    ) -> Result<RawManifest, Error> {
        let upstream = self.upstream(registry, repository).await?;
        let sep = if selector.starts_with("sha256:") {
            "@"
        } else {
            ":"
        };
        let what = format!("{repository}{sep}{selector}");
        let bytes = self
            .attempts(&format!("manifest {what}"), || {
                get_manifest(&upstream.session, repository, selector, &what)
            })
            .await
            .map_err(|e| pull_error(registry, repository, &upstream, &self.opts.retry, e))?;
        let digest = Sha256Digest::of(&bytes);
        if let Ok(pinned) = selector.parse::<Sha256Digest>() {
            if pinned != digest {
                return Err(Error::DigestMismatch {
                    what,
                    registry: registry.into(),
                    expected: pinned.to_string(),
                    found: digest.to_string(),
                });
            }
        }
        let media_type = oci::media_type_of(&bytes).ok_or_else(|| Error::Protocol {
            registry: registry.into(),
            what: what.clone(),
            detail: "the manifest is not JSON with a known media type".into(),
        })?;
        Ok(RawManifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Streams a blob into `dest` (through `dest.partial`), checking its digest.
    pub async fn pull_blob_to_file(
        &self,
        registry: &str,
        repository: &str,
        digest: &Sha256Digest,
        dest: &Path,
    ) -> Result<(), Error> {
        let upstream = self.upstream(registry, repository).await?;
        let partial = partial_path(dest);
        let result = self
            .attempts(&format!("blob {digest}"), || {
                get_blob(&upstream.session, repository, digest, &partial)
            })
            .await;
        match result {
            Ok(()) => tokio::fs::rename(&partial, dest)
                .await
                .map_err(|source| Error::Io {
                    path: dest.into(),
                    source,
                }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(pull_error(
                    registry,
                    repository,
                    &upstream,
                    &self.opts.retry,
                    e,
                ))
            }
        }
    }

    /// Runs one request with the retry policy: transient failures back off, a
    /// `Retry-After` is honoured up to the policy's cap.
    async fn attempts<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = AttemptResult<T>>,
    {
        self.opts
            .retry
            .run_with(what, Attempt::retry, op)
            .await
            .map_err(|a| a.error)
    }

    /// The session for `registry`, made and pinged on first use. `repository` is what
    /// the caller is about to pull (for the message when credentials are refused).
    async fn upstream(&self, registry: &str, repository: &str) -> Result<Arc<Upstream>, Error> {
        let cell = self
            .registries
            .lock()
            .expect("registries lock")
            .entry(registry.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let upstream = Arc::new(self.connect(registry).await?);
            self.attempts(&format!("GET /v2/ of {registry}"), || {
                upstream.session.ping()
            })
            .await
            .map_err(|e| pull_error(registry, repository, &upstream, &self.opts.retry, e))?;
            Ok(upstream)
        })
        .await
        .cloned()
    }

    /// A session with `registry`'s TLS and credentials.
    async fn connect(&self, registry: &str) -> Result<Upstream, Error> {
        let (credentials, credentials_from) = match self.opts.credentials.get(registry) {
            Some(c) => (Some(c.clone()), Some("`--registry-login`".to_string())),
            None => {
                // A credential helper is a process: keep it off the runtime's workers.
                let name = registry.to_string();
                let found =
                    tokio::task::spawn_blocking(move || credentials::from_config_files(&name))
                        .await
                        .expect("credential lookup does not panic")?;
                let from = found
                    .as_ref()
                    .map(|_| "docker's or podman's stored login".to_string());
                (found, from)
            }
        };
        if let Some(c) = &credentials {
            tracing::info!(
                "registry `{registry}`: account `{}` ({})",
                c.username,
                credentials_from.as_deref().unwrap_or_default()
            );
        }
        let connection = Connection {
            host: api_host(registry).to_string(),
            plain_http: self.opts.plain_http.iter().any(|h| h == registry),
            ca_files: self.opts.ca_files.clone(),
            cert_dir: self.opts.cert_dir.clone(),
            credentials,
            proxy: Some(self.opts.proxy.clone()),
        };
        Ok(Upstream {
            session: Session::new(&connection)?.read_only(),
            credentials_from,
        })
    }
}

/// Where a registry's API answers: Docker Hub's name is not its API host.
fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

async fn get_manifest(
    session: &Session,
    repository: &str,
    selector: &str,
    what: &str,
) -> AttemptResult<Vec<u8>> {
    let url = format!("{}/v2/{repository}/manifests/{selector}", session.base());
    let resp = session
        .send(&[pull_scope(repository)], &url, |c| {
            Ok(c.get(&url).header(ACCEPT, MANIFEST_ACCEPT))
        })
        .await?;
    let mut resp = match resp.status() {
        s if s.is_success() => resp,
        StatusCode::NOT_FOUND => {
            return Err(Attempt::from(Error::NotFound {
                reference: what.into(),
                registry: session.host().into(),
            }))
        }
        s => {
            return Err(refused_or_status(session, &format!("GET manifest {what}"), resp, s).await)
        }
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| session.connect_error(&url, e))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(Attempt::from(Error::Protocol {
                registry: session.host().into(),
                what: what.into(),
                detail: format!("the manifest is larger than {MAX_MANIFEST_SIZE} bytes"),
            }));
        }
    }
    Ok(bytes)
}

/// One attempt at a blob: `GET` (following a redirect to storage, as Docker Hub's), the
/// body written to `partial` and hashed as it arrives.
async fn get_blob(
    session: &Session,
    repository: &str,
    digest: &Sha256Digest,
    partial: &Path,
) -> AttemptResult<()> {
    let url = format!("{}/v2/{repository}/blobs/{digest}", session.base());
    let what = format!("GET blob {repository}@{digest}");
    let resp = session
        .send(&[pull_scope(repository)], &url, |c| Ok(c.get(&url)))
        .await?;
    let mut resp = match resp.status() {
        s if s.is_success() => resp,
        s => return Err(refused_or_status(session, &what, resp, s).await),
    };
    let io = |source| Error::Io {
        path: partial.into(),
        source,
    };
    let file = tokio::fs::File::create(partial).await.map_err(io)?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Hasher::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| session.connect_error(&url, e))?
    {
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    out.into_inner().sync_data().await.map_err(io)?;
    let found = hasher.finish();
    if found != *digest {
        // A proxy or a storage backend handing out wrong content: try once more.
        return Err(Attempt {
            error: Error::DigestMismatch {
                what: format!("blob {repository}@{digest}"),
                registry: session.host().into(),
                expected: digest.to_string(),
                found: found.to_string(),
            },
            transient: true,
        });
    }
    Ok(())
}

/// 401 and 403 after the session's token dance mean the credentials (or their absence)
/// were refused; other statuses are the session's (5xx and 429 transient).
async fn refused_or_status(
    session: &Session,
    what: &str,
    resp: reqwest::Response,
    status: StatusCode,
) -> Attempt {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Attempt::from(Error::BadCredentials {
            registry: session.host().into(),
            account: session.account(),
            checked_at: what.into(),
        }),
        s => session.status_error(what, resp, s).await,
    }
}

/// Names the registry as the manifest or mirror does, and turns the session's errors
/// into a puller's: refused credentials, the rate limit, an unreachable registry.
fn pull_error(
    registry: &str,
    repository: &str,
    upstream: &Upstream,
    retry: &RetryPolicy,
    e: Error,
) -> Error {
    match e {
        Error::BadCredentials { account, .. } | Error::Denied { account, .. } => {
            Error::PullRefused {
                registry: registry.into(),
                repository: repository.into(),
                account,
                from: upstream.credentials_from.clone(),
            }
        }
        Error::Status {
            status: 429,
            what,
            detail,
            retry_after,
            ..
        } => Error::RateLimited {
            registry: registry.into(),
            what,
            account: upstream.session.account(),
            detail,
            retry_after: retry_after.map(secs),
            max_wait: secs(retry.max_retry_after),
        },
        Error::NotFound { reference, .. } => Error::NotFound {
            reference,
            registry: registry.into(),
        },
        Error::Connect { url, source, .. } => Error::Unreachable {
            registry: registry.into(),
            url,
            source,
        },
        other => other,
    }
}

/// Whole seconds, for messages (a wait of more than 136 years reads as that).
fn secs(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_debug_names_accounts_but_never_passwords() {
        let opts = ClientOptions {
            credentials: BTreeMap::from([(
                "mirror.corp:5000".to_string(),
                Credentials {
                    username: "ci".into(),
                    password: "s3cret-Pa55".into(),
                },
            )]),
            ..Default::default()
        };
        let shown = format!("{opts:?}");
        assert!(
            shown.contains("mirror.corp:5000") && shown.contains("\"ci\""),
            "{shown}"
        );
        assert!(!shown.contains("s3cret-Pa55"), "{shown}");
    }

    #[test]
    fn docker_hub_is_asked_at_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("quay.io"), "quay.io");
    }
}
