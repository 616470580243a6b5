//! `bundle build --dry-run`: everything a build would carry, resolved and sized, with
//! nothing downloaded but image manifests and repository metadata (both needed to
//! know the rest, both small) and nothing written outside the cache. What a user
//! checks before a long build on a metered or proxied line: digests, the package
//! closure, what is already cached and how big the bundle will be.

use std::collections::BTreeMap;

use bundle_format::Sha256Digest;
use serde::Serialize;

use super::build::{ResolveOptions, Upstream};
use crate::rpm::{self, TargetPlan};
use crate::{BuildReporter, Error};

/// One image as the bundle would carry it.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePlan {
    /// As the manifest names it.
    pub reference: String,
    /// Where it is pulled from (`registry/repository`).
    pub source: String,
    /// The digest the bundle will record: the manifest or index it stores (an index
    /// cut down to the manifest's platforms when upstream has more).
    pub digest: String,
    /// What the tag points at upstream (the lock's digest).
    pub upstream_digest: String,
    /// Manifests and blobs, bytes.
    pub bytes: u64,
}

/// One file: its size when the cache has it already.
#[derive(Debug, Clone, Serialize)]
pub struct FilePlan {
    /// Name in the bundle.
    pub name: String,
    /// Where it comes from.
    pub url: String,
    /// Bytes, when cached (a download's size is known only once it ran).
    pub cached_bytes: Option<u64>,
}

/// The whole dry run.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// Bundle name and version.
    pub bundle: String,
    /// Every image.
    pub images: Vec<ImagePlan>,
    /// Image bytes counted once per blob (images share layers).
    pub image_bytes: u64,
    /// Of which already in the cache.
    pub image_bytes_cached: u64,
    /// Every file.
    pub files: Vec<FilePlan>,
    /// Every RPM target's closure.
    pub rpms: Vec<TargetPlan>,
    /// What the bundle's entries will add up to (files not cached counted as 0).
    pub bundle_bytes: u64,
    /// What a build would download now.
    pub to_download: u64,
}

/// Resolves everything; downloads no blob, file or package.
pub async fn dry_run(opts: &ResolveOptions, report: &dyn BuildReporter) -> Result<DryRun, Error> {
    let manifest = opts.manifest.load()?;
    let up = Upstream::open(opts)?;
    let cache = &up.cache;
    let resolved = up.resolve_images(opts, &manifest, report).await?;
    let mut unique: BTreeMap<Sha256Digest, u64> = BTreeMap::new();
    for image in &resolved {
        unique.extend(image.manifests.iter().chain(&image.blobs).copied());
    }
    let image_bytes: u64 = unique.values().sum();
    let image_bytes_cached: u64 = unique
        .iter()
        .filter(|(d, s)| cache.blob_size(d) == Some(**s))
        .map(|(_, s)| s)
        .sum();
    let images = resolved
        .iter()
        .map(|i| ImagePlan {
            reference: i.reference.to_string(),
            source: format!("{}/{}", i.source.registry, i.source.repository),
            digest: i.top.digest.to_string(),
            upstream_digest: i.upstream_digest.to_string(),
            bytes: i.size(),
        })
        .collect();
    let files: Vec<FilePlan> = manifest
        .spec
        .files
        .iter()
        .map(|f| FilePlan {
            name: f.name.clone(),
            url: f.url.clone(),
            cached_bytes: Sha256Digest::from_hex(&f.sha256)
                .ok()
                .and_then(|d| cache.blob_size(&d)),
        })
        .collect();
    let rpms = rpm::plan(&manifest.spec.rpms, &up.rpm_options(opts, &manifest, None)).await?;
    let file_bytes: u64 = files.iter().filter_map(|f| f.cached_bytes).sum();
    let rpm_bytes: u64 = rpms.iter().map(|t| t.bytes).sum();
    let rpm_cached: u64 = rpms.iter().map(|t| t.cached_bytes).sum();
    Ok(DryRun {
        bundle: format!("{} {}", manifest.metadata.name, manifest.metadata.version),
        images,
        image_bytes,
        image_bytes_cached,
        files,
        rpms,
        bundle_bytes: image_bytes + file_bytes + rpm_bytes,
        to_download: (image_bytes - image_bytes_cached) + (rpm_bytes - rpm_cached),
    })
}
