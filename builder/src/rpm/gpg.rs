//! Reading a downloaded RPM's headers and, for repos with a `gpgkey`, checking its
//! OpenPGP signature without loading the payload into memory.
//!
//! rpm's `Package::open` (and so `Package::verify_signature`) reads the whole payload into
//! a `Vec`. Instead: `PackageMetadata::parse` reads lead + signature header + header; the
//! header-only signature (what rpm ≥ 4.14 and every EL8/EL9 package carries) is checked
//! with `PackageMetadata::verify_signature`, and the payload is tied to the signed header by
//! streaming the rest of the file through SHA-256 and comparing with the header's
//! `RPMTAG_PAYLOADDIGEST` — the same chain `rpmkeys --checksig` follows.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rpm::signature::pgp::Verifier;
use rpm::{IndexTag, PackageMetadata};
use sha2::Digest;

/// Parses armored key bytes; `Err` says why they are not a usable key.
pub(crate) fn verifier(armored: &[u8]) -> Result<Verifier, String> {
    Verifier::from_asc_bytes(armored).map_err(|e| e.to_string())
}

/// What is wrong with a package.
#[derive(Debug)]
pub(crate) enum PackageProblem {
    /// Not an RPM, or a damaged one.
    Unreadable(String),
    /// No signature, but its repo has a `gpgkey`.
    Unsigned,
    /// A signature that does not verify with the repo's key, or a payload that does not
    /// match the signed header.
    BadSignature(String),
}

/// Reads the headers of the RPM at `path` and, with a key, checks its signature and
/// payload digest. Memory stays bounded by the header size.
pub(crate) fn inspect(
    path: &Path,
    key: Option<&Verifier>,
) -> Result<PackageMetadata, PackageProblem> {
    let file = File::open(path).map_err(|e| PackageProblem::Unreadable(e.to_string()))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let meta = PackageMetadata::parse(&mut reader)
        .map_err(|e| PackageProblem::Unreadable(e.to_string()))?;
    let Some(key) = key else { return Ok(meta) };

    let sigs = meta
        .raw_signatures()
        .map_err(|e| PackageProblem::BadSignature(e.to_string()))?;
    if sigs.is_empty() {
        return Err(PackageProblem::Unsigned);
    }
    if let Err(e) = meta.verify_signature(key) {
        let signers: Vec<String> = meta
            .signatures()
            .unwrap_or_default()
            .iter()
            .filter_map(|s| {
                s.fingerprint()
                    .or(s.key_id())
                    .map(|k| format!("`{}`", k.to_ascii_uppercase()))
            })
            .collect();
        let by = if signers.is_empty() {
            String::new()
        } else {
            format!(" (signed by key {})", signers.join(", "))
        };
        return Err(PackageProblem::BadSignature(format!("{e}{by}")));
    }

    let want = meta
        .header
        .get_entry_data_as_string_array(IndexTag::RPMTAG_PAYLOADSHA256)
        .ok()
        .and_then(|v| v.first().map(|s| s.to_ascii_lowercase()))
        .ok_or_else(|| {
            PackageProblem::BadSignature(
                "its header has no payload digest, so the signature does not cover the payload (rpm < 4.14 package)"
                    .into(),
            )
        })?;
    if let Ok(algo) = meta
        .header
        .get_entry_data_as_u32(IndexTag::RPMTAG_PAYLOADSHA256ALGO)
    {
        // 8 = PGPHASHALGO_SHA256, the only value rpm writes.
        if algo != 8 {
            return Err(PackageProblem::BadSignature(format!(
                "unsupported payload digest algorithm {algo}"
            )));
        }
    }
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| PackageProblem::Unreadable(e.to_string()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    let got = hex::encode(sha.finalize());
    if got != want {
        return Err(PackageProblem::BadSignature(format!(
            "payload digest sha256:{got} does not match the signed header's sha256:{want}"
        )));
    }
    Ok(meta)
}
