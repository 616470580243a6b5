//! TLS for talking to the site's registry: which certificates are trusted, the client
//! certificate a registry may ask for, and the rustls configuration handed to reqwest.
//!
//! Where certificates come from, as docker, containerd and skopeo look for them:
//!
//! - `--ca-file PEM` (repeatable) and `--cert-dir DIR` (skopeo's `--cert-dir`: every
//!   `*.crt` in DIR is a CA, every `NAME.cert` a client certificate whose key is
//!   `NAME.key` beside it); when either is given, only those are read;
//! - otherwise the conventional folders for `HOST[:PORT]`, read the same way:
//!   `/etc/containers/certs.d/HOST[:PORT]/` and `/etc/docker/certs.d/HOST[:PORT]/`
//!   (`ca.crt`, `client.cert`, `client.key` in docker's naming). [`CERTS_D_ENV`]
//!   replaces those two roots (a `:`-separated list), for tests and unusual layouts.
//!
//! The system's trust store is always trusted too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::Error;

/// Environment variable replacing the conventional certificate roots
/// (`/etc/containers/certs.d:/etc/docker/certs.d`): a `:`-separated list of folders,
/// each holding one folder per `HOST[:PORT]`.
pub const CERTS_D_ENV: &str = "BUNDLE_CERTS_D";

/// The conventional roots, in the order containers/image reads them.
pub const DEFAULT_CERTS_D: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// What was read for one registry.
#[derive(Debug, Default)]
pub(crate) struct SiteTls {
    roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// The files trusted certificates came from (for messages).
    pub trusted: Vec<PathBuf>,
    /// The client certificate offered, if any (for messages).
    pub client_cert: Option<PathBuf>,
}

impl SiteTls {
    /// Reads the certificates for `host`: the explicit ones when any are given, else
    /// the conventional folders.
    pub fn load(host: &str, ca_files: &[PathBuf], cert_dir: Option<&Path>) -> Result<Self, Error> {
        let mut tls = SiteTls::default();
        for path in ca_files {
            tls.add_ca_file(path)?;
        }
        if let Some(dir) = cert_dir {
            tls.add_cert_dir(dir)?;
        }
        if ca_files.is_empty() && cert_dir.is_none() {
            for root in conventional_roots() {
                let dir = root.join(host);
                if dir.is_dir() {
                    tls.add_cert_dir(&dir)?;
                }
            }
        }
        Ok(tls)
    }

    fn add_ca_file(&mut self, path: &Path) -> Result<(), Error> {
        let data = std::fs::read(path).map_err(|e| Error::CaFile {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let certs = parse_certs(&data).map_err(|detail| Error::CaFile {
            path: path.into(),
            detail,
        })?;
        self.roots.extend(certs);
        self.trusted.push(path.into());
        Ok(())
    }

    /// skopeo's and docker's folder: `*.crt` CAs, `NAME.cert` + `NAME.key` client pairs
    /// (the first pair, by name, is used).
    fn add_cert_dir(&mut self, dir: &Path) -> Result<(), Error> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect())
            .map_err(|e| Error::CaFile {
                path: dir.into(),
                detail: format!("cannot read the folder: {e}"),
            })?;
        names.sort();
        for path in &names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => self.add_ca_file(path)?,
                Some("cert") if self.identity.is_none() => {
                    let key = path.with_extension("key");
                    self.identity = Some(read_identity(path, &key)?);
                    self.client_cert = Some(path.clone());
                }
                Some("key") if !path.with_extension("cert").exists() => {
                    return Err(Error::ClientCertificate {
                        path: path.clone(),
                        detail: format!(
                            "a key without its certificate `{}`",
                            path.with_extension("cert").display()
                        ),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The rustls configuration: the platform's verifier (system trust store plus the
    /// certificates read here) wrapped in [`ExplicitlyTrusted`], and the client
    /// certificate when there is one.
    pub fn client_config(self, host: &str) -> Result<rustls::ClientConfig, Error> {
        let bad = |detail: String| Error::Protocol {
            registry: host.into(),
            what: "TLS configuration".into(),
            detail,
        };
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let platform = if self.roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(
                self.roots.clone(),
                provider.clone(),
            )
        }
        .map_err(|e| bad(e.to_string()))?;
        let verifier = ExplicitlyTrusted {
            inner: Arc::new(platform),
            pinned: self.roots,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let mut config = match self.identity {
            Some((certs, key)) => {
                let path = self.client_cert.unwrap_or_default();
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::ClientCertificate {
                        path,
                        detail: e.to_string(),
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        // reqwest sets ALPN on configurations it builds; it is built without HTTP/2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The folder where a file for `registry` is looked for first (the first certs.d root
/// in use: `BUNDLE_CERTS_D`'s, or `/etc/containers/certs.d`), for hints.
pub(crate) fn first_certs_d(registry: &str) -> String {
    let roots = conventional_roots();
    let root = roots
        .first()
        .map(|r| r.display().to_string())
        .unwrap_or_else(|| DEFAULT_CERTS_D[0].to_string());
    format!("{root}/{registry}/")
}

fn conventional_roots() -> Vec<PathBuf> {
    match std::env::var_os(CERTS_D_ENV) {
        Some(v) if !v.is_empty() => std::env::split_paths(&v).collect(),
        _ => DEFAULT_CERTS_D.iter().map(PathBuf::from).collect(),
    }
}

fn parse_certs(data: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

fn read_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let err = |path: &Path, detail: String| Error::ClientCertificate {
        path: path.into(),
        detail,
    };
    let data = std::fs::read(cert).map_err(|e| err(cert, e.to_string()))?;
    let certs = parse_certs(&data).map_err(|d| err(cert, d))?;
    let data = std::fs::read(key).map_err(|e| {
        err(
            key,
            format!("the key of `{}` cannot be read: {e}", cert.display()),
        )
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&data)
        .map_err(|e| err(key, format!("no PEM private key in it: {e}")))?;
    Ok((certs, key_der))
}

/// The platform's verifier, plus what docker, containerd, skopeo (Go's TLS) and curl
/// (OpenSSL) accept and webpki does not: a server certificate that is itself one the
/// user trusts explicitly.
///
/// Why it exists: many Harbor installs serve a certificate made with
/// `openssl req -x509 … -addext subjectAltName=…`, which carries
/// `basicConstraints CA:TRUE`, and their users hand that same file over as the CA.
/// webpki refuses a CA certificate as the end entity (`CaUsedAsEndEntity`) even then.
/// Go accepts a leaf found byte for byte in its roots after checking name and validity;
/// this does the same and nothing more: only when the platform's verifier refused the
/// chain for exactly that reason, the server sent that one certificate alone, and it is
/// byte-identical to one read from `--ca-file`, `--cert-dir` or a certs.d folder. The
/// name and validity period are then checked here, and handshake signatures are still
/// verified by the platform's verifier (rustls' default methods).
#[derive(Debug)]
struct ExplicitlyTrusted {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for ExplicitlyTrusted {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        let pinned = intermediates.is_empty()
            && self
                .pinned
                .iter()
                .any(|p| p.as_ref() == end_entity.as_ref());
        if !is_ca_used_as_end_entity(&refused) {
            return Err(refused);
        }
        if !pinned {
            // A CA certificate presented alone is a self-signed server certificate
            // nobody here trusts: say so in the words every other untrusted one gets.
            return Err(CertificateError::UnknownIssuer.into());
        }
        check_validity(end_entity, now)?;
        check_name(end_entity, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))
            if inner.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
    )
}

fn check_validity(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let validity = &cert.tbs_certificate.validity;
    let (not_before, not_after) = (
        validity.not_before.to_unix_duration(),
        validity.not_after.to_unix_duration(),
    );
    let at = Duration::from_secs(now.as_secs());
    if at < not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: UnixTime::since_unix_epoch(not_before),
        }
        .into());
    }
    if at > not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: UnixTime::since_unix_epoch(not_after),
        }
        .into());
    }
    Ok(())
}

fn check_name(der: &CertificateDer<'_>, name: &ServerName<'_>) -> Result<(), rustls::Error> {
    let cert = webpki::EndEntityCert::try_from(der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    cert.verify_is_valid_for_subject_name(name)
        .map_err(|e| match e {
            webpki::Error::CertNotValidForName(ctx) => CertificateError::NotValidForNameContext {
                expected: ctx.expected,
                presented: ctx.presented,
            },
            _ => CertificateError::NotValidForName,
        })?;
    Ok(())
}

/// What went wrong in a TLS handshake, as far as the operator can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate chains to nothing trusted here.
    Untrusted,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate does not name the host asked for.
    WrongName,
    /// The registry asks for a client certificate and none was offered.
    ClientCertificateRequired,
    /// The registry refused the client certificate offered.
    ClientCertificateRefused,
}

impl std::fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsProblem::Untrusted => "its certificate is not trusted here",
            TlsProblem::Expired => "its certificate has expired",
            TlsProblem::NotYetValid => "its certificate is not valid yet",
            TlsProblem::WrongName => "its certificate is not valid for that name",
            TlsProblem::ClientCertificateRequired => {
                "it asks for a client certificate and none was offered"
            }
            TlsProblem::ClientCertificateRefused => "it refused the client certificate offered",
        })
    }
}

/// Finds the rustls error in `e`'s causes and says what it means for the operator.
pub(crate) fn classify(
    e: &(dyn std::error::Error + 'static),
    client_cert: bool,
) -> Option<TlsProblem> {
    use rustls::AlertDescription as A;
    let tls = find_rustls_error(e)?;
    Some(match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsProblem::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsProblem::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsProblem::WrongName
            }
            _ => TlsProblem::Untrusted,
        },
        rustls::Error::AlertReceived(
            A::CertificateRequired | A::HandshakeFailure | A::BadCertificate | A::UnknownCA,
        ) => match client_cert {
            true => TlsProblem::ClientCertificateRefused,
            false => TlsProblem::ClientCertificateRequired,
        },
        _ => return None,
    })
}

fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        // io::Error's source() skips the error it wraps (and reqwest's connector wraps
        // rustls' io::Error in another): look inside.
        cause = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}
