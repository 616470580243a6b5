//! `bundle push` against `skopeo copy --all --preserve-digests` of every image from the
//! bundle's extracted OCI layout, into fresh registries (docker-registry on loopback);
//! then a second `bundle push` of the same bundle (everything present) against
//! `bundle verify`. The synthetic image set is the build benchmark's: a dozen images,
//! one shared base layer, incompressible layers like real gzip layers.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin push [-- 1024]

use bundle_bench::{bundle_binary, header, image_upstream, measure, row};
use bundle_testbed::Registry;

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
        let refs: String = list
            .iter()
            .map(|i| format!("    - {addr}/{}:{}\n", i.repository, i.tag))
            .collect();
        std::fs::write(
            w.join("m.yaml"),
            format!("apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: bench, version: '{size}'}}\nspec:\n  platforms: [linux/amd64]\n  images:\n{refs}"),
        )?;
        measure(w, &format!("{bundle} keygen --unencrypted --output k"))?;
        measure(w, &format!("{bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache --output b.tar.zst"))?;
        std::fs::remove_dir_all(w.join("cache"))?;
        drop(upstream);
        let extract = measure(w, "mkdir x && tar -I zstd -xf b.tar.zst -C x images")?;

        // bundle push into a fresh registry, then again (everything present).
        let ours_target = Registry::start()?;
        let push = format!("{bundle} -q push b.tar.zst --pubkey k.pub --registry {} --plain-http --scratch scratch --json > push.json", ours_target.addr);
        let ours = measure(w, &push)?;
        let again = measure(w, &push)?;
        let verify = measure(
            w,
            &format!("{bundle} verify b.tar.zst --pubkey k.pub > /dev/null"),
        )?;

        // skopeo, from the extracted layout, into another fresh registry.
        let theirs_target = Registry::start()?;
        let _ = std::fs::remove_dir_all("/var/lib/containers/cache");
        let copies: Vec<String> = list
            .iter()
            .map(|i| {
                format!(
                    "skopeo copy -q --all --preserve-digests --dest-tls-verify=false oci:x/images:{addr}/{r}:{t} docker://{to}/{r}:{t}",
                    r = i.repository,
                    t = i.tag,
                    to = theirs_target.addr
                )
            })
            .collect();
        let theirs = measure(w, &copies.join(" && "))?;
        let theirs_again = measure(w, &copies.join(" && "))?;

        let bytes = std::fs::metadata(w.join("b.tar.zst"))?.len();
        println!(
            "\n{size} MiB of layers ({} images, bundle {} MiB), {} cores:\n",
            list.len(),
            bytes >> 20,
            std::thread::available_parallelism()?.get()
        );
        header("bundle push", "alternative");
        row("push into a fresh registry (bundle push | skopeo copy --all --preserve-digests ×12 from the extracted layout)", ours, theirs, "≤ 0.5×, ≤ 100 MiB");
        row(
            "push again, everything present (bundle push | skopeo copy ×12 again)",
            again,
            theirs_again,
            "< 2 s",
        );
        row(
            "push again vs. verify alone (bundle push | bundle verify)",
            again,
            verify,
            "≈ 1×",
        );
        println!(
            "\nbundle push verified the whole bundle in the same run; skopeo read a layout extracted beforehand with `tar -I zstd -x` ({:.2} s, not counted above).",
            extract.wall
        );
        drop(ours_target);
        drop(theirs_target);
        if std::env::var_os("BENCH_KEEP").is_some() {
            println!("kept {}", work.keep().display());
        }
    }
    Ok(())
}
