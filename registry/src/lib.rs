//! OCI distribution for bundle: talking to registries.
//!
//! - [`RegistryClient`]: pull manifests raw (bytes kept, so digests survive) and blobs
//!   streamed to files with their digest checked, from any number of registries, each
//!   with its own TLS trust (as [`tls`] reads it) and credentials (given for it, else
//!   docker's or podman's stored login), with retries and backoff on 5xx, 429 (its
//!   `Retry-After` honoured up to a cap) and connection errors. Talks to registries with
//!   `reqwest` through the push side's session (see `client.rs` for why not oci-client).
//! - [`mapping`]: how a source image name maps into a target registry (`bundle push`
//!   and the installer's manifest rewriting share it).
//! - [`push`]: a bundle's images into a registry: [`push::plan`] (signature, manifests,
//!   names; no network) then [`push::push`] (HEAD-skip, cross-repository mounts,
//!   parallel streamed uploads while the bundle is verified, raw manifests, tags last),
//!   reporting through [`push::PushReporter`]. Talks to the registry with `reqwest`
//!   directly (see `push/http.rs` for why not oci-client).
//! - [`harbor`]: Harbor detection and project creation, used by `push`.
//! - [`tls`]: which certificates are trusted for the site's registry (`--ca-file`,
//!   `--cert-dir`, docker's and containers' `certs.d` folders) and the client certificate
//!   offered; accepts a self-signed server certificate the user trusts explicitly.
//! - [`proxy`]: `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` read once and applied to every
//!   client explicitly; proxy credentials never shown; a refusing proxy named in errors.
//! - [`credentials`]: where registry credentials come from (flags, environment, docker
//!   `config.json` and credential helpers, podman's `auth.json`).
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
pub mod credentials;
mod error;
pub mod harbor;
pub mod mapping;
pub mod proxy;
pub mod push;
mod retry;
pub mod tls;

pub use client::{ClientOptions, Credentials, RawManifest, RegistryClient};
pub use error::Error;
pub use proxy::{ProxyRefusal, ProxySettings};
pub use retry::{Retry, RetryPolicy};
