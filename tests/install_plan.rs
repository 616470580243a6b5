//! `bundle init` and `bundle install --dry-run --plan-out`: a small signed bundle is
//! built in the test with bundle-format's writer, then planned by the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle_format::index::{
    CniRecord, EntryRecord, FileRecord, ImageRecord, RpmRecord, RpmRepoRecord, SCHEMA_VERSION,
};
use bundle_format::sign::{generate_key_pair, KeyPairPaths, KeyPassword, SecretKey};
use bundle_format::write::{write_bundle, EntrySource, WriteOptions};
use bundle_format::{BundleIndex, EntryPath, Sha256Digest};

const CALICO: &str = include_str!("../installer/tests/fixtures/calico.yaml");
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTestOnlyNotARealCertificate\n-----END CERTIFICATE-----\n";

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn bundle(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bundle"))
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .expect("bundle runs")
    }

    fn plan(&self, out: &str) -> Output {
        self.bundle(&[
            "install",
            "k8s.tar.zst",
            "--inventory",
            "cluster.yaml",
            "--pubkey",
            "k.pub",
            "--dry-run",
            "--plan-out",
            out,
        ])
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

/// A site with a key pair, a signed bundle carrying calico, and an inventory.
fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let s = Site { dir };
    generate_key_pair(&KeyPairPaths::for_prefix(&s.path("k")), None).unwrap();

    let (mut entries, mut sources) = (vec![], vec![]);
    let calico = entry(
        &mut entries,
        &mut sources,
        "files/calico.yaml",
        CALICO.as_bytes(),
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
            size: CALICO.len() as u64,
            sha256: Sha256Digest::of(CALICO.as_bytes()),
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
    let sk = SecretKey::from_file(&s.path("k.key"), KeyPassword::None).unwrap();
    let sig = sk.sign(&index.to_json(), "test bundle").unwrap();
    write_bundle(
        &s.path("k8s.tar.zst"),
        &index,
        Some(&sig),
        &sources,
        WriteOptions::default(),
        &|_| {},
    )
    .unwrap();

    std::fs::write(s.path("harbor-ca.crt"), CA).unwrap();
    std::fs::write(s.path("cluster.yaml"), inventory(1)).unwrap();
    s
}

fn inventory(workers: usize) -> String {
    bundle_testbed::inventories::sample_inventory(3, workers)
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn install_dry_run_writes_plan_host_files_and_owner_only_secrets() {
    let s = site();
    let o = s.plan("plan");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Verified 8 entries of bundle k8s 1.29.2"),
        "{err}"
    );
    assert!(
        err.contains("Generated secrets in plan/secrets.json"),
        "{err}"
    );

    let plan_txt = std::fs::read_to_string(s.path("plan/plan.txt")).unwrap();
    insta::assert_snapshot!("install_plan_txt", plan_txt);

    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan/plan.json")).unwrap()).unwrap();
    assert_eq!(plan["kubeadmApiVersion"], "kubeadm.k8s.io/v1beta3");
    assert_eq!(plan["phases"].as_array().unwrap().len(), 9);
    let lb = &plan["phases"][4]["hosts"][0]["steps"][3];
    assert_eq!(
        (
            lb["kind"].as_str(),
            lb["path"].as_str(),
            lb["mode"].as_str(),
            lb["owner"].as_str()
        ),
        (
            Some("writeFile"),
            Some("/etc/keepalived/keepalived.conf"),
            Some("0600"),
            Some("root:root")
        )
    );

    // Every file each host gets, under its folder.
    let cni = std::fs::read_to_string(s.path("plan/server5/files/etc/kubernetes/bundle/cni.yaml"))
        .unwrap();
    assert!(
        cni.contains("          image: harbor.example.com/calico/node:v3.26.4 # the main agent\n")
    );
    assert!(cni.contains("              value: \"10.244.0.0/16\"\n"));
    assert!(s
        .path("plan/server6/files/etc/haproxy/haproxy.cfg")
        .is_file());
    assert!(s
        .path("plan/server8/files/etc/kubernetes/bundle/kubeadm-join.yaml")
        .is_file());
    assert!(!s.path("plan/server8/files/etc/haproxy").exists());
    let steps = std::fs::read_to_string(s.path("plan/server8/steps.txt")).unwrap();
    assert!(steps.contains("## join\n    [join/config]"), "{steps}");

    // Secrets: owner-only file, and nowhere else.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(s.path("plan/secrets.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let secrets: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan/secrets.json")).unwrap())
            .unwrap();
    assert_eq!(secrets.len(), 3);
    for f in all_files(&s.path("plan"))
        .iter()
        .filter(|f| !f.ends_with("secrets.json"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for v in secrets.values() {
            assert!(!text.contains(v.as_str()), "{} holds a secret", f.display());
        }
    }
    assert!(!err.contains(&secrets["keepalived-auth"]));
}

#[test]
fn install_dry_run_again_keeps_the_secrets_and_the_files() {
    let s = site();
    assert!(s.plan("plan").status.success());
    let read_all = || {
        all_files(&s.path("plan"))
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(&f).unwrap()))
            .collect::<Vec<_>>()
    };
    let first = read_all();
    let o = s.plan("plan");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Kept the secrets of the earlier plan"),
        "{}",
        stderr(&o)
    );
    assert_eq!(first, read_all());
}

#[test]
fn install_rejects_a_tampered_bundle_and_writes_nothing() {
    let s = site();
    // Decompress with the zstd CLI, change one byte of calico.yaml, compress again:
    // a valid archive whose entry no longer matches the signed index.
    let tar = Command::new("zstd")
        .args(["-d", "-c", "k8s.tar.zst"])
        .current_dir(s.dir.path())
        .output()
        .expect("zstd CLI");
    assert!(tar.status.success());
    let mut tar = tar.stdout;
    let at = tar
        .windows(13)
        .rposition(|w| w == b"calico/node:v")
        .unwrap();
    tar[at] = b'k';
    std::fs::write(s.path("k8s.tar"), &tar).unwrap();
    let z = Command::new("zstd")
        .args(["-q", "-f", "k8s.tar", "-o", "k8s.tar.zst"])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(z.status.success(), "{}", stderr(&z));

    let o = s.plan("plan");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: bundle `k8s.tar.zst` failed verification; nothing was planned"),
        "{err}"
    );
    assert!(err.contains("files/calico.yaml"), "{err}");
    assert!(!s.path("plan").exists(), "the plan folder was created");
}

#[test]
fn install_reports_every_inventory_problem_with_its_field() {
    let s = site();
    let bad = inventory(1)
        .replace("name: server8", "name: server6")
        .replace("vip: 172.25.19.100", "vip: 10.96.0.1");
    std::fs::write(s.path("cluster.yaml"), bad).unwrap();
    let o = s.plan("plan");
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("install_inventory_problems", stderr(&o));
    assert!(!s.path("plan").exists());
}

#[test]
fn install_refuses_a_plan_folder_holding_other_files() {
    let s = site();
    std::fs::create_dir(s.path("notes")).unwrap();
    std::fs::write(s.path("notes/todo.txt"), "x").unwrap();
    let o = s.plan("notes");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("error: plan folder `notes` is not empty and holds no earlier plan"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn install_names_an_unreachable_host_and_how_to_check_it() {
    let s = site();
    // Every host is sent to a closed port on 127.0.0.1 by the inventory's ssh config,
    // so no packet leaves the machine.
    std::fs::write(
        s.path("ssh_config"),
        "Host 172.25.19.*\n  HostName 127.0.0.1\n",
    )
    .unwrap();
    let inv = inventory(1).replace(
        "ssh: {user: root, port: 22, identityFile: ~/.ssh/id_ed25519}",
        "ssh: {user: root, port: 1, configFile: ssh_config}",
    );
    std::fs::write(s.path("cluster.yaml"), inv).unwrap();
    let o = s.bundle(&[
        "install",
        "k8s.tar.zst",
        "--inventory",
        "cluster.yaml",
        "--pubkey",
        "k.pub",
        "--skip-push",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: cannot reach `server5` (root@172.25.19.5:1) over ssh: ")
            && err.contains("Connection refused"),
        "{err}"
    );
    assert!(
        err.contains("hint: check the host's address and `spec.ssh.port` (or `proxyJump`), and that sshd runs there"),
        "{err}"
    );
    // Nothing ran: the plan is recorded, no step is.
    assert!(s.path("bundle-state/prod/plan.json").is_file());
    assert!(!s
        .path("bundle-state/prod/_state/records/server5.jsonl")
        .exists());
}

#[test]
fn init_writes_a_template_that_plans_and_refuses_to_overwrite() {
    let s = site();
    let o = s.bundle(&["init", "--output", "new.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let template = std::fs::read_to_string(s.path("new.yaml")).unwrap();
    assert!(template.starts_with("# Cluster inventory for `bundle install`."));
    // The template as written plans against the test bundle.
    let o = s.bundle(&[
        "install",
        "k8s.tar.zst",
        "--inventory",
        "new.yaml",
        "--pubkey",
        "k.pub",
        "--dry-run",
        "--plan-out",
        "p",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = s.bundle(&["init", "--output", "new.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error: `new.yaml` already exists\nhint: pass `--output` with another file name, or remove the file\n");
    assert_eq!(
        std::fs::read_to_string(s.path("new.yaml")).unwrap(),
        template
    );
}
