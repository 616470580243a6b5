//! `bundle build` through a real forward proxy (tinyproxy, with Basic auth, on
//! 127.0.0.1) against the same build direct, in one run: the overhead of the proxy path.
//! The upstream: a registry seeded with the image benchmarks' images (`size` MiB of
//! layers) and a yum repo of 20 packages, each build into a fresh cache. The sides
//! alternate, five times, so neither has the page cache to itself; the median ratio is
//! printed.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin proxy_build [-- 256]

use bundle_bench::{bundle_binary, header, image_manifest, image_upstream, measure, row};
use bundle_testbed::real::rpms::{createrepo, RepoServer, RpmSpec};
use bundle_testbed::real::tinyproxy::{Tinyproxy, TinyproxyOptions};

/// Pairs of builds (direct, then through the proxy): the machine is shared, so one pair
/// says little.
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let size: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let bundle = bundle_binary()?;
    let bundle = bundle.display();
    let work = tempfile::tempdir()?;
    let w = work.path();
    let (registry, list) = image_upstream(size, w)?;
    let addr = &registry.addr;
    image_manifest(w, size, addr, &list)?;
    let repo = w.join("repo");
    for i in 0..20 {
        RpmSpec::new(&format!("pkg{i}"), "1.0-1.el9", "x86_64")
            .files(&[&format!("/usr/bin/pkg{i}")])
            .build(&w.join("rpmbuild"), &repo)?;
    }
    createrepo(&repo)?;
    let server = RepoServer::serve(&repo)?;
    let pkgs: Vec<String> = (0..20).map(|i| format!("pkg{i}")).collect();
    let mut manifest = std::fs::read_to_string(w.join("m.yaml"))?;
    manifest.push_str(&format!(
        "  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: upstream, baseurl: '{}/'}}\n      packages: [{}]\n",
        server.url,
        pkgs.join(", ")
    ));
    std::fs::write(w.join("m.yaml"), manifest)?;

    let proxy = Tinyproxy::start(&TinyproxyOptions {
        basic_auth: Some(("bench".into(), "bench-pw".into())),
        ..Default::default()
    })?;
    let build = |n: usize, env: &str| {
        measure(
            w,
            &format!("rm -rf cache{n} && {env} {bundle} -q build --manifest m.yaml --key k.key --plain-http {addr} --cache cache{n} --output out{n}.tar.zst"),
        )
    };
    let through = format!("HTTPS_PROXY={u} HTTP_PROXY={u}", u = proxy.url());
    let mut pairs = Vec::new();
    for run in 0..RUNS {
        let direct = build(2 * run, "")?;
        let proxied = build(2 * run + 1, &through)?;
        pairs.push((proxied, direct));
    }
    let relayed = proxy.relayed();
    if relayed == 0 {
        anyhow::bail!(
            "the proxied builds did not go through the proxy:\n{}",
            proxy.log()
        );
    }
    println!(
        "\nupstream: {} images, {size} MiB of layers; 20 RPMs; the proxy relayed {relayed} connections\n",
        list.len()
    );
    header("through tinyproxy", "direct");
    for (i, (proxied, direct)) in pairs.iter().enumerate() {
        row(
            &format!("build through the proxy (run {})", i + 1),
            *proxied,
            *direct,
            "≤ 1.2×",
        );
    }
    let mut ratios: Vec<f64> = pairs.iter().map(|(p, d)| p.wall / d.wall).collect();
    ratios.sort_by(f64::total_cmp);
    println!("\nmedian ratio: {:.2}×", ratios[ratios.len() / 2]);
    Ok(())
}
