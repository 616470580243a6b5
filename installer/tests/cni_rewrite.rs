//! CNI manifests rewritten as text: only `image:` lines and the pod network lines
//! change; comments, quoting and formatting survive.

mod common;

use bundle_installer::inventory::CniOptions;
use bundle_installer::render::cni::{images, rewrite, CniProblem, Rewritten};
use bundle_installer::Cluster;
use common::*;

/// The rewrite of `manifest` with the cluster's images, pod network and CNI options.
fn rewrite_for(c: &Cluster, manifest: &str) -> Result<Rewritten, Vec<CniProblem>> {
    rewrite(
        &c.cni,
        manifest,
        &c.mapping,
        &c.pod_subnet,
        &facts().images,
        &c.cni_options,
    )
}

/// The changed lines that are neither image nor pod network lines.
fn option_changes(before: &str, after: &str) -> Vec<(usize, String, String)> {
    changed_lines(before, after)
        .into_iter()
        .filter(|(_, a, _)| {
            !a.contains("image:")
                && !a.contains("CALICO_IPV4POOL_CIDR")
                && !a.contains("192.168.0.0/16")
                && !a.contains("\"Network\"")
        })
        .collect()
}

fn owned(lines: &[(usize, &str, &str)]) -> Vec<(usize, String, String)> {
    lines
        .iter()
        .map(|(n, a, b)| (*n, a.to_string(), b.to_string()))
        .collect()
}

/// The calico inventory with `spec.network.calico` set to `calico`.
fn calico_cluster(calico: &str) -> Cluster {
    let yaml = inventory_yaml(3, 1).replace(
        "serviceSubnet: 10.96.0.0/12}",
        &format!("serviceSubnet: 10.96.0.0/12, calico: {calico}}}"),
    );
    cluster_from(&yaml)
}

fn changed_lines(before: &str, after: &str) -> Vec<(usize, String, String)> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    assert_eq!(a.len(), b.len(), "the rewrite adds or removes lines");
    a.iter()
        .zip(&b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i + 1, x.to_string(), y.to_string()))
        .collect()
}

#[test]
fn calico_images_and_the_commented_pool_cidr_are_the_only_changes() {
    let c = cluster(3, 1);
    let out = rewrite(
        "calico",
        CALICO,
        &c.mapping,
        &c.pod_subnet,
        &facts().images,
        &CniOptions::default(),
    )
    .unwrap();
    let changed = changed_lines(CALICO, &out.text);
    let expected = [
        (80, "          image: docker.io/calico/cni:v3.26.4", "          image: harbor.example.com/calico/cni:v3.26.4"),
        (86, "          image: \"docker.io/calico/cni:v3.26.4\"", "          image: \"harbor.example.com/calico/cni:v3.26.4\""),
        (
            92,
            "          image: 'docker.io/calico/node:v3.26.4'   # quoted with single quotes",
            "          image: 'harbor.example.com/calico/node:v3.26.4'   # quoted with single quotes",
        ),
        (100, "          image: docker.io/calico/node:v3.26.4 # the main agent", "          image: harbor.example.com/calico/node:v3.26.4 # the main agent"),
        (115, "            # - name: CALICO_IPV4POOL_CIDR", "            - name: CALICO_IPV4POOL_CIDR"),
        (116, "            #   value: \"192.168.0.0/16\"", "              value: \"10.244.0.0/16\""),
        (134, "          image: calico/kube-controllers:v3.26.4", "          image: harbor.example.com/calico/kube-controllers:v3.26.4"),
    ];
    let expected: Vec<(usize, String, String)> = expected
        .iter()
        .map(|(n, a, b)| (*n, a.to_string(), b.to_string()))
        .collect();
    assert_eq!(changed, expected);
    assert_eq!(out.cidr_lines, [115, 116]);
    assert_eq!(out.images.len(), 5);
    // The result is still YAML with the same documents, and the env entry is real.
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out.text).unwrap();
    assert_eq!(docs.len(), 4);
    let env = &docs[2]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "CALICO_IPV4POOL_CIDR" && e["value"] == "10.244.0.0/16"),
        "{env}"
    );
}

#[test]
fn calico_with_the_pool_cidr_already_set_gets_the_cluster_value() {
    let shipped = CALICO.replace(
        "            # - name: CALICO_IPV4POOL_CIDR\n            #   value: \"192.168.0.0/16\"",
        "            - name: CALICO_IPV4POOL_CIDR\n              value: \"192.168.0.0/16\"",
    );
    let c = cluster(3, 1);
    let out = rewrite(
        "calico",
        &shipped,
        &c.mapping,
        &c.pod_subnet,
        &facts().images,
        &CniOptions::default(),
    )
    .unwrap();
    assert_eq!(out.cidr_lines, [116]);
    assert!(out.text.contains(
        "            - name: CALICO_IPV4POOL_CIDR\n              value: \"10.244.0.0/16\"\n"
    ));
}

#[test]
fn flannel_images_and_net_conf_network_are_the_only_changes() {
    let yaml = inventory_yaml(3, 1).replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.32.0.0/16");
    let c = cluster_from(&yaml);
    let out = rewrite(
        "flannel",
        FLANNEL,
        &c.mapping,
        &c.pod_subnet,
        &facts().images,
        &CniOptions::default(),
    )
    .unwrap();
    let changed = changed_lines(FLANNEL, &out.text);
    let expected = [
        (
            36,
            "      \"Network\": \"10.244.0.0/16\",",
            "      \"Network\": \"10.32.0.0/16\",",
        ),
        (
            66,
            "        image: docker.io/flannel/flannel-cni-plugin:v1.4.0-flannel1",
            "        image: harbor.example.com/flannel/flannel-cni-plugin:v1.4.0-flannel1",
        ),
        (
            74,
            "        image: \"docker.io/flannel/flannel:v0.24.2\"",
            "        image: \"harbor.example.com/flannel/flannel:v0.24.2\"",
        ),
        (
            79,
            "        image: docker.io/flannel/flannel:v0.24.2  # the daemon",
            "        image: harbor.example.com/flannel/flannel:v0.24.2  # the daemon",
        ),
    ];
    let expected: Vec<(usize, String, String)> = expected
        .iter()
        .map(|(n, a, b)| (*n, a.to_string(), b.to_string()))
        .collect();
    assert_eq!(changed, expected);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out.text).unwrap();
    let net: serde_json::Value =
        serde_json::from_str(docs[1]["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Network"], "10.32.0.0/16");
}

#[test]
fn overrides_of_the_mapping_apply_to_the_manifest() {
    let yaml = inventory_yaml(3, 1).replace(
        "caFile: harbor-ca.crt}",
        "caFile: harbor-ca.crt, map: [\"docker.io/calico=cni/calico\"]}",
    );
    let c = cluster_from(&yaml);
    let out = rewrite(
        "calico",
        CALICO,
        &c.mapping,
        &c.pod_subnet,
        &facts().images,
        &CniOptions::default(),
    )
    .unwrap();
    assert!(!out.text.contains("image: docker.io/calico/cni:v3.26.4"));
    assert!(out.text.contains(
        "          image: harbor.example.com/cni/calico/node:v3.26.4 # the main agent\n"
    ));
}

#[test]
fn every_missing_image_is_named_with_its_line() {
    let c = cluster(3, 1);
    let carried: Vec<_> = facts()
        .images
        .into_iter()
        .filter(|i| !i.repository.starts_with("calico/"))
        .collect();
    let problems = rewrite(
        "calico",
        CALICO,
        &c.mapping,
        &c.pod_subnet,
        &carried,
        &CniOptions::default(),
    )
    .unwrap_err();
    let lines: Vec<usize> = problems
        .iter()
        .map(|p| match p {
            CniProblem::NotCarried { line, .. } => *line,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(lines, [80, 86, 92, 100, 134]);
    assert_eq!(
        problems[2].to_string(),
        "image `docker.io/calico/node:v3.26.4` (line 92) is not carried by the bundle; add it to the bundle's manifest and build again"
    );
}

#[test]
fn flannel_without_a_network_is_an_error() {
    let c = cluster(3, 1);
    let broken = FLANNEL.replace(
        "\"Network\": \"10.244.0.0/16\",",
        "\"Netwerk\": \"10.244.0.0/16\",",
    );
    let problems = rewrite(
        "flannel",
        &broken,
        &c.mapping,
        &c.pod_subnet,
        &facts().images,
        &CniOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        problems[0].to_string(),
        "found no `\"Network\"` in flannel's `net-conf.json` to set the pod network in"
    );
}

#[test]
fn image_lines_are_found_in_every_form_and_comments_are_skipped() {
    let found: Vec<String> = images(CALICO).into_iter().map(|(_, i)| i).collect();
    assert_eq!(
        found,
        [
            "docker.io/calico/cni:v3.26.4",
            "docker.io/calico/cni:v3.26.4",
            "docker.io/calico/node:v3.26.4",
            "docker.io/calico/node:v3.26.4",
            "calico/kube-controllers:v3.26.4"
        ]
    );
    let yaml = "spec:\n  - image: a/b:1\n    imagePullPolicy: Always\n  - name: x\n    image:   \"c/d:2\"\n";
    assert_eq!(
        images(yaml),
        [(2, "a/b:1".to_string()), (5, "c/d:2".to_string())]
    );
}

#[test]
fn calico_ipip_cross_subnet_and_mtu_change_only_their_lines() {
    let c = calico_cluster("{encapsulation: IPIPCrossSubnet, mtu: 1440}");
    let out = rewrite_for(&c, CALICO).unwrap();
    assert_eq!(
        option_changes(CALICO, &out.text),
        owned(&[
            (31, "  veth_mtu: \"0\"", "  veth_mtu: \"1440\""),
            (
                111,
                "              value: \"Always\"",
                "              value: \"CrossSubnet\""
            ),
        ])
    );
    assert_eq!(out.option_lines, [31, 111]);
    // Everything else is the default rewrite's.
    let default = rewrite_for(&cluster(3, 1), CALICO).unwrap();
    assert_eq!(changed_lines(&default.text, &out.text).len(), 2);
}

#[test]
fn calico_encapsulation_sets_both_pool_modes_where_the_manifest_has_both() {
    // The upstream manifest's VXLAN entry, right after the IPIP one.
    let upstream = CALICO.replace(
        "              value: \"Always\"\n",
        "              value: \"Always\"\n            # Enable or Disable VXLAN on the default IP pool.\n            - name: CALICO_IPV4POOL_VXLAN\n              value: \"Never\"\n",
    );
    let cases = [
        ("IPIP", "Always", "Never"),
        ("IPIPCrossSubnet", "CrossSubnet", "Never"),
        ("VXLAN", "Never", "Always"),
        ("VXLANCrossSubnet", "Never", "CrossSubnet"),
        ("None", "Never", "Never"),
    ];
    for (encapsulation, ipip, vxlan) in cases {
        let c = calico_cluster(&format!("{{encapsulation: {encapsulation}}}"));
        let out = rewrite_for(&c, &upstream).unwrap();
        let mut expected = Vec::new();
        if ipip != "Always" {
            expected.push((
                111,
                "              value: \"Always\"".to_string(),
                format!("              value: \"{ipip}\""),
            ));
        }
        if vxlan != "Never" {
            expected.push((
                114,
                "              value: \"Never\"".to_string(),
                format!("              value: \"{vxlan}\""),
            ));
        }
        assert_eq!(
            option_changes(&upstream, &out.text),
            expected,
            "{encapsulation}"
        );
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out.text).unwrap();
        let env = docs[2]["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        let value = |name: &str| env.iter().find(|e| e["name"] == name).unwrap()["value"].clone();
        assert_eq!(value("CALICO_IPV4POOL_IPIP"), ipip, "{encapsulation}");
        assert_eq!(value("CALICO_IPV4POOL_VXLAN"), vxlan, "{encapsulation}");
    }
}

#[test]
fn calico_vxlan_adds_the_pool_vxlan_entry_the_manifest_lacks() {
    let c = calico_cluster("{encapsulation: VXLAN}");
    let out = rewrite_for(&c, CALICO).unwrap();
    let expected = CALICO.replace(
        "            - name: CALICO_IPV4POOL_IPIP\n              value: \"Always\"\n",
        "            - name: CALICO_IPV4POOL_IPIP\n              value: \"Never\"\n            - name: CALICO_IPV4POOL_VXLAN\n              value: \"Always\"\n",
    );
    let default = rewrite_for(&cluster(3, 1), &expected).unwrap();
    assert_eq!(out.text, default.text);
    assert_eq!(out.option_lines, [111, 111]);
    // With no VXLAN wanted, nothing is added: calico's default is Never.
    let out = rewrite_for(&calico_cluster("{encapsulation: None}"), CALICO).unwrap();
    assert_eq!(
        option_changes(CALICO, &out.text),
        owned(&[(
            111,
            "              value: \"Always\"",
            "              value: \"Never\""
        )])
    );
}

#[test]
fn calico_options_without_their_lines_are_errors() {
    let c = calico_cluster("{encapsulation: VXLAN, mtu: 1440}");
    let broken = CALICO
        .replace("CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_IPIP_GONE")
        .replace("veth_mtu", "veth_mtu_gone");
    let problems: Vec<String> = rewrite_for(&c, &broken)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "found no `CALICO_IPV4POOL_IPIP` entry with a `value:` in calico-node's env to set `spec.network.calico.encapsulation` in",
            "found no `veth_mtu` in the `calico-config` ConfigMap to set `spec.network.calico.mtu` in",
        ]
    );
}

#[test]
fn flannel_host_gw_changes_only_the_backend_type() {
    let yaml = inventory_yaml(3, 1).replace(
        "cni: calico, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}",
        "cni: flannel, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12, flannel: {backend: host-gw}}",
    );
    let c = cluster_from(&yaml);
    let out = rewrite_for(&c, FLANNEL).unwrap();
    assert_eq!(
        option_changes(FLANNEL, &out.text),
        owned(&[(
            39,
            "        \"Type\": \"vxlan\"",
            "        \"Type\": \"host-gw\""
        )])
    );
    assert_eq!(out.option_lines, [39]);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&out.text).unwrap();
    let net: serde_json::Value =
        serde_json::from_str(docs[1]["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Backend"]["Type"], "host-gw");
    // vxlan, the manifest's own, changes nothing.
    let c = cluster_from(&yaml.replace("backend: host-gw", "backend: vxlan"));
    let out = rewrite_for(&c, FLANNEL).unwrap();
    assert_eq!(option_changes(FLANNEL, &out.text), []);
    assert_eq!(out.option_lines, Vec::<usize>::new());
}
