//! External etcd (`spec.etcd.external`): the inventory's checks, and the plan kubeadm's
//! external-etcd guide would have an operator carry out by hand.

mod common;

use bundle_installer::plan::PhaseName;
use bundle_installer::{plan, HostStep, Inventory, Plan, Problem};
use common::*;

fn the_plan() -> Plan {
    plan(
        &cluster_from(&external_etcd_inventory()),
        &facts(),
        &inputs(),
    )
    .unwrap()
}

fn ids(plan: &Plan, host: &str) -> Vec<String> {
    plan.host_steps(host).map(|(_, s)| s.id.clone()).collect()
}

fn problems(yaml: &str, force: bool) -> Vec<Problem> {
    match Inventory::parse(yaml).unwrap().validate(force) {
        Ok((_, warnings)) => warnings,
        Err(p) => p,
    }
}

fn has(problems: &[Problem], field: &str, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.field == field && p.message.contains(needle))
}

#[test]
fn plan_three_masters_one_worker_three_etcd_hosts() {
    insta::assert_snapshot!(the_plan().to_text());
}

#[test]
fn the_etcd_phase_runs_after_containerd_and_before_the_load_balancer() {
    let p = the_plan();
    let names: Vec<PhaseName> = p.phases.iter().map(|p| p.name).collect();
    assert_eq!(names, PhaseName::ALL);
    let etcd = p.phases.iter().find(|p| p.name == PhaseName::Etcd).unwrap();
    let waves: Vec<(&str, u32)> = etcd
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.wave))
        .collect();
    // Members all start together; the cluster is asked once they all run; then the
    // masters get the client certificate and the first one reaches every member.
    assert_eq!(
        waves,
        [
            ("etcd1", 0),
            ("etcd2", 0),
            ("etcd3", 0),
            ("etcd1", 1),
            ("server5", 2),
            ("server6", 2),
            ("server7", 2)
        ]
    );
    // Stacked etcd: no such phase at all.
    let stacked = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    assert!(stacked.phases.iter().all(|p| p.name != PhaseName::Etcd));
}

#[test]
fn etcd_hosts_are_prepared_like_nodes_but_never_join_the_cluster() {
    let p = the_plan();
    let e = ids(&p, "etcd2");
    for wanted in [
        "preflight/ports",
        "repo/install",
        "os/swap",
        "containerd/config",
        "etcd/server-key",
        "etcd/manifest",
        "verify/vip",
    ] {
        assert!(e.iter().any(|i| i == wanted), "{wanted} missing: {e:?}");
    }
    for unwanted in ["join/", "lb/", "init/", "cni/"] {
        assert!(
            !e.iter().any(|i| i.starts_with(unwanted)),
            "{unwanted}: {e:?}"
        );
    }
    // Masters do not wait for a member of their own.
    assert!(!ids(&p, "server6").iter().any(|i| i == "join/etcd"));
    // The worker still joins; etcd hosts are not counted as nodes.
    assert!(ids(&p, "server8").iter().any(|i| i == "join/kubeadm"));
    let text = p.to_text();
    assert!(text.contains("all 4 nodes Ready"), "{text}");
    assert!(
        text.contains("etcd has 3 started members, one per etcd host"),
        "{text}"
    );
}

#[test]
fn member_files_hold_only_placeholders_for_the_pki_and_name_every_member() {
    let p = the_plan();
    let key = file_of(&p, "etcd2", "/etc/kubernetes/pki/etcd/server.key");
    assert_eq!(key, "<secret:etcd-pki/etcd2/server.key>");
    let mode = p
        .host_steps("etcd2")
        .find_map(|(_, s)| match &s.action {
            HostStep::WriteFile { path, mode, .. } if path.ends_with("/server.key") => {
                Some(mode.clone())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(mode, "0600");
    let manifest = file_of(&p, "etcd2", "/etc/kubernetes/manifests/etcd.yaml");
    assert!(manifest.contains("    - --name=etcd2\n"), "{manifest}");
    assert!(manifest.contains("    - --initial-cluster=etcd1=https://172.25.19.21:2380,etcd2=https://172.25.19.22:2380,etcd3=https://172.25.19.23:2380\n"), "{manifest}");
    assert!(
        manifest.contains("    image: harbor.example.com/k8s/etcd:3.5.10-0\n"),
        "{manifest}"
    );
    let client = file_of(
        &p,
        "server6",
        "/etc/kubernetes/pki/apiserver-etcd-client.key",
    );
    assert_eq!(client, "<secret:etcd-pki/apiserver-etcd-client.key>");
    assert!(!p.to_text().contains("BEGIN"), "a PEM in the plan");
}

#[test]
fn reset_takes_the_members_data_away() {
    let p = the_plan();
    let script = bundle_installer::ops::reset::reset_script(&p, "etcd1");
    assert!(script.contains("rm -rf /var/lib/etcd\n"), "{script}");
    assert!(
        script.contains("rm -f /etc/kubernetes/manifests/etcd.yaml\n"),
        "{script}"
    );
    let worker = bundle_installer::ops::reset::reset_script(&p, "server8");
    assert!(!worker.contains("/var/lib/etcd"), "{worker}");
}

#[test]
fn external_etcd_hosts_must_be_etcd_only_listed_and_an_odd_number() {
    let yaml = external_etcd_inventory();
    let cases: Vec<(String, &str, &str)> =
        vec![
        (
            yaml.replace("roles: [etcd]}\n  ssh", "roles: [etcd, worker]}\n  ssh"),
            "spec.hosts[6].roles",
            "`etcd` is a role of its own",
        ),
        (
            yaml.replace("hosts: [etcd1, etcd2, etcd3]", "hosts: [etcd1, etcd2]"),
            "spec.etcd.external.hosts",
            "`etcd3` has the role `etcd` but is not listed",
        ),
        (
            yaml.replace("hosts: [etcd1, etcd2, etcd3]", "hosts: [etcd1, etcd2, etcd3, server8]"),
            "spec.etcd.external.hosts[3]",
            "`server8` is not an etcd host: give it the role `etcd` (and no other)",
        ),
        (
            yaml.replace("hosts: [etcd1, etcd2, etcd3]", "hosts: [etcd1, etcd2, etcd3, etcd9]"),
            "spec.etcd.external.hosts[3]",
            "`etcd9` is not an etcd host: it is not in `spec.hosts`",
        ),
        (
            yaml.replace("hosts: [etcd1, etcd2, etcd3]", "hosts: [etcd1, etcd2, etcd3, etcd1]"),
            "spec.etcd.external.hosts[3]",
            "`etcd1` is listed twice",
        ),
        (
            yaml.replace("  etcd: {external: {hosts: [etcd1, etcd2, etcd3]}}\n", ""),
            "spec.etcd",
            "etcd1, etcd2, etcd3 have the role `etcd`, but `spec.etcd.external.hosts` is not set",
        ),
    ];
    for (yaml, field, needle) in &cases {
        let p = problems(yaml, false);
        assert!(has(&p, field, needle), "{field}: {needle}\n{p:#?}");
    }
    // Two members: refused, a warning with --force.
    let two = yaml
        .replace(
            "    - {name: etcd3, address: 172.25.19.23, roles: [etcd]}\n",
            "",
        )
        .replace("hosts: [etcd1, etcd2, etcd3]", "hosts: [etcd1, etcd2]");
    let refused = problems(&two, false);
    assert!(has(&refused, "spec.etcd.external.hosts", "2 etcd members cannot keep quorum when one fails; HA needs 3, 5 or 7 (pass `--force` to install anyway)"), "{refused:#?}");
    assert!(Inventory::parse(&two).unwrap().validate(false).is_err());
    let (_, warnings) = Inventory::parse(&two).unwrap().validate(true).unwrap();
    assert!(
        has(&warnings, "spec.etcd.external.hosts", "cannot keep quorum"),
        "{warnings:#?}"
    );
}

#[test]
fn an_upgrade_checks_the_external_members_and_leaves_the_etcd_hosts_alone() {
    let cluster = cluster_from(&external_etcd_inventory());
    let up = bundle_installer::plan::upgrade(
        &cluster,
        &facts_with("v1.30.1", Some("1.7.13"), "calico"),
        &inputs(),
        1,
    )
    .unwrap();
    let e1 = ids(&up, "etcd1");
    assert_eq!(e1[0], "preflight/etcd-health", "{e1:?}");
    // Checked and recorded, never drained, upgraded or pulled onto.
    for e in ["etcd1", "etcd2", "etcd3"] {
        let ids = ids(&up, e);
        assert!(
            ids.iter().all(|i| !i.starts_with("nodes/")
                && !i.starts_with("upgrade/")
                && i != "preflight/pull"),
            "{e}: {ids:?}"
        );
        assert!(ids.contains(&"verify/release".to_string()), "{e}: {ids:?}");
    }
    let health = up
        .host_steps("etcd1")
        .find_map(|(_, s)| match &s.action {
            HostStep::Run { command, .. } => Some(command.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        health.contains("crictl exec \"$id\" etcdctl")
            && health.ends_with("endpoint health --cluster"),
        "{health}"
    );
    // The first master no longer asks a stacked member that does not exist.
    assert!(!ids(&up, "server5").contains(&"preflight/etcd-health".to_string()));
    assert!(ids(&up, "server8").iter().any(|i| i.starts_with("nodes/")));
}

fn masters() -> Vec<String> {
    ["server5", "server6", "server7"].map(String::from).to_vec()
}

#[test]
fn renewal_plan_with_stacked_etcd() {
    let stacked = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    insta::assert_snapshot!(bundle_installer::plan::renewal(&stacked, &masters()).to_text());
}

fn renewal_plan() -> Plan {
    bundle_installer::plan::renewal(&the_plan(), &masters())
}

#[test]
fn renewal_plan_with_external_etcd() {
    insta::assert_snapshot!(renewal_plan().to_text());
}

#[test]
fn renewal_restarts_one_etcd_member_per_wave_in_order_then_one_master_per_wave() {
    let r = renewal_plan();
    assert_eq!(r.phases.len(), 1);
    assert_eq!(r.phases[0].name, PhaseName::Renew);
    let waves: Vec<(&str, u32)> = r.phases[0]
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.wave))
        .collect();
    assert_eq!(
        waves,
        [
            ("etcd1", 0),
            ("etcd2", 1),
            ("etcd3", 2),
            ("server5", 3),
            ("server6", 4),
            ("server7", 5)
        ]
    );
    // A member: its certificates, its restart, then the whole cluster healthy through
    // it before the next member's wave.
    let member = ids(&r, "etcd2");
    assert_eq!(
        member,
        [
            "renew/etcd-server-crt",
            "renew/etcd-server-key",
            "renew/etcd-peer-crt",
            "renew/etcd-peer-key",
            "renew/etcd-healthcheck-client-crt",
            "renew/etcd-healthcheck-client-key",
            "renew/etcd-restart",
            "renew/etcd-healthy"
        ]
    );
    assert!(
        r.to_text()
            .contains("etcd has 3 started members, every one healthy"),
        "{}",
        r.to_text()
    );
    // A master: the API server's client certificate before kubeadm's renewal and the
    // restart that picks both up; the members reached with it afterwards.
    let master = ids(&r, "server6");
    assert_eq!(
        &master[..6],
        [
            "renew/etcd-apiserver-client-crt",
            "renew/etcd-apiserver-client-key",
            "renew/certs",
            "renew/restart",
            "renew/api",
            "renew/etcd-reached"
        ]
    );
    // The worker is no part of it.
    assert!(r.host_steps("server8").next().is_none());
}

#[test]
fn renewal_plan_holds_placeholders_and_no_secret() {
    let r = renewal_plan();
    assert_eq!(
        file_of(&r, "etcd3", "/etc/kubernetes/pki/etcd/peer.key"),
        "<secret:etcd-pki/etcd3/peer.key>"
    );
    assert_eq!(
        file_of(
            &r,
            "server7",
            "/etc/kubernetes/pki/apiserver-etcd-client.crt"
        ),
        "<secret:etcd-pki/apiserver-etcd-client.crt>"
    );
    let json = serde_json::to_string(&r).unwrap();
    for secret in ["BEGIN", "PRIVATE KEY", "Pa55w0rd"] {
        assert!(!json.contains(secret), "`{secret}` in the plan");
    }
}
