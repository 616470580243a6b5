//! A real containerd pulls through the `hosts.toml` files the install writes, from a
//! real registry of each kind a site has: plain HTTP (`registry.plainHttp`), an
//! `openssl req -x509` certificate given as `caFile`, a certificate signed by a CA
//! given as `caFile`; and one whose certificate nobody gave is still refused.
//!
//! containerd (Debian's 1.6) runs with its own root, state and socket in a temporary
//! folder, its CRI plugin off (there is no kubelet here); `ctr content fetch
//! --hosts-dir` resolves and fetches through the same `hosts.toml` reading the CRI
//! plugin does. The files are written under a temporary folder instead of
//! `/etc/containerd/certs.d`, with their `ca = …` paths moved along; nothing else in
//! them changes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bundle_installer::render::containerd;
use bundle_installer::Cluster;
use bundle_testbed::fixtures::images::{seed, Layer, SeededImage, TestImage};
use bundle_testbed::real::registry::{self as real_registry, Registry, RegistryOptions};

/// A containerd daemon of the test's own, stopped by PID on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{d}/containerd.sock\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (scripts/setup)");
        let c = Containerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr content fetch --hosts-dir DIR REF`: the content's digests it holds after.
    fn fetch(&self, hosts_dir: &Path, reference: &str) -> Output {
        self.ctr(&[
            "content",
            "fetch",
            "--hosts-dir",
            hosts_dir.to_str().unwrap(),
            reference,
        ])
    }

    fn holds(&self, digest: &str) -> bool {
        let o = self.ctr(&["content", "ls", "-q"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == digest)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample inventory with its `registry:` line replaced.
fn cluster_with_registry(registry: &str) -> Cluster {
    let yaml = common::inventory_yaml(3, 1);
    let line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("registry:"))
        .expect("the sample inventory has a registry line");
    common::cluster_from(&yaml.replace(line, &format!("  registry: {registry}")))
}

/// Writes the install's `hosts.toml` files (and the CA, as the `containerd` phase
/// does) under `root` instead of `/etc/containerd/certs.d`.
fn write_hosts_dir(cluster: &Cluster, ca: Option<&Path>, root: &Path) {
    let moved = |text: &str| text.replace(containerd::CERTS_D, root.to_str().unwrap());
    for (path, content) in containerd::hosts_files(cluster, ca.is_some()) {
        let path = PathBuf::from(moved(&path));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, moved(&content)).unwrap();
    }
    if let Some(ca) = ca {
        let path = PathBuf::from(moved(&containerd::ca_path(cluster)));
        std::fs::copy(ca, path).unwrap();
    }
}

/// The client certificate and key where the `containerd` phase writes them.
fn write_client_identity(cluster: &Cluster, cert: &Path, key: &Path, root: &Path) {
    let (cert_path, key_path) = containerd::client_paths(cluster);
    let moved = |p: &str| PathBuf::from(p.replace(containerd::CERTS_D, root.to_str().unwrap()));
    std::fs::copy(cert, moved(&cert_path)).unwrap();
    std::fs::copy(key, moved(&key_path)).unwrap();
}

/// A small image at `k8s/pause:3.9`, where `bundle push` puts `registry.k8s.io/pause`.
fn seed_pause(registry: &Registry, work: &Path) -> SeededImage {
    let image = TestImage::new(
        "k8s/pause",
        "3.9",
        &[Layer {
            seed: 7,
            size: 64 * 1024,
        }],
    );
    seed(&registry.addr, &image, work).unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fetches the image by its registry name and by its upstream name (through the
/// `registry.k8s.io` mirror file), and checks every blob arrived.
fn assert_pulls_through_hosts_toml(
    ctr: &Containerd,
    hosts: &Path,
    registry: &Registry,
    seeded: &SeededImage,
) {
    let direct = format!("{}/k8s/pause:3.9", registry.addr);
    let o = ctr.fetch(hosts, &direct);
    assert!(o.status.success(), "ctr fetch {direct}: {}", text(&o));
    for blob in &seeded.blobs {
        assert!(ctr.holds(blob), "{blob} missing after fetching {direct}");
    }
    // The mirror: no route to registry.k8s.io here, so only the rendered mirror
    // entry (`/v2/k8s` with override_path) can answer.
    let o = ctr.fetch(hosts, "registry.k8s.io/pause:3.9");
    assert!(
        o.status.success(),
        "registry.k8s.io/pause:3.9 through the mirror: {}",
        text(&o)
    );
}

#[test]
fn containerd_pulls_from_a_plain_http_registry_through_the_rendered_hosts_toml() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start().unwrap();
    let seeded = seed_pause(&registry, work.path());
    let cluster =
        cluster_with_registry(&format!("{{host: \"{}\", plainHttp: true}}", registry.addr));
    let hosts = work.path().join("certs.d");
    write_hosts_dir(&cluster, None, &hosts);
    let own = std::fs::read_to_string(hosts.join(&registry.addr).join("hosts.toml")).unwrap();
    assert!(
        own.contains(&format!("[host.\"http://{}\"]", registry.addr)),
        "{own}"
    );

    let ctr = Containerd::start();
    assert_pulls_through_hosts_toml(&ctr, &hosts, &registry, &seeded);
}

#[test]
fn containerd_pulls_from_a_registry_with_a_self_signed_certificate_given_as_ca_file() {
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = real_registry::self_signed(work.path(), "harbor", "IP:127.0.0.1").unwrap();
    let registry = registry_serving(&cert, &key);
    let seeded = seed_pause(&registry, work.path());
    let cluster = cluster_with_registry(&format!(
        "{{host: \"{}\", caFile: harbor.crt}}",
        registry.addr
    ));
    let hosts = work.path().join("certs.d");
    write_hosts_dir(&cluster, Some(&cert), &hosts);

    let ctr = Containerd::start();
    assert_pulls_through_hosts_toml(&ctr, &hosts, &registry, &seeded);
}

#[test]
fn containerd_pulls_from_a_registry_whose_certificate_a_ca_file_signed() {
    let work = tempfile::tempdir().unwrap();
    let tls = real_registry::test_tls(&work.path().join("tls"), "127.0.0.1").unwrap();
    let registry = registry_serving(&tls.cert, &tls.key);
    let seeded = seed_pause(&registry, work.path());
    let cluster =
        cluster_with_registry(&format!("{{host: \"{}\", caFile: ca.crt}}", registry.addr));
    let hosts = work.path().join("certs.d");
    write_hosts_dir(&cluster, Some(&tls.ca), &hosts);

    let ctr = Containerd::start();
    assert_pulls_through_hosts_toml(&ctr, &hosts, &registry, &seeded);
}

#[test]
fn containerd_still_refuses_a_certificate_nobody_gave_and_a_plain_http_file_for_a_tls_registry() {
    let work = tempfile::tempdir().unwrap();
    let (cert, key) = real_registry::self_signed(work.path(), "harbor", "IP:127.0.0.1").unwrap();
    let registry = registry_serving(&cert, &key);
    let seeded = seed_pause(&registry, work.path());
    let ctr = Containerd::start();
    let direct = format!("{}/k8s/pause:3.9", registry.addr);

    // No caFile: the hosts.toml names no CA, and the system roots do not hold it.
    let cluster = cluster_with_registry(&format!("{{host: \"{}\"}}", registry.addr));
    let untrusted = work.path().join("untrusted");
    write_hosts_dir(&cluster, None, &untrusted);
    let o = ctr.fetch(&untrusted, &direct);
    assert!(
        !o.status.success(),
        "fetched without trusting: {}",
        text(&o)
    );
    assert!(text(&o).contains("x509"), "{}", text(&o));

    // plainHttp for a registry that speaks TLS: refused, not silently upgraded.
    let cluster =
        cluster_with_registry(&format!("{{host: \"{}\", plainHttp: true}}", registry.addr));
    let plain = work.path().join("plain");
    write_hosts_dir(&cluster, None, &plain);
    let o = ctr.fetch(&plain, &direct);
    assert!(!o.status.success(), "fetched over HTTP from a TLS registry");

    for blob in &seeded.blobs {
        assert!(
            !ctr.holds(blob),
            "{blob} arrived although every fetch failed"
        );
    }
}

#[test]
fn containerd_presents_the_client_certificate_a_registry_requires() {
    let work = tempfile::tempdir().unwrap();
    let tls = real_registry::test_tls(&work.path().join("tls"), "127.0.0.1").unwrap();
    let registry = Registry::start_with(&RegistryOptions {
        tls: Some((tls.cert.clone(), tls.key.clone())),
        client_ca: Some(tls.ca.clone()),
        ..RegistryOptions::default()
    })
    .unwrap();
    let client = work.path().join("client");
    let (cert, key) = real_registry::client_cert(&tls, &client).unwrap();
    // skopeo seeds it with the same identity (and the CA) from one folder.
    std::fs::copy(&tls.ca, client.join("ca.crt")).unwrap();
    let image = TestImage::new(
        "k8s/pause",
        "3.9",
        &[Layer {
            seed: 9,
            size: 32 * 1024,
        }],
    );
    let seeded = bundle_testbed::images::seed_with(
        &registry.addr,
        &image,
        work.path(),
        &["--dest-cert-dir", client.to_str().unwrap()],
    )
    .unwrap();

    let cluster = cluster_with_registry(&format!(
        "{{host: \"{}\", caFile: ca.crt, clientCertFile: client.cert, clientKeyFile: client.key}}",
        registry.addr
    ));
    let own = &containerd::hosts_files(&cluster, true)[0].1;
    assert!(
        own.contains("  client = [[\"/etc/containerd/certs.d/"),
        "{own}"
    );
    let ctr = Containerd::start();

    // The CA alone is not enough: the registry wants the certificate.
    let ca_only =
        cluster_with_registry(&format!("{{host: \"{}\", caFile: ca.crt}}", registry.addr));
    let without = work.path().join("without");
    write_hosts_dir(&ca_only, Some(&tls.ca), &without);
    let o = ctr.fetch(&without, &format!("{}/k8s/pause:3.9", registry.addr));
    assert!(!o.status.success(), "fetched without a client certificate");
    assert!(!ctr.holds(&seeded.digest));

    let hosts = work.path().join("certs.d");
    write_hosts_dir(&cluster, Some(&tls.ca), &hosts);
    write_client_identity(&cluster, &cert, &key, &hosts);
    assert_pulls_through_hosts_toml(&ctr, &hosts, &registry, &seeded);
}

fn registry_serving(cert: &Path, key: &Path) -> Registry {
    Registry::start_with(&RegistryOptions {
        tls: Some((cert.into(), key.into())),
        ..RegistryOptions::default()
    })
    .unwrap()
}
