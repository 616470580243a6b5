//! Progress of an install, reported as events: the library never prints. The CLI
//! turns them into one line per host per phase (a live view on a terminal) or JSON
//! lines (`--json`).

use serde::Serialize;

/// How a host did in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HostStatus {
    /// Waiting for its wave.
    Waiting,
    /// Steps running.
    Running,
    /// Every step done or skipped.
    Done,
    /// Done, with warnings.
    Warned,
    /// A step failed.
    Failed,
    /// Not run: an earlier host of the phase failed.
    NotRun,
}

impl HostStatus {
    /// Lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Waiting => "waiting",
            HostStatus::Running => "running",
            HostStatus::Done => "done",
            HostStatus::Warned => "done with warnings",
            HostStatus::Failed => "FAILED",
            HostStatus::NotRun => "not run",
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// The bundle was verified and the plan made.
    #[serde(rename_all = "camelCase")]
    Planned {
        /// Bundle name and version.
        bundle: String,
        /// Entries verified.
        entries: usize,
        /// Steps over all hosts.
        steps: usize,
        /// Hosts.
        hosts: usize,
        /// The state folder.
        state: String,
    },
    /// The plan differs from the last run's.
    #[serde(rename_all = "camelCase")]
    PlanChanged {
        /// `+ host step`, `- host step`, `~ host step: detail`.
        changes: Vec<String>,
    },
    /// Something the operator should know.
    #[serde(rename_all = "camelCase")]
    Note {
        /// The note.
        message: String,
    },
    /// A warning (a step with `onFailure: warn` failed, ...).
    #[serde(rename_all = "camelCase")]
    Warning {
        /// Host, when about one.
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// The warning.
        message: String,
    },
    /// Connected to a host.
    #[serde(rename_all = "camelCase")]
    Connected {
        /// Host.
        host: String,
        /// `user@address:port`.
        address: String,
    },
    /// The deploy node serves the yum repository.
    #[serde(rename_all = "camelCase")]
    RepoServing {
        /// Base URL.
        url: String,
    },
    /// A phase starts.
    #[serde(rename_all = "camelCase")]
    PhaseStarted {
        /// Phase.
        phase: String,
        /// Its hosts, in order.
        hosts: Vec<String>,
    },
    /// A host's status in a phase changed.
    #[serde(rename_all = "camelCase")]
    HostPhase {
        /// Phase.
        phase: String,
        /// Host.
        host: String,
        /// Status.
        status: HostStatus,
        /// Steps carried out so far.
        ran: usize,
        /// Steps skipped so far.
        skipped: usize,
        /// Steps in the phase for this host.
        total: usize,
    },
    /// A step starts.
    #[serde(rename_all = "camelCase")]
    StepStarted {
        /// Phase.
        phase: String,
        /// Host.
        host: String,
        /// Step id.
        step: String,
        /// Its description.
        description: String,
    },
    /// A step finished.
    #[serde(rename_all = "camelCase")]
    StepFinished {
        /// Phase.
        phase: String,
        /// Host.
        host: String,
        /// Step id.
        step: String,
        /// `done`, `skipped`, `warned`, `failed`.
        status: crate::state::StepStatus,
        /// Why skipped, or the exit code.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A phase finished.
    #[serde(rename_all = "camelCase")]
    PhaseFinished {
        /// Phase.
        phase: String,
        /// Steps carried out.
        ran: usize,
        /// Steps skipped.
        skipped: usize,
    },
    /// A check of the HA drill.
    #[serde(rename_all = "camelCase")]
    Drill {
        /// What was done or seen.
        message: String,
    },
}

/// Receives events; answers questions only the operator can.
pub trait Reporter: Send + Sync {
    /// Something happened.
    fn event(&self, event: &Event);

    /// Ask a yes/no question; `false` when nobody can answer (not a terminal).
    fn confirm(&self, _question: &str) -> bool {
        false
    }

    /// Ask for the sudo password of `user` (asked once for all hosts).
    fn become_password(&self, _user: &str) -> Option<String> {
        None
    }
}

/// A reporter that drops everything (tests, benchmarks).
#[derive(Debug, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: &Event) {}
}

/// A reporter that keeps every event (tests).
#[derive(Debug, Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);

impl Reporter for Recorder {
    fn event(&self, e: &Event) {
        self.0.lock().expect("not poisoned").push(e.clone());
    }
}
