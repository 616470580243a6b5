//! The plan of `bundle restore`: kubeadm's restore of a stacked etcd from a snapshot,
//! on every master. Two waves, every master in each:
//!
//! 1. the snapshot already uploaded (by the operation) checked against the backup's
//!    SHA-256; the control plane stopped by moving the etcd and kube-apiserver static
//!    pod manifests aside (the kubelet stops a pod whose file is gone) and waited for
//!    until no etcd container runs; the snapshot restored into `/var/lib/etcd.restored`
//!    with this master's member name and peer URL and the whole initial cluster;
//! 2. once every master got that far: the old `/var/lib/etcd` kept as
//!    `/var/lib/etcd.before-restore-STAMP`, the restored one moved in its place, the
//!    manifests moved back, and the whole etcd cluster and this master's API server
//!    waited for.
//!
//! Nothing in the second wave starts while a master's etcd still runs on the old data
//! or its restore failed: a failure in the first wave leaves every data directory as it
//! was (the control plane stopped; the same command goes on). `STAMP` is the restore's
//! own (kept in the state folder until it finishes): the step definitions differ from
//! one restore to the next, so an earlier restore's records never skip a step, and a
//! resumed one skips what it finished.

use super::steps::{or_fail, run, step, wait};
use super::{HostStep, HostSteps, OnFailure, Phase, PhaseName, Plan, Step};

/// Where the snapshot is uploaded on every master (under `/var/lib`, which the `ctr`
/// fallback mounts into the etcd image).
pub const SNAPSHOT_PATH: &str = "/var/lib/bundle/restore/etcd-snapshot.db";
/// Where the static pod manifests wait while the control plane is stopped.
pub const MANIFESTS_ASIDE: &str = "/etc/kubernetes/bundle/restore-manifests";
/// kubeadm's static pod manifests.
const MANIFESTS: &str = "/etc/kubernetes/manifests";
/// The control plane's static pods stopped for the restore: etcd, and the API server
/// that would otherwise write to it (and serve from it) meanwhile.
const STOPPED: [&str; 2] = ["etcd", "kube-apiserver"];
/// etcd's data directory (kubeadm's `--data-dir` and the pod's hostPath).
const DATA: &str = "/var/lib/etcd";
/// Where the snapshot is restored before it takes the data directory's place.
const RESTORED: &str = "/var/lib/etcd.restored";

/// One member of the restored etcd: a master, by name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreMember {
    /// The master's name, its etcd member's name (kubeadm names members by node).
    pub name: String,
    /// Its address, where its peer URL listens.
    pub address: String,
}

/// What the restore plan needs.
#[derive(Debug)]
pub struct Restoration<'a> {
    /// The plan the cluster was installed with (its summary is kept).
    pub installed: &'a Plan,
    /// Every master, in inventory order.
    pub members: Vec<RestoreMember>,
    /// The snapshot's SHA-256 (hex), as `backup.json` records it.
    pub snapshot_sha256: String,
    /// The restore's stamp (`20261201T101500Z`): names the old data's folder.
    pub stamp: String,
}

/// The restore plan. Pure, as [`super::plan()`] is.
pub fn restoration(r: &Restoration) -> Plan {
    let initial_cluster = r
        .members
        .iter()
        .map(|m| format!("{}={}", m.name, peer_url(&m.address)))
        .collect::<Vec<_>>()
        .join(",");
    let token = format!("{}-restore-{}", r.installed.cluster, r.stamp.to_lowercase());
    // The stamp in every step's description: no step of this restore has the
    // definition of an earlier restore's (whose records would skip it as finished).
    let stamped = |steps: Vec<Step>| -> Vec<Step> {
        steps
            .into_iter()
            .map(|mut s| {
                s.description = format!("{} (restore {})", s.description, r.stamp);
                s
            })
            .collect()
    };
    let mut hosts: Vec<HostSteps> = r
        .members
        .iter()
        .map(|m| HostSteps {
            host: m.name.clone(),
            wave: 0,
            steps: stamped(stop_and_restore(r, m, &initial_cluster, &token)),
        })
        .collect();
    hosts.extend(r.members.iter().map(|m| HostSteps {
        host: m.name.clone(),
        wave: 1,
        steps: stamped(swap_and_start(r)),
    }));
    let mut plan = r.installed.clone();
    plan.hosts
        .retain(|h| r.members.iter().any(|m| m.name == h.name));
    plan.phases = vec![Phase {
        name: PhaseName::Restore,
        hosts,
    }];
    plan.repo_served_by_deploy = None;
    plan
}

/// `https://ADDRESS:2380`.
fn peer_url(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(ip) => format!("https://{}", crate::render::host_port(&ip, 2380)),
        Err(_) => format!("https://{address}:2380"),
    }
}

/// The old data directory's new name.
fn before(stamp: &str) -> String {
    format!("{DATA}.before-restore-{stamp}")
}

/// Wave 1: the snapshot checked, the control plane stopped, the snapshot restored.
fn stop_and_restore(
    r: &Restoration,
    m: &RestoreMember,
    initial_cluster: &str,
    token: &str,
) -> Vec<Step> {
    let before = before(&r.stamp);
    // Under `set -e` the `mv`, last of its list, stops the script when it fails.
    let aside = STOPPED
        .iter()
        .map(|p| format!("{MANIFESTS}/{p}.yaml"))
        .map(|f| format!("[ ! -e {f} ] || mv {f} {MANIFESTS_ASIDE}/"))
        .collect::<Vec<_>>()
        .join("; ");
    let none_running = STOPPED
        .iter()
        .map(|p| format!("[ ! -e {MANIFESTS}/{p}.yaml ]"))
        .collect::<Vec<_>>()
        .join(" && ");
    let args = format!(
        "--data-dir {RESTORED}.tmp --name {name} --initial-cluster {initial_cluster} --initial-cluster-token {token} --initial-advertise-peer-urls {peer}",
        name = m.name,
        peer = peer_url(&m.address),
    );
    vec![
        run(
            "restore/snapshot",
            "the uploaded snapshot is the backup's, and etcd's data directory can be swapped",
            format!(
                "printf '%s  %s\\n' {sha} {SNAPSHOT_PATH} | sha256sum -c --quiet - && {}",
                or_fail(
                    &format!("! mountpoint -q {DATA}"),
                    &format!("{DATA} is a mount point: restore into it by hand (kubeadm's documentation), or move the mount"),
                ),
                sha = r.snapshot_sha256,
            ),
            None,
        ),
        run(
            "restore/stop",
            "the control plane stopped: the etcd and kube-apiserver manifests moved aside",
            format!("set -e; mkdir -p {MANIFESTS_ASIDE}; {aside}"),
            // Also once this restore swapped the data: a resumed restore does not stop
            // what it started again.
            Some(format!("[ -d {before} ] || {{ {none_running}; }}")),
        ),
        wait(
            "restore/stopped",
            "no etcd container runs any more",
            "[ -z \"$(crictl ps --name etcd -q 2>/dev/null)\" ]".into(),
            180,
        ),
        run(
            "restore/data",
            &format!("the snapshot restored into {RESTORED} as the member `{}`", m.name),
            format!(
                "set -e; rm -rf {RESTORED}.tmp {RESTORED}; {}; mv {RESTORED}.tmp {RESTORED}",
                restore_tool(&format!("snapshot restore {SNAPSHOT_PATH} {args}"))
            ),
            // No check: a leftover `etcd.restored` may be another restore's. The record
            // of this restore (its stamp is in the step) skips it once done.
            None,
        ),
    ]
}

/// `etcdutl ARGS` (or the same with `etcdctl`) with the first tool there is.
///
/// kubeadm hosts have no etcd binaries: etcd runs from its image as a static pod. So the
/// tool is the host's `etcdutl` (etcd ≥ 3.5) when an operator installed one, else its
/// `etcdctl` (`ETCDCTL_API=3`; deprecated for this in 3.5, gone in 3.6), else the
/// cluster's own etcd image, named in the etcd manifest set aside, run with `ctr` (the
/// image is in containerd's `k8s.io` namespace, where the kubelet pulled it) with
/// `/var/lib` bind-mounted: `etcdutl`, or `etcdctl` for a 3.4 image. The tests take
/// the `etcdctl` branch: test hosts carry Debian's etcd 3.4 client and no `etcdutl`.
fn restore_tool(args: &str) -> String {
    format!(
        "if command -v etcdutl >/dev/null 2>&1; then etcdutl {args}
elif command -v etcdctl >/dev/null 2>&1; then ETCDCTL_API=3 etcdctl {args}
else image=$(sed -n 's/^ *image: *//p' {MANIFESTS_ASIDE}/etcd.yaml | head -n 1); {}
  case \"$image\" in *:3.4.*|*:v3.4.*) set -- --env ETCDCTL_API=3 \"$image\" bundle-etcd-restore etcdctl ;; *) set -- \"$image\" bundle-etcd-restore etcdutl ;; esac
  ctr -n k8s.io run --rm --net-host --mount type=bind,src=/var/lib,dst=/var/lib,options=rbind:rw \"$@\" {args}
fi",
        or_fail(
            "[ -n \"$image\" ]",
            &format!("no etcdutl or etcdctl here and no image in {MANIFESTS_ASIDE}/etcd.yaml")
        ),
    )
}

/// Wave 2: the data directories swapped, the control plane started, health waited for.
fn swap_and_start(r: &Restoration) -> Vec<Step> {
    let before = before(&r.stamp);
    let back = STOPPED
        .iter()
        .map(|p| format!("{MANIFESTS_ASIDE}/{p}.yaml"))
        .map(|f| format!("[ ! -e {f} ] || mv {f} {MANIFESTS}/"))
        .collect::<Vec<_>>()
        .join("; ");
    let all_back = STOPPED
        .iter()
        .map(|p| format!("[ ! -e {MANIFESTS_ASIDE}/{p}.yaml ]"))
        .collect::<Vec<_>>()
        .join(" && ");
    vec![
        run(
            "restore/swap",
            &format!("the old data kept as {before}, the restored data moved into {DATA}"),
            format!(
                "set -e; if [ -d {RESTORED} ]; then
  if [ -e {DATA} ]; then {}; mv {DATA} {before}; fi
  mv {RESTORED} {DATA}
elif [ ! -d {before} ]; then echo 'neither {RESTORED} nor {before} is there: run the restore again from its start' >&2; exit 1
fi",
                or_fail(&format!("[ ! -e {before} ]"), &format!("{before} is there already")),
            ),
            Some(format!("[ -d {before} ] && [ ! -e {RESTORED} ]")),
        ),
        run(
            "restore/start",
            "the control plane started again: its manifests moved back",
            format!("set -e; {back}"),
            Some(all_back),
        ),
        wait(
            "restore/etcd",
            "every etcd member answers healthy",
            format!(
                "{} && {} endpoint health --cluster",
                super::commands::ETCD_CONTAINER,
                super::commands::CRICTL_ETCDCTL
            ),
            300,
        ),
        wait(
            "restore/api",
            "the API server answers on this master",
            "curl -ksf -o /dev/null https://127.0.0.1:6443/readyz".into(),
            300,
        ),
        step(
            "restore/clean",
            "the uploaded snapshot removed",
            HostStep::Run {
                command: format!("rm -f {SNAPSHOT_PATH}"),
                check: Some(format!("[ ! -e {SNAPSHOT_PATH} ]")),
                after_change_of: vec![],
                capture: None,
                on_failure: OnFailure::Warn,
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed() -> Plan {
        super::super::sample_plan(&[
            ("m1", "10.0.0.1", "master"),
            ("m2", "10.0.0.2", "master"),
            ("w1", "10.0.0.9", "worker"),
        ])
    }

    fn plan(stamp: &str) -> Plan {
        let installed = installed();
        restoration(&Restoration {
            installed: &installed,
            members: vec![
                RestoreMember {
                    name: "m1".into(),
                    address: "10.0.0.1".into(),
                },
                RestoreMember {
                    name: "m2".into(),
                    address: "fd00::2".into(),
                },
            ],
            snapshot_sha256: "ab".repeat(32),
            stamp: stamp.into(),
        })
    }

    #[test]
    fn every_master_stops_and_restores_before_any_swaps_and_starts() {
        let p = plan("20261201T101500Z");
        assert_eq!(p.phases.len(), 1);
        assert_eq!(p.phases[0].name, PhaseName::Restore);
        let order: Vec<(String, u32, Vec<&str>)> = p.phases[0]
            .hosts
            .iter()
            .map(|h| {
                let ids = h.steps.iter().map(|s| s.id.as_str()).collect();
                (h.host.clone(), h.wave, ids)
            })
            .collect();
        let first = vec![
            "restore/snapshot",
            "restore/stop",
            "restore/stopped",
            "restore/data",
        ];
        let second = vec![
            "restore/swap",
            "restore/start",
            "restore/etcd",
            "restore/api",
            "restore/clean",
        ];
        assert_eq!(
            order,
            vec![
                ("m1".into(), 0, first.clone()),
                ("m2".into(), 0, first),
                ("m1".into(), 1, second.clone()),
                ("m2".into(), 1, second),
            ]
        );
        // Only the masters take part.
        let names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["m1", "m2"]);
        assert!(!PhaseName::ALL.contains(&PhaseName::Restore));
    }

    fn command<'p>(p: &'p Plan, host: &'p str, id: &str) -> &'p str {
        match &p
            .host_steps(host)
            .find(|(_, s)| s.id == id)
            .unwrap()
            .1
            .action
        {
            HostStep::Run { command, .. } => command,
            HostStep::WaitFor { condition, .. } => condition,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_member_is_restored_under_its_name_into_the_whole_initial_cluster() {
        let p = plan("20261201T101500Z");
        let data = command(&p, "m2", "restore/data");
        assert!(data.contains(&format!("snapshot restore {SNAPSHOT_PATH} --data-dir /var/lib/etcd.restored.tmp --name m2 --initial-cluster m1=https://10.0.0.1:2380,m2=https://[fd00::2]:2380 --initial-cluster-token prod-restore-20261201t101500z --initial-advertise-peer-urls https://[fd00::2]:2380")), "{data}");
        for tool in [
            "then etcdutl snapshot restore",
            "ETCDCTL_API=3 etcdctl snapshot restore",
            "ctr -n k8s.io run --rm",
        ] {
            assert!(data.contains(tool), "{tool}: {data}");
        }
        let check = command(&p, "m1", "restore/snapshot");
        assert!(check.contains(&"ab".repeat(32)), "{check}");
        let swap = command(&p, "m1", "restore/swap");
        assert!(
            swap.contains("mv /var/lib/etcd /var/lib/etcd.before-restore-20261201T101500Z"),
            "{swap}"
        );
        assert!(
            !swap.contains("rm "),
            "the old data is never deleted: {swap}"
        );
        let stop = command(&p, "m1", "restore/stop");
        assert!(
            stop.contains(
                "mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/bundle/restore-manifests/"
            ),
            "{stop}"
        );
        assert!(
            stop.contains("mv /etc/kubernetes/manifests/kube-apiserver.yaml"),
            "{stop}"
        );
        let health = command(&p, "m1", "restore/etcd");
        assert!(
            health.contains("crictl exec") && health.ends_with("endpoint health --cluster"),
            "{health}"
        );
    }

    #[test]
    fn another_restore_is_a_new_plan_and_the_same_one_the_same() {
        assert_eq!(plan("20261201T101500Z"), plan("20261201T101500Z"));
        let (a, b) = (plan("20261201T101500Z"), plan("20261202T090000Z"));
        for (sa, sb) in a.host_steps("m1").zip(b.host_steps("m1")) {
            assert_ne!(
                crate::state::step_hash(sa.1),
                crate::state::step_hash(sb.1),
                "{} would be skipped as finished by an earlier restore",
                sa.1.id
            );
        }
    }
}
