//! `bundle.json`: the signed index, root of trust for everything in the bundle.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{digest::Sha256Digest, path::EntryPath, reference::ImageReference, Error};

pub use crate::layout::SCHEMA_VERSION;

/// Largest `bundle.json` a reader accepts. An index lists entries, not their data, so
/// even a bundle of a million entries stays far below this; anything larger is hostile.
pub const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;

/// The bundle's index: what every entry is, and what the entries mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleIndex {
    /// Index schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Bundle name, from the manifest's `metadata.name`.
    pub name: String,
    /// Bundle version, from the manifest's `metadata.version`.
    pub version: String,
    /// When it was built (RFC 3339, UTC).
    pub created: String,
    /// The program that built it (`bundle 0.1.0`).
    pub generator: String,
    /// Kubernetes version the bundle carries (`v1.29.2`), when the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// The CNI the bundle carries, when the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniRecord>,
    /// Every entry after the signature, in archive order.
    pub entries: Vec<EntryRecord>,
    /// Images in the OCI layout under `images/`.
    pub images: Vec<ImageRecord>,
    /// Files under `files/`.
    pub files: Vec<FileRecord>,
    /// Yum repositories under `rpms/<target>/`, one per manifest RPM target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rpms: Vec<RpmRepoRecord>,
}

/// One archive entry: path, exact size and SHA-256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryRecord {
    /// Path inside the archive.
    pub path: EntryPath,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Sha256Digest,
}

/// One image: where it came from and what the layout holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRecord {
    /// The reference as the manifest names it (original registry, never a mirror).
    pub reference: ImageReference,
    /// Digest of the manifest or index stored in the layout.
    pub digest: Sha256Digest,
    /// Media type of that manifest or index.
    pub media_type: String,
    /// Platforms carried (`linux/amd64`); empty for a single-platform image without one.
    pub platforms: Vec<String>,
    /// Upstream index digest when the stored index is a platform subset of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<Sha256Digest>,
    /// Bytes of every manifest and blob the image needs (shared blobs count in each).
    pub size: u64,
}

/// One downloaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileRecord {
    /// Name from the manifest.
    pub name: String,
    /// Where it was downloaded from.
    pub url: String,
    /// Entry holding it (`files/<name>`).
    pub path: EntryPath,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, as pinned in the manifest.
    pub sha256: Sha256Digest,
}

/// One yum repository in the bundle (`rpms/<target>/`: packages, `repodata/`, keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpmRepoRecord {
    /// Target name from the manifest (`el9-x86_64`).
    pub target: String,
    /// `$releasever` the packages are for (`9`).
    pub releasever: String,
    /// Architecture (`x86_64`).
    pub arch: String,
    /// Every package carried, the pinned ones and their dependency closure.
    pub packages: Vec<RpmRecord>,
    /// Entries holding the GPG keys that signed the packages (for `gpgkey=`).
    #[serde(default)]
    pub gpg_keys: Vec<EntryPath>,
    /// EL8 module streams (`container-tools:rhel8`) the packages come from. The repo's
    /// `modules` metadata makes each the default stream of its module; an installer
    /// enables them (`dnf module enable`) where a host may already have another enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module_streams: Vec<String>,
}

/// One RPM package in a bundle's yum repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpmRecord {
    /// `name-[epoch:]version-release.arch`.
    pub nevra: String,
    /// Package name.
    pub name: String,
    /// Epoch (0 when none).
    pub epoch: u32,
    /// Version.
    pub version: String,
    /// Release.
    pub release: String,
    /// Architecture (`x86_64`, `noarch`).
    pub arch: String,
    /// Entry holding the package file.
    pub path: EntryPath,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the package file.
    pub sha256: Sha256Digest,
    /// Name of the upstream repo it came from.
    pub source_repo: String,
}

/// The CNI a bundle carries: its name and the file holding its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CniRecord {
    /// `calico` or `flannel`.
    pub name: String,
    /// Name of the [`FileRecord`] with the CNI's Kubernetes manifest.
    pub manifest: String,
}

impl BundleIndex {
    /// Serializes deterministically (field order fixed, pretty, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("index serializes");
        out.push(b'\n');
        out
    }

    /// Parses and checks an index: schema version, unique entry paths, and that every
    /// file record points at an entry.
    pub fn from_json(data: &[u8]) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: u32,
        }
        let probe: Probe = serde_json::from_slice(data).map_err(Error::IndexMalformed)?;
        if probe.schema_version != SCHEMA_VERSION {
            return Err(Error::IndexSchema {
                found: probe.schema_version,
            });
        }
        let index: BundleIndex = serde_json::from_slice(data).map_err(Error::IndexMalformed)?;
        index.check()?;
        Ok(index)
    }

    fn check(&self) -> Result<(), Error> {
        let positions = self.positions();
        if positions.len() != self.entries.len() {
            let mut seen = std::collections::HashSet::new();
            let dup = self
                .entries
                .iter()
                .find(|e| !seen.insert(&e.path))
                .expect("a duplicate");
            return Err(Error::IndexDuplicate {
                entry: dup.path.to_string(),
            });
        }
        for reserved in [crate::layout::INDEX_ENTRY, crate::layout::SIGNATURE_ENTRY] {
            if positions.contains_key(reserved) {
                return Err(Error::IndexDuplicate {
                    entry: reserved.to_string(),
                });
            }
        }
        for f in &self.files {
            let what = format!("files[] record `{}`", f.name);
            self.agrees(&positions, what, &f.path, f.size, f.sha256)?;
        }
        for r in self.rpms.iter().flat_map(|repo| &repo.packages) {
            let what = format!("rpms[] record `{}`", r.nevra);
            self.agrees(&positions, what, &r.path, r.size, r.sha256)?;
        }
        self.blobs_match_their_paths()
    }

    /// A record must point at a listed entry and agree with its size and digest.
    fn agrees(
        &self,
        positions: &HashMap<&str, usize>,
        what: String,
        path: &EntryPath,
        size: u64,
        sha256: Sha256Digest,
    ) -> Result<(), Error> {
        let Some(&pos) = positions.get(path.as_str()) else {
            return Err(Error::IndexDangling {
                what,
                entry: path.to_string(),
            });
        };
        let entry = &self.entries[pos];
        if entry.size != size || entry.sha256 != sha256 {
            return Err(Error::IndexInconsistent {
                what,
                entry: path.to_string(),
                detail: format!(
                    "the record says {size} bytes with sha256 {sha256}, the entry {} bytes with sha256 {}",
                    entry.size, entry.sha256
                ),
            });
        }
        Ok(())
    }

    /// Content-addressed blobs: the digest in the path is the content's SHA-256.
    fn blobs_match_their_paths(&self) -> Result<(), Error> {
        for e in &self.entries {
            let Some(hex) = e.path.as_str().strip_prefix(crate::layout::BLOBS) else {
                continue;
            };
            if hex != e.sha256.hex() {
                return Err(Error::IndexInconsistent {
                    what: "entries[] record".into(),
                    entry: e.path.to_string(),
                    detail: format!(
                        "its sha256 {} is not the digest in its path, as a content-addressed blob's must be",
                        e.sha256
                    ),
                });
            }
        }
        Ok(())
    }

    /// Map from entry path to its position in [`BundleIndex::entries`].
    pub fn positions(&self) -> HashMap<&str, usize> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.as_str(), i))
            .collect()
    }

    /// Sum of all entry sizes.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// The file record with this name.
    pub fn file(&self, name: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BundleIndex {
        let d = Sha256Digest::of(b"x");
        BundleIndex {
            schema_version: SCHEMA_VERSION,
            name: "n".into(),
            version: "1".into(),
            created: "2026-01-01T00:00:00Z".into(),
            generator: "bundle test".into(),
            kubernetes_version: None,
            cni: None,
            entries: vec![EntryRecord {
                path: EntryPath::new("files/a").unwrap(),
                size: 1,
                sha256: d,
            }],
            images: vec![],
            rpms: vec![],
            files: vec![FileRecord {
                name: "a".into(),
                url: "http://x/a".into(),
                path: EntryPath::new("files/a").unwrap(),
                size: 1,
                sha256: d,
            }],
        }
    }

    #[test]
    fn round_trips_through_json() {
        let i = sample();
        assert_eq!(BundleIndex::from_json(&i.to_json()).unwrap(), i);
    }

    #[test]
    fn rejects_duplicate_entries_newer_schema_and_dangling_files() {
        let mut i = sample();
        i.entries.push(i.entries[0].clone());
        assert!(matches!(
            BundleIndex::from_json(&i.to_json()),
            Err(Error::IndexDuplicate { .. })
        ));
        let mut i = sample();
        i.schema_version = 2;
        assert!(matches!(
            BundleIndex::from_json(&i.to_json()),
            Err(Error::IndexSchema { found: 2 })
        ));
        let mut i = sample();
        i.files[0].path = EntryPath::new("files/b").unwrap();
        assert!(matches!(
            BundleIndex::from_json(&i.to_json()),
            Err(Error::IndexDangling { .. })
        ));
    }

    #[test]
    fn rejects_unsafe_paths_in_the_index() {
        let json = String::from_utf8(sample().to_json())
            .unwrap()
            .replace("files/a", "../a");
        let err = BundleIndex::from_json(json.as_bytes()).unwrap_err();
        let cause = std::error::Error::source(&err)
            .map(|c| c.to_string())
            .unwrap_or_default();
        assert!(
            matches!(err, Error::IndexMalformed(_)) && cause.contains("`../a`"),
            "{err}: {cause}"
        );
    }
}
