use std::path::PathBuf;

use crate::path::UnsafePath;
use crate::shown::Shown;
use crate::Hint;

/// Everything that can go wrong reading, writing, signing or verifying a bundle.
///
/// Entry errors name the entry in backticks; [`Hint::hint`] says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle file could not be opened or read.
    #[error("cannot read bundle `{path}`")]
    Read {
        /// Bundle path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write `{path}`")]
    Write {
        /// Output path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A source file for an entry could not be read while writing.
    #[error("cannot read `{}` for entry `{}`", .path.display(), Shown(.entry))]
    Source {
        /// Entry being written.
        entry: String,
        /// File it comes from.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with the zstd magic number.
    #[error(
        "`{path}` is not a zstd-compressed bundle (it does not start with the zstd magic number)"
    )]
    NotZstd {
        /// Bundle path.
        path: PathBuf,
    },
    /// Decompression or tar parsing failed: truncated, corrupt, or not a tar inside.
    #[error("bundle is truncated or corrupt{}", .entry.as_ref().map(|e| format!(" (while reading entry `{}`)", Shown(e))).unwrap_or_default())]
    Corrupt {
        /// The entry being read when it failed, if any.
        entry: Option<String>,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The archive has no entries or does not start with `bundle.json`.
    #[error("the first entry is {}, not `bundle.json`", .found.as_ref().map(|f| format!("`{}`", Shown(f))).unwrap_or_else(|| "missing".into()))]
    IndexMissing {
        /// What came first instead.
        found: Option<String>,
    },
    /// `bundle.json` is larger than any honest index.
    #[error("`bundle.json` is {size} bytes, more than the {max} bytes an index may have")]
    IndexTooLarge {
        /// Declared size.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// `bundle.json` is not valid JSON for the index schema.
    #[error("`bundle.json` is malformed")]
    IndexMalformed(#[source] serde_json::Error),
    /// `bundle.json` has a schema version this program does not know.
    #[error(
        "`bundle.json` has schema version {found}; this program reads version {}",
        crate::layout::SCHEMA_VERSION
    )]
    IndexSchema {
        /// Version found.
        found: u32,
    },
    /// The index lists a path twice (or lists a reserved path).
    #[error("the index lists entry `{}` more than once", Shown(.entry))]
    IndexDuplicate {
        /// The path.
        entry: String,
    },
    /// A record in the index points at an entry the index does not list.
    #[error("{} points at entry `{}`, which the index does not list", .what, Shown(.entry))]
    IndexDangling {
        /// Which record.
        what: String,
        /// The missing path.
        entry: String,
    },
    /// A tar header in a form `bundle build` never writes (PAX or GNU extensions, other
    /// modes, owners, times or magic): refused, since tar readers read such headers
    /// differently.
    #[error("entry `{}` has a tar header that bundle build never writes: {what}", Shown(.entry))]
    NonCanonicalHeader {
        /// The name as read.
        entry: String,
        /// Which part of the header, and what it holds.
        what: String,
    },
    /// The index contradicts itself: a record disagrees with the entry it points at.
    #[error("the index's {what} disagrees with its entry `{}`: {detail}", Shown(.entry))]
    IndexInconsistent {
        /// Which record (`files[] record `calico.yaml``).
        what: String,
        /// The entry.
        entry: String,
        /// How.
        detail: String,
    },
    /// The second entry is not a signature.
    #[error("the bundle is not signed (no `bundle.json.minisig` after `bundle.json`)")]
    Unsigned,
    /// The signature could not be parsed.
    #[error("`bundle.json.minisig` is not a minisign signature: {detail}")]
    SignatureMalformed {
        /// Parser message.
        detail: String,
    },
    /// The signature was made by another key.
    #[error("`bundle.json` is signed by key {found}, not by the trusted key {expected}")]
    SignatureOtherKey {
        /// Trusted key ID.
        expected: String,
        /// Key ID in the signature.
        found: String,
    },
    /// The signature does not match `bundle.json`.
    #[error("the signature of `bundle.json` does not verify with key {key_id}: the index was changed after signing ({detail})")]
    SignatureInvalid {
        /// Trusted key ID.
        key_id: String,
        /// Verifier message.
        detail: String,
    },
    /// An entry name is unsafe.
    #[error("entry `{}` has an unsafe path: {}", Shown(.entry), .reason)]
    UnsafeEntry {
        /// Name as found in the archive.
        entry: String,
        /// Why.
        reason: UnsafePath,
    },
    /// An entry is a link, directory, device or other non-file.
    #[error("entry `{}` is a {}; a bundle holds only regular files", Shown(.entry), .kind)]
    NotRegularFile {
        /// Name.
        entry: String,
        /// Tar entry kind.
        kind: String,
    },
    /// An entry the index does not list.
    #[error("entry `{}` is not in the index", Shown(.entry))]
    UnknownEntry {
        /// Name.
        entry: String,
    },
    /// An entry that appears twice.
    #[error("entry `{}` appears more than once", Shown(.entry))]
    DuplicateEntry {
        /// Name.
        entry: String,
    },
    /// An entry the index lists is not in the archive.
    #[error("entry `{}` is in the index but missing from the archive", Shown(.entry))]
    MissingEntry {
        /// Name.
        entry: String,
    },
    /// Entries out of index order.
    #[error("entry `{}` is out of order: the index lists `{}` next", Shown(.entry), Shown(.expected))]
    OutOfOrder {
        /// Found.
        entry: String,
        /// Expected.
        expected: String,
    },
    /// An entry's size differs from the index.
    #[error("entry `{}` is {} bytes; the index says {}", Shown(.entry), .found, .expected)]
    SizeMismatch {
        /// Name.
        entry: String,
        /// Per index.
        expected: u64,
        /// In the archive.
        found: u64,
    },
    /// An entry's content does not hash to what the index says.
    #[error("entry `{}` does not match the index: sha256 expected {}, found {}", Shown(.entry), .expected, .found)]
    DigestMismatch {
        /// Name.
        entry: String,
        /// Per index.
        expected: String,
        /// Computed.
        found: String,
    },
    /// A consumer of verified entries failed.
    #[error("while handling entry `{}`", Shown(.entry))]
    Consumer {
        /// Entry being handled.
        entry: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A key file could not be read.
    #[error("cannot read key `{path}`")]
    KeyRead {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file could not be written.
    #[error("cannot write key `{path}`")]
    KeyWrite {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file is not a minisign key (or the password is wrong).
    #[error("cannot use key `{path}`: {detail}")]
    KeyMalformed {
        /// Path.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// An encrypted key and no way to get its password.
    #[error("key `{path}` is password-protected and no password was given")]
    KeyNeedsPassword {
        /// Path.
        path: PathBuf,
    },
    /// Key generation would overwrite a file.
    #[error("`{path}` already exists; refusing to overwrite a key")]
    KeyExists {
        /// Path.
        path: PathBuf,
    },
    /// Signing failed.
    #[error("signing failed: {detail}")]
    Sign {
        /// Why.
        detail: String,
    },
}

impl Error {
    /// Whether this error means the bundle itself was refused (damaged, forged, or not in
    /// the bundle's form), as opposed to a failure around it (a file not readable, a key
    /// missing). The CLI exits 3 for these.
    pub fn is_rejection(&self) -> bool {
        use Error::*;
        matches!(
            self,
            NotZstd { .. }
                | Corrupt { .. }
                | IndexMissing { .. }
                | IndexTooLarge { .. }
                | IndexMalformed(_)
                | IndexDuplicate { .. }
                | IndexDangling { .. }
                | IndexInconsistent { .. }
                | Unsigned
                | SignatureMalformed { .. }
                | SignatureOtherKey { .. }
                | SignatureInvalid { .. }
                | UnsafeEntry { .. }
                | NotRegularFile { .. }
                | NonCanonicalHeader { .. }
                | UnknownEntry { .. }
                | DuplicateEntry { .. }
                | MissingEntry { .. }
                | OutOfOrder { .. }
                | SizeMismatch { .. }
                | DigestMismatch { .. }
        )
    }
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        use Error::*;
        Some(match self {
            NotZstd { .. } | Corrupt { .. } | IndexMissing { .. } => {
                "the file is damaged or is not a bundle; copy it again and compare it with its `.sha256` file (`sha256sum -c BUNDLE.sha256`)".into()
            }
            Unsigned => "ask for a signed bundle, or pass `--allow-unsigned` if you trust its origin by other means".into(),
            SignatureOtherKey { .. } => "pass the public key of whoever built this bundle with `--pubkey`; `bundle inspect` shows who signed it".into(),
            SignatureInvalid { .. } => "do not use this bundle; get a fresh copy from its builder".into(),
            IndexInconsistent { .. } | IndexDangling { .. } | IndexDuplicate { .. } => "the index was signed by a builder that wrote it wrong, or the key was misused; do not use this bundle, and report it to whoever built it".into(),
            IndexSchema { .. } => "this bundle was made by a different version of bundle; use a matching release".into(),
            UnsafeEntry { .. } | NotRegularFile { .. } | UnknownEntry { .. } | DuplicateEntry { .. } | MissingEntry { .. }
            | OutOfOrder { .. } | SizeMismatch { .. } | DigestMismatch { .. } | NonCanonicalHeader { .. } => {
                "the bundle was altered or damaged after it was built; do not use it, get a fresh copy and verify it again".into()
            }
            KeyNeedsPassword { .. } => "set BUNDLE_KEY_PASSWORD, or run on a terminal to be asked for it".into(),
            KeyExists { .. } => "choose another `--output` prefix, or move the old key away first".into(),
            _ => return None,
        })
    }
}
