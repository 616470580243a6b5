//! The pinned manifest (`manifests/*.yaml`): what a bundle must carry.
//!
//! Schema: `manifests/README.md` and `manifests/bundle-manifest.schema.json`.

use std::path::{Path, PathBuf};

use bundle_format::{ImageReference, Sha256Digest};
use serde::{Deserialize, Serialize};

use crate::rpm::RpmTargetSpec;
use crate::Error;

/// The manifests' JSON Schema (`manifests/bundle-manifest.schema.json`), printed by
/// `bundle schema manifest`.
pub const SCHEMA: &str = include_str!("../../manifests/bundle-manifest.schema.json");
/// The manifest `bundle build` uses when none is given.
pub const DEFAULT_MANIFEST: &str = include_str!("../../manifests/kubernetes-v1.29.2-calico.yaml");
/// Where the default manifest lives in the source tree (for messages).
pub const DEFAULT_MANIFEST_NAME: &str = "manifests/kubernetes-v1.29.2-calico.yaml (built in)";

/// A whole manifest document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleManifest {
    /// `bundle/v1alpha1`.
    pub api_version: String,
    /// `BundleManifest`.
    pub kind: String,
    /// Name and version of the bundle.
    pub metadata: Metadata,
    /// What to carry.
    pub spec: Spec,
}

/// `metadata`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Bundle name (file-name safe).
    pub name: String,
    /// Bundle version.
    pub version: String,
}

/// `spec`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Kubernetes version carried (`v1.29.2`); the installer picks the kubeadm API from it.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// The CNI carried and the file with its manifest.
    #[serde(default)]
    pub cni: Option<CniSpec>,
    /// Platforms to keep from multi-arch indexes (`linux/amd64`).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Images: `name:tag`, `name:tag@sha256:…` or `name@sha256:…`.
    #[serde(default)]
    pub images: Vec<ImageReference>,
    /// Files to download, each pinned by sha256.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// Yum repositories to carry.
    #[serde(default)]
    pub rpms: Vec<RpmTargetSpec>,
}

/// `spec.cni`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CniSpec {
    /// `calico` or `flannel`.
    pub name: String,
    /// Name of the `spec.files` entry holding its Kubernetes manifest.
    pub manifest: String,
}

/// `spec.files[]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSpec {
    /// Name inside the bundle (`files/<name>`).
    pub name: String,
    /// Where to download it.
    pub url: String,
    /// Its pinned SHA-256 (bare hex, as `sha256sum` prints it).
    pub sha256: String,
}

/// Where a manifest came from.
#[derive(Debug, Clone)]
pub enum ManifestSource {
    /// The built-in default.
    Default,
    /// A file.
    File(PathBuf),
}

impl ManifestSource {
    /// Name for messages.
    pub fn display(&self) -> String {
        match self {
            ManifestSource::Default => DEFAULT_MANIFEST_NAME.to_string(),
            ManifestSource::File(p) => p.display().to_string(),
        }
    }

    /// Reads and checks the manifest; relative certificate paths in it are taken from
    /// its folder, as a build run from elsewhere (CI, a script) expects.
    pub fn load(&self) -> Result<BundleManifest, Error> {
        let text = match self {
            ManifestSource::Default => DEFAULT_MANIFEST.to_string(),
            ManifestSource::File(p) => {
                std::fs::read_to_string(p).map_err(|source| Error::ManifestRead {
                    path: p.clone(),
                    source,
                })?
            }
        };
        let mut m = parse(&text, &self.display())?;
        if let ManifestSource::File(p) = self {
            m.resolve_paths(p.parent().unwrap_or(Path::new("")));
        }
        Ok(m)
    }
}

impl BundleManifest {
    /// The RPM repos' certificate files relative to `dir` (the manifest's folder).
    fn resolve_paths(&mut self, dir: &Path) {
        let repos = self.spec.rpms.iter_mut().flat_map(|t| t.repos.iter_mut());
        for r in repos {
            for f in [&mut r.sslclientcert, &mut r.sslclientkey, &mut r.sslcacert] {
                if let Some(path) = f.as_mut().filter(|p| p.is_relative()) {
                    *path = dir.join(&*path);
                }
            }
        }
    }
}

/// Parses manifest text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<BundleManifest, Error> {
    let m: BundleManifest = serde_saphyr::from_str(text).map_err(|e| Error::ManifestParse {
        manifest: origin.to_string(),
        detail: e.to_string(),
    })?;
    m.check(origin)?;
    Ok(m)
}

fn invalid(origin: &str, field: String, detail: impl Into<String>) -> Error {
    Error::ManifestInvalid {
        manifest: origin.to_string(),
        field,
        detail: detail.into(),
    }
}

impl BundleManifest {
    fn check(&self, origin: &str) -> Result<(), Error> {
        if self.api_version != "bundle/v1alpha1" {
            return Err(invalid(
                origin,
                "apiVersion".into(),
                format!(
                    "`{}` is not supported; use `bundle/v1alpha1`",
                    self.api_version
                ),
            ));
        }
        if self.kind != "BundleManifest" {
            return Err(invalid(
                origin,
                "kind".into(),
                format!("`{}` is not `BundleManifest`", self.kind),
            ));
        }
        let safe = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        };
        if !safe(&self.metadata.name) {
            return Err(invalid(
                origin,
                "metadata.name".into(),
                "must be non-empty [A-Za-z0-9._+-]",
            ));
        }
        if !safe(&self.metadata.version) {
            return Err(invalid(
                origin,
                "metadata.version".into(),
                "must be non-empty [A-Za-z0-9._+-]",
            ));
        }
        // Platforms choose images' children: a bundle of files and RPMs needs none.
        if self.spec.platforms.is_empty() && !self.spec.images.is_empty() {
            return Err(invalid(
                origin,
                "spec.platforms".into(),
                "list at least one platform for the images, e.g. `linux/amd64`",
            ));
        }
        for (i, p) in self.spec.platforms.iter().enumerate() {
            let parts = p.split('/').count();
            if !(2..=3).contains(&parts) || p.split('/').any(str::is_empty) {
                return Err(invalid(
                    origin,
                    format!("spec.platforms[{i}]"),
                    format!("`{p}` is not `os/arch[/variant]`"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.spec.images.iter().enumerate() {
            if r.tag.is_none() && r.digest.is_none() {
                return Err(invalid(
                    origin,
                    format!("spec.images[{i}]"),
                    format!("`{r}` has neither tag nor digest; pin it"),
                ));
            }
            if !seen.insert(r.to_string()) {
                return Err(invalid(
                    origin,
                    format!("spec.images[{i}]"),
                    format!("`{r}` is listed twice"),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, f) in self.spec.files.iter().enumerate() {
            if bundle_format::EntryPath::new(&f.name).is_err() || f.name.contains('/') {
                return Err(invalid(
                    origin,
                    format!("spec.files[{i}].name"),
                    format!("`{}` must be a plain file name", f.name),
                ));
            }
            if !names.insert(f.name.as_str()) {
                return Err(invalid(
                    origin,
                    format!("spec.files[{i}].name"),
                    format!("`{}` is listed twice", f.name),
                ));
            }
            if Sha256Digest::from_hex(&f.sha256).is_err() {
                return Err(invalid(
                    origin,
                    format!("spec.files[{i}].sha256"),
                    "must be 64 lowercase hex digits",
                ));
            }
            if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
                return Err(invalid(
                    origin,
                    format!("spec.files[{i}].url"),
                    format!("`{}` is not an http(s) URL", f.url),
                ));
            }
        }
        if let Some(cni) = &self.spec.cni {
            if !names.contains(cni.manifest.as_str()) {
                return Err(invalid(
                    origin,
                    "spec.cni.manifest".into(),
                    format!("`{}` is not one of spec.files", cni.manifest),
                ));
            }
        }
        Ok(())
    }

    /// `bundles/<name>-<version>.tar.zst` under `dir`.
    pub fn default_output(&self, dir: &Path) -> PathBuf {
        dir.join(format!(
            "{}-{}.tar.zst",
            self.metadata.name, self.metadata.version
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_manifest_parses() {
        let m = ManifestSource::Default.load().unwrap();
        assert_eq!(m.spec.kubernetes_version.as_deref(), Some("v1.29.2"));
        assert!(m
            .spec
            .images
            .iter()
            .any(|i| i.to_string() == "registry.k8s.io/kube-apiserver:v1.29.2"));
    }

    #[test]
    fn unknown_fields_and_bad_values_name_the_field() {
        let base = "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {name: n, version: '1'}\nspec:\n  platforms: [linux/amd64]\n";
        let err = parse(&format!("{base}  imagez: []\n"), "m.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("imagez"), "{err}");
        let err = parse(
            &format!("{base}  images: [registry.k8s.io/pause]\n"),
            "m.yaml",
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::ManifestInvalid { field, .. } if field == "spec.images[0]"),
            "{err}"
        );
        let err = parse(
            &format!("{base}  files: [{{name: a, url: 'http://x/a', sha256: abc}}]\n"),
            "m.yaml",
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::ManifestInvalid { field, .. } if field == "spec.files[0].sha256"),
            "{err}"
        );
    }

    #[test]
    fn certificate_paths_are_taken_from_the_manifests_folder() {
        let dir = tempfile::tempdir().unwrap();
        let text = "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {name: n, version: '1'}\nspec:\n  rpms:\n    - target: el9-x86_64\n      releasever: '9'\n      arch: x86_64\n      repos:\n        - {name: cdn, baseurl: 'https://cdn/', sslclientcert: certs/1.pem, sslclientkey: /etc/pki/entitlement/1-key.pem, sslcacert: ca.pem}\n      packages: [kubeadm]\n";
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, text).unwrap();
        let m = ManifestSource::File(path).load().unwrap();
        let r = &m.spec.rpms[0].repos[0];
        assert_eq!(
            r.sslclientcert.as_deref(),
            Some(dir.path().join("certs/1.pem").as_path())
        );
        assert_eq!(
            r.sslclientkey.as_deref(),
            Some(Path::new("/etc/pki/entitlement/1-key.pem"))
        );
        assert_eq!(
            r.sslcacert.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
    }

    #[test]
    fn platforms_are_needed_only_with_images() {
        let base = "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {name: n, version: '1'}\nspec:\n";
        let files = format!(
            "{base}  files: [{{name: a, url: 'http://x/a', sha256: {}}}]\n",
            "a".repeat(64)
        );
        parse(&files, "m.yaml").unwrap();
        let err = parse(
            &format!("{base}  images: [registry.k8s.io/pause:3.9]\n"),
            "m.yaml",
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::ManifestInvalid { field, .. } if field == "spec.platforms"),
            "{err}"
        );
        assert!(err.to_string().contains("e.g. `linux/amd64`"), "{err}");
    }
}
