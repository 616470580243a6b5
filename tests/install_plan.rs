//! `bundle init` and `bundle install --dry-run --plan-out`: a small signed bundle is
//! built in the test with bundle-format's writer, then planned by the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn bundle(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bundle"))
            .current_dir(self.dir.path())
            .args(args)
            .output()
            .expect("bundle runs")
    }

    fn plan(&self, out: &str) -> Output {
        self.bundle(&[
            "install",
            "k8s.tar.zst",
            "--inventory",
            "cluster.yaml",
            "--pubkey",
            "k.pub",
            "--dry-run",
            "--plan-out",
            out,
        ])
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A site with a key pair, a signed bundle carrying calico, and an inventory.
fn site() -> Site {
    let s = Site {
        dir: tempfile::tempdir().unwrap(),
    };
    bundle_testbed::site::write_plannable_site(s.dir.path(), 1);
    s
}

fn inventory(workers: usize) -> String {
    bundle_testbed::inventories::sample_inventory(3, workers)
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn install_dry_run_writes_plan_host_files_and_owner_only_secrets() {
    let s = site();
    let o = s.plan("plan");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Verified 8 entries of bundle k8s 1.29.2"),
        "{err}"
    );
    assert!(
        err.contains("Generated secrets in plan/secrets.json"),
        "{err}"
    );

    let plan_txt = std::fs::read_to_string(s.path("plan/plan.txt")).unwrap();
    // The release record names this run's bundle (its index digest) and test key: its
    // files' digests change from run to run, their content is checked below.
    insta::with_settings!({filters => vec![(
        r"(write /etc/bundle/release(?:-configmap\.yaml|\.json) \(0644 root:root, \d+ bytes, sha256 )[0-9a-f]{12}",
        "$1[RELEASE]",
    )]}, {
        insta::assert_snapshot!("install_plan_txt", plan_txt);
    });
    let release: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.path("plan/server5/files/etc/bundle/release.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(release["kubernetesVersion"], "v1.29.2");
    let pubkey = std::fs::read_to_string(s.dir.path().join("k.pub")).unwrap();
    assert!(
        pubkey
            .lines()
            .next()
            .unwrap()
            .ends_with(release["keyId"].as_str().unwrap()),
        "{release} {pubkey}"
    );

    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan/plan.json")).unwrap()).unwrap();
    assert_eq!(plan["kubeadmApiVersion"], "kubeadm.k8s.io/v1beta3");
    assert_eq!(plan["phases"].as_array().unwrap().len(), 9);
    let lb = &plan["phases"][4]["hosts"][0]["steps"][3];
    assert_eq!(
        (
            lb["kind"].as_str(),
            lb["path"].as_str(),
            lb["mode"].as_str(),
            lb["owner"].as_str()
        ),
        (
            Some("writeFile"),
            Some("/etc/keepalived/keepalived.conf"),
            Some("0600"),
            Some("root:root")
        )
    );

    // Every file each host gets, under its folder.
    let cni = std::fs::read_to_string(s.path("plan/server5/files/etc/kubernetes/bundle/cni.yaml"))
        .unwrap();
    assert!(
        cni.contains("          image: harbor.example.com/calico/node:v3.26.4 # the main agent\n")
    );
    assert!(cni.contains("              value: \"10.244.0.0/16\"\n"));
    assert!(s
        .path("plan/server6/files/etc/haproxy/haproxy.cfg")
        .is_file());
    assert!(s
        .path("plan/server8/files/etc/kubernetes/bundle/kubeadm-join.yaml")
        .is_file());
    assert!(!s.path("plan/server8/files/etc/haproxy").exists());
    let steps = std::fs::read_to_string(s.path("plan/server8/steps.txt")).unwrap();
    assert!(steps.contains("## join\n    [join/config]"), "{steps}");

    // Secrets: owner-only file, and nowhere else.
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(s.path("plan/secrets.json")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let secrets: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan/secrets.json")).unwrap())
            .unwrap();
    assert_eq!(secrets.len(), 3);
    for f in all_files(&s.path("plan"))
        .iter()
        .filter(|f| !f.ends_with("secrets.json"))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for v in secrets.values() {
            assert!(!text.contains(v.as_str()), "{} holds a secret", f.display());
        }
    }
    assert!(!err.contains(&secrets["keepalived-auth"]));
}

#[test]
fn install_dry_run_again_keeps_the_secrets_and_the_files() {
    let s = site();
    assert!(s.plan("plan").status.success());
    let read_all = || {
        all_files(&s.path("plan"))
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(&f).unwrap()))
            .collect::<Vec<_>>()
    };
    let first = read_all();
    let o = s.plan("plan");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Kept the secrets of the earlier plan"),
        "{}",
        stderr(&o)
    );
    assert_eq!(first, read_all());
}

#[test]
fn install_rejects_a_tampered_bundle_and_writes_nothing() {
    let s = site();
    // Decompress with the zstd CLI, change one byte of calico.yaml, compress again:
    // a valid archive whose entry no longer matches the signed index.
    let tar = Command::new("zstd")
        .args(["-d", "-c", "k8s.tar.zst"])
        .current_dir(s.dir.path())
        .output()
        .expect("zstd CLI");
    assert!(tar.status.success());
    let mut tar = tar.stdout;
    let at = tar
        .windows(13)
        .rposition(|w| w == b"calico/node:v")
        .unwrap();
    tar[at] = b'k';
    std::fs::write(s.path("k8s.tar"), &tar).unwrap();
    let z = Command::new("zstd")
        .args(["-q", "-f", "k8s.tar", "-o", "k8s.tar.zst"])
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    assert!(z.status.success(), "{}", stderr(&z));

    let o = s.plan("plan");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: bundle `k8s.tar.zst` failed verification; nothing was planned"),
        "{err}"
    );
    assert!(err.contains("files/calico.yaml"), "{err}");
    assert!(!s.path("plan").exists(), "the plan folder was created");
}

#[test]
fn install_reports_every_inventory_problem_with_its_field() {
    let s = site();
    let bad = inventory(1)
        .replace("name: server8", "name: server6")
        .replace("vip: 172.25.19.100", "vip: 10.96.0.1");
    std::fs::write(s.path("cluster.yaml"), bad).unwrap();
    let o = s.plan("plan");
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("install_inventory_problems", stderr(&o));
    assert!(!s.path("plan").exists());
}

#[test]
fn install_refuses_a_plan_folder_holding_other_files() {
    let s = site();
    std::fs::create_dir(s.path("notes")).unwrap();
    std::fs::write(s.path("notes/todo.txt"), "x").unwrap();
    let o = s.plan("notes");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("error: plan folder `notes` is not empty and holds no earlier plan"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn install_names_an_unreachable_host_and_how_to_check_it() {
    let s = site();
    // Every host is sent to a closed port on 127.0.0.1 by the inventory's ssh config,
    // so no packet leaves the machine.
    std::fs::write(
        s.path("ssh_config"),
        "Host 172.25.19.*\n  HostName 127.0.0.1\n",
    )
    .unwrap();
    let inv = inventory(1).replace(
        "ssh: {user: root, port: 22, identityFile: ~/.ssh/id_ed25519}",
        "ssh: {user: root, port: 1, configFile: ssh_config}",
    );
    std::fs::write(s.path("cluster.yaml"), inv).unwrap();
    let o = s.bundle(&[
        "install",
        "k8s.tar.zst",
        "--inventory",
        "cluster.yaml",
        "--pubkey",
        "k.pub",
        "--skip-push",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: cannot reach `server5` (root@172.25.19.5:1) over ssh: ")
            && err.contains("Connection refused"),
        "{err}"
    );
    assert!(
        err.contains("hint: check the host's address and `spec.ssh.port` (or `proxyJump`), and that sshd runs there"),
        "{err}"
    );
    // Nothing ran: the plan is recorded, no step is.
    assert!(s.path("bundle-state/prod/plan.json").is_file());
    assert!(!s
        .path("bundle-state/prod/_state/records/server5.jsonl")
        .exists());
}

#[test]
fn init_writes_a_template_that_plans_and_refuses_to_overwrite() {
    let s = site();
    let o = s.bundle(&["init", "--output", "new.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let template = std::fs::read_to_string(s.path("new.yaml")).unwrap();
    assert!(template.starts_with("# Cluster inventory for `bundle install`."));
    // The template as written plans against the test bundle.
    let o = s.bundle(&[
        "install",
        "k8s.tar.zst",
        "--inventory",
        "new.yaml",
        "--pubkey",
        "k.pub",
        "--dry-run",
        "--plan-out",
        "p",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = s.bundle(&["init", "--output", "new.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "error: `new.yaml` already exists\nhint: pass `--output` with another file name, or remove the file\n");
    assert_eq!(
        std::fs::read_to_string(s.path("new.yaml")).unwrap(),
        template
    );
}

#[test]
fn lifecycle_commands_without_an_install_say_so_and_create_nothing() {
    let s = site();
    for args in [
        &["backup", "--inventory", "cluster.yaml"][..],
        &["certs", "check", "--inventory", "cluster.yaml"],
        &[
            "nodes",
            "remove",
            "server8",
            "--inventory",
            "cluster.yaml",
            "--yes",
        ],
        &["reset", "--inventory", "cluster.yaml", "--yes"],
    ] {
        let o = s.bundle(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("error: no install is recorded in the state folder `bundle-state/prod`"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("hint: install the cluster first (`bundle install`), or pass the install's `--state`"),
            "{args:?}: {err}"
        );
        assert!(
            !s.path("bundle-state").exists(),
            "{args:?} created the state folder"
        );
    }
}
