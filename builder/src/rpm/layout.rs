//! A target's yum repo as bundle entries under `rpms/<target>/`: `Packages/*.rpm` (the
//! cached files themselves), `repodata/*` written fresh from the packages' headers, and
//! `keys/*.asc` for repos with a `gpgkey`.

use std::path::{Path, PathBuf};

use bundle_format::digest::hash_reader;
use bundle_format::{EntryPath, EntryRecord, RpmRecord};

use super::download;
use super::error::RpmError;
use super::keys::RepoKey;
use super::package::Fetched;
use super::repo::LoadedRepo;
use super::repodata;

/// An entry to write and the file that holds its bytes.
pub(crate) type Entry = (EntryRecord, PathBuf);

/// A target name must be one plain folder name: it becomes `rpms/<target>/`.
pub(crate) fn check_target_name(target: &str) -> Result<(), RpmError> {
    if target.is_empty() || target.contains('/') || target.starts_with('.') {
        return Err(RpmError::InvalidTarget {
            target: target.into(),
            reason: "not a plain folder name".into(),
        });
    }
    Ok(())
}

/// The packages' records (for `bundle.json` and the lock) and their entries.
pub(crate) fn packages(
    target: &str,
    fetched: &[Fetched],
    repos: &[LoadedRepo],
) -> Result<(Vec<RpmRecord>, Vec<Entry>), RpmError> {
    let mut records = Vec::new();
    let mut entries = Vec::new();
    for f in fetched {
        let path = entry_path(target, &format!("Packages/{}", f.file_name))?;
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
    Ok((records, entries))
}

/// Writes the repodata of `fetched` (and the `modules.yaml` of the streams they come
/// from, if any) into `dir` (the target's scratch folder) and returns its files as
/// entries.
pub(crate) async fn repodata(
    target: &str,
    dir: &Path,
    fetched: Vec<Fetched>,
    modules_yaml: Option<String>,
) -> Result<Vec<Entry>, RpmError> {
    create_dir(dir)?;
    let metas: Vec<rpmrepo_metadata::Package> = fetched.into_iter().map(|f| f.meta).collect();
    let files = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || repodata::write(&dir, metas, modules_yaml.as_deref()))
            .await
            .expect("repodata writer panicked")
            .map_err(|e| RpmError::Repodata {
                target: target.into(),
                reason: download::error_chain(&e),
            })?
    };
    files
        .into_iter()
        .map(|file| {
            let rel = file
                .strip_prefix(dir)
                .expect("under the target folder")
                .to_string_lossy()
                .into_owned();
            local_entry(target, &rel, file)
        })
        .collect()
}

/// Writes each repo's key into `dir/keys/` and returns the keys' entry paths (for the
/// record) and entries.
pub(crate) fn keys(
    target: &str,
    dir: &Path,
    repos: &[LoadedRepo],
    keys: &[Option<RepoKey>],
) -> Result<(Vec<EntryPath>, Vec<Entry>), RpmError> {
    let mut paths = Vec::new();
    let mut entries = Vec::new();
    let keys_dir = dir.join("keys");
    for (r, k) in repos.iter().zip(keys) {
        let Some(key) = k else { continue };
        create_dir(&keys_dir)?;
        let file = keys_dir.join(format!("{}.asc", r.spec.name));
        std::fs::write(&file, &key.armored).map_err(|source| RpmError::Io {
            path: file.clone(),
            source,
        })?;
        let (record, path) = local_entry(target, &format!("keys/{}.asc", r.spec.name), file)?;
        paths.push(record.path.clone());
        entries.push((record, path));
    }
    Ok((paths, entries))
}

fn create_dir(dir: &Path) -> Result<(), RpmError> {
    std::fs::create_dir_all(dir).map_err(|source| RpmError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn entry_path(target: &str, rel: &str) -> Result<EntryPath, RpmError> {
    EntryPath::new(&format!("{}{target}/{rel}", bundle_format::layout::RPMS)).map_err(|e| {
        RpmError::InvalidTarget {
            target: target.into(),
            reason: format!("`{rel}`: {e}"),
        }
    })
}

/// The entry for a file written here (repodata, keys): hashed as it is.
fn local_entry(target: &str, rel: &str, file: PathBuf) -> Result<Entry, RpmError> {
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
