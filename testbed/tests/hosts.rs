//! The test hosts and the doubles, against real components: sshd, ssh with strict
//! known_hosts, overlay roots, dnf from a repo served over HTTP, keepalived VRRP and
//! haproxy started through the systemctl double. Needs root and the packages listed in
//! `bundle_testbed::real::hosts`; a missing one fails the test with its name.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use bundle_testbed::doubles::kube_fakes;
use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};

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

fn fails(o: Output) -> String {
    assert!(!o.status.success(), "expected a failure, got {}", text(&o));
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn start(masters: usize, workers: usize, kube_fakes: bool) -> TestCluster {
    TestCluster::start(&ClusterSpec {
        masters,
        workers,
        kube_fakes,
    })
    .expect("starting the test hosts")
}

/// Polls `f` until it returns `Some` or `deadline` passes (generous: not a timing test).
fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The master whose eth0 holds `vip`, seen from outside (its network namespace).
fn vip_holder(c: &TestCluster, vip: &str) -> Option<String> {
    c.masters()
        .find(|h| {
            let out = std::process::Command::new("ip")
                .args(["-n", &h.netns, "-o", "-4", "addr", "show", "dev", "eth0"])
                .output()
                .expect("ip");
            String::from_utf8_lossy(&out.stdout).contains(&format!(" {vip}/32"))
        })
        .map(|h| h.name.clone())
}

#[test]
fn ssh_reaches_every_host_with_strict_known_hosts() {
    let c = start(3, 2, false);
    for h in c.hosts() {
        // by address (what an inventory holds) and by name (the ssh_config alias)
        let by_addr = c.run_in_deploy(&format!(
            "ssh -F {} {} hostname",
            c.ssh_config().display(),
            h.address
        ));
        assert_eq!(ok(by_addr), h.name);
        assert_eq!(ok(c.ssh(&h.name, "hostname")), h.name);
        // and with plain options instead of the config file
        let plain = c.run_in_deploy(&format!(
            "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -i {} root@{} 'id -u'",
            c.known_hosts().display(),
            c.identity_file().display(),
            h.address
        ));
        assert_eq!(ok(plain), "0");
    }
    // sftp works (the executor may copy files that way)
    let sftp = c.run_in_deploy(&format!(
        "printf 'put {} /tmp/key.pub\\n' | sftp -F {} -b - m1",
        c.identity_file().with_extension("pub").display(),
        c.ssh_config().display()
    ));
    ok(sftp);
    assert!(c.host_path("m1", "/tmp/key.pub").is_file());
}

#[test]
fn ssh_refuses_an_unknown_or_changed_host_key() {
    let c = start(2, 0, false);
    let dir = c.dir().join("other-known-hosts");
    std::fs::create_dir_all(&dir).unwrap();
    // unknown: a known_hosts without the host
    let empty = dir.join("empty");
    std::fs::write(&empty, "").unwrap();
    let err = fails(c.run_in_deploy(&format!(
        "ssh -F {} -o UserKnownHostsFile={} m1 true",
        c.ssh_config().display(),
        empty.display()
    )));
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(err.contains("No ED25519 host key is known for"), "{err}");
    // changed: m2's key recorded for m1's address
    let kh = std::fs::read_to_string(c.known_hosts()).unwrap();
    let m2_key = kh.lines().find(|l| l.starts_with("m2,")).unwrap();
    let wrong = dir.join("wrong");
    let m1 = c.host("m1");
    std::fs::write(
        &wrong,
        format!("{} {}\n", m1.address, m2_key.split_once(' ').unwrap().1),
    )
    .unwrap();
    let err = fails(c.run_in_deploy(&format!(
        "ssh -F {} -o UserKnownHostsFile={} {} true",
        c.ssh_config().display(),
        wrong.display(),
        m1.address
    )));
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );
    assert!(err.contains("Host key verification failed"), "{err}");
    // and a key the host does not authorize
    let stranger = dir.join("id_stranger");
    ok(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .output()
        .unwrap());
    let err = fails(c.run_in_deploy(&format!(
        "ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile={} -o IdentitiesOnly=yes -i {} root@{} true",
        c.known_hosts().display(),
        stranger.display(),
        c.host("m1").address
    )));
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn hosts_have_their_own_hostname_etc_and_network() {
    let c = start(2, 0, false);
    let marker = format!("/etc/bundle-testbed-marker-{}", c.prefix());
    assert!(!Path::new(&marker).exists());
    ok(c.ssh("m1", &format!("echo written-by-m1 > {marker}")));
    // lands in m1's overlay, nowhere else
    assert_eq!(
        std::fs::read_to_string(c.host_path("m1", &marker)).unwrap(),
        "written-by-m1\n"
    );
    assert!(!Path::new(&marker).exists(), "the machine's /etc changed");
    assert!(!c.host_path("m2", &marker).exists());
    ok(c.ssh("m2", &format!("test ! -e {marker}")));
    assert_eq!(ok(c.ssh("m1", &format!("cat {marker}"))), "written-by-m1");
    // its own identity
    for h in c.hosts() {
        assert_eq!(ok(c.ssh(&h.name, "cat /etc/hostname")), h.name);
        assert_eq!(
            ok(c.ssh(&h.name, ". /etc/os-release && echo $ID $VERSION_ID")),
            "rocky 9.3"
        );
        let addrs = ok(c.ssh(&h.name, "ip -o -4 addr show | awk '{print $2, $4}'"));
        assert_eq!(addrs, format!("lo 127.0.0.1/8\neth0 {}/24", h.address));
        // the plan's preflight reads these
        ok(c.ssh(
            &h.name,
            "ip link show dev eth0 >/dev/null && nproc && free -m >/dev/null",
        ));
    }
    let uuid = |h: &str| ok(c.ssh(h, "cat /sys/class/dmi/id/product_uuid"));
    assert_ne!(uuid("m1"), uuid("m2"));
    let macs = |h: &str| {
        ok(c.ssh(
            h,
            "cat /sys/class/net/*/address | grep -v '^00:00:00:00:00:00$'",
        ))
    };
    assert_ne!(macs("m1"), macs("m2"));
    // machine-wide sysctls are read-only, the namespace's own are not
    fails(c.ssh("m1", "echo 1 > /proc/sys/kernel/sysrq"));
    ok(c.ssh("m1", "sysctl -q -w net.ipv4.ip_forward=1"));
    // the hosts reach each other, not the machine's network
    // (TCP: the machine may have no `ping`)
    ok(c.ssh(
        "m1",
        &format!(
            "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/22'",
            c.host("m2").address
        ),
    ));
    // each host sees only its own processes
    let ps = ok(c.ssh("m1", "ps -eo comm="));
    assert!(!ps.contains("cargo"), "{ps}");
}

#[test]
fn stopped_hosts_are_unreachable_and_come_back_with_their_files() {
    let mut c = start(2, 0, false);
    ok(c.ssh("m2", "echo kept > /etc/kept; echo gone > /run/gone"));
    c.stop_host("m2").unwrap();
    let err = fails(c.ssh("m2", "true"));
    assert!(err.contains("m2") || err.contains("10.77.0.12"), "{err}");
    ok(c.ssh("m1", "true"));
    c.start_host("m2").unwrap();
    assert_eq!(ok(c.ssh("m2", "cat /etc/kept")), "kept");
    ok(c.ssh("m2", "test ! -e /run/gone"));
    // sshd alone
    c.stop_sshd("m1").unwrap();
    let err = fails(c.ssh("m1", "true"));
    assert!(err.contains("Connection refused"), "{err}");
    assert_eq!(ok(c.run_in_host("m1", "hostname")), "m1");
    c.start_sshd("m1").unwrap();
    assert_eq!(ok(c.ssh("m1", "hostname")), "m1");
}

/// Serves `dir` over HTTP on the deploy node's address.
fn serve_from_deploy(c: &TestCluster, dir: &Path, port: u16) -> Child {
    let child = c
        .deploy_command("python3")
        .args(["-m", "http.server", "--bind"])
        .arg(c.deploy_address().to_string())
        .arg("--directory")
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let url = format!("http://{}:{port}/repodata/repomd.xml", c.deploy_address());
    wait_for("the repo server", Duration::from_secs(20), || {
        c.ssh("m1", &format!("curl -fsS -o /dev/null {url}"))
            .status
            .success()
            .then_some(())
    });
    child
}

#[test]
fn dnf_installs_the_fake_kube_rpms_from_the_deploy_node() {
    let c = start(1, 1, false);
    let repo = c.dir().join("repo");
    let rpms = kube_fakes::build_rpms(
        &c.dir().join("rpm-work"),
        &repo,
        kube_fakes::VERSION,
        kube_fakes::RELEASE,
    )
    .expect("building the fake RPMs");
    assert_eq!(rpms.len(), 3);
    bundle_testbed::rpms::createrepo(&repo).expect("createrepo_c");
    let mut server = serve_from_deploy(&c, &repo, 8081);
    let repo_file = format!(
        "[fake-k8s]\nname=fake k8s\nbaseurl=http://{}:8081/\nenabled=1\ngpgcheck=0\n",
        c.deploy_address()
    );
    let nevras = format!(
        "kubeadm-{v}-{r}.x86_64 kubelet-{v}-{r}.x86_64 kubectl-{v}-{r}.x86_64",
        v = kube_fakes::VERSION,
        r = kube_fakes::RELEASE
    );
    for h in ["m1", "w1"] {
        ok(c.ssh(
            h,
            &format!("cat > /etc/yum.repos.d/fake-k8s.repo <<'EOF'\n{repo_file}EOF"),
        ));
        ok(c.ssh(
            h,
            &format!("dnf install -y --disablerepo='*' --enablerepo=fake-k8s {nevras}"),
        ));
        ok(c.ssh(h, &format!("rpm -q {nevras}")));
        assert_eq!(
            ok(c.ssh(h, "kubeadm version -o short")),
            format!("v{}", kube_fakes::VERSION)
        );
        assert!(c.host_path(h, "/usr/bin/kubeadm").is_file());
    }
    assert!(
        !Path::new("/usr/bin/kubeadm").exists()
            || !std::fs::read_to_string("/usr/bin/kubeadm")
                .unwrap_or_default()
                .contains("bundle-testbed")
    );
    let _ = server.kill();
    let _ = server.wait();

    // the installed kubeadm checks its config and prints the join commands
    let m1 = c.host("m1").address;
    let err = fails(c.ssh(
        "m1",
        "kubeadm init --config /etc/kubernetes/missing.yaml --upload-certs",
    ));
    assert!(err.contains("no such file"), "{err}");
    ok(c.ssh("m1", "mkdir -p /etc/kubernetes/bundle && printf 'apiVersion: kubeadm.k8s.io/v1beta3\\nkind: ClusterConfiguration\\n' > /etc/kubernetes/bundle/no-endpoint.yaml"));
    let err = fails(c.ssh(
        "m1",
        "kubeadm init --config /etc/kubernetes/bundle/no-endpoint.yaml",
    ));
    assert!(err.contains("controlPlaneEndpoint"), "{err}");
    ok(c.ssh(
        "m1",
        &format!(
            "cat > /etc/kubernetes/bundle/kubeadm-init.yaml <<'EOF'\n{}EOF",
            init_config(&format!("{m1}:6443"), "m1", m1)
        ),
    ));
    let out = ok(c.ssh(
        "m1",
        "kubeadm init --config /etc/kubernetes/bundle/kubeadm-init.yaml --upload-certs",
    ));
    assert!(
        out.contains("You can now join any number of the control-plane node"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "kubeadm join {m1}:6443 --token abcdef.0123456789abcdef"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("--control-plane --certificate-key {CERT_KEY}")),
        "{out}"
    );
    let hash = ok(c.ssh("m1", CA_CERT_HASH));
    assert!(
        out.contains(&format!("--discovery-token-ca-cert-hash {hash}")),
        "{out}"
    );
    let join = ok(c.ssh("m1", "kubeadm token create --print-join-command"));
    assert!(
        join.starts_with(&format!("kubeadm join {m1}:6443 --token ")),
        "{join}"
    );
    assert!(join.contains(&hash), "{join}");
    let calls = std::fs::read_to_string(c.host_path("m1", kube_fakes::CALLS_LOG)).unwrap();
    assert!(
        calls.contains(
            "kubeadm init --config /etc/kubernetes/bundle/kubeadm-init.yaml --upload-certs\n"
        ),
        "{calls}"
    );
    assert!(
        calls.contains("kubeadm token create --print-join-command\n"),
        "{calls}"
    );
    // the worker joins with the printed command
    let out = ok(c.ssh("w1", &join));
    assert!(out.contains("This node has joined the cluster"), "{out}");
    assert!(c.host_path("w1", "/etc/kubernetes/kubelet.conf").is_file());
}

const CERT_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The plan's `init/ca-cert-hash` command.
const CA_CERT_HASH: &str = "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum | sed 's/^\\([0-9a-f]*\\).*/sha256:\\1/'";

/// A kubeadm init config shaped like the installer's (`render::kubeadm::init_config`).
fn init_config(endpoint: &str, node: &str, address: std::net::Ipv4Addr) -> String {
    format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
  - token: "abcdef.0123456789abcdef"
    ttl: "24h0m0s"
certificateKey: "{CERT_KEY}"
localAPIEndpoint:
  advertiseAddress: "{address}"
  bindPort: 6443
nodeRegistration:
  name: "{node}"
  criSocket: "unix:///run/containerd/containerd.sock"
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
clusterName: "test"
kubernetesVersion: "v1.29.2"
controlPlaneEndpoint: "{endpoint}"
imageRepository: "registry.example/k8s"
"#
    )
}

/// A kubeadm join config shaped like the installer's (`render::kubeadm::join_config`).
fn join_config(
    endpoint: &str,
    node: &str,
    hash: &str,
    master: Option<std::net::Ipv4Addr>,
) -> String {
    let mut s = format!(
        r#"apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{endpoint}"
    token: "abcdef.0123456789abcdef"
    caCertHashes:
      - "{hash}"
nodeRegistration:
  name: "{node}"
  criSocket: "unix:///run/containerd/containerd.sock"
"#
    );
    if let Some(a) = master {
        s.push_str(&format!(
            "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: \"{a}\"\n    bindPort: 6443\n  certificateKey: \"{CERT_KEY}\"\n"
        ));
    }
    s
}

fn put(c: &TestCluster, host: &str, path: &str, content: &str) {
    ok(c.ssh(
        host,
        &format!("mkdir -p $(dirname {path}) && cat > {path} <<'BUNDLE_EOF'\n{content}BUNDLE_EOF"),
    ));
}

#[test]
fn fake_kube_tools_answer_the_plan_commands() {
    let c = start(2, 1, true);
    let m1 = c.host("m1").address;
    let ep = format!("{m1}:6443");
    put(
        &c,
        "m1",
        "/etc/kubernetes/bundle/kubeadm-init.yaml",
        &init_config(&ep, "m1", m1),
    );
    let out = ok(c.ssh(
        "m1",
        "kubeadm config images pull --config /etc/kubernetes/bundle/kubeadm-init.yaml",
    ));
    assert!(
        out.contains("[config/images] Pulled registry.example/k8s/kube-apiserver:v1.29.2"),
        "{out}"
    );
    ok(c.ssh(
        "m1",
        "kubeadm init --config /etc/kubernetes/bundle/kubeadm-init.yaml --upload-certs",
    ));
    // a second init is refused like kubeadm's preflight does
    let err = fails(c.ssh(
        "m1",
        "kubeadm init --config /etc/kubernetes/bundle/kubeadm-init.yaml --upload-certs",
    ));
    assert!(err.contains("already exists"), "{err}");
    assert!(c.host_path("m1", "/etc/kubernetes/admin.conf").is_file());
    ok(c.ssh(
        "m1",
        "install -D -m 0600 /etc/kubernetes/admin.conf /root/.kube/config",
    ));
    ok(c.run_in_deploy(&format!("curl -ksf https://{ep}/readyz")));
    let hash = ok(c.ssh("m1", CA_CERT_HASH));
    let key = ok(c.ssh("m1", "kubeadm init phase upload-certs --upload-certs --config /etc/kubernetes/bundle/kubeadm-init.yaml"));
    assert!(key.ends_with(CERT_KEY), "{key}");

    // wrong CA hash: refused, nothing written
    let bad = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    put(
        &c,
        "w1",
        "/etc/kubernetes/bundle/kubeadm-join.yaml",
        &join_config(&ep, "w1", bad, None),
    );
    let err = fails(c.ssh(
        "w1",
        "kubeadm join --config /etc/kubernetes/bundle/kubeadm-join.yaml",
    ));
    assert!(err.contains("are pinned"), "{err}");
    assert!(!c.host_path("w1", "/etc/kubernetes/kubelet.conf").exists());
    // the right one
    put(
        &c,
        "m2",
        "/etc/kubernetes/bundle/kubeadm-join.yaml",
        &join_config(&ep, "m2", &hash, Some(c.host("m2").address)),
    );
    ok(c.ssh(
        "m2",
        "kubeadm join --config /etc/kubernetes/bundle/kubeadm-join.yaml",
    ));
    ok(c.run_in_deploy(&format!(
        "curl -ksf https://{}:6443/readyz",
        c.host("m2").address
    )));
    put(
        &c,
        "w1",
        "/etc/kubernetes/bundle/kubeadm-join.yaml",
        &join_config(&ep, "w1", &hash, None),
    );
    ok(c.ssh(
        "w1",
        "kubeadm join --config /etc/kubernetes/bundle/kubeadm-join.yaml",
    ));
    let recorded = std::fs::read_to_string(
        c.host_path("m2", "/var/log/fake-k8s/configs/join-kubeadm-join.yaml"),
    )
    .unwrap();
    assert!(recorded.contains(CERT_KEY) && recorded.contains(&hash));

    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    // NotReady until a CNI DaemonSet is applied
    let nodes = ok(c.ssh("m1", &format!("{kubectl} get nodes --no-headers")));
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    assert!(nodes.lines().all(|l| l.contains("NotReady")), "{nodes}");
    let err = fails(c.ssh(
        "m1",
        &format!("{kubectl} -n kube-system rollout status daemonset/calico-node --timeout=10s"),
    ));
    assert!(err.contains("not found"), "{err}");
    put(&c, "m1", "/etc/kubernetes/bundle/cni.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: calico-node\n  namespace: kube-system\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: calico-node\n  namespace: kube-system\nspec: {}\n");
    let out = ok(c.ssh(
        "m1",
        &format!(
            "{kubectl} apply --server-side --force-conflicts -f /etc/kubernetes/bundle/cni.yaml"
        ),
    ));
    assert_eq!(
        out,
        "serviceaccount/calico-node serverside-applied\ndaemonset/calico-node serverside-applied"
    );
    assert!(c
        .host_path("m1", "/var/log/fake-k8s/applied/cni.yaml")
        .is_file());
    ok(c.ssh(
        "m1",
        &format!("{kubectl} -n kube-system rollout status daemonset/calico-node --timeout=10s"),
    ));
    // the plan's verify commands
    ok(c.ssh(
        "m1",
        &format!(
            "[ \"$({kubectl} get nodes --no-headers | awk '$2 == \"Ready\"' | wc -l)\" -eq 3 ]"
        ),
    ));
    let members = ok(c.ssh("m1", &format!("{kubectl} -n kube-system exec etcd-m1 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key member list")));
    assert_eq!(members.matches(", started, ").count(), 2, "{members}");
    let pods = ok(c.ssh(
        "m2",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get pods -l component=etcd --no-headers",
    ));
    assert_eq!(pods.lines().count(), 2, "{pods}");
    // the kubelet answers its version; calls are recorded
    assert_eq!(ok(c.ssh("w1", "kubelet --version")), "Kubernetes v1.29.2");
    // reset undoes a join
    ok(c.ssh("w1", "kubeadm reset -f"));
    assert!(!c.host_path("w1", "/etc/kubernetes/kubelet.conf").exists());
    let nodes = ok(c.ssh("m1", &format!("{kubectl} get nodes --no-headers -o name")));
    assert_eq!(nodes, "node/m1\nnode/m2");
    let calls = std::fs::read_to_string(c.host_path("w1", kube_fakes::CALLS_LOG)).unwrap();
    assert!(
        calls.contains(
            "kubeadm join --config /etc/kubernetes/bundle/kubeadm-join.yaml\nkubeadm join --config"
        ),
        "{calls}"
    );
    assert!(calls.contains("kubeadm reset -f\n"), "{calls}");
    // without a kubeconfig, kubectl fails like the real one
    let err = fails(c.ssh("w1", "kubectl get nodes"));
    assert!(err.contains("localhost:8080 was refused"), "{err}");
}

fn haproxy_cfg(c: &TestCluster) -> String {
    let mut s = String::from(
        "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n    timeout check 5s\n\n\
         frontend kube-apiserver-lb\n    bind *:8443\n    default_backend kube-apiserver\n\n\
         backend kube-apiserver\n    balance roundrobin\n    option httpchk\n    http-check connect ssl\n    http-check send meth GET uri /readyz\n    http-check expect status 200\n    default-server inter 1s downinter 2s rise 2 fall 2 check check-ssl verify none\n",
    );
    for m in c.masters() {
        s.push_str(&format!("    server {} {}:6443\n", m.name, m.address));
    }
    s.push_str("\nlisten stats\n    mode http\n    bind 127.0.0.1:8404\n    stats enable\n    stats uri /stats\n");
    s
}

fn keepalived_conf(c: &TestCluster, index: usize) -> String {
    let me = c.masters().nth(index).unwrap();
    let peers: String = c
        .masters()
        .filter(|m| m.name != me.name)
        .map(|m| format!("        {}\n", m.address))
        .collect();
    format!(
        "global_defs {{\n    router_id {name}\n    enable_script_security\n    script_user root\n}}\n\
         vrrp_script check_haproxy {{\n    script \"/usr/bin/pgrep -x haproxy\"\n    interval 2\n    timeout 2\n    fall 2\n    rise 2\n    weight -100\n}}\n\
         vrrp_instance kube_apiserver {{\n    state {state}\n    interface eth0\n    virtual_router_id 51\n    priority {prio}\n    advert_int 1\n\
         \x20   authentication {{\n        auth_type PASS\n        auth_pass testpass\n    }}\n    unicast_src_ip {addr}\n    unicast_peer {{\n{peers}    }}\n\
         \x20   virtual_ipaddress {{\n        {vip}/32 dev eth0\n    }}\n    track_script {{\n        check_haproxy\n    }}\n}}\n",
        name = me.name,
        state = if index == 0 { "MASTER" } else { "BACKUP" },
        prio = 200 - 10 * index,
        addr = me.address,
        vip = c.vip(),
    )
}

#[test]
fn keepalived_vip_moves_and_haproxy_serves_through_the_systemctl_double() {
    let c = start(3, 0, true);
    let vip = c.vip().to_string();
    for (i, m) in c.masters().enumerate() {
        put(&c, &m.name, "/etc/haproxy/haproxy.cfg", &haproxy_cfg(&c));
        put(
            &c,
            &m.name,
            "/etc/keepalived/keepalived.conf",
            &keepalived_conf(&c, i),
        );
        ok(c.ssh(&m.name, "haproxy -c -q -f /etc/haproxy/haproxy.cfg && keepalived -t -f /etc/keepalived/keepalived.conf"));
        // the plan's lb steps
        ok(c.ssh(
            &m.name,
            "systemctl enable haproxy && systemctl restart haproxy",
        ));
        ok(c.ssh(
            &m.name,
            "systemctl enable keepalived && systemctl restart keepalived",
        ));
        ok(c.ssh(
            &m.name,
            "systemctl is-active --quiet haproxy && systemctl is-active --quiet keepalived",
        ));
        assert_eq!(
            ok(c.ssh(&m.name, "systemctl is-enabled keepalived")),
            "enabled"
        );
    }
    // units the double does not run are recorded and succeed
    ok(c.ssh(
        "m1",
        "systemctl daemon-reload && systemctl enable kubelet && systemctl restart kubelet",
    ));
    ok(c.ssh("m1", "systemctl is-active --quiet kubelet"));
    fails(c.ssh("m1", "systemctl is-active --quiet firewalld"));
    let calls =
        std::fs::read_to_string(c.host_path("m1", "/var/log/fake-systemd/calls.log")).unwrap();
    assert!(
        calls.contains(
            "systemctl daemon-reload\nsystemctl enable kubelet\nsystemctl restart kubelet\n"
        ),
        "{calls}"
    );

    // a unit `bundle install` writes runs its ExecStart in its WorkingDirectory (the repo
    // server on a master, serving /etc)
    let m1 = c.host("m1").address;
    put(
        &c,
        "m1",
        "/etc/systemd/system/bundle-repo.service",
        &format!("[Service]\nWorkingDirectory=/etc\nExecStart=/usr/bin/python3 -m http.server --bind {m1} 8081\n"),
    );
    ok(c.ssh("m1", "systemctl daemon-reload && systemctl enable bundle-repo.service && systemctl restart bundle-repo.service"));
    ok(c.ssh("m1", "systemctl is-active --quiet bundle-repo.service"));
    wait_for("the unit's server", Duration::from_secs(20), || {
        c.run_in_deploy(&format!("curl -fsS -o /dev/null http://{m1}:8081/hostname"))
            .status
            .success()
            .then_some(())
    });
    ok(c.ssh("m1", "systemctl stop bundle-repo.service"));
    fails(c.ssh("m1", "systemctl is-active --quiet bundle-repo.service"));

    // the VIP comes up on the MASTER (priority 200) and answers from the deploy node
    let first = wait_for("the VIP", Duration::from_secs(60), || vip_holder(&c, &vip));
    assert_eq!(first, "m1");
    ok(c.run_in_deploy(&format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{vip}/8443'")));
    // haproxy accepts TCP on 8443 through the VIP
    ok(c.run_in_deploy(&format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{vip}/8443'")));
    // and, once an API server answers, serves /readyz through it
    put(
        &c,
        "m1",
        "/etc/kubernetes/bundle/kubeadm-init.yaml",
        &init_config(&format!("{vip}:8443"), "m1", c.host("m1").address),
    );
    ok(c.ssh(
        "m1",
        "kubeadm init --config /etc/kubernetes/bundle/kubeadm-init.yaml --upload-certs",
    ));
    wait_for("the API through the VIP", Duration::from_secs(60), || {
        c.run_in_deploy(&format!("curl -ksf --max-time 3 https://{vip}:8443/readyz"))
            .status
            .success()
            .then_some(())
    });

    // stop keepalived on the holder: the VIP moves to another master
    ok(c.ssh(&first, "systemctl stop keepalived"));
    fails(c.ssh(&first, "systemctl is-active --quiet keepalived"));
    ok(c.ssh(&first, "! pgrep -x keepalived"));
    let second = wait_for("the VIP to move", Duration::from_secs(60), || {
        vip_holder(&c, &vip).filter(|h| *h != first)
    });
    assert_eq!(second, "m2");
    ok(c.run_in_deploy(&format!("timeout 5 bash -c 'exec 3<>/dev/tcp/{vip}/8443'")));
    wait_for(
        "the API through the moved VIP",
        Duration::from_secs(60),
        || {
            c.run_in_deploy(&format!("curl -ksf --max-time 3 https://{vip}:8443/readyz"))
                .status
                .success()
                .then_some(())
        },
    );
    // back: m1 preempts again
    ok(c.ssh(&first, "systemctl start keepalived"));
    wait_for("the VIP to come back", Duration::from_secs(60), || {
        (vip_holder(&c, &vip).as_deref() == Some("m1")).then_some(())
    });
    // stopping haproxy on the holder lowers its priority (the track script): the VIP moves
    ok(c.ssh("m1", "systemctl stop haproxy"));
    wait_for(
        "the VIP to leave m1 without haproxy",
        Duration::from_secs(60),
        || vip_holder(&c, &vip).filter(|h| h != "m1"),
    );
}

#[test]
fn drop_leaves_no_namespace_mount_or_process() {
    let (names, pids, dir, prefix) = {
        let c = start(2, 1, false);
        // a daemon on a host and a process in the deploy namespace, as tests leave them
        put(&c, "m1", "/etc/haproxy/haproxy.cfg", "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\nfrontend f\n    bind *:8443\n");
        ok(c.ssh("m1", "systemctl start haproxy"));
        let mut bg = c.deploy_command("sleep").arg("300").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let pids = c.pids();
        assert!(pids.len() > 3 * 2, "{pids:?}");
        let names = c.netns_names();
        let dir = c.dir().to_path_buf();
        let prefix = c.prefix().to_string();
        drop(c);
        let _ = bg.wait();
        (names, pids, dir, prefix)
    };
    let list = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    for n in &names {
        assert!(
            !list.lines().any(|l| l.split_whitespace().next() == Some(n)),
            "{n} left: {list}"
        );
    }
    assert!(!list.contains(&prefix), "{list}");
    for p in pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let zombie_or_gone = stat.is_empty()
            || stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        assert!(zombie_or_gone, "process {p} still runs: {stat}");
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(&prefix), "{mounts}");
    assert!(!mounts.contains(&dir.display().to_string()), "{mounts}");
    assert!(!dir.exists());
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let prefix = std::sync::Mutex::new(String::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let c = start(1, 0, false);
        *prefix.lock().unwrap() = c.prefix().to_string();
        panic!("a failing test");
    }));
    assert!(r.is_err());
    let prefix = prefix.into_inner().unwrap();
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&prefix));
}
