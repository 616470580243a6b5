//! The whole connected-side chain offline: a local registry seeded with synthetic images
//! under the default manifest's names, a file server, three yum repos built with
//! rpmbuild; then `bundle build` (through `--mirror`) → `bundle verify` → `bundle inspect`.
//!
//! `cargo build --release && cargo run --release -p bundle-testbed --bin demo [--keep DIR]`

use std::path::PathBuf;
use std::process::Command;

use anyhow::bail;
use bundle_testbed::fixtures::ha_repos::{Upstream, HA_PACKAGES};
use bundle_testbed::fixtures::images;
use bundle_testbed::{FileServer, Registry};

fn main() -> anyhow::Result<()> {
    let keep = std::env::args()
        .skip_while(|a| a != "--keep")
        .nth(1)
        .map(PathBuf::from);
    let bundle_bin = std::env::current_exe()?.with_file_name("bundle");
    if !bundle_bin.exists() {
        bail!(
            "`{}` not found; build it first with the same profile (cargo build --release)",
            bundle_bin.display()
        );
    }
    let scratch = tempfile::tempdir()?;
    let work = match &keep {
        Some(dir) => dir.clone(),
        None => scratch.path().join("work"),
    };
    std::fs::create_dir_all(&work)?;

    step("starting a local registry and seeding the default manifest's images (skopeo)");
    let registry = Registry::start()?;
    let seed_dir = scratch.path().join("seed");
    for image in images::default_manifest_images(16) {
        images::seed(&registry.addr, &image, &seed_dir)?;
    }
    step("serving calico.yaml and building three yum repos (rpmbuild, rpmsign, createrepo_c)");
    let files = FileServer::start()?;
    let calico = b"# stand-in for calico.yaml v3.26.4\nimage: docker.io/calico/node:v3.26.4\n";
    let calico_url = files.put("calico.yaml", calico);
    let rpms = Upstream::ha()?;

    let manifest = manifest(&calico_url, calico, &rpms);
    std::fs::write(work.join("demo.yaml"), manifest)?;
    let addr = registry.addr.as_str();
    let env = [
        ("XDG_CONFIG_HOME", scratch.path().join("config")),
        ("XDG_CACHE_HOME", scratch.path().join("cache")),
    ];
    let run = |args: &[&str]| -> anyhow::Result<()> {
        println!("\n$ bundle {}", args.join(" "));
        let status = Command::new(&bundle_bin)
            .args(args)
            .current_dir(&work)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .status()?;
        if !status.success() {
            bail!("bundle {} failed", args[0]);
        }
        Ok(())
    };
    run(&["keygen", "--unencrypted", "--output", "demo"])?;
    let (k8s, docker) = (
        format!("registry.k8s.io={addr}"),
        format!("docker.io={addr}"),
    );
    run(&[
        "build",
        "--manifest",
        "demo.yaml",
        "--key",
        "demo.key",
        "--plain-http",
        addr,
        "--mirror",
        &k8s,
        "--mirror",
        &docker,
    ])?;
    let bundle = "bundles/demo-1.29.2-1.tar.zst";
    run(&["verify", bundle, "--pubkey", "demo.pub"])?;
    run(&["inspect", bundle, "--pubkey", "demo.pub"])?;
    match keep {
        Some(dir) => println!(
            "\nthe bundle, key pair and manifest are in `{}`",
            dir.display()
        ),
        None => println!("\n(pass `--keep DIR` to keep the bundle)"),
    }
    Ok(())
}

fn step(what: &str) {
    println!("==> {what}");
}

fn manifest(calico_url: &str, calico: &[u8], rpms: &Upstream) -> String {
    use sha2::Digest;
    let images: String = images::DEFAULT_IMAGES
        .iter()
        .map(|i| format!("    - {i}\n"))
        .collect();
    format!(
        "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: demo, version: 1.29.2-1}}\nspec:\n  kubernetesVersion: v1.29.2\n  cni: {{name: calico, manifest: calico.yaml}}\n  platforms: [linux/amd64]\n  images:\n{images}  files:\n    - {{name: calico.yaml, url: '{calico_url}', sha256: {}}}\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: kubernetes, baseurl: '{}', gpgkey: '{}'}}\n        - {{name: docker-ce, baseurl: '{}', gpgkey: '{}'}}\n        - {{name: base, baseurl: '{}', gpgkey: '{}'}}\n      packages: [{}]\n",
        hex::encode(sha2::Sha256::digest(calico)),
        rpms.repo_url("kubernetes"),
        rpms.key_url("bundle-test"),
        rpms.repo_url("docker-ce"),
        rpms.key_url("bundle-test"),
        rpms.repo_url("base"),
        rpms.key_url("bundle-test-base"),
        HA_PACKAGES.join(", ")
    )
}
