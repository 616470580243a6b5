//! `plan()`: the pure function from a validated cluster and a bundle's facts to a
//! [`Plan`]. No I/O, no SSH, no clock, no randomness: the same input gives the same
//! plan, byte for byte.

use std::collections::BTreeSet;

use bundle_format::ImageReference;

use crate::facts::{BundleFacts, RpmRepoFacts};
use crate::inventory::{Cluster, Node, RESERVED_PORTS};
use crate::plan::{
    HostStep, HostSteps, OnFailure, Phase, PhaseName, Plan, PlanHost, Step, PLAN_VERSION,
};
use crate::render::{self, containerd, haproxy, keepalived, kubeadm, os, repo};
use crate::secrets::CA_CERT_HASH;
use crate::Problem;

/// Inputs to planning besides the cluster and the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanInputs {
    /// The registry's CA certificate (PEM), from `spec.registry.caFile`.
    pub registry_ca: Option<String>,
    /// Warnings from validation (non-HA control plane with `--force`), for the notes.
    pub warnings: Vec<Problem>,
}

/// Packages every node gets, when the bundle carries them.
pub const NODE_PACKAGES: &[&str] = &[
    "kubeadm",
    "kubelet",
    "kubectl",
    "cri-tools",
    "kubernetes-cni",
    "containerd.io",
    "containerd",
    "runc",
    "ipvsadm",
    "ipset",
    "conntrack-tools",
    "socat",
    "iproute-tc",
];
/// Packages a node cannot do without.
pub const REQUIRED_NODE_PACKAGES: &[&str] = &["kubeadm", "kubelet", "kubectl"];
/// Packages masters get in addition.
pub const LB_PACKAGES: &[&str] = &["haproxy", "keepalived"];

const KUBECONFIG: &str = "/etc/kubernetes/admin.conf";
const OWNER: &str = "root:root";

fn step(id: &str, description: &str, action: HostStep) -> Step {
    Step {
        id: id.to_string(),
        description: description.to_string(),
        action,
    }
}

fn write(id: &str, description: &str, path: &str, content: String, mode: &str) -> Step {
    step(
        id,
        description,
        HostStep::WriteFile {
            path: path.into(),
            content,
            mode: mode.into(),
            owner: OWNER.into(),
        },
    )
}

fn run(id: &str, description: &str, command: String, check: Option<String>) -> Step {
    step(
        id,
        description,
        HostStep::Run {
            command,
            check,
            after_change_of: vec![],
            capture: None,
            on_failure: OnFailure::Stop,
        },
    )
}

fn warn(id: &str, description: &str, command: String) -> Step {
    step(
        id,
        description,
        HostStep::Run {
            command,
            check: None,
            after_change_of: vec![],
            capture: None,
            on_failure: OnFailure::Warn,
        },
    )
}

fn capture(id: &str, description: &str, command: String, name: &str) -> Step {
    step(
        id,
        description,
        HostStep::Run {
            command,
            check: None,
            after_change_of: vec![],
            capture: Some(name.into()),
            on_failure: OnFailure::Stop,
        },
    )
}

fn restart(id: &str, unit: &str, files: Vec<String>) -> Step {
    step(
        id,
        &format!("enable {unit} and restart it when its configuration changed"),
        HostStep::Run {
            command: format!("systemctl enable {unit} && systemctl restart {unit}"),
            check: Some(format!("systemctl is-active --quiet {unit}")),
            after_change_of: files,
            capture: None,
            on_failure: OnFailure::Stop,
        },
    )
}

fn wait(id: &str, description: &str, condition: String, timeout_secs: u64) -> Step {
    step(
        id,
        description,
        HostStep::WaitFor {
            condition,
            timeout_secs,
        },
    )
}

/// `fail MESSAGE` in a check command: print to stderr and exit 1.
fn or_fail(test: &str, message: &str) -> String {
    format!("{test} || {{ echo \"{message}\" >&2; exit 1; }}")
}

/// Numeric comparison of dotted versions (`3.10` > `3.9`).
fn version_key(v: &str) -> Vec<u64> {
    v.trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Plans the install of `facts`' bundle on `cluster`. Checks that need the bundle
/// (CNI carried, images the CNI names, packages) are reported as problems naming
/// the inventory field they concern.
pub fn plan(
    cluster: &Cluster,
    facts: &BundleFacts,
    inputs: &PlanInputs,
) -> Result<Plan, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut notes: Vec<String> = inputs
        .warnings
        .iter()
        .map(|w| format!("`{}`: {}", w.field, w.message))
        .collect();
    let mapping = &cluster.mapping;

    // Kubernetes version and kubeadm API.
    let minor = facts.kubernetes_minor().unwrap_or_else(|| {
        problems.push(Problem::new(
            "bundle",
            format!(
                "Kubernetes version `{}` is not `vMAJOR.MINOR.PATCH`",
                facts.kubernetes_version
            ),
        ));
        (1, 0)
    });
    let kubeadm_api = kubeadm::api_version(minor);

    // containerd version.
    let containerd_major = facts.containerd_major();
    if facts.containerd_version.is_none() {
        notes.push("the bundle carries no `containerd.io` or `containerd` package: assuming containerd 1.x (config version 2) is already on the hosts".into());
    }
    let containerd_config_version = containerd::config_version(containerd_major);

    // Images kubeadm pulls: from IMAGE_REPOSITORY/NAME, which the mapping must agree with.
    let k8s_ref = |repo: &str, tag: &str| ImageReference {
        registry: "registry.k8s.io".into(),
        repository: repo.into(),
        tag: Some(tag.into()),
        digest: None,
    };
    let apiserver = mapping.map(&k8s_ref("kube-apiserver", &facts.kubernetes_version));
    let image_repository = match apiserver.repository.rsplit_once('/') {
        Some((parent, _)) => format!("{}/{parent}", mapping.host()),
        None => mapping.host().to_string(),
    };
    // kubeadm flattens the only nested name it pulls (coredns/coredns) under imageRepository.
    {
        let nested = "coredns/coredns";
        let mapped = mapping.map(&k8s_ref(nested, "x"));
        let leaf = "coredns";
        if mapped.name() != format!("{image_repository}/{leaf}") {
            problems.push(Problem::new(
                "spec.registry.map",
                format!("kubeadm pulls `{image_repository}/{leaf}` but the mapping sends `registry.k8s.io/{nested}` to `{}`", mapped.name()),
            ));
        }
    }
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
    ] {
        let want = k8s_ref(component, &facts.kubernetes_version);
        if !render::cni::carried(&want, &facts.images) {
            problems.push(Problem::new(
                "bundle",
                format!("the bundle does not carry `{want}`, which kubeadm needs"),
            ));
        }
    }
    for name in ["etcd", "coredns/coredns"] {
        if !facts
            .images
            .iter()
            .any(|i| i.registry == "registry.k8s.io" && i.repository == name)
        {
            problems.push(Problem::new(
                "bundle",
                format!(
                    "the bundle carries no `registry.k8s.io/{name}` image, which kubeadm needs"
                ),
            ));
        }
    }
    let pause = facts
        .images
        .iter()
        .filter(|i| mapping::is_k8s(&i.registry) && i.repository == "pause" && i.tag.is_some())
        .max_by_key(|i| version_key(i.tag.as_deref().unwrap_or_default()));
    let sandbox_image = match pause {
        Some(p) => {
            let mapped = mapping.map(&ImageReference {
                digest: None,
                ..p.clone()
            });
            mapped.to_string()
        }
        None => {
            problems.push(Problem::new(
                "bundle",
                "the bundle carries no `registry.k8s.io/pause` image (the sandbox image)"
                    .to_string(),
            ));
            String::new()
        }
    };

    // CNI.
    let cni = match &facts.cni {
        Some(c) if c.name == cluster.cni => Some(c),
        Some(c) => {
            problems.push(Problem::new(
                "spec.network.cni",
                format!("the bundle carries `{}`, not `{}`", c.name, cluster.cni),
            ));
            None
        }
        None => {
            problems.push(Problem::new(
                "spec.network.cni",
                format!(
                    "the bundle carries no CNI; `{}` cannot be installed",
                    cluster.cni
                ),
            ));
            None
        }
    };
    let cni_manifest = cni.and_then(|c| {
        match render::cni::rewrite(
            &c.name,
            &c.manifest,
            mapping,
            &cluster.pod_subnet,
            &facts.images,
        ) {
            Ok(r) => {
                notes.extend(r.notes.iter().cloned());
                Some(r.text)
            }
            Err(ps) => {
                for p in ps {
                    problems.push(Problem::new(
                        "spec.network.cni",
                        format!("the {} manifest `{}`: {p}", c.name, c.file),
                    ));
                }
                None
            }
        }
    });

    // RPM repository.
    let rpm_repo: Option<&RpmRepoFacts> = match (&cluster.repo_target, facts.rpm_repos.as_slice()) {
        (_, []) => {
            problems.push(Problem::new(
                "bundle",
                "the bundle carries no RPM repository (`rpms/`)".to_string(),
            ));
            None
        }
        (None, [only]) => Some(only),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|r| r.target.as_str()).collect();
            problems.push(Problem::new(
                "spec.repo.target",
                format!(
                    "the bundle carries several RPM targets ({}); say which to install",
                    names.join(", ")
                ),
            ));
            None
        }
        (Some(t), all) => match all.iter().find(|r| &r.target == t) {
            Some(r) => Some(r),
            None => {
                let names: Vec<&str> = all.iter().map(|r| r.target.as_str()).collect();
                problems.push(Problem::new(
                    "spec.repo.target",
                    format!(
                        "`{t}` is not among the bundle's RPM targets ({})",
                        names.join(", ")
                    ),
                ));
                None
            }
        },
    };
    let pick = |names: &[&str], required: &[&str], problems: &mut Vec<Problem>| -> Vec<String> {
        let Some(r) = rpm_repo else { return vec![] };
        let mut out = Vec::new();
        for name in names {
            if let Some(p) = r
                .packages
                .iter()
                .filter(|p| &p.name == name)
                .max_by_key(|p| version_key(&p.version))
            {
                out.push(p.nevra.clone());
            } else if required.contains(name) {
                problems.push(Problem::new(
                    "bundle",
                    format!(
                        "the bundle's `{}` repository has no `{name}` package",
                        r.target
                    ),
                ));
            }
        }
        out
    };
    let node_pkgs = pick(NODE_PACKAGES, REQUIRED_NODE_PACKAGES, &mut problems);
    let lb_pkgs = pick(LB_PACKAGES, LB_PACKAGES, &mut problems);
    if let Some(r) = rpm_repo.filter(|r| r.gpg_keys.is_empty()) {
        notes.push(format!("the bundle ships no GPG keys for `{}`: gpgcheck is off; the bundle's signature and checksums vouch for the packages", r.target));
    }
    if inputs.registry_ca.is_none() {
        notes.push(format!(
            "no `spec.registry.caFile`: the hosts must already trust the certificate of `{}`",
            cluster.registry_host
        ));
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let rpm_repo = rpm_repo.expect("checked");
    let cni = cni.expect("checked");
    let cni_manifest = cni_manifest.expect("checked");

    let first = cluster.first_master();
    let repo_node = cluster.repo_node();
    let repo_served_here = |n: &Node| repo_node.is_some_and(|r| r.name == n.name);
    let repo_base = format!(
        "http://{}/{}/",
        render::host_port(&cluster.repo_address, cluster.repo_port),
        rpm_repo.target
    );
    let endpoint = render::host_port(&cluster.vip, cluster.lb_port);
    let masters: Vec<&Node> = cluster.masters().collect();

    let mut phases: Vec<Phase> = PhaseName::ALL
        .iter()
        .map(|&name| Phase {
            name,
            hosts: vec![],
        })
        .collect();
    let mut add = |phase: PhaseName, node: &Node, wave: u32, steps: Vec<Step>| {
        if steps.is_empty() {
            return;
        }
        let p = phases
            .iter_mut()
            .find(|p| p.name == phase)
            .expect("every phase exists");
        p.hosts.push(HostSteps {
            host: node.name.clone(),
            wave,
            steps,
        });
    };

    // 1. preflight
    for n in &cluster.nodes {
        let mut s = vec![
            run(
                "preflight/os",
                &format!("an Enterprise Linux {} system, as the bundle's packages need", rpm_repo.releasever),
                format!(
                    ". /etc/os-release && case \" $ID $ID_LIKE \" in *\" rhel \"*|*\" centos \"*|*\" fedora \"*) ;; *) echo \"$PRETTY_NAME is not Enterprise Linux\" >&2; exit 1;; esac && {}",
                    or_fail(&format!("[ \"${{VERSION_ID%%.*}}\" = \"{}\" ]", rpm_repo.releasever), &format!("$PRETTY_NAME: the bundle's packages are for release {}", rpm_repo.releasever))
                ),
                None,
            ),
            run(
                "preflight/kernel",
                "kernel 4.18 or newer",
                or_fail(
                    "v=$(uname -r); maj=${v%%.*}; rest=${v#*.}; min=${rest%%.*}; [ \"$maj\" -gt 4 ] || { [ \"$maj\" -eq 4 ] && [ \"$min\" -ge 18 ]; }",
                    "kernel $(uname -r) is older than 4.18",
                ),
                None,
            ),
        ];
        if n.master {
            s.push(run(
                "preflight/cpu",
                "at least 2 CPUs on a master",
                or_fail(
                    "[ \"$(nproc)\" -ge 2 ]",
                    "$(nproc) CPU: a master needs at least 2",
                ),
                None,
            ));
            s.push(run(
                "preflight/memory",
                "at least 2 GiB of memory on a master (kubeadm's limit: 1700 MiB usable)",
                or_fail("[ \"$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)\" -ge 1700 ]", "$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo) MiB of memory: a master needs 2 GiB"),
                None,
            ));
        }
        let mut ports: Vec<u16> = if n.master {
            RESERVED_PORTS.to_vec()
        } else {
            vec![10250]
        };
        if n.master {
            ports.extend([cluster.lb_port, cluster.stats_port]);
        }
        ports.sort_unstable();
        let list = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join("|");
        s.push(run(
            "preflight/ports",
            &format!("ports {} free", list.replace('|', ", ")),
            format!("used=$(ss -Htln | awk '{{print $4}}' | grep -Eo ':({list})$' | sort -u | tr -d : | tr '\\n' ' '); [ -z \"$used\" ] || {{ echo \"ports in use: $used\" >&2; exit 1; }}"),
            Some("test -f /etc/kubernetes/kubelet.conf".into()),
        ));
        if repo_served_here(n) {
            s.push(run(
                "preflight/repo-port",
                &format!("port {} free for the yum repository", cluster.repo_port),
                or_fail(
                    &format!(
                        "! ss -Htln | awk '{{print $4}}' | grep -q ':{}$'",
                        cluster.repo_port
                    ),
                    &format!("port {} is in use", cluster.repo_port),
                ),
                Some(format!("systemctl is-active --quiet {}", repo::UNIT)),
            ));
        }
        if n.master {
            s.push(run(
                "preflight/interface",
                &format!("interface {} exists for the VIP", n.interface),
                or_fail(
                    &format!("ip link show dev {} >/dev/null 2>&1", n.interface),
                    &format!("no interface {}", n.interface),
                ),
                None,
            ));
        }
        if n.name == first.name {
            s.push(run(
                "preflight/vip-free",
                &format!("nothing answers on the VIP {} yet", cluster.vip),
                or_fail(
                    &format!("! ping -c 2 -W 1 {} >/dev/null 2>&1", cluster.vip),
                    &format!(
                        "{} already answers: is it another host's address?",
                        cluster.vip
                    ),
                ),
                Some("systemctl is-active --quiet keepalived".into()),
            ));
        }
        s.push(capture(
            "preflight/hostname",
            "hostname (must be unique)",
            "hostname".into(),
            "hostname",
        ));
        s.push(capture(
            "preflight/product-uuid",
            "product_uuid (must be unique)",
            "cat /sys/class/dmi/id/product_uuid".into(),
            "product-uuid",
        ));
        s.push(capture(
            "preflight/mac-addresses",
            "MAC addresses (must be unique)",
            "cat /sys/class/net/*/address | grep -v '^00:00:00:00:00:00$' | sort -u | tr '\\n' ' '"
                .into(),
            "mac-addresses",
        ));
        s.push(warn(
            "preflight/swap",
            "swap is off (phase os turns it off)",
            or_fail("! swapon --noheadings --show | grep -q .", "swap is on"),
        ));
        s.push(warn(
            "preflight/firewalld",
            "firewalld is not running (phase os stops it)",
            or_fail(
                "! systemctl is-active --quiet firewalld",
                "firewalld is running",
            ),
        ));
        s.push(warn(
            "preflight/selinux",
            "SELinux is not enforcing (phase os makes it permissive)",
            or_fail(
                "[ \"$(getenforce 2>/dev/null || echo Disabled)\" != Enforcing ]",
                "SELinux is enforcing",
            ),
        ));
        s.push(warn(
            "preflight/time-sync",
            "the clock is synchronised (certificates and etcd need agreeing clocks)",
            or_fail(
                "[ \"$(timedatectl show -p NTPSynchronized --value 2>/dev/null)\" = yes ]",
                "the clock is not synchronised (chronyd?)",
            ),
        ));
        add(PhaseName::Preflight, n, 0, s);
    }

    // 2. repo
    for n in &cluster.nodes {
        let mut s = Vec::new();
        let serving = repo_served_here(n);
        if repo_node.is_none() {
            s.push(wait(
                "repo/reachable",
                "the deploy node's repository answers (served while `bundle install` runs)",
                format!("curl -fsS -o /dev/null {repo_base}repodata/repomd.xml"),
                60,
            ));
        }
        if serving {
            let dest = format!("{}/{}", repo::SERVE_ROOT, rpm_repo.target);
            s.push(step(
                "repo/copy",
                "the bundle's yum repository, copied from the verified bundle",
                HostStep::CopyFromBundle {
                    entries: format!("rpms/{}/", rpm_repo.target),
                    dest,
                },
            ));
            s.push(write(
                "repo/unit",
                "systemd unit serving the repository over HTTP",
                repo::UNIT_PATH,
                repo::unit(&n.address.to_string(), cluster.repo_port),
                "0644",
            ));
            s.push(run(
                "repo/firewall",
                &format!(
                    "open port {} while firewalld runs (phase os stops it)",
                    cluster.repo_port
                ),
                format!("firewall-cmd --add-port={}/tcp", cluster.repo_port),
                Some(format!(
                    "! systemctl is-active --quiet firewalld || firewall-cmd --query-port={}/tcp",
                    cluster.repo_port
                )),
            ));
            s.push(step(
                "repo/serve",
                "serve the repository",
                HostStep::Run {
                    command: format!(
                        "systemctl daemon-reload && systemctl enable {u} && systemctl restart {u}",
                        u = repo::UNIT
                    ),
                    check: Some(format!("systemctl is-active --quiet {}", repo::UNIT)),
                    after_change_of: vec![repo::UNIT_PATH.into()],
                    capture: None,
                    on_failure: OnFailure::Stop,
                },
            ));
            s.push(wait(
                "repo/ready",
                "the repository answers",
                format!("curl -fsS -o /dev/null {repo_base}repodata/repomd.xml"),
                60,
            ));
        }
        s.push(write(
            "repo/file",
            "the bundle's repository for dnf",
            repo::REPO_FILE,
            repo::repo_file(rpm_repo, &facts.bundle, &repo_base),
            "0644",
        ));
        let mut pkgs = node_pkgs.clone();
        if n.master {
            pkgs.extend(lb_pkgs.iter().cloned());
        }
        s.push(run(
            "repo/install",
            "install the exact package versions the bundle carries",
            format!(
                "dnf install -y --disablerepo='*' --enablerepo={} {}",
                repo::repo_id(&rpm_repo.target),
                pkgs.join(" ")
            ),
            Some(format!("rpm -q {} >/dev/null", pkgs.join(" "))),
        ));
        add(PhaseName::Repo, n, if serving { 0 } else { 1 }, s);
    }

    // 3. os
    for n in &cluster.nodes {
        let mut s = vec![
            run(
                "os/swap",
                "swap off now and at boot (fstab line commented)",
                "swapoff -a && sed -ri '/^[^#].*[[:space:]]swap[[:space:]]/s/^/# (bundle: swap off) /' /etc/fstab".into(),
                Some("! swapon --noheadings --show | grep -q . && ! grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab".into()),
            ),
            write("os/modules-file", "kernel modules loaded at boot", os::MODULES_PATH, os::modules_conf(), "0644"),
            run("os/modules", "load the kernel modules now", format!("modprobe -a {}", os::MODULES.join(" ")), None),
            write("os/sysctl-file", "forwarding and bridge netfilter sysctls", os::SYSCTL_PATH, os::sysctl_conf(), "0644"),
            run("os/sysctl", "apply the sysctls now", format!("sysctl -q --load {}", os::SYSCTL_PATH), None),
            run(
                "os/selinux",
                "SELinux permissive (as kubeadm's install guide asks)",
                "command -v setenforce >/dev/null || exit 0; setenforce 0 2>/dev/null || true; sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config".into(),
                Some("! command -v getenforce >/dev/null || { [ \"$(getenforce)\" != Enforcing ] && ! grep -qx 'SELINUX=enforcing' /etc/selinux/config; }".into()),
            ),
            run(
                "os/firewalld",
                "firewalld stopped and disabled (the CNI and kube-proxy manage packet filtering)",
                "systemctl disable --now firewalld".into(),
                Some("! systemctl is-enabled --quiet firewalld 2>/dev/null && ! systemctl is-active --quiet firewalld".into()),
            ),
        ];
        if let Some(addr) = cluster.registry_address {
            let line = format!("{addr} {}", cluster.registry_host);
            let host_only = cluster
                .registry_host
                .split(':')
                .next()
                .unwrap_or(&cluster.registry_host)
                .to_string();
            let line = if host_only == cluster.registry_host {
                line
            } else {
                format!("{addr} {host_only}")
            };
            s.push(run(
                "os/hosts-registry",
                "the registry's address in /etc/hosts",
                format!("printf '%s\\n' '{line}' >> /etc/hosts"),
                Some(format!("grep -qxF '{line}' /etc/hosts")),
            ));
        }
        add(PhaseName::Os, n, 0, s);
    }

    // 4. containerd
    let ca_path = containerd::ca_path(cluster);
    let pull_auth =
        cluster
            .registry_pull_username
            .as_deref()
            .map(|username| containerd::PullAuth {
                host: &cluster.registry_host,
                username,
            });
    // The file holds the pull password then: root only.
    let (config_mode, pulls) = match pull_auth {
        Some(a) => ("0600", format!("pulls as `{}`", a.username)),
        None => ("0644", "anonymous pulls".to_string()),
    };
    for n in &cluster.nodes {
        let mut s = Vec::new();
        let mut files = vec![containerd::CONFIG_PATH.to_string()];
        s.push(write(
            "containerd/config",
            &format!("containerd config version {containerd_config_version}: systemd cgroups, sandbox image from the registry, {pulls}"),
            containerd::CONFIG_PATH,
            containerd::config(containerd_config_version, &sandbox_image, pull_auth),
            config_mode,
        ));
        if let Some(ca) = &inputs.registry_ca {
            s.push(write(
                "containerd/registry-ca",
                "the registry's CA",
                &ca_path,
                ca.clone(),
                "0644",
            ));
            files.push(ca_path.clone());
        }
        for (path, content) in containerd::hosts_files(cluster, inputs.registry_ca.is_some()) {
            let dir = path
                .trim_start_matches(containerd::CERTS_D)
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            s.push(write(
                &format!("containerd/hosts-{dir}"),
                &format!("registry host file for `{dir}`"),
                &path,
                content,
                "0644",
            ));
            files.push(path);
        }
        s.push(write(
            "containerd/crictl",
            "crictl talks to containerd",
            "/etc/crictl.yaml",
            containerd::crictl_yaml(),
            "0644",
        ));
        s.push(restart("containerd/restart", "containerd", files));
        s.push(wait(
            "containerd/ready",
            "containerd's CRI answers",
            "crictl info >/dev/null".into(),
            60,
        ));
        let cacert = if inputs.registry_ca.is_some() {
            format!(" --cacert {ca_path}")
        } else {
            String::new()
        };
        s.push(run(
            "containerd/registry",
            "the registry answers over TLS with the configured CA",
            format!(
                "code=$(curl -sS -o /dev/null -w '%{{http_code}}'{cacert} https://{h}/v2/); case \"$code\" in 200|401) ;; *) echo \"https://{h}/v2/ answered $code\" >&2; exit 1;; esac",
                h = cluster.registry_host
            ),
            None,
        ));
        s.push(run(
            "containerd/pull-sandbox",
            "pull the sandbox image through containerd",
            format!("crictl pull {sandbox_image}"),
            Some(format!("crictl inspecti {sandbox_image} >/dev/null 2>&1")),
        ));
        add(PhaseName::Containerd, n, 0, s);
    }

    // 5. lb
    for (i, m) in masters.iter().enumerate() {
        let mut s = vec![
            write(
                "lb/haproxy-config",
                &format!("haproxy: TCP {} to every master's 6443", cluster.lb_port),
                haproxy::PATH,
                haproxy::render(cluster),
                "0644",
            ),
            run(
                "lb/haproxy-check",
                "haproxy accepts its configuration",
                format!("haproxy -c -q -f {}", haproxy::PATH),
                None,
            ),
            restart("lb/haproxy-restart", "haproxy", vec![haproxy::PATH.into()]),
            write(
                "lb/keepalived-config",
                &format!(
                    "keepalived: {} priority {}",
                    if i == 0 { "MASTER" } else { "BACKUP" },
                    keepalived::priority(i)
                ),
                keepalived::PATH,
                keepalived::render(cluster, m, i),
                "0600",
            ),
            run(
                "lb/keepalived-check",
                "keepalived accepts its configuration",
                format!("keepalived -t -f {}", keepalived::PATH),
                None,
            ),
            restart(
                "lb/keepalived-restart",
                "keepalived",
                vec![keepalived::PATH.into()],
            ),
        ];
        if i == 0 {
            s.push(wait(
                "lb/vip",
                &format!("the VIP {} is up on this master", cluster.vip),
                format!(
                    "ip -o addr show dev {} | grep -qw '{}'",
                    m.interface, cluster.vip
                ),
                60,
            ));
        }
        add(PhaseName::Lb, m, 0, s);
    }

    // 6. init
    let kubectl = format!("kubectl --kubeconfig {KUBECONFIG}");
    {
        let s = vec![
            write(
                "init/config",
                &format!("kubeadm configuration ({kubeadm_api})"),
                kubeadm::INIT_PATH,
                kubeadm::init_config(cluster, kubeadm_api, &facts.kubernetes_version, &image_repository),
                "0600",
            ),
            run("init/pull", "pull the control plane images from the registry", format!("kubeadm config images pull --config {}", kubeadm::INIT_PATH), Some("test -f /etc/kubernetes/admin.conf".into())),
            run(
                "init/kubeadm",
                "kubeadm init (certificates uploaded for the other masters)",
                format!("kubeadm init --config {} --upload-certs", kubeadm::INIT_PATH),
                Some("test -f /etc/kubernetes/admin.conf".into()),
            ),
            capture(
                "init/ca-cert-hash",
                "hash of the cluster CA's public key, pinned by every join",
                "openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | sha256sum | sed 's/^\\([0-9a-f]*\\).*/sha256:\\1/'".into(),
                CA_CERT_HASH,
            ),
            run(
                "init/kubeconfig",
                "root's kubeconfig",
                format!("install -D -m 0600 {KUBECONFIG} /root/.kube/config"),
                Some(format!("cmp -s {KUBECONFIG} /root/.kube/config")),
            ),
            wait("init/endpoint", &format!("the API answers through the VIP {endpoint}"), format!("curl -ksf -o /dev/null {}", kubeadm::readyz(&cluster.vip, cluster.lb_port)), 300),
        ];
        add(PhaseName::Init, first, 0, s);
    }

    // etcdctl in the first master's etcd pod, through the API (any host with admin.conf).
    let etcdctl = format!(
        "{kubectl} -n kube-system exec etcd-{} -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key",
        first.name
    );

    // 7. join: refresh the uploaded certificates (they expire after 2 hours), then
    // one master at a time, each waiting for its etcd member to be started (a voter,
    // not a learner) and every member healthy before the next one joins, then every
    // worker at once.
    let mut wave = 0;
    if masters.len() > 1 {
        add(
            PhaseName::Join,
            first,
            wave,
            vec![run(
                "join/upload-certs",
                "upload the control plane certificates again (kubeadm deletes them after 2 hours)",
                format!(
                    "kubeadm init phase upload-certs --upload-certs --config {}",
                    kubeadm::INIT_PATH
                ),
                None,
            )],
        );
        wave += 1;
    }
    for m in masters.iter().skip(1) {
        add(
            PhaseName::Join,
            m,
            wave,
            vec![
                write(
                    "join/config",
                    &format!("kubeadm join configuration for a master ({kubeadm_api})"),
                    kubeadm::JOIN_PATH,
                    kubeadm::join_config(cluster, kubeadm_api, m),
                    "0600",
                ),
                run(
                    "join/kubeadm",
                    "kubeadm join as a control plane node",
                    format!("kubeadm join --config {}", kubeadm::JOIN_PATH),
                    Some("test -f /etc/kubernetes/kubelet.conf".into()),
                ),
                wait(
                    "join/apiserver",
                    "this master's API server is ready",
                    format!(
                        "curl -ksf -o /dev/null {}",
                        kubeadm::readyz(&m.address, 6443)
                    ),
                    300,
                ),
                run(
                    "join/kubeconfig",
                    "root's kubeconfig",
                    format!("install -D -m 0600 {KUBECONFIG} /root/.kube/config"),
                    Some(format!("cmp -s {KUBECONFIG} /root/.kube/config")),
                ),
                wait(
                    "join/etcd",
                    &format!(
                        "this master's etcd member is started and every member healthy (etcd on `{}` asked) before the next master joins",
                        first.name
                    ),
                    format!(
                        "{etcdctl} member list | awk -F', ' '$2 == \"started\" && $3 == \"{}\" && $6 == \"false\" {{ found = 1 }} END {{ exit !found }}' && {etcdctl} endpoint health --cluster",
                        m.name
                    ),
                    300,
                ),
            ],
        );
        wave += 1;
    }
    for w in cluster.nodes.iter().filter(|n| !n.master) {
        add(
            PhaseName::Join,
            w,
            wave,
            vec![
                write(
                    "join/config",
                    &format!("kubeadm join configuration for a worker ({kubeadm_api})"),
                    kubeadm::JOIN_PATH,
                    kubeadm::join_config(cluster, kubeadm_api, w),
                    "0600",
                ),
                run(
                    "join/kubeadm",
                    "kubeadm join as a worker",
                    format!("kubeadm join --config {}", kubeadm::JOIN_PATH),
                    Some("test -f /etc/kubernetes/kubelet.conf".into()),
                ),
            ],
        );
    }

    // 8. cni
    let (ds_ns, ds_name) = match cni.name.as_str() {
        "flannel" => ("kube-flannel", "kube-flannel-ds"),
        _ => ("kube-system", "calico-node"),
    };
    add(
        PhaseName::Cni,
        first,
        0,
        vec![
            write(
                "cni/manifest",
                &format!(
                    "{} manifest, images from the registry, pod network {}",
                    cni.name, cluster.pod_subnet
                ),
                render::cni::PATH,
                cni_manifest,
                "0644",
            ),
            run(
                "cni/apply",
                "apply it (server-side: calico's CRDs are too large for client-side apply)",
                format!(
                    "{kubectl} apply --server-side --force-conflicts -f {}",
                    render::cni::PATH
                ),
                None,
            ),
            wait(
                "cni/rollout",
                &format!("{ds_name} runs on every node"),
                format!("{kubectl} -n {ds_ns} rollout status daemonset/{ds_name} --timeout=10s"),
                600,
            ),
        ],
    );

    // 9. verify
    let node_count = cluster.nodes.len();
    for n in &cluster.nodes {
        let mut s = Vec::new();
        if n.name == first.name {
            s.push(wait(
                "verify/nodes-ready",
                &format!("all {node_count} nodes Ready"),
                format!("[ \"$({kubectl} get nodes --no-headers | awk '$2 == \"Ready\"' | wc -l)\" -eq {node_count} ]"),
                600,
            ));
            s.push(run(
                "verify/etcd-members",
                &format!("etcd has {} started members, one per master", masters.len()),
                or_fail(
                    &format!(
                        "[ \"$({etcdctl} member list | grep -c ', started, ')\" -eq {} ]",
                        masters.len()
                    ),
                    "etcd members differ from the masters",
                ),
                None,
            ));
        }
        if n.master {
            s.push(wait(
                "verify/haproxy-backends",
                "every haproxy backend is UP",
                format!(
                    "curl -fsS 'http://127.0.0.1:{}/stats;csv' | awk -F, '$1 == \"{b}\" && $2 != \"BACKEND\" {{ n++; if ($18 != \"UP\") bad = 1 }} END {{ exit (bad || n != {}) }}'",
                    cluster.stats_port,
                    masters.len(),
                    b = haproxy::BACKEND
                ),
                120,
            ));
        }
        s.push(run(
            "verify/vip",
            &format!("the API answers on the VIP {endpoint} from this host"),
            format!(
                "curl -ksf -o /dev/null {}",
                kubeadm::readyz(&cluster.vip, cluster.lb_port)
            ),
            None,
        ));
        add(PhaseName::Verify, n, 0, s);
    }

    // Hosts and their duties.
    let hosts = cluster
        .nodes
        .iter()
        .map(|n| {
            let mut roles = vec![];
            if n.master {
                roles.push("master".to_string());
            }
            if n.worker {
                roles.push("worker".to_string());
            }
            let mut duties = vec![];
            if n.name == first.name {
                duties.push("kubeadm init".to_string());
            }
            if let Some(i) = masters.iter().position(|m| m.name == n.name) {
                duties.push(format!(
                    "keepalived {} {}",
                    if i == 0 { "MASTER" } else { "BACKUP" },
                    keepalived::priority(i)
                ));
            }
            if repo_served_here(n) {
                duties.push(format!("yum repository on port {}", cluster.repo_port));
            }
            PlanHost {
                name: n.name.clone(),
                address: n.address.to_string(),
                roles,
                duties,
            }
        })
        .collect();

    notes.push("secrets appear as <secret:NAME> and are filled in from secrets.json when files are written on the hosts".into());
    notes.push("the bootstrap token is valid for 24 hours after `kubeadm init`; joins after that need a new one".into());
    let notes: Vec<String> = {
        let mut seen = BTreeSet::new();
        notes
            .into_iter()
            .filter(|n| seen.insert(n.clone()))
            .collect()
    };

    Ok(Plan {
        plan_version: PLAN_VERSION,
        cluster: cluster.name.clone(),
        bundle: facts.bundle.clone(),
        kubernetes_version: facts.kubernetes_version.clone(),
        kubeadm_api_version: kubeadm_api.into(),
        containerd_config_version,
        control_plane_endpoint: endpoint,
        registry: cluster.registry_host.clone(),
        repo_url: repo_base,
        repo_served_by_deploy: repo_node.is_none().then(|| crate::plan::DeployRepo {
            bind: cluster.repo_address.to_string(),
            port: cluster.repo_port,
            entries: format!("rpms/{}/", rpm_repo.target),
        }),
        hosts,
        notes,
        unique_captures: vec![
            "hostname".into(),
            "product-uuid".into(),
            "mac-addresses".into(),
        ],
        phases,
    })
}

mod mapping {
    pub fn is_k8s(registry: &str) -> bool {
        bundle_registry::mapping::K8S_REGISTRIES.contains(&registry)
    }
}
