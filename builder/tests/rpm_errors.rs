//! Bad upstream input stops the RPM step with an error that names what and where, and a
//! hint. Each test builds a tiny real repo (rpmbuild + createrepo_c) on 127.0.0.1.

use std::path::{Path, PathBuf};

use bundle_builder::rpm::{fetch, RpmError, RpmFetchOptions, RpmTargetSpec, UpstreamRepo};
use bundle_builder::NoReport;
use bundle_format::Hint;
use bundle_testbed::real::rpms::{createrepo, GpgKey, RepoServer, RpmSpec};

struct Fixture {
    dir: tempfile::TempDir,
    server: RepoServer,
}

impl Fixture {
    /// Repo `base` with `pkgs`, optionally signed with `key`.
    fn new(pkgs: Vec<RpmSpec>, key: Option<&GpgKey>, dir: tempfile::TempDir) -> Self {
        let repo = dir.path().join("repos/base");
        let work = dir.path().join("work");
        let mut rpms = Vec::new();
        for p in pkgs {
            rpms.push(p.build(&work, &repo).unwrap());
        }
        if let Some(k) = key {
            k.sign(&rpms).unwrap();
        }
        createrepo(&repo).unwrap();
        let server = RepoServer::serve(&dir.path().join("repos")).unwrap();
        Fixture { dir, server }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repos/base")
    }

    fn spec(&self, packages: &[&str], gpgkey: Option<String>) -> RpmTargetSpec {
        spec_for(&format!("{}/base/", self.server.url), packages, gpgkey)
    }

    async fn fetch(&self, packages: &[&str], gpgkey: Option<String>) -> RpmError {
        fetch(
            &[self.spec(packages, gpgkey)],
            &options(self.dir.path()),
            &NoReport,
        )
        .await
        .err()
        .expect("an error")
    }

    /// The message with the server address replaced by `[URL]`.
    fn redact(&self, e: &RpmError) -> String {
        e.to_string().replace(&self.server.url, "[URL]")
    }
}

fn spec_for(baseurl: &str, packages: &[&str], gpgkey: Option<String>) -> RpmTargetSpec {
    RpmTargetSpec {
        target: "el9-x86_64".into(),
        releasever: "9".into(),
        arch: "x86_64".into(),
        repos: vec![UpstreamRepo {
            name: "base".into(),
            baseurl: Some(baseurl.into()),
            gpgkey,
            ..Default::default()
        }],
        packages: packages.iter().map(|s| s.to_string()).collect(),
        exclude: vec![],
        modules: vec![],
    }
}

fn options(dir: &Path) -> RpmFetchOptions {
    RpmFetchOptions {
        cache_dir: dir.join("cache"),
        work_dir: dir.join("work-out"),
        http: Default::default(),
        jobs: 2,
        locked: None,
    }
}

fn foo() -> RpmSpec {
    RpmSpec::new("foo", "1.0-1", "x86_64").files(&["/usr/bin/foo"])
}

/// `sha256:<64 hex>` → `sha256:[HEX]`.
fn redact_digests(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i + 7]);
        let tail = &rest[i + 7..];
        let n = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        out.push_str("[HEX]");
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn unknown_package_is_named_with_what_the_repos_offer() {
    let fx = Fixture::new(vec![foo()], None, tempfile::tempdir().unwrap());
    let err = fx.fetch(&["bar"], None).await;
    assert_eq!(
        err.to_string(),
        "target `el9-x86_64`: no package matches `bar` (no repo of the target has a package named like `bar`)"
    );
    assert!(err.hint().unwrap().contains("spec.rpms[].packages"));
    let err = fx.fetch(&["foo-2.0"], None).await;
    assert_eq!(
        err.to_string(),
        "target `el9-x86_64`: no package matches `foo-2.0` (`foo` is available as `1.0-1`)"
    );
}

#[tokio::test]
async fn unsatisfiable_requirement_names_package_and_requirement() {
    let fx = Fixture::new(
        vec![
            foo().requires(&["libmissing >= 2.0"]),
            RpmSpec::new("libmissing", "1.0-1", "x86_64"),
        ],
        None,
        tempfile::tempdir().unwrap(),
    );
    let err = fx.fetch(&["foo"], None).await;
    assert_eq!(
        err.to_string(),
        "target `el9-x86_64`: `foo-1.0-1.x86_64` requires `libmissing >= 2.0`, which no repo of the target provides"
    );
    assert_eq!(
        err.hint().unwrap(),
        "add the repo that provides it to `repos`"
    );
}

#[tokio::test]
async fn package_not_matching_upstream_checksum_is_refused_and_not_cached() {
    let fx = Fixture::new(vec![foo()], None, tempfile::tempdir().unwrap());
    // The mirror serves other bytes than its metadata describes.
    let rpm = fx.repo().join("foo-1.0-1.x86_64.rpm");
    let mut data = std::fs::read(&rpm).unwrap();
    data.push(0);
    std::fs::write(&rpm, data).unwrap();
    let err = fx.fetch(&["foo"], None).await;
    assert!(matches!(err, RpmError::PackageChecksum { .. }), "{err}");
    assert_eq!(
        redact_digests(&fx.redact(&err)),
        "package `foo-1.0-1.x86_64` from repo `base` does not match its checksum in the repo metadata \
         (expected `sha256:[HEX]`, got `sha256:[HEX]`, from `[URL]/base/foo-1.0-1.x86_64.rpm`)"
    );
    assert!(err.hint().unwrap().contains("not cached"));
    let blobs = fx.dir.path().join("cache/blobs/sha256");
    let left: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".partial"))
        .collect();
    assert!(left.is_empty(), "partial files left: {left:?}");
}

#[tokio::test]
async fn metadata_not_matching_repomd_checksum_is_refused() {
    let fx = Fixture::new(vec![foo()], None, tempfile::tempdir().unwrap());
    let repodata = fx.repo().join("repodata");
    let primary = std::fs::read_dir(&repodata)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("primary.xml.gz"))
        .unwrap();
    let mut data = std::fs::read(&primary).unwrap();
    data.push(0);
    std::fs::write(&primary, data).unwrap();
    let err = fx.fetch(&["foo"], None).await;
    assert!(matches!(err, RpmError::MetadataChecksum { .. }), "{err}");
    let msg = redact_digests(&fx.redact(&err));
    assert!(
        msg.starts_with("repo `base`: `[URL]/base/repodata/"),
        "{msg}"
    );
    assert!(
        msg.ends_with("primary.xml.gz` does not match the checksum in repomd.xml (expected `sha256:[HEX]`, got `sha256:[HEX]`)"),
        "{msg}"
    );
}

#[tokio::test]
async fn package_signed_with_another_key_has_a_bad_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signer = GpgKey::generate(&dir.path().join("signer"), "signer").unwrap();
    let other = GpgKey::generate(&dir.path().join("other"), "other").unwrap();
    let fx = Fixture::new(vec![foo()], Some(&signer), dir);
    std::fs::create_dir_all(fx.dir.path().join("repos/keys")).unwrap();
    std::fs::copy(&other.public, fx.dir.path().join("repos/keys/other.asc")).unwrap();
    std::fs::copy(&signer.public, fx.dir.path().join("repos/keys/signer.asc")).unwrap();

    let err = fx
        .fetch(&["foo"], Some(format!("{}/keys/other.asc", fx.server.url)))
        .await;
    assert!(matches!(err, RpmError::BadSignature { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("package `foo-1.0-1.x86_64` from repo `base` has a bad signature: "),
        "{msg}"
    );
    assert!(msg.contains("(signed by key `"), "{msg}");
    assert!(err.hint().unwrap().contains("gpgkey"));

    // With the right key it passes, and the key is shipped.
    let out = fetch(
        &[fx.spec(&["foo"], Some(format!("{}/keys/signer.asc", fx.server.url)))],
        &options(fx.dir.path()),
        &NoReport,
    )
    .await
    .expect("signed with the repo's key");
    assert_eq!(
        out.records[0].gpg_keys[0].as_str(),
        "rpms/el9-x86_64/keys/base.asc"
    );
}

#[tokio::test]
async fn unsigned_package_from_a_repo_with_gpgkey_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = GpgKey::generate(&dir.path().join("key"), "key").unwrap();
    let fx = Fixture::new(vec![foo()], None, dir);
    std::fs::copy(&key.public, fx.repo().join("key.asc")).unwrap();
    let err = fx
        .fetch(&["foo"], Some(format!("{}/base/key.asc", fx.server.url)))
        .await;
    assert_eq!(
        err.to_string(),
        "package `foo-1.0-1.x86_64` from repo `base` is not signed, but the repo has a `gpgkey`"
    );
}

#[tokio::test]
async fn unreachable_repo_is_named_with_its_url() {
    let port = bundle_testbed::free_port();
    let url = format!("http://127.0.0.1:{port}/el9/");
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        &[spec_for(&url, &["foo"], None)],
        &options(dir.path()),
        &NoReport,
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, RpmError::RepoUnreachable { .. }), "{err}");
    let msg = err.to_string().replace(&port.to_string(), "[PORT]");
    assert!(
        msg.starts_with("repo `base` is unreachable: GET `http://127.0.0.1:[PORT]/el9/repodata/repomd.xml` failed: "),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("baseurl"));
}

#[tokio::test]
async fn malformed_repomd_is_refused() {
    let fx = Fixture::new(vec![foo()], None, tempfile::tempdir().unwrap());
    std::fs::write(
        fx.repo().join("repodata/repomd.xml"),
        "<html><body>Welcome to nginx!</body></html>",
    )
    .unwrap();
    let err = fx.fetch(&["foo"], None).await;
    assert!(matches!(err, RpmError::MalformedRepomd { .. }), "{err}");
    assert_eq!(
        fx.redact(&err),
        "repo `base`: `[URL]/base/repodata/repomd.xml` is not valid repomd.xml: its root element is `<html>`, not `<repomd>`"
    );
    assert!(err.hint().unwrap().contains("repodata/repomd.xml"));

    // Valid XML that lists no primary.
    std::fs::write(
        fx.repo().join("repodata/repomd.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?><repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision></repomd>"#,
    )
    .unwrap();
    let err = fx.fetch(&["foo"], None).await;
    assert_eq!(
        fx.redact(&err),
        "repo `base`: `[URL]/base/repodata/repomd.xml` is not valid repomd.xml: it lists no `primary` metadata"
    );
}

#[tokio::test]
async fn transient_server_errors_are_retried() {
    let fx = Fixture::new(vec![foo()], None, tempfile::tempdir().unwrap());
    fx.server.fail_next(2);
    let out = fetch(
        &[fx.spec(&["foo"], None)],
        &options(fx.dir.path()),
        &NoReport,
    )
    .await
    .expect("retried");
    assert_eq!(out.records[0].packages[0].nevra, "foo-1.0-1.x86_64");
    let log = fx.server.requests();
    assert_eq!(
        log.iter().filter(|l| l.starts_with("503 ")).count(),
        2,
        "{log:?}"
    );
}
