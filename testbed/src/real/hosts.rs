//! Test hosts: a small cluster of isolated "machines" built from Linux namespaces, each
//! with its own network, hostname, PID space and root file system, reachable over real
//! SSH from a "deploy" node. `bundle install` runs against them as against real hosts.
//!
//! Per host ([`Host`]): a network namespace with `eth0` on a bridge (the bridge lives in a
//! namespace of its own), then `unshare --mount --uts --pid --fork --kill-child` running
//! `assets/host-setup.sh`: an overlay of the machine's own root (lower `/`, upper and work
//! dirs in the cluster's temp folder), proc, `/dev`, a tmpfs `/run`, a read-only sysfs
//! with a per-host `product_uuid`, a RHEL-like `/etc/os-release` (Rocky 9), its own
//! hostname, and sshd (throwaway host key, the cluster's test key authorized, root login by
//! key, `UsePAM no`, `StrictModes no`). The machine's network, `/etc` and processes are
//! never touched: addresses in 10.77.0.0/24 exist only inside the cluster's namespaces.
//!
//! The deploy node is a network namespace on the same bridge (no private root: it runs
//! the machine's programs, e.g. the `bundle` binary, with [`TestCluster::run_in_deploy`]).
//!
//! Test doubles installed into every host (and only these, as issue 6 allows): the
//! `systemctl` double, the `modprobe` and `swapoff` doubles (both in
//! [`crate::doubles::host_tools`]: hosts share the machine's kernel, so loading modules
//! or turning swap off from a host would act on the machine), and, when
//! [`ClusterSpec::kube_fakes`] is set, the fake `kubeadm`, `kubectl` and `kubelet` of
//! [`crate::doubles::kube_fakes`] (which are otherwise installed from their RPMs). The
//! folder `/var/lib/fake-k8s-shared` is bind-mounted into every host from
//! [`TestCluster::shared_dir`]: the fakes' node registry.
//!
//! Cleanup: `Drop` kills every process in the cluster's namespaces (the host PID
//! namespaces end with their init; the deploy namespace's processes are listed with
//! `ip netns pids`), then deletes the namespaces (which deletes veths and the bridge) and
//! the temp folder. Mounts exist only inside the hosts' mount namespaces and go with
//! them. Namespaces are named `bt<pid>c<n>…`; [`TestCluster::start`] first removes
//! namespaces left by a crashed test process (one whose PID no longer exists).
//!
//! Needs root and: iproute2, util-linux (unshare, nsenter), openssh-server and -client,
//! and for the doubles and tests haproxy, keepalived, dnf, createrepo-c, rpm, openssl,
//! python3.
//!
//! ```no_run
//! use bundle_testbed::real::hosts::{ClusterSpec, TestCluster};
//! let cluster = TestCluster::start(&ClusterSpec { masters: 3, workers: 2, ..Default::default() })?;
//! let m1 = cluster.host("m1");
//! let out = cluster.run_in_deploy(&format!(
//!     "ssh -F {} {} hostname", cluster.ssh_config().display(), m1.address));
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "m1");
//! # anyhow::Ok(())
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::doubles::host_tools::{FAKE_KERNEL_TOOL, FAKE_SYSTEMCTL, KERNEL_TOOL_DOUBLES};
use crate::doubles::kube_fakes;

const HOST_SETUP: &str = include_str!("../../assets/host-setup.sh");
const HOST_INIT: &str = include_str!("../../assets/host-init.sh");

/// The cluster's subnet (inside its own namespaces only).
pub const SUBNET: &str = "10.77.0.0/24";
/// Prefix length of [`SUBNET`].
pub const PREFIX_LEN: u8 = 24;
/// Where the shared folder of the fake-k8s doubles is mounted in every host.
pub const SHARED_MOUNT: &str = "/var/lib/fake-k8s-shared";

const OS_RELEASE: &str = r#"NAME="Rocky Linux"
VERSION="9.3 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.3"
"#;

static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// What to build.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Number of masters (`m1`, `m2`, …; addresses 10.77.0.11 upwards).
    pub masters: usize,
    /// Number of workers (`w1`, `w2`, …; addresses after the masters').
    pub workers: usize,
    /// Write the fake `kubeadm`, `kubectl` and `kubelet` straight into every host's
    /// `/usr/bin` (for tests that do not install them with dnf from their RPMs).
    pub kube_fakes: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            masters: 3,
            workers: 2,
            kube_fakes: false,
        }
    }
}

/// A host's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Control plane.
    Master,
    /// Worker.
    Worker,
}

/// One test host.
#[derive(Debug)]
pub struct Host {
    /// Host name (its hostname and its `ssh_config` alias): `m1`, `w1`, …
    pub name: String,
    /// Its address on `eth0`.
    pub address: Ipv4Addr,
    /// Master or worker.
    pub role: Role,
    /// Its network namespace.
    pub netns: String,
    /// Its folder: `up/` (what it wrote), `work/`, `root/` (mount point), `console.log`.
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Host {
    /// The interface its address (and a VIP) lives on.
    pub fn interface(&self) -> &'static str {
        "eth0"
    }
}

/// A running cluster of test hosts; everything is removed on drop.
pub struct TestCluster {
    prefix: String,
    dir: tempfile::TempDir,
    hosts: Vec<Host>,
    bridge_ns: String,
    deploy_ns: String,
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<Output> {
    run(Command::new("ip").args(args))
}

/// Fails with a clear message when a prerequisite of the test hosts is missing.
pub fn check_prerequisites() -> Result<()> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        bail!(
            "the test hosts need root (network, mount and PID namespaces); run the tests as root"
        );
    }
    let tools = [
        ("/usr/sbin/ip", "iproute2"),
        ("/usr/bin/unshare", "util-linux"),
        ("/usr/bin/nsenter", "util-linux"),
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/ssh", "openssh-client"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
        ("/usr/bin/openssl", "openssl"),
        ("/usr/bin/python3", "python3"),
    ];
    let missing: Vec<String> = tools
        .iter()
        .filter(|(p, _)| !Path::new(p).exists() && which(p).is_none())
        .map(|(p, pkg)| format!("{p} (apt-get install -y {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!("the test hosts need: {}", missing.join(", "));
    }
    Ok(())
}

fn which(path: &str) -> Option<PathBuf> {
    let name = Path::new(path).file_name()?;
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.exists())
    })
}

/// Kills `pid` with SIGKILL (it is one of ours: see the callers).
fn kill9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; it is gone as far as we are concerned.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// PIDs of the processes in network namespace `ns` (as seen from the machine).
pub fn netns_pids(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process of network namespace `ns` (all started by a test cluster) and
/// deletes it, which also deletes its interfaces.
fn remove_netns(ns: &str) {
    if !netns_exists(ns) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<u32> = netns_pids(ns).into_iter().filter(|p| alive(*p)).collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for p in pids {
            kill9(p);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// Removes the namespaces of test clusters whose process no longer exists (a crashed or
/// killed test run), and any namespace with `prefix` (a reused PID).
fn remove_stale(prefix: &str) {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("bt") else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('c') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let owner_gone = !Path::new(&format!("/proc/{pid}")).exists();
        if owner_gone || name.starts_with(prefix) {
            remove_netns(&name);
        }
    }
}

impl TestCluster {
    /// Builds the bridge, the deploy node and the hosts, and waits until every sshd
    /// listens. Fails (after cleaning up) when a prerequisite is missing or a host does
    /// not come up, with the host's console output.
    pub fn start(spec: &ClusterSpec) -> Result<Self> {
        check_prerequisites()?;
        if spec.masters + spec.workers == 0 || spec.masters + spec.workers > 80 {
            bail!("a test cluster has 1 to 80 hosts");
        }
        let n = CLUSTERS.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("bt{}c{n}", std::process::id());
        remove_stale(&format!("{prefix}h"));
        remove_stale(&format!("{prefix}d"));
        remove_stale(&format!("{prefix}br"));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()?;
        let mut hosts = Vec::new();
        let roles = std::iter::repeat_n(Role::Master, spec.masters)
            .chain(std::iter::repeat_n(Role::Worker, spec.workers));
        let (mut mi, mut wi) = (0, 0);
        for (i, role) in roles.enumerate() {
            let name = match role {
                Role::Master => {
                    mi += 1;
                    format!("m{mi}")
                }
                Role::Worker => {
                    wi += 1;
                    format!("w{wi}")
                }
            };
            hosts.push(Host {
                netns: format!("{prefix}h{}", i + 1),
                address: Ipv4Addr::new(10, 77, 0, 11 + i as u8),
                dir: dir.path().join(&name),
                name,
                role,
                child: None,
            });
        }
        let mut cluster = TestCluster {
            bridge_ns: format!("{prefix}br"),
            deploy_ns: format!("{prefix}d"),
            prefix,
            dir,
            hosts,
        };
        // On failure, Drop removes what was built so far.
        cluster.build(spec)?;
        Ok(cluster)
    }

    fn build(&mut self, spec: &ClusterSpec) -> Result<()> {
        let d = self.dir.path().to_path_buf();
        std::fs::create_dir_all(d.join("shared"))?;
        std::fs::create_dir_all(d.join("ssh"))?;
        // The network: a bridge in its own namespace, one veth per node.
        ip(&["netns", "add", &self.bridge_ns])?;
        let br = self.bridge_ns.clone();
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        let mut nodes: Vec<(String, Ipv4Addr)> =
            vec![(self.deploy_ns.clone(), self.deploy_address())];
        nodes.extend(self.hosts.iter().map(|h| (h.netns.clone(), h.address)));
        for (i, (ns, addr)) in nodes.iter().enumerate() {
            ip(&["netns", "add", ns])?;
            let port = format!("v{i}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/{PREFIX_LEN}"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        // The test key, host keys, known_hosts and ssh_config.
        let key = self.identity_file();
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "bundle-testbed",
                "-f",
            ])
            .arg(&key))?;
        let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
        let mut known_hosts = String::new();
        let mut ssh_config = format!(
            "# bundle-testbed: the test hosts, reached from the deploy namespace.\n\
             Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  UpdateHostKeys no\n  BatchMode yes\n  ConnectTimeout 5\n",
            key = key.display(),
            kh = self.known_hosts().display()
        );
        for h in &self.hosts {
            let up = h.dir.join("up");
            for sub in ["work", "root"] {
                std::fs::create_dir_all(h.dir.join(sub))?;
            }
            let sshdir = up.join("etc/ssh/bundle-testbed");
            std::fs::create_dir_all(&sshdir)?;
            let hostkey = sshdir.join("ssh_host_ed25519_key");
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", &h.name, "-f"])
                .arg(&hostkey))?;
            let hostpub = std::fs::read_to_string(hostkey.with_extension("pub"))?;
            let mut parts = hostpub.split_whitespace();
            let (kt, kb) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            known_hosts.push_str(&format!("{},{} {kt} {kb}\n", h.name, h.address));
            ssh_config.push_str(&format!("\nHost {}\n  HostName {}\n", h.name, h.address));
            std::fs::write(sshdir.join("authorized_keys"), &pubkey)?;
            std::fs::write(
                sshdir.join("sshd_config"),
                format!(
                    "# bundle-testbed sshd for test host {name}\n\
                     Port 22\nListenAddress 0.0.0.0\n\
                     HostKey /etc/ssh/bundle-testbed/ssh_host_ed25519_key\n\
                     AuthorizedKeysFile /etc/ssh/bundle-testbed/authorized_keys\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     PidFile /run/sshd.pid\nSubsystem sftp internal-sftp\n\
                     MaxSessions 50\nMaxStartups 50:30:100\nLogLevel VERBOSE\n",
                    name = h.name
                ),
            )?;
            let etc = up.join("etc");
            std::fs::write(etc.join("os-release"), OS_RELEASE)?;
            std::fs::write(etc.join("hostname"), format!("{}\n", h.name))?;
            std::fs::write(
                etc.join("hosts"),
                format!(
                    "127.0.0.1 localhost\n::1 localhost\n{} {}\n",
                    h.address, h.name
                ),
            )?;
            std::fs::write(etc.join("machine-id"), format!("{}\n", random_hex(16)))?;
            // As on EL: dnf knows the release, rpm keeps its database in /var/lib/rpm
            // (Debian's rpm would use ~/.rpmdb).
            std::fs::create_dir_all(etc.join("dnf/vars"))?;
            std::fs::create_dir_all(etc.join("yum.repos.d"))?;
            std::fs::write(etc.join("dnf/vars/releasever"), "9\n")?;
            std::fs::create_dir_all(up.join("root"))?;
            std::fs::set_permissions(
                up.join("root"),
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )?;
            std::fs::write(up.join("root/.rpmmacros"), "%_dbpath /var/lib/rpm\n")?;
            std::fs::write(h.dir.join("product_uuid"), format!("{}\n", uuid()))?;
            let lib = up.join("usr/local/lib/bundle-testbed");
            write_exec(&lib.join("init"), HOST_INIT)?;
            // The systemctl double, first on PATH and over the machine's own.
            write_exec(&up.join("usr/local/bin/systemctl"), FAKE_SYSTEMCTL)?;
            write_exec(&up.join("usr/bin/systemctl"), FAKE_SYSTEMCTL)?;
            // The modprobe and swapoff doubles, over the machine's (hosts share its
            // kernel: see the script's header).
            for tool in KERNEL_TOOL_DOUBLES {
                write_exec(
                    &up.join("usr/sbin").join(tool),
                    &FAKE_KERNEL_TOOL.replace("@TOOL@", tool),
                )?;
            }
            if spec.kube_fakes {
                for (path, body) in kube_fakes::scripts(kube_fakes::VERSION) {
                    write_exec(&up.join(path.trim_start_matches('/')), &body)?;
                }
            }
            write_exec(&h.dir.join("setup.sh"), HOST_SETUP)?;
        }
        std::fs::write(self.known_hosts(), known_hosts)?;
        std::fs::write(self.ssh_config(), ssh_config)?;
        for i in 0..self.hosts.len() {
            self.spawn_host(i)?;
        }
        for i in 0..self.hosts.len() {
            self.wait_sshd(i)?;
        }
        Ok(())
    }

    fn spawn_host(&mut self, i: usize) -> Result<()> {
        let shared = self.shared_dir();
        let h = &mut self.hosts[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(h.dir.join("console.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &h.netns])
            .args([
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "bash",
            ])
            .arg(h.dir.join("setup.sh"))
            .arg(&h.dir)
            .arg(&h.name)
            .arg(&shared)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a test host (ip netns exec … unshare)")?;
        h.child = Some(child);
        Ok(())
    }

    fn wait_sshd(&mut self, i: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = &mut self.hosts[i];
            if let Some(c) = h.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    let log =
                        std::fs::read_to_string(h.dir.join("console.log")).unwrap_or_default();
                    bail!(
                        "test host `{}` ended ({status}) while starting:\n{log}",
                        h.name
                    );
                }
            }
            let out = Command::new("ip")
                .args([
                    "netns", "exec", &h.netns, "ss", "-Htln", "sport", "=", ":22",
                ])
                .output()?;
            if !out.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(h.dir.join("console.log")).unwrap_or_default();
                let sshd =
                    std::fs::read_to_string(h.dir.join("up/var/log/bundle-testbed/sshd.log"))
                        .unwrap_or_default();
                bail!(
                    "sshd of test host `{}` does not listen after 20 s\nconsole:\n{log}\nsshd.log:\n{sshd}",
                    h.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// All hosts, masters first.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The masters.
    pub fn masters(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Master)
    }

    /// The workers.
    pub fn workers(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Worker)
    }

    /// The host called `name` (panics if there is none: a test bug).
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host `{name}`"))
    }

    fn index(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host `{name}`"))
    }

    /// The deploy node's address (10.77.0.2).
    pub fn deploy_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 2)
    }

    /// A free address for the keepalived VIP (10.77.0.100).
    pub fn vip(&self) -> Ipv4Addr {
        self.free_address(0)
    }

    /// The `i`-th address no node uses (10.77.0.100 + i, i < 100).
    pub fn free_address(&self, i: u8) -> Ipv4Addr {
        assert!(i < 100, "10.77.0.100 to .199 are free");
        Ipv4Addr::new(10, 77, 0, 100 + i)
    }

    /// The prefix of every namespace of this cluster (`bt<pid>c<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The cluster's temp folder (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The private key every host authorizes for root.
    pub fn identity_file(&self) -> PathBuf {
        self.dir.path().join("ssh/id_ed25519")
    }

    /// A known_hosts file with every host's real key, by name and address.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("ssh/known_hosts")
    }

    /// An ssh_config for `ssh -F`: user root, the test key, [`Self::known_hosts`] with
    /// strict checking, batch mode; hosts reachable by name or address.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh/config")
    }

    /// Folder bind-mounted at `/var/lib/fake-k8s-shared` in every host (the fakes' node
    /// registry: `nodes`, `etcd-members`, the CA, tokens, the certificate key; `calls.log`,
    /// every kubeadm and kubectl call of every host in order, `HOST kubeadm ARGS`; write
    /// a number to `etcd-unstarted-lists` to have joining masters' etcd members listed
    /// `unstarted` by that many `etcdctl member list` answers).
    pub fn shared_dir(&self) -> PathBuf {
        self.dir.path().join("shared")
    }

    /// The deploy node's network namespace.
    pub fn deploy_netns(&self) -> &str {
        &self.deploy_ns
    }

    /// The network namespaces of this cluster: bridge, deploy node, hosts.
    pub fn netns_names(&self) -> Vec<String> {
        let mut v = vec![self.bridge_ns.clone(), self.deploy_ns.clone()];
        v.extend(self.hosts.iter().map(|h| h.netns.clone()));
        v
    }

    /// A command that runs `program` in the deploy namespace (the machine's file system).
    pub fn deploy_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.deploy_ns]).arg(program);
        c
    }

    /// Runs `sh -c script` in the deploy namespace.
    pub fn run_in_deploy(&self, script: &str) -> Output {
        self.deploy_command("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("running ip netns exec")
    }

    /// Runs `sh -c script` on `host` over SSH from the deploy node, with
    /// [`Self::ssh_config`] (strict host keys, the test key).
    pub fn ssh(&self, host: &str, script: &str) -> Output {
        self.deploy_command("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .arg(host)
            .arg("--")
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("running ssh")
    }

    /// Makes `host` stand in for an arm64 machine: the `uname` double of
    /// [`crate::doubles::host_tools::FAKE_UNAME_AARCH64`] first on `PATH`, and dnf told
    /// the architecture is `aarch64` (`arch=`), installing such packages on the
    /// machine's x86_64 (`ignorearch=`), which it refuses otherwise. The packages' payloads
    /// are scripts and text, so they run all the same.
    pub fn pose_as_aarch64(&self, host: &str) -> Result<()> {
        let script = format!(
            "cat > /usr/local/bin/uname <<'UNAME'\n{}UNAME\nchmod 0755 /usr/local/bin/uname && printf 'arch=aarch64\\nignorearch=True\\n' >> /etc/dnf/dnf.conf && [ \"$(uname -m)\" = aarch64 ]",
            crate::doubles::host_tools::FAKE_UNAME_AARCH64
        );
        let out = self.run_in_host(host, &script);
        if !out.status.success() {
            bail!(
                "making `{host}` an arm64 stand-in: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Runs `sh -c script` directly inside `host` (its namespaces and root), without SSH:
    /// for checks and set-up that must not depend on sshd.
    pub fn run_in_host(&self, host: &str, script: &str) -> Output {
        let h = &self.hosts[self.index(host)];
        let Some(init) = h.child.as_ref().and_then(|c| init_pid(c.id())) else {
            panic!("test host `{host}` is not running");
        };
        Command::new("nsenter")
            .args(["-t", &init.to_string(), "-m", "-u", "-p", "-n", "-r", "-w"])
            .args(["/bin/sh", "-c", script])
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .output()
            .expect("running nsenter")
    }

    /// Where `path` written by `host` lands on the machine: its overlay's upper dir.
    /// Files the host did not write (or deleted: a whiteout) are not there; use
    /// [`Self::read_host_file`] for the host's merged view.
    pub fn host_path(&self, host: &str, path: &str) -> PathBuf {
        self.hosts[self.index(host)]
            .dir
            .join("up")
            .join(path.trim_start_matches('/'))
    }

    /// Reads `path` as `host` sees it (from its upper dir, else the machine's file).
    pub fn read_host_file(&self, host: &str, path: &str) -> Result<String> {
        let p = self.host_path(host, path);
        let real = Path::new(path);
        let from = if p.exists() || p.is_symlink() {
            p
        } else {
            real.to_path_buf()
        };
        std::fs::read_to_string(&from)
            .with_context(|| format!("reading `{path}` of test host `{host}`"))
    }

    /// Ends every process of `host` (a power cut): its sshd, daemons and sessions. Its
    /// `eth0` goes down and loses every address (so a VIP does not linger). Files stay.
    pub fn stop_host(&mut self, host: &str) -> Result<()> {
        let i = self.index(host);
        let h = &mut self.hosts[i];
        if let Some(mut c) = h.child.take() {
            let init = init_pid(c.id());
            let _ = c.kill();
            let _ = c.wait();
            if let Some(p) = init {
                wait_gone(p, Duration::from_secs(10))?;
            }
        }
        let pids: Vec<u32> = netns_pids(&h.netns);
        for p in pids {
            kill9(p);
        }
        ip(&["-n", &h.netns, "addr", "flush", "dev", "eth0"])?;
        ip(&["-n", &h.netns, "link", "set", "eth0", "down"])?;
        Ok(())
    }

    /// Boots `host` again after [`Self::stop_host`]: same files (the overlay's upper dir),
    /// an empty /run, sshd only (nothing else restarts by itself).
    pub fn start_host(&mut self, host: &str) -> Result<()> {
        let i = self.index(host);
        let (ns, addr) = (self.hosts[i].netns.clone(), self.hosts[i].address);
        if self.hosts[i].child.is_some() {
            bail!("test host `{host}` is running");
        }
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/{PREFIX_LEN}"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        self.spawn_host(i)?;
        self.wait_sshd(i)
    }

    /// Stops only `host`'s sshd (the host keeps running: an unreachable host).
    pub fn stop_sshd(&self, host: &str) -> Result<()> {
        let out = self.run_in_host(
            host,
            "kill $(cat /run/bundle-testbed/sshd.pid) && while [ -e /run/sshd.pid ] && kill -0 $(cat /run/bundle-testbed/sshd.pid) 2>/dev/null; do sleep 0.05; done",
        );
        if !out.status.success() {
            bail!(
                "stopping sshd on `{host}`: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts `host`'s sshd again after [`Self::stop_sshd`].
    pub fn start_sshd(&mut self, host: &str) -> Result<()> {
        let out = self.run_in_host(
            host,
            "rm -f /run/sshd.pid; setsid /usr/sbin/sshd -D -f /etc/ssh/bundle-testbed/sshd_config -E /var/log/bundle-testbed/sshd.log </dev/null >/dev/null 2>&1 & echo $! >/run/bundle-testbed/sshd.pid",
        );
        if !out.status.success() {
            bail!(
                "starting sshd on `{host}`: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let i = self.index(host);
        self.wait_sshd(i)
    }

    /// Every process now running in the cluster's namespaces (machine PIDs).
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .netns_names()
            .iter()
            .flat_map(|ns| netns_pids(ns))
            .collect();
        v.extend(
            self.hosts
                .iter()
                .filter_map(|h| h.child.as_ref().map(|c| c.id())),
        );
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The PID (on the machine) of the host's init: the child `unshare --fork` made.
fn init_pid(unshare: u32) -> Option<u32> {
    // `ip netns exec` execs unshare, so the spawned PID is unshare's.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if !alive(unshare) {
            return None;
        }
        let children =
            std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
        if let Some(p) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            return Some(p);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(pid: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            bail!("process {pid} of a test host did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn write_exec(path: &Path, body: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, body).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}

fn uuid() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Hosts: killing unshare ends the host's init (--kill-child), and with it every
        // process of its PID namespace.
        for h in &mut self.hosts {
            if let Some(mut c) = h.child.take() {
                let init = init_pid(c.id());
                let _ = c.kill();
                let _ = c.wait();
                if let Some(p) = init {
                    let _ = wait_gone(p, Duration::from_secs(10));
                }
            }
        }
        // Then whatever is left in our namespaces (the deploy node's processes, ssh
        // ControlMasters, servers a test started there), and the namespaces themselves.
        for ns in self.netns_names().iter().rev() {
            remove_netns(ns);
        }
    }
}
