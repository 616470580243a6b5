//! The upgrade plan: kubeadm's documented order (control plane master by master, then
//! every node drained, upgraded and uncordoned), the kubeadm API of the target version,
//! workers in groups of `--parallel`.

mod common;

use bundle_installer::plan::{upgrade, PhaseName};
use bundle_installer::{HostStep, Plan};
use common::*;

fn phase(plan: &Plan, name: PhaseName) -> &bundle_installer::plan::Phase {
    plan.phases.iter().find(|p| p.name == name).unwrap()
}

fn command<'p>(plan: &'p Plan, name: PhaseName, host: &str, id: &str) -> &'p str {
    let step = phase(plan, name)
        .hosts
        .iter()
        .filter(|h| h.host == host)
        .flat_map(|h| &h.steps)
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{host} has no {id}"));
    match &step.action {
        HostStep::Run { command, .. } => command,
        other => panic!("{id} is not a command: {other:?}"),
    }
}

#[test]
fn upgrade_plan_three_masters_one_worker() {
    let plan = upgrade(
        &cluster(3, 1),
        &facts_with("v1.30.1", Some("1.7.13"), "calico"),
        &inputs(),
        1,
    )
    .unwrap();
    insta::assert_snapshot!(plan.to_text());
}

#[test]
fn the_control_plane_goes_master_by_master_with_apply_on_the_first() {
    let plan = upgrade(
        &cluster(3, 5),
        &facts_with("v1.30.1", Some("1.6.28"), "calico"),
        &inputs(),
        1,
    )
    .unwrap();
    let names: Vec<PhaseName> = plan.phases.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            PhaseName::Preflight,
            PhaseName::Repo,
            PhaseName::Upgrade,
            PhaseName::Nodes,
            PhaseName::Cni,
            PhaseName::Verify
        ]
    );
    let up = phase(&plan, PhaseName::Upgrade);
    let waves: Vec<(&str, u32)> = up.hosts.iter().map(|h| (h.host.as_str(), h.wave)).collect();
    assert_eq!(waves, [("server5", 0), ("server6", 1), ("server7", 2)]);
    // v1beta3 (below 1.31): the version is an argument, no configuration file.
    assert_eq!(
        command(&plan, PhaseName::Upgrade, "server5", "upgrade/apply"),
        "kubeadm upgrade apply v1.30.1 --yes"
    );
    assert!(
        command(&plan, PhaseName::Upgrade, "server5", "upgrade/plan")
            .contains("grep -q 'kubeadm upgrade apply v1.30.1'")
    );
    assert_eq!(
        command(&plan, PhaseName::Upgrade, "server6", "upgrade/node"),
        "kubeadm upgrade node"
    );
    assert!(up
        .hosts
        .iter()
        .flat_map(|h| &h.steps)
        .all(|s| s.id != "upgrade/config"));
    // kubeadm comes from the served repository, its metadata read again.
    let kubeadm = command(&plan, PhaseName::Upgrade, "server6", "upgrade/kubeadm");
    assert!(
        kubeadm.starts_with("dnf install -y --refresh --disablerepo='*'"),
        "{kubeadm}"
    );
}

#[test]
fn from_1_31_kubeadm_reads_an_upgrade_configuration() {
    let plan = upgrade(
        &cluster(3, 1),
        &facts_with("v1.31.2", Some("2.0.0"), "calico"),
        &inputs(),
        1,
    )
    .unwrap();
    assert_eq!(
        command(&plan, PhaseName::Upgrade, "server5", "upgrade/apply"),
        "kubeadm upgrade apply --config /etc/kubernetes/bundle/kubeadm-upgrade.yaml --yes"
    );
    assert_eq!(
        command(&plan, PhaseName::Nodes, "server8", "nodes/kubeadm-node"),
        "kubeadm upgrade node --config /etc/kubernetes/bundle/kubeadm-upgrade.yaml"
    );
    let config = file_of(
        &plan,
        "server6",
        "/etc/kubernetes/bundle/kubeadm-upgrade.yaml",
    );
    assert!(
        config.starts_with("apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n"),
        "{config}"
    );
    assert!(
        config.contains("apply:\n  kubernetesVersion: \"v1.31.2\""),
        "{config}"
    );
    // containerd 2 in the new bundle: its configuration migrates to version 3 in each
    // node's drained window.
    let toml = file_of(&plan, "server8", "/etc/containerd/config.toml");
    assert!(
        toml.starts_with("version = 3") || toml.contains("\nversion = 3"),
        "{toml}"
    );
}

#[test]
fn each_group_is_drained_upgraded_then_uncordoned_and_workers_go_two_at_a_time() {
    let plan = upgrade(&cluster(3, 5), &facts(), &inputs(), 2).unwrap();
    let nodes = phase(&plan, PhaseName::Nodes);
    // (wave, host, first step id)
    let layout: Vec<(u32, &str, &str)> = nodes
        .hosts
        .iter()
        .map(|h| (h.wave, h.host.as_str(), h.steps[0].id.as_str()))
        .collect();
    let groups: [&[&str]; 6] = [
        &["server5"],
        &["server6"],
        &["server7"],
        &["server8", "server9"],
        &["server10", "server11"],
        &["server12"],
    ];
    let mut expected = Vec::new();
    for (k, group) in groups.iter().enumerate() {
        let w = 3 * k as u32;
        expected.push((w, "server5", format!("nodes/drain-{}", group[0])));
        for n in *group {
            let first =
                if n.starts_with("server5") || n.starts_with("server6") || n.starts_with("server7")
                {
                    "containerd/config"
                } else {
                    "nodes/kubeadm"
                };
            expected.push((w + 1, *n, first.to_string()));
        }
        expected.push((w + 2, "server5", format!("nodes/uncordon-{}", group[0])));
    }
    let expected: Vec<(u32, &str, &str)> = expected
        .iter()
        .map(|(w, h, s)| (*w, *h, s.as_str()))
        .collect();
    assert_eq!(layout, expected);
    // In the drained window: the packages, then containerd and the kubelet restarted.
    let ids: Vec<&str> = nodes
        .hosts
        .iter()
        .find(|h| h.host == "server9")
        .unwrap()
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    let at = |id: &str| ids.iter().position(|s| *s == id).unwrap();
    assert!(
        at("nodes/kubeadm-node") < at("nodes/packages")
            && at("nodes/packages") < at("nodes/restart"),
        "{ids:?}"
    );
}

#[test]
fn steps_without_a_check_name_the_target_so_the_next_upgrade_does_them_again() {
    let f = facts_with("v1.30.1", Some("1.6.28"), "calico");
    let plan = upgrade(&cluster(3, 2), &f, &inputs(), 1).unwrap();
    for p in [
        PhaseName::Preflight,
        PhaseName::Upgrade,
        PhaseName::Nodes,
        PhaseName::Cni,
    ] {
        for s in phase(&plan, p).hosts.iter().flat_map(|h| &h.steps) {
            let unchecked = match &s.action {
                HostStep::Run {
                    check,
                    after_change_of,
                    ..
                } => check.is_none() && after_change_of.is_empty(),
                HostStep::WaitFor { .. } => true,
                _ => false,
            };
            if unchecked {
                assert!(
                    s.description.contains(&f.bundle) || s.description.contains("v1.30.1"),
                    "{}: `{}` would be taken as done by the next upgrade",
                    s.id,
                    s.description
                );
            }
        }
    }
}
