//! OCI distribution for bundle: talking to registries.
//!
//! - [`RegistryClient`]: pull manifests raw (bytes kept, so digests survive) and blobs
//!   streamed to files with their digest checked, over HTTP or HTTPS with extra CAs,
//!   anonymous or with credentials, with retries and backoff on 5xx, 429 and
//!   connection errors. Built on `oci-client`.
//! - [`mapping`]: how a source image name maps into a target registry (`bundle push`
//!   and the installer's manifest rewriting share it).
//!
//! It knows nothing about bundles beyond the digest and reference types of
//! `bundle-format`.
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> Result<(), bundle_registry::Error> {
//! use bundle_registry::{ClientOptions, RegistryClient};
//! let client = RegistryClient::new(&ClientOptions { plain_http: vec!["127.0.0.1:5000".into()], ..Default::default() })?;
//! let m = client.pull_manifest("127.0.0.1:5000", "kube-apiserver", "v1.29.2").await?;
//! println!("{} {}", m.digest, m.media_type);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
mod error;
pub mod mapping;
mod retry;

pub use client::{ClientOptions, Credentials, RawManifest, RegistryClient};
pub use error::Error;
pub use retry::RetryPolicy;
