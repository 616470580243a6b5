//! Upstream repos as RHEL, Rocky and Fedora machines have them, against real servers:
//! nginx over TLS requiring a client certificate (the Red Hat CDN's entitlement check,
//! certificates made with openssl), and mirror lists and metalinks served beside a
//! createrepo_c repo. Each error names the repo, gives a hint, and leaves no partial
//! file in the cache.

use std::path::{Path, PathBuf};

use bundle_builder::rpm::{fetch, RpmError, RpmFetchOptions, RpmTargetSpec, UpstreamRepo};
use bundle_builder::NoReport;
use bundle_format::Hint;
use bundle_testbed::real::nginx::{Nginx, NginxOptions};
use bundle_testbed::real::registry::{client_cert, expired_self_signed, test_tls, TestTls};
use bundle_testbed::real::rpms::{createrepo, RepoServer, RpmSpec};
use bundle_testbed::FileServer;
use sha2::Digest;

/// A yum repo with `foo` under `<dir>/repos/base`.
fn make_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repos/base");
    RpmSpec::new("foo", "1.0-1", "x86_64")
        .files(&["/usr/bin/foo"])
        .build(&dir.join("rpmbuild"), &repo)
        .unwrap();
    createrepo(&repo).unwrap();
    repo
}

fn target(repo: UpstreamRepo) -> RpmTargetSpec {
    RpmTargetSpec {
        target: "el9-x86_64".into(),
        releasever: "9".into(),
        arch: "x86_64".into(),
        repos: vec![repo],
        packages: vec!["foo".into()],
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

async fn run(dir: &Path, repo: UpstreamRepo) -> Result<Vec<String>, RpmError> {
    let out = fetch(&[target(repo)], &options(dir), &NoReport).await?;
    Ok(out.records[0]
        .packages
        .iter()
        .map(|p| p.nevra.clone())
        .collect())
}

/// Nothing half-written: no `.partial` file left in the cache.
fn assert_no_partial(dir: &Path) {
    let blobs = dir.join("cache/blobs/sha256");
    for e in std::fs::read_dir(&blobs).into_iter().flatten() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".partial"), "left behind: {name}");
    }
}

struct CertRepo {
    dir: tempfile::TempDir,
    tls: TestTls,
    server: Nginx,
}

/// The repo behind nginx, TLS, client certificates of `tls`'s CA required.
fn cert_repo() -> CertRepo {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let tls = test_tls(&dir.path().join("tls"), "127.0.0.1").unwrap();
    let server = Nginx::serve(
        &repo,
        &NginxOptions {
            tls: Some((tls.cert.clone(), tls.key.clone())),
            client_ca: Some(tls.ca.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    CertRepo { dir, tls, server }
}

impl CertRepo {
    fn repo(&self, cert: &Path, key: &Path) -> UpstreamRepo {
        UpstreamRepo {
            name: "rhel-9-baseos".into(),
            baseurl: Some(format!("{}/", self.server.url)),
            sslclientcert: Some(cert.into()),
            sslclientkey: Some(key.into()),
            sslcacert: Some(self.tls.ca.clone()),
            ..Default::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entitlement_certificate_opens_a_repo_that_requires_one() {
    let r = cert_repo();
    let (cert, key) = client_cert(&r.tls, &r.dir.path().join("entitlement")).unwrap();
    let got = run(r.dir.path(), r.repo(&cert, &key)).await.expect("fetch");
    assert_eq!(got, ["foo-1.0-1.x86_64"]);

    // Without one, the same server refuses: the certificate is what opened it.
    let err = run(
        r.dir.path(),
        UpstreamRepo {
            sslclientcert: None,
            sslclientkey: None,
            ..r.repo(&cert, &key)
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("HTTP 400"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_is_rejected_by_name() {
    let r = cert_repo();
    let other = test_tls(&r.dir.path().join("other-ca"), "127.0.0.1").unwrap();
    let (cert, key) = client_cert(&other, &r.dir.path().join("wrong")).unwrap();
    let err = run(r.dir.path(), r.repo(&cert, &key)).await.unwrap_err();
    assert!(
        matches!(err, RpmError::ClientCertRejected { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("repo `rhel-9-baseos` rejected client certificate"),
        "{msg}"
    );
    assert!(msg.contains(&cert.display().to_string()), "{msg}");
    assert!(err.hint().unwrap().contains("sslclientcert"));
    assert_no_partial(r.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_named_with_its_date_before_any_request() {
    let r = cert_repo();
    let (cert, key) =
        expired_self_signed(&r.dir.path().join("old"), "client", "DNS:client").unwrap();
    let err = run(r.dir.path(), r.repo(&cert, &key)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "repo `rhel-9-baseos`: client certificate `{}` expired on 2020-01-02",
            cert.display()
        )),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("subscription-manager refresh"));
    assert!(
        !r.server.log().contains("GET /"),
        "no request was made:\n{}",
        r.server.log()
    );
}

/// A repo on a RepoServer and a FileServer for mirror lists and metalinks.
struct Mirrored {
    dir: tempfile::TempDir,
    repo: RepoServer,
    lists: FileServer,
}

fn mirrored() -> Mirrored {
    let dir = tempfile::tempdir().unwrap();
    make_repo(dir.path());
    let repo = RepoServer::serve(&dir.path().join("repos")).unwrap();
    Mirrored {
        dir,
        repo,
        lists: FileServer::start().unwrap(),
    }
}

impl Mirrored {
    fn good(&self) -> String {
        format!("{}/base/", self.repo.url)
    }
    fn repomd_sha256(&self) -> String {
        let bytes = std::fs::read(self.dir.path().join("repos/base/repodata/repomd.xml")).unwrap();
        hex::encode(sha2::Sha256::digest(bytes))
    }
    fn metalink(&self, sha256: &str, mirrors: &[String]) -> String {
        let urls: String = mirrors
            .iter()
            .map(|m| format!("<url protocol=\"http\" type=\"http\" preference=\"100\">{m}repodata/repomd.xml</url>\n"))
            .collect();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<metalink version=\"3.0\" xmlns=\"http://www.metalinker.org/\">\n<files><file name=\"repomd.xml\"><verification><hash type=\"sha256\">{sha256}</hash></verification>\n<resources>{urls}</resources></file></files></metalink>\n"
        );
        self.lists.put("metalink", xml.as_bytes())
    }
}

const DEAD: &str = "http://127.0.0.1:9/base/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrorlist_skips_a_dead_mirror_and_expands_release_and_arch() {
    let m = mirrored();
    m.lists.put(
        "mirrors/9/x86_64",
        format!("# mirrors\n{DEAD}\n{}\n", m.good()).as_bytes(),
    );
    let repo = UpstreamRepo {
        name: "baseos".into(),
        mirrorlist: Some(format!("{}/mirrors/$releasever/$basearch", m.lists.url)),
        ..Default::default()
    };
    let got = run(m.dir.path(), repo).await.expect("fetch");
    assert_eq!(got, ["foo-1.0-1.x86_64"]);
    assert!(
        m.repo
            .requests()
            .iter()
            .any(|r| r == "200 /base/foo-1.0-1.x86_64.rpm"),
        "{:?}",
        m.repo.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrorlist_without_a_working_mirror_names_each_one_tried() {
    let m = mirrored();
    let dead2 = format!("{}/nothing-here/", m.repo.url);
    let url = m
        .lists
        .put("mirrorlist", format!("{DEAD}\n{dead2}\n").as_bytes());
    let repo = UpstreamRepo {
        name: "baseos".into(),
        mirrorlist: Some(url.clone()),
        ..Default::default()
    };
    let err = run(m.dir.path(), repo).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "repo `baseos`: no mirror listed by `{url}` works (tried 2:"
        )),
        "{msg}"
    );
    assert!(
        msg.contains(DEAD) && msg.contains("nothing-here/repodata/repomd.xml: HTTP 404"),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("baseurl"));
    assert_no_partial(m.dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metalink_checksum_picks_the_repo_and_a_mismatch_stops_the_build() {
    let m = mirrored();
    let good = m.metalink(&m.repomd_sha256(), &[DEAD.into(), m.good()]);
    let repo = |url: String| UpstreamRepo {
        name: "fedora".into(),
        metalink: Some(url),
        ..Default::default()
    };
    let got = run(m.dir.path(), repo(good)).await.expect("fetch");
    assert_eq!(got, ["foo-1.0-1.x86_64"]);

    let stale = m.metalink(&"ab".repeat(32), &[m.good()]);
    let err = run(m.dir.path(), repo(stale.clone())).await.unwrap_err();
    assert!(matches!(err, RpmError::MetalinkChecksum { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("repo `fedora`: "), "{msg}");
    assert!(
        msg.contains(&format!("does not match the metalink `{stale}`")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("got `sha256:{}`", m.repomd_sha256())),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("retry later"));
    assert_no_partial(m.dir.path());
}

#[tokio::test]
async fn a_repo_needs_exactly_one_source() {
    let dir = tempfile::tempdir().unwrap();
    let repo = UpstreamRepo {
        name: "two".into(),
        baseurl: Some("http://127.0.0.1:9/".into()),
        mirrorlist: Some("http://127.0.0.1:9/list".into()),
        ..Default::default()
    };
    let err = run(dir.path(), repo).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "repo `two`: it needs exactly one of `baseurl`, `mirrorlist` and `metalink`"
    );
}

/// Records what the RPM step reports.
#[derive(Default)]
struct Recorder {
    started: std::sync::Mutex<Vec<(String, usize, u64, u64)>>,
    bytes: std::sync::atomic::AtomicU64,
}

impl bundle_builder::BuildReporter for Recorder {
    fn rpm_fetch_started(&self, target: &str, packages: usize, to_fetch: u64, cached: u64) {
        self.started
            .lock()
            .unwrap()
            .push((target.into(), packages, to_fetch, cached));
    }
    fn fetched(&self, bytes: u64) {
        self.bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_downloads_are_reported_byte_for_byte_and_cached_ones_as_cached() {
    let m = mirrored();
    let size = std::fs::metadata(m.dir.path().join("repos/base/foo-1.0-1.x86_64.rpm"))
        .unwrap()
        .len();
    let spec = target(UpstreamRepo {
        name: "base".into(),
        baseurl: Some(m.good()),
        ..Default::default()
    });
    let first = Recorder::default();
    fetch(std::slice::from_ref(&spec), &options(m.dir.path()), &first)
        .await
        .unwrap();
    assert_eq!(
        *first.started.lock().unwrap(),
        [("el9-x86_64".to_string(), 1, size, 0)]
    );
    assert_eq!(first.bytes.load(std::sync::atomic::Ordering::SeqCst), size);

    let again = Recorder::default();
    fetch(std::slice::from_ref(&spec), &options(m.dir.path()), &again)
        .await
        .unwrap();
    assert_eq!(
        *again.started.lock().unwrap(),
        [("el9-x86_64".to_string(), 1, 0, size)]
    );
    assert_eq!(again.bytes.load(std::sync::atomic::Ordering::SeqCst), 0);
}
