//! `bundle build` with `spec.rpms`: the whole chain through the CLI — upstream yum
//! repos built with rpmbuild and served on 127.0.0.1, the bundle verified, extracted
//! with tar, and dnf (only that repo enabled, gpgcheck=1 with the shipped keys)
//! installing the pinned package list into a fresh root.

mod common;

use bundle_testbed::fixtures::ha_repos::{Upstream, HA_PACKAGES};
use bundle_testbed::real::rpms::dnf_install;
use common::{tool, Session};

#[test]
fn build_carries_rpms_that_dnf_installs_from_the_extracted_bundle() {
    let up = Upstream::ha().expect("upstream repos");
    let s = Session::new();
    s.keygen("builder");
    let packages = HA_PACKAGES.join(", ");
    let manifest = format!(
        "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: rpms-only, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: kubernetes, baseurl: '{k}', gpgkey: '{key}'}}\n        - {{name: docker-ce, baseurl: '{d}', gpgkey: '{key}'}}\n        - {{name: base, baseurl: '{b}', gpgkey: '{bkey}'}}\n      packages: [{packages}]\n",
        k = up.repo_url("kubernetes"),
        d = up.repo_url("docker-ce"),
        b = up.repo_url("base"),
        key = up.key_url("bundle-test"),
        bkey = up.key_url("bundle-test-base"),
    );
    s.write("rpms.yaml", manifest);
    let run = s.run(&["build", "--manifest", "rpms.yaml", "--key", "builder.key"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let bundle = s.path("bundles/rpms-only-1.tar.zst");

    let run = s.run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--pubkey",
        "builder.pub",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    // inspect lists the packages per target, with the pinned versions.
    let run = s.run(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("rpms el9-x86_64 (releasever 9, x86_64;"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("kubeadm-1.29.2-"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("kubeadm-1.29.3"),
        "the pin decides, not the newest: {}",
        run.stdout
    );

    // The lock records every NEVRA.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("rpms.lock.json")).unwrap()).unwrap();
    let locked: Vec<&str> = lock["rpms"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nevra"].as_str().unwrap())
        .collect();
    assert!(
        locked.iter().any(|n| n.starts_with("kubelet-1.29.2-")),
        "{locked:?}"
    );

    // Extracted with tar, the repo is a yum repo dnf installs from, signatures checked.
    let ex = s.path("extracted");
    std::fs::create_dir_all(&ex).unwrap();
    let (code, out) = tool(
        "tar",
        &[
            "-I",
            "zstd",
            "-xf",
            bundle.to_str().unwrap(),
            "-C",
            ex.to_str().unwrap(),
        ],
        &ex,
    );
    assert_eq!(code, 0, "{out}");
    let repo = ex.join("rpms/el9-x86_64");
    let keys: Vec<_> = std::fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 3, "one key per upstream repo: {keys:?}");
    let scratch = tempfile::tempdir().unwrap();
    let installed = dnf_install(scratch.path(), &repo, &keys, HA_PACKAGES)
        .expect("dnf install from the bundle's repo");
    for pinned in [
        "kubeadm-1.29.2-",
        "kubelet-1.29.2-",
        "kubectl-1.29.2-",
        "cri-tools-1.29.0-",
        "kubernetes-cni-1.3.0-",
    ] {
        assert!(
            installed.iter().any(|p| p.starts_with(pinned)),
            "{pinned} installed: {installed:?}"
        );
    }
}
