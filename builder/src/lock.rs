//! The lock: what a build resolved (image reference → digest, file → sha256, RPM
//! NEVRAs). `--locked` refuses to follow a moved tag or changed file.

use std::path::{Path, PathBuf};

use bundle_format::{ImageReference, RpmRepoRecord, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Lock format version.
pub const LOCK_VERSION: u32 = 1;

/// The lock file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildLock {
    /// [`LOCK_VERSION`].
    pub lock_version: u32,
    /// Images as resolved upstream.
    pub images: Vec<LockedImage>,
    /// Files by sha256.
    pub files: Vec<LockedFile>,
    /// RPM repositories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rpms: Vec<RpmRepoRecord>,
}

/// One image in the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockedImage {
    /// The reference as the manifest names it.
    pub reference: ImageReference,
    /// What the reference pointed at upstream (index or manifest digest).
    pub digest: Sha256Digest,
}

/// One file in the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockedFile {
    /// File name.
    pub name: String,
    /// URL.
    pub url: String,
    /// SHA-256.
    pub sha256: Sha256Digest,
}

impl BuildLock {
    /// Reads a lock; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, Error> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Lock {
                    path: path.into(),
                    detail: e.to_string(),
                })
            }
        };
        let lock: Self = serde_json::from_slice(&data).map_err(|e| Error::Lock {
            path: path.into(),
            detail: e.to_string(),
        })?;
        if lock.lock_version != LOCK_VERSION {
            return Err(Error::Lock {
                path: path.into(),
                detail: format!("lock version {} is not {LOCK_VERSION}", lock.lock_version),
            });
        }
        Ok(Some(lock))
    }

    /// Writes the lock (sorted, so it diffs well).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let mut lock = self.clone();
        lock.images.sort_by(|a, b| a.reference.cmp(&b.reference));
        let mut text = serde_json::to_vec_pretty(&lock).expect("lock serializes");
        text.push(b'\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Lock {
                path: path.into(),
                detail: e.to_string(),
            })?;
        }
        std::fs::write(path, text).map_err(|e| Error::Lock {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// The locked digest of an image.
    pub fn image(&self, reference: &ImageReference) -> Option<&LockedImage> {
        self.images.iter().find(|i| &i.reference == reference)
    }

    /// The locked sha256 of a file.
    pub fn file(&self, name: &str) -> Option<&LockedFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// The lock's default path: beside the manifest file (`x.yaml` → `x.lock.json`), or
/// for the built-in manifest, beside the output.
pub fn default_lock_path(manifest_file: Option<&Path>, output: &Path) -> PathBuf {
    match manifest_file {
        Some(m) => m.with_extension("lock.json"),
        None => {
            let name = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name.strip_suffix(".tar.zst").unwrap_or(&name);
            output.with_file_name(format!("{stem}.lock.json"))
        }
    }
}
