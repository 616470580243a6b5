//! Pulling from registries with `oci-client`.
//!
//! oci-client does the protocol work (token challenges, Basic exchanged at the Bearer
//! realm, TLS, digest checks). This wrapper adds what it leaves out: retries with
//! backoff, writing blobs through a `.partial` file so an interrupted pull never leaves
//! a truncated blob under its final name, and errors that name registry and object.
//! `Client::pull` is never used: it collects every layer in memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bundle_format::{oci, Sha256Digest};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::io::AsyncWriteExt;

use crate::{Error, RetryPolicy};

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
    /// PEM files with extra CA certificates to trust.
    pub ca_files: Vec<PathBuf>,
    /// Credentials, when the registry needs them (one set for all registries).
    pub credentials: Option<Credentials>,
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

/// A registry client for pulls.
pub struct RegistryClient {
    client: Client,
    auth: RegistryAuth,
    retry: RetryPolicy,
}

const ACCEPTED: &[&str] = &[
    oci::MEDIA_OCI_INDEX,
    oci::MEDIA_OCI_MANIFEST,
    oci::MEDIA_DOCKER_LIST,
    oci::MEDIA_DOCKER_MANIFEST,
];

impl RegistryClient {
    /// Builds a client; reads the CA files.
    pub fn new(opts: &ClientOptions) -> Result<Self, Error> {
        let mut extra_root_certificates = Vec::new();
        for path in &opts.ca_files {
            let data = std::fs::read(path).map_err(|e| Error::CaFile {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            if !data
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(Error::CaFile {
                    path: path.clone(),
                    detail: "no PEM certificate in it".into(),
                });
            }
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let protocol = if opts.plain_http.is_empty() {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(opts.plain_http.clone())
        };
        let config = ClientConfig {
            protocol,
            extra_root_certificates,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            // Explicit, so pulls take the proxies every other download of the build takes.
            https_proxy: opts.proxy.https.as_ref().map(|p| p.expose().to_string()),
            http_proxy: opts.proxy.http.as_ref().map(|p| p.expose().to_string()),
            no_proxy: Some(opts.proxy.no_proxy.clone()).filter(|n| !n.is_empty()),
            ..Default::default()
        };
        let auth = match &opts.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Self {
            client: Client::new(config),
            auth,
            retry: opts.retry,
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
        let reference = reference(registry, repository, selector);
        let what = format!(
            "{repository}{}{selector}",
            if selector.starts_with("sha256:") {
                "@"
            } else {
                ":"
            }
        );
        let (bytes, _) = self
            .retry
            .run(&format!("manifest {what}"), is_transient, || {
                self.client
                    .pull_manifest_raw(&reference, &self.auth, ACCEPTED)
            })
            .await
            .map_err(|e| classify_manifest(registry, repository, &what, e))?;
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
            bytes: bytes.to_vec(),
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
        let reference = reference(registry, repository, &digest.to_string());
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        let partial = partial_path(dest);
        let io_err = |source| Error::Io {
            path: partial.clone(),
            source,
        };
        let pull = || async {
            let file = tokio::fs::File::create(&partial).await?;
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
            self.client
                .pull_blob(&reference, &descriptor, &mut out)
                .await?;
            out.flush().await?;
            out.into_inner().sync_data().await?;
            Ok::<_, OciDistributionError>(())
        };
        match self
            .retry
            .run(&format!("blob {digest}"), is_transient, pull)
            .await
        {
            Ok(()) => tokio::fs::rename(&partial, dest).await.map_err(io_err),
            Err(source) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(classify_blob(registry, repository, digest, source))
            }
        }
    }
}

fn reference(registry: &str, repository: &str, selector: &str) -> Reference {
    if selector.starts_with("sha256:") {
        Reference::with_digest(registry.into(), repository.into(), selector.into())
    } else {
        Reference::with_tag(registry.into(), repository.into(), selector.into())
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// 5xx, 429, connection resets and timeouts are worth another try; the rest are not.
fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RequestError(r) => !r.is_builder() && !r.is_redirect(),
        OciDistributionError::IoError(_) => true,
        OciDistributionError::DigestError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            format!("{:?}", e.code)
                .to_ascii_uppercase()
                .contains("TOOMANYREQUESTS")
        }),
        _ => false,
    }
}

fn is_unreachable(e: &OciDistributionError) -> bool {
    matches!(e, OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() || r.is_request())
}

fn is_unauthorized(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::UnauthorizedError { .. } => true,
        OciDistributionError::ServerError { code, .. } => *code == 401 || *code == 403,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                format!("{:?}", e.code).to_ascii_uppercase().as_str(),
                "UNAUTHORIZED" | "DENIED"
            )
        }),
        _ => false,
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                format!("{:?}", e.code).to_ascii_uppercase().as_str(),
                "MANIFESTUNKNOWN" | "NAMEUNKNOWN" | "MANIFEST_UNKNOWN" | "NAME_UNKNOWN"
            )
        }),
        _ => false,
    }
}

/// Unreachable and unauthorized mean the same for every request; anything else is
/// what `other` makes of it (not found, or a manifest or blob failure).
fn classify(
    registry: &str,
    repository: &str,
    source: OciDistributionError,
    other: impl FnOnce(OciDistributionError) -> Error,
) -> Error {
    if is_unreachable(&source) {
        Error::Unreachable {
            registry: registry.into(),
            source: Box::new(source),
        }
    } else if is_unauthorized(&source) {
        Error::Unauthorized {
            registry: registry.into(),
            repository: repository.into(),
            source: Box::new(source),
        }
    } else {
        other(source)
    }
}

fn classify_manifest(
    registry: &str,
    repository: &str,
    what: &str,
    source: OciDistributionError,
) -> Error {
    classify(registry, repository, source, |source| {
        if is_not_found(&source) {
            Error::NotFound {
                reference: what.into(),
                registry: registry.into(),
            }
        } else {
            Error::Manifest {
                reference: what.into(),
                registry: registry.into(),
                source: Box::new(source),
            }
        }
    })
}

fn classify_blob(
    registry: &str,
    repository: &str,
    digest: &Sha256Digest,
    source: OciDistributionError,
) -> Error {
    classify(registry, repository, source, |source| Error::Blob {
        digest: digest.to_string(),
        registry: registry.into(),
        repository: repository.into(),
        source: Box::new(source),
    })
}
