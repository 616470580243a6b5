use std::path::PathBuf;

use bundle_format::Hint;

/// Build failures, each naming the manifest field, image, file or path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest file could not be read.
    #[error("cannot read manifest `{path}`")]
    ManifestRead {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid YAML for the schema.
    #[error("manifest `{manifest}` is malformed: {detail}")]
    ManifestParse {
        /// Which manifest.
        manifest: String,
        /// Parser message (with line and column).
        detail: String,
    },
    /// A field has a bad value.
    #[error("manifest `{manifest}`: `{field}`: {detail}")]
    ManifestInvalid {
        /// Which manifest.
        manifest: String,
        /// Field path (`spec.images[3]`).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// A registry operation for an image failed.
    #[error("image `{reference}`")]
    Image {
        /// The image as the manifest names it.
        reference: String,
        /// Cause.
        #[source]
        source: Box<bundle_registry::Error>,
    },
    /// An index has no child for any wanted platform.
    #[error("image `{reference}` has no manifest for {wanted}; it has {available}")]
    NoPlatform {
        /// Image.
        reference: String,
        /// `spec.platforms`.
        wanted: String,
        /// Platforms in the index.
        available: String,
    },
    /// A manifest is of a type the bundle cannot carry.
    #[error("image `{reference}` has media type `{media_type}`, which bundle cannot carry")]
    UnsupportedMediaType {
        /// Image.
        reference: String,
        /// Media type.
        media_type: String,
    },
    /// A manifest's JSON could not be read.
    #[error("image `{reference}`: manifest {digest} is malformed: {detail}")]
    BadManifest {
        /// Image.
        reference: String,
        /// Digest.
        digest: String,
        /// Parser message.
        detail: String,
    },
    /// The proxy refused a request for an image or a file.
    #[error("{what} is unreachable through the proxy")]
    Proxy {
        /// `image `…`` or `file `…``.
        what: String,
        /// The proxy and the upstream, named.
        #[source]
        source: bundle_registry::ProxyRefusal,
    },
    /// A file did not hash to its pin.
    #[error("file `{name}` from {url} has sha256 {found}, but the manifest pins {expected}")]
    FileChecksum {
        /// File name.
        name: String,
        /// URL.
        url: String,
        /// Pinned.
        expected: String,
        /// Downloaded.
        found: String,
    },
    /// A file could not be downloaded.
    #[error("cannot download file `{name}` from {url}: {detail}")]
    FileDownload {
        /// File name.
        name: String,
        /// URL.
        url: String,
        /// What happened.
        detail: String,
    },
    /// `--locked` and upstream moved.
    #[error("`{what}` no longer matches the lock: locked {locked}, upstream now {upstream}")]
    LockMismatch {
        /// Image or file.
        what: String,
        /// Locked value.
        locked: String,
        /// Upstream value.
        upstream: String,
    },
    /// `--locked` and the lock does not know an item.
    #[error("`{what}` is not in the lock `{lock}`")]
    LockMissing {
        /// Image or file.
        what: String,
        /// Lock path.
        lock: PathBuf,
    },
    /// The lock file could not be read or written.
    #[error("cannot use lock `{path}`: {detail}")]
    Lock {
        /// Path.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// The cache could not be used.
    #[error("cache `{path}`")]
    Cache {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing or signing the bundle failed.
    #[error(transparent)]
    Format(#[from] bundle_format::Error),
    /// The RPM step failed.
    #[error(transparent)]
    Rpm(Box<crate::rpm::RpmError>),
}

impl From<crate::rpm::RpmError> for Error {
    fn from(e: crate::rpm::RpmError) -> Self {
        Error::Rpm(Box::new(e))
    }
}

impl Hint for Error {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Error::ManifestParse { .. } | Error::ManifestInvalid { .. } => {
                "see manifests/README.md for the manifest format".into()
            }
            Error::NoPlatform { .. } => "change `spec.platforms`, or pin the image by its index digest to carry every platform".into(),
            Error::FileChecksum { .. } => "if the file changed upstream on purpose, check it and update `sha256` in the manifest".into(),
            Error::LockMismatch { .. } => "upstream changed since the lock was written; build without `--locked` to accept the new content, after checking it".into(),
            Error::LockMissing { .. } => "build once without `--locked` to record it".into(),
            Error::Proxy { source, .. } => source.hint(),
            Error::Rpm(e) => return e.hint(),
            Error::Image { source, .. } => return source.hint(),
            _ => return None,
        })
    }
}
