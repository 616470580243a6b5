//! `bundle status`: one read-only view of an installed cluster — the release installed,
//! the nodes, etcd's members and their health, the VIP's holder, haproxy's backends,
//! certificate expiry and the registry's reachability from every node — with every
//! problem found named by host, and what to do about it.
//!
//! The cluster-wide answers (`kubectl get nodes`, etcd's members and health, the
//! release ConfigMap) come from the first master, in inventory order, whose
//! `/etc/kubernetes/admin.conf` works; the rest is asked of each host. A host that
//! cannot be reached is a problem in the report, not an error: the view is wanted most
//! when something is down.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures_util::future::join_all;
use serde::Serialize;

use super::certs::{read_expiries, CertExpiry, DEFAULT_WARN_DAYS};
use super::common::Installed;
use crate::exec::{last_lines, SshHost};
use crate::inventory::Cluster;
use crate::plan::kubectl;
use crate::release::{Release, CONFIGMAP};
use crate::report::Reporter;
use crate::run::connect::{connect, Connected};
use crate::run::HostBook;
use crate::{Error, Problems};

/// What `bundle status` needs.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// `cluster.yaml` (for how to reach the hosts).
    pub inventory: PathBuf,
    /// The install's state folder (default: beside the inventory).
    pub state: Option<PathBuf>,
    /// The sudo password for `become: sudo`.
    pub become_password: Option<String>,
}

/// The release installed, as the deploy node and the cluster record it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReleaseStatus {
    /// The state folder's `release.json`.
    pub state: Option<Release>,
    /// The ConfigMap `kube-system/bundle-release`, when readable.
    pub cluster: Option<Release>,
}

/// One node as `kubectl get nodes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its roles (`control-plane`; none for a worker).
    pub roles: Vec<String>,
    /// Its kubelet's version.
    pub version: String,
    /// Its `Ready` condition holds.
    pub ready: bool,
    /// Pods may be scheduled on it (not cordoned).
    pub schedulable: bool,
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdMember {
    /// etcd's member id, hex.
    pub id: String,
    /// Its name (empty while unstarted).
    pub name: String,
    /// `started` or `unstarted`.
    pub status: String,
    /// Its client URL.
    pub client_url: String,
    /// `etcdctl endpoint health --cluster` found it healthy.
    pub healthy: bool,
}

/// Who holds the VIP.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VipStatus {
    /// The VIP.
    pub address: String,
    /// The masters holding it (exactly one when all is well).
    pub holders: Vec<String>,
}

/// One server of haproxy's API server backend, as one master's haproxy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaproxyBackend {
    /// The master whose haproxy answered.
    pub host: String,
    /// The server (a master's API server).
    pub server: String,
    /// haproxy's status: `UP`, `DOWN`, `MAINT`, …
    pub status: String,
}

/// Whether a node reaches the registry with the CA containerd uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryReach {
    /// The node.
    pub host: String,
    /// It answered `/v2/` with 200 or 401.
    pub reachable: bool,
    /// The HTTP code, or curl's error.
    pub detail: String,
}

/// Something unhealthy, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusProblem {
    /// The host concerned (`None`: the cluster as a whole).
    pub host: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub fix: String,
}

/// The whole view. Healthy when `problems` is empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    /// The cluster's name.
    pub cluster: String,
    /// The release installed.
    pub release: ReleaseStatus,
    /// The master whose `kubectl` answered (`None`: none did).
    pub api_host: Option<String>,
    /// The nodes, as the API server lists them.
    pub nodes: Vec<NodeStatus>,
    /// etcd's members.
    pub etcd: Vec<EtcdMember>,
    /// The VIP and its holders.
    pub vip: VipStatus,
    /// haproxy's backend servers, per master.
    pub haproxy: Vec<HaproxyBackend>,
    /// Every kubeadm certificate on every reachable master.
    pub certificates: Vec<CertExpiry>,
    /// The registry from every reachable node.
    pub registry: Vec<RegistryReach>,
    /// Everything unhealthy.
    pub problems: Vec<StatusProblem>,
}

impl StatusReport {
    /// Nothing unhealthy was found.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Looks at the installed cluster. See the module documentation. An error only when
/// the install cannot be opened; everything unhealthy is in the report.
pub fn status(opts: &StatusOptions, reporter: &dyn Reporter) -> Result<StatusReport, Error> {
    crate::run::runtime()?.block_on(status_async(opts, reporter))
}

async fn status_async(
    opts: &StatusOptions,
    reporter: &dyn Reporter,
) -> Result<StatusReport, Error> {
    let installed = Installed::open(&opts.inventory, opts.state.as_deref())?;
    let (cluster, _) = installed
        .inventory
        .validate(true)
        .map_err(|problems| Error::Inventory {
            path: opts.inventory.clone(),
            problems: Problems(problems),
        })?;
    let nodes: Vec<String> = installed
        .plan
        .hosts
        .iter()
        .filter(|h| h.roles.iter().any(|r| r == "master" || r == "worker"))
        .map(|h| h.name.clone())
        .collect();
    let masters = installed.masters();
    let etcd_hosts = installed.etcd_hosts();
    let book = HostBook {
        inventory: &installed.inventory,
        path: &opts.inventory,
    };
    let mut report = StatusReport {
        cluster: installed.plan.cluster.clone(),
        ..StatusReport::default()
    };
    report.release.state = Release::read(installed.state.root())?;
    let everyone: Vec<String> = nodes.iter().chain(&etcd_hosts).cloned().collect();
    let connected = connect_each(book, &everyone, opts.become_password.clone(), reporter).await;
    let mut hosts = BTreeMap::new();
    for (name, c) in &connected {
        match c {
            Ok(c) => {
                hosts.extend(c.hosts.iter().map(|(n, h)| (n.as_str(), h)));
            }
            Err(e) => report.problems.push(unreachable(name, e)),
        }
    }
    let up_masters: Vec<&SshHost> = masters
        .iter()
        .filter_map(|m| hosts.get(m.as_str()).copied())
        .collect();
    look(&mut report, &cluster, &up_masters, &hosts).await;
    let members = if etcd_hosts.is_empty() {
        &masters
    } else {
        let up: Vec<&SshHost> = etcd_hosts
            .iter()
            .filter_map(|m| hosts.get(m.as_str()).copied())
            .collect();
        report.etcd = external_etcd_members(&up).await;
        &etcd_hosts
    };
    report
        .problems
        .extend(problems(&report, &nodes, &masters, members));
    join_all(
        connected
            .into_iter()
            .filter_map(|(_, c)| c.ok())
            .map(Connected::close),
    )
    .await;
    Ok(report)
}

/// Each host on its own connection, so that one host down does not hide the others.
async fn connect_each(
    book: HostBook<'_>,
    names: &[String],
    become_password: Option<String>,
    reporter: &dyn Reporter,
) -> Vec<(String, Result<Connected, Error>)> {
    let tries = names.iter().map(|n| {
        let password = become_password.clone();
        async move {
            let c = connect(book, std::slice::from_ref(n), password, None, reporter).await;
            (n.clone(), c)
        }
    });
    join_all(tries).await
}

fn unreachable(host: &str, e: &Error) -> StatusProblem {
    StatusProblem {
        host: Some(host.into()),
        problem: format!("cannot be reached over SSH: {e}"),
        fix: format!("check that `{host}` is up and that sshd answers there as the inventory says (`ssh` to it by hand)"),
    }
}

/// Fills in what the hosts answer.
async fn look(
    report: &mut StatusReport,
    cluster: &Cluster,
    masters: &[&SshHost],
    hosts: &BTreeMap<&str, &SshHost>,
) {
    cluster_wide(report, masters).await;
    report.vip.address = cluster.vip.to_string();
    let vips = join_all(masters.iter().map(|h| holds_vip(h, &report.vip.address))).await;
    report.vip.holders = vips.into_iter().flatten().collect();
    let stats = join_all(masters.iter().map(|h| haproxy_stats(h, cluster.stats_port))).await;
    for (h, s) in masters.iter().zip(stats) {
        match s {
            Ok(backends) => report.haproxy.extend(backends),
            Err(why) => report.problems.push(StatusProblem {
                host: Some(h.target().name.clone()),
                problem: format!("haproxy's stats do not answer on 127.0.0.1:{}: {why}", cluster.stats_port),
                fix: "start haproxy there (`systemctl start haproxy`); `journalctl -u haproxy` says why it stopped".into(),
            }),
        }
    }
    certificates(report, masters).await;
    let reaches = join_all(hosts.values().map(|h| registry_reach(h, cluster))).await;
    report.registry = reaches;
}

/// Nodes, etcd and the release ConfigMap, from the first master whose kubectl answers.
async fn cluster_wide(report: &mut StatusReport, masters: &[&SshHost]) {
    for host in masters {
        let Ok(out) = host
            .run(&format!("{} get nodes --no-headers", kubectl()), None)
            .await
        else {
            continue;
        };
        if !out.success() {
            continue;
        }
        let name = host.target().name.clone();
        report.nodes = parse_nodes(&String::from_utf8_lossy(&out.stdout));
        report.etcd = etcd_members(host, &name).await;
        report.release.cluster = release_configmap(host).await;
        report.api_host = Some(name);
        return;
    }
    report.problems.push(StatusProblem {
        host: None,
        problem: "no master answered `kubectl get nodes` with /etc/kubernetes/admin.conf".into(),
        fix: "check the API servers and haproxy on the masters (`crictl ps --name kube-apiserver`, `systemctl status haproxy`) and that the VIP is held".into(),
    });
}

/// `etcdctl` in `node`'s etcd pod, through the API (as the plan's verify phase runs it).
fn etcdctl(node: &str) -> String {
    format!(
        "{} -n kube-system exec etcd-{node} -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key",
        kubectl()
    )
}

async fn etcd_members(host: &SshHost, node: &str) -> Vec<EtcdMember> {
    members_via(host, "true", &etcdctl(node)).await
}

/// The external members, asked on the first etcd host whose member answers.
async fn external_etcd_members(hosts: &[&SshHost]) -> Vec<EtcdMember> {
    let find = crate::plan::ETCD_CONTAINER;
    for host in hosts {
        let members = members_via(host, find, crate::plan::CRICTL_ETCDCTL).await;
        if !members.is_empty() {
            return members;
        }
    }
    vec![]
}

/// `etcdctl member list` and `endpoint health --cluster` through `etcdctl` after
/// `setup` (a shell statement).
async fn members_via(host: &SshHost, setup: &str, e: &str) -> Vec<EtcdMember> {
    let script = format!(
        "{setup}; {e} member list; echo '--- health'; {e} endpoint health --cluster 2>&1; true"
    );
    let Ok(out) = host.run(&script, None).await else {
        return vec![];
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let (list, health) = text.split_once("--- health\n").unwrap_or((&text, ""));
    let healthy = parse_health(health);
    let mut members = parse_members(list);
    for m in &mut members {
        m.healthy = healthy.contains(&m.client_url);
    }
    members
}

async fn release_configmap(host: &SshHost) -> Option<Release> {
    let script = format!(
        "{} -n kube-system get configmap {CONFIGMAP} -o jsonpath='{{.data.release\\.json}}'",
        kubectl()
    );
    let out = host.run(&script, None).await.ok()?;
    out.success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

async fn holds_vip(host: &SshHost, vip: &str) -> Option<String> {
    let out = host.run("ip -o addr show", None).await.ok()?;
    let held = out.success() && addr_shows(&String::from_utf8_lossy(&out.stdout), vip);
    held.then(|| host.target().name.clone())
}

async fn haproxy_stats(host: &SshHost, port: u16) -> Result<Vec<HaproxyBackend>, String> {
    let out = host
        .run(
            &format!("curl -fsS 'http://127.0.0.1:{port}/stats;csv'"),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(last_lines(&out.text(), 1));
    }
    let name = &host.target().name;
    Ok(parse_haproxy_csv(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .map(|(server, status)| HaproxyBackend {
            host: name.clone(),
            server,
            status,
        })
        .collect())
}

async fn certificates(report: &mut StatusReport, masters: &[&SshHost]) {
    for r in join_all(masters.iter().map(|h| read_expiries(h))).await {
        match r {
            Ok(certs) => report.certificates.extend(certs),
            Err(e) => report.problems.push(StatusProblem {
                host: None,
                problem: e.to_string(),
                fix: "`bundle certs check --inventory …` shows the same, with a hint".into(),
            }),
        }
    }
    report
        .certificates
        .sort_by(|a, b| (&a.host, &a.name).cmp(&(&b.host, &b.name)));
}

/// containerd's `containerd/registry` check: `/v2/` as the nodes reach it.
async fn registry_reach(host: &SshHost, cluster: &Cluster) -> RegistryReach {
    let script = crate::render::containerd::registry_probe(cluster);
    let (reachable, detail) = match host.run(&script, None).await {
        Ok(out) => {
            let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
            match registry_answered(&code) {
                true => (true, code),
                false => (false, last_lines(&out.text(), 1)),
            }
        }
        Err(e) => (false, e.to_string()),
    };
    RegistryReach {
        host: host.target().name.clone(),
        reachable,
        detail,
    }
}

/// The problems in what was found: `nodes` and `masters` are the installed plan's.
/// What is wrong; `members` are the hosts that should each run an etcd member (the
/// masters, or the external etcd hosts).
fn problems(
    r: &StatusReport,
    nodes: &[String],
    masters: &[String],
    members: &[String],
) -> Vec<StatusProblem> {
    let mut p = Vec::new();
    if r.api_host.is_some() {
        node_problems(&mut p, &r.nodes, nodes);
    }
    if r.api_host.is_some() || members != masters {
        etcd_problems(&mut p, &r.etcd, members);
    }
    release_problems(&mut p, &r.release);
    vip_problems(&mut p, &r.vip);
    for b in r.haproxy.iter().filter(|b| b.status != "UP") {
        p.push(problem(&b.host, format!("haproxy reports the API server `{}` {}", b.server, b.status),
            format!("check the API server on `{}` (`crictl ps --name kube-apiserver`, its /readyz on port 6443)", b.server)));
    }
    for c in r
        .certificates
        .iter()
        .filter(|c| c.days_left() < DEFAULT_WARN_DAYS)
    {
        let fix = match c.authority {
            true => {
                "a certificate authority is renewed by hand: follow kubeadm's guide to CA rotation"
                    .into()
            }
            false => "renew them with `bundle certs renew --inventory …`".to_string(),
        };
        let when = match c.expired() {
            true => "has expired".to_string(),
            false => format!("expires in {} days", c.days_left()),
        };
        p.push(problem(
            &c.host,
            format!("certificate `{}` {when}", c.name),
            fix,
        ));
    }
    for g in r.registry.iter().filter(|g| !g.reachable) {
        p.push(problem(&g.host, format!("the registry does not answer: {}", g.detail),
            "check the registry's name resolution (`/etc/hosts`), the route to it and the CA under /etc/containerd/certs.d there".into()));
    }
    p
}

fn problem(host: &str, problem: String, fix: String) -> StatusProblem {
    StatusProblem {
        host: Some(host.into()),
        problem,
        fix,
    }
}

fn node_problems(p: &mut Vec<StatusProblem>, found: &[NodeStatus], expected: &[String]) {
    for n in found {
        if !n.ready {
            p.push(problem(&n.name, "the node is NotReady".into(),
                format!("look at its kubelet (`journalctl -u kubelet` on `{}`) and `kubectl describe node {}`", n.name, n.name)));
        }
        if !n.schedulable {
            p.push(problem(
                &n.name,
                "the node is cordoned (SchedulingDisabled)".into(),
                format!("`kubectl uncordon {}` once its maintenance is over", n.name),
            ));
        }
    }
    for e in expected
        .iter()
        .filter(|e| !found.iter().any(|n| &n.name == *e))
    {
        p.push(problem(
            e,
            "the node is not registered with the API server".into(),
            "look at its kubelet (`journalctl -u kubelet`); `bundle install` again joins it".into(),
        ));
    }
}

fn etcd_problems(p: &mut Vec<StatusProblem>, members: &[EtcdMember], hosts: &[String]) {
    for m in members
        .iter()
        .filter(|m| !m.healthy || m.status != "started")
    {
        let who = if m.name.is_empty() {
            m.id.as_str()
        } else {
            m.name.as_str()
        };
        p.push(problem(
            who,
            format!("etcd member `{}` is {} and not healthy", m.id, m.status),
            format!(
                "look at the etcd container on `{who}` (`crictl logs $(crictl ps --name etcd -q)`)"
            ),
        ));
    }
    for m in hosts
        .iter()
        .filter(|m| !members.iter().any(|e| &e.name == *m))
    {
        p.push(problem(
            m,
            "no etcd member runs here (or none answered)".into(),
            format!("look at the etcd container on `{m}` (`crictl ps -a --name etcd`); a master without a member: remove the node (`bundle nodes remove`) and join it again (`bundle install`)"),
        ));
    }
}

fn release_problems(p: &mut Vec<StatusProblem>, r: &ReleaseStatus) {
    if let (Some(s), Some(c)) = (&r.state, &r.cluster) {
        if s != c {
            p.push(StatusProblem {
                host: None,
                problem: format!("the state folder records {} {} but the cluster's ConfigMap {} {}", s.bundle, s.version, c.bundle, c.version),
                fix: "check that `--state` is this cluster's; an interrupted upgrade is finished by running `bundle upgrade` again".into(),
            });
        }
    }
}

fn vip_problems(p: &mut Vec<StatusProblem>, vip: &VipStatus) {
    let fix = "look at keepalived on the masters (`systemctl status keepalived`, `journalctl -u keepalived`) and at VRRP traffic between them";
    match vip.holders.len() {
        1 => {}
        0 => p.push(StatusProblem {
            host: None,
            problem: format!("no master holds the VIP {}", vip.address),
            fix: fix.into(),
        }),
        _ => p.push(StatusProblem {
            host: Some(vip.holders.join(", ")),
            problem: format!(
                "{} masters hold the VIP {} (split brain)",
                vip.holders.len(),
                vip.address
            ),
            fix: fix.into(),
        }),
    }
}

/// `kubectl get nodes --no-headers`: `NAME STATUS ROLES AGE VERSION`.
fn parse_nodes(text: &str) -> Vec<NodeStatus> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let [name, status, roles, _age, version, ..] = w[..] else {
                return None;
            };
            let conditions: Vec<&str> = status.split(',').collect();
            Some(NodeStatus {
                name: name.into(),
                roles: match roles {
                    "<none>" => vec![],
                    r => r.split(',').map(String::from).collect(),
                },
                version: version.into(),
                ready: conditions.contains(&"Ready"),
                schedulable: !conditions.contains(&"SchedulingDisabled"),
            })
        })
        .collect()
}

/// `etcdctl member list`: `ID, STATUS, NAME, PEER URLS, CLIENT URLS, IS LEARNER`.
fn parse_members(text: &str) -> Vec<EtcdMember> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let [id, status, name, _peer, client, ..] = f[..] else {
                return None;
            };
            Some(EtcdMember {
                id: id.into(),
                name: name.into(),
                status: status.into(),
                client_url: client.into(),
                healthy: false,
            })
        })
        .collect()
}

/// `etcdctl endpoint health --cluster` (stdout and stderr): the healthy endpoints.
fn parse_health(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            l.split_once(" is healthy:")
                .map(|(url, _)| url.trim().to_string())
        })
        .collect()
}

/// haproxy's stats CSV: `(server, status)` of each server of the API server backend.
fn parse_haproxy_csv(text: &str) -> Vec<(String, String)> {
    let backend = crate::render::haproxy::BACKEND;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (px, sv, status) = (f.first()?, f.get(1)?, f.get(17)?);
            (*px == backend && !matches!(*sv, "BACKEND" | "FRONTEND"))
                .then(|| (sv.to_string(), status.to_string()))
        })
        .collect()
}

/// `ip -o addr show` lists `vip` as an address.
fn addr_shows(text: &str, vip: &str) -> bool {
    text.lines().any(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        w.windows(2)
            .any(|p| matches!(p[0], "inet" | "inet6") && p[1].split('/').next() == Some(vip))
    })
}

/// The registry's `/v2/` answered as a registry does (200, or 401 without credentials).
fn registry_answered(code: &str) -> bool {
    matches!(code, "200" | "401")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_read_with_readiness_and_cordons() {
        let text = "m1   Ready                      control-plane   5m   v1.29.2\nw1   NotReady                   <none>          5m   v1.29.1\nw2   Ready,SchedulingDisabled   <none>          5m   v1.29.2\n";
        let n = parse_nodes(text);
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[0],
            NodeStatus {
                name: "m1".into(),
                roles: vec!["control-plane".into()],
                version: "v1.29.2".into(),
                ready: true,
                schedulable: true,
            }
        );
        assert!(!n[1].ready && n[1].roles.is_empty() && n[1].version == "v1.29.1");
        assert!(n[2].ready && !n[2].schedulable);
    }

    #[test]
    fn etcd_members_and_health_are_read() {
        let list = "8e9e05c52164694d, started, m1, https://10.0.0.1:2380, https://10.0.0.1:2379, false\n91bc3c398fb3c146, unstarted, , https://10.0.0.2:2380, , false\n";
        let m = parse_members(list);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].name.as_str(), m[0].client_url.as_str()),
            ("m1", "https://10.0.0.1:2379")
        );
        assert_eq!(
            (m[1].status.as_str(), m[1].name.as_str()),
            ("unstarted", "")
        );
        let health = "https://10.0.0.1:2379 is healthy: successfully committed proposal: took = 2.1ms\nhttps://10.0.0.3:2379 is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n";
        assert_eq!(parse_health(health), ["https://10.0.0.1:2379"]);
    }

    #[test]
    fn haproxy_csv_gives_the_api_servers_only() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\nstats,FRONTEND,,,0,1,,1,0,0,0,0,0,,,,,OPEN,\nkube-apiserver,m1,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1\nkube-apiserver,m2,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN,1\nkube-apiserver,BACKEND,0,0,0,1,,1,0,0,0,0,,0,0,0,0,UP,2\n";
        assert_eq!(
            parse_haproxy_csv(csv),
            [
                ("m1".to_string(), "UP".to_string()),
                ("m2".to_string(), "DOWN".to_string())
            ]
        );
    }

    #[test]
    fn the_vip_is_matched_as_a_whole_address() {
        let text = "2: eth0    inet 10.0.0.1/24 brd 10.0.0.255 scope global eth0\n2: eth0    inet 10.0.0.100/32 scope global eth0\n";
        assert!(addr_shows(text, "10.0.0.100"));
        assert!(!addr_shows(text, "10.0.0.10"));
        assert!(registry_answered("401") && !registry_answered("000"));
    }

    fn healthy_report() -> StatusReport {
        StatusReport {
            api_host: Some("m1".into()),
            nodes: parse_nodes("m1 Ready control-plane 5m v1\nw1 Ready <none> 5m v1\n"),
            etcd: vec![EtcdMember {
                id: "a".into(),
                name: "m1".into(),
                status: "started".into(),
                client_url: "u".into(),
                healthy: true,
            }],
            vip: VipStatus {
                address: "10.0.0.100".into(),
                holders: vec!["m1".into()],
            },
            ..StatusReport::default()
        }
    }

    #[test]
    fn each_unhealthy_finding_is_a_problem_naming_its_host() {
        let names = |r: &StatusReport| -> Vec<(Option<String>, String)> {
            problems(
                r,
                &["m1".into(), "w1".into()],
                &["m1".into()],
                &["m1".into()],
            )
            .into_iter()
            .map(|p| (p.host, p.problem))
            .collect()
        };
        assert_eq!(names(&healthy_report()), []);
        let mut r = healthy_report();
        r.nodes[1].schedulable = false;
        r.etcd[0].healthy = false;
        r.vip.holders.push("m2".into());
        r.haproxy.push(HaproxyBackend {
            host: "m1".into(),
            server: "m2".into(),
            status: "DOWN".into(),
        });
        r.registry.push(RegistryReach {
            host: "w1".into(),
            reachable: false,
            detail: "curl: (6) Could not resolve host".into(),
        });
        let found = names(&r);
        assert_eq!(found.len(), 5, "{found:?}");
        assert_eq!(
            found[0],
            (
                Some("w1".into()),
                "the node is cordoned (SchedulingDisabled)".into()
            )
        );
        assert_eq!(found[1].0.as_deref(), Some("m1"));
        assert_eq!(found[2].0.as_deref(), Some("m1, m2"));
        assert_eq!(
            found[3],
            (
                Some("m1".into()),
                "haproxy reports the API server `m2` DOWN".into()
            )
        );
        assert_eq!(found[4].0.as_deref(), Some("w1"));
        r.nodes.pop();
        r.etcd.clear();
        let found = names(&r);
        assert!(found.contains(&(
            Some("w1".into()),
            "the node is not registered with the API server".into()
        )));
        assert!(found.contains(&(
            Some("m1".into()),
            "no etcd member runs here (or none answered)".into()
        )));

        // External etcd: the members expected are the etcd hosts, and they are judged
        // even when no API server answered.
        let mut r = healthy_report();
        r.api_host = None;
        r.etcd[0].name = "e1".into();
        let found = problems(
            &r,
            &["m1".into()],
            &["m1".into()],
            &["e1".into(), "e2".into()],
        );
        let hosts: Vec<Option<String>> = found.into_iter().map(|p| p.host).collect();
        assert!(hosts.contains(&Some("e2".into())), "{hosts:?}");
        assert!(!hosts.contains(&Some("e1".into())), "{hosts:?}");
    }
}
