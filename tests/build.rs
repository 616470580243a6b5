//! `bundle build` against a real registry (distribution) seeded with skopeo, and a
//! local file server; independent checks with skopeo, minisign and sha256sum.

mod common;

use std::path::Path;

use bundle_testbed::fixtures::images::{self, Layer, TestImage};
use bundle_testbed::Registry;
use common::upstream::{Upstream, CALICO};
use common::{extract, tool};
use serde_json::Value;

fn upstream() -> Upstream {
    upstream_with(images::default_manifest_images(1))
}

fn upstream_with(list: Vec<TestImage>) -> Upstream {
    Upstream::start(list)
}

fn sha256_hex(data: &[u8]) -> String {
    bundle_format::Sha256Digest::of(data).hex()
}

/// The default manifest's image references.
fn default_images() -> Vec<String> {
    let m = bundle_builder::manifest::ManifestSource::Default
        .load()
        .unwrap();
    m.spec.images.iter().map(|i| i.to_string()).collect()
}

fn inspect_json(up: &Upstream) -> Value {
    let run =
        up.s.run(&["inspect", "--json", up.bundle_path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    serde_json::from_str(&run.stdout).unwrap()
}

fn image_record<'a>(index: &'a Value, reference: &str) -> &'a Value {
    index["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["reference"] == reference)
        .unwrap_or_else(|| panic!("{reference} in index"))
}

fn skopeo_raw(target: &str) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", target])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn build_default_images_through_mirror_then_verify_inspect_and_read_with_skopeo() {
    let up = upstream();
    let run = up.build(
        &up.manifest(
            &default_images()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        ),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.transcript());
    let bundle = up.bundle_path();
    assert_eq!(run.stdout.trim(), "bundles/test-k8s-1.29.2-1.tar.zst");
    assert!(
        run.stderr
            .contains("Resolved registry.k8s.io/kube-apiserver:v1.29.2 → sha256:"),
        "{}",
        run.stderr
    );

    // sha256sum accepts the detached checksum; bundle verify accepts the bundle.
    let (code, out) = tool(
        "sha256sum",
        &["-c", "test-k8s-1.29.2-1.tar.zst.sha256"],
        &up.s.path("bundles"),
    );
    assert_eq!(code, 0, "{out}");
    let run = up.s.run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--pubkey",
        "builder.pub",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    // The index records original names, digests as upstream has them, and the subset.
    let index = inspect_json(&up);
    assert_eq!(index["images"].as_array().unwrap().len(), 10);
    let api = image_record(&index, "registry.k8s.io/kube-apiserver:v1.29.2");
    assert_eq!(api["digest"], up.seeded("kube-apiserver").digest.as_str());
    let node = image_record(&index, "docker.io/calico/node:v3.26.4");
    assert_eq!(node["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(
        node["sourceDigest"],
        up.seeded("calico/node").digest.as_str()
    );
    assert_ne!(node["digest"], node["sourceDigest"]);

    // skopeo reads the extracted layout and sees the upstream digests.
    let ex = up.s.path("extracted");
    extract(&bundle, &ex);
    let layout = ex.join("images");
    let raw = skopeo_raw(&format!(
        "oci:{}:registry.k8s.io/kube-apiserver:v1.29.2",
        layout.display()
    ));
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw)),
        up.seeded("kube-apiserver").digest
    );
    let raw = skopeo_raw(&format!(
        "oci:{}:docker.io/calico/node:v3.26.4",
        layout.display()
    ));
    let sub: Value = serde_json::from_slice(&raw).unwrap();
    let amd64 = &up
        .seeded("calico/node")
        .manifests
        .iter()
        .find(|(a, _)| a == "amd64")
        .unwrap()
        .1;
    assert_eq!(sub["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(sub["manifests"][0]["digest"], amd64.as_str());

    // Shared base layer stored once; the arm64-only top layer is not carried.
    let names: Vec<String> = common::craft::read_entries(&bundle)
        .into_iter()
        .map(|e| e.name)
        .collect();
    let base = format!(
        "images/blobs/sha256/{}",
        sha256_hex(&images::layer_bytes(Layer {
            seed: 1,
            size: 64 * 1024
        }))
    );
    assert_eq!(names.iter().filter(|n| **n == base).count(), 1);
    let arm = &up
        .seeded("calico/node")
        .manifests
        .iter()
        .find(|(a, _)| a == "arm64")
        .unwrap()
        .1;
    assert!(
        !names.contains(&format!("images/blobs/sha256/{}", &arm[7..])),
        "arm64 manifest must not be carried"
    );

    // minisign checks the index signature on its own.
    let (code, out) = tool(
        "minisign",
        &[
            "-V",
            "-p",
            "builder.pub",
            "-m",
            ex.join("bundle.json").to_str().unwrap(),
        ],
        &up.s.work(),
    );
    assert_eq!(code, 0, "{out}");

    // The layout is complete: skopeo copies an image from it into a fresh registry,
    // digests preserved.
    let second = Registry::start().unwrap();
    let (code, out) = tool(
        "skopeo",
        &[
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:docker.io/calico/node:v3.26.4", layout.display()),
            &format!("docker://{}/calico/node:v3.26.4", second.addr),
        ],
        &up.s.work(),
    );
    assert_eq!(code, 0, "{out}");
    let pushed = skopeo_raw(&format!("docker://{}/calico/node:v3.26.4", second.addr));
    assert_eq!(
        format!("sha256:{}", sha256_hex(&pushed)),
        node["digest"].as_str().unwrap()
    );
}

#[test]
fn build_keeps_whole_index_when_pinned_by_index_digest() {
    let up = upstream_with(
        images::default_manifest_images(1)
            .into_iter()
            .filter(|i| i.repository == "calico/cni")
            .collect(),
    );
    let digest = up.seeded("calico/cni").digest.clone();
    let reference = format!("docker.io/calico/cni@{digest}");
    let run = up.build(&up.manifest(&[&reference]), &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let index = inspect_json(&up);
    let img = image_record(&index, &reference);
    assert_eq!(img["digest"], digest.as_str());
    assert_eq!(
        img["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert!(img.get("sourceDigest").is_none());
}

#[test]
fn build_again_fetches_no_blob_it_already_has() {
    let up = upstream();
    let manifest = up.manifest(
        &default_images()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(up.build(&manifest, &[]).code, 0);
    let first = up.registry.blob_gets();
    let unique: std::collections::BTreeSet<String> = up
        .seeded
        .iter()
        .filter(|(i, _)| !i.repository.starts_with("calico/"))
        .flat_map(|(_, s)| s.blobs.clone())
        .collect();
    assert!(
        first >= unique.len(),
        "every blob fetched once: {first} < {}",
        unique.len()
    );
    std::fs::remove_file(up.bundle_path()).unwrap();
    let run = up.build(&manifest, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(
        up.registry.blob_gets(),
        first,
        "the second build fetched blobs again"
    );
    assert!(up.bundle_path().exists());
}

#[test]
fn build_killed_midway_resumes_without_fetching_again() {
    // Twelve 2 MiB layers pulled one at a time, so the kill lands between blobs.
    let list: Vec<TestImage> = (0..12)
        .map(|i| {
            TestImage::new(
                &format!("big{i}"),
                "v1",
                &[Layer {
                    seed: 100 + i,
                    size: 2 << 20,
                }],
            )
        })
        .collect();
    let up = upstream_with(list);
    let refs: Vec<String> = (0..12)
        .map(|i| format!("registry.k8s.io/big{i}:v1"))
        .collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    up.s.write("m.yaml", up.manifest(&refs));
    let addr = up.registry.addr.clone();
    let mut child =
        up.s.command(&[
            "build",
            "--manifest",
            "m.yaml",
            "--key",
            "builder.key",
            "--plain-http",
            &addr,
            "--mirror",
            &format!("registry.k8s.io={addr}"),
            "--jobs",
            "1",
        ])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let blobs = up.s.cache().join("bundle/blobs/sha256");
    let complete = |d: &Path| {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(Result::ok)
                    .filter(|e| {
                        e.metadata().map(|m| m.len() == 2 << 20).unwrap_or(false)
                            && !e.file_name().to_string_lossy().contains('.')
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while complete(&blobs) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before_kill = complete(&blobs);
    assert!(
        !up.bundle_path().exists(),
        "the build was killed before it finished"
    );
    assert!(
        (3..12).contains(&done_before_kill),
        "killed midway: {done_before_kill} of 12 layers complete"
    );
    let gets_before = up.registry.blob_gets();

    let run = up.build(&up.manifest(&refs), &["--jobs", "1"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let gets_after = up.registry.blob_gets() - gets_before;
    // 12 layers + 12 configs in all; the rerun fetches only those not complete before
    // (configs of finished images are tiny and were fetched along with them).
    assert!(
        gets_after <= 24 - done_before_kill,
        "rerun fetched {gets_after} blobs; {done_before_kill} layers were already complete"
    );
    let run = up.s.run(&[
        "verify",
        up.bundle_path().to_str().unwrap(),
        "--pubkey",
        "builder.pub",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
}

#[test]
fn build_stops_on_file_checksum_mismatch_and_writes_nothing() {
    let up = upstream_with(vec![]);
    up.files.put("calico.yaml", b"kind: Changed\n");
    let run = up.build(&up.manifest(&[]), &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    let found = sha256_hex(b"kind: Changed\n");
    let expected = sha256_hex(CALICO);
    assert!(run.stderr.contains(&format!("error: file `calico.yaml` from {}/calico.yaml has sha256 {found}, but the manifest pins {expected}", up.files.url)), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hint: if the file changed upstream on purpose"),
        "{}",
        run.stderr
    );
    assert!(
        !up.s.path("bundles").exists(),
        "no bundle folder after a failed build"
    );
    let cached = std::fs::read_dir(up.s.cache().join("bundle/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(cached, 0, "a mismatching download is not kept");
}

#[test]
fn build_retries_a_file_server_answering_503() {
    let up = upstream_with(vec![]);
    up.files.fail_next(2);
    let run = up.build(&up.manifest(&[]), &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert_eq!(up.files.requests(), 3, "two 503s, then the file");
}

#[test]
fn build_locked_catches_a_moved_tag() {
    let up = upstream_with(
        images::default_manifest_images(1)
            .into_iter()
            .filter(|i| i.repository == "pause")
            .collect(),
    );
    let manifest = up.manifest(&["registry.k8s.io/pause:3.9"]);
    assert_eq!(up.build(&manifest, &[]).code, 0);
    let lock: Value =
        serde_json::from_slice(&std::fs::read(up.s.path("m.lock.json")).unwrap()).unwrap();
    assert_eq!(
        lock["images"][0]["digest"],
        up.seeded("pause").digest.as_str()
    );

    // Someone pushes new content under the same tag.
    let moved = images::seed(
        &up.registry.addr,
        &TestImage::new(
            "pause",
            "3.9",
            &[Layer {
                seed: 999,
                size: 2048,
            }],
        ),
        up.scratch.path(),
    )
    .unwrap();
    let run = up.build(&manifest, &["--locked"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains(&format!("error: `registry.k8s.io/pause:3.9` no longer matches the lock: locked {}, upstream now {}", up.seeded("pause").digest, moved.digest)),
        "{}",
        run.stderr
    );
    // Without --locked the move is followed, said out loud, and the lock updated.
    let run = up.build(&manifest, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("warning: `registry.k8s.io/pause:3.9` moved upstream"),
        "{}",
        run.stderr
    );
    let lock: Value =
        serde_json::from_slice(&std::fs::read(up.s.path("m.lock.json")).unwrap()).unwrap();
    assert_eq!(lock["images"][0]["digest"], moved.digest.as_str());
}

#[test]
fn build_reports_an_unreachable_registry_with_a_hint() {
    let up = upstream_with(vec![]);
    let dead = format!("127.0.0.1:{}", bundle_testbed::free_port());
    up.s.write("m.yaml", up.manifest(&["registry.k8s.io/pause:3.9"]));
    let run = up.s.run(&[
        "build",
        "--manifest",
        "m.yaml",
        "--key",
        "builder.key",
        "--plain-http",
        &dead,
        "--mirror",
        &format!("registry.k8s.io={dead}"),
    ]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: image `registry.k8s.io/pause:3.9`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("Caused by: cannot reach registry `{dead}`")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("hint: nothing accepts connections at `{dead}`")),
        "{}",
        run.stderr
    );
    assert!(!up.s.path("bundles").exists());
}

#[test]
fn build_rejects_a_platform_the_image_does_not_have() {
    let up = upstream_with(
        images::default_manifest_images(1)
            .into_iter()
            .filter(|i| i.repository == "calico/cni")
            .collect(),
    );
    let manifest = up
        .manifest(&["docker.io/calico/cni:v3.26.4"])
        .replace("platforms: [linux/amd64]", "platforms: [linux/s390x]");
    let run = up.build(&manifest, &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("error: image `docker.io/calico/cni:v3.26.4` has no manifest for linux/s390x; it has linux/amd64, linux/arm64"), "{}", run.stderr);
}

#[test]
fn build_rejects_unknown_manifest_fields_naming_them() {
    let up = upstream_with(vec![]);
    let manifest = up
        .manifest(&[])
        .replace("  platforms:", "  platfroms: [x]\n  platforms:");
    let run = up.build(&manifest, &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("error: manifest `m.yaml` is malformed")
            && run.stderr.contains("platfroms"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: see manifests/README.md"),
        "{}",
        run.stderr
    );
}

#[test]
fn build_without_key_creates_the_default_key_and_says_where_the_public_key_is() {
    let up = upstream_with(vec![]);
    up.s.write("m.yaml", up.manifest(&[]));
    let run = up.s.run(&["build", "--manifest", "m.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(run.stderr.contains("warning: the public key `[TEMP_DIR]/config/bundle/bundle.pub` must travel to the isolated side"), "{}", run.stderr);
    let run = up.s.run(&["verify", up.bundle_path().to_str().unwrap()]);
    assert_eq!(
        run.code,
        0,
        "verify with the default public key: {}",
        run.transcript()
    );
    // The second build reuses the key without a notice.
    let run = up.s.run(&["build", "--manifest", "m.yaml"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        !run.stderr.contains("created your default signing key"),
        "{}",
        run.stderr
    );
}

#[test]
fn keygen_protects_the_key_and_build_needs_its_password() {
    let up = upstream_with(vec![]);
    up.s.write("m.yaml", up.manifest(&[]));
    let out =
        up.s.command(&["keygen", "--output", "site"])
            .env("BUNDLE_KEY_PASSWORD", "correct horse")
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read_to_string(up.s.path("site.key")).unwrap();
    assert!(!key.contains("correct horse"));
    // minisign itself accepts the public key: it verifies what bundle signs with it.
    let pubkey = std::fs::read_to_string(up.s.path("site.pub")).unwrap();
    assert!(
        pubkey.starts_with("untrusted comment: minisign public key"),
        "{pubkey}"
    );

    // No password and no terminal: the build stops before fetching anything, saying how.
    let run =
        up.s.run(&["build", "--manifest", "m.yaml", "--key", "site.key"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: key `site.key` is password-protected and no password was given"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: set BUNDLE_KEY_PASSWORD"),
        "{}",
        run.stderr
    );
    assert_eq!(up.files.requests(), 0);

    // A wrong password is refused; the right one signs.
    let out =
        up.s.command(&["build", "--manifest", "m.yaml", "--key", "site.key"])
            .env("BUNDLE_KEY_PASSWORD", "wrong")
            .output()
            .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Wrong password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out =
        up.s.command(&["build", "--manifest", "m.yaml", "--key", "site.key"])
            .env("BUNDLE_KEY_PASSWORD", "correct horse")
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = up.s.path("ex");
    extract(&up.bundle_path(), &ex);
    let (code, text) = tool(
        "minisign",
        &[
            "-V",
            "-p",
            "site.pub",
            "-m",
            ex.join("bundle.json").to_str().unwrap(),
        ],
        &up.s.work(),
    );
    assert_eq!(code, 0, "{text}");
}

#[test]
fn build_dry_run_resolves_and_sizes_everything_but_fetches_no_blob_and_writes_nothing() {
    let up = upstream();
    let refs = default_images();
    let manifest = up.manifest(&refs.iter().map(String::as_str).collect::<Vec<_>>());
    let run = up.build(&manifest, &["--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(up.registry.blob_gets(), 0, "a dry run fetched blobs");
    assert!(!up.bundle_path().exists());
    assert!(!up.s.path("m.lock.json").exists(), "a dry run wrote a lock");
    let files = &plan["files"][0];
    assert_eq!(files["name"], "calico.yaml");
    assert!(files["cached_bytes"].is_null(), "{files}");

    // Shared layers count once; only the manifests (read to resolve) are cached, so
    // every blob is still to download.
    let image_bytes = plan["image_bytes"].as_u64().unwrap();
    let per_image: u64 = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["bytes"].as_u64().unwrap())
        .sum();
    assert!(image_bytes < per_image, "{image_bytes} >= {per_image}");
    let manifests_cached = plan["image_bytes_cached"].as_u64().unwrap();
    assert!(
        manifests_cached > 0 && manifests_cached < 64 * 1024,
        "{plan}"
    );
    assert_eq!(
        plan["to_download"].as_u64().unwrap(),
        image_bytes - manifests_cached
    );

    // The build that follows carries exactly what the dry run named.
    let run = up.build(&manifest, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let index = inspect_json(&up);
    for image in plan["images"].as_array().unwrap() {
        let reference = image["reference"].as_str().unwrap();
        let record = image_record(&index, reference);
        assert_eq!(image["digest"], record["digest"], "{reference}");
    }
    // Everything is cached now: nothing to download, and still no blob fetched by a
    // second dry run.
    let gets = up.registry.blob_gets();
    let run = up.build(&manifest, &["--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let again: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(again["to_download"], 0, "{again}");
    assert_eq!(again["image_bytes_cached"].as_u64().unwrap(), image_bytes);
    assert!(again["files"][0]["cached_bytes"].as_u64().unwrap() > 0);
    assert_eq!(up.registry.blob_gets(), gets);

    // Without --json: one line per image and the totals, for people.
    let run = up.build(&manifest, &["--dry-run"]);
    assert!(
        run.stdout.contains("to download now: 0 B"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&refs[0]), "{}", run.stdout);
}
