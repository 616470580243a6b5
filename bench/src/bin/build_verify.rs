//! `bundle build` against `skopeo copy` (each image into an OCI layout) followed by
//! `tar -cf - | zstd -T0 -3`; `bundle verify` against `zstd -dc | sha256sum`. The same
//! synthetic upstream (a dozen images, one shared base layer, incompressible layers like
//! real gzip layers) at each size, into fresh caches and registries.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin build_verify [-- 256 1024]

use bundle_bench::{bundle_binary, header, image_manifest, image_upstream, measure, row};

fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![256, 1024]
    } else {
        sizes
    };
    let bundle = bundle_binary()?;
    let bundle = bundle.display();
    for size in sizes {
        let work = tempfile::tempdir()?;
        let w = work.path();
        let (registry, list) = image_upstream(size, w)?;
        let addr = &registry.addr;
        image_manifest(w, size, addr, &list)?;

        let ours_build = measure(w, &format!("{bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache --output ours.tar.zst"))?;
        // The same build with everything cached: resolving and writing only.
        let ours_rebuild = measure(w, &format!("{bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache --output again.tar.zst"))?;
        // skopeo keeps a blob-info cache that would let it skip work: start clean.
        let _ = std::fs::remove_dir_all("/var/lib/containers/cache");
        let copies: Vec<String> = list
            .iter()
            .map(|i| format!("skopeo copy -q --src-tls-verify=false docker://{addr}/{r}:{t} oci:layout:{r}:{t}", r = i.repository, t = i.tag))
            .collect();
        let theirs_build = measure(w, &copies.join(" && "))?.then(measure(
            w,
            "tar -cf - -C layout . | zstd -q -T0 -3 -o theirs.tar.zst",
        )?);

        let ours_verify = measure(
            w,
            &format!("{bundle} verify ours.tar.zst --pubkey k.pub > /dev/null"),
        )?;
        let theirs_verify = measure(w, "zstd -dc ours.tar.zst | sha256sum > /dev/null")?;

        let bytes = std::fs::metadata(w.join("ours.tar.zst"))?.len();
        println!(
            "\n{size} MiB of layers ({} images, bundle {} MiB), {} cores:\n",
            list.len(),
            bytes >> 20,
            std::thread::available_parallelism()?.get()
        );
        header("bundle", "alternative");
        row(
            "build (bundle build | skopeo copy ×12 + tar | zstd -T0 -3)",
            ours_build,
            theirs_build,
            "≤ 0.7×, ≤ 100 MiB",
        );
        row(
            "verify (bundle verify | zstd -dc | sha256sum)",
            ours_verify,
            theirs_verify,
            "≤ 1.2×, ≤ 100 MiB",
        );
        println!(
            "\nbundle build again, cache warm (resolve + write only): {:.2} s, peak RSS {} MiB",
            ours_rebuild.wall,
            ours_rebuild.peak_kib / 1024
        );
        drop(registry);
    }
    Ok(())
}
