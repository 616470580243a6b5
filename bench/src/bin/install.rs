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

use anyhow::Context;
use bundle_bench::site::{self, sh, MASTERS, WORKERS};
use bundle_bench::{bundle_binary, header, measure, row, Measure};
use bundle_testbed::real::hosts::TestCluster;
use bundle_testbed::Registry;

/// One install on a fresh cluster; returns its measure, the steps recorded and the cluster
/// (still running, for the SSH measure).
fn install(
    bundle: &str,
    work: &Path,
    parallel: usize,
) -> anyhow::Result<(Measure, usize, TestCluster, Registry)> {
    let (c, registry, run) = site::start_site(work, &format!("parallel-{parallel}"))?;
    let args = format!(
        "install {w}/e2e.tar.zst --inventory cluster.yaml --pubkey {w}/builder.pub --yes --parallel {parallel}",
        w = work.display()
    );
    let m = measure(&run, &site::bundle_command(bundle, &c, &run, &args))?;
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
    site::build_bundle(&bundle, w, &site::INSTALLED)?;

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
