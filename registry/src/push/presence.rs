//! What the registry has already: `HEAD` for every blob in every repository that needs
//! it, then cross-repository mounts of what one repository has into the others, so
//! that only blobs missing everywhere are read from the bundle.

use std::collections::BTreeMap;

use bundle_format::Sha256Digest;
use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::ctx::Ctx;
use super::PushPlan;
use crate::Error;

/// What must happen to one blob.
#[derive(Debug, Clone)]
pub(super) struct BlobWork {
    pub digest: Sha256Digest,
    pub size: u64,
    /// Repositories missing it, sorted.
    pub missing: Vec<String>,
    /// A repository that has it (mount source), when any.
    pub present_in: Option<String>,
}

/// Every planned blob and where it is still missing, with what was found in place.
#[derive(Default)]
pub(super) struct Presence {
    pub work: BTreeMap<Sha256Digest, BlobWork>,
    /// Blob × repository pairs already present.
    pub skipped: usize,
    /// Blob × repository pairs mounted.
    pub mounted: usize,
    /// Bytes present or mounted, not to be sent.
    pub bytes_skipped: u64,
}

/// Asks `HEAD` for every blob in every repository that needs it, `jobs` at a time.
pub(super) async fn check(ctx: &Ctx<'_>, plan: &PushPlan, jobs: usize) -> Result<Presence, Error> {
    let pairs: Vec<(Sha256Digest, String)> = plan
        .blobs
        .iter()
        .flat_map(|(d, b)| b.repositories.iter().map(move |r| (*d, r.clone())))
        .collect();
    let found: Vec<(Sha256Digest, String, bool)> = stream::iter(pairs)
        .map(|(d, r)| async move {
            let present = ctx
                .retry(&format!("HEAD blob {r}@{d}"), || {
                    ctx.session.blob_exists(&r, &d)
                })
                .await?;
            Ok::<_, Error>((d, r, present))
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    let mut presence = Presence {
        work: plan
            .blobs
            .iter()
            .map(|(d, b)| {
                let w = BlobWork {
                    digest: *d,
                    size: b.size,
                    missing: Vec::new(),
                    present_in: None,
                };
                (*d, w)
            })
            .collect(),
        ..Presence::default()
    };
    for (d, r, present) in found {
        let w = presence.work.get_mut(&d).expect("planned blob");
        if present {
            presence.skipped += 1;
            presence.bytes_skipped += w.size;
            w.present_in.get_or_insert(r);
        } else {
            w.missing.push(r);
        }
    }
    for w in presence.work.values_mut() {
        w.missing.sort();
    }
    Ok(presence)
}

/// Mounts what one repository has into the others that lack it; what the registry
/// refuses to mount stays missing (it is uploaded then).
pub(super) async fn mount(
    ctx: &Ctx<'_>,
    presence: &mut Presence,
    jobs: usize,
) -> Result<(), Error> {
    let mounts: Vec<BlobWork> = presence
        .work
        .values()
        .filter(|w| w.present_in.is_some() && !w.missing.is_empty())
        .cloned()
        .collect();
    let refused: Vec<(Sha256Digest, Vec<String>)> = stream::iter(mounts)
        .map(|w| async move {
            let from = w.present_in.clone().expect("filtered");
            let mut failed = Vec::new();
            for to in &w.missing {
                if !ctx
                    .retry(&format!("mount {} into {to}", w.digest), || {
                        ctx.session.mount(to, &from, &w.digest)
                    })
                    .await?
                {
                    failed.push(to.clone());
                }
            }
            Ok::<_, Error>((w.digest, failed))
        })
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    for (d, failed) in refused {
        let w = presence.work.get_mut(&d).expect("planned blob");
        presence.mounted += w.missing.len() - failed.len();
        presence.bytes_skipped += w.size * (w.missing.len() - failed.len()) as u64;
        w.missing = failed;
    }
    Ok(())
}
