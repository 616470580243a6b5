//! Where things live inside a bundle (the archive's layout) and the index schema the
//! format is fixed to, spelt once. Every other module reads these; this one reads none.

/// The OCI image layout's SHA-256 blobs, each named by its digest.
pub const BLOBS: &str = "images/blobs/sha256/";
/// The OCI image layout.
pub const IMAGES: &str = "images/";
/// Downloaded files.
pub const FILES: &str = "files/";
/// One yum repository per RPM target: `rpms/<target>/`.
pub const RPMS: &str = "rpms/";

/// Path of the index inside the archive; always the first entry.
pub const INDEX_ENTRY: &str = "bundle.json";
/// Path of the index's minisign signature; always the second entry.
pub const SIGNATURE_ENTRY: &str = "bundle.json.minisig";

/// The index schema version this release writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
