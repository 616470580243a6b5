//! The closure for one target, run off the async runtime: `solve` is pure computation,
//! except that a file requirement no primary entry provides is looked up in the repos'
//! `filelists`, downloaded only then (they are large).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::RpmError;
use super::repo::{self, Candidate, LoadedRepo};
use super::solve::{self, Universe};
use super::spec::RpmTargetSpec;

/// Picks the target's packages among `all` (every repo's candidates): the specs and
/// their closure, preferring the `locked` NEVRAs (name → NEVRA).
pub(crate) async fn resolve(
    t: &RpmTargetSpec,
    cache: PathBuf,
    repos: Arc<Vec<LoadedRepo>>,
    all: Vec<Candidate>,
    locked: HashMap<String, String>,
) -> Result<Vec<Candidate>, RpmError> {
    let universe = Universe::new(
        &t.target,
        &t.arch,
        t.repos.iter().map(|r| r.name.clone()).collect(),
        all,
        &t.exclude,
    );
    let specs = t.packages.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let by_pkgid = universe.by_pkgid();
        let mut owners = |path: &str| -> Result<Vec<usize>, RpmError> {
            let found = file_owners(&handle, &cache, &repos, &by_pkgid, path)?;
            tracing::debug!(path, owners = found.len(), "looked up in filelists");
            Ok(found)
        };
        solve::resolve(&universe, &specs, &locked, &mut owners)
            .map(|idx| idx.into_iter().map(|i| universe.cands[i].clone()).collect())
    })
    .await
    .expect("resolver panicked")
}

/// The candidates (indices into the universe, found through `by_pkgid`) whose filelists
/// hold `path`, in repo order. Runs on a blocking thread: downloads go through `handle`.
fn file_owners(
    handle: &tokio::runtime::Handle,
    cache: &std::path::Path,
    repos: &[LoadedRepo],
    by_pkgid: &HashMap<(usize, String), usize>,
    path: &str,
) -> Result<Vec<usize>, RpmError> {
    let mut out = Vec::new();
    for (ri, r) in repos.iter().enumerate() {
        let Some(file) = handle.block_on(repo::fetch_filelists(cache, r))? else {
            continue;
        };
        let found = repo::scan_filelists(&file, &[path.to_string()]).map_err(|reason| {
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
    Ok(out)
}
