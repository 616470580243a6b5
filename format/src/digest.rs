//! SHA-256 digests as the bundle and OCI registries write them (`sha256:<hex>`), and
//! hashing adapters that let data be checked while it streams.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest. Displays as `sha256:<64 hex>`; [`Sha256Digest::hex`] gives the bare hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Digest of a byte slice (for small, already-loaded data such as manifests).
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The bare 64-character lowercase hex form.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses bare hex (as in `sha256sum` output or a manifest's `sha256:` field).
    pub fn from_hex(s: &str) -> Result<Self, ParseDigestError> {
        let mut out = [0u8; 32];
        if s.len() != 64 || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(ParseDigestError(s.to_string()));
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ParseDigestError(s.to_string()));
        }
        Ok(Self(out))
    }
}

/// A string that is not `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a sha256 digest (expected `sha256:` and 64 lowercase hex digits)")]
pub struct ParseDigestError(pub String);

impl FromStr for Sha256Digest {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("sha256:") {
            Some(hex) => Self::from_hex(hex).map_err(|_| ParseDigestError(s.to_string())),
            None => Err(ParseDigestError(s.to_string())),
        }
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental SHA-256 with a byte count, for data that streams through.
#[derive(Default, Clone)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }
    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// True when nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Sha256Digest {
        Sha256Digest(self.sha.finalize().into())
    }
}

/// A writer that hashes what passes through it on the way to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }
    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }
    /// The inner writer and the digest and length of everything written.
    pub fn finish(self) -> (W, Sha256Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything `reader` yields, in fixed memory.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(Sha256Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_and_rejects_malformed() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_string().parse::<Sha256Digest>().unwrap(), d);
        assert!("sha256:abc".parse::<Sha256Digest>().is_err());
        assert!(
            d.hex().parse::<Sha256Digest>().is_err(),
            "bare hex needs the prefix"
        );
        assert!(format!("sha256:{}", d.hex().to_uppercase())
            .parse::<Sha256Digest>()
            .is_err());
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        let (inner, d, n) = w.finish();
        assert_eq!(
            (inner.as_slice(), d, n),
            (&b"abc"[..], Sha256Digest::of(b"abc"), 3)
        );
    }
}
