//! `bundle build` behind a corporate proxy: a real tinyproxy, and the build run in a
//! network namespace whose only way out is that proxy, so the registry, the file server
//! and the RPM repo (TLS, through `CONNECT`) are reachable only through it. Checked:
//! a direct build fails, `NO_PROXY` is honoured, the proxy's password never shows, and
//! a proxy that refuses (407, 403 by its ACL, nothing listening) is named with a hint.

mod common;

use std::path::PathBuf;
use std::process::Command;

use bundle_testbed::fixtures::images::{self, Layer, TestImage};
use bundle_testbed::real::nginx::{Nginx, NginxOptions};
use bundle_testbed::real::registry::test_tls;
use bundle_testbed::real::rpms::{createrepo, RpmSpec};
use bundle_testbed::real::tinyproxy::{ProxyOnlyNetns, Tinyproxy, TinyproxyOptions};
use bundle_testbed::{FileServer, Registry};
use common::{Run, Session};

const PASSWORD: &str = "pr0xy-s3cret";

/// The upstreams, all on the machine's 127.0.0.1: a registry with one image, a file
/// server, and a yum repo served by nginx over TLS (its CA passed with `--ca-file`).
struct Upstreams {
    registry: Registry,
    files: FileServer,
    repo: Nginx,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Upstreams {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::start().expect("registry");
        let image = TestImage::new(
            "pause",
            "3.9",
            &[Layer {
                seed: 7,
                size: 256 * 1024,
            }],
        );
        images::seed(&registry.addr, &image, dir.path()).expect("seed");
        let files = FileServer::start().expect("file server");
        files.put("calico.yaml", b"kind: DaemonSet\n");
        let repo = dir.path().join("repo");
        RpmSpec::new("foo", "1.0-1", "x86_64")
            .files(&["/usr/bin/foo"])
            .build(&dir.path().join("rpmbuild"), &repo)
            .unwrap();
        createrepo(&repo).unwrap();
        let tls = test_tls(&dir.path().join("tls"), "127.0.0.1").unwrap();
        let opts = NginxOptions {
            tls: Some((tls.cert.clone(), tls.key.clone())),
            ..Default::default()
        };
        let repo = Nginx::serve(&repo, &opts).expect("nginx");
        Self {
            registry,
            files,
            repo,
            ca: tls.ca,
            _dir: dir,
        }
    }

    fn manifest(&self, with_image: bool) -> String {
        let images = match with_image {
            true => format!("\n    - {}/pause:3.9\n", self.registry.addr),
            false => " []\n".into(),
        };
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: proxied, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  images:{images}  files:\n    - {{name: calico.yaml, url: '{}/calico.yaml', sha256: {}}}\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: corp-base, baseurl: '{}/'}}\n      packages: [foo]\n",
            self.files.url,
            bundle_format::Sha256Digest::of(b"kind: DaemonSet\n").hex(),
            self.repo.url,
        )
    }
}

/// `bundle build` in `ns` with `env`, `-v`.
fn build_in(ns: &ProxyOnlyNetns, s: &Session, up: &Upstreams, env: &[(&str, String)]) -> Run {
    let mut c: Command = ns.command(env!("CARGO_BIN_EXE_bundle"));
    s.prepare(&mut c);
    c.args([
        "-v",
        "build",
        "--manifest",
        "m.yaml",
        "--key",
        "builder.key",
    ])
    .args(["--plain-http", &up.registry.addr, "--ca-file"])
    .arg(&up.ca);
    for (k, v) in env {
        c.env(k, v);
    }
    s.run_command(c)
}

fn bundle(s: &Session) -> PathBuf {
    s.path("bundles/proxied-1.tar.zst")
}

fn session(up: &Upstreams, with_image: bool) -> Session {
    let s = Session::new();
    s.keygen("builder");
    s.write("m.yaml", up.manifest(with_image));
    s
}

#[test]
fn build_reaches_registry_files_and_rpms_only_through_the_proxy_and_never_shows_its_password() {
    let up = Upstreams::start();
    let proxy = Tinyproxy::start(&TinyproxyOptions {
        basic_auth: Some(("alice".into(), PASSWORD.into())),
        ..Default::default()
    })
    .expect("tinyproxy");
    let ns = ProxyOnlyNetns::new(&proxy.addr).expect("namespace");
    let s = session(&up, true);

    // Without the proxy nothing is reachable from the namespace.
    let direct = build_in(&ns, &s, &up, &[]);
    assert_ne!(direct.code, 0, "{}", direct.transcript());
    assert!(
        direct.stderr.contains("onnection refused"),
        "{}",
        direct.stderr
    );
    assert!(!bundle(&s).exists());

    // NO_PROXY sends the upstreams direct again: refused again, the proxy unused.
    let relayed = proxy.relayed();
    let url = format!("http://alice:{PASSWORD}@{}", proxy.addr);
    let bypass = build_in(
        &ns,
        &s,
        &up,
        &[
            ("HTTPS_PROXY", url.clone()),
            ("http_proxy", url.clone()),
            ("NO_PROXY", "127.0.0.1".into()),
        ],
    );
    assert_ne!(bypass.code, 0, "{}", bypass.transcript());
    assert_eq!(proxy.relayed(), relayed, "NO_PROXY bypasses the proxy");

    // Through the proxy (upper case for https, lower case for http): it builds.
    let run = build_in(
        &ns,
        &s,
        &up,
        &[("HTTPS_PROXY", url.clone()), ("http_proxy", url)],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(bundle(&s).exists());
    let log = proxy.log();
    for port in [&up.registry.addr, &up.files.url, &up.repo.url] {
        let port = port.rsplit(':').next().unwrap();
        assert!(
            log.contains(&format!(":{port}")),
            "proxy relayed :{port}:\n{log}"
        );
    }
    assert!(
        log.contains("CONNECT"),
        "the TLS repo went through CONNECT:\n{log}"
    );
    assert!(
        run.stderr.contains(&format!("http://****@{}", proxy.addr)),
        "-v names the proxy, redacted: {}",
        run.stderr
    );
    for (what, text) in [
        ("stderr", run.stderr.clone()),
        (
            "lock",
            std::fs::read_to_string(s.path("m.lock.json")).unwrap(),
        ),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "{what} shows the proxy password: {text}"
        );
    }
}

#[test]
fn build_names_a_proxy_that_wants_other_credentials_refuses_the_host_or_is_not_there() {
    let up = Upstreams::start();
    let authed = Tinyproxy::start(&TinyproxyOptions {
        basic_auth: Some(("alice".into(), PASSWORD.into())),
        ..Default::default()
    })
    .expect("tinyproxy");
    let acl = Tinyproxy::start(&TinyproxyOptions {
        deny_hosts: vec![r"^127\.0\.0\.1$".into()],
        ..Default::default()
    })
    .expect("tinyproxy");
    // tinyproxy answers a wrong password with 401 instead of 407, so the case checked
    // is the one every proxy answers alike: no credentials at all.
    let cases = [
        (
            &authed.addr,
            format!("http://{}", authed.addr),
            "requires authentication (407)",
            "USER:PASSWORD@",
        ),
        (
            &acl.addr,
            format!("http://{}", acl.addr),
            "refused to connect to",
            "ACL",
        ),
        (
            &authed.addr,
            format!("http://alice:{PASSWORD}@127.0.0.1:9"),
            "cannot connect to proxy",
            "NO_PROXY",
        ),
    ];
    for (with_image, (reach, url, message, hint)) in [true, false].into_iter().cycle().zip(cases) {
        let ns = ProxyOnlyNetns::new(reach).expect("namespace");
        let s = session(&up, with_image);
        let run = build_in(
            &ns,
            &s,
            &up,
            &[("HTTPS_PROXY", url.clone()), ("HTTP_PROXY", url)],
        );
        let t = run.transcript();
        assert_eq!(run.code, 1, "{t}");
        assert!(
            run.stderr.contains("is unreachable through the proxy"),
            "{t}"
        );
        assert!(run.stderr.contains(message), "{message}: {t}");
        assert!(
            run.stderr.contains("hint:") && run.stderr.contains(hint),
            "{hint}: {t}"
        );
        assert!(run.stderr.contains("127.0.0.1:"), "names the upstream: {t}");
        assert!(!run.stderr.contains(PASSWORD), "password shown: {t}");
        assert!(!bundle(&s).exists(), "no bundle: {t}");
    }
}

#[test]
fn build_through_a_tls_intercepting_proxy_trusts_its_ca_from_ca_file() {
    use bundle_testbed::real::registry::RegistryOptions;
    use bundle_testbed::real::squid::InterceptingSquid;
    let dir = tempfile::tempdir().unwrap();
    let tls = test_tls(&dir.path().join("tls"), "127.0.0.1").unwrap();
    let registry = Registry::start_with(&RegistryOptions {
        tls: Some((tls.cert.clone(), tls.key.clone())),
        ..Default::default()
    })
    .expect("TLS registry");
    let image = TestImage::new(
        "pause",
        "3.9",
        &[Layer {
            seed: 9,
            size: 128 * 1024,
        }],
    );
    images::seed(&registry.addr, &image, dir.path()).expect("seed");
    let repo = dir.path().join("repo");
    RpmSpec::new("foo", "1.0-1", "x86_64")
        .files(&["/usr/bin/foo"])
        .build(&dir.path().join("rpmbuild"), &repo)
        .unwrap();
    createrepo(&repo).unwrap();
    let nginx = Nginx::serve(
        &repo,
        &NginxOptions {
            tls: Some((tls.cert.clone(), tls.key.clone())),
            ..Default::default()
        },
    )
    .expect("nginx");
    let squid = InterceptingSquid::start(&tls.ca).expect("squid");
    let ns = ProxyOnlyNetns::new(&squid.addr).expect("namespace");
    let s = Session::new();
    s.keygen("builder");
    s.write(
        "m.yaml",
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: proxied, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  images:\n    - {}/pause:3.9\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: corp-base, baseurl: '{}/'}}\n      packages: [foo]\n",
            registry.addr, nginx.url
        ),
    );
    let build = |ca: &PathBuf| {
        let mut c = ns.command(env!("CARGO_BIN_EXE_bundle"));
        s.prepare(&mut c);
        c.args([
            "build",
            "--manifest",
            "m.yaml",
            "--key",
            "builder.key",
            "--ca-file",
        ])
        .arg(ca)
        .env("HTTPS_PROXY", format!("http://{}", squid.addr));
        s.run_command(c)
    };

    // Trusting only the upstreams' CA: the proxy's minted certificate is refused.
    let run = build(&tls.ca);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.transcript()
    );
    assert!(!bundle(&s).exists());

    // With the proxy's CA in --ca-file: pulls and the RPM repo both go through it.
    let run = build(&squid.ca);
    assert_eq!(run.code, 0, "{}\n{}", run.transcript(), squid.log());
    assert!(bundle(&s).exists());
    let log = squid.log();
    for url in [format!("https://{}", registry.addr), nginx.url.clone()] {
        let hostport = url.trim_start_matches("https://");
        assert!(
            log.contains(&format!("CONNECT {hostport}")),
            "squid bumped {hostport}:\n{log}"
        );
    }
}
