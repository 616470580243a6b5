//! Where a repo's `repodata/` is: its `baseurl`, or the first working mirror of a
//! `mirrorlist` (one base URL per line, Rocky's default) or a `metalink` (Fedora's
//! default: mirrors of `repomd.xml` with its checksums). As dnf does, a mirror whose
//! `repomd.xml` cannot be fetched — or, with a metalink, does not match any checksum the
//! metalink lists (the current one or an alternate) — is skipped for the next.
//!
//! `$releasever`, `$basearch` and `$arch` in the URLs are the target's.

use sha2::Digest;

use super::download::{self, DownloadError, Http};
use super::error::RpmError;
use super::repo;
use super::spec::{RpmTargetSpec, UpstreamRepo};

/// repomd.xml larger than this is not a repomd.
const REPOMD_LIMIT: u64 = 8 * 1024 * 1024;
/// A mirror list or metalink larger than this is not one.
const LIST_LIMIT: u64 = 4 * 1024 * 1024;

/// A checksum a metalink lists: `(type, hex)`.
type Checksum = (String, String);

/// A repo's `repomd.xml`, and the base URL it came from.
pub(crate) struct Repomd {
    /// The base URL, with a trailing slash.
    pub base: String,
    /// `<base>repodata/repomd.xml`.
    pub url: String,
    pub bytes: Vec<u8>,
}

/// `$releasever`, `$basearch`, `$arch` replaced by the target's.
pub(crate) fn expand(url: &str, t: &RpmTargetSpec) -> String {
    url.replace("$releasever", &t.releasever)
        .replace("$basearch", &t.arch)
        .replace("$arch", &t.arch)
}

/// Fetches the repo's `repomd.xml` from its `baseurl` or its first working mirror.
pub(crate) async fn repomd(
    http: &Http,
    spec: &UpstreamRepo,
    t: &RpmTargetSpec,
) -> Result<Repomd, RpmError> {
    let given = |u: &Option<String>| u.as_deref().map(|u| expand(u, t));
    match (
        given(&spec.baseurl),
        given(&spec.mirrorlist),
        given(&spec.metalink),
    ) {
        (Some(base), None, None) => {
            let base = repo::base_url(&base);
            let url = format!("{base}repodata/repomd.xml");
            let bytes = download::get_small(http, &url, REPOMD_LIMIT)
                .await
                .map_err(|e| repo::unreachable(spec, &url, e))?;
            Ok(Repomd { base, url, bytes })
        }
        (None, Some(list), None) => {
            let text = fetch_list(http, spec, &list).await?;
            let bases = parse_mirrorlist(&text);
            first_working(http, spec, &list, &bases, None).await
        }
        (None, None, Some(link)) => {
            let text = fetch_list(http, spec, &link).await?;
            let (bases, sums) = parse_metalink(&text).map_err(|reason| RpmError::RepoConfig {
                repo: spec.name.clone(),
                reason: format!("`{link}` is not a metalink: {reason}"),
                hint: "check the `metalink` URL; it must serve a metalink document".into(),
            })?;
            first_working(http, spec, &link, &bases, Some(&sums)).await
        }
        _ => Err(RpmError::RepoConfig {
            repo: spec.name.clone(),
            reason: "it needs exactly one of `baseurl`, `mirrorlist` and `metalink`".into(),
            hint: "keep the one the distribution's `.repo` file uses and remove the others".into(),
        }),
    }
}

async fn fetch_list(http: &Http, repo: &UpstreamRepo, url: &str) -> Result<String, RpmError> {
    let bytes = download::get_small(http, url, LIST_LIMIT)
        .await
        .map_err(|e| repo::unreachable(repo, url, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Tries each mirror in order; with `sums` (a metalink's), its repomd must match one.
async fn first_working(
    http: &Http,
    spec: &UpstreamRepo,
    list: &str,
    bases: &[String],
    sums: Option<&[Checksum]>,
) -> Result<Repomd, RpmError> {
    let mut tried = Vec::new();
    let mut mismatch = None;
    for base in bases {
        let base = repo::base_url(base);
        let url = format!("{base}repodata/repomd.xml");
        match download::get_small(http, &url, REPOMD_LIMIT).await {
            Ok(bytes) => match sums.map(|s| matches_any(&bytes, s)) {
                None | Some(Ok(())) => return Ok(Repomd { base, url, bytes }),
                Some(Err(actual)) => {
                    tracing::warn!(repo = %spec.name, %url, "repomd.xml does not match the metalink; trying the next mirror");
                    tried.push(format!("{url}: checksum {actual} is not in the metalink"));
                    mismatch = Some((url, actual));
                }
            },
            Err(e) => tried.push(format!("{url}: {}", describe(e))),
        }
    }
    match (mismatch, sums) {
        (Some((url, actual)), Some(sums))
            if tried.iter().all(|t| t.contains("is not in the metalink")) =>
        {
            Err(RpmError::MetalinkChecksum {
                repo: spec.name.clone(),
                metalink: list.into(),
                url,
                expected: sums
                    .iter()
                    .map(|(kind, hex)| format!("`{kind}:{hex}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                actual,
            })
        }
        _ => Err(RpmError::NoWorkingMirror {
            repo: spec.name.clone(),
            list: list.into(),
            tried,
        }),
    }
}

fn describe(e: DownloadError) -> String {
    match e {
        DownloadError::Proxy(r) => r.to_string(),
        DownloadError::Unreachable(r) => r,
        DownloadError::Status(s) => format!("HTTP {s}"),
        DownloadError::Mismatch { actual, .. } => format!("checksum {actual}"),
        DownloadError::Io(p, e) => format!("{}: {e}", p.display()),
    }
}

/// Ok when `bytes` hash to one of `sums` (`(type, hex)`); else the SHA-256 found.
/// Only SHA-256 and SHA-512 are trusted, as for the rest of the repo metadata.
fn matches_any(bytes: &[u8], sums: &[Checksum]) -> Result<(), String> {
    let sha256 = hex::encode(sha2::Sha256::digest(bytes));
    let sha512 = hex::encode(sha2::Sha512::digest(bytes));
    let hit = sums.iter().any(|(kind, hex)| match kind.as_str() {
        "sha256" => hex.eq_ignore_ascii_case(&sha256),
        "sha512" => hex.eq_ignore_ascii_case(&sha512),
        _ => false,
    });
    if hit {
        Ok(())
    } else {
        Err(format!("sha256:{sha256}"))
    }
}

/// Base URLs of a mirrorlist: one per line, `#` comments and blank lines skipped.
fn parse_mirrorlist(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.starts_with("http://") || l.starts_with("https://"))
        .map(str::to_string)
        .collect()
}

/// A metalink's HTTP(S) mirrors of `repomd.xml`, as base URLs in the order listed,
/// and every `<hash type=…>` (the current repomd's and its alternates').
fn parse_metalink(text: &str) -> Result<(Vec<String>, Vec<Checksum>), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let (mut bases, mut sums) = (Vec::new(), Vec::new());
    // The element whose text comes next: a hash (with its type) or a URL.
    let mut open: Option<(String, String)> = None;
    let mut saw_root = false;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                saw_root |= name == "metalink";
                let kind = e
                    .try_get_attribute("type")
                    .ok()
                    .flatten()
                    .and_then(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.to_ascii_lowercase())
                    })
                    .unwrap_or_default();
                open = matches!(name.as_str(), "hash" | "url").then_some((name, kind));
            }
            Event::Text(t) => {
                let text = t.xml10_content().trim().to_string();
                match open.take() {
                    Some((el, kind)) if el == "hash" => sums.push((kind, text)),
                    Some((el, _)) if el == "url" => {
                        if let Some(base) = text.strip_suffix("repodata/repomd.xml") {
                            if base.starts_with("http://") || base.starts_with("https://") {
                                bases.push(base.to_string());
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::End(_) => open = None,
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err("it has no `<metalink>` element".into());
    }
    if !sums.iter().any(|(k, _)| k == "sha256" || k == "sha512") {
        return Err("it lists no sha256 or sha512 checksum of repomd.xml".into());
    }
    Ok((bases, sums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metalink_gives_mirrors_and_every_checksum() {
        let text = r#"<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/" xmlns:mm0="http://fedorahosted.org/mirrormanager">
 <files>
  <file name="repomd.xml">
   <mm0:alternates><mm0:alternate><verification><hash type="sha256">aaaa</hash></verification></mm0:alternate></mm0:alternates>
   <verification><hash type="md5">cccc</hash><hash type="sha256">bbbb</hash></verification>
   <resources maxconnections="1">
    <url protocol="rsync" type="rsync" preference="100">rsync://m0/f/repodata/repomd.xml</url>
    <url protocol="https" type="https" preference="100">https://m1/f/repodata/repomd.xml</url>
    <url protocol="http" type="http" preference="99">http://m2/f/repodata/repomd.xml</url>
   </resources>
  </file>
 </files>
</metalink>"#;
        let (bases, sums) = parse_metalink(text).unwrap();
        assert_eq!(bases, ["https://m1/f/", "http://m2/f/"]);
        assert!(sums.contains(&("sha256".into(), "aaaa".into())));
        assert!(sums.contains(&("sha256".into(), "bbbb".into())));
    }

    #[test]
    fn a_metalink_without_strong_checksums_is_refused() {
        let text = r#"<metalink><files><file name="repomd.xml"><verification><hash type="md5">cc</hash></verification></file></files></metalink>"#;
        assert!(parse_metalink(text).unwrap_err().contains("sha256"));
        assert!(parse_metalink("<html/>").is_err());
    }

    #[test]
    fn mirrorlist_skips_comments_and_non_http_lines() {
        let list = "# mirrors\nhttps://a/9/BaseOS/x86_64/os/\n\nrsync://b/\nhttp://c/os/\n";
        assert_eq!(
            parse_mirrorlist(list),
            ["https://a/9/BaseOS/x86_64/os/", "http://c/os/"]
        );
    }

    #[test]
    fn only_sha256_and_sha512_are_trusted() {
        let bytes = b"<repomd/>";
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        assert!(matches_any(bytes, &[("sha256".into(), sha256.to_uppercase())]).is_ok());
        let md5_like = [("md5".into(), sha256.clone())];
        assert!(matches_any(bytes, &md5_like).is_err());
    }
}
