//! Entry paths: what may appear as a name inside a bundle.
//!
//! A bundle is unpacked and served on hosts that trust it, so its names are held to a
//! narrow form: relative, `/`-separated, no empty, `.` or `..` components, no
//! backslashes or control characters, at most 4096 bytes.

use std::fmt;

/// A checked, relative entry path such as `images/blobs/sha256/ab12…`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EntryPath(String);

/// Why a name cannot be an entry path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePath {
    /// Starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// Has a `..` component.
    #[error("`..` component")]
    ParentDir,
    /// Has an empty or `.` component, or a trailing `/`.
    #[error("empty or `.` component")]
    EmptyComponent,
    /// Has a backslash, NUL or other control character.
    #[error("backslash or control character")]
    BadCharacter,
    /// Empty or longer than 4096 bytes.
    #[error("empty or longer than 4096 bytes")]
    Length,
}

impl EntryPath {
    /// Checks `name` against the rules above.
    pub fn new(name: &str) -> Result<Self, UnsafePath> {
        if name.is_empty() || name.len() > 4096 {
            return Err(UnsafePath::Length);
        }
        if name.starts_with('/') {
            return Err(UnsafePath::Absolute);
        }
        if name.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(UnsafePath::BadCharacter);
        }
        for part in name.split('/') {
            match part {
                ".." => return Err(UnsafePath::ParentDir),
                "" | "." => return Err(UnsafePath::EmptyComponent),
                _ => {}
            }
        }
        Ok(Self(name.to_string()))
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EntryPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntryPath::new(&s).map_err(|e| serde::de::Error::custom(format!("entry path `{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        assert!(EntryPath::new("images/blobs/sha256/ab").is_ok());
        assert!(EntryPath::new("files/calico.yaml").is_ok());
    }

    #[test]
    fn rejects_escapes_with_reason() {
        assert_eq!(EntryPath::new("/etc/passwd"), Err(UnsafePath::Absolute));
        assert_eq!(EntryPath::new("files/../../x"), Err(UnsafePath::ParentDir));
        assert_eq!(EntryPath::new("files//x"), Err(UnsafePath::EmptyComponent));
        assert_eq!(EntryPath::new("files/./x"), Err(UnsafePath::EmptyComponent));
        assert_eq!(EntryPath::new("files/"), Err(UnsafePath::EmptyComponent));
        assert_eq!(EntryPath::new("a\\b"), Err(UnsafePath::BadCharacter));
        assert_eq!(EntryPath::new(""), Err(UnsafePath::Length));
    }
}
