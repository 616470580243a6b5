//! Reading an upstream yum repo: `repodata/repomd.xml`, then `primary` (and, only when a
//! file requirement needs it, `filelists`), each checked against the checksum repomd gives.
//!
//! rpmrepo_metadata's readers are synchronous `BufRead` parsers, so the compressed metadata
//! is first streamed into the content-addressed cache (checked on the way) and parsed from
//! there on a blocking thread, one package at a time. Metadata is bounded (tens of MB for a
//! distribution's BaseOS) and caching it also makes a re-run skip the download.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rpmrepo_metadata::{FilelistsXml, Package, PrimaryXml, RepomdData, RepomdXml, RequirementType};

use super::client;
use super::download::{self, DownloadError, Expected, Http};
use super::error::{RepoAuth, RpmError};
use super::mirrors::{self, Repomd};
use super::modules::{self, RepoModules};
use super::spec::{RpmTargetSpec, UpstreamRepo};
use super::vercmp::Evr;
use crate::http::HttpSettings;

/// Comparison in a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flag {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Flag {
    pub(crate) fn less(self) -> bool {
        matches!(self, Flag::Lt | Flag::Le)
    }
    pub(crate) fn greater(self) -> bool {
        matches!(self, Flag::Gt | Flag::Ge)
    }
    pub(crate) fn equal(self) -> bool {
        matches!(self, Flag::Le | Flag::Eq | Flag::Ge)
    }
    pub(crate) fn op(self) -> &'static str {
        match self {
            Flag::Lt => "<",
            Flag::Le => "<=",
            Flag::Eq => "=",
            Flag::Ge => ">=",
            Flag::Gt => ">",
        }
    }
    pub(crate) fn parse(op: &str) -> Option<Self> {
        Some(match op {
            "<" => Flag::Lt,
            "<=" | "=<" => Flag::Le,
            "=" | "==" => Flag::Eq,
            ">=" | "=>" => Flag::Ge,
            ">" => Flag::Gt,
            _ => return None,
        })
    }
}

/// A requirement or provide: `name`, or `name <op> [epoch:]version[-release]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dep {
    pub name: String,
    pub constraint: Option<(Flag, Evr)>,
}

impl Dep {
    fn from_metadata(r: &rpmrepo_metadata::Requirement) -> Self {
        let flag = r.flags().map(|f| match f {
            RequirementType::LT => Flag::Lt,
            RequirementType::LE => Flag::Le,
            RequirementType::EQ => Flag::Eq,
            RequirementType::GE => Flag::Ge,
            RequirementType::GT => Flag::Gt,
        });
        let constraint = match (flag, r.version()) {
            (Some(flag), Some(v)) if !v.is_empty() => {
                let epoch = r.epoch().and_then(|e| e.parse().ok()).unwrap_or(0);
                Some((flag, Evr::new(epoch, v, r.release().unwrap_or(""))))
            }
            _ => None,
        };
        Dep {
            name: r.name().to_string(),
            constraint,
        }
    }

    /// Does a provide `self` satisfy requirement `req`? (rpm's `rpmdsCompare`: the two
    /// ranges overlap; a side without a version matches everything.)
    pub(crate) fn provide_satisfies(&self, req: &Dep) -> bool {
        if self.name != req.name {
            return false;
        }
        let (Some((pf, pevr)), Some((rf, revr))) = (&self.constraint, &req.constraint) else {
            return true;
        };
        ranges_overlap(*pf, pevr, *rf, revr)
    }

    /// Does a package with this exact EVR satisfy the requirement's range?
    pub(crate) fn evr_satisfies(&self, evr: &Evr) -> bool {
        match &self.constraint {
            None => true,
            Some((rf, revr)) => ranges_overlap(Flag::Eq, evr, *rf, revr),
        }
    }
}

fn ranges_overlap(af: Flag, a: &Evr, bf: Flag, b: &Evr) -> bool {
    use std::cmp::Ordering::*;
    match a.compare(b) {
        Less => af.greater() || bf.less(),
        Greater => af.less() || bf.greater(),
        Equal => {
            (af.equal() && bf.equal()) || (af.less() && bf.less()) || (af.greater() && bf.greater())
        }
    }
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some((flag, evr)) = &self.constraint {
            write!(f, " {} {evr}", flag.op())?;
        }
        Ok(())
    }
}

/// One package an upstream repo offers, as much of primary.xml as resolving needs.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Index of the repo in the target's repo list.
    pub repo: usize,
    pub name: String,
    pub evr: Evr,
    pub arch: String,
    pub checksum: Result<Expected, String>,
    /// primary's pkgid (the checksum's hex), to join with filelists.
    pub pkgid: String,
    pub location: String,
    pub location_base: Option<String>,
    pub size: u64,
    pub provides: Vec<Dep>,
    pub requires: Vec<Dep>,
    /// The files primary lists (`/etc/…`, `…bin/…`); filelists has the rest.
    pub files: Vec<String>,
}

impl Candidate {
    /// `name-[epoch:]version-release.arch`.
    pub(crate) fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }

    fn from_package(repo: usize, p: &Package) -> Self {
        let mut files = Vec::new();
        p.for_each_file(|_, path| files.push(path.to_string()));
        let epoch = p.epoch();
        Candidate {
            repo,
            name: p.name().to_string(),
            evr: Evr::new(epoch, p.version(), p.release()),
            arch: p.arch().to_string(),
            checksum: Expected::from_metadata(p.checksum()),
            pkgid: p.pkgid().to_string(),
            location: p.location_href().to_string(),
            location_base: p.location_base().map(str::to_string),
            size: p.size_package(),
            provides: p.provides().iter().map(Dep::from_metadata).collect(),
            requires: p.requires().iter().map(Dep::from_metadata).collect(),
            files,
        }
    }
}

/// A metadata file's URL and the checksum repomd gives for it.
type MetadataRef = (String, Result<Expected, String>);

/// An upstream repo, loaded.
pub(crate) struct LoadedRepo {
    pub spec: UpstreamRepo,
    /// The base URL in use (`baseurl`, or the mirror chosen), with a trailing slash.
    pub base: String,
    /// The cached filelists, when repomd lists one: `(url, expected checksum)`.
    pub filelists: Option<MetadataRef>,
    /// Its client (certificates, credentials, proxies).
    pub http: Http,
    /// Its module streams (EL8 AppStream), when repomd lists `modules`.
    pub modules: RepoModules,
}

pub(crate) fn base_url(baseurl: &str) -> String {
    if baseurl.ends_with('/') {
        baseurl.to_string()
    } else {
        format!("{baseurl}/")
    }
}

/// The error for a failed download of `url` from `repo`; a checksum mismatch is the
/// metadata's (callers downloading packages map that one themselves).
pub(crate) fn unreachable(repo: &UpstreamRepo, url: &str, e: DownloadError) -> RpmError {
    let name = || repo.name.clone();
    match e {
        DownloadError::Proxy(source) => RpmError::Proxy {
            repo: name(),
            source,
        },
        DownloadError::Unreachable(reason) => match &repo.sslclientcert {
            // The server ends the handshake with an alert when it refuses the client's
            // certificate (TLS 1.3 sends it after the handshake, on the first read).
            Some(cert) if reason.contains("received fatal alert") => RpmError::ClientCertRejected {
                repo: name(),
                url: url.into(),
                cert: cert.clone(),
                reason,
            },
            _ => RpmError::RepoUnreachable {
                repo: name(),
                url: url.into(),
                reason,
            },
        },
        // nginx (and others) finish the handshake and answer 400 to a client
        // certificate they do not accept.
        DownloadError::Status(status) if status == 400 && repo.sslclientcert.is_some() => {
            RpmError::ClientCertRejected {
                repo: name(),
                url: url.into(),
                cert: repo.sslclientcert.clone().unwrap_or_default(),
                reason: "HTTP 400: the server did not accept the certificate".into(),
            }
        }
        DownloadError::Status(status) if status == 401 || status == 403 => RpmError::AccessDenied {
            repo: name(),
            url: url.into(),
            status: status.as_u16(),
            auth: RepoAuth {
                basic: repo.username.clone().zip(repo.password_env.clone()),
                client_cert: repo.sslclientcert.clone(),
            },
        },
        DownloadError::Status(status) => RpmError::RepoUnreachable {
            repo: name(),
            url: url.into(),
            reason: format!("HTTP {status}"),
        },
        DownloadError::Mismatch { expected, actual } => RpmError::MetadataChecksum {
            repo: name(),
            url: url.into(),
            expected,
            actual,
        },
        DownloadError::Io(path, source) => RpmError::Io { path, source },
    }
}

/// Loads every repo of a target at once, each with its own client. Returns them in
/// order, with all their packages.
pub(crate) async fn load_all(
    settings: &HttpSettings,
    cache_dir: &Path,
    t: &RpmTargetSpec,
) -> Result<(Arc<Vec<LoadedRepo>>, Vec<Candidate>), RpmError> {
    let loads =
        futures_util::future::join_all(t.repos.iter().enumerate().map(|(i, r)| async move {
            let http = client::for_repo(settings, r)?;
            load(http, cache_dir, i, r, t).await
        }))
        .await;
    let mut repos = Vec::new();
    let mut all = Vec::new();
    for l in loads {
        let (r, c) = l?;
        repos.push(r);
        all.extend(c);
    }
    Ok((Arc::new(repos), all))
}

/// Downloads and parses one repo's repomd and primary. Returns the repo and its packages.
pub(crate) async fn load(
    http: Http,
    cache_dir: &Path,
    index: usize,
    spec: &UpstreamRepo,
    t: &RpmTargetSpec,
) -> Result<(LoadedRepo, Vec<Candidate>), RpmError> {
    let Repomd {
        base,
        url: repomd_url,
        bytes,
    } = mirrors::repomd(&http, spec, t).await?;
    let malformed = |reason: String| RpmError::MalformedRepomd {
        repo: spec.name.clone(),
        url: repomd_url.clone(),
        reason,
    };
    match root_element(&bytes) {
        Some(root) if root == "repomd" => {}
        Some(root) => {
            return Err(malformed(format!(
                "its root element is `<{root}>`, not `<repomd>`"
            )))
        }
        None => return Err(malformed("it holds no XML element".into())),
    }
    let repomd: RepomdData =
        RepomdXml::read_data(rpmrepo_metadata::utils::create_xml_reader(&bytes[..]))
            .map_err(|e| malformed(download::error_chain(&e)))?;

    let record = |name: &str| -> Result<Option<MetadataRef>, RpmError> {
        let Some(rec) = repomd.get_record(name) else {
            return Ok(None);
        };
        let href = rec
            .location_href
            .to_str()
            .ok_or_else(|| malformed(format!("`{name}` location is not UTF-8")))?;
        let url = match &rec.location_base {
            Some(b) if !b.is_empty() => format!("{}{href}", base_url(b)),
            _ => format!("{base}{href}"),
        };
        Ok(Some((url, Expected::from_metadata(&rec.checksum))))
    };
    let (primary_url, primary_sum) =
        record("primary")?.ok_or_else(|| malformed("it lists no `primary` metadata".into()))?;
    let primary_sum = primary_sum.map_err(|r| malformed(format!("`primary` checksum: {r}")))?;
    let filelists = record("filelists")?;
    let modules_ref = record("modules")?;

    let blob = download::to_cache(&http, cache_dir, &primary_url, &primary_sum, &|_| {})
        .await
        .map_err(|e| unreachable(spec, &primary_url, e))?;

    let repo_name = spec.name.clone();
    let url = primary_url.clone();
    let candidates = tokio::task::spawn_blocking(move || read_primary(index, &blob.path))
        .await
        .expect("primary reader panicked")
        .map_err(|reason| RpmError::MalformedMetadata {
            repo: repo_name,
            url,
            reason,
        })?;
    let modules = match modules_ref {
        None => RepoModules::default(),
        Some((url, sum)) => {
            let sum = sum.map_err(|r| malformed(format!("`modules` checksum: {r}")))?;
            load_modules(&http, cache_dir, index, spec, &url, &sum).await?
        }
    };
    tracing::info!(repo = %spec.name, base = %base, packages = candidates.len(), module_builds = modules.builds.len(), "read upstream metadata");

    Ok((
        LoadedRepo {
            spec: spec.clone(),
            base,
            filelists,
            http,
            modules,
        },
        candidates,
    ))
}

/// Downloads (checked, cached) and reads a repo's `modules.yaml[.gz|.xz|.zst|.bz2]`.
async fn load_modules(
    http: &Http,
    cache_dir: &Path,
    index: usize,
    spec: &UpstreamRepo,
    url: &str,
    sum: &Expected,
) -> Result<RepoModules, RpmError> {
    let blob = download::to_cache(http, cache_dir, url, sum, &|_| {})
        .await
        .map_err(|e| unreachable(spec, url, e))?;
    tokio::task::spawn_blocking(move || {
        let text = read_bounded(&blob.path, modules::MAX_MODULES_BYTES)?;
        modules::parse(index, &text)
    })
    .await
    .expect("modules reader panicked")
    .map_err(|reason| RpmError::MalformedMetadata {
        repo: spec.name.clone(),
        url: url.into(),
        reason,
    })
}

/// A (possibly compressed: the magic bytes decide) metadata file as text, decompressed
/// as a stream and refused beyond `limit` bytes, so a hostile file cannot fill memory.
fn read_bounded(path: &Path, limit: u64) -> Result<String, String> {
    use std::io::Read;
    let reader =
        rpmrepo_metadata::utils::reader_from_file(path).map_err(|e| download::error_chain(&e))?;
    let mut text = String::new();
    reader
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot decompress it: {e}"))?;
    if text.len() as u64 > limit {
        return Err(format!("it is larger than {limit} bytes uncompressed"));
    }
    Ok(text)
}

/// The name of the first element of an XML document (skipping the declaration, comments
/// and doctype), without namespace prefix.
fn root_element(xml: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&xml[..xml.len().min(4096)]);
    let mut rest = text.as_ref();
    loop {
        let at = rest.find('<')?;
        rest = &rest[at + 1..];
        if rest.starts_with('?') || rest.starts_with('!') {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
            .collect();
        return Some(name.rsplit(':').next().unwrap_or(&name).to_string());
    }
}

fn read_primary(index: usize, path: &Path) -> Result<Vec<Candidate>, String> {
    let xml = rpmrepo_metadata::utils::xml_reader_from_file(path)
        .map_err(|e| download::error_chain(&e))?;
    let mut reader = PrimaryXml::new_reader(xml);
    reader
        .read_header()
        .map_err(|e| download::error_chain(&e))?;
    let mut out = Vec::new();
    let mut pkg = None;
    loop {
        reader
            .read_package(&mut pkg)
            .map_err(|e| download::error_chain(&e))?;
        match pkg.take() {
            Some(p) => out.push(Candidate::from_package(index, &p)),
            None => break,
        }
    }
    Ok(out)
}

/// Downloads (once, cached) a repo's filelists and returns where it is.
pub(crate) async fn fetch_filelists(
    cache_dir: &Path,
    repo: &LoadedRepo,
) -> Result<Option<PathBuf>, RpmError> {
    let Some((url, sum)) = &repo.filelists else {
        return Ok(None);
    };
    let sum = sum.clone().map_err(|reason| RpmError::MalformedRepomd {
        repo: repo.spec.name.clone(),
        url: format!("{}repodata/repomd.xml", repo.base),
        reason: format!("`filelists` checksum: {reason}"),
    })?;
    let blob = download::to_cache(&repo.http, cache_dir, url, &sum, &|_| {})
        .await
        .map_err(|e| unreachable(&repo.spec, url, e))?;
    Ok(Some(blob.path))
}

/// Streams a filelists file and returns, for each wanted path, the pkgids owning it.
pub(crate) fn scan_filelists(
    path: &Path,
    wanted: &[String],
) -> Result<HashMap<String, Vec<String>>, String> {
    let xml = rpmrepo_metadata::utils::xml_reader_from_file(path)
        .map_err(|e| download::error_chain(&e))?;
    let mut reader = FilelistsXml::new_reader(xml);
    reader
        .read_header()
        .map_err(|e| download::error_chain(&e))?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut pkg = None;
    loop {
        reader
            .read_package(&mut pkg)
            .map_err(|e| download::error_chain(&e))?;
        let Some(p) = pkg.take() else { break };
        p.for_each_file(|_, f| {
            if wanted.iter().any(|w| w == f) {
                out.entry(f.to_string())
                    .or_default()
                    .push(p.pkgid().to_string());
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(s: &str) -> Dep {
        let mut it = s.split_whitespace();
        let name = it.next().unwrap().to_string();
        let constraint = it.next().map(|op| {
            (
                Flag::parse(op).unwrap(),
                Evr::parse(it.next().unwrap()).unwrap(),
            )
        });
        Dep { name, constraint }
    }

    #[test]
    fn versioned_requirements_follow_rpm_overlap_rules() {
        let cases = [
            ("foo = 1.2-3", "foo >= 1.2", true),
            ("foo = 1.2-3", "foo > 1.2", false),
            ("foo = 1.2-3", "foo = 1.2", true),
            ("foo = 1.2-3", "foo = 1.2-4", false),
            ("foo = 1.2-3", "foo < 1.2-4", true),
            ("foo = 1.2-3", "foo <= 1.1", false),
            ("foo = 1:1.0-1", "foo >= 2.0", true),
            ("foo = 1.0-1", "foo >= 1:0.1", false),
            ("foo", "foo >= 99", true),
            ("foo = 1.0", "foo", true),
            ("foo >= 2", "foo < 3", true),
            ("foo >= 3", "foo < 3", false),
            ("foo <= 3", "foo >= 3", true),
            ("bar = 1", "foo", false),
        ];
        for (provide, req, want) in cases {
            assert_eq!(
                dep(provide).provide_satisfies(&dep(req)),
                want,
                "{provide} satisfies {req}"
            );
        }
    }
}
