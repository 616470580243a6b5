//! Every inventory mistake is an error before any plan, naming the field.

mod common;

use bundle_format::Hint;
use bundle_installer::{plan, Inventory, Problem};
use common::*;

/// Problems of `yaml` (validation, then planning against the default bundle).
fn problems(yaml: &str) -> Vec<Problem> {
    problems_with(yaml, false, &facts())
}

fn problems_with(yaml: &str, force: bool, facts: &bundle_installer::BundleFacts) -> Vec<Problem> {
    let inv = Inventory::parse(yaml).expect("parses");
    match inv.validate(force) {
        Err(p) => p,
        Ok((cluster, _)) => match plan(&cluster, facts, &inputs()) {
            Err(p) => p,
            Ok(_) => vec![],
        },
    }
}

fn assert_problem(problems: &[Problem], field: &str, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.field == field && p.message.contains(needle)),
        "no problem on `{field}` containing {needle:?} in {problems:#?}"
    );
}

#[test]
fn the_issue_inventory_is_valid() {
    assert_eq!(problems(&inventory_yaml(3, 1)), vec![]);
}

#[test]
fn duplicate_host_names_name_the_second_host() {
    let yaml = inventory_yaml(3, 1).replace("name: server8", "name: server6");
    let p = problems(&yaml);
    assert_problem(
        &p,
        "spec.hosts[3].name",
        "`server6` is also the name of `spec.hosts[1]`",
    );
}

#[test]
fn duplicate_addresses_name_the_second_host() {
    let yaml = inventory_yaml(3, 1).replace("address: 172.25.19.8", "address: 172.25.19.7");
    let p = problems(&yaml);
    assert_problem(
        &p,
        "spec.hosts[3].address",
        "`172.25.19.7` is also the address of `spec.hosts[2]` (`server7`)",
    );
}

#[test]
fn an_even_number_of_masters_is_refused_without_force() {
    let p = problems(&inventory_yaml(4, 1));
    assert_problem(&p, "spec.hosts", "4 masters tolerate no more failures than 3; use an odd number (pass `--force` to install anyway)");
}

#[test]
fn fewer_than_three_masters_is_refused_without_force() {
    let p = problems(&inventory_yaml(1, 2));
    assert_problem(
        &p,
        "spec.hosts",
        "1 master cannot keep etcd quorum when one fails",
    );
}

#[test]
fn force_turns_a_non_ha_control_plane_into_a_warning() {
    let inv = Inventory::parse(&inventory_yaml(2, 1)).unwrap();
    let (_, warnings) = inv.validate(true).expect("accepted with force");
    assert_problem(&warnings, "spec.hosts", "2 masters cannot keep etcd quorum");
    assert!(!warnings[0].message.contains("--force"));
}

#[test]
fn no_master_at_all_is_refused_even_with_force() {
    let yaml = inventory_yaml(0, 3).replace("servedBy: server5", "servedBy: server6");
    let inv = Inventory::parse(&yaml).unwrap();
    let p = inv.validate(true).unwrap_err();
    assert_problem(&p, "spec.hosts", "no host has the `master` role");
}

#[test]
fn a_vip_that_is_a_host_address_is_refused() {
    let yaml = inventory_yaml(3, 1).replace("vip: 172.25.19.100", "vip: 172.25.19.6");
    assert_problem(
        &problems(&yaml),
        "spec.controlPlaneEndpoint.vip",
        "`172.25.19.6` is the address of `spec.hosts[1]` (`server6`)",
    );
}

#[test]
fn a_vip_inside_the_pod_or_service_network_is_refused() {
    let yaml = inventory_yaml(3, 1).replace("vip: 172.25.19.100", "vip: 10.244.1.1");
    assert_problem(
        &problems(&yaml),
        "spec.controlPlaneEndpoint.vip",
        "`10.244.1.1` is inside `10.244.0.0/16` (`spec.network.podSubnet`)",
    );
    let yaml = inventory_yaml(3, 1).replace("vip: 172.25.19.100", "vip: 10.96.0.10");
    assert_problem(
        &problems(&yaml),
        "spec.controlPlaneEndpoint.vip",
        "`10.96.0.10` is inside `10.96.0.0/12` (`spec.network.serviceSubnet`)",
    );
}

#[test]
fn overlapping_pod_and_service_networks_are_refused() {
    let yaml = inventory_yaml(3, 1).replace(
        "serviceSubnet: 10.96.0.0/12",
        "serviceSubnet: 10.244.128.0/20",
    );
    assert_problem(
        &problems(&yaml),
        "spec.network.serviceSubnet",
        "`10.244.128.0/20` overlaps the pod network `10.244.0.0/16`",
    );
}

#[test]
fn hosts_inside_the_pod_or_service_network_are_refused() {
    let yaml = inventory_yaml(3, 1).replace("podSubnet: 10.244.0.0/16", "podSubnet: 172.25.0.0/16");
    let p = problems(&yaml);
    assert_problem(&p, "spec.hosts[0].address", "`172.25.19.5` is inside `172.25.0.0/16` (`spec.network.podSubnet`); host, pod and service networks must not overlap");
    assert_problem(&p, "spec.hosts[3].address", "`172.25.19.8` is inside");
    let yaml = inventory_yaml(3, 1).replace(
        "serviceSubnet: 10.96.0.0/12",
        "serviceSubnet: 172.25.16.0/20",
    );
    assert_problem(
        &problems(&yaml),
        "spec.hosts[2].address",
        "(`spec.network.serviceSubnet`)",
    );
}

#[test]
fn unknown_fields_are_refused_naming_the_field() {
    use bundle_installer::inventory::ParseError;
    let yaml = inventory_yaml(3, 1)
        .replace("roles: [worker]}", "roles: [worker], gpu: true}")
        .replace(
            "kubeProxy: {mode: ipvs}",
            "kubeProxy: {mode: ipvs, strictArp: true}",
        )
        .replace("  repo:", "  extra: 1\n  repo:");
    let Err(ParseError::Fields(p)) = Inventory::parse(&yaml) else {
        panic!("unknown fields accepted")
    };
    assert_problem(
        &p,
        "spec.hosts[3].gpu",
        "unknown field `gpu`; expected one of address, arch, interface, name, roles",
    );
    assert_problem(
        &p,
        "spec.kubeProxy.strictArp",
        "unknown field `strictArp`; expected one of mode",
    );
    assert_problem(&p, "spec.extra", "unknown field `extra`");
    assert_eq!(p.len(), 3);
}

#[test]
fn a_value_of_the_wrong_type_names_its_line() {
    use bundle_installer::inventory::ParseError;
    let yaml = inventory_yaml(3, 1).replace("port: 22", "port: twenty-two");
    let Err(ParseError::Yaml(e)) = Inventory::parse(&yaml) else {
        panic!("accepted")
    };
    assert!(e.contains("line 10"), "{e}");
}

#[test]
fn a_cni_the_bundle_does_not_carry_is_refused() {
    let yaml = inventory_yaml(3, 1).replace("cni: calico", "cni: flannel");
    assert_problem(
        &problems(&yaml),
        "spec.network.cni",
        "the bundle carries `calico`, not `flannel`",
    );
    let mut f = facts();
    f.cni = None;
    assert_problem(
        &problems_with(&inventory_yaml(3, 1), false, &f),
        "spec.network.cni",
        "the bundle carries no CNI",
    );
}

#[test]
fn an_image_the_cni_manifest_names_but_the_bundle_lacks_is_named() {
    let mut f = facts();
    f.images
        .retain(|i| i.repository != "calico/kube-controllers");
    let p = problems_with(&inventory_yaml(3, 1), false, &f);
    assert_problem(
        &p,
        "spec.network.cni",
        "image `calico/kube-controllers:v3.26.4` (line 134) is not carried by the bundle",
    );
    // A different tag is not the same image.
    let mut f = facts();
    for i in &mut f.images {
        if i.repository == "calico/node" {
            i.tag = Some("v3.27.0".into());
        }
    }
    let p = problems_with(&inventory_yaml(3, 1), false, &f);
    assert_problem(
        &p,
        "spec.network.cni",
        "image `docker.io/calico/node:v3.26.4`",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = inventory_yaml(3, 1)
        .replace("address: 172.25.19.8", "address: 172.25.19.7")
        .replace("vip: 172.25.19.100", "vip: not-an-ip")
        .replace("servedBy: server5", "servedBy: server99");
    let p = problems(&yaml);
    assert_problem(&p, "spec.hosts[3].address", "also the address");
    assert_problem(
        &p,
        "spec.controlPlaneEndpoint.vip",
        "`not-an-ip` is not an IP address",
    );
    assert_problem(
        &p,
        "spec.repo.servedBy",
        "`server99` is not the name of a host",
    );
}

#[test]
fn malformed_values_name_their_field() {
    let cases = [
        (
            "address: 172.25.19.6",
            "address: 172.25.19.600",
            "spec.hosts[1].address",
            "`172.25.19.600` is not an IP address",
        ),
        (
            "name: server6",
            "name: Server_6",
            "spec.hosts[1].name",
            "`Server_6` is not a valid node name",
        ),
        (
            "roles: [worker]",
            "roles: [wroker]",
            "spec.hosts[3].roles[0]",
            "unknown role `wroker`",
        ),
        (
            "podSubnet: 10.244.0.0/16",
            "podSubnet: 10.244.0.1/16",
            "spec.network.podSubnet",
            "host bits are set",
        ),
        (
            "mode: ipvs",
            "mode: userspace",
            "spec.kubeProxy.mode",
            "`userspace` is not supported",
        ),
        (
            "cni: calico",
            "cni: weave",
            "spec.network.cni",
            "`weave` is not supported",
        ),
        (
            "apiVersion: bundle/v1alpha1",
            "apiVersion: bundle/v2",
            "apiVersion",
            "`bundle/v2` is not supported",
        ),
        (
            "port: 8443",
            "port: 6443",
            "spec.controlPlaneEndpoint.port",
            "6443 is used by Kubernetes",
        ),
    ];
    for (from, to, field, needle) in cases {
        let yaml = inventory_yaml(3, 1).replacen(from, to, 1);
        assert_problem(&problems(&yaml), field, needle);
    }
}

#[test]
fn a_bad_image_mapping_override_names_its_index() {
    let yaml = inventory_yaml(3, 1).replace(
        "caFile: harbor-ca.crt}",
        "caFile: harbor-ca.crt, map: [\"docker.io/calico=cni\", \"nonsense\"]}",
    );
    assert_problem(
        &problems(&yaml),
        "spec.registry.map[1]",
        "image mapping `nonsense` is not `SRC_PREFIX=DEST_PREFIX`",
    );
}

#[test]
fn a_pull_username_that_cannot_go_into_containerds_config_is_refused() {
    for bad in ["\"robot k8s\"", "'robot\"x'", "''"] {
        let yaml = inventory_yaml(3, 1).replace(
            "caFile: harbor-ca.crt}",
            &format!("caFile: harbor-ca.crt, pullUsername: {bad}}}"),
        );
        assert_problem(
            &problems(&yaml),
            "spec.registry.pullUsername",
            "is not an account name (no spaces, quotes or backslashes)",
        );
    }
}

#[test]
fn an_override_that_breaks_kubeadm_image_names_is_refused() {
    let yaml = inventory_yaml(3, 1).replace(
        "caFile: harbor-ca.crt}",
        "caFile: harbor-ca.crt, map: [\"registry.k8s.io/coredns=dns\"]}",
    );
    assert_problem(
        &problems(&yaml),
        "spec.registry.map",
        "kubeadm pulls `harbor.example.com/k8s/coredns`",
    );
}

#[test]
fn the_inventory_error_lists_each_problem_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    std::fs::write(
        &path,
        inventory_yaml(3, 1).replace("name: server8", "name: server6"),
    )
    .unwrap();
    let e = Inventory::load_cluster(&path, false).unwrap_err();
    let text = e.to_string();
    assert!(text.ends_with("has 1 problem:\n  - `spec.hosts[3].name`: `server6` is also the name of `spec.hosts[1]`; host names must be unique"), "{text}");
    assert!(e.hint().unwrap().contains("fix the fields"));
}

/// The sample inventory with `network` and `kubeProxy` replaced.
fn with_knobs(network_extra: &str, kube_proxy: &str) -> String {
    inventory_yaml(3, 1)
        .replace(
            "serviceSubnet: 10.96.0.0/12}",
            &format!("serviceSubnet: 10.96.0.0/12{network_extra}}}"),
        )
        .replace(
            "kubeProxy: {mode: ipvs}",
            &format!("kubeProxy: {kube_proxy}"),
        )
}

#[test]
fn cni_and_kube_proxy_knobs_take_only_known_values() {
    let yaml = with_knobs(
        ", calico: {encapsulation: Foo, mtu: 100}",
        "{mode: ipvs, scheduler: fastest}",
    );
    let p = problems(&yaml);
    assert_problem(
        &p,
        "spec.network.calico.encapsulation",
        "`Foo` is not one of IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None",
    );
    assert_problem(&p, "spec.network.calico.mtu", "`100` is outside 576-9000");
    assert_problem(
        &p,
        "spec.kubeProxy.scheduler",
        "`fastest` is not one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh",
    );
    let p = problems(&with_knobs(", flannel: {backend: udp}", "{mode: ipvs}"));
    assert_problem(
        &p,
        "spec.network.flannel.backend",
        "`udp` is not one of host-gw, vxlan",
    );
}

#[test]
fn a_knob_of_the_other_cni_is_a_problem() {
    let p = problems(&with_knobs(", flannel: {backend: host-gw}", "{mode: ipvs}"));
    assert_problem(
        &p,
        "spec.network.flannel",
        "is set but the CNI is `calico`; remove it",
    );
    let yaml =
        with_knobs(", calico: {mtu: 1440}", "{mode: ipvs}").replace("cni: calico", "cni: flannel");
    assert_problem(
        &problems(&yaml),
        "spec.network.calico",
        "is set but the CNI is `flannel`; remove it",
    );
}

#[test]
fn ipvs_knobs_with_iptables_mode_are_problems() {
    let p = problems(&with_knobs(
        "",
        "{mode: iptables, scheduler: wrr, strictARP: true}",
    ));
    assert_problem(
        &p,
        "spec.kubeProxy.scheduler",
        "applies to `mode: ipvs` only",
    );
    assert_problem(
        &p,
        "spec.kubeProxy.strictARP",
        "applies to `mode: ipvs` only",
    );
}

#[test]
fn unknown_knob_fields_are_named_with_their_path() {
    let yaml = with_knobs(
        ", calico: {encapsulaton: VXLAN}",
        "{mode: ipvs, strictArp: true}",
    );
    let Err(bundle_installer::inventory::ParseError::Fields(p)) = Inventory::parse(&yaml) else {
        panic!("parses");
    };
    assert_problem(
        &p,
        "spec.network.calico.encapsulaton",
        "unknown field `encapsulaton`",
    );
    assert_problem(
        &p,
        "spec.kubeProxy.strictArp",
        "expected one of mode, scheduler, strictARP",
    );
}

#[test]
fn plain_http_beside_a_ca_file_is_refused_as_one_of_two_mistakes() {
    let yaml = inventory_yaml(3, 1).replace(
        "caFile: harbor-ca.crt}",
        "caFile: harbor-ca.crt, plainHttp: true}",
    );
    assert_problem(
        &problems(&yaml),
        "spec.registry.plainHttp",
        "`caFile` or `clientCertFile` is set too: a registry without TLS has no certificates (remove one or the other)",
    );
}

#[test]
fn plain_http_is_accepted_with_a_warning_that_says_what_crosses_in_the_clear() {
    let yaml = inventory_yaml(3, 1).replace(
        "{host: harbor.example.com, caFile: harbor-ca.crt}",
        "{host: harbor.example.com, plainHttp: true, pullUsername: robot$k8s}",
    );
    let (cluster, warnings) = Inventory::parse(&yaml).unwrap().validate(false).unwrap();
    assert!(cluster.registry_plain_http);
    assert_eq!(cluster.registry_url(), "http://harbor.example.com");
    let warning = warnings
        .iter()
        .find(|w| w.field == "spec.registry.plainHttp")
        .expect("a warning for plainHttp");
    assert!(
        warning.message.contains("`harbor.example.com` is spoken to over plain HTTP: the pushing account's and the nodes' passwords and every image cross the network unencrypted"),
        "{warning:?}"
    );

    // Without it: TLS, no warning.
    let (cluster, warnings) = Inventory::parse(&inventory_yaml(3, 1))
        .unwrap()
        .validate(false)
        .unwrap();
    assert_eq!(cluster.registry_url(), "https://harbor.example.com");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn admin_users_must_be_login_names_other_than_root_and_listed_once() {
    let cases = [
        (
            "[\"ops; rm -rf /\"]",
            "spec.admin.users[0]",
            "is not a login name",
        ),
        ("[Ops]", "spec.admin.users[0]", "is not a login name"),
        (
            "[root]",
            "spec.admin.users[0]",
            "root always gets the admin kubeconfig",
        ),
        ("[ops, ops]", "spec.admin.users[1]", "`ops` is listed twice"),
    ];
    for (users, field, needle) in cases {
        let yaml = inventory_yaml(3, 1).replace(
            "kubeProxy: {mode: ipvs}",
            &format!("kubeProxy: {{mode: ipvs}}\n  admin: {{users: {users}}}"),
        );
        assert_problem(&problems(&yaml), field, needle);
    }
}

#[test]
fn a_client_certificate_needs_its_key_and_tls() {
    let with = |extra: &str| {
        inventory_yaml(3, 1).replace(
            "caFile: harbor-ca.crt}",
            &format!("caFile: harbor-ca.crt, {extra}}}"),
        )
    };
    assert_problem(
        &problems(&with("clientCertFile: c.cert")),
        "spec.registry.clientKeyFile",
        "missing: `clientCertFile` needs its key",
    );
    assert_problem(
        &problems(&with("clientKeyFile: c.key")),
        "spec.registry.clientCertFile",
        "missing: `clientKeyFile` needs its certificate",
    );
    let plain = inventory_yaml(3, 1).replace(
        "{host: harbor.example.com, caFile: harbor-ca.crt}",
        "{host: harbor.example.com, plainHttp: true, clientCertFile: c.cert, clientKeyFile: c.key}",
    );
    assert_problem(
        &problems(&plain),
        "spec.registry.plainHttp",
        "a registry without TLS has no certificates",
    );
}
