//! The connected side: a pinned manifest becomes one signed bundle.
//!
//! [`ops::build`] reads a [`manifest::BundleManifest`], resolves every image to a
//! digest through a registry (or a `--mirror`), fetches manifests, blobs, files and RPMs
//! into a content-addressed [`cache::Cache`] (in parallel, with retries, resumable), checks
//! a [`lock::BuildLock`] when asked, and writes the archive with `bundle-format`.
//!
//! Every download goes through the build's proxies and trusts its CA files: [`http`]
//! holds that recipe (registry pulls take the same through `bundle_registry`), and each
//! RPM repo adds its own certificates and credentials (`rpm`).
//!
//! It does not talk to hosts or install anything (`bundle-installer` does), and it
//! never prints: progress goes through [`BuildReporter`], which the CLI implements.
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> Result<(), bundle_builder::Error> {
//! use bundle_builder::{ops::build::{build, BuildOptions}, NoReport};
//! # let opts: BuildOptions = todo!();
//! let summary = build(&opts, &NoReport).await?;
//! println!("wrote {}", summary.bundle.path.display());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod cache;
mod error;
pub mod files;
pub mod http;
pub mod images;
pub mod lock;
pub mod manifest;
pub mod ops;
pub mod rpm;

pub use error::Error;

/// Progress of a build, for the CLI to show. Every method has a no-op default.
pub trait BuildReporter: Sync {
    /// An image was resolved to a digest.
    fn resolved(&self, _image: &images::ResolvedImage) {}
    /// Fetching starts: bytes to download, bytes already in the cache.
    fn fetch_started(&self, _to_fetch: u64, _cached: u64) {}
    /// Bytes arrived.
    fn fetched(&self, _bytes: u64) {}
    /// Fetching is done (images and files, or one RPM target's packages).
    fn fetch_finished(&self) {}
    /// Downloading one RPM target's packages starts: how many, bytes to download, bytes
    /// already in the cache. Bytes then arrive through [`BuildReporter::fetched`], and
    /// [`BuildReporter::fetch_finished`] ends it.
    fn rpm_fetch_started(&self, _target: &str, _packages: usize, _to_fetch: u64, _cached: u64) {}
    /// Writing the archive starts (bytes of entry data).
    fn write_started(&self, _total: u64) {}
    /// Entry bytes written so far.
    fn written(&self, _so_far: u64) {}
    /// Writing is done.
    fn write_finished(&self) {}
    /// Something the user should know but that does not stop the build.
    fn warn(&self, _message: &str) {}
}

/// A reporter that shows nothing.
pub struct NoReport;
impl BuildReporter for NoReport {}
