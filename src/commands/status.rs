use std::path::PathBuf;

use bundle_installer::ops::certs::CertExpiry;
use bundle_installer::ops::status::{status, StatusOptions, StatusReport};

use crate::args::ExecArgs;
use crate::report::Unhealthy;
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn run(a: Args, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, a.exec.json);
    let report = status(
        &StatusOptions {
            inventory: a.inventory,
            state: a.exec.state.clone(),
            become_password: a.exec.become_password()?,
        },
        &reporter,
    )?;
    reporter.finish();
    if a.exec.json {
        // The last JSON line, after the events': stdout stays one JSON value a line.
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    if !report.healthy() {
        return Err(Unhealthy {
            problems: report.problems.len(),
        }
        .into());
    }
    if !a.exec.json {
        ui.status(
            "Healthy",
            format!("{}: {} nodes", report.cluster, report.nodes.len()),
        );
    }
    Ok(())
}

fn print_report(r: &StatusReport) {
    print_release(r);
    println!(
        "\n{:<10} {:<9} {:<15} {:<10} SCHEDULABLE",
        "NODE", "STATUS", "ROLES", "VERSION"
    );
    for n in &r.nodes {
        let roles = if n.roles.is_empty() {
            "-".to_string()
        } else {
            n.roles.join(",")
        };
        let ready = if n.ready { "Ready" } else { "NotReady" };
        let sched = if n.schedulable {
            "yes"
        } else {
            "no (cordoned)"
        };
        println!(
            "{:<10} {:<9} {:<15} {:<10} {sched}",
            n.name, ready, roles, n.version
        );
    }
    println!(
        "\n{:<10} {:<10} {:<9} CLIENT URL",
        "ETCD", "STATUS", "HEALTH"
    );
    for m in &r.etcd {
        let health = if m.healthy { "healthy" } else { "unhealthy" };
        let name = if m.name.is_empty() { &m.id } else { &m.name };
        println!(
            "{:<10} {:<10} {:<9} {}",
            name, m.status, health, m.client_url
        );
    }
    let holders = match r.vip.holders.len() {
        0 => "nobody".to_string(),
        _ => r.vip.holders.join(", "),
    };
    println!("\nVIP {} held by {holders}", r.vip.address);
    println!("\n{:<10} {:<10} STATUS", "HAPROXY", "SERVER");
    for b in &r.haproxy {
        println!("{:<10} {:<10} {}", b.host, b.server, b.status);
    }
    print_certificates(&r.certificates);
    println!("\n{:<10} {:<10} ANSWER", "REGISTRY", "REACHED");
    for g in &r.registry {
        let reached = if g.reachable { "yes" } else { "no" };
        println!("{:<10} {:<10} {}", g.host, reached, g.detail);
    }
    if !r.problems.is_empty() {
        println!("\nPROBLEMS");
        for p in &r.problems {
            println!(
                "{:<10} {}",
                p.host.as_deref().unwrap_or("cluster"),
                p.problem
            );
            println!("{:<10}   fix: {}", "", p.fix);
        }
    }
}

fn print_release(r: &StatusReport) {
    let shown = |rel: &Option<bundle_installer::release::Release>| match rel {
        Some(rel) => format!(
            "{} {} (Kubernetes {})",
            rel.bundle, rel.version, rel.kubernetes_version
        ),
        None => "not recorded".to_string(),
    };
    println!("CLUSTER    {}", r.cluster);
    println!("RELEASE    {} (state folder)", shown(&r.release.state));
    println!(
        "           {} (ConfigMap kube-system/bundle-release)",
        shown(&r.release.cluster)
    );
}

/// The soonest expiry of each master, leaf and authority apart (`bundle certs check`
/// lists them all).
fn print_certificates(certs: &[CertExpiry]) {
    println!("\n{:<10} {:<9} {:<26} RESIDUAL", "CERTS", "KIND", "SOONEST");
    let mut hosts: Vec<&str> = certs.iter().map(|c| c.host.as_str()).collect();
    hosts.dedup();
    for h in hosts {
        for (kind, authority) in [("leaf", false), ("authority", true)] {
            let soonest = certs
                .iter()
                .filter(|c| c.host == h && c.authority == authority)
                .min_by_key(|c| c.seconds_left);
            if let Some(c) = soonest {
                let residual = if c.expired() {
                    "expired".to_string()
                } else {
                    format!("{}d", c.days_left())
                };
                println!("{:<10} {:<9} {:<26} {residual}", h, kind, c.name);
            }
        }
    }
}
