//! EL8 module streams against a real EL8-shaped upstream (rpmbuild, createrepo_c,
//! `modifyrepo_c --mdtype=modules`, served on 127.0.0.1), judged by the real client:
//! dnf, in a root that looks like an EL8 host, installs the chosen stream's package from
//! the produced repo alone.
//!
//! One test builds the upstream once and walks through the behaviours that share it.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use bundle_builder::rpm::{
    fetch, RpmError, RpmFetchOptions, RpmOutput, RpmTargetSpec, UpstreamRepo,
};
use bundle_builder::NoReport;
use bundle_format::{Hint, RpmRepoRecord};
use bundle_testbed::fixtures::el8_modules::{
    ModularUpstream, HELPER, TOOL_NON_MODULAR, TOOL_STREAM_1, TOOL_STREAM_2,
};
use bundle_testbed::real::rpms::DnfRoot;

fn target(up: &ModularUpstream, packages: &[&str], modules: &[&str]) -> RpmTargetSpec {
    RpmTargetSpec {
        target: "el8-x86_64".into(),
        releasever: "8".into(),
        arch: "x86_64".into(),
        repos: vec![UpstreamRepo {
            name: "appstream".into(),
            baseurl: Some(up.repo_url()),
            ..Default::default()
        }],
        packages: packages.iter().map(|s| s.to_string()).collect(),
        exclude: vec![],
        modules: modules.iter().map(|s| s.to_string()).collect(),
    }
}

fn options(dir: &Path, locked: Option<Vec<RpmRepoRecord>>) -> RpmFetchOptions {
    RpmFetchOptions {
        cache_dir: dir.join("cache"),
        work_dir: dir.join("work"),
        http: Default::default(),
        jobs: 2,
        locked,
    }
}

async fn build(
    up: &ModularUpstream,
    dir: &Path,
    modules: &[&str],
    locked: Option<Vec<RpmRepoRecord>>,
) -> Result<RpmOutput, RpmError> {
    fetch(
        &[target(up, &["tool"], modules)],
        &options(dir, locked),
        &NoReport,
    )
    .await
}

fn nevras(out: &RpmOutput) -> BTreeSet<String> {
    out.records[0]
        .packages
        .iter()
        .map(|p| p.nevra.clone())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Copies the entries into `dir` under their entry paths; returns the target's repo.
fn materialize(out: &RpmOutput, dir: &Path) -> std::path::PathBuf {
    for (entry, file) in &out.entries {
        let dest = dir.join(entry.path.as_str());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(file, dest).unwrap();
    }
    dir.join("rpms/el8-x86_64")
}

/// The `modules` metadata of the repo at `repo`, decompressed, as repomd.xml points to it.
fn modules_yaml(repo: &Path) -> String {
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    let at = repomd
        .find("<data type=\"modules\">")
        .unwrap_or_else(|| panic!("no modules record in repomd.xml:\n{repomd}"));
    let record = &repomd[at..at + repomd[at..].find("</data>").unwrap()];
    for field in [
        "<checksum type=\"sha256\">",
        "<open-checksum type=\"sha256\">",
        "<size>",
        "<open-size>",
    ] {
        assert!(record.contains(field), "`{field}` in {record}");
    }
    let href = record.split("<location href=\"").nth(1).unwrap();
    let href = &href[..href.find('"').unwrap()];
    let mut text = String::new();
    gunzip(&repo.join(href), &mut text);
    text
}

/// Decompresses with the system's gzip: an independent reader.
fn gunzip(path: &Path, text: &mut String) {
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .expect("gzip");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    out.stdout.as_slice().read_to_string(text).unwrap();
}

/// dnf in a fresh EL8-looking root with only `repo`: runs each command, then returns
/// `rpm -qa` and the stream dnf recorded as enabled for `tools`.
fn dnf_el8(scratch: &Path, repo: &Path, commands: &[&[&str]]) -> (BTreeSet<String>, String) {
    let root = DnfRoot::new(scratch, repo, &[], "8")
        .unwrap()
        .with_platform("platform:el8")
        .unwrap();
    for c in commands {
        root.dnf(c).unwrap_or_else(|e| panic!("{e:#}"));
    }
    let state = std::fs::read_to_string(root.root.join("etc/dnf/modules.d/tools.module"))
        .unwrap_or_default();
    (root.installed().unwrap().into_iter().collect(), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_streams_decide_the_packages_and_dnf_installs_the_chosen_stream() {
    let up = ModularUpstream::build().expect("upstream fixture");
    let tmp = tempfile::tempdir().unwrap();

    // The fixture is what dnf says it is: on the upstream itself, the default stream
    // wins over the newer non-modular package.
    let (installed, _) = dnf_el8(
        &tmp.path().join("dnf-upstream"),
        &up.repo_dir(),
        &[&["install", "tool"]],
    );
    assert_eq!(installed, set(&[TOOL_STREAM_1, HELPER]));

    // Default: stream 1 (the newer non-modular `tool` is hidden).
    let default = build(&up, tmp.path(), &[], None)
        .await
        .expect("default build");
    assert_eq!(nevras(&default), set(&[TOOL_STREAM_1, HELPER]));
    assert_eq!(default.records[0].module_streams, ["tools:1"]);
    let repo = materialize(&default, &tmp.path().join("bundle-default"));
    let yaml = modules_yaml(&repo);
    assert!(yaml.contains("  name: tools\n  stream: \"1\"\n"), "{yaml}");
    assert!(
        !yaml.contains("stream: \"2\""),
        "only the carried stream: {yaml}"
    );
    assert!(
        !yaml.contains("name: extras"),
        "nothing of `extras` is carried: {yaml}"
    );
    assert!(
        yaml.contains("document: modulemd-defaults\nversion: 1\ndata:\n  module: \"tools\"\n  stream: \"1\"\n"),
        "{yaml}"
    );

    // `modules: [tools:2]`: stream 2's package, and a repo whose metadata makes dnf on
    // an EL8 host install it (and record the stream as enabled) with no other step.
    let two = build(&up, tmp.path(), &["tools:2"], None)
        .await
        .expect("tools:2 build");
    assert_eq!(nevras(&two), set(&[TOOL_STREAM_2, HELPER]));
    assert_eq!(two.records[0].module_streams, ["tools:2"]);
    let repo = materialize(&two, &tmp.path().join("bundle-two"));
    let yaml = modules_yaml(&repo);
    assert!(yaml.contains("  name: tools\n  stream: \"2\"\n"), "{yaml}");
    assert!(
        yaml.contains("module: \"tools\"\n  stream: \"2\"\n"),
        "{yaml}"
    );
    let (installed, state) = dnf_el8(&tmp.path().join("dnf-two"), &repo, &[&["install", "tool"]]);
    assert_eq!(installed, set(&[TOOL_STREAM_2, HELPER]));
    assert!(state.contains("stream=2"), "dnf enabled `tools:2`: {state}");
    // What an installer does where a host may have another stream enabled.
    let (installed, state) = dnf_el8(
        &tmp.path().join("dnf-enable"),
        &repo,
        &[
            &["module", "reset", "tools"],
            &["module", "enable", "tools:2"],
            &["install", "tool"],
        ],
    );
    assert_eq!(installed, set(&[TOOL_STREAM_2, HELPER]));
    assert!(state.contains("state=enabled"), "{state}");

    // A rebuild is byte-identical (no clock in the module metadata either).
    let again = build(&up, tmp.path(), &["tools:2"], None).await.unwrap();
    let digests = |o: &RpmOutput| {
        o.entries
            .iter()
            .map(|(e, _)| (e.path.clone(), e.sha256))
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&again), digests(&two), "rebuild is reproducible");

    // `--locked`: the same streams pass; another stream is refused, naming both.
    build(&up, tmp.path(), &["tools:2"], Some(two.records.clone()))
        .await
        .expect("locked build");
    let err = build(&up, tmp.path(), &[], Some(two.records.clone()))
        .await
        .err()
        .expect("module lock mismatch");
    assert_eq!(
        err.to_string(),
        "target `el8-x86_64`: the lock carries module streams [`tools:2`] but this build chooses [`tools:1`]"
    );
    assert!(err.hint().unwrap().contains("--locked"));

    // The hidden non-modular package cannot be pinned.
    let err = fetch(
        &[target(&up, &["tool-3.0"], &[])],
        &options(tmp.path(), None),
        &NoReport,
    )
    .await
    .err()
    .expect("hidden package");
    assert_eq!(
        err.to_string(),
        format!("target `el8-x86_64`: no package matches `tool-3.0` (`tool` is available as `1.0-1.module_el8+1+a1b2`); non-modular `{TOOL_NON_MODULAR}` is hidden by module stream `tools:1`")
    );
    assert!(
        err.hint().unwrap().contains("`spec.rpms[].modules`"),
        "{:?}",
        err.hint()
    );
    // So is the other stream's package while stream 1 is active.
    let err = fetch(
        &[target(&up, &["tool-2.0"], &[])],
        &options(tmp.path(), None),
        &NoReport,
    )
    .await
    .err()
    .expect("package of an inactive stream");
    assert!(
        err.to_string().ends_with(&format!(
            "; `{TOOL_STREAM_2}` is in module stream `tools:2`, which is not active"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_module_or_stream_is_named_with_what_exists_and_writes_nothing() {
    let up = ModularUpstream::build().expect("upstream fixture");
    let tmp = tempfile::tempdir().unwrap();
    let err = build(&up, tmp.path(), &["tools:9"], None)
        .await
        .err()
        .expect("unknown stream");
    assert_eq!(
        err.to_string(),
        "target `el8-x86_64`: module `tools` has no stream `9` in repo `appstream` (streams: `1`, `2`)"
    );
    assert_eq!(
        err.hint().unwrap(),
        "choose one of `tools:1`, `tools:2` in `spec.rpms[].modules`"
    );
    let err = build(&up, tmp.path(), &["container-tools:rhel8"], None)
        .await
        .err()
        .expect("unknown module");
    assert_eq!(
        err.to_string(),
        "target `el8-x86_64`: no repo of the target has module `container-tools` (repos: `appstream`)"
    );
    assert!(err.hint().unwrap().contains("`container-tools`"));
    let err = build(&up, tmp.path(), &["tools"], None)
        .await
        .err()
        .expect("not module:stream");
    assert_eq!(
        err.to_string(),
        "target `el8-x86_64`: `tools` in `modules` is not `module:stream`"
    );
    assert!(
        !tmp.path().join("work").exists(),
        "a failed build left output behind"
    );
}
