//! Phase `preflight`: checks that change nothing; every failure on every host is
//! reported together.

use super::super::checks::PlanContext;
use super::super::steps::{capture, or_fail, run, warn};
use super::super::{HostSteps, Step};
use super::host;
use crate::inventory::{Node, RESERVED_PORTS};
use crate::render::repo;

pub(super) fn steps(ctx: &PlanContext) -> Vec<HostSteps> {
    ctx.cluster
        .nodes
        .iter()
        .map(|n| {
            let mut s = system(ctx, n);
            s.extend(ports(ctx, n));
            s.extend(captures());
            s.extend(warnings());
            host(n, 0, s)
        })
        .collect()
}

/// Release, kernel, and a master's CPUs and memory.
fn system(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let releasever = &ctx.repo(n).rpm_repo.releasever;
    let mut s = vec![
        run(
            "preflight/os",
            &format!("an Enterprise Linux {releasever} system, as the bundle's packages need"),
            format!(
                ". /etc/os-release && case \" $ID $ID_LIKE \" in *\" rhel \"*|*\" centos \"*|*\" fedora \"*) ;; *) echo \"$PRETTY_NAME is not Enterprise Linux\" >&2; exit 1;; esac && {}",
                or_fail(&format!("[ \"${{VERSION_ID%%.*}}\" = \"{releasever}\" ]"), &format!("$PRETTY_NAME: the bundle's packages are for release {releasever}"))
            ),
            None,
        ),
        run(
            "preflight/arch",
            &format!("an {arch} machine, whose packages it installs (`arch` in cluster.yaml)", arch = n.arch),
            or_fail(
                &format!("[ \"$(uname -m)\" = {} ]", n.arch),
                &format!("this host is $(uname -m), but cluster.yaml says {}: correct this host's arch in cluster.yaml", n.arch),
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
        for user in &ctx.cluster.admin_users {
            s.push(run(
                &format!("preflight/user-{user}"),
                &format!("the admin user `{user}` exists (spec.admin.users)"),
                or_fail(
                    &format!("getent passwd {user} >/dev/null"),
                    &format!(
                        "no user `{user}` here: create it, or take it out of spec.admin.users"
                    ),
                ),
                None,
            ));
        }
    }
    s
}

/// Free ports, the VIP's interface, and nothing on the VIP yet.
fn ports(ctx: &PlanContext, n: &Node) -> Vec<Step> {
    let cluster = ctx.cluster;
    let mut ports: Vec<u16> = match (n.master, n.etcd) {
        (true, _) => RESERVED_PORTS.to_vec(),
        // clients, peers, metrics, and the kubelet that runs the member.
        (false, true) => vec![2379, 2380, 2381, 10250],
        (false, false) => vec![10250],
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
    let mut s = vec![run(
        "preflight/ports",
        &format!("ports {} free", list.replace('|', ", ")),
        format!("used=$(ss -Htln | awk '{{print $4}}' | grep -Eo ':({list})$' | sort -u | tr -d : | tr '\\n' ' '); [ -z \"$used\" ] || {{ echo \"ports in use: $used\" >&2; exit 1; }}"),
        Some(match n.etcd {
            true => format!("test -f {}", crate::render::etcd::MANIFEST_PATH),
            false => "test -f /etc/kubernetes/kubelet.conf".into(),
        }),
    )];
    if ctx.serves_repo(n) {
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
    if n.name == ctx.first.name {
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
    s
}

/// Values that must differ between hosts (the plan's `uniqueCaptures`).
fn captures() -> Vec<Step> {
    vec![
        capture(
            "preflight/hostname",
            "hostname (must be unique)",
            "hostname".into(),
            "hostname",
        ),
        capture(
            "preflight/product-uuid",
            "product_uuid (must be unique)",
            "cat /sys/class/dmi/id/product_uuid".into(),
            "product-uuid",
        ),
        capture(
            "preflight/mac-addresses",
            "MAC addresses (must be unique)",
            "cat /sys/class/net/*/address | grep -v '^00:00:00:00:00:00$' | sort -u | tr '\\n' ' '"
                .into(),
            "mac-addresses",
        ),
    ]
}

/// What phase `os` mends: reported, not a stop.
fn warnings() -> Vec<Step> {
    vec![
        warn(
            "preflight/swap",
            "swap is off (phase os turns it off)",
            or_fail("! swapon --noheadings --show | grep -q .", "swap is on"),
        ),
        warn(
            "preflight/firewalld",
            "firewalld is not running (phase os stops it)",
            or_fail(
                "! systemctl is-active --quiet firewalld",
                "firewalld is running",
            ),
        ),
        warn(
            "preflight/selinux",
            "SELinux is not enforcing (phase os makes it permissive)",
            or_fail(
                "[ \"$(getenforce 2>/dev/null || echo Disabled)\" != Enforcing ]",
                "SELinux is enforcing",
            ),
        ),
        warn(
            "preflight/time-sync",
            "the clock is synchronised (certificates and etcd need agreeing clocks)",
            or_fail(
                "[ \"$(timedatectl show -p NTPSynchronized --value 2>/dev/null)\" = yes ]",
                "the clock is not synchronised (chronyd?)",
            ),
        ),
    ]
}
