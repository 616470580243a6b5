//! The last step, once the whole bundle verified: manifests put raw, children before the
//! indexes that name them, then tags. A manifest or tag already in place is left alone.

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::ctx::Ctx;
use super::{PlannedImage, PushPlan};
use crate::Error;

/// How many were put, and how many were in place already.
#[derive(Default)]
pub(super) struct Counts {
    pub put: usize,
    pub skipped: usize,
}

/// Puts every image's manifests by digest, `jobs` images at a time.
pub(super) async fn put_manifests(
    ctx: &Ctx<'_>,
    plan: &PushPlan,
    jobs: usize,
) -> Result<Counts, Error> {
    let per_image: Vec<Counts> = stream::iter(plan.images.iter())
        .map(|image| put_image_manifests(ctx, plan, image))
        .buffer_unordered(jobs)
        .try_collect()
        .await?;
    Ok(Counts {
        put: per_image.iter().map(|c| c.put).sum(),
        skipped: per_image.iter().map(|c| c.skipped).sum(),
    })
}

/// One image's manifests, in plan order (children first).
async fn put_image_manifests(
    ctx: &Ctx<'_>,
    plan: &PushPlan,
    image: &PlannedImage,
) -> Result<Counts, Error> {
    let repo = image.repository();
    let mut counts = Counts::default();
    for d in &image.manifests {
        let m = &plan.manifests[d];
        let reference = d.to_string();
        let have = ctx
            .retry(&format!("HEAD manifest {repo}@{d}"), || {
                ctx.session.manifest_digest(repo, &reference)
            })
            .await?;
        if have.is_some() {
            counts.skipped += 1;
            continue;
        }
        ctx.retry(&format!("PUT manifest {repo}@{d}"), || {
            ctx.session
                .put_manifest(repo, &reference, &m.media_type, &m.bytes)
        })
        .await?;
        counts.put += 1;
    }
    Ok(counts)
}

/// Sets (or moves) every image's tag, `jobs` at a time; each image is reported pushed
/// once its tag is in place (at once for an image pushed by digest only).
pub(super) async fn put_tags(ctx: &Ctx<'_>, plan: &PushPlan, jobs: usize) -> Result<Counts, Error> {
    let changed: Vec<bool> = stream::iter(plan.images.iter())
        .map(|image| put_tag(ctx, plan, image))
        .buffer_unordered(jobs)
        .try_collect::<Vec<Option<bool>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let put = changed.iter().filter(|c| **c).count();
    Ok(Counts {
        put,
        skipped: changed.len() - put,
    })
}

/// Whether the tag had to be set; `None` for an image without tag.
async fn put_tag(
    ctx: &Ctx<'_>,
    plan: &PushPlan,
    image: &PlannedImage,
) -> Result<Option<bool>, Error> {
    let repo = image.repository();
    let Some(tag) = &image.target.tag else {
        ctx.reporter.image_pushed(image);
        return Ok(None);
    };
    let digest = image.digest.to_string();
    let have = ctx
        .retry(&format!("HEAD tag {repo}:{tag}"), || {
            ctx.session.manifest_digest(repo, tag)
        })
        .await?;
    let changed = have.as_deref() != Some(digest.as_str());
    if changed {
        let m = &plan.manifests[&image.digest];
        ctx.retry(&format!("PUT tag {repo}:{tag}"), || {
            ctx.session.put_manifest(repo, tag, &m.media_type, &m.bytes)
        })
        .await?;
    }
    ctx.reporter.image_pushed(image);
    Ok(Some(changed))
}
