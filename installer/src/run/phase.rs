//! One phase: its hosts in waves, each host's steps in order, failures gathered into
//! the error that stops the operation (or, in preflight, every problem at once).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use super::actions::StepRun;
use super::{Engine, FAILURE_TAIL_LINES};
use crate::error::StepFailure;
use crate::exec::last_lines;
use crate::plan::{HostSteps, Phase, PhaseName, Step};
use crate::report::{Event, HostStatus};
use crate::state::StepStatus;
use crate::Error;

/// The outcome of one host's steps in a phase.
#[derive(Debug, Default)]
struct HostRun {
    ran: usize,
    skipped: usize,
    failure: Option<Failure>,
    /// Preflight: every failed check.
    problems: Vec<String>,
    warned: bool,
}

#[derive(Debug, Clone)]
struct Failure {
    step: String,
    command: String,
    exit_code: Option<i32>,
    tail: String,
}

impl Engine<'_> {
    /// Runs one phase; returns (steps carried out, steps skipped).
    pub(crate) async fn run_phase(&self, phase: &Phase) -> Result<(usize, usize), Error> {
        let hosts: Vec<&HostSteps> = phase
            .hosts
            .iter()
            .filter(|h| self.only.is_empty() || self.only.contains(&h.host))
            .collect();
        if hosts.is_empty() {
            return Ok((0, 0));
        }
        self.reporter.event(&Event::PhaseStarted {
            phase: phase.name.as_str().into(),
            hosts: hosts.iter().map(|h| h.host.clone()).collect(),
        });
        for h in &hosts {
            self.host_event(phase.name, h, HostStatus::Waiting, 0, 0);
        }
        let waves: BTreeSet<u32> = hosts.iter().map(|h| h.wave).collect();
        let sem = tokio::sync::Semaphore::new(self.parallel);
        let (mut ran, mut skipped) = (0, 0);
        let mut problems = Vec::new();
        for (i, wave) in waves.iter().enumerate() {
            let members: Vec<&HostSteps> =
                hosts.iter().copied().filter(|h| h.wave == *wave).collect();
            let results = join_all(members.iter().map(|h| async {
                let _permit = sem.acquire().await.expect("never closed");
                self.run_host(phase.name, h).await
            }))
            .await;
            let mut failed: Vec<(&HostSteps, Failure)> = Vec::new();
            for (h, r) in members.iter().zip(results) {
                let r = r?;
                ran += r.ran;
                skipped += r.skipped;
                problems.extend(r.problems);
                if let Some(f) = r.failure {
                    failed.push((h, f));
                }
            }
            if !failed.is_empty() {
                // Later waves do not start.
                let later = waves.iter().skip(i + 1).collect::<Vec<_>>();
                for h in hosts.iter().filter(|h| later.contains(&&h.wave)) {
                    self.host_event(phase.name, h, HostStatus::NotRun, 0, 0);
                }
                return Err(self.wave_failed(phase.name, &failed));
            }
        }
        if phase.name == PhaseName::Preflight {
            problems.extend(self.unique_capture_problems());
            if !problems.is_empty() {
                return Err(Error::Preflight {
                    failures: problems,
                    resume: self.resume.clone(),
                });
            }
        }
        self.reporter.event(&Event::PhaseFinished {
            phase: phase.name.as_str().into(),
            ran,
            skipped,
        });
        Ok((ran, skipped))
    }

    /// The error for a wave in which hosts failed: the first named, the others listed.
    fn wave_failed(&self, phase: PhaseName, failed: &[(&HostSteps, Failure)]) -> Error {
        let (h, f) = &failed[0];
        Error::StepFailed(Box::new(StepFailure {
            host: h.host.clone(),
            phase: phase.as_str().into(),
            step: f.step.clone(),
            command: f.command.clone(),
            exit_code: f.exit_code,
            output_tail: f.tail.clone(),
            log: self.state.log_path(&h.host),
            resume: format!("{} --from {}", self.resume, phase.as_str()),
            others: failed
                .iter()
                .skip(1)
                .map(|(h, f)| format!("{}: {}", h.host, f.step))
                .collect(),
        }))
    }

    /// Values that must differ between hosts but do not.
    fn unique_capture_problems(&self) -> Vec<String> {
        let caps = self.captures.lock().expect("not poisoned");
        let mut out = Vec::new();
        for name in &self.plan.unique_captures {
            let mut seen: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (host, m) in caps.iter() {
                if let Some(v) = m.get(name).filter(|v| !v.trim().is_empty()) {
                    seen.entry(v.as_str()).or_default().push(host.as_str());
                }
            }
            for (v, hosts) in seen.into_iter().filter(|(_, h)| h.len() > 1) {
                out.push(format!(
                    "{}: the same {name} `{}` (it must be unique)",
                    hosts.join(", "),
                    v.trim()
                ));
            }
        }
        out
    }

    fn host_event(
        &self,
        phase: PhaseName,
        h: &HostSteps,
        status: HostStatus,
        ran: usize,
        skipped: usize,
    ) {
        self.reporter.event(&Event::HostPhase {
            phase: phase.as_str().into(),
            host: h.host.clone(),
            status,
            ran,
            skipped,
            total: h.steps.len(),
        });
    }

    /// One host's steps of a phase, in order. In preflight a failed check is a
    /// problem and the next check runs; elsewhere the first failure ends the host's
    /// phase.
    async fn run_host(&self, phase: PhaseName, hs: &HostSteps) -> Result<HostRun, Error> {
        let host = self
            .host(&hs.host)
            .expect("connected to every host taking part");
        let latest = self.state.latest(&hs.host)?;
        let mut pending = self.state.pending(&hs.host);
        let mut out = HostRun::default();
        self.host_event(phase, hs, HostStatus::Running, 0, 0);
        for step in &hs.steps {
            self.reporter.event(&Event::StepStarted {
                phase: phase.as_str().into(),
                host: hs.host.clone(),
                step: step.id.clone(),
                description: step.description.clone(),
            });
            let run = StepRun {
                phase,
                host,
                step,
                last: latest.get(&step.id),
            };
            let result = self.run_step(run, &mut pending).await?;
            self.reporter.event(&Event::StepFinished {
                phase: phase.as_str().into(),
                host: hs.host.clone(),
                step: step.id.clone(),
                status: result.status,
                reason: result.reason.clone(),
            });
            if result.status != StepStatus::Skipped {
                out.ran += 1;
            } else {
                out.skipped += 1;
            }
            match result.status {
                StepStatus::Warned => self.warn(&hs.host, step, &result.output, &mut out),
                StepStatus::Failed if phase == PhaseName::Preflight => {
                    let line = last_lines(&result.output, 1);
                    out.problems
                        .push(format!("{}: {}: {line}", hs.host, step.id));
                    continue;
                }
                StepStatus::Failed => {
                    out.failure = Some(Failure {
                        step: step.id.clone(),
                        command: result.command,
                        exit_code: result.exit_code,
                        tail: last_lines(&result.output, FAILURE_TAIL_LINES),
                    });
                    break;
                }
                StepStatus::Done | StepStatus::Skipped => {}
            }
            self.host_event(phase, hs, HostStatus::Running, out.ran, out.skipped);
        }
        let status = if out.failure.is_some() || !out.problems.is_empty() {
            HostStatus::Failed
        } else if out.warned {
            HostStatus::Warned
        } else {
            HostStatus::Done
        };
        self.host_event(phase, hs, status, out.ran, out.skipped);
        Ok(out)
    }

    /// A step with `onFailure: warn` failed: kept for the outcome and reported.
    fn warn(&self, host: &str, step: &Step, output: &str, out: &mut HostRun) {
        out.warned = true;
        let msg = format!(
            "{}: {} ({})",
            step.id,
            last_lines(output, 1),
            step.description
        );
        self.warnings
            .lock()
            .expect("not poisoned")
            .push(format!("{host}: {msg}"));
        self.reporter.event(&Event::Warning {
            host: Some(host.into()),
            message: msg,
        });
    }
}
