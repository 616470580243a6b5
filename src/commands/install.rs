use std::path::PathBuf;

use bundle_installer::ops::{plan_install, PlanOptions};

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
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let Some(plan_out) = args.plan_out.filter(|_| args.dry_run) else {
        return Err(bundle_installer::Error::ExecutionNotBuilt.into());
    };
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
