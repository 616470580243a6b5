//! The bundle file itself, with no network, SSH or process spawning.
//!
//! A bundle is one `tar` archive compressed with `zstd`, cut into zstd frames at entry
//! boundaries and ended by a seek table ([`frames`]), so that readers can start at any
//! frame; to `zstd -d` and `tar -I zstd` it is an ordinary `.tar.zst`. Its first entry is
//! `bundle.json`, the [`BundleIndex`]: every later entry's path, size and SHA-256,
//! plus what the entries mean (images, files). Its second entry is
//! `bundle.json.minisig`, a minisign signature of the index. Then come the entries in
//! index order: an OCI image layout under `images/`, downloaded files under `files/`.
//!
//! This crate owns:
//! - the bundle's tar form ([`archive`]): the one header form the writer produces and the
//!   strict reader every consumer reads through, which refuses any other,
//! - the index model ([`BundleIndex`], [`EntryRecord`], [`ImageRecord`], [`FileRecord`]),
//! - entry path rules ([`EntryPath`]: relative, no `..`, no links),
//! - signing and key handling ([`sign`]),
//! - the streaming writer ([`write::write_bundle`]) and verifier ([`verify::verify`],
//!   frames on several threads; [`verify::read_entry`] reads one entry again), both in
//!   fixed memory whatever the bundle's size,
//! - the OCI image layout types the bundle uses ([`oci`]),
//! - image references ([`ImageReference`]).
//!
//! It does not fetch anything (that is `bundle-builder` with `bundle-registry`) and does
//! not install anything (`bundle-installer`).
//!
//! # Example
//!
//! ```no_run
//! use bundle_format::{sign::PublicKey, verify::{verify, CheckOnly, VerifyOptions}};
//! let key = PublicKey::from_file("bundle.pub".as_ref())?;
//! let report = verify("k8s.tar.zst".as_ref(), &VerifyOptions::signed_by(key), &CheckOnly)?;
//! println!("{} entries verified", report.entries);
//! # Ok::<(), bundle_format::Error>(())
//! ```
#![deny(missing_docs)]

pub mod archive;
pub mod digest;
mod error;
pub mod frames;
mod hint;
pub mod index;
pub mod layout;
pub mod oci;
pub mod path;
mod pipe;
pub mod reference;
pub mod shown;
pub mod sign;
pub mod verify;
pub mod write;

pub use digest::Sha256Digest;
pub use error::Error;
pub use hint::Hint;
pub use index::{
    BundleIndex, CniRecord, EntryRecord, FileRecord, ImageRecord, RpmRecord, RpmRepoRecord,
};
pub use path::EntryPath;
pub use reference::ImageReference;

/// Largest zstd window (log2) any reader accepts, on every path: `bundle build` levels
/// (up to 19, no long mode) need 2^23; a forged frame must not make a reader reserve
/// 2 GiB before anything is checked.
pub const MAX_WINDOW_LOG: u32 = 24;

pub use layout::{INDEX_ENTRY, SIGNATURE_ENTRY};
