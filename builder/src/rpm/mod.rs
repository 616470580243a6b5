//! RPMs: pinned packages and their dependency closure from upstream yum repos, as one
//! ready yum repository per target (`rpms/<target>/`).
//!
//! For each [`RpmTargetSpec`], [`fetch`]:
//! 1. gives each upstream repo a client of its own (the build's proxies and CA files,
//!    the repo's `sslcacert`, client certificate and Basic credentials) — `client`;
//!    finds its `repodata/` (`baseurl`, or the first working mirror of a `mirrorlist` or
//!    a `metalink`, whose repomd checksum is checked) — `mirrors`; reads
//!    `repodata/repomd.xml` and `primary` (checked against the checksum repomd gives;
//!    `filelists` only when a file requirement needs it) — `repo`; and the keys of
//!    repos with a `gpgkey` — `keys`;
//! 2. picks the newest package matching each spec in RPM version order (`vercmp`) and
//!    follows every requirement to a provider, deterministically (`solve`, rich
//!    dependencies parsed by `rich`, run off the runtime by `resolve`, with `-v`
//!    explaining each choice); with `--locked`, the picks must be the lock's (`lock`);
//! 3. downloads each RPM streamed into the content-addressed cache, checked against the
//!    upstream checksum, `jobs` at a time, with retries (`package`, `download`), its
//!    bytes reported to the [`BuildReporter`];
//! 4. for repos with a `gpgkey`, checks each package's signature and payload digest in
//!    fixed memory (`gpg`);
//! 5. lays the target out as entries: the packages, a fresh gzip repodata written from
//!    their headers (`repodata`) and the keys (`layout`).
//!
//! EL8 module streams (`modules`) sit between 1 and 2: a repo's `modules` metadata is
//! read with its primary, the active stream of each module chosen (the manifest's
//! `modules:`, else the default), the packages that hides dropped before the closure,
//! and the streams the picks come from written into the bundle's repodata as the
//! modules' defaults.
//!
//! It returns [`RpmOutput`]: records for `bundle.json` and the lock, and the entries
//! (`rpms/<target>/Packages/*.rpm`, `rpms/<target>/repodata/*`, `rpms/<target>/keys/*.asc`)
//! with the files holding their bytes. With [`RpmFetchOptions::locked`], the picks must
//! equal the lock.

mod client;
mod download;
mod error;
mod gpg;
mod keys;
mod layout;
mod lock;
mod mirrors;
mod modules;
mod package;
mod repo;
mod repodata;
mod resolve;
mod rich;
mod solve;
mod spec;
pub mod vercmp;

use std::path::PathBuf;

use bundle_format::{EntryRecord, RpmRepoRecord};

use crate::BuildReporter;

pub(crate) use download::error_chain;
pub use error::{RepoAuth, RpmError};
pub use spec::{RpmFetchOptions, RpmTargetSpec, UpstreamRepo};

/// What the RPM step adds to the bundle.
#[derive(Default)]
pub struct RpmOutput {
    /// One record per target, for `bundle.json` and the lock.
    pub records: Vec<RpmRepoRecord>,
    /// Entries to write (under `rpms/<target>/`) and the files holding their bytes.
    pub entries: Vec<(EntryRecord, PathBuf)>,
}

/// Resolves, downloads and lays out every target's yum repo.
pub async fn fetch(
    targets: &[RpmTargetSpec],
    opts: &RpmFetchOptions,
    report: &dyn BuildReporter,
) -> Result<RpmOutput, RpmError> {
    let mut out = RpmOutput::default();
    for t in targets {
        let (record, entries) = fetch_target(t, opts, report).await?;
        out.records.push(record);
        out.entries.extend(entries);
    }
    Ok(out)
}

/// What one target's repository will hold, resolved without downloading a package
/// (`bundle build --dry-run`): only the repositories' metadata is fetched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetPlan {
    /// `el9-x86_64`.
    pub target: String,
    /// Packages in the closure.
    pub packages: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Of which already in the cache.
    pub cached_bytes: u64,
    /// EL8 module streams the packages come from (`container-tools:rhel8`).
    pub module_streams: Vec<String>,
}

/// Every target's closure, as [`fetch`] would resolve it.
pub async fn plan(
    targets: &[RpmTargetSpec],
    opts: &RpmFetchOptions,
) -> Result<Vec<TargetPlan>, RpmError> {
    let mut out = Vec::new();
    for t in targets {
        layout::check_target_name(&t.target)?;
        let cache = opts.cache_dir.as_path();
        let (repos, all) = repo::load_all(&opts.http, cache, t).await?;
        let lock = lock::record_for(opts.locked.as_deref(), &t.target)?;
        let (picks, carried) = choose(t, cache, repos, all, lock.as_ref()).await?;
        let (to_fetch, cached) = package::split_cached(cache, &picks);
        out.push(TargetPlan {
            target: t.target.clone(),
            packages: picks.len(),
            bytes: to_fetch + cached,
            cached_bytes: cached,
            module_streams: modules::stream_ids(&carried),
        });
    }
    Ok(out)
}

/// One target's yum repo: the steps above, in order.
async fn fetch_target(
    t: &RpmTargetSpec,
    opts: &RpmFetchOptions,
    report: &dyn BuildReporter,
) -> Result<(RpmRepoRecord, Vec<layout::Entry>), RpmError> {
    layout::check_target_name(&t.target)?;
    let cache = opts.cache_dir.as_path();
    let (repos, all) = repo::load_all(&opts.http, cache, t).await?;
    let keys = keys::load_all(&repos).await?;
    let lock = lock::record_for(opts.locked.as_deref(), &t.target)?;
    let (picks, carried) = choose(t, cache, repos.clone(), all, lock.as_ref()).await?;
    tracing::info!(
        target = %t.target,
        packages = picks.len(),
        bytes = picks.iter().map(|c| c.size).sum::<u64>(),
        "resolved the package closure"
    );
    let (to_fetch, cached) = package::split_cached(cache, &picks);
    report.rpm_fetch_started(&t.target, picks.len(), to_fetch, cached);
    let on_bytes = |n| report.fetched(n);
    let fetched =
        package::fetch_all(cache, &t.target, &repos, &keys, picks, opts.jobs, &on_bytes).await;
    report.fetch_finished();
    let fetched = fetched?;
    let (packages, mut entries) = layout::packages(&t.target, &fetched, &repos)?;
    if let Some(lock) = &lock {
        lock::check_digests(&t.target, lock, &packages)?;
    }
    let dir = opts.work_dir.join("rpms").join(&t.target);
    let modules_yaml = modules::render(&carried);
    entries.extend(layout::repodata(&t.target, &dir, fetched, modules_yaml).await?);
    let (gpg_keys, key_entries) = layout::keys(&t.target, &dir, &repos, &keys)?;
    entries.extend(key_entries);
    let record = RpmRepoRecord {
        target: t.target.clone(),
        releasever: t.releasever.clone(),
        arch: t.arch.clone(),
        packages,
        gpg_keys,
        module_streams: modules::stream_ids(&carried),
    };
    Ok((record, entries))
}

/// Chooses the target's module streams and resolves the closure among the packages
/// they leave visible; with a lock, both must be the lock's. Returns the picks and the
/// module builds the bundle's repo carries.
async fn choose(
    t: &RpmTargetSpec,
    cache: &std::path::Path,
    repos: std::sync::Arc<Vec<repo::LoadedRepo>>,
    all: Vec<repo::Candidate>,
    lock: Option<&RpmRepoRecord>,
) -> Result<(Vec<repo::Candidate>, Vec<modules::ModuleBuild>), RpmError> {
    let selection = modules::select(&t.target, &t.modules, &modules::views(&repos))?;
    let (visible, hidden) = selection.split(&t.target, all);
    let prefs = lock::preferences(lock);
    let picks = resolve::resolve(t, cache.to_path_buf(), repos, visible, prefs)
        .await
        .map_err(|e| selection.explain_hidden(e, &hidden))?;
    let carried = selection.carried(&picks);
    if let Some(lock) = lock {
        lock::check_modules(&t.target, lock, &modules::stream_ids(&carried))?;
        lock::check_nevras(&t.target, lock, &picks)?;
    }
    Ok((picks, carried))
}
