//! The GPG keys of repos with a `gpgkey`: downloaded, checked to be usable keys, then
//! used to check every package of the repo and shipped in `keys/` beside the packages.

use std::sync::Arc;

use rpm::signature::pgp::Verifier;

use super::download::{self, DownloadError, Http};
use super::error::RpmError;
use super::gpg;
use super::repo::LoadedRepo;

/// One repo's key: the armored text to ship and the verifier made from it.
pub(crate) struct RepoKey {
    pub armored: Vec<u8>,
    pub verifier: Arc<Verifier>,
}

/// The key of each repo, in repo order (`None` for a repo without `gpgkey`).
pub(crate) async fn load_all(repos: &[LoadedRepo]) -> Result<Vec<Option<RepoKey>>, RpmError> {
    let mut keys = Vec::new();
    for r in repos {
        keys.push(match &r.spec.gpgkey {
            None => None,
            Some(urls) => Some(load(&r.http, &r.spec.name, urls).await?),
        });
    }
    Ok(keys)
}

/// Downloads each key URL (a `gpgkey` may list several, separated by spaces, as in a
/// `.repo` file) and concatenates the armored blocks into one key file.
async fn load(http: &Http, repo: &str, urls: &str) -> Result<RepoKey, RpmError> {
    let mut armored = Vec::new();
    for url in urls.split_whitespace() {
        let bytes = download::get_small(http, url, 1024 * 1024)
            .await
            .map_err(|e| RpmError::GpgKey {
                repo: repo.into(),
                url: url.into(),
                reason: match e {
                    DownloadError::Unreachable(r) => r,
                    DownloadError::Proxy(r) => r.to_string(),
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
    Ok(RepoKey {
        armored,
        verifier: Arc::new(verifier),
    })
}
