//! Image name mapping: where a source image lives in the target registry.
//!
//! `bundle push` uses it to name what it pushes, and the installer uses the very same
//! function to rewrite manifests (CNI) and to point kubeadm and containerd at the
//! registry, so a pushed image and a reference to it can never disagree.
//!
//! Rules, first match wins:
//!
//! 1. a user override `SRC_PREFIX=DEST_PREFIX` (`--map`), longest source prefix first,
//!    matched on whole path components: `docker.io/calico=cni/calico` sends
//!    `docker.io/calico/node:v3.26.4` to `HOST/cni/calico/node:v3.26.4`;
//! 2. `registry.k8s.io` (and its old name `k8s.gcr.io`): flattened into project `k8s`,
//!    keeping only the last path component: `registry.k8s.io/coredns/coredns:v1.11.1`
//!    becomes `HOST/k8s/coredns:v1.11.1`, which is what kubeadm asks for when its
//!    `imageRepository` is `HOST/k8s`;
//! 3. any other registry keeps its repository path under `HOST`:
//!    `docker.io/calico/node:v3.26.4` → `HOST/calico/node:v3.26.4`,
//!    `quay.io/a/b` → `HOST/a/b`.
//!
//! Tags and digests are kept as they are. The mapping is pure: no network.

use std::collections::BTreeSet;

use bundle_format::ImageReference;

/// Registries whose images kubeadm pulls, flattened into [`K8S_PROJECT`].
pub const K8S_REGISTRIES: &[&str] = &["registry.k8s.io", "k8s.gcr.io"];

/// The target project for Kubernetes' own images (`HOST/k8s/kube-apiserver`).
pub const K8S_PROJECT: &str = "k8s";

/// Why a mapping cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// An override is not `SRC_PREFIX=DEST_PREFIX`.
    #[error("image mapping `{input}` is not `SRC_PREFIX=DEST_PREFIX`: {reason}")]
    BadOverride {
        /// The override as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The target host is empty or has a path or scheme.
    #[error("registry host `{host}` is not a host name with an optional port")]
    BadHost {
        /// The host as given.
        host: String,
    },
}

/// One user override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `registry/path` prefix of source names (`docker.io/calico`, `quay.io`).
    pub source: String,
    /// Path under the target host (`cni/calico`).
    pub dest: String,
}

impl std::str::FromStr for Override {
    type Err = MappingError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |reason| MappingError::BadOverride {
            input: input.to_string(),
            reason,
        };
        let (source, dest) = input.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let source = source.trim().trim_end_matches('/');
        let dest = dest.trim().trim_matches('/');
        if source.is_empty() || source.contains("://") || source.split('/').any(str::is_empty) {
            return Err(bad(
                "the source prefix must be a registry host, optionally followed by path components",
            ));
        }
        if dest.is_empty() || !dest.split('/').all(valid_component) {
            return Err(bad(
                "the destination must be one or more lowercase path components under the target registry",
            ));
        }
        Ok(Self {
            source: source.to_string(),
            dest: dest.to_string(),
        })
    }
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

/// How source names map into one target registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMapping {
    host: String,
    /// Longest source first.
    overrides: Vec<Override>,
}

impl ImageMapping {
    /// A mapping into `host` (`harbor.example.com`, `10.0.0.5:5000`) with user
    /// overrides; longer source prefixes win over shorter ones.
    pub fn new(host: &str, overrides: Vec<Override>) -> Result<Self, MappingError> {
        let host = host.trim();
        if host.is_empty() || host.contains('/') || host.chars().any(char::is_whitespace) {
            return Err(MappingError::BadHost {
                host: host.to_string(),
            });
        }
        let mut overrides = overrides;
        // Longest first; ties broken by text so the order never depends on the input's.
        overrides.sort_by(|a, b| {
            b.source
                .len()
                .cmp(&a.source.len())
                .then_with(|| a.source.cmp(&b.source))
        });
        overrides.dedup_by(|a, b| a.source == b.source);
        Ok(Self {
            host: host.to_string(),
            overrides,
        })
    }

    /// The target registry host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Where `image` lives in the target registry.
    pub fn map(&self, image: &ImageReference) -> ImageReference {
        ImageReference {
            registry: self.host.clone(),
            repository: self.target_repository(image),
            tag: image.tag.clone(),
            digest: image.digest,
        }
    }

    /// The repository path (without host) `image` maps to.
    pub fn target_repository(&self, image: &ImageReference) -> String {
        let name = image.name();
        if let Some(o) = self.override_for(&name) {
            let rest = &name[o.source.len()..];
            return format!("{}{}", o.dest, rest);
        }
        if K8S_REGISTRIES.contains(&image.registry.as_str()) {
            let last = image
                .repository
                .rsplit('/')
                .next()
                .unwrap_or(&image.repository);
            return format!("{K8S_PROJECT}/{last}");
        }
        image.repository.clone()
    }

    fn override_for(&self, name: &str) -> Option<&Override> {
        self.overrides.iter().find(|o| {
            name == o.source
                || (name.starts_with(&o.source)
                    && name.as_bytes().get(o.source.len()) == Some(&b'/'))
        })
    }

    /// Target projects ([`project_of`] their repositories) the images need, sorted: what must
    /// exist in Harbor before pushing.
    pub fn projects<'a>(
        &self,
        images: impl IntoIterator<Item = &'a ImageReference>,
    ) -> Vec<String> {
        let set: BTreeSet<String> = images
            .into_iter()
            .map(|i| project_of(&self.target_repository(i)).to_string())
            .collect();
        set.into_iter().collect()
    }

    /// The path under the target host that a registry-wide mirror for `registry` must
    /// use, when every `registry/REPO` maps to `HOST/PREFIX/REPO` (containerd's
    /// `hosts.toml` mirrors can only prepend a path): `""` for registries kept as
    /// they are, `"k8s"` for `registry.k8s.io` (exact for one-component names
    /// such as `pause`; nested names are flattened and need the rewritten reference),
    /// or the destination of an override whose source is the whole registry.
    pub fn mirror_prefix(&self, registry: &str) -> String {
        // Overrides of part of a registry (`docker.io/calico=cni`) cannot be expressed
        // as a mirror; those images are reached through their rewritten references.
        if let Some(o) = self.overrides.iter().find(|o| o.source == registry) {
            return o.dest.clone();
        }
        if K8S_REGISTRIES.contains(&registry) {
            return K8S_PROJECT.to_string();
        }
        String::new()
    }
}

/// The Harbor project of a target repository: its first path component
/// (`k8s/kube-apiserver` → `k8s`).
pub fn project_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or(repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageReference {
        s.parse().unwrap()
    }

    fn mapping(overrides: &[&str]) -> ImageMapping {
        ImageMapping::new(
            "harbor.example.com",
            overrides.iter().map(|o| o.parse().unwrap()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn kubernetes_images_go_to_the_k8s_project() {
        let m = mapping(&[]);
        assert_eq!(
            m.map(&r("registry.k8s.io/kube-apiserver:v1.29.2"))
                .to_string(),
            "harbor.example.com/k8s/kube-apiserver:v1.29.2"
        );
        assert_eq!(
            m.map(&r("registry.k8s.io/pause:3.9")).to_string(),
            "harbor.example.com/k8s/pause:3.9"
        );
        assert_eq!(
            m.map(&r("k8s.gcr.io/etcd:3.5.10-0")).to_string(),
            "harbor.example.com/k8s/etcd:3.5.10-0"
        );
    }

    #[test]
    fn nested_kubernetes_images_are_flattened_as_kubeadm_expects() {
        let m = mapping(&[]);
        assert_eq!(
            m.map(&r("registry.k8s.io/coredns/coredns:v1.11.1"))
                .to_string(),
            "harbor.example.com/k8s/coredns:v1.11.1"
        );
    }

    #[test]
    fn other_registries_keep_their_path() {
        let m = mapping(&[]);
        assert_eq!(
            m.map(&r("docker.io/calico/node:v3.26.4")).to_string(),
            "harbor.example.com/calico/node:v3.26.4"
        );
        assert_eq!(
            m.map(&r("calico/cni:v3.26.4")).to_string(),
            "harbor.example.com/calico/cni:v3.26.4"
        );
        assert_eq!(
            m.map(&r("quay.io/a/b:1")).to_string(),
            "harbor.example.com/a/b:1"
        );
        assert_eq!(
            m.map(&r("ghcr.io/flannel-io/flannel:v0.24.2")).to_string(),
            "harbor.example.com/flannel-io/flannel:v0.24.2"
        );
        assert_eq!(
            m.map(&r("nginx:1.25")).to_string(),
            "harbor.example.com/library/nginx:1.25"
        );
    }

    #[test]
    fn digests_and_tags_are_kept() {
        let d = "sha256:".to_string() + &"ab".repeat(32);
        let m = mapping(&[]);
        let mapped = m.map(&r(&format!("docker.io/calico/node:v3.26.4@{d}")));
        assert_eq!(
            mapped.to_string(),
            format!("harbor.example.com/calico/node:v3.26.4@{d}")
        );
        let mapped = m.map(&r(&format!("quay.io/x/y@{d}")));
        assert_eq!(mapped.to_string(), format!("harbor.example.com/x/y@{d}"));
    }

    #[test]
    fn longest_override_wins_on_whole_components() {
        let m = mapping(&[
            "docker.io=hub",
            "docker.io/calico=cni/calico",
            "quay.io/a=qa",
        ]);
        assert_eq!(
            m.map(&r("docker.io/calico/node:v1")).to_string(),
            "harbor.example.com/cni/calico/node:v1"
        );
        assert_eq!(
            m.map(&r("docker.io/library/nginx:1")).to_string(),
            "harbor.example.com/hub/library/nginx:1"
        );
        // `quay.io/a` must not catch `quay.io/ab`.
        assert_eq!(
            m.map(&r("quay.io/ab/c:1")).to_string(),
            "harbor.example.com/ab/c:1"
        );
        assert_eq!(
            m.map(&r("quay.io/a/c:1")).to_string(),
            "harbor.example.com/qa/c:1"
        );
        // Overrides beat the k8s rule.
        let m = mapping(&["registry.k8s.io/coredns=dns"]);
        assert_eq!(
            m.map(&r("registry.k8s.io/coredns/coredns:v1")).to_string(),
            "harbor.example.com/dns/coredns:v1"
        );
        assert_eq!(
            m.map(&r("registry.k8s.io/pause:3.9")).to_string(),
            "harbor.example.com/k8s/pause:3.9"
        );
    }

    #[test]
    fn override_order_does_not_matter() {
        let a = mapping(&["docker.io=hub", "docker.io/calico=cni"]);
        let b = mapping(&["docker.io/calico=cni", "docker.io=hub"]);
        assert_eq!(a, b);
    }

    #[test]
    fn projects_are_first_components_sorted_and_unique() {
        let m = mapping(&[]);
        let imgs = [
            r("registry.k8s.io/kube-apiserver:v1"),
            r("registry.k8s.io/coredns/coredns:v1"),
            r("docker.io/calico/node:v1"),
            r("docker.io/calico/cni:v1"),
            r("quay.io/a/b:1"),
        ];
        assert_eq!(m.projects(&imgs), vec!["a", "calico", "k8s"]);
    }

    #[test]
    fn bad_overrides_and_hosts_are_rejected() {
        for bad in [
            "nothing",
            "=x",
            "docker.io=",
            "docker.io=UPPER",
            "http://docker.io=x",
            "docker.io//x=y",
        ] {
            assert!(bad.parse::<Override>().is_err(), "{bad}");
        }
        let e = "docker.io".parse::<Override>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "image mapping `docker.io` is not `SRC_PREFIX=DEST_PREFIX`: no `=`"
        );
        assert!(ImageMapping::new("https://harbor", vec![]).is_err());
        assert!(ImageMapping::new("", vec![]).is_err());
    }

    #[test]
    fn mirror_prefixes() {
        let m = mapping(&["quay.io=q"]);
        assert_eq!(m.mirror_prefix("registry.k8s.io"), "k8s");
        assert_eq!(m.mirror_prefix("docker.io"), "");
        assert_eq!(m.mirror_prefix("quay.io"), "q");
    }
}
