//! The site the install and upgrade benchmarks run on: bundles built from synthetic
//! upstreams (the fake Kubernetes RPMs and README-only stand-ins of `bundle-testbed`),
//! and bundle-testbed hosts (3 masters + 6 workers) with a TLS registry in the deploy
//! namespace and an inventory for them. Needs root (namespaces).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use bundle_testbed::fixtures::packages;
use bundle_testbed::fixtures::releases::{self, Release};
use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};
use bundle_testbed::real::registry::{test_tls, RegistryOptions};
use bundle_testbed::Registry;

/// Masters of the benchmark cluster.
pub const MASTERS: usize = 3;
/// Workers of the benchmark cluster.
pub const WORKERS: usize = 6;
const REGISTRY_PORT: u16 = 5000;
const REPO_PORT: u16 = 8081;

/// What the install benchmark installs (and the upgrade benchmark starts from).
pub const INSTALLED: Release = Release {
    name: "bench",
    version: "1.29.2-1",
    kubernetes: "1.29.2",
    stand_ins: packages::STAND_INS,
    calico_suffix: "",
    output: "e2e.tar.zst",
    key: "builder",
};

/// The next minor, which the upgrade benchmark goes to.
pub const NEXT: Release = Release {
    name: "bench",
    version: "1.30.1-1",
    kubernetes: "1.30.1",
    stand_ins: packages::NEXT_STAND_INS,
    calico_suffix: "",
    output: "next.tar.zst",
    key: "builder",
};

/// `sh -c script` in `dir`; its standard output, or an error with both outputs.
pub fn sh(dir: &Path, script: &str) -> anyhow::Result<String> {
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

/// Builds `r`'s bundle (x86_64 only) into `work` with `bundle` (the key pair
/// `builder` made once).
pub fn build_bundle(bundle: &str, work: &Path, r: &Release) -> anyhow::Result<()> {
    releases::build(Path::new(bundle), work, r, &["x86_64"])
}

/// Fresh test hosts, a TLS registry in the deploy namespace and `cluster.yaml` for
/// them in the folder returned (under `work`, named by `tag`).
pub fn start_site(work: &Path, tag: &str) -> anyhow::Result<(TestCluster, Registry, PathBuf)> {
    let c = TestCluster::start(&ClusterSpec {
        masters: MASTERS,
        workers: WORKERS,
        kube_fakes: false,
    })?;
    let run = work.join(tag);
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
    for (h, role) in c
        .masters()
        .map(|h| (h, "master"))
        .chain(c.workers().map(|h| (h, "worker")))
    {
        hosts.push_str(&format!(
            "    - {{name: {}, address: {}, roles: [{role}]}}\n",
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
    Ok((c, registry, run))
}

/// `bundle ARGS` as the operator runs it in the deploy namespace, from `run`.
pub fn bundle_command(bundle: &str, c: &TestCluster, run: &Path, args: &str) -> String {
    format!(
        "HOME={r}/home XDG_CONFIG_HOME={r}/config XDG_CACHE_HOME={r}/cache NO_COLOR=1 \
         ip netns exec {ns} {bundle} -q {args} </dev/null",
        r = run.display(),
        ns = c.deploy_netns(),
    )
}
