//! `bundle install` end to end on test hosts (`bundle_testbed::real::hosts::TestCluster`:
//! network + mount/uts/pid namespaces with an overlay root of the machine, sshd on each,
//! strict known_hosts), from a deploy namespace at 10.77.0.2.
//!
//! The bundle is built by the test with `bundle build`: images from a local registry
//! seeded with skopeo (`--mirror`), a calico-shaped manifest from a local file server,
//! RPMs from a local yum repo: the fake kubeadm/kubectl/kubelet/cri-tools RPMs
//! (`bundle_testbed::doubles::kube_fakes`) and README-only stand-ins for packages whose real
//! programs the hosts already have from the machine (haproxy, keepalived, …). The hosts
//! install them with dnf from the repo `bundle install` serves; haproxy and keepalived
//! really run on the masters and containerd on every host (through the systemctl
//! double); the images are pushed by
//! `bundle install` itself to a TLS docker-registry in the deploy namespace, whose CA the
//! inventory names, and the fake crictl pulls their manifests from it with that CA.
//!
//! Test doubles on the hosts (all installed by the testbed, see its docs): systemctl,
//! kubeadm, kubectl, kubelet, crictl, modprobe, swapoff.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bundle_testbed::doubles::kube_fakes;
use bundle_testbed::fixtures::packages;
use bundle_testbed::fixtures::releases::{self, Release};
use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};
use bundle_testbed::real::registry::{test_tls, RegistryOptions};
use bundle_testbed::Registry;

const REGISTRY_PORT: u16 = 5000;
const REPO_PORT: u16 = 8081;
const CALLS: &str = kube_fakes::CALLS_LOG;

/// The connected side (registry, files, RPM repo, the bundle built from them) and the
/// isolated side (test hosts, the TLS registry in the deploy namespace, the inventory).
struct Site {
    c: TestCluster,
    work: tempfile::TempDir,
    _registry: Registry,
    /// The host standing in for an arm64 machine (`arch: aarch64` in the inventory).
    arm64: Option<&'static str>,
}

/// The worker of [`Site::start`] that stands in for an arm64 machine.
const ARM64_HOST: &str = "w2";

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What the install tests install.
const INSTALLED: Release = Release {
    name: "e2e",
    version: "1.29.2-1",
    kubernetes: kube_fakes::VERSION,
    stand_ins: packages::STAND_INS,
    calico_suffix: "",
    output: "e2e.tar.zst",
    key: "builder",
};

/// The next minor, which the upgrade test upgrades to: new Kubernetes packages and
/// images, containerd one patch on, a changed calico manifest.
const NEXT: Release = Release {
    name: "e2e",
    version: "1.30.1-1",
    kubernetes: "1.30.1",
    stand_ins: packages::NEXT_STAND_INS,
    calico_suffix: "# calico as the 1.30 bundle carries it\n",
    output: "next.tar.zst",
    key: "builder",
};

/// Two minors on from the installed release: refused ("upgrade to 1.30 first").
const SKIPPING: Release = Release {
    name: "e2e",
    version: "1.31.0-1",
    kubernetes: "1.31.0",
    stand_ins: packages::NEXT_STAND_INS,
    calico_suffix: "",
    output: "skipping.tar.zst",
    key: "builder",
};

/// The next minor, signed by another key than the installed release's.
const FOREIGN: Release = Release {
    name: "e2e",
    version: "1.30.1-1",
    kubernetes: "1.30.1",
    stand_ins: packages::NEXT_STAND_INS,
    calico_suffix: "",
    output: "foreign.tar.zst",
    key: "other",
};

/// Builds `r`'s bundle on the "connected side" (127.0.0.1 servers), in `work`.
fn build_bundle(work: &Path, r: &Release) {
    let bin = Path::new(env!("CARGO_BIN_EXE_bundle"));
    releases::build(bin, work, r, &["x86_64", "aarch64"]).expect("bundle build");
    assert!(work.join(r.output).is_file());
}

impl Site {
    /// 3 masters and 3 workers, of which the inventory lists `workers`; `w2` is an
    /// arm64 machine (a stand-in: see [`TestCluster::pose_as_aarch64`]).
    fn start(workers: usize) -> Site {
        Site::start_site(3, workers, Some(ARM64_HOST))
    }

    /// 3 masters and `hosts` more (`w1`…), of which the inventory lists `workers`.
    fn start_with_hosts(hosts: usize, workers: usize) -> Site {
        Site::start_site(hosts, workers, None)
    }

    fn start_site(hosts: usize, workers: usize, arm64: Option<&'static str>) -> Site {
        let c = TestCluster::start(&ClusterSpec {
            masters: 3,
            workers: hosts,
            kube_fakes: false,
        })
        .expect("starting the test hosts");
        let work = tempfile::tempdir().unwrap();
        build_bundle(work.path(), &INSTALLED);
        let tls = test_tls(&work.path().join("tls"), &c.deploy_address().to_string())
            .expect("registry certificates");
        std::fs::copy(&tls.ca, work.path().join("registry-ca.crt")).unwrap();
        let registry = Registry::start_in_netns(
            c.deploy_netns(),
            &c.deploy_address().to_string(),
            REGISTRY_PORT,
            &RegistryOptions {
                tls: Some((tls.cert.clone(), tls.key.clone())),
                ..Default::default()
            },
        )
        .expect("the TLS registry in the deploy namespace");
        if let Some(h) = arm64 {
            c.pose_as_aarch64(h).expect("an arm64 stand-in");
        }
        let s = Site {
            c,
            work,
            _registry: registry,
            arm64,
        };
        s.write_inventory("cluster.yaml", workers, &s.c.known_hosts());
        // The masters' administrator, as a site has one (`spec.admin.users`).
        for m in ["m1", "m2", "m3"] {
            s.on_host(m, "useradd --create-home ops");
        }
        // A joining master's etcd member is `unstarted` in the first two member lists
        // after its `kubeadm join`: the install has to wait for it.
        std::fs::write(s.c.shared_dir().join("etcd-unstarted-lists"), "2\n").unwrap();
        s
    }

    fn path(&self, p: &str) -> PathBuf {
        self.work.path().join(p)
    }

    fn inventory_text(&self, workers: usize, known_hosts: &Path, extra_ssh: &str) -> String {
        let mut hosts = String::new();
        for h in self.c.masters() {
            hosts.push_str(&format!(
                "    - {{name: {}, address: {}, roles: [master]}}\n",
                h.name, h.address
            ));
        }
        for h in self.c.workers().take(workers) {
            let arch = if self.arm64 == Some(h.name.as_str()) {
                ", arch: aarch64"
            } else {
                ""
            };
            hosts.push_str(&format!(
                "    - {{name: {}, address: {}, roles: [worker]{arch}}}\n",
                h.name, h.address
            ));
        }
        format!(
            "apiVersion: bundle/v1alpha1
kind: Cluster
metadata: {{name: e2e}}
spec:
  hosts:
{hosts}  ssh: {{user: root, identityFile: {key}, knownHostsFile: {kh}{extra_ssh}}}
  controlPlaneEndpoint: {{vip: {vip}, interface: eth0}}
  registry: {{host: '{deploy}:{REGISTRY_PORT}', caFile: registry-ca.crt}}
  network: {{cni: calico, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}}
  repo: {{servedBy: deploy, address: {deploy}, port: {REPO_PORT}}}
  admin: {{users: [ops]}}
",
            key = self.c.identity_file().display(),
            kh = known_hosts.display(),
            vip = self.c.vip(),
            deploy = self.c.deploy_address(),
        )
    }

    fn write_inventory(&self, name: &str, workers: usize, known_hosts: &Path) {
        std::fs::write(
            self.path(name),
            self.inventory_text(workers, known_hosts, ""),
        )
        .unwrap();
    }

    /// `bundle ARGS` in the deploy namespace, in the work folder, with no credentials
    /// or ssh settings of the machine's user.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.c.deploy_command(env!("CARGO_BIN_EXE_bundle"));
        c.args(args)
            .current_dir(self.work.path())
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("NO_COLOR", "1")
            .env_remove("BUNDLE_REGISTRY_USERNAME")
            .env_remove("BUNDLE_REGISTRY_PASSWORD")
            .env_remove("BUNDLE_BECOME_PASSWORD")
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .stdin(Stdio::null());
        c
    }

    fn bundle(&self, args: &[&str]) -> Output {
        std::fs::create_dir_all(self.path("home")).unwrap();
        self.command(args).output().expect("bundle runs")
    }

    fn install_args<'a>(&self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "install",
            "e2e.tar.zst",
            "--inventory",
            "cluster.yaml",
            "--pubkey",
            "builder.pub",
            "--yes",
        ];
        v.extend_from_slice(extra);
        v
    }

    fn install(&self, extra: &[&str]) -> Output {
        self.bundle(&self.install_args(extra))
    }

    /// Like [`ok`], with the hosts' service and step logs when it failed.
    fn ok(&self, o: &Output, what: &str) -> String {
        if !o.status.success() {
            let mut logs = String::new();
            for h in self.c.hosts() {
                let up = self.c.host_path(&h.name, "/var/log/fake-systemd");
                for f in walk(&up) {
                    let t = std::fs::read_to_string(&f).unwrap_or_default();
                    let tail: Vec<&str> = t.lines().rev().take(15).collect();
                    logs.push_str(&format!(
                        "--- {}: {}\n{}\n",
                        h.name,
                        f.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ));
                }
            }
            eprintln!("{logs}");
        }
        ok(o, what)
    }

    fn state(&self) -> PathBuf {
        self.path("bundle-state/e2e")
    }

    /// The latest record of every step of `host`, from the state folder.
    fn records(&self, host: &str) -> Vec<serde_json::Value> {
        let p = self.state().join(format!("_state/records/{host}.jsonl"));
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn calls(&self, host: &str) -> String {
        self.c.read_host_file(host, CALLS).unwrap_or_default()
    }

    fn on_host(&self, host: &str, script: &str) -> String {
        ok(&self.c.run_in_host(host, script), script)
    }
}

/// `(status, step)` pairs of `host`'s records, in order.
fn statuses(records: &[serde_json::Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_string(),
                r["step"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.lines().filter(|l| l.starts_with(needle)).count()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every file of the dry-run plan's `HOST/files/` tree, with its placeholders filled in
/// from the state's secrets and captures, equals the host's.
fn assert_host_files_match_plan(s: &Site, plan_dir: &Path, hosts: &[&str]) {
    let secrets: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(s.state().join("secrets.json")).unwrap()).unwrap();
    let mut runtime = BTreeMap::new();
    for h in s.c.hosts() {
        for r in s.records(&h.name) {
            if let (Some(step), Some(v)) = (r["step"].as_str(), r["capture"].as_str()) {
                if step == "init/ca-cert-hash" {
                    runtime.insert("ca-cert-hash".to_string(), v.to_string());
                }
            }
        }
    }
    assert!(runtime.contains_key("ca-cert-hash"), "captured CA hash");
    let fill = |t: &str| {
        let mut t = t.to_string();
        for (k, v) in &secrets {
            t = t.replace(&format!("<secret:{k}>"), v);
        }
        for (k, v) in &runtime {
            t = t.replace(&format!("<runtime:{k}>"), v);
        }
        t
    };
    let mut compared = 0;
    for h in hosts {
        let root = plan_dir.join(h).join("files");
        for f in walk(&root) {
            let rel = f.strip_prefix(&root).unwrap();
            let on_host = format!("/{}", rel.display());
            let want = fill(&std::fs::read_to_string(&f).unwrap());
            assert!(!want.contains("<secret:") && !want.contains("<runtime:"));
            let got =
                s.c.read_host_file(h, &on_host)
                    .unwrap_or_else(|e| panic!("{h}: {on_host}: {e:#}"));
            assert!(got == want, "{h}: {on_host} differs from the plan's");
            compared += 1;
        }
    }
    assert!(compared > 10 * hosts.len() / 2, "compared {compared} files");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The VIP answers on 8443 through haproxy, from the deploy namespace.
fn vip_answers(s: &Site) -> bool {
    s.c.run_in_deploy(&format!(
        "curl -ksf -o /dev/null --max-time 5 https://{}:8443/readyz",
        s.c.vip()
    ))
    .status
    .success()
}

fn vip_holders(s: &Site) -> Vec<String> {
    s.c.masters()
        .filter(|m| {
            s.c.run_in_host(
                &m.name,
                &format!("ip -o addr show dev eth0 | grep -qw '{}'", s.c.vip()),
            )
            .status
            .success()
        })
        .map(|m| m.name.clone())
        .collect()
}

const INVENTORY_HOSTS: &[&str] = &["m1", "m2", "m3", "w1", "w2"];

/// The install and upgrade tests each run six hosts and every operation on them; on a
/// two-core machine they take turns (side by side, an upgrade once lost its ssh
/// connection to a worker under the load).
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn install_builds_an_ha_cluster_resumes_after_a_kill_and_changes_nothing_the_second_time() {
    let _turn = one_cluster_at_a_time();
    let s = Site::start(2);

    // The dry run of the same inputs: the plan every host's files must match.
    let o = s.bundle(&[
        "install",
        "e2e.tar.zst",
        "--inventory",
        "cluster.yaml",
        "--pubkey",
        "builder.pub",
        "--dry-run",
        "--plan-out",
        "bundle-state/e2e",
    ]);
    ok(&o, "install --dry-run");
    let plan_dir = s.path("dry-run");
    ok(
        &Command::new("cp")
            .arg("-a")
            .arg(s.state())
            .arg(&plan_dir)
            .output()
            .unwrap(),
        "cp",
    );

    // Killed mid-install: once the os phase has records on a host, SIGKILL.
    let mut child = s
        .command(&s.install_args(&[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bundle install");
    wait_until("os phase records", Duration::from_secs(300), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("bundle install ended ({status}) before it was killed");
        }
        s.records("m1").iter().any(|r| r["phase"] == "os")
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before_kill: BTreeMap<&str, Vec<(String, String)>> = INVENTORY_HOSTS
        .iter()
        .map(|h| (*h, statuses(&s.records(h))))
        .collect();
    assert!(before_kill["m1"].iter().any(|(_, st)| st == "repo/install"));
    assert!(!before_kill["m1"]
        .iter()
        .any(|(_, st)| st.starts_with("init/")));
    let dnf_before =
        s.c.read_host_file("m1", "/var/log/dnf.rpm.log")
            .unwrap_or_default()
            .lines()
            .count();

    // The re-run finishes without redoing finished steps.
    let o = s.install(&[]);
    let out = s.ok(&o, "bundle install after the kill");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Installed cluster `e2e`"), "{out}{err}");
    for h in INVENTORY_HOSTS {
        let all = statuses(&s.records(h));
        let rerun = &all[before_kill[h].len()..];
        for (status, step) in &before_kill[*h] {
            if status != "done" || step.starts_with("verify/") || step.starts_with("preflight/") {
                continue;
            }
            let again = rerun.iter().find(|(_, st)| st == step);
            if let Some((st, _)) = again {
                assert_eq!(
                    st, "skipped",
                    "{h}: `{step}` finished before the kill and ran again"
                );
            }
        }
    }
    let dnf_after =
        s.c.read_host_file("m1", "/var/log/dnf.rpm.log")
            .unwrap_or_default()
            .lines()
            .count();
    assert_eq!(
        dnf_before, dnf_after,
        "packages installed again after the kill"
    );

    // Every host's files are the plan's.
    assert_host_files_match_plan(&s, &plan_dir, INVENTORY_HOSTS);

    // The VIP answers on 8443 through haproxy, from the deploy node.
    assert!(vip_answers(&s), "the VIP does not answer on 8443");
    assert_eq!(vip_holders(&s), vec!["m1".to_string()]);

    // On every master `ops` has the admin kubeconfig, theirs alone, and bash
    // completes kubectl and kubeadm from the scripts the installed binaries wrote.
    for m in ["m1", "m2", "m3"] {
        let owned = s.on_host(m, "stat -c '%U %a' ~ops/.kube ~ops/.kube/config && cmp /etc/kubernetes/admin.conf ~ops/.kube/config && echo same");
        assert_eq!(owned, "ops 700\nops 600\nsame\n", "{m}");
        let completes = s.on_host(m, "su - ops -c 'kubectl get nodes --no-headers | wc -l' && bash -c 'for f in /etc/bash_completion.d/kube*; do . $f; done; complete -p kubectl kubeadm'");
        assert!(completes.starts_with("5\n"), "{m}: {completes}");
        assert!(
            completes.contains("complete -o default -F __start_kubectl kubectl"),
            "{m}: {completes}"
        );
        assert!(
            completes.contains("complete -o default -F __start_kubeadm kubeadm"),
            "{m}: {completes}"
        );
    }

    // Each host installed its own architecture's packages from its own target: the
    // arm64 worker the aarch64 ones (dnf on an x86_64 host refuses them), the others
    // the x86_64 ones.
    for h in INVENTORY_HOSTS {
        let arch = if *h == ARM64_HOST {
            "aarch64"
        } else {
            "x86_64"
        };
        let q = s.on_host(
            h,
            "rpm -q --qf '%{ARCH}\\n' kubeadm kubelet kubectl cri-tools containerd.io | sort -u && grep ^baseurl= /etc/yum.repos.d/bundle.repo",
        );
        assert_eq!(
            q,
            format!(
                "{arch}\nbaseurl=http://{}:{REPO_PORT}/el9-{arch}/\n",
                s.c.deploy_address()
            ),
            "{h}"
        );
    }

    // The pushed images are there for both platforms: skopeo, as an arm64 node's
    // containerd would, resolves kube-proxy's index to its arm64 image.
    let certs = s.path("skopeo-certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(s.path("registry-ca.crt"), certs.join("ca.crt")).unwrap();
    for (arch, want) in [("arm64", "arm64"), ("amd64", "amd64")] {
        let o = s.c.run_in_deploy(&format!(
            "skopeo inspect --override-os linux --override-arch {arch} --cert-dir {} docker://{}:{REGISTRY_PORT}/k8s/kube-proxy:v{}",
            certs.display(),
            s.c.deploy_address(),
            kube_fakes::VERSION
        ));
        let inspected: serde_json::Value = serde_json::from_str(&ok(&o, "skopeo inspect")).unwrap();
        assert_eq!(inspected["Architecture"], want, "{inspected}");
    }

    // containerd really runs on every host, with the plan's config.
    for h in INVENTORY_HOSTS {
        let v = s.on_host(
            h,
            "ctr --address /run/containerd/containerd.sock version && pgrep -a containerd",
        );
        assert!(
            v.contains("Server:") && v.contains("containerd --config /etc/containerd/config.toml"),
            "{h}: {v}"
        );
    }

    // `bundle status` sees the healthy cluster, then one master's haproxy stopped.
    let o = s.bundle(&["status", "--inventory", "cluster.yaml", "--json"]);
    let out = s.ok(&o, "bundle status --json");
    let st: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(st["release"]["state"]["bundle"], "e2e", "{st}");
    assert_eq!(st["release"]["cluster"], st["release"]["state"], "{st}");
    let nodes = st["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), INVENTORY_HOSTS.len(), "{st}");
    assert!(
        nodes
            .iter()
            .all(|n| n["ready"] == true && n["schedulable"] == true),
        "{st}"
    );
    let etcd = st["etcd"].as_array().unwrap();
    assert_eq!(etcd.len(), 3, "{st}");
    assert!(etcd.iter().all(|m| m["healthy"] == true), "{st}");
    assert_eq!(
        st["vip"]["holders"],
        serde_json::json!(vip_holders(&s)),
        "{st}"
    );
    let backends = st["haproxy"].as_array().unwrap();
    assert_eq!(backends.len(), 9, "{st}");
    assert!(backends.iter().all(|b| b["status"] == "UP"), "{st}");
    assert_eq!(st["problems"], serde_json::json!([]), "{st}");
    let table = s.ok(
        &s.bundle(&["status", "--inventory", "cluster.yaml"]),
        "bundle status",
    );
    assert!(
        table.contains("VIP ") && table.contains("held by m1"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("w2 ") && l.contains("Ready")),
        "{table}"
    );
    s.on_host("m2", "systemctl stop haproxy");
    let o = s.bundle(&["status", "--inventory", "cluster.yaml", "--json"]);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    let st: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let problems = st["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{st}");
    assert_eq!(problems[0]["host"], "m2", "{st}");
    assert!(
        problems[0]["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl start haproxy"),
        "{st}"
    );
    s.on_host("m2", "systemctl start haproxy");
    wait_until("haproxy back on m2", Duration::from_secs(30), || {
        s.c.run_in_host("m2", "[ \"$(curl -fsS 'http://127.0.0.1:8404/stats;csv' | grep -c '^kube-apiserver,m[0-9],.*,UP,')\" -eq 3 ]")
            .status
            .success()
    });

    // kubeadm init got the rendered config and --upload-certs, once.
    let m1 = s.calls("m1");
    assert_eq!(
        count(
            &m1,
            "kubeadm init --config /etc/kubernetes/bundle/kubeadm-init.yaml --upload-certs"
        ),
        1,
        "{m1}"
    );
    let init_cfg =
        s.c.read_host_file(
            "m1",
            &format!("{}/init-kubeadm-init.yaml", kube_fakes::CONFIGS_DIR),
        )
        .unwrap();
    assert_eq!(
        init_cfg,
        s.c.read_host_file("m1", "/etc/kubernetes/bundle/kubeadm-init.yaml")
            .unwrap()
    );
    assert!(
        init_cfg.contains(&format!("controlPlaneEndpoint: {}:8443", s.c.vip()))
            || init_cfg.contains(&format!("controlPlaneEndpoint: \"{}:8443\"", s.c.vip())),
        "{init_cfg}"
    );
    // Joins got the certificate key and the CA hash (the fake checks both against the
    // cluster and fails otherwise).
    let shared = s.c.shared_dir();
    let cert_key = std::fs::read_to_string(shared.join("certificate-key")).unwrap();
    let hash_record = s
        .records("m1")
        .into_iter()
        .find(|r| r["step"] == "init/ca-cert-hash")
        .unwrap();
    let ca_hash = hash_record["capture"].as_str().unwrap().to_string();
    for h in ["m2", "m3", "w1", "w2"] {
        let calls = s.calls(h);
        assert_eq!(
            count(
                &calls,
                "kubeadm join --config /etc/kubernetes/bundle/kubeadm-join.yaml"
            ),
            1,
            "{h}: {calls}"
        );
        let cfg =
            s.c.read_host_file(
                h,
                &format!("{}/join-kubeadm-join.yaml", kube_fakes::CONFIGS_DIR),
            )
            .unwrap();
        assert!(cfg.contains(&ca_hash), "{h}: CA hash in {cfg}");
        if h.starts_with('m') {
            assert!(cfg.contains(cert_key.trim()), "{h}: certificate key");
        }
    }
    // Control-plane joins one at a time, each waiting for its etcd member: in the
    // cluster-wide calls log, m2's etcd checks (asked of m1's etcd) come between m2's
    // join and m3's, three member lists at least (it is listed unstarted twice), then a
    // health check of every member; m3's likewise before the workers join.
    let order = std::fs::read_to_string(shared.join("calls.log")).unwrap();
    let lines: Vec<&str> = order.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in the calls log:\n{order}"))
    };
    let join = "kubeadm join --config /etc/kubernetes/bundle/kubeadm-join.yaml";
    let exec =
        "kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system exec etcd-m1 -- etcdctl ";
    for (m, next) in [("m2", "m3"), ("m3", "w1")] {
        let (joined, next_joined) = (at(&format!("{m} {join}")), at(&format!("{next} {join}")));
        assert!(joined < next_joined, "{m} joined after {next}:\n{order}");
        let between: Vec<&str> = lines[joined..next_joined]
            .iter()
            .copied()
            .filter(|l| l.starts_with(&format!("{m} {exec}")))
            .collect();
        let lists = between
            .iter()
            .filter(|l| l.ends_with(" member list"))
            .count();
        assert!(
            lists >= 3,
            "{m}: the etcd member was not waited for:\n{order}"
        );
        assert!(
            between
                .last()
                .is_some_and(|l| l.ends_with(" endpoint health --cluster")),
            "{m}: {between:?}"
        );
        assert!(
            at(&format!("{m} {exec}")) > joined,
            "{m}: etcd asked before the join"
        );
    }
    let last_m3_check = lines
        .iter()
        .rposition(|l| l.starts_with(&format!("m3 {exec}")))
        .unwrap();
    assert!(at(&format!("w2 {join}")) > last_m3_check, "{order}");

    let nodes = std::fs::read_to_string(shared.join("nodes")).unwrap();
    assert_eq!(nodes.lines().count(), 5, "{nodes}");
    let etcd = std::fs::read_to_string(shared.join("etcd-members")).unwrap();
    assert_eq!(etcd.lines().count(), 3, "{etcd}");

    // The CNI manifest applied is the rewritten one: images from the registry.
    let applied =
        s.c.read_host_file("m1", &format!("{}/cni.yaml", kube_fakes::APPLIED_DIR))
            .unwrap();
    assert_eq!(
        applied,
        std::fs::read_to_string(plan_dir.join("m1/files/etc/kubernetes/bundle/cni.yaml")).unwrap()
    );
    let registry = format!("{}:{REGISTRY_PORT}", s.c.deploy_address());
    assert!(
        applied.contains(&format!("image: {registry}/calico/node:v3.26.4")),
        "{applied}"
    );
    for l in applied
        .lines()
        .filter(|l| l.trim_start().starts_with("image:"))
    {
        assert!(
            l.contains(&format!("image: {registry}/"))
                || l.contains(&format!("image: \"{registry}/"))
                || l.contains(&format!("image: '{registry}/")),
            "{l}"
        );
    }
    // The release installed is recorded in the state folder, on every host and in the
    // cluster: the bundle's index as GNU tar and sha256sum see it, the key as minisign
    // wrote it.
    let release: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.state().join("release.json")).unwrap()).unwrap();
    let index_sha = ok(
        &Command::new("sh")
            .arg("-c")
            .arg("tar -I zstd -xOf e2e.tar.zst bundle.json | sha256sum | cut -d' ' -f1")
            .current_dir(s.path(""))
            .output()
            .unwrap(),
        "tar | sha256sum",
    );
    assert_eq!(release["indexSha256"], index_sha.trim());
    let pubkey = std::fs::read_to_string(s.path("builder.pub")).unwrap();
    let key_id = release["keyId"].as_str().unwrap();
    assert!(
        pubkey.lines().next().unwrap().ends_with(key_id),
        "{key_id} is not the key of {pubkey}"
    );
    assert_eq!(release["kubernetesVersion"], "v1.29.2");
    let record = std::fs::read_to_string(s.state().join("release.json")).unwrap();
    for h in INVENTORY_HOSTS {
        assert_eq!(
            s.c.read_host_file(h, "/etc/bundle/release.json").unwrap(),
            record,
            "{h}"
        );
    }
    let configmap = std::fs::read_to_string(shared.join("applied/release-configmap.yaml")).unwrap();
    assert!(configmap.contains("name: bundle-release"), "{configmap}");
    assert!(
        configmap.contains(&format!("\"indexSha256\": \"{}\"", index_sha.trim())),
        "{configmap}"
    );
    // `bundle certs check` reads every master's certificates with openssl: a table, a
    // warning for one that expires within 30 days, an error naming an expired one.
    let o = s.bundle(&["certs", "check", "--inventory", "cluster.yaml"]);
    let table = s.ok(&o, "certs check");
    assert!(table.starts_with("HOST "), "{table}");
    for m in ["m1", "m2", "m3"] {
        let ca = table
            .lines()
            .find(|l| l.starts_with(&format!("{m} ")) && l.split_whitespace().nth(1) == Some("ca"))
            .unwrap_or_else(|| panic!("no CA row for {m}: {table}"));
        assert!(ca.ends_with("yes"), "{ca}");
    }
    assert!(!table.contains("w1 "), "a worker was read: {table}");
    s.on_host(
        "m2",
        "cd /etc/kubernetes/pki && for c in front-proxy-client:-1 apiserver-kubelet-client:10; do \
           n=${c%:*}; openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$n -keyout /tmp/$n.key -out /tmp/$n.csr 2>/dev/null; \
           openssl x509 -req -in /tmp/$n.csr -CA ca.crt -CAkey ca.key -days ${c#*:} -out $n.crt 2>/dev/null; done",
    );
    let o = s.bundle(&["certs", "check", "--inventory", "cluster.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    // Made for ten days a moment ago: nine whole days left, ten within the same second.
    assert!(
        err.contains("warning: `apiserver-kubelet-client` on `m2` expires in 9 days")
            || err.contains("warning: `apiserver-kubelet-client` on `m2` expires in 10 days"),
        "{err}"
    );
    assert!(
        err.contains("error: a certificate has expired: `front-proxy-client` on `m2` ("),
        "{err}"
    );
    assert!(
        err.contains("hint: renew them with `bundle certs renew"),
        "{err}"
    );
    // `bundle certs renew`: kubeadm renews them, one master after the other, and the
    // check is clean again.
    // The deploy node keeps the admin kubeconfig (0600), refreshed by the renewal.
    let kept = || std::fs::read_to_string(s.state().join("admin.conf")).unwrap();
    let admin_before = kept();
    assert_eq!(
        admin_before,
        s.c.read_host_file("m1", "/etc/kubernetes/admin.conf")
            .unwrap()
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.state().join("admin.conf"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let o = s.bundle(&["certs", "renew", "--inventory", "cluster.yaml", "--yes"]);
    s.ok(&o, "certs renew");
    let admin_after = kept();
    assert_ne!(
        admin_after, admin_before,
        "the admin kubeconfig was not refreshed"
    );
    assert_eq!(
        admin_after,
        s.c.read_host_file("m1", "/etc/kubernetes/admin.conf")
            .unwrap()
    );
    for m in ["m1", "m2", "m3"] {
        s.on_host(m, "cmp /etc/kubernetes/admin.conf ~ops/.kube/config");
    }
    let calls = std::fs::read_to_string(shared.join("calls.log")).unwrap();
    let renewals: Vec<&str> = calls
        .lines()
        .filter(|l| l.ends_with("kubeadm certs renew all"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(renewals, ["m1", "m2", "m3"], "{calls}");
    let o = s.bundle(&["certs", "check", "--inventory", "cluster.yaml"]);
    let table = s.ok(&o, "certs check after the renewal");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("warning:"), "{err}");
    let renewed = table
        .lines()
        .find(|l| l.starts_with("m2 ") && l.split_whitespace().nth(1) == Some("front-proxy-client"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        renewed.contains(" 364d") || renewed.contains(" 365d"),
        "{renewed}"
    );

    // containerd's sandbox image was pulled from that registry with its CA.
    let crictl_pulls = count(&s.calls("w1"), "crictl pull ");
    assert_eq!(crictl_pulls, 1);
    // The kernel and swap doubles were called, never the machine's tools.
    assert!(s
        .on_host("w1", "cat /var/log/bundle-testbed/modprobe.log")
        .contains("modprobe -a br_netfilter"));
    // No swap on the test hosts (they see the machine's): the check holds and the
    // swapoff double is never needed.
    let swap = s
        .records("w1")
        .into_iter()
        .find(|r| r["step"] == "os/swap")
        .unwrap();
    assert_eq!(swap["status"], "skipped", "{swap}");

    // A second full run changes nothing: every step is skipped or re-checked.
    let before: BTreeMap<&str, usize> = INVENTORY_HOSTS
        .iter()
        .map(|h| (*h, s.records(h).len()))
        .collect();
    let calls_before: Vec<String> = INVENTORY_HOSTS.iter().map(|h| s.calls(h)).collect();
    let o = s.install(&[]);
    s.ok(&o, "second bundle install");
    for h in INVENTORY_HOSTS {
        let recs = s.records(h);
        for r in &recs[before[h]..] {
            let step = r["step"].as_str().unwrap();
            let changed = r["status"] != "skipped"
                && !step.starts_with("verify/")
                && !step.starts_with("preflight/")
                && !step.ends_with("/ready")
                && !step.starts_with("containerd/registry");
            assert!(!changed, "{h}: the second run carried out {r}");
        }
    }
    for (h, before) in INVENTORY_HOSTS.iter().zip(calls_before) {
        let after = s.calls(h);
        let new = &after[before.len()..];
        for l in new.lines() {
            assert!(
                !l.starts_with("kubeadm init")
                    && !l.starts_with("kubeadm join")
                    && !l.starts_with("kubectl apply")
                    && !l.starts_with("crictl pull"),
                "{h}: the second run called `{l}`"
            );
        }
    }

    // The drill: keepalived stopped on the holder moves the VIP, the API answers.
    let o = s.install(&["--drill"]);
    let err = text(&o);
    s.ok(&o, "install --drill");
    assert!(err.contains("stopped keepalived on `m1`"), "{err}");
    assert!(
        err.contains("the VIP moved to `m2`") || err.contains("the VIP moved to `m3`"),
        "{err}"
    );
    assert!(err.contains("the API answers through"), "{err}");
    wait_until("the VIP settles", Duration::from_secs(60), || {
        vip_holders(&s).len() == 1
    });
    assert!(vip_answers(&s));

    // nodes add: the spare worker joins with a fresh token.
    s.write_inventory("cluster.yaml", 3, &s.c.known_hosts());
    let o = s.bundle(&[
        "nodes",
        "add",
        "e2e.tar.zst",
        "w3",
        "--inventory",
        "cluster.yaml",
        "--pubkey",
        "builder.pub",
        "--yes",
    ]);
    s.ok(&o, "nodes add");
    let w3 = s.calls("w3");
    assert_eq!(count(&w3, "kubeadm join"), 1, "{w3}");
    let tokens = std::fs::read_to_string(shared.join("tokens")).unwrap();
    assert_eq!(tokens.lines().count(), 2, "a fresh token: {tokens}");
    let fresh = tokens.lines().last().unwrap();
    let w3_cfg =
        s.c.read_host_file(
            "w3",
            &format!("{}/join-kubeadm-join.yaml", kube_fakes::CONFIGS_DIR),
        )
        .unwrap();
    assert!(w3_cfg.contains(fresh), "{w3_cfg}");
    assert!(!text(&o).contains(fresh), "the token was shown");
    let nodes = std::fs::read_to_string(shared.join("nodes")).unwrap();
    assert!(nodes.lines().any(|l| l.starts_with("w3 worker")), "{nodes}");

    // nodes remove: a master needs --force when fewer than three would stay, and
    // nothing is touched before that.
    let holder = vip_holders(&s).pop().expect("a VIP holder");
    let gone = if holder == "m3" { "m2" } else { "m3" };
    let stay: Vec<&str> = ["m1", "m2", "m3"]
        .into_iter()
        .filter(|m| *m != gone)
        .collect();
    let remove = |host: &str, extra: &[&str]| {
        let mut args = vec![
            "nodes",
            "remove",
            host,
            "--inventory",
            "cluster.yaml",
            "--yes",
        ];
        args.extend(extra);
        s.bundle(&args)
    };
    let o = remove(gone, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("error: removing `{gone}` leaves 2 masters")),
        "{err}"
    );
    assert!(err.contains("pass `--force`"), "{err}");
    let members = || std::fs::read_to_string(shared.join("etcd-members")).unwrap();
    assert_eq!(members().lines().count(), 3);
    // A worker: drained and deleted from the first master, then reset.
    let o = remove("w3", &[]);
    s.ok(&o, "nodes remove w3");
    let nodes = std::fs::read_to_string(shared.join("nodes")).unwrap();
    assert!(!nodes.lines().any(|l| l.starts_with("w3 ")), "{nodes}");
    assert!(s.calls("m1").contains("kubectl --kubeconfig /etc/kubernetes/admin.conf drain w3 --ignore-daemonsets --delete-emptydir-data"));
    assert!(s.calls("w3").contains("kubeadm reset"));
    // A master, with --force: its etcd member goes; the other masters' haproxy and
    // keepalived drop it and are reloaded: keepalived keeps its process and the VIP.
    let keepalived_pid = s.on_host(&holder, "cat /run/fake-systemd/keepalived.pid");
    let o = remove(gone, &["--force"]);
    s.ok(&o, "nodes remove --force");
    assert_eq!(members().lines().count(), 2, "{}", members());
    assert!(!members().contains(&format!("{gone} ")), "{}", members());
    let gone_address = s.c.host(gone).address.to_string();
    for m in &stay {
        for f in [
            "/etc/haproxy/haproxy.cfg",
            "/etc/keepalived/keepalived.conf",
        ] {
            let cfg = s.c.read_host_file(m, f).unwrap();
            assert!(
                !cfg.contains(&gone_address),
                "{m}: {f} still names {gone}:\n{cfg}"
            );
        }
    }
    assert_eq!(
        s.on_host(&holder, "cat /run/fake-systemd/keepalived.pid"),
        keepalived_pid,
        "keepalived was restarted, not reloaded"
    );
    assert_eq!(vip_holders(&s), vec![holder.clone()]);
    assert!(vip_answers(&s));

    // nodes add: the removed master joins again under a fresh certificate key; every
    // master's load balancer names it again and is reloaded, keeping the VIP. (w3 is
    // gone from the inventory too, as the operator who removed it would have it.)
    s.write_inventory("cluster.yaml", 2, &s.c.known_hosts());
    let key_before = std::fs::read_to_string(shared.join("certificate-key")).unwrap();
    let o = s.bundle(&[
        "nodes",
        "add",
        "e2e.tar.zst",
        gone,
        "--inventory",
        "cluster.yaml",
        "--pubkey",
        "builder.pub",
        "--yes",
    ]);
    s.ok(&o, "nodes add a master");
    let key = std::fs::read_to_string(shared.join("certificate-key")).unwrap();
    let key = key.trim();
    assert_ne!(
        key,
        key_before.trim(),
        "the install's certificate key was reused"
    );
    let cfg =
        s.c.read_host_file(
            gone,
            &format!("{}/join-kubeadm-join.yaml", kube_fakes::CONFIGS_DIR),
        )
        .unwrap();
    assert!(cfg.contains(key) && cfg.contains("controlPlane:"), "{cfg}");
    assert!(!text(&o).contains(key), "the certificate key was shown");
    assert_eq!(members().lines().count(), 3, "{}", members());
    assert!(members().contains(&format!("{gone} ")), "{}", members());
    for m in ["m1", "m2", "m3"] {
        for f in [
            "/etc/haproxy/haproxy.cfg",
            "/etc/keepalived/keepalived.conf",
        ] {
            let cfg = s.c.read_host_file(m, f).unwrap();
            assert!(
                cfg.contains(&gone_address),
                "{m}: {f} does not name {gone}:\n{cfg}"
            );
        }
    }
    s.on_host(
        gone,
        "systemctl is-active --quiet haproxy && systemctl is-active --quiet keepalived",
    );
    assert_eq!(
        s.on_host(&holder, "cat /run/fake-systemd/keepalived.pid"),
        keepalived_pid,
        "keepalived was restarted, not reloaded"
    );
    assert_eq!(vip_holders(&s), vec![holder.clone()]);
    assert!(vip_answers(&s));

    // reset leaves the hosts clean.
    let o = s.bundle(&["reset", "--inventory", "cluster.yaml", "--yes"]);
    s.ok(&o, "reset");
    for h in ["m1", "m2", "m3", "w1", "w2", "w3"] {
        // Every file the plan wrote there (the state folder holds the plan's files of
        // every host, w3's since `nodes add`), and what kubeadm made.
        let root = s.state().join(h).join("files");
        let mut files: Vec<String> = walk(&root)
            .iter()
            .map(|f| format!("/{}", f.strip_prefix(&root).unwrap().display()))
            .collect();
        assert!(files.len() >= 5, "{h}: {files:?}");
        files.extend([
            "/etc/kubernetes/admin.conf".to_string(),
            "/etc/kubernetes/kubelet.conf".to_string(),
        ]);
        for f in &files {
            let o = s.c.run_in_host(h, &format!("test -e {f}"));
            assert!(!o.status.success(), "{h}: {f} is still there after reset");
        }
        // Every unit the plan started is stopped (the packages stay).
        for unit in ["haproxy", "keepalived", "kubelet", "containerd"] {
            let o =
                s.c.run_in_host(h, &format!("systemctl is-active --quiet {unit}"));
            assert!(!o.status.success(), "{h}: {unit} still runs after reset");
        }
        // containerd really ended: no pid file of the systemctl double, no process.
        let o = s.c.run_in_host(
            h,
            "test ! -e /run/fake-systemd/containerd.pid && ! pgrep -x containerd",
        );
        assert!(
            o.status.success(),
            "{h}: containerd still runs: {}",
            text(&o)
        );
        assert!(s.calls(h).contains("kubeadm reset"), "{h}");
    }
    assert!(vip_holders(&s).is_empty(), "the VIP is still held");
    assert!(!vip_answers(&s));
}

/// The `hint: … resume with: COMMAND` line of a failure.
fn resume_command(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: fix the cause on the host, then resume with: "))
        .unwrap_or_else(|| panic!("no resume command in:\n{stderr}"))
        .to_string()
}

#[test]
fn install_errors_name_the_host_and_say_how_to_go_on() {
    let s = Site::start(2);

    // An unknown host key: m2 is missing from the known_hosts file.
    let kh = std::fs::read_to_string(s.c.known_hosts()).unwrap();
    let m2 = s.c.host("m2").address.to_string();
    let partial: String = kh
        .lines()
        .filter(|l| {
            !l.split_whitespace()
                .next()
                .unwrap_or("")
                .split(',')
                .any(|n| n == m2 || n == "m2")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(partial, kh);
    std::fs::write(s.path("partial_known_hosts"), partial).unwrap();
    s.write_inventory("cluster.yaml", 2, &s.path("partial_known_hosts"));
    let o = s.install(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "error: host `m2` (root@{m2}:22) offered a host key that is not in `{}`",
            s.path("partial_known_hosts").display()
        )),
        "{err}"
    );
    let fingerprint = ok(
        &Command::new("ssh-keygen")
            .arg("-lf")
            .arg(s.c.host_path("m2", "/etc/ssh/bundle-testbed/ssh_host_ed25519_key.pub"))
            .output()
            .unwrap(),
        "ssh-keygen -lf",
    );
    let sha = fingerprint.split_whitespace().nth(1).unwrap();
    assert!(err.contains(sha), "the fingerprint {sha}: {err}");
    assert!(
        err.contains(&format!(
            "accept it with `ssh-keyscan -p 22 {m2} >> {}`",
            s.path("partial_known_hosts").display()
        )),
        "{err}"
    );
    assert!(s.records("m1").is_empty(), "a step ran");

    // A wrong sudo password: m1 is reached as a user whose sudo asks for one.
    s.on_host(
        "m1",
        "useradd -m deployer && echo 'deployer:right-password' | chpasswd && \
         echo 'deployer ALL=(ALL) ALL' > /etc/sudoers.d/deployer && chmod 0440 /etc/sudoers.d/deployer",
    );
    let m1 = s.c.host("m1").address;
    let inv = s.inventory_text(2, &s.c.known_hosts(), "").replace(
        &format!("{{name: m1, address: {m1}, roles: [master]}}"),
        &format!(
            "{{name: m1, address: {m1}, roles: [master], ssh: {{user: deployer, become: sudo}}}}"
        ),
    );
    std::fs::write(s.path("cluster.yaml"), &inv).unwrap();
    let o = s
        .command(&s.install_args(&[]))
        .env("BUNDLE_BECOME_PASSWORD", "wrong-password")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: sudo on `m1` refused the password of `deployer`"),
        "{err}"
    );
    assert!(
        err.contains("hint: run again and give the right sudo password"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password"),
        "the password was shown: {err}"
    );
    assert!(s.records("m1").is_empty(), "a step ran");

    // Nodes are to pull with an account whose password was not given: stopped before
    // anything reaches a host or the registry.
    let inv = s.inventory_text(2, &s.c.known_hosts(), "").replace(
        "caFile: registry-ca.crt}",
        "caFile: registry-ca.crt, pullUsername: robot$k8s}",
    );
    std::fs::write(s.path("cluster.yaml"), &inv).unwrap();
    let o = s.install(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: the inventory has the nodes pull as `robot$k8s`, but BUNDLE_REGISTRY_PULL_PASSWORD is not set"),
        "{err}"
    );
    assert!(
        err.contains("hint: export BUNDLE_REGISTRY_PULL_PASSWORD with the password (robot secret) of `robot$k8s`"),
        "{err}"
    );
    assert!(s.records("m1").is_empty(), "a step ran");

    // The arm64 worker listed without its `arch`: preflight finds it is not the
    // x86_64 machine the inventory says, before any package is installed.
    let inv = s
        .inventory_text(2, &s.c.known_hosts(), "")
        .replace(", arch: aarch64}", "}");
    std::fs::write(s.path("cluster.yaml"), &inv).unwrap();
    let o = s.install(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: preflight found 1 problem; nothing was changed:"),
        "{err}"
    );
    assert!(
        err.contains("this host is aarch64, but cluster.yaml says x86_64: correct this host's arch in cluster.yaml"),
        "{err}"
    );
    assert!(err.contains("w2"), "{err}");
    assert!(
        !s.records(ARM64_HOST).iter().any(|r| r["phase"] == "repo"),
        "a package step ran"
    );

    // An unreachable host: w2 is down.
    s.write_inventory("cluster.yaml", 2, &s.c.known_hosts());
    let mut c = s.c;
    c.stop_host("w2").unwrap();
    let s = Site { c, ..s };
    let o = s.install(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let w2 = s.c.host("w2").address;
    assert!(
        err.contains(&format!(
            "error: cannot reach `w2` (root@{w2}:22) over ssh: "
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: check the host's address and `spec.ssh.port` (or `proxyJump`), and that sshd runs there; then run the same command again"),
        "{err}"
    );
    let mut c = s.c;
    c.start_host("w2").unwrap();
    let s = Site { c, ..s };

    // A failing step: /etc/containerd is a file on w1, so containerd's config cannot be
    // written. The failure names host, step, command, exit code and output, and the
    // command it prints resumes once the cause is fixed.
    s.on_host(
        "w1",
        "rm -rf /etc/containerd && echo 'not a folder' > /etc/containerd",
    );
    let o = s.install(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains("error: step `containerd/config` failed on `w1` (phase containerd): `write /etc/containerd/config.toml (0644 root:root)` exited with 1; last lines of its output:\n"),
        "{err}"
    );
    assert!(
        err.contains("    | mkdir: cannot create directory '/etc/containerd': File exists"),
        "{err}"
    );
    assert!(
        err.contains("full log: bundle-state/e2e/_state/logs/w1.log"),
        "{err}"
    );
    let resume = resume_command(&err);
    assert_eq!(
        resume,
        "bundle install e2e.tar.zst --inventory cluster.yaml --pubkey builder.pub --skip-push --from containerd"
    );
    let before: BTreeMap<&str, usize> = INVENTORY_HOSTS
        .iter()
        .map(|h| (*h, s.records(h).len()))
        .collect();
    s.on_host("w1", "rm -f /etc/containerd");
    let args: Vec<&str> = resume.split_whitespace().skip(1).collect();
    let o = s.bundle(&args);
    s.ok(&o, "the resume command");
    for h in INVENTORY_HOSTS {
        let recs = s.records(h);
        let phases: std::collections::BTreeSet<&str> = recs[before[h]..]
            .iter()
            .map(|r| r["phase"].as_str().unwrap())
            .collect();
        assert!(
            !phases.contains("preflight") && !phases.contains("repo") && !phases.contains("os"),
            "{h}: the resume ran {phases:?}"
        );
        assert!(phases.contains("verify"), "{h}: {phases:?}");
    }
    assert!(vip_answers(&s));
}

/// The lines of the cluster's call log (every host's kubeadm, kubectl, kubelet
/// restarts and etcd snapshots, in one order).
fn cluster_calls(s: &Site) -> Vec<String> {
    std::fs::read_to_string(s.c.shared_dir().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// How many lines of `haystack` contain `needle`.
fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.lines().filter(|l| l.contains(needle)).count()
}

/// Index of the first line containing every one of `needles`.
fn line_of(lines: &[String], needles: &[&str]) -> Option<usize> {
    lines
        .iter()
        .position(|l| needles.iter().all(|n| l.contains(n)))
}

fn upgrade_args<'a>(bundle: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "upgrade",
        bundle,
        "--inventory",
        "cluster.yaml",
        "--pubkey",
        "builder.pub",
        "--yes",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn upgrade_carries_the_cluster_to_the_next_minor_node_by_node_and_goes_on_after_a_kill() {
    let _turn = one_cluster_at_a_time();
    let s = Site::start(3);
    s.ok(&s.install(&[]), "bundle install");
    bundle_testbed::real::etcd::start(&s.c, &["m1", "m2", "m3"]).expect("a real etcd");
    build_bundle(s.work.path(), &NEXT);
    let nodes = ["m1", "m2", "m3", "w1", "w2", "w3"];

    // Refused before anything is touched: a skipped minor, another signing key.
    build_bundle(s.work.path(), &SKIPPING);
    build_bundle(s.work.path(), &FOREIGN);
    let untouched = |what: &str, before: usize| {
        assert_eq!(
            cluster_calls(&s).len(),
            before,
            "{what} touched the cluster"
        );
        assert!(
            !s.state().join("_state/repo.upgrade").exists(),
            "{what} left its repository"
        );
        assert!(
            !s.state().join("upgrade.json").exists(),
            "{what} started an upgrade"
        );
    };
    let calls_before = cluster_calls(&s).len();
    let o = s.bundle(&upgrade_args("skipping.tar.zst", &[]));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("upgrade refused: Kubernetes v1.29.2 cannot be upgraded to v1.31.0 in one step"),
        "{t}"
    );
    assert!(
        t.contains("upgrade to v1.30 first with a v1.30 bundle"),
        "{t}"
    );
    untouched("a skipped minor", calls_before);
    let mut foreign = upgrade_args("foreign.tar.zst", &[]);
    foreign[5] = "other.pub";
    let o = s.bundle(&foreign);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("upgrade refused: the bundle is signed by key"),
        "{t}"
    );
    assert!(t.contains("pass `--new-key"), "{t}");
    untouched("another key", calls_before);

    // The same bundle again is refused, touching nothing.
    let calls_before = cluster_calls(&s).len();
    let release_before = std::fs::read_to_string(s.state().join("release.json")).unwrap();
    let o = s.bundle(&upgrade_args("e2e.tar.zst", &[]));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("upgrade refused: the cluster already runs this bundle (`e2e 1.29.2-1`)"),
        "{}",
        text(&o)
    );

    // The dry run: the plan's phases and waves, nothing on the hosts.
    let o = s.bundle(&upgrade_args(
        "next.tar.zst",
        &["--dry-run", "--plan-out", "upgrade-plan"],
    ));
    ok(&o, "upgrade --dry-run");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("upgrade-plan/plan.json")).unwrap())
            .unwrap();
    let phases: Vec<&str> = plan["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["preflight", "repo", "upgrade", "nodes", "cni", "verify"]
    );
    assert_eq!(
        cluster_calls(&s).len(),
        calls_before,
        "the dry run touched the cluster"
    );
    assert_eq!(
        std::fs::read_to_string(s.state().join("release.json")).unwrap(),
        release_before
    );

    // Killed once the first worker was drained: the masters are done by then.
    let log = s.path("upgrade-killed.log");
    let mut child = s
        .command(&upgrade_args("next.tar.zst", &[]))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("bundle upgrade");
    wait_until("the first worker drained", Duration::from_secs(600), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "bundle upgrade ended ({status}) before it was killed:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        line_of(&cluster_calls(&s), &["kubectl", "drain w1"]).is_some()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let under_way: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.state().join("upgrade.json")).unwrap())
            .unwrap();
    assert_eq!(under_way["to"]["version"], "1.30.1-1");
    assert!(under_way["backup"].is_string(), "{under_way}");

    // No other bundle while this upgrade is unfinished.
    let o = s.bundle(&upgrade_args("e2e.tar.zst", &[]));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("an upgrade to `e2e 1.30.1-1` started and did not finish; `e2e 1.29.2-1` cannot follow before it does"),
        "{t}"
    );

    // A failure in a node's drained window: the error says which node is left cordoned
    // and how to go on.
    // (dnf on w2 excludes kubeadm: the new package cannot be installed there)
    s.on_host(
        "w2",
        "cp /etc/dnf/dnf.conf /root/dnf.conf.orig && echo excludepkgs=kubeadm >> /etc/dnf/dnf.conf",
    );
    let o = s.bundle(&upgrade_args("next.tar.zst", &[]));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("`w2` is cordoned: it was drained for the upgrade"),
        "{t}"
    );
    assert!(
        t.contains("bundle upgrade next.tar.zst --inventory cluster.yaml --pubkey builder.pub --yes --skip-push --from nodes"),
        "{t}"
    );
    s.on_host("w2", "cp /root/dnf.conf.orig /etc/dnf/dnf.conf");

    // The same bundle goes on.
    let o = s.bundle(&upgrade_args("next.tar.zst", &[]));
    let out = s.ok(&o, "bundle upgrade after the kill");
    assert!(!s.state().join("upgrade.json").exists(), "{out}");

    let calls = cluster_calls(&s);
    let all = calls.join("\n");
    // Once each: the snapshot, the apply, every master's drain (they finished before
    // the kill); the snapshot came before the apply.
    let snapshot = line_of(&calls, &["m1 crictl exec", "snapshot save"]).expect("an etcd snapshot");
    let apply = line_of(&calls, &["m1 kubeadm upgrade apply"]).expect("upgrade apply on m1");
    assert!(
        snapshot < apply,
        "the snapshot came after upgrade apply:\n{all}"
    );
    assert_eq!(occurrences(&all, "kubeadm upgrade apply"), 1, "{all}");
    assert_eq!(occurrences(&all, "snapshot save"), 1, "{all}");
    for m in ["m1", "m2", "m3"] {
        assert_eq!(
            occurrences(&all, &format!(" drain {m} --")),
            1,
            "{m} drained again:\n{all}"
        );
    }
    // Masters one at a time: m2's and m3's `upgrade node` after the apply, in order.
    let node_m2 = line_of(&calls, &["m2 kubeadm upgrade node"]).unwrap();
    let node_m3 = line_of(&calls, &["m3 kubeadm upgrade node"]).unwrap();
    assert!(apply < node_m2 && node_m2 < node_m3, "{all}");
    // Every node drained before its kubelet changed, uncordoned after, one at a time;
    // workers only after every master.
    let mut last_uncordon = 0;
    let mut masters_done = 0;
    for n in nodes {
        let drain = line_of(&calls, &[&format!(" drain {n} --")]).unwrap();
        let restart = line_of(
            &calls,
            &[&format!("{n} systemctl restart kubelet (v1.30.1)")],
        )
        .unwrap_or_else(|| panic!("{n}'s kubelet was not restarted on 1.30.1:\n{all}"));
        let uncordon = line_of(&calls, &[&format!(" uncordon {n}")]).unwrap();
        assert!(
            last_uncordon < drain && drain < restart && restart < uncordon,
            "{n}:\n{all}"
        );
        if n.starts_with('m') {
            masters_done = uncordon;
        } else {
            assert!(
                drain > masters_done,
                "{n} drained before the masters were done"
            );
        }
        last_uncordon = uncordon;
    }
    // dnf installed the new versions from the served repository.
    for n in nodes {
        let q = s.on_host(n, "rpm -q kubeadm kubelet kubectl containerd.io");
        let arch = if n == ARM64_HOST { "aarch64" } else { "x86_64" };
        for want in [
            "kubeadm-1.30.1",
            "kubelet-1.30.1",
            "kubectl-1.30.1",
            "containerd.io-1.6.31",
        ] {
            assert!(q.contains(want), "{n}: {q}");
        }
        assert_eq!(q.matches(&format!(".{arch}\n")).count(), 4, "{n}: {q}");
        let record = s.on_host(n, "cat /etc/bundle/release.json");
        assert!(
            record.contains("\"version\": \"1.30.1-1\""),
            "{n}: {record}"
        );
    }
    let nodes_now = s.on_host("m1", "kubectl get nodes --no-headers");
    assert_eq!(occurrences(&nodes_now, "v1.30.1"), 6, "{nodes_now}");
    assert!(!nodes_now.contains("SchedulingDisabled"), "{nodes_now}");
    // The cluster's record, the state's, the new CNI manifest applied (twice in all).
    let configmap = std::fs::read_to_string(
        s.c.shared_dir()
            .join("applied")
            .join("release-configmap.yaml"),
    )
    .unwrap();
    assert!(configmap.contains("1.30.1-1"), "{configmap}");
    let release = std::fs::read_to_string(s.state().join("release.json")).unwrap();
    assert!(
        release.contains("\"kubernetesVersion\": \"v1.30.1\""),
        "{release}"
    );
    assert_eq!(
        occurrences(
            &all,
            "apply --server-side --force-conflicts -f /etc/kubernetes/bundle/cni.yaml"
        ),
        2,
        "{all}"
    );
    assert!(vip_answers(&s), "the VIP does not answer after the upgrade");

    // The old bundle, replayed: the rollback is refused and nothing is touched.
    let calls_before = cluster_calls(&s).len();
    let o = s.bundle(&upgrade_args("e2e.tar.zst", &[]));
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("upgrade refused: `e2e 1.29.2-1 (Kubernetes v1.29.2)` is not newer than the installed `e2e 1.30.1-1 (Kubernetes v1.30.1)`"),
        "{t}"
    );
    assert!(t.contains("restore an etcd backup instead"), "{t}");
    assert_eq!(cluster_calls(&s).len(), calls_before);
    assert_eq!(
        std::fs::read_to_string(s.state().join("release.json")).unwrap(),
        release
    );
}

/// External etcd: three hosts with the role `etcd` (`w2`–`w4`) run the members as
/// static pods, real etcd 3.4 under the testbed's stand-in for the kubelet's static
/// pod handling; the masters' API servers are pointed at them.
#[test]
fn install_with_external_etcd_runs_the_members_on_their_own_hosts_with_the_deploy_nodes_pki() {
    let _turn = one_cluster_at_a_time();
    let s = Site::start_with_hosts(4, 1);
    let etcd_hosts = ["w2", "w3", "w4"];
    let members: String = etcd_hosts
        .iter()
        .map(|h| {
            format!(
                "    - {{name: {h}, address: {}, roles: [etcd]}}\n",
                s.c.host(h).address
            )
        })
        .collect();
    let inv = s
        .inventory_text(1, &s.c.known_hosts(), "")
        .replace("  ssh: {", &format!("{members}  ssh: {{"))
        .replace(
            "  admin:",
            "  etcd: {external: {hosts: [w2, w3, w4]}}\n  admin:",
        )
        // And keepalived without preemption (checked at the end).
        .replace("interface: eth0}", "interface: eth0, preempt: false}");
    std::fs::write(s.path("cluster.yaml"), &inv).unwrap();
    for h in etcd_hosts {
        bundle_testbed::real::etcd::start_runner(&s.c, h).expect("the static pod runner");
    }

    let o = s.install(&[]);
    let out = s.ok(&o, "bundle install with external etcd");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Installed cluster `e2e`"), "{out}{err}");

    // Three real members, one per etcd host, healthy, each named after its host and
    // presenting the certificate the deploy node made for it.
    let list = s.on_host(
        "w2",
        &format!("{} member list", bundle_testbed::real::etcd::ETCDCTL),
    );
    for h in etcd_hosts {
        let ip = s.c.host(h).address;
        assert!(
            list.contains(&format!(
                ", started, {h}, https://{ip}:2380, https://{ip}:2379"
            )),
            "{list}"
        );
        let subject = s.on_host(h, "openssl x509 -noout -subject -ext subjectAltName -in /etc/kubernetes/pki/etcd/server.crt");
        assert!(
            subject.contains(&format!("CN = {h}")) && subject.contains(&format!("IP Address:{ip}")),
            "{h}: {subject}"
        );
        s.on_host(h, "openssl verify -CAfile /etc/kubernetes/pki/etcd/ca.crt /etc/kubernetes/pki/etcd/server.crt /etc/kubernetes/pki/etcd/peer.crt");
        let mode = s.on_host(h, "stat -c %a /etc/kubernetes/pki/etcd/server.key");
        assert_eq!(mode.trim(), "600", "{h}");
    }
    // The CA's key stays on the deploy node.
    for h in ["m1", "w2"] {
        let o =
            s.c.run_in_host(h, "test -e /etc/kubernetes/pki/etcd/ca.key");
        assert!(!o.status.success(), "the etcd CA key is on {h}");
    }
    let secrets = std::fs::read_to_string(s.state().join("secrets.json")).unwrap();
    assert!(secrets.contains("etcd-pki/ca.key"));

    // The masters reach etcd with the API server's client certificate; a certificate
    // from another CA is refused by the real etcd.
    let w2 = s.c.host("w2").address;
    let health = s.on_host("m2", &format!("curl -sf --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/apiserver-etcd-client.crt --key /etc/kubernetes/pki/apiserver-etcd-client.key https://{w2}:2379/health"));
    assert!(health.contains("\"health\":\"true\""), "{health}");
    let stranger = s.c.run_in_host("m2", &format!("cd /tmp && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=stranger -keyout s.key -out s.crt 2>/dev/null && curl -sf --cacert /etc/kubernetes/pki/etcd/ca.crt --cert s.crt --key s.key https://{w2}:2379/health"));
    assert!(
        !stranger.status.success(),
        "etcd answered a stranger's certificate"
    );

    // kubeadm got etcd.external; the masters have no etcd of their own.
    let init =
        s.c.read_host_file("m1", "/etc/kubernetes/bundle/kubeadm-init.yaml")
            .unwrap();
    assert!(
        init.contains(&format!(
            "etcd:\n  external:\n    endpoints:\n      - \"https://{w2}:2379\""
        )),
        "{init}"
    );
    for m in ["m1", "m2", "m3"] {
        let o = s.c.run_in_host(m, "pgrep -x etcd");
        assert!(!o.status.success(), "an etcd runs on {m}");
    }
    // The etcd hosts are no nodes: nothing joined from them.
    for h in etcd_hosts {
        assert!(!s.calls(h).contains("kubeadm join"), "{h} joined");
    }

    // `bundle status` asks the members on the etcd hosts.
    let o = s.bundle(&["status", "--inventory", "cluster.yaml", "--json"]);
    let out = s.ok(&o, "bundle status --json");
    let st: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let names: Vec<&str> = st["etcd"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["healthy"] == true && m["status"] == "started")
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{st}");
    assert!(etcd_hosts.iter().all(|h| names.contains(h)), "{st}");
    assert_eq!(st["problems"], serde_json::json!([]), "{st}");

    // `bundle backup`: the snapshot from an etcd host, the kubeadm PKI from a master.
    let o = s.bundle(&["backup", "--inventory", "cluster.yaml", "--output", "bk"]);
    s.ok(&o, "bundle backup");
    let dir = std::fs::read_dir(s.path("bk"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("backup.json")).unwrap()).unwrap();
    assert_eq!(manifest["host"], "w2", "{manifest}");
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(dir.join("kubernetes-pki.tar.gz"))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("pki/apiserver-etcd-client.key"),
        "{listing}"
    );
    let check = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(dir.join("etcd-snapshot.db"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));

    // What this release does not do with external etcd is refused, saying how to do
    // it by hand, before any host is touched.
    let o = s.bundle(&[
        "restore",
        dir.to_str().unwrap(),
        "--inventory",
        "cluster.yaml",
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "error: `bundle restore` does not handle external etcd (`spec.etcd.external`) yet"
        ),
        "{err}"
    );
    assert!(err.contains("hint: restore the snapshot ("), "{err}");
    let o = s.bundle(&[
        "nodes",
        "remove",
        "w3",
        "--inventory",
        "cluster.yaml",
        "--yes",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "error: `bundle nodes remove` of the etcd host `w3` does not handle external etcd"
        ),
        "{}",
        text(&o)
    );
    let list_after = s.on_host(
        "w2",
        &format!("{} member list", bundle_testbed::real::etcd::ETCDCTL),
    );
    assert_eq!(list, list_after);

    // Without preemption the VIP stays where it went, even on the master with the
    // lowest priority (real keepalived): m1 and m2 stopped send it to m3; started
    // again, neither takes it back, which m1 (priority 200) would with preemption.
    assert_eq!(vip_holders(&s).len(), 1);
    for m in ["m1", "m2"] {
        s.on_host(m, "systemctl stop keepalived");
    }
    wait_until("the VIP on m3", Duration::from_secs(30), || {
        vip_holders(&s) == ["m3"]
    });
    for m in ["m1", "m2"] {
        s.on_host(m, "systemctl start keepalived");
    }
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        vip_holders(&s),
        ["m3"],
        "a returning master took the VIP back"
    );
    assert!(vip_answers(&s));

    // A second run changes nothing: the PKI is kept, every file is as it was.
    let key_before =
        s.c.read_host_file("w3", "/etc/kubernetes/pki/etcd/peer.key")
            .unwrap();
    let o = s.install(&[]);
    s.ok(&o, "the second install");
    assert_eq!(
        key_before,
        s.c.read_host_file("w3", "/etc/kubernetes/pki/etcd/peer.key")
            .unwrap()
    );
    let again: Vec<(String, String)> = statuses(&s.records("w3"))
        .into_iter()
        .filter(|(_, step)| step.starts_with("etcd/"))
        .collect();
    assert!(
        again.iter().rev().take(5).all(|(st, _)| st == "skipped"),
        "{again:?}"
    );

    external_etcd_certificates_are_checked_and_renewed(&s, &etcd_hosts);
}

/// `bundle certs check` and `bundle certs renew` with external etcd, on the installed
/// site: the members' certificates listed, renewed from the kept CA member by member
/// (real etcd restarted on them), the API servers' client certificate too; refused
/// without the CA's key.
fn external_etcd_certificates_are_checked_and_renewed(s: &Site, etcd_hosts: &[&str]) {
    let started = std::time::Instant::now();
    let o = s.bundle(&["certs", "check", "--inventory", "cluster.yaml"]);
    let table = s.ok(&o, "certs check with external etcd");
    let row = |host: &str, name: &str| {
        table
            .lines()
            .find(|l| {
                l.starts_with(&format!("{host} ")) && l.split_whitespace().nth(1) == Some(name)
            })
            .unwrap_or_else(|| panic!("no {name} row for {host}: {table}"))
            .to_string()
    };
    for h in etcd_hosts {
        for leaf in ["etcd-server", "etcd-peer", "etcd-healthcheck-client"] {
            let r = row(h, leaf);
            assert!(
                !r.ends_with("yes") && (r.contains(" 364d") || r.contains(" 365d")),
                "{r}"
            );
        }
        assert!(row(h, "etcd-ca").ends_with("yes"), "{table}");
    }
    for m in ["m1", "m2", "m3"] {
        assert!(!row(m, "apiserver-etcd-client").ends_with("yes"), "{table}");
        assert!(row(m, "etcd-ca").ends_with("yes"), "{table}");
    }

    // The plan first: secrets as placeholders, one member per wave, then the masters.
    let o = s.bundle(&[
        "certs",
        "renew",
        "--inventory",
        "cluster.yaml",
        "--dry-run",
        "--plan-out",
        "renew-plan",
    ]);
    s.ok(&o, "certs renew --dry-run");
    let plan = std::fs::read_to_string(s.path("renew-plan/plan.txt")).unwrap();
    assert!(
        plan.contains("  w2 (wave 1)\n    [renew/etcd-server-crt]"),
        "{plan}"
    );
    assert!(
        plan.contains("  w4 (wave 3)\n") && plan.contains("  m1 (wave 4)\n"),
        "{plan}"
    );
    assert!(!plan.contains("BEGIN"), "{plan}");

    // Without the CA's key: refused before any host is touched, saying what to do.
    let secrets_path = s.state().join("secrets.json");
    let kept = std::fs::read(&secrets_path).unwrap();
    let mut without: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&kept).unwrap();
    without
        .remove("etcd-pki/ca.key")
        .expect("the CA key was kept");
    let without = serde_json::to_vec_pretty(&without).unwrap();
    std::fs::write(&secrets_path, &without).unwrap();
    let hosts: Vec<&str> = etcd_hosts
        .iter()
        .copied()
        .chain(["m1", "m2", "m3"])
        .collect();
    let before = pki_on_hosts(s, &hosts);
    let o = s.bundle(&["certs", "renew", "--inventory", "cluster.yaml", "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: `bundle-state/e2e/secrets.json` has no `etcd-pki/ca.key`: the external etcd's CA"),
        "{err}"
    );
    assert!(err.contains("hint: restore `"), "{err}");
    assert_eq!(std::fs::read(&secrets_path).unwrap(), without);
    assert_eq!(pki_on_hosts(s, &hosts), before, "a host was touched");
    std::fs::write(&secrets_path, &kept).unwrap();

    // Renewed twice: each time every member serves a new certificate from the same
    // CA after a restart, the cluster keeps its three members, and the API servers'
    // client certificate (new too) still reaches every member.
    let mut serials = served_serials(s, etcd_hosts);
    let ca =
        s.c.read_host_file("w2", "/etc/kubernetes/pki/etcd/ca.crt")
            .unwrap();
    for round in ["the first renewal", "the second renewal"] {
        let pids: Vec<String> = etcd_hosts
            .iter()
            .map(|h| s.on_host(h, "pgrep -x etcd"))
            .collect();
        let client = s.on_host(
            "m1",
            "openssl x509 -noout -serial -in /etc/kubernetes/pki/apiserver-etcd-client.crt",
        );
        let o = s.bundle(&["certs", "renew", "--inventory", "cluster.yaml", "--yes"]);
        s.ok(&o, round);
        let now = served_serials(s, etcd_hosts);
        for (i, h) in etcd_hosts.iter().enumerate() {
            assert_ne!(
                now[i], serials[i],
                "{round}: {h} serves its old certificate"
            );
            let file = s.on_host(
                h,
                "openssl x509 -noout -serial -startdate -in /etc/kubernetes/pki/etcd/server.crt",
            );
            assert_eq!(now[i], file, "{round}: {h}");
            assert_ne!(
                s.on_host(h, "pgrep -x etcd"),
                pids[i],
                "{round}: {h} was not restarted"
            );
            s.on_host(h, "openssl verify -CAfile /etc/kubernetes/pki/etcd/ca.crt /etc/kubernetes/pki/etcd/server.crt /etc/kubernetes/pki/etcd/peer.crt /etc/kubernetes/pki/etcd/healthcheck-client.crt");
        }
        serials = now;
        assert_eq!(
            ca,
            s.c.read_host_file("w3", "/etc/kubernetes/pki/etcd/ca.crt")
                .unwrap()
        );
        let list = s.on_host(
            "w3",
            &format!("{} member list", bundle_testbed::real::etcd::ETCDCTL),
        );
        assert_eq!(list.matches(", started, ").count(), 3, "{round}: {list}");
        assert_ne!(
            client,
            s.on_host(
                "m1",
                "openssl x509 -noout -serial -in /etc/kubernetes/pki/apiserver-etcd-client.crt"
            ),
            "{round}: the API server's etcd client certificate was not renewed"
        );
        for h in etcd_hosts {
            let ip = s.c.host(h).address;
            let health = s.on_host("m1", &format!("curl -sf --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/apiserver-etcd-client.crt --key /etc/kubernetes/pki/apiserver-etcd-client.key https://{ip}:2379/health"));
            assert!(
                health.contains("\"health\":\"true\""),
                "{round}: {h}: {health}"
            );
        }
    }
    // The certificates and keys went to the hosts, never into a log or plan.
    let logs_and_plans = walk(&s.state()).into_iter().filter(|f| {
        let name = f.to_string_lossy();
        name.contains("/_state/logs/")
            || name.ends_with("/plan.json")
            || name.ends_with("/plan.txt")
    });
    let mut read = 0;
    for f in logs_and_plans {
        read += 1;
        let name = f.to_string_lossy();
        let t = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&t).contains("PRIVATE KEY-----"),
            "a key in {name}"
        );
    }
    assert!(read > hosts.len(), "no logs or plans under {:?}", s.state());
    let mode = std::fs::metadata(&secrets_path).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    eprintln!("external etcd certificates: {:?}", started.elapsed());
}

/// The serial and start of the certificate each member presents on its client port.
fn served_serials(s: &Site, etcd_hosts: &[&str]) -> Vec<String> {
    etcd_hosts
        .iter()
        .map(|h| {
            let ip = s.c.host(h).address;
            s.on_host(h, &format!("cd /etc/kubernetes/pki/etcd && openssl s_client -connect {ip}:2379 -CAfile ca.crt -cert healthcheck-client.crt -key healthcheck-client.key </dev/null 2>/dev/null | openssl x509 -noout -serial -startdate"))
        })
        .collect()
}

/// Every etcd certificate and key on `hosts`, as checksums.
fn pki_on_hosts(s: &Site, hosts: &[&str]) -> Vec<String> {
    hosts
        .iter()
        .map(|h| {
            s.on_host(h, "cd /etc/kubernetes/pki && for f in etcd/* apiserver-etcd-client.*; do [ -f \"$f\" ] && sha256sum \"$f\"; done; true")
        })
        .collect()
}
