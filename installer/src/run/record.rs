//! What a step left behind: its outcome ([`StepResult`]), the host's log (all of the
//! output, redacted) and its record in the state folder (the end of the output), which
//! the next run's [`super::decide`] reads.

use std::time::Instant;

use crate::exec::{Output, Redactor};
use crate::plan::{OnFailure, PhaseName, Step};
use crate::state::{self, StateDir, StepRecord, StepStatus};
use crate::Error;

/// The outcome of one step.
#[derive(Debug)]
pub(crate) struct StepResult {
    pub status: StepStatus,
    pub reason: Option<String>,
    /// What was run, as shown to people (no secrets: plans hold none).
    pub command: String,
    pub exit_code: Option<i32>,
    /// Redacted.
    pub output: String,
    pub capture: Option<String>,
}

impl StepResult {
    pub fn skipped(command: String, why: &str, capture: Option<String>) -> Self {
        StepResult {
            status: StepStatus::Skipped,
            reason: Some(why.into()),
            command,
            exit_code: None,
            output: String::new(),
            capture,
        }
    }

    pub fn done(command: String, out: &Output, r: &Redactor) -> Self {
        StepResult {
            status: StepStatus::Done,
            reason: None,
            command,
            exit_code: out.code,
            output: r.redact(&out.text()),
            capture: None,
        }
    }

    pub fn failed(command: String, code: Option<i32>, output: String) -> Self {
        StepResult {
            status: StepStatus::Failed,
            reason: None,
            command,
            exit_code: code,
            output,
            capture: None,
        }
    }

    /// Done when the command succeeded; otherwise failed or warned, as the step says.
    pub fn from_output(command: String, out: &Output, r: &Redactor, on_failure: OnFailure) -> Self {
        let mut s = Self::done(command, out, r);
        if !out.success() {
            s.status = match on_failure {
                OnFailure::Stop => StepStatus::Failed,
                OnFailure::Warn => StepStatus::Warned,
            };
        }
        s
    }
}

/// Where a step's outcome is written.
pub(crate) struct StepLog<'a> {
    pub state: &'a StateDir,
    pub redactor: &'a Redactor,
    pub plan_hash: &'a str,
}

impl StepLog<'_> {
    /// Appends the step to the host's log and its record to the state folder.
    pub fn record(
        &self,
        host: &str,
        phase: PhaseName,
        step: &Step,
        started: String,
        t0: Instant,
        result: &mut StepResult,
    ) -> Result<(), Error> {
        result.output = self.redactor.redact(&result.output);
        self.state
            .log(host, &log_entry(phase, step, &started, t0, result));
        self.state.append(
            host,
            &StepRecord {
                plan_hash: self.plan_hash.to_string(),
                phase: phase.as_str().into(),
                step: step.id.clone(),
                step_hash: state::step_hash(step),
                status: result.status,
                reason: result.reason.clone(),
                started,
                finished: state::now(),
                exit_code: result.exit_code,
                output: tail_bytes(&result.output, state::RECORD_OUTPUT_MAX),
                capture: result.capture.clone(),
            },
        )
    }

    /// A look at the host made before deciding (a step's check), in the host's log.
    pub fn looked(&self, host: &str, phase: PhaseName, step: &Step, what: &str, out: &Output) {
        self.state.log(
            host,
            &format!(
                "--- {} [{}] {} {what}: exit {}\n{}",
                state::now(),
                phase.as_str(),
                step.id,
                out.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into()),
                self.redactor.redact(&out.text())
            ),
        );
    }
}

fn log_entry(
    phase: PhaseName,
    step: &Step,
    started: &str,
    t0: Instant,
    result: &StepResult,
) -> String {
    let newline = if result.output.is_empty() || result.output.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let outcome = match (result.status, &result.reason, result.exit_code) {
        (StepStatus::Skipped, Some(r), _) => format!("skipped: {r}"),
        (_, _, Some(c)) => format!("exit {c}"),
        (s, _, None) => format!("{s:?}").to_lowercase(),
    };
    format!(
        "=== {started} [{}] {}: {}\n$ {}\n{}{newline}--- {outcome} ({:.1}s)\n",
        phase.as_str(),
        step.id,
        step.description,
        result.command,
        result.output,
        t0.elapsed().as_secs_f64()
    )
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_bytes_keeps_the_end_on_a_character_boundary() {
        assert_eq!(tail_bytes("short", 10), "short");
        assert_eq!(tail_bytes("abcdef", 3), "def");
        // 'é' is two bytes: a cut inside it moves forward.
        assert_eq!(tail_bytes("aéb", 2), "b");
    }
}
