//! `bundle push` against `skopeo copy --all --preserve-digests` of every image from the
//! bundle's extracted OCI layout, into fresh registries (docker-registry on loopback);
//! then a second `bundle push` of the same bundle (everything present) against
//! `bundle verify`; then the registry's ingest floor: every blob file of the extracted
//! layout uploaded once into one repository of another fresh registry with curl, 8 in
//! parallel, each a monolithic upload (POST, then PUT of the whole file with its digest),
//! checked afterwards with HEAD requests. That is the least any client can make the
//! registry ingest (bundle push uploads the shared base layer once and mounts it
//! elsewhere, so the bytes are the same), and the registry shares the cores with the
//! client. The synthetic image set is the build benchmark's: a dozen images, one shared
//! base layer, incompressible layers like real gzip layers.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin push [-- 1024]

use std::path::Path;
use std::process::Command;

use anyhow::bail;
use bundle_bench::{bundle_binary, header, image_manifest, image_upstream, measure, row};
use bundle_testbed::Registry;

/// Fails unless `registry` has, in `repository`, every blob file of `dir` (named by its
/// sha256 hex) at its size: HEAD of each blob with curl.
fn check_blobs(dir: &Path, registry: &str, repository: &str) -> anyhow::Result<()> {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let hex = entry.file_name().to_string_lossy().into_owned();
        let size = entry.metadata()?.len();
        let out = Command::new("curl")
            .arg("-sfI")
            .arg(format!(
                "http://{registry}/v2/{repository}/blobs/sha256:{hex}"
            ))
            .output()?;
        let length = String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            if name.eq_ignore_ascii_case("content-length") {
                value.trim().parse::<u64>().ok()
            } else {
                None
            }
        });
        if !out.status.success() || length != Some(size) {
            bail!(
                "blob sha256:{hex} ({size} bytes) missing from {registry}/{repository} after the curl uploads (HEAD: {}, Content-Length: {length:?})",
                out.status
            );
        }
        checked += 1;
    }
    if checked == 0 {
        bail!("no blobs in {}", dir.display());
    }
    Ok(())
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
        measure(w, &format!("{bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache --output b.tar.zst"))?;
        std::fs::remove_dir_all(w.join("cache"))?;
        drop(upstream);
        let extract = measure(w, "mkdir x && tar -I zstd -xf b.tar.zst -C x images")?;

        // bundle push into a fresh registry, then again (everything present).
        let ours_target = Registry::start()?;
        let push = format!("{bundle} -q push b.tar.zst --pubkey k.pub --registry {} --plain-http --json > push.json", ours_target.addr);
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

        // The registry's ingest floor: every blob once, with curl, into another fresh registry.
        let floor_target = Registry::start()?;
        let floor = measure(
            w,
            &format!(
                r#"ls x/images/blobs/sha256 | xargs -P 8 -n 1 sh -c 'loc=$(curl -sf -o /dev/null -D - --data-binary "" http://{to}/v2/floor/blobs/blobs/uploads/ | tr -d "\r" | sed -n "s/^[Ll]ocation: //p"); case $loc in /*) loc=http://{to}$loc;; esac; case $loc in *\?*) loc="$loc&";; *) loc="$loc?";; esac; curl -sf -o /dev/null -H "Expect:" -H "Content-Type: application/octet-stream" -T x/images/blobs/sha256/$1 -X PUT "$loc"digest=sha256:$1' upload"#,
                to = floor_target.addr
            ),
        )?;
        check_blobs(
            &w.join("x/images/blobs/sha256"),
            &floor_target.addr,
            "floor/blobs",
        )?;

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
        row(
            "registry ingest floor: every blob uploaded with curl, 8 parallel (bundle push | curl)",
            ours,
            floor,
            "—",
        );
        println!(
            "\nbundle push verified the whole bundle in the same run; skopeo read a layout extracted beforehand with `tar -I zstd -x` ({:.2} s, not counted above).",
            extract.wall
        );
        println!(
            "registry ingest floor: {:.2} s = {:.2}× skopeo copy (bundle push's target is ≤ 0.5× skopeo copy).",
            floor.wall,
            floor.wall / theirs.wall
        );
        drop(ours_target);
        drop(theirs_target);
        drop(floor_target);
        if std::env::var_os("BENCH_KEEP").is_some() {
            println!("kept {}", work.keep().display());
        }
    }
    Ok(())
}
