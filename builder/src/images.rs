//! Images: resolve each reference to a digest, keep the wanted platforms of
//! multi-arch indexes, store manifests raw in the cache, and list every blob needed.

use std::collections::BTreeMap;

use bundle_format::oci::{self, Descriptor, ImageIndex, ImageManifest};
use bundle_format::{ImageReference, Sha256Digest};
use bundle_registry::{RawManifest, RegistryClient};

use crate::cache::Cache;
use crate::Error;

/// Where to pull an image's content from (a mirror, or its own registry).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PullSource {
    /// Registry host to ask.
    pub registry: String,
    /// Repository there.
    pub repository: String,
}

/// An image resolved to the content the bundle stores for it.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// As the manifest names it.
    pub reference: ImageReference,
    /// Where its content comes from.
    pub source: PullSource,
    /// The top-level manifest or index stored in the layout.
    pub top: Descriptor,
    /// What the reference pointed at upstream (differs from `top` when filtered).
    pub upstream_digest: Sha256Digest,
    /// Platforms carried.
    pub platforms: Vec<String>,
    /// Manifests (top and children) with their sizes; all already in the cache.
    pub manifests: Vec<(Sha256Digest, u64)>,
    /// Config and layer blobs with their sizes, to fetch.
    pub blobs: Vec<(Sha256Digest, u64)>,
    /// The config blob of a single-platform image (its platform is read from it).
    pub config: Option<(Sha256Digest, u64)>,
}

impl ResolvedImage {
    /// Bytes of every manifest and blob the image needs.
    pub fn size(&self) -> u64 {
        self.manifests
            .iter()
            .chain(&self.blobs)
            .map(|(_, s)| s)
            .sum()
    }
}

/// `--mirror registry.k8s.io=mirror.corp:5000` pairs.
#[derive(Debug, Clone, Default)]
pub struct Mirrors(pub BTreeMap<String, String>);

impl Mirrors {
    /// Where to pull `reference` from.
    pub fn source_of(&self, reference: &ImageReference) -> PullSource {
        let registry = self
            .0
            .get(&reference.registry)
            .cloned()
            .unwrap_or_else(|| reference.registry.clone());
        PullSource {
            registry,
            repository: reference.repository.clone(),
        }
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    reference: &ImageReference,
    m: &RawManifest,
) -> Result<T, Error> {
    serde_json::from_slice(&m.bytes).map_err(|e| Error::BadManifest {
        reference: reference.to_string(),
        digest: m.digest.to_string(),
        detail: e.to_string(),
    })
}

fn descriptor(m: &RawManifest, bytes_len: usize) -> Descriptor {
    Descriptor {
        media_type: m.media_type.clone(),
        digest: m.digest,
        size: bytes_len as u64,
        platform: None,
        annotations: Default::default(),
    }
}

/// Resolves one image: fetches its manifests (into the cache) and lists its blobs.
pub async fn resolve(
    client: &RegistryClient,
    cache: &Cache,
    reference: &ImageReference,
    source: PullSource,
    platforms: &[String],
) -> Result<ResolvedImage, Error> {
    let registry_err = |source| Error::Image {
        reference: reference.to_string(),
        source: Box::new(source),
    };
    let top = client
        .pull_manifest(
            &source.registry,
            &source.repository,
            &reference.manifest_selector(),
        )
        .await
        .map_err(registry_err)?;
    cache.put_bytes(&top.digest, &top.bytes)?;
    let mut image = ResolvedImage {
        reference: reference.clone(),
        top: descriptor(&top, top.bytes.len()),
        upstream_digest: top.digest,
        platforms: vec![],
        manifests: vec![(top.digest, top.bytes.len() as u64)],
        blobs: vec![],
        config: None,
        source,
    };
    if oci::is_manifest(&top.media_type) {
        let m: ImageManifest = parse_json(reference, &top)?;
        image.blobs = blobs_of(&m);
        image.config = Some((m.config.digest, m.config.size));
        return Ok(image);
    }
    if !oci::is_index(&top.media_type) {
        return Err(Error::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: top.media_type,
        });
    }
    let index: ImageIndex = parse_json(reference, &top)?;
    // Pinned by index digest: the user asked for exactly that index, so it stays whole.
    let keep_all = reference.digest.is_some();
    let children: Vec<Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            keep_all
                || d.platform
                    .as_ref()
                    .is_some_and(|p| platforms.iter().any(|w| p.matches(w)))
        })
        .cloned()
        .collect();
    if children.is_empty() {
        let available: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.key()))
            .collect();
        return Err(Error::NoPlatform {
            reference: reference.to_string(),
            wanted: platforms.join(", "),
            available: if available.is_empty() {
                "none declared".into()
            } else {
                available.join(", ")
            },
        });
    }
    for child in &children {
        let m = client
            .pull_manifest(
                &image.source.registry,
                &image.source.repository,
                &child.digest.to_string(),
            )
            .await
            .map_err(registry_err)?;
        cache.put_bytes(&m.digest, &m.bytes)?;
        image.manifests.push((m.digest, m.bytes.len() as u64));
        if oci::is_manifest(&m.media_type) {
            image
                .blobs
                .extend(blobs_of(&parse_json::<ImageManifest>(reference, &m)?));
        } else {
            return Err(Error::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: m.media_type,
            });
        }
        if let Some(p) = &child.platform {
            image.platforms.push(p.key());
        }
    }
    if children.len() != index.manifests.len() {
        // A platform subset: a new index of the kept children, same media type. Its
        // digest is new; the upstream one is recorded as `sourceDigest`.
        let subset = ImageIndex {
            schema_version: 2,
            media_type: index.media_type.clone(),
            manifests: children,
        };
        let bytes = serde_json::to_vec(&subset).expect("index serializes");
        let digest = Sha256Digest::of(&bytes);
        cache.put_bytes(&digest, &bytes)?;
        image.manifests[0] = (digest, bytes.len() as u64);
        image.top = Descriptor {
            digest,
            size: bytes.len() as u64,
            ..image.top
        };
    }
    image.blobs.sort();
    image.blobs.dedup();
    Ok(image)
}

fn blobs_of(m: &ImageManifest) -> Vec<(Sha256Digest, u64)> {
    std::iter::once(&m.config)
        .chain(&m.layers)
        .map(|d| (d.digest, d.size))
        .collect()
}

/// Largest image config read to learn a platform; configs are a few KiB.
const MAX_CONFIG_SIZE: u64 = 4 * 1024 * 1024;

/// The platform (`os/arch[/variant]`) a single-platform image's config declares, once
/// the config is in the cache. `None` when it declares none or is not a usual config.
pub fn platform_from_config(cache: &Cache, image: &ResolvedImage) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Config {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let (digest, size) = image.config?;
    if size > MAX_CONFIG_SIZE {
        return None;
    }
    let data = std::fs::read(cache.blob_path(&digest)).ok()?;
    let c: Config = serde_json::from_slice(&data).ok()?;
    let (os, arch) = (c.os?, c.architecture?);
    Some(match c.variant {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    })
}
