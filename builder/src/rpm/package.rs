//! One package: downloaded into the cache and checked against the upstream checksum,
//! its header read (and its signature checked when the repo has a key), and its entry
//! for the bundle's repodata made from that header.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bundle_format::Sha256Digest;
use futures_util::StreamExt;
use rpm::signature::pgp::Verifier;

use super::download::{self, Blob, DownloadError};
use super::error::RpmError;
use super::gpg::{self, PackageProblem};
use super::keys::RepoKey;
use super::repo::{self, Candidate, LoadedRepo};
use super::vercmp;

/// A package downloaded and checked.
pub(crate) struct Fetched {
    pub cand: Candidate,
    pub blob: Blob,
    /// Its entry in the bundle's repodata.
    pub meta: rpmrepo_metadata::Package,
    /// Its file name under `Packages/`.
    pub file_name: String,
}

/// Downloads and checks every pick, `jobs` at a time, in NEVRA order. `keys` are the
/// repos' keys in repo order.
pub(crate) async fn fetch_all(
    cache: &Path,
    target: &str,
    repos: &[LoadedRepo],
    keys: &[Option<RepoKey>],
    picks: Vec<Candidate>,
    jobs: usize,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Fetched>, RpmError> {
    let results: Vec<Result<Fetched, RpmError>> =
        futures_util::stream::iter(picks.into_iter().map(|cand| {
            let repo = &repos[cand.repo];
            let key = keys[cand.repo].as_ref().map(|k| k.verifier.clone());
            fetch(cache, repo, cand, key, on_bytes)
        }))
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    let mut fetched = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    fetched.sort_by_key(|f| f.cand.nevra());
    check_file_names(target, &fetched)?;
    Ok(fetched)
}

/// Bytes of `picks` to download, and bytes already in the cache.
pub(crate) fn split_cached(cache: &Path, picks: &[Candidate]) -> (u64, u64) {
    picks
        .iter()
        .fold((0, 0), |(fetch, cached), c| match &c.checksum {
            Ok(download::Expected::Sha256(d)) if download::blob_path(cache, d).is_file() => {
                (fetch, cached + c.size)
            }
            _ => (fetch + c.size, cached),
        })
}

/// Two packages that would share a file name in `Packages/` cannot both be carried.
fn check_file_names(target: &str, fetched: &[Fetched]) -> Result<(), RpmError> {
    let mut names = HashMap::new();
    for f in fetched {
        if let Some(other) = names.insert(f.file_name.clone(), f.cand.nevra()) {
            return Err(RpmError::InvalidTarget {
                target: target.into(),
                reason: format!(
                    "`{other}` and `{}` would share the file name `{}`",
                    f.cand.nevra(),
                    f.file_name
                ),
            });
        }
    }
    Ok(())
}

async fn fetch(
    cache: &Path,
    repo: &LoadedRepo,
    cand: Candidate,
    key: Option<Arc<Verifier>>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Fetched, RpmError> {
    let blob = download_checked(cache, repo, &cand, on_bytes).await?;
    tracing::debug!(package = %cand.nevra(), size = blob.size, "downloaded");
    let file_name = format!(
        "{}-{}-{}.{}.rpm",
        cand.name, cand.evr.version, cand.evr.release, cand.arch
    );
    let (path, digest, size) = (blob.path.clone(), blob.sha256, blob.size);
    let href = format!("Packages/{file_name}");
    let want = cand.clone();
    // Reading headers and hashing the payload block: off the runtime.
    let meta = tokio::task::spawn_blocking(move || {
        read_header(&path, key.as_deref(), digest, size, href, &want)
    })
    .await
    .expect("package reader panicked")
    .map_err(|problem| package_error(&repo.spec.name, &cand.nevra(), problem))?;
    Ok(Fetched {
        cand,
        blob,
        meta,
        file_name,
    })
}

/// Downloads `cand` into the cache, checked against the checksum its repo's metadata
/// gives (a file that does not match is not cached).
async fn download_checked(
    cache: &Path,
    repo: &LoadedRepo,
    cand: &Candidate,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Blob, RpmError> {
    let repo_name = &repo.spec.name;
    let expected = cand
        .checksum
        .clone()
        .map_err(|reason| RpmError::UnsupportedChecksum {
            repo: repo_name.clone(),
            package: cand.nevra(),
            reason,
        })?;
    let url = match &cand.location_base {
        Some(b) if !b.is_empty() => format!("{}{}", repo::base_url(b), cand.location),
        _ => format!("{}{}", repo.base, cand.location),
    };
    download::to_cache(&repo.http, cache, &url, &expected, on_bytes)
        .await
        .map_err(|e| match e {
            DownloadError::Mismatch { expected, actual } => RpmError::PackageChecksum {
                repo: repo_name.clone(),
                package: cand.nevra(),
                url: url.clone(),
                expected,
                actual,
            },
            other => repo::unreachable(&repo.spec, &url, other),
        })
}

/// Reads the header of the RPM at `path`, checking its signature with `key`, and makes
/// its repodata entry (`href` in the bundle's repo). The header must name the package the
/// upstream metadata described: a mirror must not swap one package for another.
fn read_header(
    path: &Path,
    key: Option<&Verifier>,
    digest: Sha256Digest,
    size: u64,
    href: String,
    want: &Candidate,
) -> Result<rpmrepo_metadata::Package, PackageProblem> {
    use PackageProblem::Unreadable;
    let meta = gpg::inspect(path, key)?;
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
}

/// The error for what reading `package` of `repo` found wrong.
fn package_error(repo: &str, package: &str, problem: PackageProblem) -> RpmError {
    let (repo, package) = (repo.to_string(), package.to_string());
    match problem {
        PackageProblem::Unsigned => RpmError::Unsigned { repo, package },
        PackageProblem::BadSignature(reason) => RpmError::BadSignature {
            repo,
            package,
            reason,
        },
        PackageProblem::Unreadable(reason) => RpmError::BadPackage {
            repo,
            package,
            reason,
        },
    }
}
