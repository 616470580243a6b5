//! Every rendered configuration file, checked by the tool that will read it:
//! `haproxy -c`, `keepalived -t`, `containerd config dump`, and dnf reading the
//! `.repo` file against a repository served over HTTP on 127.0.0.1 by this test.
//! Each check has a negative control proving the call would catch a broken file.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle_installer::render::{containerd, haproxy, keepalived, repo};
use bundle_installer::secrets::Secrets;
use bundle_installer::{plan, Plan};
use common::*;

fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{name}` (install it: see installer/README.md): {e}")
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The plan's file for `host`, with secrets filled in as the executor will.
fn resolved(plan: &Plan, host: &str, path: &str) -> String {
    let mut rt = BTreeMap::new();
    rt.insert(
        "ca-cert-hash".to_string(),
        format!("sha256:{}", "ab".repeat(32)),
    );
    Secrets::generate()
        .unwrap()
        .resolve(&file_of(plan, host, path), &rt)
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

fn the_plan(masters: usize, workers: usize) -> Plan {
    plan(&cluster(masters, workers), &facts(), &inputs()).expect("plans")
}

#[test]
fn haproxy_accepts_the_rendered_config_and_rejects_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let plan = the_plan(3, 1);
    for host in ["server5", "server6", "server7"] {
        let cfg = resolved(&plan, host, haproxy::PATH);
        for m in ["172.25.19.5:6443", "172.25.19.6:6443", "172.25.19.7:6443"] {
            assert!(cfg.contains(m), "{cfg}");
        }
        let p = write(dir.path(), &format!("{host}.cfg"), &cfg);
        let o = tool("haproxy", &["-c", "-f", p.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "haproxy rejected the config of {host}: {}\n{cfg}",
            text(&o)
        );
    }
    let broken =
        resolved(&plan, "server5", haproxy::PATH).replace("balance roundrobin", "balance nonsense");
    let p = write(dir.path(), "broken.cfg", &broken);
    let o = tool("haproxy", &["-c", "-f", p.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "negative control: haproxy accepted a broken config"
    );
}

#[test]
fn keepalived_accepts_every_master_config_and_rejects_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let plan = the_plan(5, 1);
    for (i, host) in ["server5", "server6", "server7", "server8", "server9"]
        .iter()
        .enumerate()
    {
        let conf = resolved(&plan, host, keepalived::PATH);
        assert!(!conf.contains("<secret:"), "{conf}");
        assert!(
            conf.contains(&format!("priority {}", 200 - 10 * i)),
            "{conf}"
        );
        assert!(
            conf.contains(if i == 0 {
                "state MASTER"
            } else {
                "state BACKUP"
            }),
            "{conf}"
        );
        let p = write(dir.path(), &format!("{host}.conf"), &conf);
        let o = tool("keepalived", &["-t", "-f", p.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "keepalived rejected the config of {host} ({}): {}\n{conf}",
            o.status,
            text(&o)
        );
    }
    let broken = resolved(&plan, "server5", keepalived::PATH)
        .replace("virtual_router_id 51", "virtual_router_id 300");
    let p = write(dir.path(), "broken.conf", &broken);
    let o = tool("keepalived", &["-t", "-f", p.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "negative control: keepalived accepted a broken config: {}",
        text(&o)
    );
}

#[test]
fn keepalived_auth_is_a_placeholder_in_the_plan() {
    let plan = the_plan(3, 1);
    let conf = file_of(&plan, "server6", keepalived::PATH);
    assert!(
        conf.contains("auth_pass <secret:keepalived-auth>"),
        "{conf}"
    );
    assert!(conf.contains("unicast_src_ip 172.25.19.6"), "{conf}");
    assert!(
        conf.contains("        172.25.19.5\n        172.25.19.7\n"),
        "{conf}"
    );
    assert!(!plan.to_text().contains("Pa55w0rd"));
}

#[test]
fn containerd_parses_the_version_2_config_with_systemd_cgroups_and_the_sandbox_image() {
    let dir = tempfile::tempdir().unwrap();
    let plan = the_plan(3, 1);
    assert_eq!(plan.containerd_config_version, 2);
    let cfg = resolved(&plan, "server8", containerd::CONFIG_PATH);
    let p = write(dir.path(), "config.toml", &cfg);
    let o = tool(
        "containerd",
        &["--config", p.to_str().unwrap(), "config", "dump"],
    );
    let dump = text(&o);
    assert!(o.status.success(), "containerd rejected the config: {dump}");
    assert!(dump.contains("SystemdCgroup = true"), "{dump}");
    assert!(
        dump.contains("sandbox_image = \"harbor.example.com/k8s/pause:3.9\""),
        "{dump}"
    );
    assert!(
        dump.contains("config_path = \"/etc/containerd/certs.d\""),
        "{dump}"
    );

    // Negative control: a config containerd cannot parse.
    let p = write(
        dir.path(),
        "broken.toml",
        &cfg.replace("SystemdCgroup = true", "SystemdCgroup = = true"),
    );
    let o = tool(
        "containerd",
        &["--config", p.to_str().unwrap(), "config", "dump"],
    );
    assert!(
        !o.status.success(),
        "negative control: containerd accepted a broken config: {}",
        text(&o)
    );
}

#[test]
fn containerd_takes_the_nodes_pull_account_and_the_file_is_root_only() {
    let yaml = inventory_yaml(3, 1).replace(
        "registry: {host: harbor.example.com, caFile: harbor-ca.crt}",
        "registry: {host: harbor.example.com, caFile: harbor-ca.crt, pullUsername: robot$k8s-pull}",
    );
    let plan = plan(&cluster_from(&yaml), &facts(), &inputs()).expect("plans");
    let (_, cfg, mode, _) = plan
        .host_files("server8")
        .find(|(p, ..)| *p == containerd::CONFIG_PATH)
        .unwrap();
    assert_eq!(mode, "0600", "the config holds a password");
    assert!(
        cfg.contains(&format!("password = \"{}\"", containerd::PULL_PASSWORD)),
        "{cfg}"
    );
    // Without an account the file stays world-readable and holds no auth.
    let anonymous = the_plan(3, 1);
    let (_, cfg0, mode0, _) = anonymous
        .host_files("server8")
        .find(|(p, ..)| *p == containerd::CONFIG_PATH)
        .unwrap();
    assert_eq!(mode0, "0644");
    assert!(!cfg0.contains("auth"), "{cfg0}");

    let dir = tempfile::tempdir().unwrap();
    let filled = cfg.replace(containerd::PULL_PASSWORD, "s3cr3t-robot-token");
    let p = write(dir.path(), "config.toml", &filled);
    let o = tool(
        "containerd",
        &["--config", p.to_str().unwrap(), "config", "dump"],
    );
    let dump = text(&o);
    assert!(o.status.success(), "containerd rejected the config: {dump}");
    assert!(
        dump.contains(
            "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"harbor.example.com\".auth]"
        ),
        "{dump}"
    );
    assert!(dump.contains("username = \"robot$k8s-pull\""), "{dump}");
    assert!(dump.contains("password = \"s3cr3t-robot-token\""), "{dump}");
    assert!(dump.contains("SystemdCgroup = true"), "{dump}");
}

/// containerd 2.x is not installable here (Debian has 1.6), so the version 3 config is
/// checked as TOML with Python's parser, against the plugin names of containerd 2.
#[test]
fn containerd_2_gets_a_version_3_config_with_the_split_cri_plugins() {
    let anonymous = plan(
        &cluster(3, 1),
        &facts_with("v1.29.2", Some("2.0.2"), "calico"),
        &inputs(),
    )
    .unwrap();
    assert_eq!(anonymous.containerd_config_version, 3);
    let cfg = file_of(&anonymous, "server5", containerd::CONFIG_PATH);
    let script = r#"
import sys, tomllib
c = tomllib.loads(sys.stdin.read())
assert c["version"] == 3, c
p = c["plugins"]
assert "io.containerd.grpc.v1.cri" not in p, p
assert p["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "harbor.example.com/k8s/pause:3.9", p
assert p["io.containerd.cri.v1.images"]["registry"]["config_path"] == "/etc/containerd/certs.d", p
runc = p["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
assert runc["runtime_type"] == "io.containerd.runc.v2", runc
assert runc["options"]["SystemdCgroup"] is True, runc
print("ok")
"#;
    check_toml(script, &cfg);

    // With the nodes' pull account, its auth goes under the images plugin.
    let yaml = inventory_yaml(3, 1).replace(
        "caFile: harbor-ca.crt}",
        "caFile: harbor-ca.crt, pullUsername: robot$k8s-pull}",
    );
    let with_account = plan(
        &cluster_from(&yaml),
        &facts_with("v1.29.2", Some("2.0.2"), "calico"),
        &inputs(),
    )
    .unwrap();
    let cfg = file_of(&with_account, "server5", containerd::CONFIG_PATH);
    let script = r#"
import sys, tomllib
c = tomllib.loads(sys.stdin.read())
auth = c["plugins"]["io.containerd.cri.v1.images"]["registry"]["configs"]["harbor.example.com"]["auth"]
assert auth == {"username": "robot$k8s-pull", "password": "<secret:registry-pull-password>"}, auth
print("ok")
"#;
    check_toml(script, &cfg);
}

/// Runs `script` (Python, `tomllib`) with `cfg` on stdin; it must succeed.
fn check_toml(script: &str, cfg: &str) {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cfg.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}\n{cfg}", text(&o));
}

#[test]
fn registry_host_files_mirror_upstream_registries_with_the_mapping_paths() {
    let plan = the_plan(3, 1);
    let own = file_of(
        &plan,
        "server5",
        "/etc/containerd/certs.d/harbor.example.com/hosts.toml",
    );
    assert!(
        own.contains("[host.\"https://harbor.example.com\"]")
            && own.contains("ca = \"/etc/containerd/certs.d/harbor.example.com/ca.crt\""),
        "{own}"
    );
    let k8s = file_of(
        &plan,
        "server5",
        "/etc/containerd/certs.d/registry.k8s.io/hosts.toml",
    );
    assert!(k8s.contains("[host.\"https://harbor.example.com/v2/k8s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true"), "{k8s}");
    for upstream in ["docker.io", "quay.io", "ghcr.io"] {
        let f = file_of(
            &plan,
            "server5",
            &format!("/etc/containerd/certs.d/{upstream}/hosts.toml"),
        );
        assert!(
            f.contains("[host.\"https://harbor.example.com\"]") && !f.contains("override_path"),
            "{f}"
        );
    }
    assert_eq!(
        file_of(
            &plan,
            "server5",
            "/etc/containerd/certs.d/harbor.example.com/ca.crt"
        ),
        CA_PEM
    );
    // Every host file is TOML.
    for (path, content, ..) in plan
        .host_files("server5")
        .filter(|(p, ..)| p.ends_with("hosts.toml"))
    {
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, tomllib; tomllib.loads(sys.argv[1])",
                content,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{path}: {}", text(&o));
    }
}

/// Serves `root` over HTTP/1.0 on 127.0.0.1 from a thread; returns the port.
fn serve(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
                    break;
                }
            }
            let path = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/");
            let file = root.join(path.trim_start_matches('/'));
            let _ = match (path.contains(".."), std::fs::read(&file)) {
                (false, Ok(body)) => {
                    let head = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    stream
                        .write_all(head.as_bytes())
                        .and_then(|_| stream.write_all(&body))
                }
                _ => stream.write_all(
                    b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    port
}

#[test]
fn dnf_reads_the_repo_file_against_the_served_repository() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    let target = served.join("el9-x86_64");
    std::fs::create_dir_all(target.join("keys")).unwrap();
    std::fs::write(
        target.join("keys/RPM-GPG-KEY-kubernetes"),
        "not used by repolist\n",
    )
    .unwrap();
    let o = tool("createrepo_c", &["-q", target.to_str().unwrap()]);
    assert!(o.status.success(), "createrepo_c: {}", text(&o));
    let port = serve(served);

    // The plan's file, with the served URL instead of the repo host's.
    let plan = the_plan(3, 1);
    let planned = file_of(&plan, "server8", repo::REPO_FILE);
    assert!(
        planned.contains("baseurl=http://172.25.19.5:8081/el9-x86_64/"),
        "{planned}"
    );
    assert!(
        planned.contains(
            "gpgcheck=1\ngpgkey=http://172.25.19.5:8081/el9-x86_64/keys/RPM-GPG-KEY-kubernetes"
        ),
        "{planned}"
    );
    let repo_file = planned.replace(
        "http://172.25.19.5:8081/",
        &format!("http://127.0.0.1:{port}/"),
    );

    let run_dnf = |repo_file: &str, name: &str| {
        let reposdir = dir.path().join(format!("repos-{name}"));
        write(&reposdir, "bundle.repo", repo_file);
        let cache = dir.path().join(format!("cache-{name}"));
        let root = dir.path().join(format!("root-{name}"));
        std::fs::create_dir_all(&root).unwrap();
        tool(
            "dnf",
            &[
                &format!("--setopt=reposdir={}", reposdir.display()),
                &format!("--setopt=cachedir={}", cache.display()),
                &format!("--installroot={}", root.display()),
                "--releasever=9",
                "--quiet",
                "repoinfo",
                "bundle-el9-x86_64",
            ],
        )
    };
    let o = run_dnf(&repo_file, "good");
    let out = text(&o);
    assert!(
        o.status.success(),
        "dnf could not use the repo file: {out}\n{repo_file}"
    );
    assert!(
        out.contains("bundle-el9-x86_64")
            && out.contains(&format!("http://127.0.0.1:{port}/el9-x86_64/")),
        "{out}"
    );
    assert!(out.contains("Repo-pkgs") && out.contains(": 0"), "{out}");

    // Negative control: the same file pointing at a folder without a repository.
    let o = run_dnf(&repo_file.replace("/el9-x86_64/", "/missing/"), "bad");
    assert!(
        !o.status.success(),
        "negative control: dnf accepted a repository that is not there: {}",
        text(&o)
    );
}

#[test]
fn without_preemption_every_master_is_a_nopreempt_backup_that_keepalived_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = inventory_yaml(3, 1).replace("interface: eth0}", "interface: eth0, preempt: false}");
    let plan = plan(&cluster_from(&yaml), &facts(), &inputs()).unwrap();
    for (i, host) in ["server5", "server6", "server7"].iter().enumerate() {
        let conf = resolved(&plan, host, keepalived::PATH);
        assert!(conf.contains("    state BACKUP\n"), "{host}: {conf}");
        assert!(
            conf.contains(&format!("    priority {}\n    nopreempt\n", 200 - 10 * i)),
            "{host}: {conf}"
        );
        // A down haproxy puts the instance in FAULT (no weight), which lets the VIP go.
        assert!(!conf.contains("weight"), "{host}: {conf}");
        let p = write(dir.path(), &format!("{host}.conf"), &conf);
        let o = tool("keepalived", &["-t", "-f", p.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "keepalived rejected {host}: {}\n{conf}",
            text(&o)
        );
    }
    let text = plan.to_text();
    assert!(text.contains("keepalived BACKUP 200"), "{text}");
    assert!(
        text.contains("the VIP 172.25.19.100 answers (held by whichever master won)"),
        "{text}"
    );
    // The default is unchanged: the first master is MASTER and preempts.
    let default = resolved(&the_plan(3, 1), "server5", keepalived::PATH);
    assert!(
        default.contains("    state MASTER\n") && !default.contains("nopreempt"),
        "{default}"
    );
}
