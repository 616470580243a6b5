use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use bundle_installer::ops::apply::{apply, ApplyOptions};
use bundle_installer::ops::{plan_install, PlanOptions};
use bundle_installer::plan::PhaseName;
use bundle_installer::report::{Event, HostStatus, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

/// Flags shared by the commands that work on hosts.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// State folder: the plan, secrets, per-step records and per-host logs
    /// [default: bundle-state/CLUSTER beside the inventory]
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Hosts worked on at the same time within a phase
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub parallel: usize,
    /// Work on this host only (repeat for several)
    #[arg(long, value_name = "HOST")]
    pub only: Vec<String>,
    /// Go ahead without asking (a changed plan, a reset)
    #[arg(short, long)]
    pub yes: bool,
    /// Events as JSON lines on stdout, for automation
    #[arg(long)]
    pub json: bool,
    /// Ask for the sudo password (`become: sudo`); `BUNDLE_BECOME_PASSWORD` is read otherwise
    #[arg(long)]
    pub ask_become_pass: bool,
}

fn parse_phase(s: &str) -> Result<PhaseName, String> {
    PhaseName::ALL
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = PhaseName::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown phase; phases are {}", names.join(", "))
        })
}

impl ExecArgs {
    /// The sudo password, from the environment or asked now.
    pub fn become_password(&self) -> anyhow::Result<Option<String>> {
        if let Ok(p) = std::env::var("BUNDLE_BECOME_PASSWORD") {
            return Ok(Some(p));
        }
        if self.ask_become_pass {
            return Ok(Some(rpassword::prompt_password("sudo password: ")?));
        }
        Ok(None)
    }
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
    opts.parallel = args.exec.parallel;
    opts.from = args.from;
    opts.only = args.exec.only.clone();
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

/// Events as the operator sees them: one line per host per phase (live bars on a
/// terminal), or JSON lines with `--json`.
pub struct CliReporter<'a> {
    ui: &'a Ui,
    json: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl<'a> CliReporter<'a> {
    pub fn new(ui: &'a Ui, json: bool) -> Self {
        let multi = (ui.terminal && !ui.quiet && !json).then(|| {
            let m = MultiProgress::new();
            m.set_draw_target(ProgressDrawTarget::stderr());
            m
        });
        CliReporter {
            ui,
            json,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    pub fn finish(&self) {
        for (_, b) in self.bars.lock().expect("not poisoned").drain() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }

    fn line(&self, verb: &str, message: impl std::fmt::Display) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(format!("{verb:>12} {message}"));
            }
            None => self.ui.status(verb, message),
        }
    }
}

fn summary(status: HostStatus, ran: usize, skipped: usize, total: usize) -> String {
    match status {
        HostStatus::Waiting => "waiting".into(),
        HostStatus::Running => format!("running ({}/{total})", ran + skipped),
        HostStatus::NotRun => "not run".into(),
        s => format!("{} ({ran} carried out, {skipped} already done)", s.as_str()),
    }
}

impl Reporter for CliReporter<'_> {
    fn event(&self, e: &Event) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, e);
            let _ = writeln!(out);
            return;
        }
        match e {
            Event::Planned {
                bundle,
                entries,
                steps,
                hosts,
                state,
            } => {
                self.line("Verified", format!("{entries} entries of bundle {bundle}"));
                self.line(
                    "Planned",
                    format!("{steps} steps on {hosts} hosts; state in {state}"),
                );
            }
            Event::PlanChanged { changes } => {
                self.line(
                    "Changed",
                    format!(
                        "the plan differs from the last run's in {} steps:",
                        changes.len()
                    ),
                );
                for c in changes {
                    self.line("", c);
                }
            }
            Event::Note { message } => self.line("Note", message),
            Event::Warning { host, message } => match host {
                Some(h) => self.ui.warn(format!("{h}: {message}")),
                None => self.ui.warn(message),
            },
            Event::Connected { host, address } => {
                if self.ui.terminal {
                    self.line("Connected", format!("{host} ({address})"))
                }
            }
            Event::RepoServing { url } => {
                self.line("Serving", format!("the yum repository at {url}"))
            }
            Event::PhaseStarted { phase, .. } => self.line("Phase", phase),
            Event::HostPhase {
                phase,
                host,
                status,
                ran,
                skipped,
                total,
            } => {
                let text = summary(*status, *ran, *skipped, *total);
                let done = !matches!(status, HostStatus::Waiting | HostStatus::Running);
                match &self.multi {
                    Some(m) => {
                        let mut bars = self.bars.lock().expect("not poisoned");
                        let bar = bars
                            .entry((phase.clone(), host.clone()))
                            .or_insert_with(|| {
                                let b = m.add(ProgressBar::new_spinner());
                                b.set_style(
                                    ProgressStyle::with_template(
                                        "{prefix:>12.cyan.bold} {spinner} {msg}",
                                    )
                                    .expect("valid template"),
                                );
                                b.set_prefix(phase.clone());
                                b.enable_steady_tick(std::time::Duration::from_millis(120));
                                b
                            });
                        bar.set_message(format!("{host:<12} {text}"));
                        if done {
                            bar.finish();
                        }
                    }
                    None => {
                        if done {
                            self.ui.status(phase, format!("{host:<12} {text}"));
                        }
                    }
                }
            }
            Event::StepStarted {
                phase, host, step, ..
            } => {
                if let Some(b) = self
                    .bars
                    .lock()
                    .expect("not poisoned")
                    .get(&(phase.clone(), host.clone()))
                {
                    b.set_message(format!("{host:<12} {step}"));
                }
            }
            Event::StepFinished { .. } | Event::PhaseFinished { .. } => {}
            Event::Drill { message } => self.line("Drill", message),
        }
    }

    fn confirm(&self, question: &str) -> bool {
        if self.json || !std::io::stdin().is_terminal() {
            return false;
        }
        eprint!("{question} [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        matches!(answer.trim(), "y" | "Y" | "yes")
    }

    fn become_password(&self, user: &str) -> Option<String> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        rpassword::prompt_password(format!("sudo password for {user}: ")).ok()
    }
}
