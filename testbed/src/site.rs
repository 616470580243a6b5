//! A site a test can plan an install for, without a network: a signed bundle the
//! installer accepts (calico, the HA package set as stand-in RPM files, the images
//! kubeadm needs recorded by digest), its key pair, the registry's CA file and an
//! inventory. The CLI plan tests and the attack tests start from it.

use std::path::{Path, PathBuf};

use bundle_format::index::{
    CniRecord, EntryRecord, FileRecord, ImageRecord, RpmRecord, RpmRepoRecord, SCHEMA_VERSION,
};
use bundle_format::sign::{generate_key_pair, KeyPairPaths, KeyPassword, SecretKey};
use bundle_format::write::{write_bundle, EntrySource, WriteOptions};
use bundle_format::{BundleIndex, EntryPath, Sha256Digest};

/// The calico manifest the site's bundle carries (the upstream v3.26.4 file).
pub const SITE_CALICO: &str = include_str!("../../installer/tests/fixtures/calico.yaml");
/// The registry CA file the site's inventory names (not a real certificate).
pub const SITE_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTestOnlyNotARealCertificate\n-----END CERTIFICATE-----\n";

/// Writes into `dir` what a test needs to plan an install: a key pair (`k.key`,
/// `k.pub`), `k8s.tar.zst` signed by it (calico, the HA RPMs as stand-in files, the
/// images kubeadm needs as records only), `harbor-ca.crt` and `cluster.yaml` (3 masters,
/// `workers` workers). Returns the bundle's path.
pub fn write_plannable_site(dir: &Path, workers: usize) -> PathBuf {
    generate_key_pair(&KeyPairPaths::for_prefix(&dir.join("k")), None).unwrap();

    let (mut entries, mut sources) = (vec![], vec![]);
    let calico = entry(
        &mut entries,
        &mut sources,
        "files/calico.yaml",
        SITE_CALICO.as_bytes(),
    );
    let packages = vec![
        rpm(
            &mut entries,
            &mut sources,
            "kubeadm",
            "1.29.2",
            "150500.1.1",
        ),
        rpm(
            &mut entries,
            &mut sources,
            "kubelet",
            "1.29.2",
            "150500.1.1",
        ),
        rpm(
            &mut entries,
            &mut sources,
            "kubectl",
            "1.29.2",
            "150500.1.1",
        ),
        rpm(
            &mut entries,
            &mut sources,
            "containerd.io",
            "1.6.28",
            "3.1.el9",
        ),
        rpm(&mut entries, &mut sources, "haproxy", "2.4.22", "3.el9_3"),
        rpm(&mut entries, &mut sources, "keepalived", "2.2.8", "3.el9"),
    ];
    let key = entry(
        &mut entries,
        &mut sources,
        "rpms/el9-x86_64/keys/RPM-GPG-KEY-kubernetes",
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
    );
    let images = [
        "registry.k8s.io/kube-apiserver:v1.29.2",
        "registry.k8s.io/kube-controller-manager:v1.29.2",
        "registry.k8s.io/kube-scheduler:v1.29.2",
        "registry.k8s.io/kube-proxy:v1.29.2",
        "registry.k8s.io/etcd:3.5.10-0",
        "registry.k8s.io/coredns/coredns:v1.11.1",
        "registry.k8s.io/pause:3.9",
        "docker.io/calico/cni:v3.26.4",
        "docker.io/calico/node:v3.26.4",
        "docker.io/calico/kube-controllers:v3.26.4",
    ]
    .iter()
    .map(|r| ImageRecord {
        reference: r.parse().unwrap(),
        digest: Sha256Digest::of(r.as_bytes()),
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        platforms: vec!["linux/amd64".into()],
        source_digest: None,
        size: 1,
    })
    .collect();
    let index = BundleIndex {
        schema_version: SCHEMA_VERSION,
        name: "k8s".into(),
        version: "1.29.2".into(),
        created: "2026-01-01T00:00:00Z".into(),
        generator: "test".into(),
        kubernetes_version: Some("v1.29.2".into()),
        cni: Some(CniRecord {
            name: "calico".into(),
            manifest: "calico.yaml".into(),
        }),
        images,
        files: vec![FileRecord {
            name: "calico.yaml".into(),
            url: "https://example.invalid/calico.yaml".into(),
            path: calico,
            size: SITE_CALICO.len() as u64,
            sha256: Sha256Digest::of(SITE_CALICO.as_bytes()),
        }],
        rpms: vec![RpmRepoRecord {
            target: "el9-x86_64".into(),
            releasever: "9".into(),
            arch: "x86_64".into(),
            packages,
            gpg_keys: vec![key],
        }],
        entries,
    };
    let sk = SecretKey::from_file(&dir.join("k.key"), KeyPassword::None).unwrap();
    let sig = sk.sign(&index.to_json(), "test bundle").unwrap();
    let bundle = dir.join("k8s.tar.zst");
    write_bundle(
        &bundle,
        &index,
        Some(&sig),
        &sources,
        WriteOptions::default(),
        &|_| {},
    )
    .unwrap();

    std::fs::write(dir.join("harbor-ca.crt"), SITE_CA).unwrap();
    std::fs::write(
        dir.join("cluster.yaml"),
        crate::inventories::sample_inventory(3, workers),
    )
    .unwrap();
    bundle
}

fn entry(
    entries: &mut Vec<EntryRecord>,
    sources: &mut Vec<EntrySource>,
    path: &str,
    data: &[u8],
) -> EntryPath {
    let p = EntryPath::new(path).unwrap();
    entries.push(EntryRecord {
        path: p.clone(),
        size: data.len() as u64,
        sha256: Sha256Digest::of(data),
    });
    sources.push(EntrySource::Bytes(data.to_vec()));
    p
}

fn rpm(
    entries: &mut Vec<EntryRecord>,
    sources: &mut Vec<EntrySource>,
    name: &str,
    version: &str,
    release: &str,
) -> RpmRecord {
    let nevra = format!("{name}-{version}-{release}.x86_64");
    let data = format!("not really an rpm: {nevra}");
    let path = entry(
        entries,
        sources,
        &format!("rpms/el9-x86_64/Packages/{nevra}.rpm"),
        data.as_bytes(),
    );
    RpmRecord {
        nevra,
        name: name.into(),
        epoch: 0,
        version: version.into(),
        release: release.into(),
        arch: "x86_64".into(),
        path,
        size: data.len() as u64,
        sha256: Sha256Digest::of(data.as_bytes()),
        source_repo: "kubernetes".into(),
    }
}
