//! plan.txt for the two inventories of the issue, snapshot-tested; plans are
//! deterministic and hold no secrets.

mod common;

use bundle_installer::plan::PhaseName;
use bundle_installer::{plan, HostStep};
use common::*;

#[test]
fn plan_three_masters_one_worker() {
    let plan = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    insta::assert_snapshot!(plan.to_text());
}

#[test]
fn plan_three_masters_five_workers() {
    let plan = plan(&cluster(3, 5), &facts(), &inputs()).unwrap();
    insta::assert_snapshot!(plan.to_text());
}

#[test]
fn plans_are_deterministic() {
    let a = plan(&cluster(3, 5), &facts(), &inputs()).unwrap();
    let b = plan(&cluster(3, 5), &facts(), &inputs()).unwrap();
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.to_text(), b.to_text());
}

#[test]
fn every_phase_is_present_in_order() {
    let plan = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    let names: Vec<PhaseName> = plan.phases.iter().map(|p| p.name).collect();
    // Stacked etcd: every phase but the external etcd's.
    let stacked: Vec<PhaseName> = PhaseName::ALL
        .into_iter()
        .filter(|p| *p != PhaseName::Etcd)
        .collect();
    assert_eq!(names, stacked);
    assert!(plan.phases.iter().all(|p| !p.hosts.is_empty()));
}

#[test]
fn masters_join_one_at_a_time_then_workers_together() {
    let plan = plan(&cluster(3, 5), &facts(), &inputs()).unwrap();
    let join = plan
        .phases
        .iter()
        .find(|p| p.name == PhaseName::Join)
        .unwrap();
    let waves: Vec<(&str, u32)> = join
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.wave))
        .collect();
    assert_eq!(
        waves,
        [
            ("server5", 0),
            ("server6", 1),
            ("server7", 2),
            ("server8", 3),
            ("server9", 3),
            ("server10", 3),
            ("server11", 3),
            ("server12", 3)
        ]
    );
}

#[test]
fn each_master_joins_only_after_the_previous_masters_etcd_member_is_healthy() {
    let plan = plan(&cluster(3, 5), &facts(), &inputs()).unwrap();
    let join = plan
        .phases
        .iter()
        .find(|p| p.name == PhaseName::Join)
        .unwrap();
    let of = |host: &str| join.hosts.iter().find(|h| h.host == host).unwrap();
    // The first master inits; it has no member to wait for.
    assert!(of("server5").steps.iter().all(|s| s.id != "join/etcd"));
    for (m, next) in [("server6", "server7"), ("server7", "server8")] {
        let hs = of(m);
        let ids: Vec<&str> = hs.steps.iter().map(|s| s.id.as_str()).collect();
        // Last step of the master's wave: after its kubeadm join, before anything
        // of the next wave (the next master, then the workers).
        assert_eq!(ids.last(), Some(&"join/etcd"), "{m}: {ids:?}");
        let kubeadm = ids.iter().position(|i| *i == "join/kubeadm").unwrap();
        assert!(kubeadm < ids.len() - 1);
        assert!(of(next).wave > hs.wave, "{next} joins in the wave of {m}");
        let HostStep::WaitFor {
            condition,
            timeout_secs,
        } = &hs.steps.last().unwrap().action
        else {
            panic!("{m}: join/etcd is not a wait")
        };
        assert!(*timeout_secs >= 60);
        assert!(
            condition.contains("-n kube-system exec etcd-server5 -- etcdctl ")
                && condition.contains(" member list | awk ")
                && condition.contains(&format!("$3 == \"{m}\""))
                && condition.contains("$2 == \"started\"")
                && condition.ends_with(" endpoint health --cluster"),
            "{m}: {condition}"
        );
    }
    // Workers join together, after the last master's member.
    assert!(["server9", "server10", "server11", "server12"]
        .iter()
        .all(|w| of(w).wave == of("server8").wave));
}

#[test]
fn every_step_id_is_unique_per_host_and_every_command_has_no_secret() {
    let plan = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    for h in &plan.hosts {
        let mut ids = std::collections::BTreeSet::new();
        for (_, s) in plan.host_steps(&h.name) {
            assert!(
                ids.insert(s.id.clone()),
                "{} has two steps `{}`",
                h.name,
                s.id
            );
            if let HostStep::Run { command, check, .. } = &s.action {
                assert!(
                    !command.contains("<secret:")
                        && !check.as_deref().unwrap_or("").contains("<secret:"),
                    "{}",
                    s.id
                );
            }
        }
    }
}

#[test]
fn workers_get_no_load_balancer_and_only_the_repo_host_serves() {
    let plan = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    assert!(plan
        .host_files("server8")
        .all(|(p, ..)| !p.contains("haproxy") && !p.contains("keepalived")));
    assert!(plan
        .host_files("server6")
        .all(|(p, ..)| p != "/etc/systemd/system/bundle-repo.service"));
    assert!(plan
        .host_files("server5")
        .any(|(p, ..)| p == "/etc/systemd/system/bundle-repo.service"));
}

#[test]
fn a_bundle_without_containerd_package_assumes_1x_and_says_so() {
    let plan = plan(
        &cluster(3, 1),
        &facts_with("v1.29.2", None, "calico"),
        &inputs(),
    )
    .unwrap();
    assert_eq!(plan.containerd_config_version, 2);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("assuming containerd 1.x")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn certificate_renewal_restarts_one_master_at_a_time() {
    let p = plan(&cluster(3, 2), &facts(), &inputs()).unwrap();
    let masters: Vec<String> = ["server5", "server6", "server7"].map(String::from).to_vec();
    let r = bundle_installer::plan::renewal(&p, &masters);
    assert_eq!(r.phases.len(), 1);
    assert_eq!(r.phases[0].name, PhaseName::Renew);
    let waves: Vec<(&str, u32)> = r.phases[0]
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.wave))
        .collect();
    assert_eq!(waves, [("server5", 0), ("server6", 1), ("server7", 2)]);
    let ids: Vec<&str> = r.phases[0].hosts[0]
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "renew/certs",
            "renew/restart",
            "renew/api",
            "renew/kubeconfig"
        ]
    );
    // Workers take no part, and nothing is served from the deploy node.
    assert_eq!(r.hosts.len(), 3);
    assert!(r.repo_served_by_deploy.is_none());
}

/// The sample inventory with every CNI and kube-proxy knob set (calico's; flannel's
/// below).
fn every_knob_yaml() -> String {
    inventory_yaml(3, 1)
        .replace(
            "serviceSubnet: 10.96.0.0/12}",
            "serviceSubnet: 10.96.0.0/12, calico: {encapsulation: VXLANCrossSubnet, mtu: 1440}}",
        )
        .replace(
            "kubeProxy: {mode: ipvs}",
            "kubeProxy: {mode: ipvs, scheduler: wrr, strictARP: true}\n  admin: {users: [ops, alice.b]}",
        )
}

#[test]
fn plan_three_masters_one_worker_every_knob() {
    let cluster = cluster_from(&every_knob_yaml());
    let plan = plan(&cluster, &facts(), &inputs()).unwrap();
    insta::assert_snapshot!(plan.to_text());
    let init = bundle_installer::render::kubeadm::init_config(
        &cluster,
        "kubeadm.k8s.io/v1beta3",
        "v1.29.2",
        "harbor.example.com/k8s",
    );
    assert!(
        init.ends_with("kind: KubeProxyConfiguration\nmode: \"ipvs\"\nclusterCIDR: \"10.244.0.0/16\"\nipvs:\n  scheduler: \"wrr\"\n  strictARP: true\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: \"systemd\"\n"),
        "{init}"
    );
}

#[test]
fn unset_knobs_render_as_before() {
    let c = cluster(3, 1);
    let init = bundle_installer::render::kubeadm::init_config(
        &c,
        "kubeadm.k8s.io/v1beta3",
        "v1.29.2",
        "harbor.example.com/k8s",
    );
    assert!(init.contains("ipvs:\n  scheduler: \"rr\"\n---\n"), "{init}");
    assert!(!init.contains("strictARP"));
}

#[test]
fn flannel_backend_shows_in_the_plan() {
    let yaml = inventory_yaml(3, 1).replace(
        "cni: calico, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}",
        "cni: flannel, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12, flannel: {backend: host-gw}}",
    );
    let facts = facts_with("v1.29.2", Some("1.6.28"), "flannel");
    let plan = plan(&cluster_from(&yaml), &facts, &inputs()).unwrap();
    let text = plan.to_text();
    assert!(
        text.contains("[cni/manifest] flannel manifest, images from the registry, pod network 10.244.0.0/16, backend host-gw\n"),
        "{text}"
    );
}

#[test]
fn admin_users_get_the_kubeconfig_on_every_master_wherever_root_does() {
    let cluster = cluster_from(&every_knob_yaml());
    let p = plan(&cluster, &facts(), &inputs()).unwrap();
    let ids = |plan: &bundle_installer::Plan, host: &str| -> Vec<String> {
        plan.host_steps(host).map(|(_, s)| s.id.clone()).collect()
    };
    for m in ["server5", "server6", "server7"] {
        let ids = ids(&p, m);
        let at = |id: &str| ids.iter().position(|i| i.ends_with(id));
        for user in ["ops", "alice.b"] {
            let copy = at(&format!("/kubeconfig-{user}")).expect("a copy for each user");
            assert!(at("/kubeconfig").unwrap() < copy, "after root's on {m}");
            let check = at(&format!("preflight/user-{user}")).expect("preflight");
            assert!(
                check < at("/kubeadm").unwrap(),
                "checked before anything on {m}"
            );
        }
        assert!(at("/completion").is_some(), "{m}: {ids:?}");
    }
    let worker = ids(&p, "server8");
    assert!(
        !worker
            .iter()
            .any(|i| i.contains("kubeconfig") || i.contains("user-") || i.contains("completion")),
        "{worker:?}"
    );
    let text = p.to_text();
    assert!(text.contains("install -o ops -g \"$group\" -m 0600 /etc/kubernetes/admin.conf \"$home/.kube/config\""), "{text}");

    // Renewed certificates rewrite admin.conf: the users' copies follow.
    let masters: Vec<String> = ["server5", "server6", "server7"].map(String::from).into();
    let r = bundle_installer::plan::renewal(&p, &masters);
    assert!(ids(&r, "server6").contains(&"renew/kubeconfig-alice.b".to_string()));

    // A reset takes them away again.
    let script = bundle_installer::ops::reset::reset_script(&p, "server6");
    assert!(script.contains("home=$(getent passwd ops | cut -d: -f6); [ -z \"$home\" ] || rm -f \"$home/.kube/config\"\n"), "{script}");
    assert!(
        script.contains("rm -f /etc/bash_completion.d/kubectl\n"),
        "{script}"
    );

    // completion: false leaves the completion out.
    let off = cluster_from(&every_knob_yaml().replace(
        "admin: {users: [ops, alice.b]}",
        "admin: {completion: false}",
    ));
    let p = plan(&off, &facts(), &inputs()).unwrap();
    assert!(!ids(&p, "server5")
        .iter()
        .any(|i| i.ends_with("/completion")));
    assert!(!bundle_installer::ops::reset::reset_script(&p, "server5").contains("bash_completion"));
}

#[test]
fn the_nodes_client_key_is_a_placeholder_in_the_plan_and_the_certificate_is_trusted_by_hosts_toml()
{
    let yaml = inventory_yaml(3, 1).replace(
        "caFile: harbor-ca.crt}",
        "caFile: harbor-ca.crt, clientCertFile: c.cert, clientKeyFile: c.key}",
    );
    let mut i = inputs();
    i.registry_client_cert = Some(CA_PEM.replace("TestOnly", "ClientOnly"));
    let p = plan(&cluster_from(&yaml), &facts(), &i).unwrap();
    let dir = "/etc/containerd/certs.d/harbor.example.com";
    assert_eq!(
        file_of(&p, "server8", &format!("{dir}/client.key")),
        "<secret:registry-client-key>"
    );
    assert!(file_of(&p, "server8", &format!("{dir}/client.cert")).contains("ClientOnly"));
    let hosts = file_of(&p, "server8", &format!("{dir}/hosts.toml"));
    assert!(
        hosts.contains(&format!(
            "  client = [[\"{dir}/client.cert\", \"{dir}/client.key\"]]"
        )),
        "{hosts}"
    );
    let text = p.to_text();
    assert!(
        text.contains(&format!("--cert {dir}/client.cert --key {dir}/client.key")),
        "{text}"
    );
}
