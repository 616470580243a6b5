//! The OCI image layout the bundle stores under `images/`, and the manifest shapes the
//! bundle needs to read.
//!
//! Manifests are kept as the registry served them (raw bytes), so only the fields used
//! to walk from an index to its blobs are modelled here; unknown fields are ignored and
//! never re-serialized. oci-spec has complete types, but its builders re-serialize, and
//! a re-serialized manifest can change its digest.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256Digest;

/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (a multi-arch index in Docker's schema 2).
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Annotation that names an image in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Content of the layout's `oci-layout` file.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Whether a media type is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST
}

/// Whether a media type is a single-image manifest.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_OCI_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Platform, for index children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A platform as an index child declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`, …
    pub os: String,
    /// `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`, as manifests and users write platforms.
    pub fn key(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.architecture, v),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// True when `wanted` (`linux/amd64`, `linux/arm64/v8`) selects this platform. A
    /// wanted platform without variant selects every variant.
    pub fn matches(&self, wanted: &str) -> bool {
        let mut parts = wanted.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        os == Some(self.os.as_str())
            && arch == Some(self.architecture.as_str())
            && (variant.is_none() || variant == self.variant.as_deref())
    }
}

/// The fields of an image index the bundle reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// Index media type (absent in some old indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Children.
    pub manifests: Vec<Descriptor>,
}

/// The fields of an image manifest the bundle reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Config blob.
    pub config: Descriptor,
    /// Layer blobs.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// Builds a layout `index.json` naming each top-level manifest with its reference.
/// Entries are sorted by name so the file is the same for the same images.
pub fn layout_index(images: &[(String, Descriptor)]) -> Vec<u8> {
    let mut manifests: Vec<Descriptor> = images
        .iter()
        .map(|(name, d)| {
            let mut d = d.clone();
            d.platform = None;
            d.annotations
                .insert(ANNOTATION_REF_NAME.to_string(), name.clone());
            d
        })
        .collect();
    manifests.sort_by(|a, b| a.annotations.cmp(&b.annotations));
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.to_string()),
        manifests,
    };
    let mut out = serde_json::to_vec_pretty(&index).expect("index serializes");
    out.push(b'\n');
    out
}

/// A manifest's or index's `mediaType`; when it has none (allowed by the OCI spec), an
/// index is recognised by its `manifests` and a manifest by its `config`.
pub fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match (p.media_type, p.manifests, p.config) {
        (Some(m), _, _) => Some(m),
        (None, Some(_), _) => Some(MEDIA_OCI_INDEX.into()),
        (None, None, Some(_)) => Some(MEDIA_OCI_MANIFEST.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching_respects_variant_only_when_asked() {
        let p = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        };
        assert!(p.matches("linux/arm64"));
        assert!(p.matches("linux/arm64/v8"));
        assert!(!p.matches("linux/arm64/v7"));
        assert!(!p.matches("linux/amd64"));
        assert_eq!(p.key(), "linux/arm64/v8");
    }
}
