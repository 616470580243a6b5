//! The RPM step against a real upstream (rpmbuild + rpmsign + createrepo_c, served on
//! 127.0.0.1), judged by the real client: dnf installs the whole package list from the
//! produced repo alone, with gpgcheck=1 and the shipped keys.
//!
//! One test builds the upstream once and walks through the behaviours that share it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bundle_builder::rpm::{
    fetch, RpmError, RpmFetchOptions, RpmOutput, RpmTargetSpec, UpstreamRepo,
};
use bundle_builder::NoReport;
use bundle_format::Hint;
use bundle_testbed::fixtures::ha_repos::{Upstream, HA_PACKAGES};
use bundle_testbed::real::rpms::dnf_install;

fn target(up: &Upstream, packages: &[&str]) -> RpmTargetSpec {
    RpmTargetSpec {
        target: "el9-x86_64".into(),
        releasever: "9".into(),
        arch: "x86_64".into(),
        repos: vec![
            UpstreamRepo {
                name: "kubernetes".into(),
                baseurl: Some(up.repo_url("kubernetes")),
                gpgkey: Some(up.key_url("bundle-test")),
                ..Default::default()
            },
            UpstreamRepo {
                name: "docker-ce".into(),
                baseurl: Some(up.repo_url("docker-ce")),
                gpgkey: Some(up.key_url("bundle-test")),
                ..Default::default()
            },
            UpstreamRepo {
                name: "base".into(),
                baseurl: Some(up.repo_url("base")),
                gpgkey: Some(up.key_url("bundle-test-base")),
                ..Default::default()
            },
        ],
        packages: packages.iter().map(|s| s.to_string()).collect(),
        exclude: vec![],
        modules: vec![],
    }
}

fn options(dir: &Path, locked: Option<Vec<bundle_format::RpmRepoRecord>>) -> RpmFetchOptions {
    RpmFetchOptions {
        cache_dir: dir.join("cache"),
        work_dir: dir.join("work"),
        http: Default::default(),
        jobs: 4,
        locked,
    }
}

/// Copies the entries into `dir` under their entry paths, checking size and digest.
fn materialize(out: &RpmOutput, dir: &Path) {
    for (entry, file) in &out.entries {
        let f = std::fs::File::open(file).unwrap();
        let (digest, size) = bundle_format::digest::hash_reader(f).unwrap();
        assert_eq!(
            (digest, size),
            (entry.sha256, entry.size),
            "entry `{}` is exact",
            entry.path.as_str()
        );
        let dest = dir.join(entry.path.as_str());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(file, dest).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_repo_from_three_upstreams_installs_with_dnf_gpgcheck() {
    let up = Upstream::ha().expect("upstream fixture");
    let tmp = tempfile::tempdir().unwrap();
    let spec = target(&up, HA_PACKAGES);

    let out = fetch(
        std::slice::from_ref(&spec),
        &options(tmp.path(), None),
        &NoReport,
    )
    .await
    .expect("fetch");
    assert_eq!(out.records.len(), 1);
    let record = &out.records[0];
    let nevras: BTreeSet<String> = record.packages.iter().map(|p| p.nevra.clone()).collect();
    let expect = [
        // The pins decide among several versions.
        "kubeadm-1.29.2-150500.1.1.x86_64",
        "kubelet-1.29.2-150500.1.1.x86_64",
        "kubectl-1.29.2-150500.1.1.x86_64",
        "cri-tools-1.29.0-150500.1.1.x86_64",
        "kubernetes-cni-1.3.0-150500.1.1.x86_64",
        // The epoch beats the higher version.
        "containerd.io-1:1.6.20-3.1.x86_64",
        // A chain across repos, through a virtual provide.
        "container-selinux-2:2.229.0-1.el9.noarch",
        "selinux-policy-targeted-38.1.35-2.el9.noarch",
        "policycoreutils-3.6-2.1.el9.x86_64",
        // A file provide in primary, and one only filelists lists.
        "conntrack-tools-1.4.7-2.el9.x86_64",
        "libnetfilter_conntrack-1.0.9-1.el9.x86_64",
        "haproxy-2.4.22-3.el9.x86_64",
        "haproxy-lua-2.4.22-3.el9.x86_64",
        // Only the older release meets `libnl3 < 3.8`.
        "keepalived-2.2.8-3.el9.x86_64",
        "libnl3-3.7.0-1.el9.x86_64",
        // The boolean dependency takes its first alternative.
        "iptables-nft-1.8.10-2.el9.x86_64",
        "socat-1.7.4.1-5.el9.x86_64",
        "ipvsadm-1.31-6.el9.x86_64",
        "ipset-7.11-8.el9.x86_64",
        "ipset-libs-7.11-8.el9.x86_64",
        "iproute-6.2.0-5.el9.x86_64",
        "iproute-tc-6.2.0-5.el9.x86_64",
    ];
    assert_eq!(
        nevras,
        expect
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    let kubeadm = record
        .packages
        .iter()
        .find(|p| p.name == "kubeadm")
        .unwrap();
    assert_eq!(kubeadm.source_repo, "kubernetes");
    assert_eq!(
        kubeadm.path.as_str(),
        "rpms/el9-x86_64/Packages/kubeadm-1.29.2-150500.1.1.x86_64.rpm"
    );
    let keys: Vec<&str> = record.gpg_keys.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "rpms/el9-x86_64/keys/kubernetes.asc",
            "rpms/el9-x86_64/keys/docker-ce.asc",
            "rpms/el9-x86_64/keys/base.asc"
        ]
    );
    assert!(out
        .entries
        .iter()
        .all(|(e, _)| e.path.as_str().starts_with("rpms/el9-x86_64/")));
    assert!(out
        .entries
        .iter()
        .any(|(e, _)| e.path.as_str() == "rpms/el9-x86_64/repodata/repomd.xml"));

    // The real client decides: only this repo, gpgcheck=1 with the shipped keys.
    let bundle = tmp.path().join("bundle");
    materialize(&out, &bundle);
    let repo = bundle.join("rpms/el9-x86_64");
    let keys: Vec<PathBuf> = record
        .gpg_keys
        .iter()
        .map(|k| bundle.join(k.as_str()))
        .collect();
    let installed =
        dnf_install(&tmp.path().join("dnf"), &repo, &keys, HA_PACKAGES).expect("dnf install");
    assert_eq!(
        installed.into_iter().collect::<BTreeSet<_>>(),
        nevras,
        "rpm -qa shows exactly the carried packages"
    );

    // gpgcheck is real: without the key of `base`, dnf refuses its packages.
    let err = dnf_install(
        &tmp.path().join("dnf-one-key"),
        &repo,
        &keys[..1],
        &["keepalived"],
    )
    .expect_err("dnf must refuse packages signed with a key it was not given");
    assert!(err.to_string().contains("keepalived"), "{err}");

    // A second build is served from the cache: no package is downloaded again, and the
    // repodata is byte-identical.
    let before = up.server.requests().len();
    let again = fetch(
        std::slice::from_ref(&spec),
        &options(tmp.path(), None),
        &NoReport,
    )
    .await
    .expect("cached fetch");
    let rpm_gets: Vec<String> = up.server.requests()[before..]
        .iter()
        .filter(|r| r.ends_with(".rpm"))
        .cloned()
        .collect();
    assert!(
        rpm_gets.is_empty(),
        "cached packages fetched again: {rpm_gets:?}"
    );
    assert_eq!(again.records, out.records);
    let digests = |o: &RpmOutput| {
        o.entries
            .iter()
            .map(|(e, _)| (e.path.clone(), e.sha256))
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&again), digests(&out), "rebuild is reproducible");

    // `--locked` with the same picks passes; a pin that moves off the lock fails.
    fetch(
        std::slice::from_ref(&spec),
        &options(tmp.path(), Some(out.records.clone())),
        &NoReport,
    )
    .await
    .expect("locked fetch");
    let mut moved: Vec<&str> = HA_PACKAGES.to_vec();
    moved[0] = "kubeadm-1.29.3";
    moved[1] = "kubelet-1.29.3";
    moved[2] = "kubectl-1.29.3";
    let err = fetch(
        &[target(&up, &moved)],
        &options(tmp.path(), Some(out.records.clone())),
        &NoReport,
    )
    .await
    .err()
    .expect("lock mismatch");
    assert!(matches!(err, RpmError::LockMismatch { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "target `el9-x86_64`: package `kubeadm` is locked at `kubeadm-1.29.2-150500.1.1.x86_64` but upstream now gives `kubeadm-1.29.3-150500.1.1.x86_64` (and 2 more differences)"
    );
    assert!(err.hint().unwrap().contains("--locked"));

    // The tampered package of the signed repo is refused, by name.
    let err = fetch(
        &[target(&up, &["kubectl-1.28.9"])],
        &options(tmp.path(), None),
        &NoReport,
    )
    .await
    .err()
    .expect("tampered");
    let msg = err.to_string();
    assert!(
        msg.starts_with("package `kubectl-1.28.9-150500.1.1.x86_64` from repo `kubernetes` has a bad signature: payload digest"),
        "{msg}"
    );
}
