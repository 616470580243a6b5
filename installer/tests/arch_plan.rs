//! Hosts of more than one architecture (`spec.hosts[].arch`): each installs from its
//! own architecture's RPM target of the bundle, the repository host serves them all,
//! and a host no target or image covers is a problem of the plan.

mod common;

use bundle_installer::facts::{RpmFact, RpmRepoFacts};
use bundle_installer::{plan, HostStep, Inventory, Plan, Problem};
use common::*;

/// The sample inventory (3 masters, 2 workers), the second worker (`server9`) an arm64
/// machine as `arch` says it.
fn arm64_worker_inventory(arch_line: &str) -> String {
    inventory_yaml(3, 2).replace(
        "{name: server9, address: 172.25.19.9, roles: [worker]}",
        &format!("{{name: server9, address: 172.25.19.9, roles: [worker]{arch_line}}}"),
    )
}

/// `facts()`'s repository again as `target` for `arch` (`el9-aarch64`).
fn repo_for(target: &str, releasever: &str, arch: &str) -> RpmRepoFacts {
    let mut r = facts().rpm_repos[0].clone();
    r.target = target.into();
    r.releasever = releasever.into();
    r.arch = arch.into();
    r.packages = r
        .packages
        .iter()
        .map(|p| RpmFact {
            nevra: p.nevra.replace(".x86_64", &format!(".{arch}")),
            ..p.clone()
        })
        .collect();
    r
}

/// A bundle built for `linux/amd64` and `linux/arm64` with both RPM targets.
fn two_arch_facts() -> bundle_installer::BundleFacts {
    let mut f = facts();
    f.rpm_repos.push(repo_for("el9-aarch64", "9", "aarch64"));
    f.image_platforms = vec!["linux/amd64".into(), "linux/arm64".into()];
    f
}

fn problems_of(yaml: &str, facts: &bundle_installer::BundleFacts) -> Vec<Problem> {
    plan(&cluster_from(yaml), facts, &inputs()).unwrap_err()
}

fn command(plan: &Plan, host: &str, id: &str) -> String {
    let (_, step) = plan
        .host_steps(host)
        .find(|(_, s)| s.id == id)
        .unwrap_or_else(|| panic!("{host} has no step {id}"));
    match &step.action {
        HostStep::Run { command, .. } => command.clone(),
        HostStep::WaitFor { condition, .. } => condition.clone(),
        other => panic!("{id} is {other:?}"),
    }
}

#[test]
fn an_arm64_worker_installs_from_the_aarch64_target_and_the_others_from_x86_64() {
    let p = plan(
        &cluster_from(&arm64_worker_inventory(", arch: aarch64")),
        &two_arch_facts(),
        &inputs(),
    )
    .unwrap();

    let arm = file_of(&p, "server9", "/etc/yum.repos.d/bundle.repo");
    assert!(arm.contains("[bundle-el9-aarch64]"), "{arm}");
    assert!(
        arm.contains("baseurl=http://172.25.19.5:8081/el9-aarch64/"),
        "{arm}"
    );
    let install = command(&p, "server9", "repo/install");
    assert!(
        install.contains("--enablerepo=bundle-el9-aarch64"),
        "{install}"
    );
    assert!(
        install.contains("kubelet-1.29.2-150500.1.1.aarch64"),
        "{install}"
    );
    assert!(!install.contains(".x86_64"), "{install}");

    for host in ["server5", "server8"] {
        let x86 = file_of(&p, host, "/etc/yum.repos.d/bundle.repo");
        assert!(
            x86.contains("baseurl=http://172.25.19.5:8081/el9-x86_64/"),
            "{x86}"
        );
        let install = command(&p, host, "repo/install");
        assert!(
            install.contains("kubelet-1.29.2-150500.1.1.x86_64"),
            "{install}"
        );
        assert!(!install.contains(".aarch64"), "{install}");
    }

    // The repository host serves both targets, and waits for both to answer.
    let copies: Vec<(String, String)> = p
        .host_steps("server5")
        .filter_map(|(_, s)| match &s.action {
            HostStep::CopyFromBundle { entries, dest } => Some((entries.clone(), dest.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        copies,
        [
            (
                "rpms/el9-x86_64/".into(),
                "/var/lib/bundle/repo/el9-x86_64".into()
            ),
            (
                "rpms/el9-aarch64/".into(),
                "/var/lib/bundle/repo/el9-aarch64".into()
            ),
        ]
    );
    let ready = command(&p, "server5", "repo/ready-el9-aarch64");
    assert!(
        ready.contains("http://172.25.19.5:8081/el9-aarch64/repodata/repomd.xml"),
        "{ready}"
    );

    // Preflight holds every host to the architecture the inventory gives it.
    let arm_check = command(&p, "server9", "preflight/arch");
    assert!(
        arm_check.starts_with("[ \"$(uname -m)\" = aarch64 ]"),
        "{arm_check}"
    );
    let x86_check = command(&p, "server8", "preflight/arch");
    assert!(
        x86_check.starts_with("[ \"$(uname -m)\" = x86_64 ]"),
        "{x86_check}"
    );
}

#[test]
fn arm64_is_read_as_aarch64() {
    let p = plan(
        &cluster_from(&arm64_worker_inventory(", arch: arm64")),
        &two_arch_facts(),
        &inputs(),
    )
    .unwrap();
    let install = command(&p, "server9", "repo/install");
    assert!(
        install.contains("--enablerepo=bundle-el9-aarch64"),
        "{install}"
    );
}

#[test]
fn a_host_whose_architecture_no_target_covers_is_named() {
    let mut f = two_arch_facts();
    f.rpm_repos.retain(|r| r.arch == "x86_64");
    let problems = problems_of(&arm64_worker_inventory(", arch: aarch64"), &f);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "spec.hosts");
    assert_eq!(
        problems[0].message,
        "`server9` is aarch64, but the bundle carries no RPM target for aarch64 (it has el9-x86_64): build the bundle with an `rpms` target for aarch64, or correct `arch`"
    );
}

#[test]
fn a_host_whose_architecture_the_images_lack_is_named() {
    let mut f = two_arch_facts();
    f.image_platforms = vec!["linux/amd64".into()];
    let problems = problems_of(&arm64_worker_inventory(", arch: aarch64"), &f);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "spec.hosts");
    assert!(
        problems[0]
            .message
            .starts_with("`server9` is aarch64, but not every image of the bundle is there for linux/arm64 (all of them are for linux/amd64)"),
        "{}",
        problems[0].message
    );
}

#[test]
fn the_release_asked_for_holds_for_every_architecture() {
    // Two x86_64 releases and one aarch64 one: without `spec.repo.target` the x86_64
    // hosts' choice is open; asking for EL8 leaves the arm64 worker without a target.
    let mut f = two_arch_facts();
    f.rpm_repos.push(repo_for("el8-x86_64", "8", "x86_64"));
    let yaml = arm64_worker_inventory(", arch: aarch64");
    let problems = problems_of(&yaml, &f);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "spec.repo.target");
    assert_eq!(
        problems[0].message,
        "the bundle carries several RPM targets for x86_64 (el9-x86_64, el8-x86_64); say which to install"
    );

    let el8 = yaml.replace(
        "servedBy: server5,",
        "servedBy: server5, target: el8-x86_64,",
    );
    let problems = problems_of(&el8, &f);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].message.starts_with(
            "`server9` is aarch64, but the bundle carries no release 8 RPM target for aarch64"
        ),
        "{}",
        problems[0].message
    );

    let el9 = yaml.replace(
        "servedBy: server5,",
        "servedBy: server5, target: el9-x86_64,",
    );
    let p = plan(&cluster_from(&el9), &f, &inputs()).unwrap();
    let arm = file_of(&p, "server9", "/etc/yum.repos.d/bundle.repo");
    assert!(arm.contains("/el9-aarch64/"), "{arm}");
    let x86 = file_of(&p, "server8", "/etc/yum.repos.d/bundle.repo");
    assert!(x86.contains("/el9-x86_64/"), "{x86}");
}

#[test]
fn an_architecture_kubernetes_does_not_run_on_is_refused() {
    let yaml = arm64_worker_inventory(", arch: sparc64");
    let problems = Inventory::parse(&yaml)
        .unwrap()
        .validate(false)
        .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "spec.hosts[4].arch");
    assert_eq!(
        problems[0].message,
        "`sparc64` is not an architecture Kubernetes runs on: use one of x86_64, aarch64, ppc64le, s390x (as `uname -m` prints it)"
    );
}

#[test]
fn a_single_architecture_plan_keeps_its_step_ids() {
    // One target: no target in the ids (plans of existing installs stay the same).
    let p = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    let ids: Vec<&str> = p
        .host_steps("server5")
        .map(|(_, s)| s.id.as_str())
        .filter(|id| id.starts_with("repo/"))
        .collect();
    assert_eq!(
        ids,
        [
            "repo/copy",
            "repo/unit",
            "repo/firewall",
            "repo/serve",
            "repo/ready",
            "repo/file",
            "repo/install"
        ]
    );
}

#[test]
fn an_el8_repository_host_serves_with_the_python_dnf_runs_on() {
    // A minimal EL8 has no python3; its dnf runs on platform-python (3.6, without
    // http.server's --directory).
    let mut f = facts();
    f.rpm_repos = vec![repo_for("el8-x86_64", "8", "x86_64")];
    let p = plan(&cluster(3, 1), &f, &inputs()).unwrap();
    let unit = file_of(&p, "server5", "/etc/systemd/system/bundle-repo.service");
    assert!(
        unit.contains("WorkingDirectory=/var/lib/bundle/repo\nExecStart=/usr/libexec/platform-python -m http.server --bind 172.25.19.5 8081\n"),
        "{unit}"
    );
    let el9 = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    let unit = file_of(&el9, "server5", "/etc/systemd/system/bundle-repo.service");
    assert!(
        unit.contains("ExecStart=/usr/bin/python3 -m http.server"),
        "{unit}"
    );
}

#[test]
fn el8_module_streams_are_enabled_from_the_bundle_before_the_packages() {
    let mut f = facts();
    let mut el8 = repo_for("el8-x86_64", "8", "x86_64");
    el8.module_streams = vec!["container-tools:rhel8".into()];
    f.rpm_repos = vec![el8];
    let p = plan(&cluster(3, 1), &f, &inputs()).unwrap();
    let ids: Vec<&str> = p
        .host_steps("server8")
        .map(|(_, s)| s.id.as_str())
        .filter(|id| id.starts_with("repo/"))
        .collect();
    assert_eq!(
        ids,
        ["repo/file", "repo/module-container-tools", "repo/install"]
    );
    let enable = command(&p, "server8", "repo/module-container-tools");
    assert_eq!(
        enable,
        "dnf -y --disablerepo='*' --enablerepo=bundle-el8-x86_64 module reset container-tools && dnf -y --disablerepo='*' --enablerepo=bundle-el8-x86_64 module enable container-tools:rhel8"
    );
    // None on EL9.
    let el9 = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    assert!(!el9
        .host_steps("server8")
        .any(|(_, s)| s.id.starts_with("repo/module-")));
}
