use std::path::PathBuf;

use oci_client::errors::OciDistributionError;

/// Registry failures, each naming the registry and what was asked of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry could not be reached (connection refused, DNS, TLS).
    #[error("cannot reach registry `{registry}`")]
    Unreachable {
        /// Host[:port].
        registry: String,
        /// Cause.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The registry refused the credentials or the account lacks a right.
    #[error("registry `{registry}` refused access to `{repository}`")]
    Unauthorized {
        /// Host[:port].
        registry: String,
        /// Repository.
        repository: String,
        /// Cause.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The manifest (tag or digest) does not exist.
    #[error("`{reference}` was not found in registry `{registry}`")]
    NotFound {
        /// What was asked for.
        reference: String,
        /// Host[:port].
        registry: String,
    },
    /// A manifest request failed for another reason.
    #[error("cannot fetch manifest `{reference}` from `{registry}`")]
    Manifest {
        /// What was asked for.
        reference: String,
        /// Host[:port].
        registry: String,
        /// Cause.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// A blob request failed.
    #[error("cannot fetch blob `{digest}` of `{registry}/{repository}`")]
    Blob {
        /// Blob digest.
        digest: String,
        /// Host[:port].
        registry: String,
        /// Repository.
        repository: String,
        /// Cause.
        #[source]
        source: Box<OciDistributionError>,
    },
    /// Content did not hash to the digest it was asked for.
    #[error("`{what}` from `{registry}` has digest {found}, expected {expected}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// Host[:port].
        registry: String,
        /// Expected digest.
        expected: String,
        /// Computed digest.
        found: String,
    },
    /// A response was not what the distribution spec says.
    #[error("registry `{registry}` sent an unusable response for `{what}`: {detail}")]
    Protocol {
        /// Host[:port].
        registry: String,
        /// What was fetched.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A local file could not be written or read.
    #[error("cannot write `{path}`")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A CA file could not be read or parsed.
    #[error("cannot use CA file `{path}`: {detail}")]
    CaFile {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Unreachable { registry, source } => {
                let text = format!("{source:?}");
                if text.contains("ertificate") || text.contains("UnknownIssuer") {
                    format!("the TLS certificate of `{registry}` is not trusted; pass its CA with `--ca-file PEM`")
                } else {
                    format!("check that `{registry}` is up and reachable from here; for a registry without TLS pass `--plain-http {registry}`")
                }
            }
            Error::Unauthorized { registry, .. } => format!("check the credentials for `{registry}` and that the account may read or write this repository"),
            Error::NotFound { .. } => "check the tag or digest in the manifest; a tag may have been removed upstream".into(),
            Error::DigestMismatch { .. } => "the registry served different content than was pinned; if the tag moved upstream, update the manifest's pin deliberately".into(),
            _ => return None,
        })
    }
}
