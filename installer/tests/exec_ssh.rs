//! The SSH executor against real sshd on test hosts (network namespaces with overlay
//! roots, `bundle_testbed::real::hosts::TestCluster`): steps run, files get content, mode and
//! owner, a re-run skips what is done, failures name host, step, command, exit code
//! and output, host keys are checked strictly, secrets never reach a command line.
//!
//! The test process stays in the machine's network namespace and reaches the hosts
//! through the deploy namespace with an ssh `ProxyCommand` (the inventory's
//! `configFile`): the same path a jump host takes.

use bundle_format::Hint;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bundle_installer::plan::{
    HostStep, HostSteps, OnFailure, Phase, PhaseName, Plan, PlanHost, Step,
};
use bundle_installer::report::Silent;
use bundle_installer::run::{run_plan, RunOptions};
use bundle_installer::Error;
use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};

/// Tests that change `PATH` (the ssh argv recorder) must not overlap the others.
static SERIAL: Mutex<()> = Mutex::new(());

struct Site {
    c: TestCluster,
    dir: tempfile::TempDir,
}

impl Site {
    fn start() -> Site {
        Site::with(1, 1)
    }

    fn with(masters: usize, workers: usize) -> Site {
        let c = TestCluster::start(&ClusterSpec {
            masters,
            workers,
            kube_fakes: false,
        })
        .expect("starting the test hosts");
        let dir = tempfile::tempdir().unwrap();
        let s = Site { c, dir };
        std::fs::write(
            s.path("ssh_config"),
            format!(
                "Host 10.77.0.*\n  ProxyCommand ip netns exec {} socat - TCP:%h:%p\n",
                s.c.deploy_netns()
            ),
        )
        .unwrap();
        std::fs::copy(s.c.known_hosts(), s.path("known_hosts")).unwrap();
        s.inventory("known_hosts");
        s
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn inventory(&self, known_hosts: &str) {
        let hosts: String = self
            .c
            .hosts()
            .iter()
            .map(|h| {
                let role = if h.name.starts_with('m') {
                    "master"
                } else {
                    "worker"
                };
                format!(
                    "    - {{name: {}, address: {}, roles: [{role}]}}\n",
                    h.name, h.address
                )
            })
            .collect();
        std::fs::write(
            self.path("cluster.yaml"),
            format!(
                "apiVersion: bundle/v1alpha1
kind: Cluster
metadata: {{name: t}}
spec:
  hosts:
{hosts}  ssh: {{user: root, identityFile: {key}, knownHostsFile: {known_hosts}, configFile: ssh_config}}
  controlPlaneEndpoint: {{vip: 10.77.0.200, interface: eth0}}
  registry: {{host: registry.test}}
  network: {{cni: calico, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}}
  repo: {{servedBy: m1}}
",
                key = self.c.identity_file().display()
            ),
        )
        .unwrap();
    }

    fn run(&self, plan: &Plan) -> Result<(usize, usize), Error> {
        run_plan(
            plan,
            &self.path("cluster.yaml"),
            &self.path("state"),
            &RunOptions {
                parallel: 4,
                from: None,
                only: vec![],
                become_password: None,
                resume: "bundle install … --skip-push".into(),
            },
            &Silent,
        )
    }

    fn on_host(&self, host: &str, script: &str) -> String {
        let o = self.c.run_in_host(host, script);
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn secret(&self, name: &str) -> String {
        let s: BTreeMap<String, String> =
            serde_json::from_slice(&std::fs::read(self.path("state/secrets.json")).unwrap())
                .unwrap();
        s[name].clone()
    }
}

fn run(id: &str, command: &str, check: Option<&str>) -> Step {
    Step {
        id: id.into(),
        description: format!("test step {id}"),
        action: HostStep::Run {
            command: command.into(),
            check: check.map(Into::into),
            after_change_of: vec![],
            capture: None,
            on_failure: OnFailure::Stop,
        },
    }
}

fn write(id: &str, path: &str, content: &str, mode: &str) -> Step {
    Step {
        id: id.into(),
        description: format!("test file {id}"),
        action: HostStep::WriteFile {
            path: path.into(),
            content: content.into(),
            mode: mode.into(),
            owner: "root:root".into(),
        },
    }
}

/// One host's steps in a phase: (host, wave, steps).
type HostPart<'a> = (&'a str, u32, Vec<Step>);

fn plan(phases: Vec<(PhaseName, Vec<HostPart>)>) -> Plan {
    Plan {
        plan_version: 1,
        cluster: "t".into(),
        bundle: "test".into(),
        kubernetes_version: "v1.29.2".into(),
        kubeadm_api_version: "kubeadm.k8s.io/v1beta3".into(),
        containerd_config_version: 2,
        control_plane_endpoint: "10.77.0.200:8443".into(),
        registry: "registry.test".into(),
        repo_url: "http://10.77.0.11:8081/el9-x86_64/".into(),
        repo_served_by_deploy: None,
        hosts: ["m1", "w1"]
            .iter()
            .map(|n| PlanHost {
                name: n.to_string(),
                address: String::new(),
                roles: vec![],
                duties: vec![],
            })
            .collect(),
        notes: vec![],
        admin_users: vec![],
        unique_captures: vec![],
        phases: phases
            .into_iter()
            .map(|(name, hosts)| Phase {
                name,
                hosts: hosts
                    .into_iter()
                    .map(|(h, wave, steps)| HostSteps {
                        host: h.into(),
                        wave,
                        steps,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push_str(&all_text(&p));
        } else if p.file_name().unwrap() != "secrets.json" {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn steps_run_files_get_mode_and_owner_and_a_rerun_skips_what_is_done() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::start();
    // A recorder first in PATH logs every `ssh` the executor starts, with its argv.
    let bin = s.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let argv_log = s.path("ssh-argv.log");
    std::fs::write(
        bin.join("ssh"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\nexec /usr/bin/ssh \"$@\"\n",
            argv_log.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(bin.join("ssh"))
        .status()
        .unwrap();
    let old_path = std::env::var("PATH").unwrap();
    std::env::set_var("PATH", format!("{}:{old_path}", bin.display()));

    let steps = |host: &str| {
        vec![
            write(
                "t/conf",
                "/etc/bundle-test/app.conf",
                &format!("host {host}\npassword <secret:keepalived-auth>\n"),
                "0640",
            ),
            write(
                "t/script",
                "/usr/local/bin/bundle-test",
                "#!/bin/sh\necho ok\n",
                "0755",
            ),
            run("t/count", "echo run >> /var/tmp/bundle-test-count", None),
            run(
                "t/touch",
                "touch /var/tmp/bundle-test-marker",
                Some("test -f /var/tmp/bundle-test-marker"),
            ),
        ]
    };
    let p = plan(vec![(
        PhaseName::Os,
        vec![("m1", 0, steps("m1")), ("w1", 0, steps("w1"))],
    )]);
    let first = s.run(&p);
    std::env::set_var("PATH", &old_path);
    assert_eq!(first.unwrap(), (8, 0));

    let password = s.secret("keepalived-auth");
    for h in ["m1", "w1"] {
        assert_eq!(
            s.on_host(h, "cat /etc/bundle-test/app.conf"),
            format!("host {h}\npassword {password}")
        );
        assert_eq!(
            s.on_host(
                h,
                "stat -c '%a %U:%G' /etc/bundle-test/app.conf /usr/local/bin/bundle-test"
            ),
            "640 root:root\n755 root:root"
        );
        assert_eq!(s.on_host(h, "/usr/local/bin/bundle-test"), "ok");
        // No temporary file left beside it.
        assert_eq!(s.on_host(h, "ls -A /etc/bundle-test"), "app.conf");
    }
    // The secret went over stdin only: never in an ssh argv, a log or a record.
    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert!(argv.contains("/etc/bundle-test/app.conf"), "{argv}");
    assert!(!argv.contains(&password), "{argv}");
    let state_text = all_text(&s.path("state"));
    assert!(state_text.contains("t/conf"));
    assert!(!state_text.contains(&password));

    // Again: nothing is carried out; the counter ran once.
    assert_eq!(s.run(&p).unwrap(), (0, 8));
    assert_eq!(s.on_host("m1", "cat /var/tmp/bundle-test-count"), "run");

    // A file changed on the host is written again, and only that.
    s.on_host(
        "w1",
        "echo tampered > /etc/bundle-test/app.conf; chmod 600 /usr/local/bin/bundle-test",
    );
    assert_eq!(s.run(&p).unwrap(), (2, 6));
    assert_eq!(
        s.on_host("w1", "stat -c '%a' /usr/local/bin/bundle-test"),
        "755"
    );
}

#[test]
fn a_failing_step_stops_the_phase_and_a_rerun_resumes_after_the_finished_steps() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::start();
    let p = plan(vec![
        (
            PhaseName::Os,
            vec![(
                "m1",
                0,
                vec![
                    run("os/one", "echo one >> /var/tmp/bundle-test-count", None),
                    run(
                        "os/needs-fix",
                        "echo 'first line'; echo 'the fix is missing' >&2; test -f /var/tmp/fixed || exit 3",
                        None,
                    ),
                    run("os/three", "echo three >> /var/tmp/bundle-test-count", None),
                ],
            )],
        ),
        (
            PhaseName::Lb,
            vec![("w1", 0, vec![run("lb/later", "touch /var/tmp/later", None)])],
        ),
    ]);
    let err = s.run(&p).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("step `os/needs-fix` failed on `m1` (phase os): `echo 'first line'; echo 'the fix is missing' >&2; test -f /var/tmp/fixed || exit 3` exited with 3; last lines of its output:\n    | first line\n    | the fix is missing\n  full log: "),
        "{text}"
    );
    assert!(text.ends_with("_state/logs/m1.log"), "{text}");
    assert_eq!(
        err.hint().unwrap(),
        "fix the cause on the host, then resume with: bundle install … --skip-push --from os"
    );
    // The phase stopped: nothing after the failure, nothing of the next phase.
    assert_eq!(s.on_host("m1", "cat /var/tmp/bundle-test-count"), "one");
    assert!(!s
        .c
        .run_in_host("w1", "test -f /var/tmp/later")
        .status
        .success());
    let log = std::fs::read_to_string(s.path("state/_state/logs/m1.log")).unwrap();
    assert!(log.contains("the fix is missing"), "{log}");

    s.on_host("m1", "touch /var/tmp/fixed");
    // os/one finished before and is not run again.
    assert_eq!(s.run(&p).unwrap(), (3, 1));
    assert_eq!(
        s.on_host("m1", "cat /var/tmp/bundle-test-count"),
        "one\nthree"
    );
    s.on_host("w1", "test -f /var/tmp/later");
}

#[test]
fn an_unknown_host_key_stops_with_its_fingerprint_and_how_to_accept_it() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::start();
    // known_hosts without w1.
    let kh = std::fs::read_to_string(s.c.known_hosts()).unwrap();
    let only_m1: String = kh
        .lines()
        .filter(|l| l.starts_with("m1,"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(s.path("known_hosts_m1"), only_m1).unwrap();
    s.inventory("known_hosts_m1");
    let p = plan(vec![(
        PhaseName::Os,
        vec![("w1", 0, vec![run("os/x", "true", None)])],
    )]);
    let err = s.run(&p).unwrap_err();
    // The fingerprint the real key has.
    let line = kh.lines().find(|l| l.starts_with("w1,")).unwrap();
    let fp = String::from_utf8(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo '{line}' | ssh-keygen -lf - | awk '{{print $2}}'"
            ))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let w1 = s.c.host("w1").address;
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "host `w1` (root@{w1}:22) offered a host key that is not in `{}`; it offers:\n    ssh-ed25519 {}",
            s.path("known_hosts_m1").display(),
            fp.trim()
        )
    );
    let hint = err.hint().unwrap();
    assert!(
        hint.contains(&format!(
            "ssh-keyscan -p 22 {w1} >> {}",
            s.path("known_hosts_m1").display()
        )),
        "{hint}"
    );
    // Nothing ran on any host.
    assert!(!s.path("state/_state/records/m1.jsonl").exists());
}

#[test]
fn a_changed_host_key_and_an_unreachable_host_are_named() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::start();
    // m1's entry carries w1's key: a changed key.
    let kh = std::fs::read_to_string(s.c.known_hosts()).unwrap();
    let w1_key: Vec<&str> = kh
        .lines()
        .find(|l| l.starts_with("w1,"))
        .unwrap()
        .split_whitespace()
        .collect();
    let m1_names = kh
        .lines()
        .find(|l| l.starts_with("m1,"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    std::fs::write(
        s.path("known_hosts_bad"),
        format!("{m1_names} {} {}\n", w1_key[1], w1_key[2]),
    )
    .unwrap();
    s.inventory("known_hosts_bad");
    let p = plan(vec![(
        PhaseName::Os,
        vec![("m1", 0, vec![run("os/x", "true", None)])],
    )]);
    let err = s.run(&p).unwrap_err();
    assert!(matches!(err, Error::HostKeyChanged(_)), "{err}");
    assert!(err.to_string().starts_with("host `m1` ("), "{err}");
    assert!(
        err.hint().unwrap().contains("ssh-keygen -R"),
        "{:?}",
        err.hint()
    );

    s.inventory("known_hosts");
    s.c.stop_sshd("w1").unwrap();
    let p = plan(vec![(
        PhaseName::Os,
        vec![("w1", 0, vec![run("os/x", "true", None)])],
    )]);
    let err = s.run(&p).unwrap_err();
    let w1 = s.c.host("w1").address;
    assert!(
        err.to_string()
            .starts_with(&format!("cannot reach `w1` (root@{w1}:22) over ssh: ")),
        "{err}"
    );
}

/// Answers the sudo password prompt as the operator would at the terminal, and counts
/// how often it was asked.
struct SudoAnswer {
    password: String,
    asked: std::sync::atomic::AtomicUsize,
}

impl bundle_installer::report::Reporter for SudoAnswer {
    fn event(&self, _: &bundle_installer::report::Event) {}

    fn become_password(&self, _user: &str) -> Option<String> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(self.password.clone())
    }
}

#[test]
fn a_sudo_host_gets_the_repository_streamed_and_reset_asks_its_password_once_and_hides_secrets() {
    use bundle_installer::ops::{reset, ResetOptions};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::start();
    let password = "sudo-pass-7391";
    // Both hosts are reached as a user whose sudo asks for a password. A stand-in
    // `kubeadm` prints what the token file holds when `kubeadm reset` runs, as a
    // chatty command could print a secret.
    for h in ["m1", "w1"] {
        s.on_host(
            h,
            &format!(
                "useradd -m deployer && echo 'deployer:{password}' | chpasswd && \
                 echo 'deployer ALL=(ALL) ALL' > /etc/sudoers.d/deployer && chmod 0440 /etc/sudoers.d/deployer && \
                 printf '#!/bin/sh\\necho \"resetting with token $(cat /etc/bundle-test/token)\"\\nexit 1\\n' > /usr/local/bin/kubeadm && \
                 chmod 0755 /usr/local/bin/kubeadm"
            ),
        );
    }
    let inv = std::fs::read_to_string(s.path("cluster.yaml"))
        .unwrap()
        .replace("ssh: {user: root,", "ssh: {user: deployer, become: sudo,");
    std::fs::write(s.path("cluster.yaml"), inv).unwrap();
    // The repository the install extracts from the bundle, larger than one chunk of
    // the stream that copies it (it goes after sudo's password on the same input).
    let repo = s.path("state/_state/repo/rpms/el9-x86_64");
    std::fs::create_dir_all(repo.join("repodata")).unwrap();
    let big: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(repo.join("big-1.0-1.x86_64.rpm"), &big).unwrap();
    std::fs::write(repo.join("repodata/repomd.xml"), "<repomd/>\n").unwrap();
    let steps = |h: &'static str| -> HostPart<'static> {
        let copy = Step {
            id: "repo/copy".into(),
            description: "the repository".into(),
            action: HostStep::CopyFromBundle {
                entries: "rpms/el9-x86_64/".into(),
                dest: "/var/lib/bundle-test/repo".into(),
            },
        };
        let token = write(
            "t/token",
            "/etc/bundle-test/token",
            "<secret:bootstrap-token>",
            "0600",
        );
        (h, 0, vec![copy, token])
    };
    let p = plan(vec![(PhaseName::Os, vec![steps("m1"), steps("w1")])]);
    let install = || {
        run_plan(
            &p,
            &s.path("cluster.yaml"),
            &s.path("state"),
            &RunOptions {
                parallel: 4,
                from: None,
                only: vec![],
                become_password: Some(password.into()),
                resume: "bundle install …".into(),
            },
            &Silent,
        )
        .unwrap()
    };
    assert_eq!(install(), (4, 0));
    let token = s.secret("bootstrap-token");
    assert_eq!(s.on_host("w1", "cat /etc/bundle-test/token"), token);
    let want = format!(
        "{}  big-1.0-1.x86_64.rpm\n{}  repodata/repomd.xml",
        bundle_format::Sha256Digest::of(&big).hex(),
        bundle_format::Sha256Digest::of(b"<repomd/>\n").hex()
    );
    for h in ["m1", "w1"] {
        assert_eq!(
            s.on_host(
                h,
                "cd /var/lib/bundle-test/repo && sha256sum big-1.0-1.x86_64.rpm repodata/repomd.xml"
            ),
            want,
            "{h}"
        );
    }
    // The same tree again is not copied again.
    assert_eq!(install(), (0, 4));

    // No password given: asked once, for both hosts, as install asks.
    let answer = SudoAnswer {
        password: password.into(),
        asked: Default::default(),
    };
    let outcome = reset(
        &ResetOptions {
            inventory: s.path("cluster.yaml"),
            state: Some(s.path("state")),
            only: vec![],
            yes: true,
            become_password: None,
        },
        &answer,
    )
    .unwrap();
    assert_eq!(outcome.hosts, vec!["m1", "w1"]);
    assert_eq!(answer.asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    for h in ["m1", "w1"] {
        assert_eq!(
            s.on_host(
                h,
                "test -e /etc/bundle-test/token || test -e /var/lib/bundle-test/repo || echo gone"
            ),
            "gone",
            "{h}"
        );
        let log = std::fs::read_to_string(s.path(&format!("state/_state/logs/{h}.log"))).unwrap();
        assert!(
            log.contains("resetting with token <secret:bootstrap-token>"),
            "{h}: {log}"
        );
        assert!(!log.contains(&token), "{h}: the token is in the log");
        assert!(!log.contains(password), "{h}: the password is in the log");
    }
}

#[test]
fn certs_check_reads_every_certificate_on_every_master_with_openssl() {
    use bundle_installer::ops::certs::{check, CertsOptions};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::start();
    // An install recorded with m1 as the only master.
    let mut p = plan(vec![(
        PhaseName::Os,
        vec![("m1", 0, vec![run("t/noop", "true", None)])],
    )]);
    p.hosts[0].roles = vec!["master".into()];
    s.run(&p).unwrap();
    // kubeadm's layout, made with openssl: a CA for ten years, the API server's for
    // ten days, etcd's server certificate expired yesterday, admin.conf's client
    // certificate for 200 days, embedded as kubeadm embeds it. w1 (a worker) has
    // certificates too, which must not be read.
    let make = r#"set -e
cd /etc/kubernetes 2>/dev/null || { mkdir -p /etc/kubernetes; cd /etc/kubernetes; }
mkdir -p pki/etcd /tmp/certs
key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -keyout /tmp/certs/$1.key -out /tmp/certs/$1.csr 2>/dev/null; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=kubernetes -keyout pki/ca.key -out pki/ca.crt 2>/dev/null
sign() { key "$1"; openssl x509 -req -in /tmp/certs/$1.csr -CA pki/ca.crt -CAkey pki/ca.key -days "$2" -out "$3" 2>/dev/null; }
sign kube-apiserver 10 pki/apiserver.crt
sign kube-etcd -1 pki/etcd/server.crt
sign kubernetes-admin 200 /tmp/certs/admin.crt
printf 'apiVersion: v1\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: %s\n' "$(base64 -w0 /tmp/certs/admin.crt)" > admin.conf
"#;
    s.on_host("m1", make);
    s.on_host("w1", make);
    let report = check(
        &CertsOptions {
            inventory: s.path("cluster.yaml"),
            state: Some(s.path("state")),
            become_password: None,
        },
        &Silent,
    )
    .unwrap();
    let seen: Vec<(&str, &str, bool, bool)> = report
        .certificates
        .iter()
        .map(|c| (c.host.as_str(), c.name.as_str(), c.authority, c.expired()))
        .collect();
    assert_eq!(
        seen,
        [
            ("m1", "admin.conf", false, false),
            ("m1", "apiserver", false, false),
            ("m1", "ca", true, false),
            ("m1", "etcd-server", false, true),
        ]
    );
    // Made for N days a moment ago: N - 1 whole days left (N within the same second).
    let days: Vec<i64> = report.certificates.iter().map(|c| c.days_left()).collect();
    for (got, made) in days.iter().zip([200, 10, 3650, -1]) {
        assert!(*got == made - 1 || *got == made, "{days:?}");
    }
    // A certificate openssl cannot read is named, not skipped.
    s.on_host(
        "m1",
        "echo garbage > /etc/kubernetes/pki/front-proxy-client.crt",
    );
    let err = check(
        &CertsOptions {
            inventory: s.path("cluster.yaml"),
            state: Some(s.path("state")),
            become_password: None,
        },
        &Silent,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read the certificates of `m1`: openssl cannot read `/etc/kubernetes/pki/front-proxy-client.crt`"
    );
}

fn start_real_etcd(s: &Site) {
    bundle_testbed::real::etcd::start(&s.c, &["m1", "m2", "m3"])
        .expect("a real etcd on the masters");
}

/// Stops `host`'s etcd member the way a static pod is stopped: its manifest moved away.
fn stop_etcd(s: &Site, host: &str) {
    bundle_testbed::real::etcd::stop(&s.c, host).expect("etcd stopped");
}

/// The real `etcdctl` on a test master, with its member's certificate.
const ETCDCTL_HOST: &str = bundle_testbed::real::etcd::ETCDCTL;

#[test]
fn backup_takes_a_real_etcd_snapshot_from_a_healthy_master_that_restores_what_was_written_before() {
    use bundle_installer::ops::backup::{BackupOptions, MANIFEST_FILE, PKI_FILE, SNAPSHOT_FILE};
    use std::os::unix::fs::PermissionsExt;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::with(3, 0);
    let mut p = plan(vec![(
        PhaseName::Os,
        vec![("m1", 0, vec![run("t/noop", "true", None)])],
    )]);
    p.hosts = ["m1", "m2", "m3"]
        .iter()
        .map(|n| PlanHost {
            name: n.to_string(),
            address: String::new(),
            roles: vec!["master".into()],
            duties: vec![],
        })
        .collect();
    s.run(&p).unwrap();
    start_real_etcd(&s);
    s.on_host(
        "m2",
        &format!("{ETCDCTL_HOST} put before written-before-the-backup"),
    );
    // m1's etcd is down: the snapshot comes from the next healthy master.
    stop_etcd(&s, "m1");
    let opts = BackupOptions {
        inventory: s.path("cluster.yaml"),
        state: Some(s.path("state")),
        output: None,
        keep: Some(1),
        become_password: None,
    };
    let first = bundle_installer::ops::backup(&opts, &Silent).unwrap();
    s.on_host(
        "m2",
        &format!("{ETCDCTL_HOST} put after written-after-the-backup"),
    );
    assert_eq!(first.manifest.host, "m2");
    assert!(
        first.dir.starts_with(s.path("state/backups")),
        "{:?}",
        first.dir
    );
    assert!(first
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("t-"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&first.dir), 0o700);
    for f in [SNAPSHOT_FILE, PKI_FILE, MANIFEST_FILE] {
        assert_eq!(mode(&first.dir.join(f)), 0o600, "{f}");
    }
    // The copy is what the manifest says, byte for byte (sha256sum as the judge).
    let snapshot = first.dir.join(SNAPSHOT_FILE);
    let sha = std::process::Command::new("sha256sum")
        .arg(&snapshot)
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.dir.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(
        recorded["files"][0]["sha256"].as_str().unwrap(),
        sha.split_whitespace().next().unwrap()
    );
    assert_eq!(recorded["host"], "m2");
    // The snapshot left nothing on the master.
    assert_eq!(
        s.on_host("m2", "ls /var/lib/etcd | grep -c bundle-backup || true"),
        "0"
    );
    // The PKI is in the backup.
    let pki = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(first.dir.join(PKI_FILE))
        .output()
        .unwrap();
    let pki = String::from_utf8_lossy(&pki.stdout);
    assert!(
        pki.contains("pki/etcd/ca.key") && pki.contains("pki/etcd/server.crt"),
        "{pki}"
    );

    // etcd itself restores the snapshot: the key written before is there, the one
    // written after is not.
    let restored = s.path("restored");
    let port = bundle_testbed::free_port();
    let peer = bundle_testbed::free_port();
    let etcdctl_local = |args: &str| {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ETCDCTL_API=3 etcdctl {args}"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "etcdctl {args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    etcdctl_local(&format!(
        "snapshot restore {} --data-dir {} --name r --initial-cluster r=http://127.0.0.1:{peer} --initial-advertise-peer-urls http://127.0.0.1:{peer}",
        snapshot.display(),
        restored.display()
    ));
    let mut etcd = std::process::Command::new("etcd")
        .args(["--name", "r", "--data-dir"])
        .arg(&restored)
        .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=r=http://127.0.0.1:{peer}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("--endpoints=http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([endpoint.as_str(), "endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let before = ready.then(|| etcdctl_local(&format!("{endpoint} get before --print-value-only")));
    let after = ready.then(|| etcdctl_local(&format!("{endpoint} get after --print-value-only")));
    etcd.kill().unwrap();
    etcd.wait().unwrap();
    assert!(ready, "the restored etcd did not start");
    assert_eq!(before.unwrap().trim(), "written-before-the-backup");
    assert_eq!(after.unwrap().trim(), "");

    // `--keep 1`: the next backup replaces the first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = bundle_installer::ops::backup(&opts, &Silent).unwrap();
    assert_eq!(second.removed, vec![first.dir.clone()]);
    assert!(!first.dir.exists());

    // No healthy etcd anywhere (quorum lost): refused, naming every master.
    stop_etcd(&s, "m2");
    stop_etcd(&s, "m3");
    let err = bundle_installer::ops::backup(&opts, &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("no master has a healthy etcd to take a snapshot from:")
            && msg.contains("\n  - m1: no etcd container runs on this host")
            && msg.contains("\n  - m3: "),
        "{msg}"
    );
    let kept: Vec<_> = std::fs::read_dir(s.path("state/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(MANIFEST_FILE).exists())
        .collect();
    assert_eq!(kept, vec![second.dir]);
}

/// Runs `etcdctl ARGS` with the real client on `host` (its member's certificate).
fn etcd_on(s: &Site, host: &str, args: &str) -> String {
    s.on_host(host, &format!("{ETCDCTL_HOST} {args}"))
}

/// What a refused restore must leave as it was on every master: etcd running on its
/// data with the key written after the backup, its manifest in place, no snapshot
/// uploaded.
fn untouched(s: &Site, why: &str) {
    for m in ["m1", "m2", "m3"] {
        assert_eq!(
            etcd_on(s, m, "get after --print-value-only"),
            "written-after-the-backup",
            "{why}: {m}"
        );
        let o = s.c.run_in_host(
            m,
            "test -f /etc/kubernetes/manifests/etcd.yaml && ! test -e /var/lib/bundle/restore/etcd-snapshot.db && ! ls -d /var/lib/etcd.before-restore-* /var/lib/etcd.restored 2>/dev/null",
        );
        assert!(o.status.success(), "{why}: {m} was touched");
    }
}

#[test]
fn restore_puts_every_master_back_to_a_real_etcd_backup_after_refusing_a_tampered_foreign_or_older_one(
) {
    use bundle_installer::ops::backup::{BackupOptions, MANIFEST_FILE, SNAPSHOT_FILE};
    use bundle_installer::ops::restore::{restore, RestoreOptions};
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Site::with(3, 0);
    let mut p = plan(vec![(
        PhaseName::Os,
        vec![("m1", 0, vec![run("t/noop", "true", None)])],
    )]);
    p.hosts =
        s.c.masters()
            .map(|h| PlanHost {
                name: h.name.clone(),
                address: h.address.to_string(),
                roles: vec!["master".into()],
                duties: vec![],
            })
            .collect();
    s.run(&p).unwrap();
    start_real_etcd(&s);
    for m in ["m1", "m2", "m3"] {
        bundle_testbed::doubles::kube_fakes::start_apiserver(&s.c, m).expect("the API server");
    }
    etcd_on(&s, "m1", "put before written-before-the-backup");
    let backup = bundle_installer::ops::backup(
        &BackupOptions {
            inventory: s.path("cluster.yaml"),
            state: Some(s.path("state")),
            output: None,
            keep: None,
            become_password: None,
        },
        &Silent,
    )
    .unwrap()
    .dir;
    etcd_on(&s, "m2", "put after written-after-the-backup");
    let opts = |dir: &Path, yes: bool| RestoreOptions {
        backup: dir.to_path_buf(),
        inventory: s.path("cluster.yaml"),
        state: Some(s.path("state")),
        force: false,
        yes,
        become_password: None,
    };
    let copy = |name: &str| {
        let to = s.path(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in [MANIFEST_FILE, SNAPSHOT_FILE] {
            std::fs::copy(backup.join(f), to.join(f)).unwrap();
        }
        to
    };

    // Nobody to ask (no terminal) and no --yes: nothing done.
    let err = restore(&opts(&backup, false), &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("restoring the cluster `t` to the backup `")
            && msg.ends_with("was not confirmed; nothing was done"),
        "{msg}"
    );
    assert_eq!(err.hint().unwrap(), "pass `--yes` to confirm");
    untouched(&s, "not confirmed");

    // A snapshot changed after the backup (same size, one byte): refused by its SHA-256.
    let tampered = copy("tampered");
    let mut db = std::fs::read(tampered.join(SNAPSHOT_FILE)).unwrap();
    let mid = db.len() / 2;
    db[mid] ^= 0xff;
    std::fs::write(tampered.join(SNAPSHOT_FILE), &db).unwrap();
    let err = restore(&opts(&tampered, true), &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "`{}` does not match the backup's manifest: its SHA-256 is ",
            tampered.join(SNAPSHOT_FILE).display()
        )) && msg.contains(", the manifest says "),
        "{msg}"
    );
    assert!(
        err.hint().unwrap().contains("use another backup"),
        "{:?}",
        err.hint()
    );
    untouched(&s, "tampered");

    // A backup of another cluster: refused, both named.
    let foreign = copy("foreign");
    let text = std::fs::read_to_string(foreign.join(MANIFEST_FILE)).unwrap();
    std::fs::write(
        foreign.join(MANIFEST_FILE),
        text.replace("\"cluster\": \"t\"", "\"cluster\": \"other\""),
    )
    .unwrap();
    let err = restore(&opts(&foreign, true), &Silent).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the backup `{}` is of the cluster `other`, the inventory `{}` is of `t`",
            foreign.display(),
            s.path("cluster.yaml").display()
        )
    );
    assert!(err.hint().unwrap().contains("pass a backup of `t`"));
    untouched(&s, "another cluster");

    // A backup of another Kubernetes minor: refused without --force.
    let release = |k8s: &str| {
        serde_json::json!({"bundle": "k8s", "version": "1", "kubernetesVersion": k8s,
            "indexSha256": "ab".repeat(32), "keyId": null})
    };
    let older = copy("older");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(older.join(MANIFEST_FILE)).unwrap()).unwrap();
    m["release"] = release("v1.28.9");
    std::fs::write(older.join(MANIFEST_FILE), m.to_string()).unwrap();
    std::fs::write(s.path("state/release.json"), release("v1.29.2").to_string()).unwrap();
    let err = restore(&opts(&older, true), &Silent).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the backup `{}` was taken on Kubernetes v1.28.9, the cluster runs v1.29.2: the restored objects would belong to v1.28.9",
            older.display()
        )
    );
    assert!(err.hint().unwrap().contains("`--force` restores it anyway"));
    untouched(&s, "another minor");
    std::fs::remove_file(s.path("state/release.json")).unwrap();

    // A restore that stops halfway: m3 cannot restore the snapshot (an `etcdutl` that
    // fails comes first on its PATH). Every data directory stays as it was; the same
    // command goes on where it stopped once the cause is gone.
    s.on_host(
        "m3",
        "printf '#!/bin/sh\\necho broken etcdutl >&2; exit 3\\n' > /usr/local/bin/etcdutl; chmod +x /usr/local/bin/etcdutl",
    );
    let err = restore(&opts(&backup, true), &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("step `restore/data` failed on `m3` (phase restore)")
            && msg.contains("broken etcdutl"),
        "{msg}"
    );
    let hint = err.hint().unwrap();
    assert!(
        hint.contains(&format!("bundle restore {} --inventory ", backup.display()))
            && hint.contains("--yes --from restore"),
        "{hint}"
    );
    assert!(s.path("state/restore.json").exists());
    for m in ["m1", "m2", "m3"] {
        s.on_host(
            m,
            "test -f /etc/kubernetes/bundle/restore-manifests/etcd.yaml && ! pgrep -x etcd && test -d /var/lib/etcd/member && ! ls -d /var/lib/etcd.before-restore-* 2>/dev/null",
        );
    }
    s.on_host("m3", "rm /usr/local/bin/etcdutl");

    // Resumed: every member back at the backup's data, the old data kept.
    let outcome = restore(&opts(&backup, true), &Silent).unwrap();
    assert!(outcome.skipped > 0, "nothing was skipped: {outcome:?}");
    assert_eq!(outcome.masters, ["m1", "m2", "m3"]);
    assert!(outcome.kept.starts_with("/var/lib/etcd.before-restore-"));
    for m in ["m1", "m2", "m3"] {
        etcd_on(&s, m, "endpoint health --cluster");
        let members = etcd_on(&s, m, "member list");
        assert_eq!(members.lines().count(), 3, "{m}: {members}");
        for n in ["m1", "m2", "m3"] {
            assert!(
                members.contains(&format!(", {n}, https://")),
                "{m}: {members}"
            );
        }
        assert_eq!(
            etcd_on(&s, m, "get before --print-value-only"),
            "written-before-the-backup",
            "{m}"
        );
        assert_eq!(etcd_on(&s, m, "get after --print-value-only"), "", "{m}");
        // The data from before is kept, whole; the manifests are back; the upload gone.
        s.on_host(
            m,
            &format!(
                "test -d {kept}/member/snap && test -f /etc/kubernetes/manifests/etcd.yaml && ! test -e /etc/kubernetes/bundle/restore-manifests/etcd.yaml && ! test -e /var/lib/bundle/restore/etcd-snapshot.db && ! test -e /var/lib/etcd.restored",
                kept = outcome.kept
            ),
        );
    }
    assert!(!s.path("state/restore.json").exists());

    // The same backup restored again later is a new restore: nothing is skipped for
    // having finished the first time, and both earlier data folders are kept.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    etcd_on(&s, "m3", "put again written-after-the-restore");
    let second = restore(&opts(&backup, true), &Silent).unwrap();
    assert_ne!(second.kept, outcome.kept);
    assert_eq!(second.skipped, 0);
    for m in ["m1", "m2", "m3"] {
        etcd_on(&s, m, "endpoint health --cluster");
        assert_eq!(etcd_on(&s, m, "get again --print-value-only"), "", "{m}");
        assert_eq!(
            etcd_on(&s, m, "get before --print-value-only"),
            "written-before-the-backup",
            "{m}"
        );
        assert_eq!(
            s.on_host(m, "ls -d /var/lib/etcd.before-restore-* | wc -l"),
            "2",
            "{m}"
        );
    }
}
