//! `bundle build --dry-run` of a default-sized manifest (12 images, the HA package set
//! over three RPM repositories) against what a user would run to learn the same:
//! `skopeo inspect --raw` of every image (digest and manifest) and
//! `dnf install --assumeno` into an empty installroot (the package closure, nothing
//! downloaded). Both start from a cold cache.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin dry_run [-- 256]

use bundle_bench::{bundle_binary, header, image_upstream, measure, row};
use bundle_testbed::fixtures::ha_repos::{Upstream, HA_PACKAGES};

fn main() -> anyhow::Result<()> {
    let size_mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let bundle = bundle_binary()?;
    let work = tempfile::tempdir()?;
    let w = work.path();
    let (registry, images) = image_upstream(size_mib, w)?;
    let rpms = Upstream::ha()?;
    let addr = &registry.addr;
    let refs: Vec<String> = images
        .iter()
        .map(|i| format!("{addr}/{}:{}", i.repository, i.tag))
        .collect();
    let repos = ["kubernetes", "docker-ce", "base"];
    let repo_lines: String = repos
        .iter()
        .map(|r| format!("        - {{name: {r}, baseurl: '{}'}}\n", rpms.repo_url(r)))
        .collect();
    std::fs::write(
        w.join("m.yaml"),
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: dry, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  images:\n{}  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n{repo_lines}      packages: [{}]\n",
            refs.iter().map(|r| format!("    - {r}\n")).collect::<String>(),
            HA_PACKAGES.join(", ")
        ),
    )?;

    let ours = measure(
        w,
        &format!(
            "{} -q build --manifest m.yaml --plain-http {addr} --cache cache --dry-run --json > plan.json",
            bundle.display()
        ),
    )?;
    let inspect: String = refs
        .iter()
        .map(|r| format!("skopeo inspect --raw --tls-verify=false docker://{r} > /dev/null && "))
        .collect();
    let repofrompath: String = repos
        .iter()
        .map(|r| format!("--repofrompath={r},{} ", rpms.repo_url(r)))
        .collect();
    let dnf = format!(
        "dnf install --assumeno --setopt=reposdir=/dev/null --setopt=cachedir=$PWD/dnfcache --nogpgcheck \
         {repofrompath}--disablerepo='*' --enablerepo={} --installroot=$PWD/root --releasever=9 {} > dnf.out 2>&1; true",
        repos.join(","),
        HA_PACKAGES.join(" ")
    );
    let theirs = measure(w, &format!("{inspect}{dnf}"))?;
    // `--assumeno` always ends in "Operation aborted" (exit 1): check it got as far as
    // the transaction, so the time is a resolve's and not an early failure's.
    let dnf_out = std::fs::read_to_string(w.join("dnf.out"))?;
    anyhow::ensure!(
        dnf_out.contains("kubeadm") && dnf_out.contains("Operation aborted"),
        "dnf did not resolve the closure:\n{dnf_out}"
    );
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(w.join("plan.json"))?)?;

    println!(
        "\nDry run of {} images ({size_mib} MiB of layers) and {} packages resolved from 3 repositories:\n",
        images.len(),
        plan["rpms"][0]["packages"]
    );
    header("bundle build --dry-run", "skopeo inspect + dnf --assumeno");
    row("resolve, cold cache", ours, theirs, "same order");
    Ok(())
}
