//! `bundle build` of an images-only manifest against the registry's pull floor: every
//! blob of the image set fetched once with curl, 8 in parallel, into files (nothing
//! hashed, nothing compressed), from the same registry (docker-registry on loopback),
//! in one run. `bundle build` does more than the floor: it resolves the tags, hashes
//! every blob as it arrives, and then writes and signs the bundle (every byte read
//! again, hashed again, zstd level 3 on all cores). To show where the time goes, a
//! second `bundle build` with the cache still warm (resolve and write only) is timed
//! too, and `skopeo copy` of every image into an OCI layout is there for scale. The
//! synthetic image set is the build benchmark's: a dozen images, one shared base
//! layer, incompressible layers like real gzip layers.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin pull [-- 1024]

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use bundle_bench::{bundle_binary, header, image_manifest, image_upstream, measure, row};
use bundle_testbed::fixtures::images::TestImage;

/// `REPOSITORY DIGEST` lines, one per distinct blob (config and layers) of `list`,
/// read from the registry's manifests with curl before anything is timed.
fn blob_list(work: &Path, registry: &str, list: &[TestImage]) -> anyhow::Result<usize> {
    let mut lines = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for image in list {
        let out = Command::new("curl")
            .args(["-sf", "-H"])
            .arg("Accept: application/vnd.oci.image.manifest.v1+json")
            .arg(format!(
                "http://{registry}/v2/{}/manifests/{}",
                image.repository, image.tag
            ))
            .output()
            .context("running curl")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || text.contains("\"manifests\"") {
            bail!(
                "{}:{} is not a single image manifest: {text}",
                image.repository,
                image.tag
            );
        }
        for digest in text
            .split('"')
            .filter(|s| s.starts_with("sha256:") && s.len() == 71)
        {
            if seen.insert(digest.to_string()) {
                lines.push(format!("{} {digest}\n", image.repository));
            }
        }
    }
    std::fs::write(work.join("blobs.txt"), lines.concat())?;
    Ok(lines.len())
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![1024] } else { sizes };
    let bundle = bundle_binary()?;
    let bundle = bundle.display();
    for size in sizes {
        let work = tempfile::tempdir()?;
        let w = work.path();
        let (upstream, list) = image_upstream(size, w)?;
        let addr = &upstream.addr.clone();
        image_manifest(w, size, addr, &list)?;
        let blobs = blob_list(w, addr, &list)?;

        // The floor: each distinct blob once, 8 in parallel, into a file. Timed before
        // and after the build (the faster counts), so that neither side alone meets a
        // cold page cache or another engineer's burst of load.
        let floor_script = format!(
            r#"rm -rf floor && mkdir floor && xargs -P 8 -n 2 sh -c 'curl -sf -o floor/${{1#sha256:}} http://{addr}/v2/$0/blobs/$1' < blobs.txt && test $(ls floor | wc -l) -eq {blobs}"#
        );
        let floor_before = measure(w, &floor_script)?;
        let build = format!("{bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache --output b.tar.zst");
        let ours = measure(w, &build)?;
        let floor_after = measure(w, &floor_script)?;
        let floor = match floor_before.wall <= floor_after.wall {
            true => floor_before,
            false => floor_after,
        };
        std::fs::remove_file(w.join("b.tar.zst"))?;
        let warm = measure(w, &build)?;

        let _ = std::fs::remove_dir_all("/var/lib/containers/cache");
        let copies: Vec<String> = list
            .iter()
            .map(|i| {
                format!(
                    "skopeo copy -q --src-tls-verify=false docker://{addr}/{r}:{t} oci:layout:{r}:{t}",
                    r = i.repository,
                    t = i.tag
                )
            })
            .collect();
        let skopeo = measure(w, &copies.join(" && "))?;

        let bytes = std::fs::metadata(w.join("b.tar.zst"))?.len();
        println!(
            "\n{size} MiB of layers ({} images, {blobs} distinct blobs, bundle {} MiB), {} cores:\n",
            list.len(),
            bytes >> 20,
            std::thread::available_parallelism()?.get()
        );
        header("bundle build", "alternative");
        row(
            "build, fresh cache (bundle build | pull floor: curl, 8 parallel)",
            ours,
            floor,
            "≤ 1.2×",
        );
        row(
            "build, warm cache: resolve + write only (bundle build | pull floor)",
            warm,
            floor,
            "—",
        );
        row(
            "skopeo copy ×12 into an OCI layout (skopeo | pull floor)",
            skopeo,
            floor,
            "—",
        );
        println!(
            "\npull floor: {:.2} s before the build, {:.2} s after (the faster is used above).",
            floor_before.wall, floor_after.wall
        );
        println!(
            "bundle build's pull, estimated as fresh minus warm: {:.2} s = {:.2}× the floor.",
            ours.wall - warm.wall,
            (ours.wall - warm.wall) / floor.wall
        );
        drop(upstream);
        if std::env::var_os("BENCH_KEEP").is_some() {
            println!("kept {}", work.keep().display());
        }
    }
    Ok(())
}
