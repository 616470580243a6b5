//! Fake `kubeadm`, `kubectl`, `kubelet` (and `crictl`, in [`cri_tools_spec`]): the
//! Kubernetes test doubles issue 6 allows,
//! shipped as RPMs so that test hosts install them with dnf from the bundle's repo.
//!
//! They are small shell scripts (`assets/fake-*.sh`, each documented in its header) that
//! record their arguments in `/var/log/fake-k8s/calls.log` on the host, check the files
//! they are given, and answer like the real commands for exactly what `bundle install`'s
//! plan runs (see `installer/src/planner.rs`): `kubeadm config images pull`, `kubeadm init
//! --config F --upload-certs` (prints the join commands, writes `admin.conf` and a real
//! CA in `pki/ca.crt`), `kubeadm init phase upload-certs`, `kubeadm token create
//! --print-join-command`, `kubeadm join --config F` (checks the token, CA hash and
//! certificate key against the cluster), `kubeadm reset -f`; `kubectl get nodes`,
//! `apply --server-side -f`, `rollout status daemonset/…`, `exec etcd-… -- etcdctl member
//! list` and `endpoint health [--cluster]`. Masters run a fake API server on :6443
//! (`assets/fake-apiserver.py`, started by the fake kubeadm like a static pod) answering
//! `/readyz` over TLS, for haproxy's health checks and the VIP checks.
//!
//! The cluster's state lives in `/var/lib/fake-k8s-shared`, a folder the testbed
//! bind-mounts into every host ([`crate::real::hosts::TestCluster::shared_dir`]):
//! joining hosts register there and the fake kubectl on any master reads it. Its `calls.log` has the
//! kubeadm and kubectl calls of every host in one order (`HOST kubeadm ARGS`), and a
//! number N in its `etcd-unstarted-lists` has a joining master's etcd member listed
//! `unstarted` by the first N `etcdctl member list` answers, so that a test sees an
//! install wait for it.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use bundle_testbed::doubles::kube_fakes;
//! let tmp = tempfile::tempdir()?;
//! let rpms = kube_fakes::build_rpms(tmp.path(), &tmp.path().join("repo"),
//!     kube_fakes::VERSION, kube_fakes::RELEASE)?;
//! bundle_testbed::real::rpms::createrepo(&tmp.path().join("repo"))?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::real::rpms::RpmSpec;

/// The Kubernetes version the fakes claim by default (the default manifest's).
pub const VERSION: &str = "1.29.2";
/// The RPM release of the default fakes (as pkgs.k8s.io names it).
pub const RELEASE: &str = "150500.1.1";

const KUBEADM: &str = include_str!("../../assets/fake-kubeadm.sh");
const KUBECTL: &str = include_str!("../../assets/fake-kubectl.sh");
const KUBELET: &str = include_str!("../../assets/fake-kubelet.sh");
const APISERVER: &str = include_str!("../../assets/fake-apiserver.py");
const CRICTL: &str = include_str!("../../assets/fake-crictl.sh");

/// The version of the fake `cri-tools` (as pkgs.k8s.io ships it beside 1.29).
pub const CRI_TOOLS_VERSION: &str = "1.29.0";

/// Where the fakes record their calls on a host.
pub const CALLS_LOG: &str = "/var/log/fake-k8s/calls.log";
/// Where the fake kubeadm copies each `--config` file (`<subcommand>-<file name>`).
pub const CONFIGS_DIR: &str = "/var/log/fake-k8s/configs";
/// Where the fake kubectl copies each applied manifest.
pub const APPLIED_DIR: &str = "/var/log/fake-k8s/applied";

/// The fakes' files for `version`: (absolute path on the host, content), all mode 0755.
pub fn scripts(version: &str) -> Vec<(&'static str, String)> {
    let v = |s: &str| s.replace("@VERSION@", version);
    vec![
        ("/usr/bin/kubeadm", v(KUBEADM)),
        ("/usr/libexec/fake-k8s/apiserver.py", APISERVER.to_string()),
        ("/usr/bin/kubectl", v(KUBECTL)),
        ("/usr/bin/kubelet", v(KUBELET)),
    ]
}

/// The three packages: `kubeadm` (with the fake API server), `kubectl`, `kubelet`, at
/// `version-release` for x86_64, with no requirements (add some with
/// [`RpmSpec::requires`] to mirror upstream's) and their files.
pub fn rpm_specs(version: &str, release: &str) -> Vec<(RpmSpec, Vec<(&'static str, String)>)> {
    let files = scripts(version);
    let vr = format!("{version}-{release}");
    let pick = |paths: &[&str]| -> Vec<(&'static str, String)> {
        files
            .iter()
            .filter(|(p, _)| paths.contains(p))
            .cloned()
            .collect()
    };
    vec![
        (
            RpmSpec::new("kubeadm", &vr, "x86_64"),
            pick(&["/usr/bin/kubeadm", "/usr/libexec/fake-k8s/apiserver.py"]),
        ),
        (
            RpmSpec::new("kubectl", &vr, "x86_64"),
            pick(&["/usr/bin/kubectl"]),
        ),
        (
            RpmSpec::new("kubelet", &vr, "x86_64"),
            pick(&["/usr/bin/kubelet"]),
        ),
    ]
}

/// The fake `cri-tools` package (`/usr/bin/crictl`, `assets/fake-crictl.sh`): records
/// its calls and answers `info`, `pull` (fetching the manifest from the registry with
/// containerd's CA), `inspecti`, `images`, `ps`, `stop`.
pub fn cri_tools_spec(release: &str) -> (RpmSpec, Vec<(&'static str, String)>) {
    (
        RpmSpec::new(
            "cri-tools",
            &format!("{CRI_TOOLS_VERSION}-{release}"),
            "x86_64",
        ),
        vec![("/usr/bin/crictl", CRICTL.to_string())],
    )
}

/// Builds the fake `cri-tools` RPM into `out_dir` (scratch under `work`).
pub fn build_cri_tools_rpm(work: &Path, out_dir: &Path, release: &str) -> Result<PathBuf> {
    let (spec, files) = cri_tools_spec(release);
    build_with_files(&spec, &files, work, out_dir)
}

/// Builds the three fake RPMs into `out_dir` (scratch under `work`); returns their paths.
pub fn build_rpms(
    work: &Path,
    out_dir: &Path,
    version: &str,
    release: &str,
) -> Result<Vec<PathBuf>> {
    rpm_specs(version, release)
        .iter()
        .map(|(spec, files)| build_with_files(spec, files, work, out_dir))
        .collect()
}

/// Builds `spec` as an RPM whose files have the given contents (mode 0755, root-owned),
/// besides `/usr/share/<name>/README`.
///
/// [`RpmSpec::build`] writes one line of text into each file, which cannot carry a
/// script; this builds from the same [`RpmSpec`] with `rpmbuild`, taking the files as
/// `SourceN` (so their text is never macro-expanded).
pub fn build_with_files(
    spec: &RpmSpec,
    files: &[(&str, String)],
    work: &Path,
    out_dir: &Path,
) -> Result<PathBuf> {
    let top = spec.build_dir(work);
    let sources = top.join("SOURCES");
    std::fs::create_dir_all(&sources)?;
    let mut text = spec.preamble(&format!(
        "fake {} for bundle's tests (bundle-testbed)",
        spec.name
    ));
    for (i, (_, body)) in files.iter().enumerate() {
        let src = format!("source{i}");
        std::fs::write(sources.join(&src), body)?;
        text.push_str(&format!("Source{i}: {src}\n"));
    }
    text.push_str(
        "%description\nA test double built by bundle-testbed: not for real machines.\n%install\n",
    );
    text.push_str(&format!(
        "mkdir -p %{{buildroot}}/usr/share/{n}\necho 'fake {n} (bundle-testbed)' > %{{buildroot}}/usr/share/{n}/README\n",
        n = spec.name
    ));
    for (i, (path, _)) in files.iter().enumerate() {
        text.push_str(&format!(
            "install -D -m 0755 %{{SOURCE{i}}} %{{buildroot}}{path}\n"
        ));
    }
    text.push_str("%files\n");
    text.push_str(&format!("/usr/share/{}/README\n", spec.name));
    for (path, _) in files {
        text.push_str(&format!("%attr(0755, root, root) {path}\n"));
    }
    spec.rpmbuild(&top, &text, work, out_dir)
}

/// Starts the fake API server (`assets/fake-apiserver.py`) on `:6443` of `host`, as the
/// fake `kubeadm init` does, for tests that run no fake kubeadm but wait for the API
/// server's `/readyz` (a restore of the real etcd); returns once it answers. Its
/// certificate is a throwaway self-signed one; it ends with the host.
pub fn start_apiserver(c: &crate::real::hosts::TestCluster, host: &str) -> Result<()> {
    let script = format!(
        "set -e; mkdir -p /usr/libexec/fake-k8s /var/log/fake-k8s /run/bundle-testbed; cd /usr/libexec/fake-k8s
printf '%s' '{}' > apiserver.py
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.crt 2>/dev/null
setsid python3 apiserver.py 6443 apiserver.crt apiserver.key {VERSION} < /dev/null >> /var/log/fake-k8s/apiserver.log 2>&1 &
echo $! > /run/bundle-testbed/apiserver.pid
for i in $(seq 100); do curl -ksf -o /dev/null --max-time 1 https://127.0.0.1:6443/readyz && exit 0; sleep 0.1; done
echo 'the fake API server did not start' >&2; exit 1",
        APISERVER.replace('\'', "'\\''")
    );
    let out = c.run_in_host(host, &script);
    if !out.status.success() {
        anyhow::bail!(
            "on `{host}`: the fake API server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
