//! `bundle install` of 3 masters + 6 workers on bundle-testbed hosts (network + mount/uts/
//! pid namespaces with an overlay root, sshd on each; fake kubeadm/kubectl/kubelet/crictl
//! RPMs installed with dnf from the repo `bundle install` serves; haproxy, keepalived and
//! containerd really running), images pushed to a TLS registry in the deploy namespace:
//! the whole install with `--parallel 10` against the same plan carried out host after
//! host (`--parallel 1`), each on a fresh cluster and registry. Then the SSH cost of one
//! step: `ssh HOST true` over a fresh connection each time against through one
//! ControlMaster socket (what the executor does: one master per host).
//!
//! Needs root (namespaces), like `tests/install_e2e.rs`.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin install [-- ROUNDS]

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use bundle_bench::{bundle_binary, header, measure, row, Measure};
use bundle_testbed::fixtures::images::{self, DEFAULT_IMAGES};
use bundle_testbed::fixtures::packages;
use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};
use bundle_testbed::real::registry::{test_tls, RegistryOptions};
use bundle_testbed::real::rpms::RepoServer;
use bundle_testbed::{FileServer, Registry};

const CALICO: &str = include_str!("../../../installer/tests/fixtures/calico.yaml");
const MASTERS: usize = 3;
const WORKERS: usize = 6;
const REGISTRY_PORT: u16 = 5000;
const REPO_PORT: u16 = 8081;

fn sh(dir: &Path, script: &str) -> anyhow::Result<String> {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()?;
    if !out.status.success() {
        bail!(
            "`{script}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The connected side: the bundle `e2e.tar.zst` and `builder.pub` in `work`.
fn build_bundle(bundle: &str, work: &Path) -> anyhow::Result<()> {
    let scratch = work.join("upstream");
    let upstream = Registry::start()?;
    for img in images::default_manifest_images(1) {
        images::seed(&upstream.addr, &img, &scratch)?;
    }
    let files = FileServer::start()?;
    files.put("calico.yaml", CALICO.as_bytes());
    std::fs::write(work.join("calico.yaml"), CALICO)?;
    let calico_sha = sh(work, "sha256sum calico.yaml | cut -d' ' -f1")?;

    let repo = scratch.join("repo");
    packages::build_install_repo(&scratch.join("rpm-work"), &repo)?;
    let rpms = RepoServer::serve(&repo)?;

    let packages = packages::install_packages();
    let images: String = DEFAULT_IMAGES
        .iter()
        .map(|i| format!("    - {i}\n"))
        .collect();
    std::fs::write(
        work.join("manifest.yaml"),
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata:\n  name: bench\n  version: 1.29.2-1\nspec:\n  kubernetesVersion: v1.29.2\n  cni: {{name: calico, manifest: calico.yaml}}\n  platforms: [linux/amd64]\n  images:\n{images}  files:\n    - name: calico.yaml\n      url: {}/calico.yaml\n      sha256: {}\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: test, baseurl: '{}/'}}\n      packages: [{}]\n",
            files.url,
            calico_sha.trim(),
            rpms.url,
            packages.join(", ")
        ),
    )?;
    let addr = &upstream.addr;
    let env = format!(
        "XDG_CONFIG_HOME={w}/config XDG_CACHE_HOME={w}/cache",
        w = work.display()
    );
    sh(
        work,
        &format!("{env} {bundle} -q keygen --unencrypted --output builder"),
    )?;
    sh(work, &format!("{env} {bundle} -q build --manifest manifest.yaml --key builder.key --plain-http {addr} --mirror registry.k8s.io={addr} --mirror docker.io={addr} --output e2e.tar.zst"))?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// One install on a fresh cluster; returns its measure, the steps recorded and the cluster
/// (still running, for the SSH measure).
fn install(
    bundle: &str,
    work: &Path,
    parallel: usize,
) -> anyhow::Result<(Measure, usize, TestCluster, Registry)> {
    let c = TestCluster::start(&ClusterSpec {
        masters: MASTERS,
        workers: WORKERS,
        kube_fakes: false,
    })?;
    let run = work.join(format!("parallel-{parallel}"));
    std::fs::create_dir_all(run.join("home"))?;
    let deploy = c.deploy_address().to_string();
    let tls = test_tls(&run.join("tls"), &deploy)?;
    std::fs::copy(&tls.ca, run.join("registry-ca.crt"))?;
    let registry = Registry::start_in_netns(
        c.deploy_netns(),
        &deploy,
        REGISTRY_PORT,
        &RegistryOptions {
            tls: Some((tls.cert.clone(), tls.key.clone())),
            ..Default::default()
        },
    )?;
    let mut hosts = String::new();
    for h in c.masters() {
        hosts.push_str(&format!(
            "    - {{name: {}, address: {}, roles: [master]}}\n",
            h.name, h.address
        ));
    }
    for h in c.workers() {
        hosts.push_str(&format!(
            "    - {{name: {}, address: {}, roles: [worker]}}\n",
            h.name, h.address
        ));
    }
    std::fs::write(
        run.join("cluster.yaml"),
        format!(
            "apiVersion: bundle/v1alpha1\nkind: Cluster\nmetadata: {{name: bench}}\nspec:\n  hosts:\n{hosts}  ssh: {{user: root, identityFile: {key}, knownHostsFile: {kh}}}\n  controlPlaneEndpoint: {{vip: {vip}, interface: eth0}}\n  registry: {{host: '{deploy}:{REGISTRY_PORT}', caFile: registry-ca.crt}}\n  network: {{cni: calico, podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12}}\n  repo: {{servedBy: deploy, address: {deploy}, port: {REPO_PORT}}}\n",
            key = c.identity_file().display(),
            kh = c.known_hosts().display(),
            vip = c.vip(),
        ),
    )?;
    let m = measure(
        &run,
        &format!(
            "HOME={r}/home XDG_CONFIG_HOME={r}/config XDG_CACHE_HOME={r}/cache NO_COLOR=1 \
             ip netns exec {ns} {bundle} -q install {w}/e2e.tar.zst --inventory cluster.yaml \
             --pubkey {w}/builder.pub --yes --parallel {parallel} </dev/null",
            r = run.display(),
            w = work.display(),
            ns = c.deploy_netns(),
        ),
    )?;
    let records = run.join("bundle-state/bench/_state/records");
    let mut steps = 0;
    for e in std::fs::read_dir(&records).with_context(|| format!("{}", records.display()))? {
        steps += std::fs::read_to_string(e?.path())?.lines().count();
    }
    Ok((m, steps, c, registry))
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let bundle = bundle_binary()?;
    let bundle = bundle.display().to_string();
    let work = tempfile::tempdir()?;
    let w = work.path();
    build_bundle(&bundle, w)?;

    let (parallel, steps, c, registry) = install(&bundle, w, 10)?;
    drop(registry);
    drop(c);
    let (serial, steps_serial, c, registry) = install(&bundle, w, 1)?;

    // SSH: a fresh connection per command against one ControlMaster (from the deploy
    // namespace to m1, with the cluster's strict ssh_config).
    let cfg = c.ssh_config();
    let cfg = cfg.display();
    let ns = c.deploy_netns();
    let sock = w.join("ctl.sock");
    let sock = sock.display();
    let fresh = measure(
        w,
        &format!("for i in $(seq {rounds}); do ip netns exec {ns} ssh -F {cfg} -o ControlMaster=no -o ControlPath=none m1 true || exit 1; done"),
    )?;
    sh(
        w,
        &format!("ip netns exec {ns} ssh -F {cfg} -o ControlMaster=yes -o ControlPath={sock} -o ControlPersist=120 -fN m1"),
    )?;
    let muxed = measure(
        w,
        &format!("for i in $(seq {rounds}); do ip netns exec {ns} ssh -F {cfg} -o ControlMaster=no -o ControlPath={sock} m1 true || exit 1; done"),
    );
    let _ = sh(
        w,
        &format!("ip netns exec {ns} ssh -F {cfg} -o ControlPath={sock} -O exit m1 2>/dev/null"),
    );
    let muxed = muxed?;
    // `ip netns exec` itself, paid by both loops: taken out of the per-step figures.
    let netns = measure(
        w,
        &format!("for i in $(seq {rounds}); do ip netns exec {ns} true; done"),
    )?;
    drop(registry);
    drop(c);

    println!(
        "\nbundle install, {MASTERS} masters + {WORKERS} workers ({steps} step records at --parallel 10, {steps_serial} at --parallel 1), {} cores:\n",
        std::thread::available_parallelism()?.get()
    );
    header("--parallel 10", "--parallel 1");
    row(
        "whole install (push, repo, os, containerd, lb, init, joins, cni, verify)",
        parallel,
        serial,
        "< 1× (hosts in parallel)",
    );
    let per = |m: Measure| (m.wall - netns.wall).max(0.0) / rounds as f64 * 1000.0;
    let (f, x) = (per(fresh), per(muxed));
    println!("\nSSH per step ({rounds} × `ssh m1 true`, `ip netns exec` taken out):\n");
    println!("| connection | per step | ratio |");
    println!("|---|---|---|");
    println!("| fresh connection each time | {f:.1} ms | 1× |");
    println!("| through one ControlMaster | {x:.1} ms | {:.2}× |", x / f);
    println!(
        "\nover the {steps} step records of one install (checks and polls add more round trips): {:.1} s fresh against {:.1} s multiplexed",
        f * steps as f64 / 1000.0,
        x * steps as f64 / 1000.0
    );
    Ok(())
}
