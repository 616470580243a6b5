use std::path::PathBuf;

use bundle_installer::ops::certs::{
    check, plan_renewal, renew, CertExpiry, CertsOptions, DEFAULT_WARN_DAYS,
};

use crate::args::ExecArgs;
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle certs`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum CertsCommand {
    /// When every certificate expires, on every master and external etcd host (a table, or `--json`)
    Check(CheckArgs),
    /// Renew every certificate: external etcd members one at a time (each restarted),
    /// then kubeadm's, one master at a time (its control plane restarted)
    Renew(RenewArgs),
}

/// Arguments of `bundle certs renew`.
#[derive(clap::Args, Debug)]
pub struct RenewArgs {
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Contact no host and issue no certificate: write the renewal's plan to `--plan-out`
    #[arg(long)]
    pub dry_run: bool,
    /// Folder for the renewal's plan.json, plan.txt and every host's files
    #[arg(long, required_if_eq("dry_run", "true"))]
    pub plan_out: Option<PathBuf>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Arguments of `bundle certs check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Warn about certificates with fewer days left than this
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_WARN_DAYS)]
    pub warn_days: i64,
    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    match args.command {
        CertsCommand::Check(a) => run_check(a, ui),
        CertsCommand::Renew(r) => run_renew(r, ui),
    }
}

fn run_renew(r: RenewArgs, ui: &Ui) -> anyhow::Result<()> {
    let mut opts = CertsOptions {
        inventory: r.inventory,
        state: r.exec.state.clone(),
        become_password: None,
    };
    if let Some(dir) = r.plan_out.filter(|_| r.dry_run) {
        let plan = plan_renewal(&opts, &dir)?;
        ui.status(
            "Planned",
            format!(
                "the renewal: {} steps on {} hosts: {}",
                plan.step_count(),
                plan.hosts.len(),
                dir.join("plan.txt").display()
            ),
        );
        return Ok(());
    }
    opts.become_password = r.exec.become_password()?;
    let reporter = CliReporter::new(ui, r.exec.json);
    let hosts = renew(&opts, r.exec.yes, &reporter)?;
    reporter.finish();
    if !r.exec.json {
        ui.status(
            "Renewed",
            format!(
                "the certificates of {}; `bundle certs check` shows their new dates",
                hosts.join(", ")
            ),
        );
    }
    Ok(())
}

fn run_check(a: CheckArgs, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, a.exec.json);
    let report = check(
        &CertsOptions {
            inventory: a.inventory.clone(),
            state: a.exec.state.clone(),
            become_password: a.exec.become_password()?,
        },
        &reporter,
    )?;
    reporter.finish();
    if a.exec.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report.certificates);
    }
    let soon: Vec<&CertExpiry> = report
        .certificates
        .iter()
        .filter(|c| !c.expired() && c.days_left() < a.warn_days)
        .collect();
    for c in &soon {
        ui.warn(format!(
            "`{}` on `{}` expires in {} days ({})",
            c.name,
            c.host,
            c.days_left(),
            date(c.not_after)
        ));
    }
    let expired: Vec<String> = report
        .certificates
        .iter()
        .filter(|c| c.expired())
        .map(|c| format!("`{}` on `{}` ({})", c.name, c.host, date(c.not_after)))
        .collect();
    if !expired.is_empty() {
        return Err(crate::report::hinted(
            match expired.len() {
                1 => format!("a certificate has expired: {}", expired[0]),
                n => format!("{n} certificates have expired: {}", expired.join(", ")),
            },
            "renew them with `bundle certs renew --inventory …`: the external etcd members one at a time (when the cluster has them), then every master in turn, each restarted on the new certificates",
        ));
    }
    if !a.exec.json {
        ui.status(
            "Checked",
            format!(
                "{} certificates, {} expiring within {} days",
                report.certificates.len(),
                soon.len(),
                a.warn_days
            ),
        );
    }
    Ok(())
}

fn print_table(certs: &[CertExpiry]) {
    println!(
        "{:<10} {:<26} {:<22} {:>9}  CA",
        "HOST", "CERTIFICATE", "EXPIRES", "RESIDUAL"
    );
    for c in certs {
        let residual = if c.expired() {
            "expired".to_string()
        } else {
            format!("{}d", c.days_left())
        };
        println!(
            "{:<10} {:<26} {:<22} {:>9}  {}",
            c.host,
            c.name,
            date(c.not_after),
            residual,
            if c.authority { "yes" } else { "" }
        );
    }
}

/// `2027-12-04 07:00 UTC`.
fn date(seconds: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| seconds.to_string())
}
