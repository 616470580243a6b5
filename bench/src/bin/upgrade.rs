//! `bundle upgrade` of 3 masters + 6 workers from Kubernetes 1.29.2 to 1.30.1 on
//! bundle-testbed hosts (the same site as the install benchmark: fake kubeadm, kubectl,
//! kubelet RPMs upgraded with dnf from the repository `bundle upgrade` serves; haproxy,
//! keepalived and containerd really running; a real three-member etcd on the masters for
//! the snapshot taken first), at `--parallel 1` and `--parallel 3` (workers drained at a
//! time), each on a fresh cluster installed first. While it runs, the API's `/readyz` is
//! asked through the VIP every 100 ms from the deploy namespace (a fresh TLS connection
//! each time, 1 s timeout); every failed request is counted. The goal is none.
//!
//! Needs root (namespaces), like `tests/install_e2e.rs`.
//!
//! cargo build --release && cargo run --release -p bundle-bench --bin upgrade

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bundle_bench::site::{self, sh, MASTERS, WORKERS};
use bundle_bench::{bundle_binary, measure, Measure};
use bundle_testbed::real::hosts::TestCluster;

/// Requests made and failed while the upgrade ran.
#[derive(Debug, Default, Clone, Copy)]
struct Availability {
    requests: u64,
    failed: u64,
}

/// Asks `/readyz` through the VIP every 100 ms until `stop`.
fn probe(c: &TestCluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Availability> {
    let (ns, vip) = (c.deploy_netns().to_string(), c.vip().to_string());
    std::thread::spawn(move || {
        let mut a = Availability::default();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let ok = std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "curl", "-ksf", "-o", "/dev/null"])
                .args(["--max-time", "1", &format!("https://{vip}:8443/readyz")])
                .status()
                .is_ok_and(|s| s.success());
            a.requests += 1;
            a.failed += u64::from(!ok);
            next += Duration::from_millis(100);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        a
    })
}

/// A fresh site, installed from the first bundle, then upgraded at `parallel`.
fn upgrade(
    bundle: &str,
    work: &std::path::Path,
    parallel: usize,
) -> anyhow::Result<(Measure, Availability)> {
    let (c, _registry, run) = site::start_site(work, &format!("parallel-{parallel}"))?;
    let w = work.display();
    let install =
        format!("install {w}/e2e.tar.zst --inventory cluster.yaml --pubkey {w}/builder.pub --yes");
    sh(&run, &site::bundle_command(bundle, &c, &run, &install))?;
    let masters: Vec<String> = c.masters().map(|h| h.name.clone()).collect();
    let masters: Vec<&str> = masters.iter().map(String::as_str).collect();
    bundle_testbed::real::etcd::start(&c, &masters)?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = probe(&c, stop.clone());
    let args = format!(
        "upgrade {w}/next.tar.zst --inventory cluster.yaml --pubkey {w}/builder.pub --yes --parallel {parallel}"
    );
    let m = measure(&run, &site::bundle_command(bundle, &c, &run, &args));
    stop.store(true, Ordering::Relaxed);
    let a = prober.join().expect("the prober does not panic");
    Ok((m?, a))
}

fn main() -> anyhow::Result<()> {
    let bundle = bundle_binary()?;
    let bundle = bundle.display().to_string();
    let work = tempfile::tempdir()?;
    let w = work.path();
    site::build_bundle(&bundle, w, &site::INSTALLED)?;
    site::build_bundle(&bundle, w, &site::NEXT)?;
    let mut rows = Vec::new();
    for parallel in [1, 3] {
        rows.push((parallel, upgrade(&bundle, w, parallel)?));
    }
    println!(
        "\nbundle upgrade 1.29.2 → 1.30.1, {MASTERS} masters + {WORKERS} workers, {} cores:\n",
        std::thread::available_parallelism()?.get()
    );
    println!("| --parallel | wall | peak RSS | requests through the VIP | failed | target |");
    println!("|---|---|---|---|---|---|");
    for (parallel, (m, a)) in rows {
        println!(
            "| {parallel} | {:.1} s | {} MiB | {} | {} | no failed request |",
            m.wall,
            m.peak_kib / 1024,
            a.requests,
            a.failed
        );
    }
    Ok(())
}
