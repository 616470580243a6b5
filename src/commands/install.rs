use std::path::PathBuf;

use bundle_installer::ops::apply::{apply, ApplyOptions};
use bundle_installer::ops::{plan_install, PlanOptions};
use bundle_installer::plan::PhaseName;

use crate::args::{parse_phase, ExecArgs, HostsArgs};
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// Arguments of `bundle install`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle (`k8s-….tar.zst`)
    pub bundle: PathBuf,
    /// The cluster inventory (`bundle init` writes a template)
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Public key the bundle must be signed with
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Contact no host: verify the bundle and write the plan to `--plan-out`
    #[arg(long)]
    pub dry_run: bool,
    /// Folder for plan.json, plan.txt, secrets.json and every host's files
    #[arg(long, required_if_eq("dry_run", "true"))]
    pub plan_out: Option<PathBuf>,
    /// Accept a control plane that is not highly available (even or fewer than 3 masters)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
    #[command(flatten)]
    pub hosts: HostsArgs,
    /// Start at this phase; earlier ones are taken as done (the resume hint says which)
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    pub from: Option<PhaseName>,
    /// Do not push the images first (they are in the registry already)
    #[arg(long)]
    pub skip_push: bool,
    /// After the install, run the HA drill: VIP failover and one master down
    #[arg(long)]
    pub drill: bool,
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    if !args.dry_run {
        return run_install(args, ui);
    }
    let plan_out = args
        .plan_out
        .expect("clap requires --plan-out with --dry-run");
    ui.status(
        "Verifying",
        format!(
            "{} and planning for {}",
            args.bundle.display(),
            args.inventory.display()
        ),
    );
    let outcome = plan_install(&PlanOptions {
        bundle: args.bundle,
        inventory: args.inventory,
        pubkey: args.pubkey,
        plan_out: plan_out.clone(),
        force: args.force,
    })?;
    for w in &outcome.warnings {
        ui.warn(format!("`{}`: {}", w.field, w.message));
    }
    for n in &outcome.plan.notes {
        ui.status("Note", n);
    }
    let plan = &outcome.plan;
    ui.status(
        "Verified",
        format!(
            "{} entries of bundle {}",
            outcome.entries_verified, plan.bundle
        ),
    );
    ui.status(
        "Planned",
        format!(
            "{} steps on {} hosts in {} phases: {}",
            plan.step_count(),
            plan.hosts.len(),
            plan.phases.len(),
            plan_out.join("plan.txt").display()
        ),
    );
    let secrets = plan_out.join("secrets.json");
    if outcome.secrets_created {
        ui.status(
            "Generated",
            format!(
                "secrets in {} (mode 0600; keep it with the plan)",
                secrets.display()
            ),
        );
    } else {
        ui.status(
            "Kept",
            format!("the secrets of the earlier plan in {}", secrets.display()),
        );
    }
    Ok(())
}

fn run_install(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let mut opts = ApplyOptions::new(args.bundle, args.inventory, args.pubkey);
    opts.state = args.exec.state.clone();
    opts.force = args.force;
    opts.parallel = args.hosts.parallel;
    opts.from = args.from;
    opts.only = args.hosts.only.clone();
    opts.yes = args.exec.yes;
    opts.skip_push = args.skip_push;
    opts.drill = args.drill;
    opts.become_password = args.exec.become_password()?;
    let reporter = CliReporter::new(ui, args.exec.json);
    let outcome = apply(&opts, &reporter)?;
    reporter.finish();
    if !args.exec.json {
        ui.status(
            "Installed",
            format!(
                "cluster `{}` ({} steps carried out, {} already done); logs in {}",
                outcome.plan.cluster,
                outcome.ran,
                outcome.skipped,
                outcome.state.join("_state/logs").display()
            ),
        );
        for w in &outcome.warnings {
            ui.warn(w);
        }
    }
    Ok(())
}
