//! The one recipe for the build's HTTP clients (files and RPM repositories): timeouts,
//! user agent, the proxies from [`ProxySettings`] set explicitly, and the CA files of
//! `--ca-file` trusted beside the system's roots (which is also how a TLS-intercepting
//! proxy's CA is trusted). Registry pulls take the same proxies and CA files through
//! `bundle_registry::ClientOptions`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bundle_registry::ProxySettings;

/// What every client of a build trusts and goes through.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// PEM files of CA certificates to trust (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Proxies (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
    pub proxy: ProxySettings,
}

/// A setting that cannot be applied: the file concerned (when there is one) and why.
#[derive(Debug)]
pub struct SetupError {
    /// The CA or certificate file.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub reason: String,
}

impl HttpSettings {
    /// A client builder with the build's settings; callers add their own certificates.
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, SetupError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("bundle/", env!("CARGO_PKG_VERSION")));
        b = self
            .proxy
            .apply(b)
            .map_err(|reason| SetupError { path: None, reason })?;
        for path in &self.ca_files {
            b = trust(b, path)?;
        }
        Ok(b)
    }
}

/// Adds every certificate of a PEM file to the roots `b` trusts.
pub(crate) fn trust(
    mut b: reqwest::ClientBuilder,
    path: &Path,
) -> Result<reqwest::ClientBuilder, SetupError> {
    let err = |reason: String| SetupError {
        path: Some(path.to_path_buf()),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(format!("cannot be read: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    for c in certs {
        b = b.add_root_certificate(c);
    }
    Ok(b)
}
