//! `bundle build` pulling from registries as they are on the connected side: logins
//! per registry (docker's `config.json` auths and credential helpers, podman's
//! `auth.json`, `--registry-login`), a token realm (the Harbor stand-in), Docker Hub's
//! rate limit (429 with `Retry-After`, from the fault proxy), and TLS with a
//! self-signed certificate the user trusts. Every upstream is a real `docker-registry`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use bundle_testbed::doubles::harbor::{HarborOptions, HarborStandIn, HarborUser};
use bundle_testbed::fixtures::images::{self, Layer, TestImage};
use bundle_testbed::real::proxy::{Fault, FaultPattern, Proxy};
use bundle_testbed::real::registry::{self as real_registry, RegistryOptions};
use bundle_testbed::Registry;
use common::{Run, Session};

const PAUSE: &str = "registry.k8s.io/pause:3.9";
const NODE: &str = "docker.io/calico/node:v3.26.4";

fn pause() -> TestImage {
    TestImage::new(
        "pause",
        "3.9",
        &[Layer {
            seed: 11,
            size: 40_000,
        }],
    )
}

fn node() -> TestImage {
    TestImage::new(
        "calico/node",
        "v3.26.4",
        &[
            Layer {
                seed: 12,
                size: 60_000,
            },
            Layer {
                seed: 13,
                size: 20_000,
            },
        ],
    )
}

/// Copies `image` into the registry at `addr`, logging in with `creds` when given.
fn seed(addr: &str, image: &TestImage, creds: Option<(&str, &str)>) {
    let work = tempfile::tempdir().unwrap();
    let login = creds.map(|(u, p)| format!("--dest-creds={u}:{p}"));
    let opts: Vec<&str> = login.iter().map(String::as_str).collect();
    images::seed_with(addr, image, work.path(), &opts).expect("seed");
}

fn basic_registry(user: &str, password: &str) -> Registry {
    Registry::start_with(&RegistryOptions {
        basic_auth: Some((user.into(), password.into())),
        ..Default::default()
    })
    .unwrap()
}

/// A user's machine: a key, a docker config folder, a podman auth file, a certs.d root
/// and a folder of credential helpers on PATH, all its own.
struct Builder {
    s: Session,
}

impl Builder {
    fn new() -> Self {
        let s = Session::new();
        s.keygen("builder");
        std::fs::create_dir_all(s.dir.path().join("docker")).unwrap();
        std::fs::create_dir_all(s.dir.path().join("helpers")).unwrap();
        Self { s }
    }

    fn docker_config(&self, json: serde_json::Value) {
        let path = self.s.dir.path().join("docker/config.json");
        std::fs::write(path, json.to_string()).unwrap();
    }

    fn podman_auth(&self, json: serde_json::Value) {
        std::fs::write(self.auth_file(), json.to_string()).unwrap();
    }

    fn auth_file(&self) -> PathBuf {
        self.s.dir.path().join("auth.json")
    }

    fn certs_d(&self) -> PathBuf {
        self.s.dir.path().join("certs.d")
    }

    /// `docker-credential-NAME` on the build's PATH: a shell script speaking the
    /// helper protocol (`get`, server URL on stdin), logging each server asked for.
    fn helper(&self, name: &str, body: &str) {
        let log = self.helper_log(name);
        let script = format!(
            "#!/bin/sh\nread -r server\necho \"$server\" >> {}\n{body}\n",
            log.display()
        );
        let path = self
            .s
            .dir
            .path()
            .join(format!("helpers/docker-credential-{name}"));
        std::fs::write(&path, script).unwrap();
        let chmod = std::process::Command::new("chmod")
            .args(["+x", path.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chmod.success());
    }

    fn helper_log(&self, name: &str) -> PathBuf {
        self.s.dir.path().join(format!("helpers/{name}.log"))
    }

    fn helper_asked(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.helper_log(name))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn bundle(&self) -> PathBuf {
        self.s.path("bundles/pulls-1.tar.zst")
    }

    /// `bundle build` of `images`, each upstream mirrored to a local registry spoken to
    /// over plain HTTP unless it is in `tls`.
    fn build(
        &self,
        images: &[&str],
        mirrors: &[(&str, &str)],
        extra: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Run {
        let list: String = images.iter().map(|i| format!("    - {i}\n")).collect();
        self.s.write(
            "m.yaml",
            format!("apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata:\n  name: pulls\n  version: \"1\"\nspec:\n  kubernetesVersion: v1.29.2\n  platforms: [linux/amd64]\n  images:\n{list}"),
        );
        let mut args = vec!["build", "--manifest", "m.yaml", "--key", "builder.key"];
        let mirror_args: Vec<String> = mirrors.iter().map(|(f, t)| format!("{f}={t}")).collect();
        for m in &mirror_args {
            args.extend(["--mirror", m.as_str()]);
        }
        args.extend_from_slice(extra);
        let path = format!(
            "{}:{}",
            self.s.dir.path().join("helpers").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = self.s.command(&args);
        cmd.env("DOCKER_CONFIG", self.s.dir.path().join("docker"))
            .env("REGISTRY_AUTH_FILE", self.auth_file())
            .env("BUNDLE_CERTS_D", self.certs_d())
            .env("PATH", path)
            .env_remove("BUNDLE_REGISTRY_USERNAME")
            .env_remove("BUNDLE_REGISTRY_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run bundle");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // A build refused before it reads stdin closes the pipe: not the test's error.
            let _ = input.write_all(text.as_bytes());
        }
        drop(input);
        Run::from(child.wait_with_output().unwrap(), &self.s)
    }

    /// A failed build left no bundle, no lock and no half-fetched blob.
    fn assert_wrote_nothing(&self) {
        assert!(!self.s.path("bundles").exists(), "no bundle folder");
        assert!(!self.s.path("m.lock.json").exists(), "no lock");
        assert_eq!(partials(&self.s.cache()), Vec::<PathBuf>::new());
    }

    /// `secret` appears in neither the output nor the lock.
    fn assert_kept_secret(&self, run: &Run, secret: &str) {
        assert!(!run.stderr.contains(secret), "{}", run.stderr);
        assert!(!run.stdout.contains(secret), "{}", run.stdout);
        let lock = std::fs::read_to_string(self.s.path("m.lock.json")).unwrap_or_default();
        assert!(!lock.contains(secret), "{lock}");
    }
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(partials(&path));
        } else if path.to_string_lossy().ends_with(".partial") {
            found.push(path);
        }
    }
    found
}

fn assert_says(run: &Run, text: &str) {
    assert!(
        run.stderr.contains(text),
        "wanted {text:?} in:\n{}",
        run.transcript()
    );
}

fn basic_auth(user: &str, password: &str) -> String {
    use std::process::Command;
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("printf '%s' '{user}:{password}' | base64 -w0"),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn harbor(user: &str, password: &str, project: &str) -> HarborStandIn {
    HarborStandIn::start(&HarborOptions {
        users: vec![HarborUser::new(user, password, false)],
        projects: vec![project.into()],
        first_token_dies: false,
    })
    .unwrap()
}

#[test]
fn build_pulls_each_registry_with_its_own_stored_login_from_auths_or_a_credential_helper() {
    let plain = basic_registry("alice", "alice-Secret-1");
    seed(&plain.addr, &pause(), Some(("alice", "alice-Secret-1")));
    let hub = harbor("bob", "bob-Secret-2", "calico");
    seed(&hub.addr, &node(), Some(("bob", "bob-Secret-2")));
    let b = Builder::new();
    b.docker_config(serde_json::json!({
        "auths": { plain.addr.as_str(): { "auth": basic_auth("alice", "alice-Secret-1") } },
        "credHelpers": { hub.addr.as_str(): "corp" },
    }));
    b.helper(
        "corp",
        &format!(
            "if [ \"$server\" = \"{}\" ]; then printf '{{\"ServerURL\":\"%s\",\"Username\":\"bob\",\"Secret\":\"bob-Secret-2\"}}' \"$server\"; else echo 'credentials not found in native keychain'; exit 1; fi",
            hub.addr
        ),
    );
    let run = b.build(
        &[PAUSE, NODE],
        &[("registry.k8s.io", &plain.addr), ("docker.io", &hub.addr)],
        &["--plain-http", &plain.addr, "--plain-http", &hub.addr],
        // Every log line there is, so that none can carry a secret unseen.
        &[("BUNDLE_LOG", "trace")],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(b.bundle().exists());
    assert_says(
        &run,
        &format!(
            "registry `{}`: account `bob` (docker's or podman's stored login)",
            hub.addr
        ),
    );
    // The helper was asked for the Harbor mirror only: the other registry's login came
    // from `auths`, and docker.io itself was never contacted.
    assert_eq!(b.helper_asked("corp"), vec![hub.addr.clone()]);
    assert!(hub.token_requests() > 0, "the token realm was used");
    for secret in [
        "alice-Secret-1",
        "bob-Secret-2",
        &basic_auth("alice", "alice-Secret-1"),
    ] {
        b.assert_kept_secret(&run, secret);
    }
}

#[test]
fn build_with_registry_login_sends_the_stdin_password_to_the_named_mirror_only() {
    let k8s = basic_registry("alice", "alice-Secret-1");
    seed(&k8s.addr, &pause(), Some(("alice", "alice-Secret-1")));
    let hub = basic_registry("carol", "carol-Secret-3");
    seed(&hub.addr, &node(), Some(("carol", "carol-Secret-3")));
    let b = Builder::new();
    // The other registry's login is podman's (`podman login` / `skopeo login`).
    b.podman_auth(serde_json::json!({
        "auths": { hub.addr.as_str(): { "auth": basic_auth("carol", "carol-Secret-3") } }
    }));
    let mirrors = [
        ("registry.k8s.io", k8s.addr.as_str()),
        ("docker.io", hub.addr.as_str()),
    ];
    let plain = ["--plain-http", &k8s.addr, "--plain-http", &hub.addr];
    let login = |host: &str, stdin: &str| {
        let mut extra = plain.to_vec();
        extra.extend([
            "--registry-login",
            host,
            "--username",
            "alice",
            "--password-stdin",
        ]);
        b.build(&[PAUSE, NODE], &mirrors, &extra, &[], Some(stdin))
    };

    let run = login(&k8s.addr, "alice-Secret-1\n");
    assert_eq!(run.code, 0, "{}", run.transcript());
    b.assert_kept_secret(&run, "alice-Secret-1");
    b.assert_kept_secret(&run, "carol-Secret-3");

    // Naming the upstream instead of the mirror it is pulled through is caught.
    std::fs::remove_dir_all(b.s.path("bundles")).unwrap();
    std::fs::remove_file(b.s.path("m.lock.json")).unwrap();
    let run = login("registry.k8s.io", "alice-Secret-1\n");
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        "error: `--registry-login registry.k8s.io` names a registry pulled through mirror",
    );
    assert_says(
        &run,
        &format!(
            "hint: credentials go to the registry pulled from: `--registry-login {}`",
            k8s.addr
        ),
    );
    b.assert_wrote_nothing();

    // The environment's password names no registry: without --registry-login it is
    // sent nowhere, and the build says so.
    let run = b.build(
        &[PAUSE],
        &mirrors,
        &plain,
        &[
            ("BUNDLE_REGISTRY_USERNAME", "alice"),
            ("BUNDLE_REGISTRY_PASSWORD", "alice-Secret-1"),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "warning: BUNDLE_REGISTRY_PASSWORD is ignored");
    assert_says(
        &run,
        &format!(
            "registry `{}` refused anonymous access to pull `pause`",
            k8s.addr
        ),
    );
    b.assert_wrote_nothing();
}

#[test]
fn build_refused_by_a_registry_names_registry_account_and_where_the_login_came_from() {
    let k8s = basic_registry("alice", "alice-Secret-1");
    seed(&k8s.addr, &pause(), Some(("alice", "alice-Secret-1")));
    let hub = harbor("bob", "bob-Secret-2", "calico");
    seed(&hub.addr, &node(), Some(("bob", "bob-Secret-2")));
    let b = Builder::new();
    let plain = [
        "--plain-http",
        k8s.addr.as_str(),
        "--plain-http",
        hub.addr.as_str(),
    ];

    // A wrong password given for the htpasswd registry.
    let mut extra = plain.to_vec();
    extra.extend([
        "--registry-login",
        &k8s.addr,
        "--username",
        "alice",
        "--password-stdin",
    ]);
    let run = b.build(
        &[PAUSE],
        &[("registry.k8s.io", &k8s.addr)],
        &extra,
        &[],
        Some("Wr0ng-Pa55\n"),
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, &format!("error: image `{PAUSE}`"));
    assert_says(&run, &format!("Caused by: registry `{}` refused account `alice` (credentials from `--registry-login`) to pull `pause`", k8s.addr));
    assert_says(
        &run,
        &format!("hint: check the password of `alice` for `{}`", k8s.addr),
    );
    b.assert_kept_secret(&run, "Wr0ng-Pa55");
    b.assert_wrote_nothing();

    // No login at all.
    let run = b.build(
        &[PAUSE],
        &[("registry.k8s.io", &k8s.addr)],
        &plain,
        &[],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!(
            "Caused by: registry `{}` refused anonymous access to pull `pause`",
            k8s.addr
        ),
    );
    assert_says(
        &run,
        &format!(
            "hint: `{0}` needs credentials to pull: log in with `docker login {0}`",
            k8s.addr
        ),
    );
    b.assert_wrote_nothing();

    // A wrong password stored for the token realm: refused where the token is asked.
    b.docker_config(serde_json::json!({
        "auths": { hub.addr.as_str(): { "auth": basic_auth("bob", "Wr0ng-Pa55") } }
    }));
    let run = b.build(&[NODE], &[("docker.io", &hub.addr)], &plain, &[], None);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, &format!("Caused by: registry `{}` refused account `bob` (credentials from docker's or podman's stored login) to pull `calico/node`", hub.addr));
    b.assert_kept_secret(&run, "Wr0ng-Pa55");
    b.assert_wrote_nothing();
}

#[test]
fn build_names_a_credential_helper_that_is_missing_fails_or_has_nothing() {
    let k8s = basic_registry("alice", "alice-Secret-1");
    seed(&k8s.addr, &pause(), Some(("alice", "alice-Secret-1")));
    let b = Builder::new();
    let build = || {
        b.build(
            &[PAUSE],
            &[("registry.k8s.io", &k8s.addr)],
            &["--plain-http", &k8s.addr],
            &[],
            None,
        )
    };

    b.docker_config(serde_json::json!({ "credHelpers": { k8s.addr.as_str(): "absent" } }));
    let run = build();
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!(
            "credential helper `docker-credential-absent` for `{}` cannot be run",
            k8s.addr
        ),
    );
    assert_says(&run, "hint: install `docker-credential-absent` on PATH");
    b.assert_wrote_nothing();

    b.helper("broken", "echo 'keyring is locked' >&2; exit 2");
    b.docker_config(serde_json::json!({ "credHelpers": { k8s.addr.as_str(): "broken" } }));
    let run = build();
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!(
            "credential helper `docker-credential-broken` for `{}` failed: keyring is locked",
            k8s.addr
        ),
    );
    assert_says(&run, "hint: run `echo HOST | docker-credential-broken get`");
    b.assert_wrote_nothing();

    // A store without an entry for the registry answers as the protocol says: the pull
    // goes on anonymously (and this registry then refuses it).
    b.helper(
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    b.docker_config(serde_json::json!({ "credsStore": "empty" }));
    let run = build();
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_eq!(b.helper_asked("empty"), vec![k8s.addr.clone()]);
    assert_says(&run, "refused anonymous access to pull `pause`");
    b.assert_wrote_nothing();
}

fn manifest_gets(line: &str) -> bool {
    line.starts_with("GET ") && line.contains("/manifests/")
}

#[test]
fn build_waits_as_long_as_a_rate_limited_registry_asks_then_completes() {
    let registry = Registry::start().unwrap();
    seed(&registry.addr, &pause(), None);
    seed(&registry.addr, &node(), None);
    let proxy = Proxy::start(
        &registry.addr,
        FaultPattern {
            every: 2,
            skip: 0,
            fault: Fault::TooManyRequests { retry_after: 1 },
            only: Some(manifest_gets),
        },
    )
    .unwrap();
    let b = Builder::new();
    let run = b.build(
        &[PAUSE, NODE],
        &[("registry.k8s.io", &proxy.addr), ("docker.io", &proxy.addr)],
        &["--plain-http", &proxy.addr],
        &[],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(proxy.faults() >= 1, "{:?}", proxy.log());
    assert_says(&run, "answered 429 to GET manifest");
    assert_says(&run, "retrying in 1s");
    assert!(b.bundle().exists());
}

#[test]
fn build_stops_at_once_when_a_rate_limit_asks_to_wait_longer_than_it_waits() {
    let registry = Registry::start().unwrap();
    seed(&registry.addr, &pause(), None);
    let proxy = Proxy::start(
        &registry.addr,
        FaultPattern {
            every: 1,
            skip: 0,
            fault: Fault::TooManyRequests { retry_after: 3600 },
            only: Some(manifest_gets),
        },
    )
    .unwrap();
    let b = Builder::new();
    let run = b.build(
        &[PAUSE],
        &[("registry.k8s.io", &proxy.addr)],
        &["--plain-http", &proxy.addr],
        &[],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_eq!(
        proxy.faults(),
        1,
        "asked once, not retried: {:?}",
        proxy.log()
    );
    assert_says(&run, &format!("Caused by: registry `{}` is rate-limiting anonymous access: 429 Too Many Requests to GET manifest pause:3.9 (TOOMANYREQUESTS You have reached your unauthenticated pull rate limit", proxy.addr));
    assert_says(
        &run,
        "it asks to wait 3600s, longer than the 60s bundle waits",
    );
    assert_says(
        &run,
        &format!(
            "hint: credentials lift the anonymous limit: `docker login {}`",
            proxy.addr
        ),
    );
    assert_says(&run, "--registry-login");
    b.assert_wrote_nothing();
}

#[test]
fn build_trusts_a_self_signed_registry_certificate_given_as_ca_file_cert_dir_or_certs_d() {
    let certs = tempfile::tempdir().unwrap();
    // `openssl req -x509 … -addext subjectAltName=…`: basicConstraints CA:TRUE, which
    // webpki alone refuses as a server certificate.
    let (cert, key) = real_registry::self_signed(certs.path(), "harbor", "IP:127.0.0.1").unwrap();
    let (other, _) = real_registry::self_signed(certs.path(), "other", "IP:127.0.0.1").unwrap();
    let registry = Registry::start_with(&RegistryOptions {
        tls: Some((cert.clone(), key)),
        ..Default::default()
    })
    .unwrap();
    seed(&registry.addr, &pause(), None);
    let b = Builder::new();
    let mirrors = [("registry.k8s.io", registry.addr.as_str())];
    let build = |extra: &[&str]| b.build(&[PAUSE], &mirrors, extra, &[], None);

    let run = build(&[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!("TLS with registry `{}` failed", registry.addr),
    );
    assert_says(&run, "its certificate is not trusted here");
    assert_says(&run, "--ca-file PEM");
    b.assert_wrote_nothing();

    let run = build(&["--ca-file", other.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "is neither signed by nor one of the certificates in");
    b.assert_wrote_nothing();

    let run = build(&["--ca-file", cert.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(b.bundle().exists());
    // The verifier underneath refuses it before ours accepts it: no alarm for that.
    assert!(!run.stderr.contains("ERROR"), "{}", run.stderr);

    let cert_dir = certs.path().join("cert-dir");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&cert, cert_dir.join("registry.crt")).unwrap();
    std::fs::remove_dir_all(b.s.path("bundles")).unwrap();
    let run = build(&["--cert-dir", cert_dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(b.bundle().exists());

    let folder = b.certs_d().join(&registry.addr);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&cert, folder.join("ca.crt")).unwrap();
    std::fs::remove_dir_all(b.s.path("bundles")).unwrap();
    let run = build(&[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(b.bundle().exists());
}

#[test]
fn build_through_a_proxy_that_resets_and_503s_every_third_request_still_completes() {
    let registry = Registry::start().unwrap();
    seed(&registry.addr, &pause(), None);
    seed(&registry.addr, &node(), None);
    let proxy = Proxy::start(
        &registry.addr,
        FaultPattern {
            every: 3,
            skip: 0,
            fault: Fault::Both,
            only: None,
        },
    )
    .unwrap();
    let b = Builder::new();
    let run = b.build(
        &[PAUSE, NODE],
        &[("registry.k8s.io", &proxy.addr), ("docker.io", &proxy.addr)],
        &["--plain-http", &proxy.addr],
        &[],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("FAULT Reset GET") && l.contains("/blobs/"))
            || log
                .iter()
                .any(|l| l.starts_with("FAULT Unavailable GET") && l.contains("/blobs/")),
        "a blob request was failed on purpose: {log:?}"
    );
    assert!(proxy.faults() >= 2, "{log:?}");
    let verify = b.s.run(&[
        "verify",
        "bundles/pulls-1.tar.zst",
        "--pubkey",
        "builder.pub",
    ]);
    assert_eq!(verify.code, 0, "{}", verify.transcript());
    assert_eq!(partials(&b.s.cache()), Vec::<PathBuf>::new());
}
