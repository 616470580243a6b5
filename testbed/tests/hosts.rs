//! The test hosts and the doubles, against real components: sshd, ssh with strict
//! known_hosts, overlay roots, dnf from a repo served over HTTP, keepalived VRRP and
//! haproxy started through the systemctl double. Needs root (see `bundle_testbed::hosts`).

use std::process::Output;
use std::time::{Duration, Instant};

use bundle_testbed::hosts::{ClusterSpec, TestCluster};

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn start(masters: usize, workers: usize, kube_fakes: bool) -> TestCluster {
    TestCluster::start(&ClusterSpec {
        masters,
        workers,
        kube_fakes,
    })
    .expect("starting the test hosts")
}

#[test]
fn ssh_from_deploy_with_strict_known_hosts() {
    let c = start(3, 2, false);
    for h in c.hosts() {
        let by_addr = c.run_in_deploy(&format!(
            "ssh -F {} {} hostname",
            c.ssh_config().display(),
            h.address
        ));
        assert_eq!(ok(by_addr), h.name);
        assert_eq!(ok(c.ssh(&h.name, "hostname")), h.name);
    }
}
