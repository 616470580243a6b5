//! `--locked`: the lock's record of a target steers the closure towards the locked
//! NEVRAs, and the build fails when the picks or their digests differ from it.

use std::collections::HashMap;

use bundle_format::{RpmRecord, RpmRepoRecord};

use super::error::RpmError;
use super::repo::Candidate;

/// The lock's record of `target`, when building `--locked`; a target missing from the
/// lock is an error then.
pub(crate) fn record_for(
    locked: Option<&[RpmRepoRecord]>,
    target: &str,
) -> Result<Option<RpmRepoRecord>, RpmError> {
    let Some(records) = locked else {
        return Ok(None);
    };
    let record = records.iter().find(|r| r.target == target).cloned();
    record.map(Some).ok_or_else(|| RpmError::TargetNotLocked {
        target: target.into(),
    })
}

/// Name → locked NEVRA: the closure prefers these whenever they are a valid choice.
pub(crate) fn preferences(lock: Option<&RpmRepoRecord>) -> HashMap<String, String> {
    lock.iter()
        .flat_map(|r| r.packages.iter().map(|p| (p.name.clone(), p.nevra.clone())))
        .collect()
}

/// The picks (NEVRAs) must equal the lock's, name for name.
pub(crate) fn check_nevras(
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

/// The module streams chosen must be the lock's.
pub(crate) fn check_modules(
    target: &str,
    lock: &RpmRepoRecord,
    chosen: &[String],
) -> Result<(), RpmError> {
    if lock.module_streams == chosen {
        return Ok(());
    }
    Err(RpmError::ModuleLockMismatch {
        target: target.into(),
        locked: lock.module_streams.clone(),
        chosen: chosen.to_vec(),
    })
}

/// A package locked at this NEVRA must still have the locked digest.
pub(crate) fn check_digests(
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

/// The first difference as the error, with how many more there are.
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
