//! Terminal reporters: how the library's events look to the operator.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use bundle_installer::report::{Event, HostStatus, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::Ui;

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
                                    ProgressStyle::with_template(&format!(
                                        "{} {{spinner}} {{msg}}",
                                        self.ui.prefix_template()
                                    ))
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
