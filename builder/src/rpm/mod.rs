//! RPMs: pinned packages and their dependency closure from upstream yum repos, as one
//! ready yum repository per target (`rpms/<target>/`).
//!
//! For each [`RpmTargetSpec`], [`fetch`]:
//! 1. reads every upstream repo's `repodata/repomd.xml` and `primary` (checked against the
//!    checksum repomd gives; `filelists` only when a file requirement needs it) — `repo`;
//! 2. picks the newest package matching each spec in RPM version order (`vercmp`) and
//!    follows every requirement to a provider, deterministically (`solve`, with `-v`
//!    explaining each choice);
//! 3. downloads each RPM streamed into the content-addressed cache, checked against the
//!    upstream checksum, `jobs` at a time, with retries (`download`);
//! 4. for repos with a `gpgkey`, checks each package's signature and payload digest in
//!    fixed memory and ships the key (`gpg`);
//! 5. writes a fresh gzip repodata from the packages' headers (`repodata`).
//!
//! It returns [`RpmOutput`]: records for `bundle.json` and the lock, and the entries
//! (`rpms/<target>/Packages/*.rpm`, `rpms/<target>/repodata/*`, `rpms/<target>/keys/*.asc`)
//! with the files holding their bytes. With [`RpmFetchOptions::locked`], the picks must
//! equal the lock.

mod download;
mod gpg;
mod repo;
mod repodata;
mod solve;
pub mod vercmp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bundle_format::digest::hash_reader;
use bundle_format::{EntryPath, EntryRecord, Hint, RpmRecord, RpmRepoRecord, Sha256Digest};
use futures_util::StreamExt;
use serde::Deserialize;

use download::DownloadError;
use repo::{Candidate, LoadedRepo};

/// `spec.rpms[]` in the manifest: one yum repo in the bundle per target.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RpmTargetSpec {
    /// Target name (`el9-x86_64`).
    pub target: String,
    /// `$releasever` (`9`).
    pub releasever: String,
    /// Architecture (`x86_64`).
    pub arch: String,
    /// Upstream repos.
    pub repos: Vec<UpstreamRepo>,
    /// Package specs: `name`, `name-version`, `name-version-release`, `name-epoch:version-release`.
    pub packages: Vec<String>,
    /// Names never to carry.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// An upstream yum repo.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamRepo {
    /// Name (used in records and messages).
    pub name: String,
    /// Base URL (the folder holding `repodata/`).
    pub baseurl: String,
    /// URL of the GPG key that signs its packages; packages are checked when given.
    #[serde(default)]
    pub gpgkey: Option<String>,
}

/// How to fetch.
pub struct RpmFetchOptions {
    /// Content-addressed cache root (shared with images and files).
    pub cache_dir: PathBuf,
    /// Scratch folder for this build (generated repodata lives here until assembled).
    pub work_dir: PathBuf,
    /// HTTP client (TLS roots and proxies already set).
    pub http: reqwest::Client,
    /// Parallel downloads.
    pub jobs: usize,
    /// The locked records, with `--locked`: picks must equal them.
    pub locked: Option<Vec<RpmRepoRecord>>,
}

/// What the RPM step adds to the bundle.
#[derive(Default)]
pub struct RpmOutput {
    /// One record per target, for `bundle.json` and the lock.
    pub records: Vec<RpmRepoRecord>,
    /// Entries to write (under `rpms/<target>/`) and the files holding their bytes.
    pub entries: Vec<(EntryRecord, PathBuf)>,
}

/// RPM step errors. Each names its subject (target, repo, package, URL) in backticks.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// A repo's metadata or a package could not be downloaded.
    #[error("repo `{repo}` is unreachable: GET `{url}` failed: {reason}")]
    RepoUnreachable {
        /// Repo name.
        repo: String,
        /// URL requested.
        url: String,
        /// What happened.
        reason: String,
    },
    /// repomd.xml is not a repomd.
    #[error("repo `{repo}`: `{url}` is not valid repomd.xml: {reason}")]
    MalformedRepomd {
        /// Repo name.
        repo: String,
        /// URL of repomd.xml.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// primary/filelists could not be parsed.
    #[error("repo `{repo}`: metadata `{url}` cannot be read: {reason}")]
    MalformedMetadata {
        /// Repo name.
        repo: String,
        /// URL of the metadata file.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A metadata file does not match the checksum repomd.xml gives.
    #[error("repo `{repo}`: `{url}` does not match the checksum in repomd.xml (expected `{expected}`, got `{actual}`)")]
    MetadataChecksum {
        /// Repo name.
        repo: String,
        /// URL of the metadata file.
        url: String,
        /// Checksum repomd.xml gives.
        expected: String,
        /// Checksum of the bytes received.
        actual: String,
    },
    /// A package does not match the checksum in the repo's metadata.
    #[error("package `{package}` from repo `{repo}` does not match its checksum in the repo metadata (expected `{expected}`, got `{actual}`, from `{url}`)")]
    PackageChecksum {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// Where it was downloaded from.
        url: String,
        /// Checksum the metadata gives.
        expected: String,
        /// Checksum of the bytes received.
        actual: String,
    },
    /// The metadata gives a checksum type that cannot be trusted or is unknown.
    #[error("package `{package}` from repo `{repo}`: {reason}")]
    UnsupportedChecksum {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// No package matches a spec of the package list.
    #[error("target `{target}`: no package matches `{spec}` ({available})")]
    UnknownPackage {
        /// Target name.
        target: String,
        /// The spec from the manifest.
        spec: String,
        /// What the repos do offer.
        available: String,
    },
    /// No repo offers what a package requires.
    #[error("target `{target}`: `{package}` requires `{requirement}`, which no repo of the target provides")]
    Unsatisfiable {
        /// Target name.
        target: String,
        /// NEVRA of the requiring package.
        package: String,
        /// The requirement.
        requirement: String,
        /// Names the manifest excludes (for the hint).
        excluded: Vec<String>,
    },
    /// A rich dependency that cannot be parsed.
    #[error("target `{target}`: `{package}` has rich dependency `{requirement}` that cannot be read: {reason}")]
    RichDependency {
        /// Target name.
        target: String,
        /// NEVRA of the requiring package.
        package: String,
        /// The requirement.
        requirement: String,
        /// What is wrong.
        reason: String,
    },
    /// Two requirements need different versions of one package.
    #[error(
        "target `{target}`: `{by}` requires `{requirement}`, but `{chosen}` is also needed ({why})"
    )]
    Conflict {
        /// Target name.
        target: String,
        /// The requirement that cannot be met.
        requirement: String,
        /// Who requires it.
        by: String,
        /// The version already chosen.
        chosen: String,
        /// Why that version is in.
        why: String,
    },
    /// The closure found no stable choice.
    #[error("target `{target}`: cannot resolve the package list: {reason}")]
    Unsolvable {
        /// Target name.
        target: String,
        /// What happened.
        reason: String,
    },
    /// A repo's GPG key could not be fetched or read.
    #[error("repo `{repo}`: GPG key `{url}` cannot be used: {reason}")]
    GpgKey {
        /// Repo name.
        repo: String,
        /// Key URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A package from a repo with a `gpgkey` is unsigned.
    #[error("package `{package}` from repo `{repo}` is not signed, but the repo has a `gpgkey`")]
    Unsigned {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
    },
    /// A package's signature does not verify.
    #[error("package `{package}` from repo `{repo}` has a bad signature: {reason}")]
    BadSignature {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// A package file is not a readable RPM or not the package the metadata describes.
    #[error("package `{package}` from repo `{repo}` is not a valid RPM: {reason}")]
    BadPackage {
        /// Repo name.
        repo: String,
        /// NEVRA.
        package: String,
        /// What is wrong.
        reason: String,
    },
    /// With `--locked`, the picks differ from the lock.
    #[error("target `{target}`: package `{package}` is locked at `{locked}` but upstream now gives `{upstream}`{}", if *.more > 0 { format!(" (and {} more differences)", .more) } else { String::new() })]
    LockMismatch {
        /// Target name.
        target: String,
        /// Package name.
        package: String,
        /// Locked NEVRA (or `(absent)`).
        locked: String,
        /// NEVRA the upstream gives now (or `(absent)`).
        upstream: String,
        /// Further differences not shown.
        more: usize,
    },
    /// With `--locked`, the lock has no record for a target.
    #[error("target `{target}` is not in the lock")]
    TargetNotLocked {
        /// Target name.
        target: String,
    },
    /// A target name that cannot be a folder in the bundle.
    #[error("target `{target}`: {reason}")]
    InvalidTarget {
        /// Target name.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing the bundle's repodata failed.
    #[error("target `{target}`: writing repodata failed: {reason}")]
    Repodata {
        /// Target name.
        target: String,
        /// What happened.
        reason: String,
    },
    /// Local file system.
    #[error("cannot write `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl Hint for RpmError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            RpmError::RepoUnreachable { .. } => {
                "check the repo's `baseurl` in the manifest and that this machine reaches it (proxy, DNS, TLS roots)".into()
            }
            RpmError::MalformedRepomd { .. } | RpmError::MalformedMetadata { .. } => {
                "`baseurl` must be the folder that holds `repodata/repomd.xml`; check it in a browser or with `dnf --repofrompath`".into()
            }
            RpmError::MetadataChecksum { .. } => {
                "the mirror may be mid-sync or tampered with: retry later or use another mirror".into()
            }
            RpmError::PackageChecksum { .. } => {
                "the mirror serves a package that differs from its metadata: retry later or use another mirror; the bad file was not cached".into()
            }
            RpmError::UnsupportedChecksum { .. } => "use a mirror that publishes sha256 checksums".into(),
            RpmError::UnknownPackage { .. } => {
                "check the spelling and version in `spec.rpms[].packages` (`name`, `name-version`, `name-version-release`, `name-epoch:version-release`) and that a repo listing it is in `repos`".into()
            }
            RpmError::Unsatisfiable { excluded, .. } if !excluded.is_empty() => format!(
                "add the repo that provides it to `repos`, or stop excluding it (excluded: {})",
                excluded.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
            ),
            RpmError::Unsatisfiable { .. } => "add the repo that provides it to `repos`".into(),
            RpmError::RichDependency { .. } => "pin a package version without this dependency, or report it".into(),
            RpmError::Conflict { chosen, .. } => format!(
                "pin a version of `{}` that satisfies every requirement in `packages`",
                nevra_name(chosen)
            ),
            RpmError::Unsolvable { .. } => "pin the versions of the packages named with `-v`".into(),
            RpmError::GpgKey { .. } => "check the repo's `gpgkey` URL: it must serve an ASCII-armored public key".into(),
            RpmError::Unsigned { .. } | RpmError::BadSignature { .. } => {
                "the package was not signed with the repo's `gpgkey`: check the key URL, or the mirror serves a tampered package".into()
            }
            RpmError::BadPackage { .. } => "the mirror serves a damaged package: retry later or use another mirror".into(),
            RpmError::LockMismatch { .. } | RpmError::TargetNotLocked { .. } => {
                "build without `--locked` to update the lock, and review the change".into()
            }
            RpmError::InvalidTarget { .. } => "use a target name like `el9-x86_64`".into(),
            RpmError::Repodata { .. } | RpmError::Io { .. } => return None,
        })
    }
}

/// `kubeadm` from `kubeadm-1.29.2-1.x86_64`.
fn nevra_name(nevra: &str) -> &str {
    let nevr = nevra.rsplit_once('.').map_or(nevra, |(n, _)| n);
    let nev = nevr.rsplit_once('-').map_or(nevr, |(n, _)| n);
    nev.rsplit_once('-').map_or(nev, |(n, _)| n)
}

/// Resolves, downloads and lays out every target's yum repo.
pub async fn fetch(
    targets: &[RpmTargetSpec],
    opts: &RpmFetchOptions,
) -> Result<RpmOutput, RpmError> {
    let mut out = RpmOutput::default();
    for t in targets {
        let (record, entries) = fetch_target(t, opts).await?;
        out.records.push(record);
        out.entries.extend(entries);
    }
    Ok(out)
}

fn entry_path(target: &str, rel: &str) -> Result<EntryPath, RpmError> {
    EntryPath::new(&format!("{}{target}/{rel}", bundle_format::layout::RPMS)).map_err(|e| {
        RpmError::InvalidTarget {
            target: target.into(),
            reason: format!("`{rel}`: {e}"),
        }
    })
}

/// A package downloaded and checked.
struct Fetched {
    cand: Candidate,
    blob: download::Blob,
    meta: rpmrepo_metadata::Package,
    file_name: String,
}

async fn fetch_target(
    t: &RpmTargetSpec,
    opts: &RpmFetchOptions,
) -> Result<(RpmRepoRecord, Vec<(EntryRecord, PathBuf)>), RpmError> {
    if t.target.is_empty() || t.target.contains('/') || t.target.starts_with('.') {
        return Err(RpmError::InvalidTarget {
            target: t.target.clone(),
            reason: "not a plain folder name".into(),
        });
    }
    let http = &opts.http;
    let cache = opts.cache_dir.as_path();

    // 1. Upstream metadata, all repos at once.
    let loads = futures_util::future::join_all(
        t.repos
            .iter()
            .enumerate()
            .map(|(i, r)| repo::load(http, cache, i, r)),
    )
    .await;
    let mut repos = Vec::new();
    let mut all = Vec::new();
    for l in loads {
        let (r, c) = l?;
        repos.push(r);
        all.extend(c);
    }
    let repos = Arc::new(repos);

    // 2. Keys.
    let mut keys: Vec<Option<(Vec<u8>, Arc<rpm::signature::pgp::Verifier>)>> = Vec::new();
    for r in repos.iter() {
        keys.push(match &r.spec.gpgkey {
            None => None,
            Some(urls) => Some(load_keys(http, &r.spec.name, urls).await?),
        });
    }

    // 3. Resolve (blocking: pure computation, plus filelists scans when needed).
    let locked_record = match &opts.locked {
        None => None,
        Some(records) => Some(
            records
                .iter()
                .find(|r| r.target == t.target)
                .cloned()
                .ok_or_else(|| RpmError::TargetNotLocked {
                    target: t.target.clone(),
                })?,
        ),
    };
    let prefs: HashMap<String, String> = locked_record
        .iter()
        .flat_map(|r| r.packages.iter().map(|p| (p.name.clone(), p.nevra.clone())))
        .collect();
    let universe = Arc::new(solve::Universe::new(
        &t.target,
        &t.arch,
        t.repos.iter().map(|r| r.name.clone()).collect(),
        all,
        &t.exclude,
    ));
    let picks: Vec<Candidate> = {
        let universe = universe.clone();
        let repos = repos.clone();
        let specs = t.packages.clone();
        let http = http.clone();
        let cache = opts.cache_dir.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let by_pkgid = universe.by_pkgid();
            let mut owners = |path: &str| -> Result<Vec<usize>, RpmError> {
                let mut out = Vec::new();
                for (ri, r) in repos.iter().enumerate() {
                    let Some(file) = handle.block_on(repo::fetch_filelists(&http, &cache, r))?
                    else {
                        continue;
                    };
                    let found =
                        repo::scan_filelists(&file, &[path.to_string()]).map_err(|reason| {
                            RpmError::MalformedMetadata {
                                repo: r.spec.name.clone(),
                                url: r
                                    .filelists
                                    .as_ref()
                                    .map(|f| f.0.clone())
                                    .unwrap_or_default(),
                                reason,
                            }
                        })?;
                    for pkgid in found.get(path).into_iter().flatten() {
                        if let Some(&i) = by_pkgid.get(&(ri, pkgid.clone())) {
                            out.push(i);
                        }
                    }
                }
                tracing::debug!(path, owners = out.len(), "looked up in filelists");
                Ok(out)
            };
            solve::resolve(&universe, &specs, &prefs, &mut owners)
                .map(|idx| idx.into_iter().map(|i| universe.cands[i].clone()).collect())
        })
        .await
        .expect("resolver panicked")?
    };
    drop(universe);
    tracing::info!(
        target = %t.target,
        packages = picks.len(),
        bytes = picks.iter().map(|c| c.size).sum::<u64>(),
        "resolved the package closure"
    );

    if let Some(lock) = &locked_record {
        check_lock_nevras(&t.target, lock, &picks)?;
    }

    // 4. Download, check, read headers.
    let jobs = opts.jobs.max(1);
    let results: Vec<Result<Fetched, RpmError>> =
        futures_util::stream::iter(picks.into_iter().map(|cand| {
            let repo = &repos[cand.repo];
            let key = keys[cand.repo].as_ref().map(|k| k.1.clone());
            fetch_package(http, cache, repo, cand, key)
        }))
        .buffer_unordered(jobs)
        .collect()
        .await;
    let mut fetched = Vec::new();
    for r in results {
        fetched.push(r?);
    }
    fetched.sort_by_key(|f| f.cand.nevra());
    let mut names = HashMap::new();
    for f in &fetched {
        if let Some(other) = names.insert(f.file_name.clone(), f.cand.nevra()) {
            return Err(RpmError::InvalidTarget {
                target: t.target.clone(),
                reason: format!(
                    "`{other}` and `{}` would share the file name `{}`",
                    f.cand.nevra(),
                    f.file_name
                ),
            });
        }
    }

    let mut records = Vec::new();
    let mut entries = Vec::new();
    for f in &fetched {
        let path = entry_path(&t.target, &format!("Packages/{}", f.file_name))?;
        entries.push((
            EntryRecord {
                path: path.clone(),
                size: f.blob.size,
                sha256: f.blob.sha256,
            },
            f.blob.path.clone(),
        ));
        records.push(RpmRecord {
            nevra: f.cand.nevra(),
            name: f.cand.name.clone(),
            epoch: f.cand.evr.epoch,
            version: f.cand.evr.version.clone(),
            release: f.cand.evr.release.clone(),
            arch: f.cand.arch.clone(),
            path,
            size: f.blob.size,
            sha256: f.blob.sha256,
            source_repo: repos[f.cand.repo].spec.name.clone(),
        });
    }
    if let Some(lock) = &locked_record {
        check_lock_digests(&t.target, lock, &records)?;
    }

    // 5. Repodata.
    let dir = opts.work_dir.join("rpms").join(&t.target);
    std::fs::create_dir_all(&dir).map_err(|source| RpmError::Io {
        path: dir.clone(),
        source,
    })?;
    let metas: Vec<rpmrepo_metadata::Package> = fetched.into_iter().map(|f| f.meta).collect();
    let files = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || repodata::write(&dir, metas))
            .await
            .expect("repodata writer panicked")
            .map_err(|e| RpmError::Repodata {
                target: t.target.clone(),
                reason: download::error_chain(&e),
            })?
    };
    for file in files {
        let rel = file
            .strip_prefix(&dir)
            .expect("under the target folder")
            .to_string_lossy()
            .into_owned();
        entries.push(local_entry(&t.target, &rel, file)?);
    }

    // 6. Keys.
    let mut gpg_keys = Vec::new();
    let keys_dir = dir.join("keys");
    for (r, k) in repos.iter().zip(&keys) {
        let Some((armored, _)) = k else { continue };
        std::fs::create_dir_all(&keys_dir).map_err(|source| RpmError::Io {
            path: keys_dir.clone(),
            source,
        })?;
        let file = keys_dir.join(format!("{}.asc", r.spec.name));
        std::fs::write(&file, armored).map_err(|source| RpmError::Io {
            path: file.clone(),
            source,
        })?;
        let (record, path) = local_entry(&t.target, &format!("keys/{}.asc", r.spec.name), file)?;
        gpg_keys.push(record.path.clone());
        entries.push((record, path));
    }

    Ok((
        RpmRepoRecord {
            target: t.target.clone(),
            releasever: t.releasever.clone(),
            arch: t.arch.clone(),
            packages: records,
            gpg_keys,
        },
        entries,
    ))
}

fn local_entry(target: &str, rel: &str, file: PathBuf) -> Result<(EntryRecord, PathBuf), RpmError> {
    let f = std::fs::File::open(&file).map_err(|source| RpmError::Io {
        path: file.clone(),
        source,
    })?;
    let (sha256, size) = hash_reader(f).map_err(|source| RpmError::Io {
        path: file.clone(),
        source,
    })?;
    Ok((
        EntryRecord {
            path: entry_path(target, rel)?,
            size,
            sha256,
        },
        file,
    ))
}

/// Downloads each key URL (a `gpgkey` may list several, separated by spaces, as in a
/// `.repo` file) and concatenates the armored blocks into one key file.
async fn load_keys(
    http: &reqwest::Client,
    repo: &str,
    urls: &str,
) -> Result<(Vec<u8>, Arc<rpm::signature::pgp::Verifier>), RpmError> {
    let mut armored = Vec::new();
    for url in urls.split_whitespace() {
        let bytes = download::get_small(http, url, 1024 * 1024)
            .await
            .map_err(|e| RpmError::GpgKey {
                repo: repo.into(),
                url: url.into(),
                reason: match e {
                    DownloadError::Unreachable(r) => r,
                    DownloadError::Status(s) => format!("HTTP {s}"),
                    other => format!("{other:?}"),
                },
            })?;
        gpg::verifier(&bytes).map_err(|reason| RpmError::GpgKey {
            repo: repo.into(),
            url: url.into(),
            reason,
        })?;
        armored.extend_from_slice(&bytes);
        if !armored.ends_with(b"\n") {
            armored.push(b'\n');
        }
    }
    let verifier = gpg::verifier(&armored).map_err(|reason| RpmError::GpgKey {
        repo: repo.into(),
        url: urls.into(),
        reason,
    })?;
    Ok((armored, Arc::new(verifier)))
}

async fn fetch_package(
    http: &reqwest::Client,
    cache: &Path,
    repo: &LoadedRepo,
    cand: Candidate,
    key: Option<Arc<rpm::signature::pgp::Verifier>>,
) -> Result<Fetched, RpmError> {
    let nevra = cand.nevra();
    let repo_name = repo.spec.name.clone();
    let expected = cand
        .checksum
        .clone()
        .map_err(|reason| RpmError::UnsupportedChecksum {
            repo: repo_name.clone(),
            package: nevra.clone(),
            reason,
        })?;
    let url = match &cand.location_base {
        Some(b) if !b.is_empty() => format!("{}{}", repo::base_url(b), cand.location),
        _ => format!("{}{}", repo.base, cand.location),
    };
    let blob = download::to_cache(http, cache, &url, &expected)
        .await
        .map_err(|e| match e {
            DownloadError::Mismatch { expected, actual } => RpmError::PackageChecksum {
                repo: repo_name.clone(),
                package: nevra.clone(),
                url: url.clone(),
                expected,
                actual,
            },
            DownloadError::Unreachable(reason) => RpmError::RepoUnreachable {
                repo: repo_name.clone(),
                url: url.clone(),
                reason,
            },
            DownloadError::Status(s) => RpmError::RepoUnreachable {
                repo: repo_name.clone(),
                url: url.clone(),
                reason: format!("HTTP {s}"),
            },
            DownloadError::Io(path, source) => RpmError::Io { path, source },
        })?;
    tracing::debug!(package = %nevra, size = blob.size, "downloaded");

    let file_name = format!(
        "{}-{}-{}.{}.rpm",
        cand.name, cand.evr.version, cand.evr.release, cand.arch
    );
    let path = blob.path.clone();
    let digest: Sha256Digest = blob.sha256;
    let size = blob.size;
    let href = format!("Packages/{file_name}");
    let want = cand.clone();
    let meta = tokio::task::spawn_blocking(
        move || -> Result<rpmrepo_metadata::Package, gpg::PackageProblem> {
            use gpg::PackageProblem::Unreadable;
            let meta = gpg::inspect(&path, key.as_deref())?;
            let build = meta.get_build_time().unwrap_or(0);
            let pkg = rpmrepo_metadata::Package::from_package_metadata(
                &meta,
                rpmrepo_metadata::PackageSource {
                    checksum: Some(rpmrepo_metadata::Checksum::Sha256(digest.hex())),
                    size_package: Some(size),
                    time_file: build,
                    location_href: href,
                    location_base: None,
                },
                rpmrepo_metadata::PackageOptions::default(),
            )
            .map_err(|e| Unreadable(download::error_chain(&e)))?;
            let got = format!(
                "{}-{}.{}",
                pkg.name(),
                vercmp::Evr::new(pkg.epoch(), pkg.version(), pkg.release()),
                pkg.arch()
            );
            if got != want.nevra() {
                return Err(Unreadable(format!(
                    "its header says `{got}`, the repo metadata says `{}`",
                    want.nevra()
                )));
            }
            Ok(pkg)
        },
    )
    .await
    .expect("package reader panicked")
    .map_err(|problem| {
        let (repo, package) = (repo_name.clone(), nevra.clone());
        match problem {
            gpg::PackageProblem::Unsigned => RpmError::Unsigned { repo, package },
            gpg::PackageProblem::BadSignature(reason) => RpmError::BadSignature {
                repo,
                package,
                reason,
            },
            gpg::PackageProblem::Unreadable(reason) => RpmError::BadPackage {
                repo,
                package,
                reason,
            },
        }
    })?;
    Ok(Fetched {
        cand,
        blob,
        meta,
        file_name,
    })
}

fn check_lock_nevras(
    target: &str,
    lock: &RpmRepoRecord,
    picks: &[Candidate],
) -> Result<(), RpmError> {
    let locked: HashMap<&str, &str> = lock
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.nevra.as_str()))
        .collect();
    let picked: HashMap<&str, String> =
        picks.iter().map(|c| (c.name.as_str(), c.nevra())).collect();
    let mut names: Vec<&str> = locked.keys().chain(picked.keys()).copied().collect();
    names.sort();
    names.dedup();
    let diffs: Vec<(String, String, String)> = names
        .into_iter()
        .filter_map(|n| {
            let l = locked
                .get(n)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "(absent)".into());
            let p = picked.get(n).cloned().unwrap_or_else(|| "(absent)".into());
            (l != p).then(|| (n.to_string(), l, p))
        })
        .collect();
    lock_result(target, diffs)
}

fn check_lock_digests(
    target: &str,
    lock: &RpmRepoRecord,
    records: &[RpmRecord],
) -> Result<(), RpmError> {
    let locked: HashMap<&str, &RpmRecord> = lock
        .packages
        .iter()
        .map(|p| (p.nevra.as_str(), p))
        .collect();
    let diffs = records
        .iter()
        .filter_map(|r| {
            let l = locked.get(r.nevra.as_str())?;
            (l.sha256 != r.sha256).then(|| {
                (
                    r.name.clone(),
                    format!("{} ({})", l.nevra, l.sha256),
                    format!("{} ({})", r.nevra, r.sha256),
                )
            })
        })
        .collect();
    lock_result(target, diffs)
}

fn lock_result(target: &str, diffs: Vec<(String, String, String)>) -> Result<(), RpmError> {
    match diffs.first() {
        None => Ok(()),
        Some((package, locked, upstream)) => Err(RpmError::LockMismatch {
            target: target.into(),
            package: package.clone(),
            locked: locked.clone(),
            upstream: upstream.clone(),
            more: diffs.len() - 1,
        }),
    }
}
