//! One HTTP client per upstream repo, as dnf gives each `.repo` section its own
//! settings: the build's proxies and CA files, plus the repo's `sslcacert`, its client
//! certificate (`sslclientcert`/`sslclientkey`, Red Hat CDN entitlements) and Basic
//! credentials (`username`, the password read from the variable `passwordEnv` names).
//!
//! Certificates are checked here, before any request: an expired entitlement is named
//! with its date instead of surfacing as a TLS alert from the server.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::download::Http;
use super::error::RpmError;
use super::spec::UpstreamRepo;
use crate::http::{self, HttpSettings, SetupError};

/// The client for `spec`.
pub(crate) fn for_repo(settings: &HttpSettings, spec: &UpstreamRepo) -> Result<Http, RpmError> {
    let repo = &spec.name;
    let setup = |e: SetupError| match e.path {
        Some(path) => RpmError::ClientCert {
            repo: repo.clone(),
            path,
            reason: e.reason,
        },
        None => RpmError::RepoConfig {
            repo: repo.clone(),
            reason: e.reason,
            hint: "check `HTTPS_PROXY`/`HTTP_PROXY`: a proxy URL is `http://HOST:PORT`".into(),
        },
    };
    let mut b = settings.builder().map_err(setup)?;
    if let Some(ca) = &spec.sslcacert {
        b = http::trust(b, ca).map_err(setup)?;
    }
    if let Some(cert) = &spec.sslclientcert {
        b = b.identity(identity(repo, cert, spec.sslclientkey.as_deref())?);
    }
    let client = b.build().map_err(|e| RpmError::RepoConfig {
        repo: repo.clone(),
        reason: format!("cannot set up its HTTP client: {e}"),
        hint: "check `sslclientcert`, `sslclientkey` and `sslcacert`".into(),
    })?;
    Ok(Http {
        client,
        proxy: Arc::new(settings.proxy.clone()),
        basic: basic(spec)?,
    })
}

/// `username` and the password from `passwordEnv`; a password in the file is refused.
fn basic(spec: &UpstreamRepo) -> Result<Option<(String, String)>, RpmError> {
    let config = |reason: &str, hint: &str| RpmError::RepoConfig {
        repo: spec.name.clone(),
        reason: reason.into(),
        hint: hint.into(),
    };
    if spec.password.is_some() {
        return Err(config(
            "`password` is not read from the manifest",
            "put the password in an environment variable and name it: `passwordEnv: REPO_PASSWORD`",
        ));
    }
    match (&spec.username, &spec.password_env) {
        (None, None) => Ok(None),
        (Some(user), Some(var)) => match std::env::var(var) {
            Ok(password) if !password.is_empty() => Ok(Some((user.clone(), password))),
            _ => Err(RpmError::PasswordEnvMissing {
                repo: spec.name.clone(),
                var: var.clone(),
            }),
        },
        (Some(_), None) => Err(config(
            "`username` is set but `passwordEnv` is not",
            "add `passwordEnv: VAR` naming the environment variable that holds the password",
        )),
        (None, Some(_)) => Err(config(
            "`passwordEnv` is set but `username` is not",
            "add `username` beside `passwordEnv`",
        )),
    }
}

/// The client identity from a certificate and its key (the certificate file itself when
/// no key file is named), refused when the certificate is expired or not yet valid.
fn identity(repo: &str, cert: &Path, key: Option<&Path>) -> Result<reqwest::Identity, RpmError> {
    let bad = |path: &Path, reason: String| RpmError::ClientCert {
        repo: repo.into(),
        path: path.to_path_buf(),
        reason,
    };
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| bad(path, format!("cannot be read: {e}")));
    let mut pem = read(cert)?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| bad(cert, "holds no PEM certificate".into()))?;
    check_dates(&der).map_err(|reason| bad(cert, reason))?;
    if let Some(key) = key {
        pem.push(b'\n');
        pem.extend(read(key)?);
    }
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        bad(
            key.unwrap_or(cert),
            format!("is not a PEM certificate with its private key: {e}"),
        )
    })
}

fn check_dates(der: &CertificateDer<'_>) -> Result<(), String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|e| format!("cannot be parsed: {e}"))?;
    let validity = &cert.tbs_certificate.validity;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if now > validity.not_after.to_unix_duration() {
        return Err(format!("expired on {}", validity.not_after));
    }
    if now < validity.not_before.to_unix_duration() {
        return Err(format!("is not valid before {}", validity.not_before));
    }
    Ok(())
}
