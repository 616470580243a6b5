//! `bundle build` with `spec.rpms`: the whole chain through the CLI — upstream yum
//! repos built with rpmbuild and served on 127.0.0.1, the bundle verified, extracted
//! with tar, and dnf (only that repo enabled, gpgcheck=1 with the shipped keys)
//! installing the pinned package list into a fresh root.

mod common;

use bundle_testbed::fixtures::el8_modules::ModularUpstream;
use bundle_testbed::fixtures::ha_repos::{Upstream, HA_PACKAGES};
use bundle_testbed::real::rpms::dnf_install;
use common::{tool, Session};

#[test]
fn build_carries_rpms_that_dnf_installs_from_the_extracted_bundle() {
    let up = Upstream::ha().expect("upstream repos");
    let s = Session::new();
    s.keygen("builder");
    let packages = HA_PACKAGES.join(", ");
    let manifest = format!(
        "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: rpms-only, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: kubernetes, baseurl: '{k}', gpgkey: '{key}'}}\n        - {{name: docker-ce, baseurl: '{d}', gpgkey: '{key}'}}\n        - {{name: base, baseurl: '{b}', gpgkey: '{bkey}'}}\n      packages: [{packages}]\n",
        k = up.repo_url("kubernetes"),
        d = up.repo_url("docker-ce"),
        b = up.repo_url("base"),
        key = up.key_url("bundle-test"),
        bkey = up.key_url("bundle-test-base"),
    );
    s.write("rpms.yaml", manifest);
    // The dry run resolves the same closure and downloads none of it.
    let run = s.run(&["build", "--manifest", "rpms.yaml", "--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let planned = &plan["rpms"][0];
    assert_eq!(planned["target"], "el9-x86_64", "{plan}");
    assert_eq!(planned["cached_bytes"], 0, "{plan}");
    assert!(!s.path("bundles").exists(), "a dry run wrote a bundle");
    // Packages are cached by digest, without a name: look for the RPM lead's magic.
    let is_rpm = |p: &std::path::PathBuf| {
        let mut magic = [0u8; 4];
        std::fs::File::open(p)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == [0xed, 0xab, 0xee, 0xdb]
    };
    let cached_rpms = walk_files(&s.dir.path().join("cache"))
        .iter()
        .filter(|p| is_rpm(p))
        .count();
    assert_eq!(cached_rpms, 0, "a dry run downloaded packages");

    let run = s.run(&["build", "--manifest", "rpms.yaml", "--key", "builder.key"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let bundle = s.path("bundles/rpms-only-1.tar.zst");

    let run = s.run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--pubkey",
        "builder.pub",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());

    // inspect lists the packages per target, with the pinned versions.
    let run = s.run(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("rpms el9-x86_64 (releasever 9, x86_64;"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("kubeadm-1.29.2-"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("kubeadm-1.29.3"),
        "the pin decides, not the newest: {}",
        run.stdout
    );

    // The lock records every NEVRA.
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("rpms.lock.json")).unwrap()).unwrap();
    let locked: Vec<&str> = lock["rpms"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nevra"].as_str().unwrap())
        .collect();
    assert_eq!(
        planned["packages"].as_u64().unwrap() as usize,
        locked.len(),
        "the dry run's closure is the build's"
    );
    assert!(
        walk_files(&s.dir.path().join("cache"))
            .iter()
            .filter(|p| is_rpm(p))
            .count()
            >= locked.len(),
        "the magic check finds the packages a build caches"
    );
    assert!(
        locked.iter().any(|n| n.starts_with("kubelet-1.29.2-")),
        "{locked:?}"
    );

    // Extracted with tar, the repo is a yum repo dnf installs from, signatures checked.
    let ex = s.path("extracted");
    std::fs::create_dir_all(&ex).unwrap();
    let (code, out) = tool(
        "tar",
        &[
            "-I",
            "zstd",
            "-xf",
            bundle.to_str().unwrap(),
            "-C",
            ex.to_str().unwrap(),
        ],
        &ex,
    );
    assert_eq!(code, 0, "{out}");
    let repo = ex.join("rpms/el9-x86_64");
    let keys: Vec<_> = std::fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 3, "one key per upstream repo: {keys:?}");
    let scratch = tempfile::tempdir().unwrap();
    let installed = dnf_install(scratch.path(), &repo, &keys, HA_PACKAGES)
        .expect("dnf install from the bundle's repo");
    for pinned in [
        "kubeadm-1.29.2-",
        "kubelet-1.29.2-",
        "kubectl-1.29.2-",
        "cri-tools-1.29.0-",
        "kubernetes-cni-1.3.0-",
    ] {
        assert!(
            installed.iter().any(|p| p.starts_with(pinned)),
            "{pinned} installed: {installed:?}"
        );
    }
}

fn el8_manifest(up: &ModularUpstream, modules: &str) -> String {
    format!(
        "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: el8, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  rpms:\n    - target: el8-x86_64\n      releasever: \"8\"\n      arch: x86_64\n      repos:\n        - {{name: appstream, baseurl: '{}'}}\n      packages: [tool]\n{modules}",
        up.repo_url()
    )
}

#[test]
fn build_names_el8_module_streams_and_stops_on_one_that_does_not_exist() {
    let up = ModularUpstream::build().expect("EL8 upstream");
    let s = Session::new();
    s.keygen("builder");
    let bundle = s.path("bundles/el8-1.tar.zst");
    let lock = s.path("el8.lock.json");
    let build = |s: &Session, extra: &[&str]| {
        let mut args = vec!["build", "--manifest", "el8.yaml", "--key", "builder.key"];
        args.extend_from_slice(extra);
        s.run(&args)
    };

    // A stream that does not exist: named with the module, the streams there are and
    // the repo, with a hint; no bundle, no lock.
    s.write("el8.yaml", el8_manifest(&up, "      modules: [tools:9]\n"));
    let run = build(&s, &[]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("error: target `el8-x86_64`: module `tools` has no stream `9` in repo `appstream` (streams: `1`, `2`)"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("hint: choose one of `tools:1`, `tools:2` in `spec.rpms[].modules`"),
        "{}",
        run.stderr
    );
    assert!(!bundle.exists(), "a failed build wrote a bundle");
    assert!(!lock.exists(), "a failed build wrote a lock");

    // The dry run names the stream chosen.
    s.write("el8.yaml", el8_manifest(&up, "      modules: [tools:2]\n"));
    let run = s.run(&["build", "--manifest", "el8.yaml", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("    module streams: tools:2\n"),
        "{}",
        run.stdout
    );
    let run = s.run(&["build", "--manifest", "el8.yaml", "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["rpms"][0]["module_streams"][0], "tools:2", "{plan}");

    // Built, the lock records the stream; `--locked` refuses another one.
    let run = build(&s, &[]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(bundle.exists());
    let run = s.run(&["inspect", bundle.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.contains("\nmodule streams: tools:2\n"),
        "{}",
        run.stdout
    );
    let locked: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(
        locked["rpms"][0]["moduleStreams"],
        serde_json::json!(["tools:2"])
    );
    s.write("el8.yaml", el8_manifest(&up, ""));
    let run = build(&s, &["--locked"]);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("error: target `el8-x86_64`: the lock carries module streams [`tools:2`] but this build chooses [`tools:1`]"), "{}", run.stderr);
}

/// A yum repo with `foo` behind nginx's Basic auth (user `bob`, `password`).
struct BasicRepo {
    server: bundle_testbed::real::nginx::Nginx,
    _dir: tempfile::TempDir,
}

const REPO_PASSWORD: &str = "r3po-Pa55";

fn basic_repo() -> BasicRepo {
    use bundle_testbed::real::nginx::{Nginx, NginxOptions};
    use bundle_testbed::real::rpms::{createrepo, RpmSpec};
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    RpmSpec::new("foo", "1.0-1", "x86_64")
        .files(&["/usr/bin/foo"])
        .build(&dir.path().join("rpmbuild"), &repo)
        .unwrap();
    createrepo(&repo).unwrap();
    let opts = NginxOptions {
        basic_auth: Some(("bob".into(), REPO_PASSWORD.into())),
        ..Default::default()
    };
    BasicRepo {
        server: Nginx::serve(&repo, &opts).unwrap(),
        _dir: dir,
    }
}

fn basic_manifest(url: &str, auth: &str) -> String {
    format!(
        "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata: {{name: corp, version: '1'}}\nspec:\n  platforms: [linux/amd64]\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: corp, baseurl: '{url}/', {auth}}}\n      packages: [foo]\n"
    )
}

fn build_with(s: &Session, password: Option<&str>) -> common::Run {
    let mut c = s.command(&[
        "-v",
        "build",
        "--manifest",
        "corp.yaml",
        "--key",
        "builder.key",
    ]);
    match password {
        Some(p) => c.env("CORP_REPO_PASSWORD", p),
        None => c.env_remove("CORP_REPO_PASSWORD"),
    };
    s.run_command(c)
}

#[test]
fn build_reads_a_repo_password_from_the_variable_the_manifest_names_and_never_shows_it() {
    let repo = basic_repo();
    let s = Session::new();
    s.keygen("builder");
    let auth = "username: bob, passwordEnv: CORP_REPO_PASSWORD";
    s.write("corp.yaml", basic_manifest(&repo.server.url, auth));
    let bundle = s.path("bundles/corp-1.tar.zst");

    // Missing variable: named, with a hint, before any request; nothing written.
    let run = build_with(&s, None);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stderr.contains("error: repo `corp`: environment variable `CORP_REPO_PASSWORD` (its `passwordEnv`) is not set"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: export `CORP_REPO_PASSWORD`"),
        "{}",
        run.stderr
    );
    assert!(!bundle.exists());

    // Wrong password: the repo's 401, with the user and the variable in the hint.
    let run = build_with(&s, Some("not-it"));
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: repo `corp` refused access (HTTP 401)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: check `username: bob` and the password in `CORP_REPO_PASSWORD`"),
        "{}",
        run.stderr
    );
    assert!(!bundle.exists());

    // Right password: built, the RPM step in the progress output, the password nowhere.
    let run = build_with(&s, Some(REPO_PASSWORD));
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(bundle.exists());
    assert!(
        run.stderr
            .contains("Fetching RPMs for `el9-x86_64`: 1 package,"),
        "{}",
        run.stderr
    );
    for (what, text) in [
        ("stderr", run.stderr.clone()),
        (
            "lock",
            std::fs::read_to_string(s.path("corp.lock.json")).unwrap(),
        ),
        (
            "manifest",
            std::fs::read_to_string(s.path("corp.yaml")).unwrap(),
        ),
    ] {
        assert!(
            !text.contains(REPO_PASSWORD),
            "{what} shows the password: {text}"
        );
    }
    assert!(
        repo.server.log().contains("\"bob\"") || repo.server.log().contains(" bob "),
        "nginx saw user bob:\n{}",
        repo.server.log()
    );
}

#[test]
fn build_refuses_a_password_written_in_the_manifest() {
    let s = Session::new();
    s.keygen("builder");
    s.write(
        "corp.yaml",
        basic_manifest("http://127.0.0.1:9", "username: bob, password: hunter2"),
    );
    let run = build_with(&s, None);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("error: repo `corp`: `password` is not read from the manifest"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: put the password in an environment variable and name it: `passwordEnv: REPO_PASSWORD`"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

/// Every file under `dir`, recursively (none when it does not exist).
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_files(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}
