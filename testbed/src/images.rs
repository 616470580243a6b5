//! Synthetic OCI images, written as an OCI layout and copied into a registry with
//! `skopeo` (an independent client). Layer data is pseudo-random and incompressible,
//! like real gzip layers; the same seed and size always give the same digest, so images
//! can share layers.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A layer: `size` bytes from `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Layer {
    /// Seed of the generator.
    pub seed: u64,
    /// Size in bytes.
    pub size: usize,
}

/// An image to create.
#[derive(Clone, Debug)]
pub struct TestImage {
    /// Repository in the registry (`kube-apiserver`, `calico/node`).
    pub repository: String,
    /// Tag.
    pub tag: String,
    /// Architectures; more than one makes a multi-arch index (`linux/<arch>` each).
    pub architectures: Vec<String>,
    /// Layers of each platform's image; the architecture changes the seed of the last
    /// layer so platforms share all but their top layer.
    pub layers: Vec<Layer>,
}

impl TestImage {
    /// A single-platform (amd64) image with these layers.
    pub fn new(repository: &str, tag: &str, layers: &[Layer]) -> Self {
        Self {
            repository: repository.into(),
            tag: tag.into(),
            architectures: vec!["amd64".into()],
            layers: layers.to_vec(),
        }
    }

    /// The same image as a multi-arch index over these architectures.
    pub fn multi_arch(mut self, archs: &[&str]) -> Self {
        self.architectures = archs.iter().map(|a| a.to_string()).collect();
        self
    }
}

/// Digests of a seeded image.
#[derive(Clone, Debug)]
pub struct SeededImage {
    /// Digest of the top-level manifest or index.
    pub digest: String,
    /// Per-architecture manifest digests (one entry for single-platform images).
    pub manifests: Vec<(String, String)>,
    /// Every blob digest (configs and layers).
    pub blobs: Vec<String>,
}

/// Deterministic incompressible bytes (splitmix64).
pub fn layer_bytes(layer: Layer) -> Vec<u8> {
    let mut state = layer.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (layer.size as u64);
    let mut out = Vec::with_capacity(layer.size + 8);
    while out.len() < layer.size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(layer.size);
    out
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

struct Layout<'a> {
    root: &'a Path,
    blobs: Vec<String>,
}

impl Layout<'_> {
    fn put(&mut self, data: &[u8]) -> anyhow::Result<(String, usize)> {
        let d = digest(data);
        let path = self.root.join("blobs/sha256").join(&d[7..]);
        if !path.exists() {
            std::fs::write(&path, data)?;
        }
        self.blobs.push(d.clone());
        Ok((d, data.len()))
    }
}

/// Writes `image` as an OCI layout at `dir` (tagged `image.tag`).
pub fn write_layout(image: &TestImage, dir: &Path) -> anyhow::Result<SeededImage> {
    std::fs::create_dir_all(dir.join("blobs/sha256"))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut layout = Layout {
        root: dir,
        blobs: vec![],
    };
    let mut manifests = Vec::new();
    for (i, arch) in image.architectures.iter().enumerate() {
        let mut layers = Vec::new();
        for (j, l) in image.layers.iter().enumerate() {
            let top = j + 1 == image.layers.len() && image.architectures.len() > 1;
            let layer = if top {
                Layer {
                    seed: l.seed ^ ((i as u64 + 1) << 40),
                    size: l.size,
                }
            } else {
                *l
            };
            let (d, size) = layout.put(&layer_bytes(layer))?;
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size}));
        }
        let diff_ids: Vec<_> = layers.iter().map(|l| l["digest"].clone()).collect();
        let config = json!({"architecture": arch, "os": "linux", "config": {"Labels": {"test.image": format!("{}:{}", image.repository, image.tag)}}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let (cd, cs) = layout.put(&serde_json::to_vec(&config)?)?;
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": layers});
        let bytes = serde_json::to_vec(&manifest)?;
        let (md, ms) = layout.put(&bytes)?;
        layout.blobs.pop();
        manifests.push((arch.clone(), md, ms));
    }
    let top = if manifests.len() == 1 {
        let (_, d, s) = &manifests[0];
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s, "annotations": {"org.opencontainers.image.ref.name": image.tag}})
    } else {
        let children: Vec<_> = manifests
            .iter()
            .map(|(a, d, s)| json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s, "platform": {"architecture": a, "os": "linux"}}))
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children});
        let (d, s) = layout.put(&serde_json::to_vec(&index)?)?;
        layout.blobs.pop();
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": s, "annotations": {"org.opencontainers.image.ref.name": image.tag}})
    };
    let top_digest = top["digest"].as_str().expect("digest").to_string();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [top]}))?,
    )?;
    let mut blobs = layout.blobs;
    blobs.sort();
    blobs.dedup();
    Ok(SeededImage {
        digest: top_digest,
        manifests: manifests.into_iter().map(|(a, d, _)| (a, d)).collect(),
        blobs,
    })
}

/// Writes `image` to a layout under `work` and copies it into the registry at `addr`
/// (plain HTTP) with `skopeo copy --all --preserve-digests`.
pub fn seed(addr: &str, image: &TestImage, work: &Path) -> anyhow::Result<SeededImage> {
    let dir = work.join(format!(
        "{}-{}",
        image.repository.replace('/', "_"),
        image.tag
    ));
    let seeded = write_layout(image, &dir)?;
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--preserve-digests",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{}", dir.display(), image.tag))
        .arg(format!(
            "docker://{addr}/{}:{}",
            image.repository, image.tag
        ))
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo copy of {}:{} failed: {}",
            image.repository,
            image.tag,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(seeded)
}

/// The default manifest's images with small synthetic content: the control plane
/// shares a base layer, coredns and pause are small, calico is multi-arch.
pub fn default_manifest_images(scale: usize) -> Vec<TestImage> {
    let base = Layer {
        seed: 1,
        size: 64 * 1024 * scale,
    };
    let k8s = |name: &str, tag: &str, seed: u64| {
        TestImage::new(
            name,
            tag,
            &[
                base,
                Layer {
                    seed,
                    size: 32 * 1024 * scale,
                },
            ],
        )
    };
    vec![
        k8s("kube-apiserver", "v1.29.2", 10),
        k8s("kube-controller-manager", "v1.29.2", 11),
        k8s("kube-scheduler", "v1.29.2", 12),
        k8s("kube-proxy", "v1.29.2", 13),
        TestImage::new(
            "etcd",
            "3.5.10-0",
            &[Layer {
                seed: 14,
                size: 48 * 1024 * scale,
            }],
        ),
        TestImage::new(
            "coredns/coredns",
            "v1.11.1",
            &[Layer {
                seed: 15,
                size: 16 * 1024 * scale,
            }],
        ),
        TestImage::new(
            "pause",
            "3.9",
            &[Layer {
                seed: 16,
                size: 1024,
            }],
        ),
        TestImage::new(
            "calico/cni",
            "v3.26.4",
            &[
                Layer {
                    seed: 20,
                    size: 32 * 1024 * scale,
                },
                Layer {
                    seed: 21,
                    size: 8 * 1024,
                },
            ],
        )
        .multi_arch(&["amd64", "arm64"]),
        TestImage::new(
            "calico/node",
            "v3.26.4",
            &[
                Layer {
                    seed: 20,
                    size: 32 * 1024 * scale,
                },
                Layer {
                    seed: 22,
                    size: 8 * 1024,
                },
            ],
        )
        .multi_arch(&["amd64", "arm64"]),
        TestImage::new(
            "calico/kube-controllers",
            "v3.26.4",
            &[Layer {
                seed: 23,
                size: 16 * 1024 * scale,
            }],
        )
        .multi_arch(&["amd64", "arm64"]),
    ]
}
