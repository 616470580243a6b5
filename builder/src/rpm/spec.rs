//! What to fetch (`spec.rpms[]` of the manifest) and how.

use std::path::PathBuf;

use bundle_format::RpmRepoRecord;
use serde::Deserialize;

/// `spec.rpms[]` in the manifest: one yum repo in the bundle per target.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpmTargetSpec {
    /// Target name (`el9-x86_64`).
    pub target: String,
    /// `$releasever` (`9`).
    pub releasever: String,
    /// Architecture (`x86_64`).
    pub arch: String,
    /// Upstream repos.
    pub repos: Vec<UpstreamRepo>,
    /// Package specs: `name`, `name-version`, `name-version-release`, `name-epoch:version-release`.
    pub packages: Vec<String>,
    /// Names never to carry.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// EL8 module streams to take packages from (`container-tools:rhel8`), instead of
    /// each module's default stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
}

/// An upstream yum repo, with the options of a `.repo` file that a connected RHEL,
/// Rocky or Fedora machine needs: exactly one of `baseurl`, `mirrorlist` and
/// `metalink`; a client certificate (Red Hat CDN entitlements); Basic credentials whose
/// password comes from the environment. `$releasever`, `$basearch` and `$arch` in the
/// URLs are the target's.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamRepo {
    /// Name (used in records and messages).
    pub name: String,
    /// Base URL (the folder holding `repodata/`).
    #[serde(default)]
    pub baseurl: Option<String>,
    /// URL of a mirror list: one base URL per line (Rocky's default).
    #[serde(default)]
    pub mirrorlist: Option<String>,
    /// URL of a metalink: mirrors of `repomd.xml` and its checksums (Fedora's default);
    /// the repomd.xml used must match one of them.
    #[serde(default)]
    pub metalink: Option<String>,
    /// URL of the GPG key that signs its packages; packages are checked when given.
    #[serde(default)]
    pub gpgkey: Option<String>,
    /// PEM client certificate to present (`/etc/pki/entitlement/<serial>.pem`).
    #[serde(default)]
    pub sslclientcert: Option<PathBuf>,
    /// Its PEM key (`<serial>-key.pem`); default: the key is in `sslclientcert`.
    #[serde(default)]
    pub sslclientkey: Option<PathBuf>,
    /// PEM CA certificate(s) that sign the repo's server certificate, trusted in
    /// addition to the system's and `--ca-file` (`/etc/rhsm/ca/redhat-uep.pem`).
    #[serde(default)]
    pub sslcacert: Option<PathBuf>,
    /// User name for HTTP Basic authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the password (never the password).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Refused with a hint: a password never goes in the manifest.
    #[serde(default, skip_serializing)]
    pub password: Option<serde::de::IgnoredAny>,
}

/// How to fetch.
pub struct RpmFetchOptions {
    /// Content-addressed cache root (shared with images and files).
    pub cache_dir: PathBuf,
    /// Scratch folder for this build (generated repodata lives here until assembled).
    pub work_dir: PathBuf,
    /// What every repo's client trusts and goes through; each repo adds its own
    /// certificates and credentials.
    pub http: crate::http::HttpSettings,
    /// Parallel downloads.
    pub jobs: usize,
    /// The locked records, with `--locked`: picks must equal them.
    pub locked: Option<Vec<RpmRepoRecord>>,
}
