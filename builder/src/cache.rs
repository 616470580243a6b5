//! The content-addressed cache: `blobs/sha256/<hex>`, shared by image blobs,
//! manifests, files and RPMs. A blob is present only once complete: writers go through
//! `<hex>.partial` and rename, so a build killed at any point resumes where it stopped.

use std::path::{Path, PathBuf};

use bundle_format::Sha256Digest;

use crate::Error;

/// A cache folder.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|source| Error::Cache {
            path: blobs.clone(),
            source,
        })?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob with this digest lives.
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Size of a cached blob, if present.
    pub fn blob_size(&self, digest: &Sha256Digest) -> Option<u64> {
        std::fs::metadata(self.blob_path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Stores small content (manifests) under its digest.
    pub fn put_bytes(&self, digest: &Sha256Digest, bytes: &[u8]) -> Result<PathBuf, Error> {
        let path = self.blob_path(digest);
        if self.blob_size(digest) == Some(bytes.len() as u64) {
            return Ok(path);
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|source| Error::Cache {
                path: path.clone(),
                source,
            })?;
        Ok(path)
    }
}
