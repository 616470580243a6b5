//! What the hardened reader pays for refusing decompression and parser bombs:
//! `bundle verify` and `bundle push` (into a fresh docker-registry on loopback) on each
//! hostile bundle of `bundle_testbed::crafted`, beside the same commands on the genuine
//! bundle they were crafted from (about the same compressed size: the bombs' zeros
//! compress to almost nothing). Peak RSS, CPU seconds (user + sys) and exit code from
//! `/usr/bin/time -v`, wall time measured here. Every hostile bundle must be refused
//! with exit code 3; the benchmark fails if one is accepted.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin bombs [-- MIB_OF_LAYERS GIB_DECODED]

use std::time::Instant;

use anyhow::{bail, Context};
use bundle_bench::{bundle_binary, image_manifest, image_upstream, time, Timed};
use bundle_testbed::crafted::{Archive, Layout, Skippable};
use bundle_testbed::Registry;

/// The first line of what a command wrote to stderr.
fn first_line(stderr: &str) -> &str {
    stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

fn print_row(bundle: &str, mib: u64, step: &str, r: &Timed) {
    let verdict = if r.code == 0 {
        "accepted".to_string()
    } else {
        format!(
            "exit {}: {}",
            r.code,
            first_line(&r.stderr).replace('|', "\\|")
        )
    };
    println!(
        "| {bundle} | {mib} MiB | {step} | {} MiB | {:.2} s | {:.2} s | {verdict} |",
        r.measure.peak_kib / 1024,
        r.cpu,
        r.measure.wall
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let layers_mib = args.first().copied().unwrap_or(4);
    let decoded_gib = args.get(1).copied().unwrap_or(32);
    let bundle = bundle_binary()?;
    let bundle = bundle.display().to_string();
    let work = tempfile::tempdir()?;
    let w = work.path();

    // The genuine bundle: the image benchmarks' set (12 images, incompressible layers).
    let (upstream, list) = image_upstream(layers_mib, w)?;
    let addr = upstream.addr.clone();
    image_manifest(w, layers_mib, &addr, &list)?;
    let built = time(w, &format!("{bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache --output genuine.tar.zst"))?;
    if built.code != 0 {
        bail!("bundle build failed: {}", first_line(&built.stderr));
    }
    drop(upstream);
    let genuine = Archive::read(&w.join("genuine.tar.zst"))?;
    let entry = genuine
        .members
        .iter()
        .map(|m| m.path.clone())
        .find(|p| p.starts_with("images/blobs/"))
        .context("no blob in the genuine bundle")?;

    // (name, file, also pushed)
    let mut bombs: Vec<(String, String, bool)> = Vec::new();
    let gen_start = Instant::now();
    for (layout, tag) in [(Layout::OneFrame, "one frame"), (Layout::Framed, "framed")] {
        let slug = if layout == Layout::Framed { "f" } else { "1" };

        let mut a = genuine.clone();
        a.pax_size_index_bomb(3 << 29);
        let f = format!("index-bomb-{slug}.tar.zst");
        a.write(layout, &w.join(&f))?;
        bombs.push((format!("PAX size 1.5 GiB on bundle.json ({tag})"), f, true));

        let f = format!("window-{slug}.tar.zst");
        genuine.write_with_window_log(layout, &entry, 31, &w.join(&f))?;
        bombs.push((format!("2 GiB zstd window ({tag})"), f, false));

        let f = format!("decoding-more-{slug}.tar.zst");
        genuine.write_decoding_more(layout, decoded_gib << 30, &w.join(&f))?;
        bombs.push((
            format!("frame decoding {decoded_gib} GiB of zeros more ({tag})"),
            f,
            true,
        ));

        let mut a = genuine.clone();
        a.pax_size_longer(&entry, &[0u8; 4096]);
        let f = format!("pax-entry-{slug}.tar.zst");
        a.write(layout, &w.join(&f))?;
        bombs.push((format!("PAX size on a blob entry ({tag})"), f, false));
    }
    for (place, tag) in [
        (Skippable::NoTable, "no seek table"),
        (Skippable::Listed, "listed in the seek table"),
        (Skippable::Hidden, "hidden in frame 0's table entry"),
    ] {
        let f = format!("skippable-{place:?}.tar.zst").to_lowercase();
        genuine.write_with_skippable(place, &[0u8; 1 << 20], &w.join(&f))?;
        bombs.push((format!("1 MiB skippable frame ({tag})"), f, false));
    }
    let gen_secs = gen_start.elapsed().as_secs_f64();

    let mib = |f: &str| -> anyhow::Result<u64> {
        Ok(std::fs::metadata(w.join(f))?.len().div_ceil(1 << 20))
    };
    let verify = |f: &str| {
        time(
            w,
            &format!("{bundle} verify {f} --pubkey k.pub > /dev/null"),
        )
    };
    let push = |f: &str| -> anyhow::Result<Timed> {
        let target = Registry::start()?;
        let r = time(
            w,
            &format!(
                "{bundle} -q push {f} --pubkey k.pub --registry {} --plain-http > /dev/null",
                target.addr
            ),
        );
        drop(target);
        r
    };

    println!(
        "\n{layers_mib} MiB of layers ({} images), genuine bundle {} MiB, {} cores; hostile bundles crafted in {gen_secs:.1} s:\n",
        list.len(),
        mib("genuine.tar.zst")?,
        std::thread::available_parallelism()?.get()
    );
    println!("| bundle | compressed | step | peak RSS | CPU (user + sys) | wall | verdict |");
    println!("|---|---|---|---|---|---|---|");
    let g = "genuine.tar.zst";
    let gv = verify(g)?;
    print_row("genuine", mib(g)?, "verify", &gv);
    let gp = push(g)?;
    print_row("genuine", mib(g)?, "push", &gp);
    if gv.code != 0 || gp.code != 0 {
        bail!("the genuine bundle was not accepted");
    }
    let mut accepted = Vec::new();
    for (name, f, pushed) in &bombs {
        let mut steps = vec![("verify", verify(f)?)];
        if *pushed {
            steps.push(("push", push(f)?));
        }
        for (step, r) in steps {
            print_row(name, mib(f)?, step, &r);
            if r.code != 3 {
                accepted.push(format!("{name}: {step} exit {}", r.code));
            }
        }
    }
    if !accepted.is_empty() {
        bail!(
            "hostile bundles not refused with exit code 3:\n  {}",
            accepted.join("\n  ")
        );
    }
    println!("\nevery hostile bundle refused with exit code 3.");
    Ok(())
}
