//! What `bundle reset` runs on a host, from the plan alone.

mod common;

use bundle_installer::ops::reset::reset_script;
use bundle_installer::plan;
use common::*;

#[test]
fn reset_stops_containerd_after_kubeadm_reset_and_the_kubelet() {
    let plan = plan(&cluster(3, 1), &facts(), &inputs()).unwrap();
    for host in ["server5", "server8"] {
        let script = reset_script(&plan, host);
        let at = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{host}: no `{needle}` in:\n{script}"))
        };
        // kubeadm reset removes the containers through containerd; the kubelet would
        // start them again: containerd goes after both.
        let containerd = at("systemctl disable --now containerd");
        assert!(at("kubeadm reset -f") < containerd, "{script}");
        assert!(
            at("systemctl disable --now kubelet") < containerd,
            "{script}"
        );
        assert!(
            script.contains("rm -f /etc/containerd/config.toml\n"),
            "{script}"
        );
    }
}
