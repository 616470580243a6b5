//! The site the install and upgrade benchmarks run on: bundles built from synthetic
//! upstreams (the fake Kubernetes RPMs and README-only stand-ins of `bundle-testbed`),
//! and bundle-testbed hosts (3 masters + 6 workers) with a TLS registry in the deploy
//! namespace and an inventory for them. Needs root (namespaces).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use bundle_testbed::fixtures::{images, packages};
use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};
use bundle_testbed::real::registry::{test_tls, RegistryOptions};
use bundle_testbed::real::rpms::RepoServer;
use bundle_testbed::{FileServer, Registry};

const CALICO: &str = include_str!("../../installer/tests/fixtures/calico.yaml");
/// Masters of the benchmark cluster.
pub const MASTERS: usize = 3;
/// Workers of the benchmark cluster.
pub const WORKERS: usize = 6;
const REGISTRY_PORT: u16 = 5000;
const REPO_PORT: u16 = 8081;

/// A release to build a bundle of.
pub struct Release {
    /// The bundle's version (`1.29.2-1`).
    pub version: &'static str,
    /// Kubernetes, without the `v`.
    pub kubernetes: &'static str,
    /// The stand-in packages at their versions.
    pub stand_ins: &'static [(&'static str, &'static str)],
    /// The bundle's file in the work folder.
    pub output: &'static str,
}

/// What the install benchmark installs (and the upgrade benchmark starts from).
pub const INSTALLED: Release = Release {
    version: "1.29.2-1",
    kubernetes: "1.29.2",
    stand_ins: packages::STAND_INS,
    output: "e2e.tar.zst",
};

/// The next minor, which the upgrade benchmark goes to.
pub const NEXT: Release = Release {
    version: "1.30.1-1",
    kubernetes: "1.30.1",
    stand_ins: packages::NEXT_STAND_INS,
    output: "next.tar.zst",
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

/// Builds `r`'s bundle into `work` with `bundle` (the key pair `builder` made once).
pub fn build_bundle(bundle: &str, work: &Path, r: &Release) -> anyhow::Result<()> {
    let scratch = work.join(format!("upstream-{}", r.version));
    let upstream = Registry::start()?;
    let v = format!("v{}", r.kubernetes);
    for img in images::manifest_images_at(&v, 1) {
        images::seed(&upstream.addr, &img, &scratch)?;
    }
    let files = FileServer::start()?;
    files.put("calico.yaml", CALICO.as_bytes());
    std::fs::write(work.join("calico.yaml"), CALICO)?;
    let calico_sha = sh(work, "sha256sum calico.yaml | cut -d' ' -f1")?;

    let repo = scratch.join("repo");
    packages::build_install_repo_at(&scratch.join("rpm-work"), &repo, r.kubernetes, r.stand_ins)?;
    let rpms = RepoServer::serve(&repo)?;

    let packages = packages::install_packages_at(r.kubernetes);
    let images: String = images::default_images_at(&v)
        .iter()
        .map(|i| format!("    - {i}\n"))
        .collect();
    std::fs::write(
        work.join("manifest.yaml"),
        format!(
            "apiVersion: bundle/v1alpha1\nkind: BundleManifest\nmetadata:\n  name: bench\n  version: {}\nspec:\n  kubernetesVersion: {v}\n  cni: {{name: calico, manifest: calico.yaml}}\n  platforms: [linux/amd64]\n  images:\n{images}  files:\n    - name: calico.yaml\n      url: {}/calico.yaml\n      sha256: {}\n  rpms:\n    - target: el9-x86_64\n      releasever: \"9\"\n      arch: x86_64\n      repos:\n        - {{name: test, baseurl: '{}/'}}\n      packages: [{}]\n",
            r.version,
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
    if !work.join("builder.key").exists() {
        sh(
            work,
            &format!("{env} {bundle} -q keygen --unencrypted --output builder"),
        )?;
    }
    sh(work, &format!("{env} {bundle} -q build --manifest manifest.yaml --key builder.key --plain-http {addr} --mirror registry.k8s.io={addr} --mirror docker.io={addr} --output {}", r.output))?;
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
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
