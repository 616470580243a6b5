//! What planning needs to know about a bundle, taken from its verified index.

use bundle_format::verify::VerifyReport;
use bundle_format::{ImageReference, RpmRepoRecord};
use serde::Serialize;

use crate::release::Release;
use crate::Error;

/// A bundle as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleFacts {
    /// `name version` of the bundle.
    pub bundle: String,
    /// Kubernetes version (`v1.29.2`).
    pub kubernetes_version: String,
    /// containerd version from the bundle's RPMs (`1.6.28`), when it carries one.
    pub containerd_version: Option<String>,
    /// Every image carried, as the manifest named it.
    pub images: Vec<ImageReference>,
    /// The platforms (`linux/arm64`) every image is there for; empty without images.
    pub image_platforms: Vec<String>,
    /// The CNI and its manifest text.
    pub cni: Option<CniFacts>,
    /// The yum repositories carried.
    pub rpm_repos: Vec<RpmRepoFacts>,
    /// The release an install from this bundle records.
    pub release: Release,
}

/// The CNI a bundle carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CniFacts {
    /// `calico` or `flannel`.
    pub name: String,
    /// The manifest file's name in the bundle.
    pub file: String,
    /// The manifest as shipped.
    #[serde(skip)]
    pub manifest: String,
}

/// One yum repository of the bundle (`rpms/<target>/`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RpmRepoFacts {
    /// `el9-x86_64`.
    pub target: String,
    /// `9`.
    pub releasever: String,
    /// `x86_64`.
    pub arch: String,
    /// Packages: (name, nevra, version).
    pub packages: Vec<RpmFact>,
    /// GPG key files, relative to the repository folder (`RPM-GPG-KEY-kubernetes`).
    pub gpg_keys: Vec<String>,
    /// EL8 module streams the packages come from (`container-tools:rhel8`), enabled on
    /// the hosts before installing; empty on EL9.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module_streams: Vec<String>,
}

/// One package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpmFact {
    /// Name.
    pub name: String,
    /// `name-[epoch:]version-release.arch`.
    pub nevra: String,
    /// Version.
    pub version: String,
}

impl BundleFacts {
    /// Facts from a verified bundle and the CNI manifest's text (captured while
    /// verifying; `None` when the bundle has no CNI).
    pub fn from_verified(
        report: &VerifyReport,
        cni_manifest: Option<String>,
    ) -> Result<Self, Error> {
        let index = &report.index;
        let bundle = format!("{} {}", index.name, index.version);
        let lacks = |what: String| Error::BundleLacks {
            bundle: bundle.clone(),
            what,
        };
        let kubernetes_version = index.kubernetes_version.clone().ok_or_else(|| {
            lacks("its index records no Kubernetes version (`kubernetesVersion`)".into())
        })?;
        let cni = match (&index.cni, cni_manifest) {
            (Some(c), Some(text)) => Some(CniFacts {
                name: c.name.clone(),
                file: c.manifest.clone(),
                manifest: text,
            }),
            (Some(c), None) => {
                return Err(lacks(format!(
                    "the {} manifest `{}` is not among its files",
                    c.name, c.manifest
                )))
            }
            (None, _) => None,
        };
        let rpm_repos: Vec<RpmRepoFacts> = index.rpms.iter().map(rpm_repo_facts).collect();
        let containerd_version = rpm_repos
            .iter()
            .flat_map(|r| &r.packages)
            .find(|p| p.name == "containerd.io" || p.name == "containerd")
            .map(|p| p.version.clone());
        let mut images: Vec<ImageReference> =
            index.images.iter().map(|i| i.reference.clone()).collect();
        images.sort();
        images.dedup();
        let image_platforms = common_platforms(index.images.iter().map(|i| &i.platforms));
        let release = Release {
            bundle: index.name.clone(),
            version: index.version.clone(),
            kubernetes_version: kubernetes_version.clone(),
            index_sha256: report.index_sha256.hex(),
            key_id: report.signature.as_ref().map(|s| s.key_id.clone()),
        };
        Ok(Self {
            bundle,
            kubernetes_version,
            containerd_version,
            images,
            image_platforms,
            cni,
            rpm_repos,
            release,
        })
    }

    /// Kubernetes (major, minor) from `v1.29.2`.
    pub fn kubernetes_minor(&self) -> Option<(u32, u32)> {
        parse_minor(&self.kubernetes_version)
    }

    /// containerd's major version; 1 when the bundle carries no containerd package.
    pub fn containerd_major(&self) -> u32 {
        self.containerd_version
            .as_deref()
            .and_then(parse_minor)
            .map(|(m, _)| m)
            .unwrap_or(1)
    }
}

/// The platforms every one of these lists has, sorted.
fn common_platforms<'a>(mut lists: impl Iterator<Item = &'a Vec<String>>) -> Vec<String> {
    let Some(first) = lists.next() else {
        return vec![];
    };
    let mut common: Vec<String> = first.clone();
    for l in lists {
        common.retain(|p| l.contains(p));
    }
    common.sort();
    common.dedup();
    common
}

/// One of the bundle's yum repositories, its packages sorted by NEVRA and its GPG
/// keys relative to the repository folder.
fn rpm_repo_facts(r: &RpmRepoRecord) -> RpmRepoFacts {
    let prefix = format!("{}{}/", bundle_format::layout::RPMS, r.target);
    let mut packages: Vec<RpmFact> = r
        .packages
        .iter()
        .map(|p| RpmFact {
            name: p.name.clone(),
            nevra: p.nevra.clone(),
            version: p.version.clone(),
        })
        .collect();
    packages.sort_by(|a, b| a.nevra.cmp(&b.nevra));
    let mut gpg_keys: Vec<String> = r
        .gpg_keys
        .iter()
        .map(|k| {
            k.as_str()
                .strip_prefix(&prefix)
                .unwrap_or(k.as_str())
                .to_string()
        })
        .collect();
    gpg_keys.sort();
    RpmRepoFacts {
        target: r.target.clone(),
        releasever: r.releasever.clone(),
        arch: r.arch.clone(),
        packages,
        gpg_keys,
        module_streams: r.module_streams.clone(),
    }
}

/// `(major, minor)` of `v1.29.2`, `1.7.13`.
pub fn parse_minor(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
