//! Keys and signatures: minisign, so that the `minisign` CLI can check any bundle's
//! `bundle.json` independently (`minisign -V -p bundle.pub -m bundle.json`).
//!
//! Signing uses the `minisign` crate; verification uses `minisign-verify`, the small
//! verify-only crate, so the isolated side's trust path carries no key-generation code.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::Error;

/// A public key read from a `.pub` file (minisign format).
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: minisign_verify::PublicKey,
    key_id: String,
}

impl PublicKey {
    /// Reads a minisign public key file.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = fs::read_to_string(path).map_err(|source| Error::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&text).map_err(|detail| Error::KeyMalformed {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// Parses the text of a `.pub` file (comment line + base64 line) or a bare base64 key.
    pub fn decode(text: &str) -> Result<Self, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or("no key line")?;
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| e.to_string())?;
        let key_id = key_id_of(line, 2).ok_or("bad base64")?;
        Ok(Self { key, key_id })
    }

    /// The key ID as minisign prints it (16 uppercase hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks `signature` (text of a `.minisig`: its four lines and nothing else) over
    /// `data`.
    pub fn verify(&self, data: &[u8], signature: &str) -> Result<SignatureInfo, Error> {
        let sig = minisign_verify::Signature::decode(signature).map_err(|e| {
            Error::SignatureMalformed {
                detail: e.to_string(),
            }
        })?;
        // minisign-verify reads four lines and ignores the rest: what follows would
        // travel unchecked inside a verified bundle.
        if signature.lines().count() != 4 {
            return Err(Error::SignatureMalformed {
                detail: "lines after its four (minisign writes four)".into(),
            });
        }
        let sig_key_id = signature
            .lines()
            .nth(1)
            .and_then(|l| key_id_of(l.trim(), 2))
            .unwrap_or_else(|| "unknown".to_string());
        match self.key.verify(data, &sig, false) {
            Ok(()) => Ok(SignatureInfo {
                key_id: sig_key_id,
                trusted_comment: sig.trusted_comment().to_string(),
            }),
            Err(minisign_verify::Error::UnexpectedKeyId) => Err(Error::SignatureOtherKey {
                expected: self.key_id.clone(),
                found: sig_key_id,
            }),
            Err(e) => Err(Error::SignatureInvalid {
                key_id: self.key_id.clone(),
                detail: e.to_string(),
            }),
        }
    }
}

/// What a good signature says about itself.
#[derive(Debug, Clone)]
pub struct SignatureInfo {
    /// Key ID that made it.
    pub key_id: String,
    /// The signed trusted comment.
    pub trusted_comment: String,
}

/// Key IDs are the 8 bytes after the 2-byte algorithm tag, shown little-endian in hex.
fn key_id_of(b64_line: &str, offset: usize) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64_line)
        .ok()?;
    let id = raw.get(offset..offset + 8)?;
    Some(id.iter().rev().map(|b| format!("{b:02X}")).collect())
}

/// How to unlock a secret key.
pub enum KeyPassword {
    /// The key must be unencrypted.
    None,
    /// Use this password.
    Given(String),
    /// Ask on the terminal (the minisign crate prompts on the TTY itself).
    Prompt,
}

/// A secret key ready to sign.
pub struct SecretKey {
    key: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl SecretKey {
    /// True when the key file at `path` is password-protected.
    pub fn is_encrypted(path: &Path) -> Result<bool, Error> {
        let text = fs::read_to_string(path).map_err(|source| Error::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = text
            .lines()
            .nth(1)
            .and_then(|l| {
                base64::engine::general_purpose::STANDARD
                    .decode(l.trim())
                    .ok()
            })
            .ok_or_else(|| Error::KeyMalformed {
                path: path.to_path_buf(),
                detail: "not a minisign secret key".into(),
            })?;
        // Layout: sig_alg(2) kdf_alg(2) …; kdf_alg is all zero when unencrypted.
        Ok(raw.get(2..4).is_some_and(|kdf| kdf != [0, 0]))
    }

    /// Reads a minisign secret key file.
    pub fn from_file(path: &Path, password: KeyPassword) -> Result<Self, Error> {
        let encrypted = Self::is_encrypted(path)?;
        let text = fs::read_to_string(path).map_err(|source| Error::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        let sk_box =
            minisign::SecretKeyBox::from_string(&text).map_err(|e| Error::KeyMalformed {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        let key = match (encrypted, password) {
            (false, _) => minisign::SecretKey::from_unencrypted_box(sk_box),
            (true, KeyPassword::None) => {
                return Err(Error::KeyNeedsPassword {
                    path: path.to_path_buf(),
                })
            }
            (true, KeyPassword::Given(p)) => minisign::SecretKey::from_box(sk_box, Some(p)),
            (true, KeyPassword::Prompt) => minisign::SecretKey::from_box(sk_box, None),
        }
        .map_err(|e| Error::KeyMalformed {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let public =
            minisign::PublicKey::from_secret_key(&key).map_err(|e| Error::KeyMalformed {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        Ok(Self { key, public })
    }

    /// Signs `data`; returns the `.minisig` text. The trusted comment is signed too.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<String, Error> {
        let sig = minisign::sign(
            Some(&self.public),
            &self.key,
            data,
            Some(trusted_comment),
            Some("signature of bundle.json"),
        )
        .map_err(|e| Error::Sign {
            detail: e.to_string(),
        })?;
        Ok(sig.into_string())
    }

    /// The matching public key's ID (as minisign prints it).
    pub fn key_id(&self) -> String {
        self.public
            .keynum()
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect()
    }
}

/// Paths of a generated key pair.
#[derive(Debug, Clone)]
pub struct KeyPairPaths {
    /// `PREFIX.key`
    pub secret: PathBuf,
    /// `PREFIX.pub`
    pub public: PathBuf,
}

impl KeyPairPaths {
    /// `PREFIX.key` and `PREFIX.pub`.
    pub fn for_prefix(prefix: &Path) -> Self {
        let with = |ext: &str| {
            let mut p = prefix.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        Self {
            secret: with(".key"),
            public: with(".pub"),
        }
    }
}

/// Generates a key pair and writes it; refuses to overwrite either file. `password`
/// `None` writes an unencrypted secret key. The secret key file is created mode 0600.
pub fn generate_key_pair(paths: &KeyPairPaths, password: Option<String>) -> Result<String, Error> {
    for p in [&paths.secret, &paths.public] {
        if p.exists() {
            return Err(Error::KeyExists { path: p.clone() });
        }
    }
    let pair = match password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| Error::Sign {
        detail: e.to_string(),
    })?;
    let sk_text = pair
        .sk
        .to_box(Some("bundle secret key"))
        .map_err(|e| Error::Sign {
            detail: e.to_string(),
        })?;
    let pk_text = pair.pk.to_box().map_err(|e| Error::Sign {
        detail: e.to_string(),
    })?;
    write_new(&paths.secret, &sk_text.to_bytes(), 0o600)?;
    write_new(&paths.public, &pk_text.to_bytes(), 0o644)?;
    Ok(pair
        .pk
        .keynum()
        .iter()
        .rev()
        .map(|b| format!("{b:02X}"))
        .collect())
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| Error::KeyWrite {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| Error::KeyWrite {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(data).map_err(|source| Error::KeyWrite {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_rejects_other_key_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyPairPaths::for_prefix(&dir.path().join("a"));
        let b = KeyPairPaths::for_prefix(&dir.path().join("b"));
        let id = generate_key_pair(&a, None).unwrap();
        generate_key_pair(&b, None).unwrap();
        let sk = SecretKey::from_file(&a.secret, KeyPassword::None).unwrap();
        assert_eq!(sk.key_id(), id);
        let sig = sk.sign(b"index", "name:test").unwrap();
        let pa = PublicKey::from_file(&a.public).unwrap();
        assert_eq!(pa.key_id(), id);
        assert_eq!(
            pa.verify(b"index", &sig).unwrap().trusted_comment,
            "name:test"
        );
        assert!(matches!(
            pa.verify(b"indeX", &sig),
            Err(Error::SignatureInvalid { .. })
        ));
        let extra = format!("{sig}# more\n");
        assert!(matches!(
            pa.verify(b"index", &extra),
            Err(Error::SignatureMalformed { .. })
        ));
        let pb = PublicKey::from_file(&b.public).unwrap();
        match pb.verify(b"index", &sig) {
            Err(Error::SignatureOtherKey { found, .. }) => assert_eq!(found, id),
            other => panic!("expected other-key error, got {other:?}"),
        }
    }

    #[test]
    fn encrypted_key_needs_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let p = KeyPairPaths::for_prefix(&dir.path().join("k"));
        generate_key_pair(&p, Some("pw".into())).unwrap();
        assert!(SecretKey::is_encrypted(&p.secret).unwrap());
        assert!(matches!(
            SecretKey::from_file(&p.secret, KeyPassword::None),
            Err(Error::KeyNeedsPassword { .. })
        ));
        assert!(SecretKey::from_file(&p.secret, KeyPassword::Given("wrong".into())).is_err());
        assert!(SecretKey::from_file(&p.secret, KeyPassword::Given("pw".into())).is_ok());
        assert!(matches!(
            generate_key_pair(&p, None),
            Err(Error::KeyExists { .. })
        ));
    }
}
