//! `bundle push` against real registries (distribution: plain, Basic auth behind TLS,
//! token auth from the Harbor stand-in), with skopeo as the independent check, a
//! fault-injecting proxy, and a push killed midway.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bundle_testbed::doubles::harbor::{HarborOptions, HarborStandIn, HarborUser};
use bundle_testbed::fixtures::images::{self, Layer, TestImage, DEFAULT_IMAGES};
use bundle_testbed::real::proxy::{Fault, FaultPattern, Proxy};
use bundle_testbed::real::registry::{self as real_registry, RegistryOptions};
use bundle_testbed::Registry;
use common::upstream::Upstream;
use common::{extract, tool, Run, Session};
use serde_json::Value;

/// Where each default image lands under the target host.
const TARGETS: &[&str] = &[
    "k8s/kube-apiserver:v1.29.2",
    "k8s/kube-controller-manager:v1.29.2",
    "k8s/kube-scheduler:v1.29.2",
    "k8s/kube-proxy:v1.29.2",
    "k8s/etcd:3.5.10-0",
    "k8s/coredns:v1.11.1",
    "k8s/pause:3.9",
    "calico/cni:v3.26.4",
    "calico/node:v3.26.4",
    "calico/kube-controllers:v3.26.4",
];

fn default_bundle() -> (Upstream, PathBuf) {
    let up = Upstream::start(images::default_manifest_images(1));
    let bundle = up.build_ok(DEFAULT_IMAGES);
    (up, bundle)
}

fn push(s: &Session, bundle: &Path, registry: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "push",
        bundle.to_str().unwrap(),
        "--pubkey",
        "builder.pub",
        "--registry",
        registry,
    ];
    args.extend_from_slice(extra);
    push_with_stdin(s, &args, "")
}

/// The command with the user's docker and podman credentials, and the machine's
/// certs.d folders, out of reach (each test gives its own, or none).
fn command(s: &Session, args: &[&str]) -> Command {
    let mut c = s.command(args);
    c.env("DOCKER_CONFIG", s.dir.path().join("docker"))
        .env("BUNDLE_CERTS_D", certs_d(s))
        .env(
            "REGISTRY_AUTH_FILE",
            s.dir.path().join("containers-auth.json"),
        )
        .env_remove("BUNDLE_REGISTRY_USERNAME")
        .env_remove("BUNDLE_REGISTRY_PASSWORD");
    c
}

fn push_json(s: &Session, bundle: &Path, registry: &str, extra: &[&str]) -> Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let run = push(s, bundle, registry, &args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The bundle's digests by original reference.
fn bundle_digests(up: &Upstream) -> BTreeMap<String, String> {
    let run =
        up.s.run(&["inspect", "--json", up.bundle_path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `skopeo inspect --raw` of `reference`, hashed.
fn skopeo_digest(reference: &str, opts: &[&str]) -> String {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .args(opts)
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "sha256:{}",
        bundle_format::Sha256Digest::of(&out.stdout).hex()
    )
}

/// Every default image reads back with the bundle's digest.
fn assert_digests_match(up: &Upstream, host: &str, opts: &[&str]) {
    let digests = bundle_digests(up);
    for (source, target) in DEFAULT_IMAGES.iter().zip(TARGETS) {
        assert_eq!(
            skopeo_digest(&format!("{host}/{target}"), opts),
            digests[*source],
            "{source} → {host}/{target}"
        );
    }
}

/// Blob uploads finished by the registry: `PUT …/blobs/uploads/…` answered 201.
fn finished_uploads(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/") && l.contains("\" 201 ")
        })
        .count()
}

/// Manifest PUTs answered 201.
fn manifest_puts(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("\"PUT /v2/") && l.contains("/manifests/") && l.contains("\" 201 "))
        .count()
}

/// The push's stderr says `text` (shown whole when it does not).
fn assert_says(run: &Run, text: &str) {
    assert!(
        run.stderr.contains(text),
        "stderr lacks `{text}`:\n{}",
        run.stderr
    );
}

/// Tags of every repository in the registry's storage (read from disk, so it works
/// whatever the registry's auth).
fn stored_tags(data: &Path) -> Vec<String> {
    let root = data.join("docker/registry/v2/repositories");
    let mut out = Vec::new();
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == "_manifests") {
                let repo = p
                    .parent()
                    .unwrap()
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string();
                if let Ok(tags) = std::fs::read_dir(p.join("tags")) {
                    out.extend(
                        tags.flatten()
                            .map(|t| format!("{repo}:{}", t.file_name().to_string_lossy())),
                    );
                }
            } else if p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('_'))
            {
                walk(&p, root, out);
            }
        }
    }
    walk(&root, &root, &mut out);
    out.sort();
    out
}

#[test]
fn push_into_plain_registry_keeps_every_digest_and_blob() {
    let (up, bundle) = default_bundle();
    let target = Registry::start().unwrap();
    let summary = push_json(&up.s, &bundle, &target.addr, &["--plain-http"]);
    assert_eq!(summary["images"].as_array().unwrap().len(), 10);
    assert_eq!(summary["harbor"], false);
    assert_eq!(summary["blobsSkipped"], 0);
    assert!(
        summary["blobsMounted"].as_u64().unwrap() > 0,
        "the shared base layer is mounted, not sent again: {summary}"
    );
    assert_eq!(summary["tagsPushed"], 10);
    let uploads = finished_uploads(&target.log());
    assert_eq!(
        uploads as u64,
        summary["blobsPushed"].as_u64().unwrap(),
        "each distinct blob uploaded once"
    );

    // skopeo sees the bundle's digests under the mapped names.
    assert_digests_match(&up, &target.addr, &["--tls-verify=false"]);

    // skopeo copies everything back into a layout; every blob is byte-identical.
    let ex = up.s.path("extracted");
    extract(&bundle, &ex);
    let back = up.s.path("back");
    for t in TARGETS {
        let (code, out) = tool(
            "skopeo",
            &[
                "copy",
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                &format!("docker://{}/{t}", target.addr),
                &format!("oci:{}:{t}", back.display()),
            ],
            &up.s.work(),
        );
        assert_eq!(code, 0, "skopeo copy {t}: {out}");
    }
    let blobs = std::fs::read_dir(back.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .collect::<Vec<_>>();
    assert!(blobs.len() > 20, "{} blobs", blobs.len());
    for b in blobs {
        let ours = ex.join("images/blobs/sha256").join(b.file_name());
        assert_eq!(
            std::fs::read(b.path()).unwrap(),
            std::fs::read(&ours).unwrap(),
            "blob {:?}",
            b.file_name()
        );
    }
}

#[test]
fn push_again_skips_everything_already_present() {
    let (up, bundle) = default_bundle();
    let target = Registry::start().unwrap();
    push_json(&up.s, &bundle, &target.addr, &["--plain-http"]);
    let (uploads, manifests) = (
        finished_uploads(&target.log()),
        manifest_puts(&target.log()),
    );
    let summary = push_json(&up.s, &bundle, &target.addr, &["--plain-http"]);
    assert_eq!(summary["blobsPushed"], 0, "{summary}");
    assert_eq!(summary["blobsMounted"], 0, "{summary}");
    assert_eq!(summary["bytesPushed"], 0, "{summary}");
    assert_eq!(summary["manifestsPushed"], 0, "{summary}");
    assert_eq!(summary["tagsPushed"], 0, "{summary}");
    assert_eq!(summary["tagsSkipped"], 10, "{summary}");
    assert_eq!(finished_uploads(&target.log()), uploads);
    assert_eq!(manifest_puts(&target.log()), manifests);
}

#[test]
fn push_dry_run_prints_the_mapping_and_pushes_nothing() {
    let (up, bundle) = default_bundle();
    let run = push(
        &up.s,
        &bundle,
        "harbor.example.com",
        &["--dry-run", "--map", "docker.io/calico=cni/calico"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let digests = bundle_digests(&up);
    for (source, line) in [
        (
            "registry.k8s.io/kube-apiserver:v1.29.2",
            "harbor.example.com/k8s/kube-apiserver:v1.29.2",
        ),
        (
            "registry.k8s.io/coredns/coredns:v1.11.1",
            "harbor.example.com/k8s/coredns:v1.11.1",
        ),
        (
            "docker.io/calico/node:v3.26.4",
            "harbor.example.com/cni/calico/node:v3.26.4",
        ),
    ] {
        let expected = format!("→  {line}  ({})", digests[source]);
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(source) && l.ends_with(&expected)),
            "{source}: {}",
            run.stdout
        );
    }
    assert!(
        run.stdout
            .contains("Harbor projects (created when missing): cni, k8s"),
        "{}",
        run.stdout
    );
    insta::assert_snapshot!("push_dry_run_mapping", common::redact(&run.stdout));
    assert!(
        run.stdout.contains("nothing was pushed (--dry-run)"),
        "{}",
        run.stdout
    );
}

/// A registry on 127.0.0.1 speaking TLS with a certificate from a fresh test CA, with
/// Basic auth when given; returns the folder holding the certificates and the CA's path.
fn tls_registry(basic_auth: Option<(&str, &str)>) -> (tempfile::TempDir, PathBuf, Registry) {
    let certs = tempfile::tempdir().unwrap();
    let tls = bundle_testbed::registry::test_tls(certs.path(), "127.0.0.1").unwrap();
    let target = Registry::start_with(&RegistryOptions {
        basic_auth: basic_auth.map(|(u, p)| (u.into(), p.into())),
        tls: Some((tls.cert, tls.key)),
        ..Default::default()
    })
    .unwrap();
    (certs, tls.ca, target)
}

fn push_with_stdin(s: &Session, args: &[&str], stdin: &str) -> Run {
    let mut child = command(s, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let norm = |b: &[u8]| {
        String::from_utf8_lossy(b).replace(&s.dir.path().display().to_string(), "[TEMP_DIR]")
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: norm(&out.stdout),
        stderr: norm(&out.stderr),
    }
}

#[test]
fn push_with_basic_auth_over_tls_trusting_a_ca_file() {
    let (up, bundle) = default_bundle();
    let (_certs, ca, target) = tls_registry(Some(("pusher", "s3cret pass")));
    let b = bundle.to_str().unwrap();
    let ca_s = ca.to_str().unwrap();
    let run = push_with_stdin(
        &up.s,
        &[
            "push",
            b,
            "--pubkey",
            "builder.pub",
            "--registry",
            &target.addr,
            "--ca-file",
            ca_s,
            "--username",
            "pusher",
            "--password-stdin",
        ],
        "s3cret pass\n",
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        !run.stderr.contains("s3cret"),
        "the password never shows: {}",
        run.stderr
    );
    assert_says(&run, "Finished 10 images into");
    // skopeo trusts the same CA (a cert dir holding ca.crt) and logs in.
    let cert_dir = up.s.path("certs.d");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
    let cert_dir_arg = format!("--cert-dir={}", cert_dir.display());
    assert_digests_match(
        &up,
        &target.addr,
        &[&cert_dir_arg, "--creds=pusher:s3cret pass"],
    );

    // The environment works as well, and the second push sends nothing.
    let mut cmd = command(
        &up.s,
        &[
            "push",
            b,
            "--pubkey",
            "builder.pub",
            "--registry",
            &target.addr,
            "--ca-file",
            ca_s,
            "--json",
        ],
    );
    cmd.env("BUNDLE_REGISTRY_USERNAME", "pusher")
        .env("BUNDLE_REGISTRY_PASSWORD", "s3cret pass");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["blobsPushed"], 0);
}

#[test]
fn push_with_a_wrong_password_says_so_and_tags_nothing() {
    let (up, bundle) = default_bundle();
    let (_certs, ca, target) = tls_registry(Some(("pusher", "right")));
    let args = [
        "push",
        bundle.to_str().unwrap(),
        "--pubkey",
        "builder.pub",
        "--registry",
        &target.addr,
        "--ca-file",
        ca.to_str().unwrap(),
        "--username",
        "pusher",
        "--password-stdin",
    ];
    let run = push_with_stdin(&up.s, &args, "wrong\n");
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!("error: registry `{}` refused account `pusher`", target.addr),
    );
    assert_says(&run, "hint: check the password of `pusher`");
    assert!(!run.stderr.contains("wrong"), "{}", run.stderr);
    assert_eq!(stored_tags(&target.data_dir()), Vec::<String>::new());

    // Without any credentials the hint says how to give them.
    let run = push(
        &up.s,
        &bundle,
        &target.addr,
        &["--ca-file", ca.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "refused anonymous access");
    assert_says(&run, "--password-stdin");
}

#[test]
fn push_to_tls_registry_with_unknown_ca_hints_at_ca_file() {
    let (up, bundle) = default_bundle();
    let (_certs, _ca, target) = tls_registry(None);
    let run = push(&up.s, &bundle, &target.addr, &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!("error: TLS with registry `{}` failed", target.addr),
    );
    assert_says(
        &run,
        // Transcripts show the session's folder as [TEMP_DIR]: this run's BUNDLE_CERTS_D.
        &format!("is not trusted here; pass the CA that signed it (or the certificate itself, if it is self-signed) with `--ca-file PEM`, or put it in `[TEMP_DIR]/certs.d/{}/ca.crt`", target.addr),
    );
    assert_eq!(stored_tags(&target.data_dir()), Vec::<String>::new());
}

#[test]
fn push_to_unreachable_registry_says_where_and_what_to_check() {
    let (up, bundle) = default_bundle();
    let dead = format!("127.0.0.1:{}", bundle_testbed::free_port());
    let run = push(&up.s, &bundle, &dead, &["--plain-http"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!("error: cannot reach registry `{dead}` (http://{dead}/v2/)"),
    );
    assert_says(
        &run,
        &format!("hint: nothing accepts connections at `{dead}`: check the port"),
    );
}

#[test]
fn push_of_a_tampered_bundle_exits_3_and_tags_nothing() {
    let (up, bundle) = default_bundle();
    // Flip a byte in the largest layer: its entry no longer matches the signed index.
    let mut entries = common::craft::read_entries(&bundle);
    let victim = entries
        .iter_mut()
        .filter(|e| e.name.starts_with("images/blobs/"))
        .max_by_key(|e| e.data.len())
        .unwrap();
    victim.data[100] ^= 0xff;
    let name = victim.name.clone();
    let tampered = up.s.path("tampered.tar.zst");
    // One zstd frame (read in one pass), and frames with a seek table (read by several
    // threads, each streaming what it reads into uploads).
    let layouts: [fn(&[common::craft::RawEntry], &Path); 2] = [
        common::craft::write_entries,
        common::craft::write_entries_framed,
    ];
    for write in layouts {
        write(&entries, &tampered);
        let target = Registry::start().unwrap();
        let run = push(&up.s, &tampered, &target.addr, &["--plain-http"]);
        assert_eq!(run.code, 3, "{}", run.transcript());
        assert_says(&run, "error: bundle `[TEMP_DIR]/work/tampered.tar.zst` failed verification; no manifest or tag was pushed");
        assert_says(
            &run,
            &format!("Caused by: entry `{name}` does not match the index"),
        );
        assert_eq!(manifest_puts(&target.log()), 0);
        assert_eq!(stored_tags(&target.data_dir()), Vec::<String>::new());
        // The registry refused the damaged layer itself (`?digest=` did not match).
        let digest = name.trim_start_matches("images/blobs/sha256/");
        assert!(
            !target
                .data_dir()
                .join(format!(
                    "docker/registry/v2/blobs/sha256/{}/{digest}",
                    &digest[..2]
                ))
                .exists(),
            "the damaged layer is not stored"
        );
    }
    // Control: the untouched bundle stores that layer where the check above looks.
    let target = Registry::start().unwrap();
    let run = push(&up.s, &bundle, &target.addr, &["--plain-http"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let digest = name.trim_start_matches("images/blobs/sha256/");
    assert!(target
        .data_dir()
        .join(format!(
            "docker/registry/v2/blobs/sha256/{}/{digest}",
            &digest[..2]
        ))
        .exists());
}

#[test]
fn push_of_a_bundle_signed_by_another_key_makes_no_request() {
    let (up, bundle) = default_bundle();
    up.s.keygen("other");
    let target = Registry::start().unwrap();
    let requests = |log: &str| {
        log.lines()
            .filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/"))
            .count()
    };
    let before = requests(&target.log());
    let run = up.s.run(&[
        "push",
        bundle.to_str().unwrap(),
        "--pubkey",
        "other.pub",
        "--registry",
        &target.addr,
        "--plain-http",
    ]);
    assert_eq!(run.code, 3, "{}", run.transcript());
    assert_says(&run, "is signed by key");
    assert_eq!(
        requests(&target.log()),
        before,
        "no request before the signature is checked"
    );
}

fn harbor_users() -> Vec<HarborUser> {
    vec![
        HarborUser::new("guest", "guest-pass", false).guest(),
        HarborUser::new("admin", "Harbor12345", true),
        HarborUser::new("ci", "ci-pass", false),
    ]
}

/// A Harbor stand-in with the accounts of [`harbor_users`] and `projects` already there.
fn harbor_with(projects: &[&str], first_token_dies: bool) -> HarborStandIn {
    HarborStandIn::start(&HarborOptions {
        users: harbor_users(),
        projects: projects.iter().map(|p| p.to_string()).collect(),
        first_token_dies,
    })
    .unwrap()
}

/// `bundle push BUNDLE --registry HARBOR --plain-http --username USER --password-stdin
/// EXTRA…`, the password on stdin.
fn push_to_harbor(
    s: &Session,
    bundle: &Path,
    harbor: &HarborStandIn,
    (user, password): (&str, &str),
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "push",
        bundle.to_str().unwrap(),
        "--pubkey",
        "builder.pub",
        "--registry",
        &harbor.addr,
        "--plain-http",
        "--username",
        user,
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    push_with_stdin(s, &args, password)
}

#[test]
fn push_into_harbor_creates_projects_and_uses_its_token_realm() {
    let (up, bundle) = default_bundle();
    let harbor = harbor_with(&["calico"], false);
    let run = push_to_harbor(
        &up.s,
        &bundle,
        &harbor,
        ("admin", "Harbor12345"),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["harbor"], true);
    assert_eq!(summary["projectsCreated"], serde_json::json!(["k8s"]));
    // One token per scope set, shared by parallel requests: a login, one per
    // repository, one per mount (target and source); never one per request.
    let tokens = summary["tokenRequests"].as_u64().unwrap();
    assert!(
        tokens <= 1 + 2 * TARGETS.len() as u64,
        "{tokens} token requests"
    );
    assert_eq!(harbor.projects(), vec!["calico", "k8s"]);
    assert!(
        harbor
            .log()
            .contains(&"POST /api/v2.0/projects 201".to_string()),
        "{:?}",
        harbor.log()
    );
    assert!(harbor.token_requests() > 0);
    assert_digests_match(
        &up,
        &harbor.addr,
        &["--tls-verify=false", "--creds=admin:Harbor12345"],
    );
    assert_eq!(harbor.public_projects(), Vec::<String>::new());
    let anonymous = anonymous_inspect(&format!("{}/k8s/pause:3.9", harbor.addr));
    assert!(
        !anonymous.status.success(),
        "a private project refuses anonymous pulls"
    );

    // Again: the projects exist, nothing is sent.
    let run = push_to_harbor(
        &up.s,
        &bundle,
        &harbor,
        ("admin", "Harbor12345"),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["projectsCreated"], serde_json::json!([]));
    assert_eq!(summary["blobsPushed"], 0);
    assert_eq!(harbor.project_posts(), 1);
}

/// `skopeo inspect` without any credentials, as a node pulling anonymously.
fn anonymous_inspect(reference: &str) -> std::process::Output {
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--no-creds"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap()
}

#[test]
fn push_into_harbor_with_public_creates_public_projects_and_leaves_existing_ones_alone() {
    let (up, bundle) = default_bundle();
    let harbor = harbor_with(&["calico"], false);
    let run = push_to_harbor(
        &up.s,
        &bundle,
        &harbor,
        ("admin", "Harbor12345"),
        &["--public"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_says(&run, "Created Harbor project `k8s` (public)");
    assert!(harbor
        .log()
        .contains(&"POST /api/v2.0/projects 201".to_string()));
    // `calico` existed (private) and stays so; `k8s` was created public.
    assert_eq!(harbor.public_projects(), vec!["k8s"]);
    for (source, target) in DEFAULT_IMAGES.iter().zip(TARGETS) {
        let out = anonymous_inspect(&format!("{}/{target}", harbor.addr));
        let pulled = out.status.success();
        assert_eq!(
            pulled,
            target.starts_with("k8s/"),
            "{source} → {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if pulled {
            let digest = format!(
                "sha256:{}",
                bundle_format::Sha256Digest::of(&out.stdout).hex()
            );
            assert_eq!(digest, bundle_digests(&up)[*source]);
        }
    }

    // What `bundle install` asks before any node pulls: the same answers as skopeo's.
    let digests = bundle_digests(&up);
    let check = |user: Option<(&str, &str)>, repository: &str, source: &str| {
        let connection = bundle_registry::push::Connection {
            host: harbor.addr.clone(),
            plain_http: true,
            ca_files: vec![],
            cert_dir: None,
            credentials: user.map(|(u, p)| bundle_registry::Credentials {
                username: u.into(),
                password: p.into(),
            }),
            proxy: None,
        };
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(bundle_registry::push::check_pull(
                &connection,
                repository,
                &digests[source],
            ))
    };
    let (pause, node) = ("registry.k8s.io/pause:3.9", "docker.io/calico/node:v3.26.4");
    check(None, "k8s/pause", pause).expect("anonymous pull from the public project");
    let refused = check(None, "calico/node", node).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("may not read from `calico/node`"),
        "{refused}"
    );
    check(Some(("guest", "guest-pass")), "calico/node", node)
        .expect("a Guest pulls from the private project");
    let wrong = check(Some(("guest", "nope")), "calico/node", node).unwrap_err();
    assert!(wrong.to_string().contains("guest"), "{wrong}");
}

#[test]
fn push_into_harbor_gets_a_new_token_when_one_dies_mid_push() {
    let (up, bundle) = default_bundle();
    let harbor = harbor_with(&[], true);
    let run = push_to_harbor(
        &up.s,
        &bundle,
        &harbor,
        ("admin", "Harbor12345"),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    let repos = TARGETS.len() as u64;
    assert!(
        summary["tokenRequests"].as_u64().unwrap() > repos,
        "dead tokens were replaced: {summary}"
    );
    assert!(
        harbor.registry_log().contains("token not to be used after")
            || harbor.registry_log().contains("invalid token"),
        "the registry refused dead tokens"
    );
    assert_digests_match(
        &up,
        &harbor.addr,
        &["--tls-verify=false", "--creds=admin:Harbor12345"],
    );
}

#[test]
fn push_into_harbor_without_right_to_create_a_project_names_account_and_project() {
    let (up, bundle) = default_bundle();
    let harbor = harbor_with(&["calico"], false);
    let run = push_to_harbor(&up.s, &bundle, &harbor, ("ci", "ci-pass"), &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!(
            "error: account `ci` may not create the Harbor project `k8s` in registry `{}`",
            harbor.addr
        ),
    );
    assert_says(&run, "hint: ask a Harbor administrator");
    assert_eq!(harbor.projects(), vec!["calico"]);
    assert!(
        !harbor.registry_log().contains("/manifests/"),
        "nothing was pushed"
    );

    // A wrong password is caught at Harbor's token service.
    let run = push_to_harbor(&up.s, &bundle, &harbor, ("ci", "nope"), &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "refused account `ci`");
    assert_says(&run, "/service/token");
}

#[test]
fn push_through_a_proxy_that_resets_and_503s_every_fifth_request_still_completes() {
    let (up, bundle) = default_bundle();
    let target = Registry::start().unwrap();
    let proxy = Proxy::start(
        &target.addr,
        FaultPattern {
            every: 5,
            skip: 0,
            fault: Fault::Both,
            only: None,
        },
    )
    .unwrap();
    let summary = push_json(&up.s, &bundle, &proxy.addr, &["--plain-http"]);
    assert!(
        proxy.faults() >= 3,
        "faults injected: {} of {} requests",
        proxy.faults(),
        proxy.requests()
    );
    assert!(summary["retries"].as_u64().unwrap() >= 3, "{summary}");
    assert!(
        proxy.log().iter().any(|l| l.starts_with("FAULT Reset")),
        "a reset landed: {:?}",
        proxy.log()
    );
    assert_digests_match(&up, &target.addr, &["--tls-verify=false"]);
    // Content checks out: skopeo copies every image (all blobs readable, digests checked).
    for t in TARGETS {
        let (code, out) = tool(
            "skopeo",
            &[
                "copy",
                "--all",
                "--src-tls-verify=false",
                &format!("docker://{}/{t}", target.addr),
                &format!("oci:{}:{t}", up.s.path("back").display()),
            ],
            &up.s.work(),
        );
        assert_eq!(code, 0, "{out}");
    }
}

#[test]
fn push_waits_as_long_as_a_rate_limited_registry_asks() {
    let (up, bundle) = default_bundle();
    let target = Registry::start().unwrap();
    // Every fourth HEAD answered 429 with `Retry-After: 1`, as Docker Hub's limit does.
    let proxy = Proxy::start(
        &target.addr,
        FaultPattern {
            every: 4,
            skip: 0,
            fault: Fault::TooManyRequests { retry_after: 1 },
            only: Some(|line| line.starts_with("HEAD ")),
        },
    )
    .unwrap();
    let run = push(&up.s, &bundle, &proxy.addr, &["--plain-http"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(proxy.faults() >= 1, "{:?}", proxy.log());
    assert_says(&run, "answered 429 to HEAD");
    assert_says(&run, "retrying in 1s");
    assert_digests_match(&up, &target.addr, &["--tls-verify=false"]);
}

#[test]
fn push_repeats_blob_uploads_cut_mid_stream_from_a_fresh_read_of_the_bundle() {
    // Every other blob upload dies after its request head, part of the body sent.
    // Nothing is spooled: each repeat streams the blob again from its frame.
    let (up, bundle) = default_bundle();
    let target = Registry::start().unwrap();
    let proxy = Proxy::start(
        &target.addr,
        FaultPattern {
            every: 2,
            skip: 0,
            fault: Fault::Reset,
            only: Some(|line| line.starts_with("PUT ") && line.contains("/blobs/uploads/")),
        },
    )
    .unwrap();
    let tmp = up.s.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let run = command(
        &up.s,
        &[
            "push",
            bundle.to_str().unwrap(),
            "--pubkey",
            "builder.pub",
            "--registry",
            &proxy.addr,
            "--plain-http",
            "--json",
        ],
    )
    .env("TMPDIR", &tmp)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let cut_puts = proxy
        .log()
        .iter()
        .filter(|l| l.starts_with("FAULT Reset PUT") && l.contains("/blobs/uploads/"))
        .count();
    assert!(cut_puts >= 3, "blob uploads cut: {:?}", proxy.log());
    assert!(
        summary["retries"].as_u64().unwrap() >= cut_puts as u64,
        "{summary}"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "nothing spooled"
    );
    assert_digests_match(&up, &target.addr, &["--tls-verify=false"]);
}

#[test]
fn push_of_a_bundle_without_seek_table_reads_it_in_one_pass_and_still_repeats_cut_uploads() {
    // Bundles written as one zstd frame (by earlier versions, or re-packed by hand) have
    // no frames to start from: one verifying stream, and a cut upload is repeated by
    // reading the archive again up to its blob.
    let (up, bundle) = default_bundle();
    let single = up.s.path("single-frame.tar.zst");
    common::craft::write_entries(&common::craft::read_entries(&bundle), &single);
    let target = Registry::start().unwrap();
    let proxy = Proxy::start(
        &target.addr,
        FaultPattern {
            every: 3,
            skip: 0,
            fault: Fault::Reset,
            only: Some(|line| line.starts_with("PUT ") && line.contains("/blobs/uploads/")),
        },
    )
    .unwrap();
    let summary = push_json(&up.s, &single, &proxy.addr, &["--plain-http"]);
    assert!(proxy.faults() >= 2, "{:?}", proxy.log());
    assert!(
        summary["retries"].as_u64().unwrap() >= proxy.faults() as u64,
        "{summary}"
    );
    assert_digests_match(&up, &target.addr, &["--tls-verify=false"]);
}

#[test]
fn push_killed_midway_uploads_only_the_rest_when_run_again() {
    // Twelve images of one 4 MiB layer each, uploaded one at a time.
    let list: Vec<TestImage> = (0..12)
        .map(|i| {
            TestImage::new(
                &format!("big{i}"),
                "v1",
                &[Layer {
                    seed: 500 + i,
                    size: 4 << 20,
                }],
            )
        })
        .collect();
    let up = Upstream::start(list);
    let refs: Vec<String> = (0..12)
        .map(|i| format!("registry.k8s.io/big{i}:v1"))
        .collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    let bundle = up.build_ok(&refs);
    let target = Registry::start().unwrap();
    // Blobs stream from the archive into their uploads: nothing lands on disk.
    let tmp = up.s.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = command(
        &up.s,
        &[
            "push",
            bundle.to_str().unwrap(),
            "--pubkey",
            "builder.pub",
            "--registry",
            &target.addr,
            "--plain-http",
            "--jobs",
            "1",
        ],
    )
    .env("TMPDIR", &tmp)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while finished_uploads(&target.log()) < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // An upload whose body had all arrived when the push was killed still completes in
    // the registry a moment later (and the rerun then finds it there): count once the
    // registry's log has stopped growing.
    let mut before = finished_uploads(&target.log());
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = finished_uploads(&target.log());
        if now == before {
            break;
        }
        before = now;
    }
    assert!(
        (4..24).contains(&before),
        "killed midway: {before} of 24 blobs uploaded"
    );
    assert_eq!(
        stored_tags(&target.data_dir()),
        Vec::<String>::new(),
        "no tag before everything is there"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the push wrote nothing to the temp folder"
    );

    let summary = push_json(
        &up.s,
        &bundle,
        &target.addr,
        &["--plain-http", "--jobs", "1"],
    );
    let after = finished_uploads(&target.log()) - before;
    assert_eq!(after as u64, summary["blobsPushed"].as_u64().unwrap());
    assert!(
        after <= 24 - before,
        "the rerun uploaded {after}; {before} of 24 were already there"
    );
    assert_eq!(
        summary["blobsSkipped"].as_u64().unwrap() as usize,
        24 - after,
        "{summary}"
    );
    assert_eq!(stored_tags(&target.data_dir()).len(), 12);
    let digests = bundle_digests(&up);
    for i in 0..12 {
        assert_eq!(
            skopeo_digest(
                &format!("{}/k8s/big{i}:v1", target.addr),
                &["--tls-verify=false"]
            ),
            digests[&format!("registry.k8s.io/big{i}:v1")]
        );
    }
}

#[test]
fn push_takes_credentials_from_docker_config_json() {
    let (up, bundle) = default_bundle();
    let target = Registry::start_with(&RegistryOptions {
        basic_auth: Some(("robot".into(), "from-config".into())),
        ..Default::default()
    })
    .unwrap();
    // base64("robot:from-config")
    let auth = "cm9ib3Q6ZnJvbS1jb25maWc=";
    let docker = up.s.dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, target.addr),
    )
    .unwrap();
    let run = push(&up.s, &bundle, &target.addr, &["--plain-http"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(stored_tags(&target.data_dir()).len(), 10);
}

#[test]
fn push_into_harbor_with_a_pull_only_account_names_account_and_repository() {
    let (up, bundle) = default_bundle();
    let harbor = harbor_with(&["calico", "k8s"], false);
    let run = push_to_harbor(&up.s, &bundle, &harbor, ("guest", "guest-pass"), &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "error: account `guest` may not push to `");
    assert_says(&run, "hint: give account `guest` the Developer (push) role");
    assert!(
        !harbor.registry_log().contains("PUT /v2/"),
        "nothing was pushed"
    );
}

/// The certs.d root `bundle` reads in these tests (`BUNDLE_CERTS_D`), in docker's layout:
/// one folder per `HOST:PORT`.
fn certs_d(s: &Session) -> PathBuf {
    s.dir.path().join("certs.d")
}

/// A registry serving `cert`/`key`, optionally asking for client certificates of `client_ca`.
fn registry_serving(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Registry {
    Registry::start_with(&RegistryOptions {
        tls: Some((cert.into(), key.into())),
        client_ca: client_ca.map(Into::into),
        ..Default::default()
    })
    .unwrap()
}

/// Nothing reached the registry's storage: no tag, no blob.
fn assert_nothing_stored(target: &Registry) {
    assert_eq!(stored_tags(&target.data_dir()), Vec::<String>::new());
    let blobs = target.data_dir().join("docker/registry/v2/blobs");
    assert!(!blobs.exists(), "no blob was stored under {blobs:?}");
}

#[test]
fn push_trusts_a_self_signed_registry_certificate_given_as_ca_file_or_in_certs_d() {
    let (up, bundle) = default_bundle();
    let certs = tempfile::tempdir().unwrap();
    // What `openssl req -x509 … -addext subjectAltName=…` makes: basicConstraints CA:TRUE.
    let (cert, key) = real_registry::self_signed(certs.path(), "harbor", "IP:127.0.0.1").unwrap();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"));

    // --ca-file with the server's own certificate.
    let target = registry_serving(&cert, &key, None);
    let run = push(
        &up.s,
        &bundle,
        &target.addr,
        &["--ca-file", cert.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_says(&run, "Finished 10 images into");
    let skopeo_dir = certs.path().join("skopeo");
    std::fs::create_dir_all(&skopeo_dir).unwrap();
    std::fs::copy(&cert, skopeo_dir.join("ca.crt")).unwrap();
    let cert_dir_arg = format!("--cert-dir={}", skopeo_dir.display());
    assert_digests_match(&up, &target.addr, &[&cert_dir_arg]);

    // No --ca-file: the same certificate as ca.crt in the registry's certs.d folder.
    let target = registry_serving(&cert, &key, None);
    let folder = certs_d(&up.s).join(&target.addr);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&cert, folder.join("ca.crt")).unwrap();
    let run = push(&up.s, &bundle, &target.addr, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_digests_match(&up, &target.addr, &[&cert_dir_arg]);
}

#[test]
fn push_refuses_untrusted_expired_and_wrong_name_certificates_and_stores_nothing() {
    let (up, bundle) = default_bundle();
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    let (cert, key) = real_registry::self_signed(dir, "harbor", "IP:127.0.0.1").unwrap();
    let (other, _) = real_registry::self_signed(dir, "other", "IP:127.0.0.1").unwrap();
    let (expired, expired_key) =
        real_registry::expired_self_signed(dir, "expired", "IP:127.0.0.1").unwrap();
    let (elsewhere, elsewhere_key) =
        real_registry::self_signed(dir, "elsewhere", "DNS:harbor.example.org").unwrap();

    // Another self-signed certificate is trusted: the registry's is not.
    let target = registry_serving(&cert, &key, None);
    let run = push(
        &up.s,
        &bundle,
        &target.addr,
        &["--ca-file", other.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!("error: TLS with registry `{}` failed", target.addr),
    );
    assert_says(&run, "its certificate is not trusted here");
    assert_says(
        &run,
        &format!(
            "is neither signed by nor one of the certificates in `{}`",
            other.display()
        ),
    );
    assert_says(&run, "UnknownIssuer");
    assert_nothing_stored(&target);

    // Trusted, but expired.
    let target = registry_serving(&expired, &expired_key, None);
    let run = push(
        &up.s,
        &bundle,
        &target.addr,
        &["--ca-file", expired.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "its certificate has expired");
    assert_says(
        &run,
        "has expired (if it has not, this machine's clock is wrong",
    );
    assert_nothing_stored(&target);

    // Trusted, but for another name.
    let target = registry_serving(&elsewhere, &elsewhere_key, None);
    let run = push(
        &up.s,
        &bundle,
        &target.addr,
        &["--ca-file", elsewhere.to_str().unwrap()],
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(&run, "its certificate is not valid for that name");
    assert_says(&run, "harbor.example.org");
    assert_says(
        &run,
        "hint: reach the registry by a name its certificate lists",
    );
    assert_nothing_stored(&target);
}

#[test]
fn push_offers_the_client_certificate_of_the_certs_d_folder_when_the_registry_asks() {
    let (up, bundle) = default_bundle();
    let certs = tempfile::tempdir().unwrap();
    // A CA-signed leaf, and clients must show a certificate of the same CA.
    let tls = bundle_testbed::registry::test_tls(certs.path(), "127.0.0.1").unwrap();
    let target = registry_serving(&tls.cert, &tls.key, Some(&tls.ca));
    let folder = certs_d(&up.s).join(&target.addr);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&tls.ca, folder.join("ca.crt")).unwrap();

    let run = push(&up.s, &bundle, &target.addr, &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert_says(
        &run,
        &format!("error: TLS with registry `{}` failed", target.addr),
    );
    assert_says(
        &run,
        "it asks for a client certificate and none was offered",
    );
    assert_says(
        &run,
        &format!(
            "put `client.cert` and `client.key` in `[TEMP_DIR]/certs.d/{}/`",
            target.addr
        ),
    );
    assert_nothing_stored(&target);

    real_registry::client_cert(&tls, &folder).unwrap();
    let run = push(&up.s, &bundle, &target.addr, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let cert_dir_arg = format!("--cert-dir={}", folder.display());
    assert_digests_match(&up, &target.addr, &[&cert_dir_arg]);

    // skopeo's flag: the same folder named explicitly.
    let run = push(
        &up.s,
        &bundle,
        &target.addr,
        &["--cert-dir", folder.to_str().unwrap(), "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
}

/// A Harbor robot account's name as Harbor makes it (`robot$PROJECT+NAME`).
const ROBOT: &str = "robot$ci+pusher";

#[test]
fn push_with_a_harbor_robot_account_by_flag_docker_config_and_harbor_api() {
    let (up, bundle) = default_bundle();

    // --username, against a registry that checks Basic credentials itself.
    let target = Registry::start_with(&RegistryOptions {
        basic_auth: Some((ROBOT.into(), "R0bot-secret".into())),
        ..Default::default()
    })
    .unwrap();
    let b = bundle.to_str().unwrap();
    let args = [
        "push",
        b,
        "--pubkey",
        "builder.pub",
        "--registry",
        &target.addr,
        "--plain-http",
        "--username",
        ROBOT,
        "--password-stdin",
    ];
    let run = push_with_stdin(&up.s, &args, "R0bot-secret\n");
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(stored_tags(&target.data_dir()).len(), 10);

    // docker config.json, as `docker login -u 'robot$ci+pusher'` writes it.
    let docker = up.s.dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    // base64("robot$ci+pusher:R0bot-secret")
    let auth = "cm9ib3QkY2krcHVzaGVyOlIwYm90LXNlY3JldA==";
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, target.addr),
    )
    .unwrap();
    let summary = push_json(&up.s, &bundle, &target.addr, &["--plain-http"]);
    assert_eq!(summary["blobsPushed"], 0, "{summary}");
    std::fs::remove_file(docker.join("config.json")).unwrap();

    // Harbor: the token realm and the project-creation API take the same Basic auth.
    let harbor = HarborStandIn::start(&HarborOptions {
        users: vec![HarborUser::new(ROBOT, "R0bot-secret", true)],
        projects: vec![],
        first_token_dies: false,
    })
    .unwrap();
    let run = push_to_harbor(
        &up.s,
        &bundle,
        &harbor,
        (ROBOT, "R0bot-secret"),
        &["--json"],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(harbor.projects(), vec!["calico", "k8s"]);
    assert_digests_match(
        &up,
        &harbor.addr,
        &[
            "--tls-verify=false",
            &format!("--creds={ROBOT}:R0bot-secret"),
        ],
    );
}
