use std::path::PathBuf;

use bundle_installer::ops::upgrade::{upgrade, UpgradeOptions, UpgradeOutcome};
use bundle_installer::plan::PhaseName;
use bundle_installer::upgrade::GateOptions;

use crate::args::ExecArgs;
use crate::reporters::CliReporter;
use crate::ui::Ui;

/// The phases of an upgrade, in order (`--from` takes one).
const PHASES: [PhaseName; 6] = [
    PhaseName::Preflight,
    PhaseName::Repo,
    PhaseName::Upgrade,
    PhaseName::Nodes,
    PhaseName::Cni,
    PhaseName::Verify,
];

/// Arguments of `bundle upgrade`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The new bundle (the next patch or minor release of the installed one)
    pub bundle: PathBuf,
    /// The cluster inventory the install used
    #[arg(short, long, default_value = "cluster.yaml")]
    pub inventory: PathBuf,
    /// Public key the new bundle must be signed with
    #[arg(long)]
    pub pubkey: PathBuf,
    /// Contact no host: verify the bundle, check it may follow the installed one and
    /// write the plan to `--plan-out`
    #[arg(long)]
    pub dry_run: bool,
    /// Folder for the upgrade's plan.json, plan.txt and every host's files
    #[arg(long, required_if_eq("dry_run", "true"))]
    pub plan_out: Option<PathBuf>,
    /// Workers drained and upgraded at the same time (masters always go one at a time)
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub parallel: usize,
    /// Accept an earlier patch release of the same minor (never across a minor)
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Accept a bundle signed by this key ID instead of the installed release's key
    #[arg(long, value_name = "KEY_ID")]
    pub new_key: Option<String>,
    /// Start at this phase; earlier ones are taken as done (the resume hint says which)
    #[arg(long, value_name = "PHASE", value_parser = parse_upgrade_phase)]
    pub from: Option<PhaseName>,
    /// Do not push the images first (they are in the registry already)
    #[arg(long)]
    pub skip_push: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

fn parse_upgrade_phase(s: &str) -> Result<PhaseName, String> {
    PHASES.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
        let names: Vec<&str> = PHASES.iter().map(|p| p.as_str()).collect();
        format!(
            "unknown phase; an upgrade's phases are {}",
            names.join(", ")
        )
    })
}

pub fn run(args: Args, ui: &Ui) -> anyhow::Result<()> {
    let reporter = CliReporter::new(ui, args.exec.json);
    let dry_run = args.dry_run;
    let opts = UpgradeOptions {
        bundle: args.bundle,
        inventory: args.inventory,
        pubkey: args.pubkey,
        state: args.exec.state.clone(),
        parallel: args.parallel,
        gate: GateOptions {
            allow_downgrade: args.allow_downgrade,
            new_key: args.new_key,
        },
        plan_out: args.plan_out.filter(|_| dry_run),
        from: args.from,
        yes: args.exec.yes,
        skip_push: args.skip_push,
        become_password: if dry_run {
            None
        } else {
            args.exec.become_password()?
        },
    };
    let outcome = upgrade(&opts, &reporter)?;
    reporter.finish();
    if !args.exec.json {
        say(&outcome, &opts, ui);
    }
    Ok(())
}

fn say(o: &UpgradeOutcome, opts: &UpgradeOptions, ui: &Ui) {
    let change = format!(
        "{} {} → {} {} (Kubernetes {} → {}, {})",
        o.from.bundle,
        o.from.version,
        o.to.bundle,
        o.to.version,
        o.from.kubernetes_version,
        o.to.kubernetes_version,
        o.change
    );
    if let Some(dir) = &opts.plan_out {
        ui.status(
            "Planned",
            format!(
                "{change}: {} steps on {} hosts: {}",
                o.plan.step_count(),
                o.plan.hosts.len(),
                dir.join("plan.txt").display()
            ),
        );
        return;
    }
    ui.status(
        "Upgraded",
        format!(
            "cluster `{}`: {change} ({} steps carried out, {} already done)",
            o.plan.cluster, o.ran, o.skipped
        ),
    );
    if let Some(b) = &o.backup {
        ui.status(
            "Snapshot",
            format!("taken before the upgrade: {}", b.display()),
        );
    }
}
