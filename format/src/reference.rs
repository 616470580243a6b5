//! Image references as users write them: `registry.k8s.io/kube-apiserver:v1.29.2`,
//! `docker.io/calico/node:v3.26.4@sha256:…`, `quay.io/x/y@sha256:…`.
//!
//! Parsing follows the distribution reference grammar closely enough for pinned
//! manifests: a first component with a `.` or `:` (or `localhost`) is the registry,
//! otherwise the registry is `docker.io` and one-component names gain `library/`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Sha256Digest;

/// A parsed, normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    /// Registry host, with port if any (`registry.k8s.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path inside the registry (`kube-apiserver`, `calico/node`).
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Digest, when pinned.
    pub digest: Option<Sha256Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error)]
#[error("`{input}` is not an image reference: {reason}")]
pub struct ParseReferenceError {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ImageReference {
    /// The reference without digest or tag: `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What a registry is asked for: the digest when pinned, else the tag.
    pub fn manifest_selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same image with a known digest (keeps the tag for people to read).
    pub fn with_digest(&self, digest: Sha256Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }
}

fn bad(input: &str, reason: &'static str) -> ParseReferenceError {
    ParseReferenceError {
        input: input.to_string(),
        reason,
    }
}

fn valid_path_component(c: &str) -> bool {
    // lowercase alphanumerics separated by `.`, `_`, `__`, or runs of `-`
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl FromStr for ImageReference {
    type Err = ParseReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() || input.len() > 512 {
            return Err(bad(input, "empty or longer than 512 characters"));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                let d = d
                    .parse()
                    .map_err(|_| bad(input, "the part after `@` is not `sha256:<64 hex>`"))?;
                (n, Some(d))
            }
            None => (input, None),
        };
        let (registry, rest) = match name_tag.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest)
            }
            _ => ("docker.io".to_string(), name_tag),
        };
        let (path, tag) = match rest.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad(
                    input,
                    "the tag must be 1-128 of [A-Za-z0-9_.-], not starting with `.` or `-`",
                ));
            }
        }
        if !path.split('/').all(valid_path_component) {
            return Err(bad(input, "repository path components must be lowercase [a-z0-9] separated by `.`, `_` or `-`"));
        }
        let repository = if registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for ImageReference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImageReference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageReference {
        s.parse().unwrap()
    }

    #[test]
    fn registry_is_first_component_only_when_it_looks_like_a_host() {
        let r = parse("registry.k8s.io/coredns/coredns:v1.11.1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("registry.k8s.io", "coredns/coredns")
        );
        assert_eq!(r.tag.as_deref(), Some("v1.11.1"));
        let r = parse("calico/node:v3.26.4");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "calico/node")
        );
        let r = parse("busybox");
        assert_eq!((r.repository.as_str(), r.tag), ("library/busybox", None));
        let r = parse("127.0.0.1:5000/a/b:1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "a/b")
        );
    }

    #[test]
    fn digest_pins_parse_with_and_without_tag() {
        let d = Sha256Digest::of(b"x");
        let r = parse(&format!("registry.k8s.io/pause:3.9@{d}"));
        assert_eq!((r.tag.as_deref(), r.digest), (Some("3.9"), Some(d)));
        assert_eq!(r.manifest_selector(), d.to_string());
        let r = parse(&format!("registry.k8s.io/pause@{d}"));
        assert_eq!((r.tag.as_deref(), r.digest), (None, Some(d)));
        assert_eq!(r.to_string(), format!("registry.k8s.io/pause@{d}"));
    }

    #[test]
    fn malformed_references_say_why() {
        for s in [
            "",
            "Registry.k8s.io/UPPER:1",
            "x/y:bad tag",
            "x/y@sha256:123",
            "a//b:1",
        ] {
            assert!(
                s.parse::<ImageReference>().is_err(),
                "{s} should be rejected"
            );
        }
        let e = "reg.io/x@md5:abc".parse::<ImageReference>().unwrap_err();
        assert!(e.to_string().contains("`reg.io/x@md5:abc`"), "{e}");
    }
}
