//! What a push does, computed without network: target names, the manifests of every
//! image (children before indexes), and which blob must end up in which repository.
//!
//! The bundle's index (signed) lists every blob with its SHA-256 but not which image
//! uses it; that is in the manifests, stored as blobs in digest order among the layers.
//! So planning reads the manifests in a quick pass over the archive that hashes only
//! what it keeps (manifests are small): each one is checked against the signed index,
//! so the plan is built from authenticated bytes only. Layers are skipped unread; the
//! push's verifying pass checks everything again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use bundle_format::oci::{self, ImageIndex, ImageManifest};
use bundle_format::sign::PublicKey;
use bundle_format::{BundleIndex, ImageReference, Sha256Digest};

use crate::mapping::ImageMapping;
use crate::Error;

/// Largest manifest read into memory (distribution's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
const BLOB_PREFIX: &str = bundle_format::layout::BLOBS;

/// One image as it will appear in the target registry.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// The name the bundle records (`registry.k8s.io/kube-apiserver:v1.29.2`).
    pub source: ImageReference,
    /// Where it goes (`HOST/k8s/kube-apiserver:v1.29.2`), without digest.
    pub target: ImageReference,
    /// Digest of its manifest or index (equal in bundle and registry).
    pub digest: Sha256Digest,
    /// Media type of that manifest or index.
    pub media_type: String,
    /// Manifests to put, children before the index that names them; the last is
    /// `digest`.
    pub manifests: Vec<Sha256Digest>,
    /// Bytes of blobs and manifests the image needs.
    pub size: u64,
}

impl PlannedImage {
    /// Target repository path (`k8s/kube-apiserver`).
    pub fn repository(&self) -> &str {
        &self.target.repository
    }
}

/// A blob (layer or config) and the target repositories that need it.
#[derive(Debug, Clone)]
pub struct PlannedBlob {
    /// Size in bytes.
    pub size: u64,
    /// Target repositories, sorted.
    pub repositories: Vec<String>,
}

/// A manifest or index, held in memory to be put byte for byte.
#[derive(Debug, Clone)]
pub struct PlannedManifest {
    /// Media type (sent as Content-Type).
    pub media_type: String,
    /// The exact bytes from the bundle.
    pub bytes: Vec<u8>,
}

/// Everything a push will do, before it does it.
#[derive(Debug, Clone)]
pub struct PushPlan {
    /// The bundle's verified index.
    pub index: BundleIndex,
    /// Key ID of the signature checked, if any.
    pub signed_by: Option<String>,
    /// Target registry `HOST[:PORT]`.
    pub host: String,
    /// Images in index order.
    pub images: Vec<PlannedImage>,
    /// Harbor projects (first path components) the images need, sorted.
    pub projects: Vec<String>,
    /// Blobs by digest.
    pub blobs: BTreeMap<Sha256Digest, PlannedBlob>,
    /// Manifests and indexes by digest.
    pub manifests: BTreeMap<Sha256Digest, PlannedManifest>,
}

impl PushPlan {
    /// Target repositories, sorted.
    pub fn repositories(&self) -> Vec<String> {
        self.images
            .iter()
            .map(|i| i.repository().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Bytes of distinct blobs (each counted once, however many repositories need it).
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.values().map(|b| b.size).sum()
    }
}

/// Checks the signature of `bundle`'s index, reads its manifests and maps every image
/// into `mapping`'s registry. No network.
pub fn plan(
    bundle: &Path,
    key: Option<&PublicKey>,
    allow_unsigned: bool,
    mapping: &ImageMapping,
) -> Result<PushPlan, Error> {
    let rejected = |source| Error::Bundle {
        path: bundle.to_path_buf(),
        source,
    };
    if key.is_none() && !allow_unsigned {
        return Err(rejected(bundle_format::Error::Unsigned));
    }
    let (index, signature) = bundle_format::verify::read_index(bundle, key).map_err(rejected)?;
    let manifests = read_manifests(bundle, &index)?;
    let inconsistent = |detail: String| Error::Inconsistent {
        path: bundle.to_path_buf(),
        detail,
    };
    let entry_sizes: HashMap<Sha256Digest, u64> = index
        .entries
        .iter()
        .filter_map(|e| {
            e.path
                .as_str()
                .strip_prefix(BLOB_PREFIX)
                .and_then(|h| Sha256Digest::from_hex(h).ok())
                .map(|d| (d, e.size))
        })
        .collect();

    let mut images = Vec::new();
    let mut blobs: BTreeMap<Sha256Digest, PlannedBlob> = BTreeMap::new();
    let mut kept: BTreeMap<Sha256Digest, PlannedManifest> = BTreeMap::new();
    for record in &index.images {
        let target = ImageReference {
            digest: None,
            ..mapping.map(&record.reference)
        };
        let repository = target.repository.clone();
        let mut order = Vec::new();
        let mut image_blobs = BTreeSet::new();
        let top = manifests.get(&record.digest).ok_or_else(|| {
            inconsistent(format!(
                "image `{}` names manifest {} that the bundle does not carry",
                record.reference, record.digest
            ))
        })?;
        let media_type = oci::media_type_of(top).unwrap_or_else(|| record.media_type.clone());
        let children: Vec<Sha256Digest> = if oci::is_index(&media_type) {
            let idx: ImageIndex = serde_json::from_slice(top).map_err(|e| {
                inconsistent(format!(
                    "index {} of `{}` is malformed: {e}",
                    record.digest, record.reference
                ))
            })?;
            idx.manifests.iter().map(|d| d.digest).collect()
        } else {
            Vec::new()
        };
        for m in children.iter().chain(std::iter::once(&record.digest)) {
            let bytes = manifests.get(m).ok_or_else(|| {
                inconsistent(format!(
                    "image `{}` needs manifest {m} that the bundle does not carry",
                    record.reference
                ))
            })?;
            let mt = oci::media_type_of(bytes).unwrap_or_else(|| {
                if m == &record.digest {
                    record.media_type.clone()
                } else {
                    oci::MEDIA_OCI_MANIFEST.to_string()
                }
            });
            if !oci::is_index(&mt) {
                let man: ImageManifest = serde_json::from_slice(bytes).map_err(|e| {
                    inconsistent(format!(
                        "manifest {m} of `{}` is malformed: {e}",
                        record.reference
                    ))
                })?;
                for d in std::iter::once(&man.config).chain(man.layers.iter()) {
                    if d.media_type.contains("foreign") || d.media_type.contains("nondistributable")
                    {
                        continue;
                    }
                    if !entry_sizes.contains_key(&d.digest) {
                        return Err(inconsistent(format!(
                            "manifest {m} of `{}` names blob {} that the bundle does not carry",
                            record.reference, d.digest
                        )));
                    }
                    image_blobs.insert(d.digest);
                }
            } else if m != &record.digest {
                return Err(inconsistent(format!(
                    "index {} of `{}` nests another index {m}; not supported",
                    record.digest, record.reference
                )));
            }
            if !order.contains(m) {
                order.push(*m);
            }
            kept.entry(*m).or_insert_with(|| PlannedManifest {
                media_type: mt,
                bytes: bytes.clone(),
            });
        }
        let size = image_blobs.iter().map(|d| entry_sizes[d]).sum::<u64>()
            + order.iter().map(|m| manifests[m].len() as u64).sum::<u64>();
        for d in image_blobs {
            let b = blobs.entry(d).or_insert_with(|| PlannedBlob {
                size: entry_sizes[&d],
                repositories: Vec::new(),
            });
            if !b.repositories.contains(&repository) {
                b.repositories.push(repository.clone());
                b.repositories.sort();
            }
        }
        images.push(PlannedImage {
            source: record.reference.clone(),
            target,
            digest: record.digest,
            media_type,
            manifests: order,
            size,
        });
    }
    let projects = mapping.projects(index.images.iter().map(|i| &i.reference));
    Ok(PushPlan {
        signed_by: signature.map(|s| s.key_id),
        host: mapping.host().to_string(),
        index,
        images,
        projects,
        blobs,
        manifests: kept,
    })
}

/// Reads the images' manifests and index children from the archive, checking each
/// against the signed index. Stops as soon as every needed manifest is in hand.
fn read_manifests(
    bundle: &Path,
    index: &BundleIndex,
) -> Result<HashMap<Sha256Digest, Vec<u8>>, Error> {
    let rejected = |source| Error::Bundle {
        path: bundle.to_path_buf(),
        source,
    };
    let mut wanted: BTreeSet<Sha256Digest> = index.images.iter().map(|i| i.digest).collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let signed: HashMap<&str, &bundle_format::EntryRecord> =
        index.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut candidates: HashMap<Sha256Digest, Vec<u8>> = HashMap::new();
    let mut found: HashMap<Sha256Digest, Vec<u8>> = HashMap::new();
    let mut mismatch = None;
    bundle_format::verify::scan_entries(bundle, |name, size, data| {
        let Some(hex) = name.strip_prefix(BLOB_PREFIX) else {
            return Ok(ControlFlow::Continue(()));
        };
        let Some(record) = signed.get(name) else {
            return Ok(ControlFlow::Continue(()));
        };
        if size > MAX_MANIFEST || size != record.size {
            return Ok(ControlFlow::Continue(()));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        data.take(size).read_to_end(&mut bytes)?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Ok(ControlFlow::Continue(()));
        }
        let digest = Sha256Digest::of(&bytes);
        if digest != record.sha256 || Sha256Digest::from_hex(hex).ok() != Some(digest) {
            mismatch = Some(bundle_format::Error::DigestMismatch {
                entry: name.to_string(),
                expected: record.sha256.to_string(),
                found: digest.to_string(),
            });
            return Ok(ControlFlow::Break(()));
        }
        candidates.insert(digest, bytes);
        take_wanted(&mut wanted, &mut candidates, &mut found);
        Ok(match wanted.is_empty() {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        })
    })
    .map_err(rejected)?;
    if let Some(e) = mismatch {
        return Err(rejected(e));
    }
    Ok(found)
}

/// Moves what is wanted from the candidates into `found`; indexes add their children.
fn take_wanted(
    wanted: &mut BTreeSet<Sha256Digest>,
    candidates: &mut HashMap<Sha256Digest, Vec<u8>>,
    found: &mut HashMap<Sha256Digest, Vec<u8>>,
) {
    loop {
        let ready: Vec<Sha256Digest> = wanted
            .iter()
            .filter(|d| candidates.contains_key(d))
            .copied()
            .collect();
        if ready.is_empty() {
            return;
        }
        for d in ready {
            let bytes = candidates.remove(&d).expect("ready");
            wanted.remove(&d);
            if oci::media_type_of(&bytes).is_some_and(|m| oci::is_index(&m)) {
                if let Ok(idx) = serde_json::from_slice::<ImageIndex>(&bytes) {
                    wanted.extend(
                        idx.manifests
                            .iter()
                            .map(|m| m.digest)
                            .filter(|m| !found.contains_key(m)),
                    );
                }
            }
            found.insert(d, bytes);
        }
    }
}
