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
}

/// An upstream yum repo.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamRepo {
    /// Name (used in records and messages).
    pub name: String,
    /// Base URL (the folder holding `repodata/`).
    pub baseurl: String,
    /// URL of the GPG key that signs its packages; packages are checked when given.
    #[serde(default)]
    pub gpgkey: Option<String>,
}

/// How to fetch.
pub struct RpmFetchOptions {
    /// Content-addressed cache root (shared with images and files).
    pub cache_dir: PathBuf,
    /// Scratch folder for this build (generated repodata lives here until assembled).
    pub work_dir: PathBuf,
    /// HTTP client (TLS roots and proxies already set).
    pub http: reqwest::Client,
    /// Parallel downloads.
    pub jobs: usize,
    /// The locked records, with `--locked`: picks must equal them.
    pub locked: Option<Vec<RpmRepoRecord>>,
}
