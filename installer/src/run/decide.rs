//! The skip/redo rule, as a pure function: whether a step is carried out, skipped, or
//! first looked at on the host. Everything the rule reads is passed in (the step, its
//! phase, the host's latest record of it, the files waiting for a restart), so it is
//! tested here without hosts.
//!
//! - A file is written unless the host already has exactly its content, mode and owner
//!   (only the host can tell: [`Decision::Look`]).
//! - A command with `afterChangeOf` runs when one of those files was written and its
//!   restart has not run yet, whatever else holds.
//! - A command with a `check` is skipped when the check holds on the host.
//! - A command without a check, and a wait, are skipped when they finished before
//!   with the same definition (the step's own hash, so a change elsewhere in the plan
//!   does not redo them), except in phases that always look again (`verify`, `renew`). A capturing
//!   step is skipped only when its record kept the value, which is then restored.

use std::collections::BTreeSet;

use crate::plan::{HostStep, PhaseName, Step};
use crate::state::{self, StepRecord, StepStatus};

/// What to do with a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Carry it out.
    Run,
    /// Skip it, saying why; `capture` is the value a capturing step stored before.
    Skip {
        reason: &'static str,
        capture: Option<String>,
    },
    /// Look at the host first; skip when what is looked at holds (see [`looked`]).
    Look(Look),
}

/// What is looked at on the host before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Look {
    /// The file (or copied tree) is already there as the step would leave it.
    Present,
    /// The step's check command succeeds.
    Check(String),
}

impl Look {
    fn reason(&self) -> &'static str {
        match self {
            Look::Present => "already there",
            Look::Check(_) => "check holds",
        }
    }
}

/// The rule before anything is looked at on the host.
pub(crate) fn decide(
    step: &Step,
    phase: PhaseName,
    last: Option<&StepRecord>,
    pending: &BTreeSet<String>,
) -> Decision {
    match &step.action {
        HostStep::WriteFile { .. } | HostStep::CopyFromBundle { .. } => {
            Decision::Look(Look::Present)
        }
        HostStep::Run {
            check,
            after_change_of,
            capture,
            ..
        } => {
            if after_change_of.iter().any(|f| pending.contains(f)) {
                return Decision::Run;
            }
            if let Some(check) = check {
                return Decision::Look(Look::Check(check.clone()));
            }
            let kept = capture.is_none() || last.is_some_and(|r| r.capture.is_some());
            if finished_before(step, phase, last) && kept {
                Decision::Skip {
                    reason: "finished before",
                    capture: restored_capture(step, last),
                }
            } else {
                Decision::Run
            }
        }
        HostStep::WaitFor { .. } => {
            if finished_before(step, phase, last) {
                Decision::Skip {
                    reason: "finished before",
                    capture: None,
                }
            } else {
                Decision::Run
            }
        }
    }
}

/// The rule once `look` was answered on the host.
pub(crate) fn looked(look: &Look, holds: bool, step: &Step, last: Option<&StepRecord>) -> Decision {
    if holds {
        Decision::Skip {
            reason: look.reason(),
            capture: restored_capture(step, last),
        }
    } else {
        Decision::Run
    }
}

/// The step finished before with the same definition (never in `verify`).
fn finished_before(step: &Step, phase: PhaseName, last: Option<&StepRecord>) -> bool {
    !phase.looks_again()
        && last.is_some_and(|r| {
            r.step_hash == state::step_hash(step)
                && matches!(
                    r.status,
                    StepStatus::Done | StepStatus::Skipped | StepStatus::Warned
                )
        })
}

/// The value a capturing step stored before, carried over when it is skipped.
fn restored_capture(step: &Step, last: Option<&StepRecord>) -> Option<String> {
    match &step.action {
        HostStep::Run {
            capture: Some(_), ..
        } => last.and_then(|r| r.capture.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::OnFailure;

    fn run_step(check: Option<&str>, after: &[&str], capture: Option<&str>) -> Step {
        Step {
            id: "os/thing".into(),
            description: "a thing".into(),
            action: HostStep::Run {
                command: "do-thing".into(),
                check: check.map(Into::into),
                after_change_of: after.iter().map(|s| s.to_string()).collect(),
                capture: capture.map(Into::into),
                on_failure: OnFailure::Stop,
            },
        }
    }

    fn wait_step() -> Step {
        Step {
            id: "verify/ready".into(),
            description: "ready".into(),
            action: HostStep::WaitFor {
                condition: "ready".into(),
                timeout_secs: 5,
            },
        }
    }

    fn record(step: &Step, status: StepStatus, capture: Option<&str>) -> StepRecord {
        StepRecord {
            plan_hash: "p".into(),
            phase: "os".into(),
            step: step.id.clone(),
            step_hash: state::step_hash(step),
            status,
            reason: None,
            started: String::new(),
            finished: String::new(),
            exit_code: Some(0),
            output: String::new(),
            capture: capture.map(Into::into),
        }
    }

    const NONE: &BTreeSet<String> = &BTreeSet::new();

    #[test]
    fn a_step_never_run_is_run() {
        let step = run_step(None, &[], None);
        assert_eq!(decide(&step, PhaseName::Os, None, NONE), Decision::Run);
    }

    #[test]
    fn a_finished_step_without_check_is_skipped() {
        let step = run_step(None, &[], None);
        let last = record(&step, StepStatus::Done, None);
        assert_eq!(
            decide(&step, PhaseName::Os, Some(&last), NONE),
            Decision::Skip {
                reason: "finished before",
                capture: None
            }
        );
        // A warned step finished too.
        let last = record(&step, StepStatus::Warned, None);
        assert!(matches!(
            decide(&step, PhaseName::Os, Some(&last), NONE),
            Decision::Skip { .. }
        ));
    }

    #[test]
    fn a_failed_step_is_redone() {
        let step = run_step(None, &[], None);
        let last = record(&step, StepStatus::Failed, None);
        assert_eq!(
            decide(&step, PhaseName::Os, Some(&last), NONE),
            Decision::Run
        );
    }

    #[test]
    fn a_changed_step_is_redone() {
        let step = run_step(None, &[], None);
        let last = record(&step, StepStatus::Done, None);
        let mut changed = step.clone();
        if let HostStep::Run { command, .. } = &mut changed.action {
            *command = "do-thing --differently".into();
        }
        assert_eq!(
            decide(&changed, PhaseName::Os, Some(&last), NONE),
            Decision::Run
        );
        // Only the step's own definition counts, not the plan it was part of.
        let mut other_plan = last.clone();
        other_plan.plan_hash = "another plan".into();
        assert!(matches!(
            decide(&step, PhaseName::Os, Some(&other_plan), NONE),
            Decision::Skip { .. }
        ));
    }

    #[test]
    fn a_step_with_a_check_looks_and_is_skipped_when_it_holds() {
        let step = run_step(Some("test -f /done"), &[], None);
        let last = record(&step, StepStatus::Done, None);
        let d = decide(&step, PhaseName::Os, Some(&last), NONE);
        let Decision::Look(look) = d else {
            panic!("{d:?}")
        };
        assert_eq!(look, Look::Check("test -f /done".into()));
        assert_eq!(
            looked(&look, true, &step, Some(&last)),
            Decision::Skip {
                reason: "check holds",
                capture: None
            }
        );
        assert_eq!(looked(&look, false, &step, Some(&last)), Decision::Run);
        // Never run before: the check still decides.
        assert_eq!(
            decide(&step, PhaseName::Os, None, NONE),
            Decision::Look(Look::Check("test -f /done".into()))
        );
    }

    #[test]
    fn a_restart_runs_after_its_file_changed_even_when_the_check_holds() {
        let step = run_step(Some("systemctl is-active x"), &["/etc/x.conf"], None);
        let last = record(&step, StepStatus::Done, None);
        let pending: BTreeSet<String> = ["/etc/x.conf".to_string()].into();
        assert_eq!(
            decide(&step, PhaseName::Os, Some(&last), &pending),
            Decision::Run
        );
        let other: BTreeSet<String> = ["/etc/y.conf".to_string()].into();
        assert!(matches!(
            decide(&step, PhaseName::Os, Some(&last), &other),
            Decision::Look(_)
        ));
    }

    #[test]
    fn a_capture_is_restored_when_its_step_is_skipped() {
        let step = run_step(None, &[], Some("cert-key"));
        let last = record(&step, StepStatus::Done, Some("abc123"));
        assert_eq!(
            decide(&step, PhaseName::Init, Some(&last), NONE),
            Decision::Skip {
                reason: "finished before",
                capture: Some("abc123".into())
            }
        );
        // A record without the value: run again to get it.
        let lost = record(&step, StepStatus::Done, None);
        assert_eq!(
            decide(&step, PhaseName::Init, Some(&lost), NONE),
            Decision::Run
        );
        // A check that holds restores it too.
        let checked = run_step(Some("true"), &[], Some("cert-key"));
        let last = record(&checked, StepStatus::Done, Some("abc123"));
        assert_eq!(
            looked(&Look::Check("true".into()), true, &checked, Some(&last)),
            Decision::Skip {
                reason: "check holds",
                capture: Some("abc123".into())
            }
        );
    }

    #[test]
    fn verify_and_renew_always_run_again() {
        let step = wait_step();
        let last = record(&step, StepStatus::Done, None);
        assert_eq!(
            decide(&step, PhaseName::Verify, Some(&last), NONE),
            Decision::Run
        );
        // A renewal a year later is not "finished before".
        let renew = run_step(None, &[], None);
        let done = record(&renew, StepStatus::Done, None);
        assert_eq!(
            decide(&renew, PhaseName::Renew, Some(&done), NONE),
            Decision::Run
        );
        assert!(matches!(
            decide(&step, PhaseName::Join, Some(&last), NONE),
            Decision::Skip { .. }
        ));
    }

    #[test]
    fn files_are_compared_on_the_host() {
        let step = Step {
            id: "os/sysctl".into(),
            description: "sysctl".into(),
            action: HostStep::WriteFile {
                path: "/etc/sysctl.d/k8s.conf".into(),
                content: "x".into(),
                mode: "0644".into(),
                owner: "root:root".into(),
            },
        };
        let last = record(&step, StepStatus::Done, None);
        // Even a file written before is looked at: someone may have changed it.
        assert_eq!(
            decide(&step, PhaseName::Os, Some(&last), NONE),
            Decision::Look(Look::Present)
        );
        assert_eq!(
            looked(&Look::Present, true, &step, None),
            Decision::Skip {
                reason: "already there",
                capture: None
            }
        );
    }
}
