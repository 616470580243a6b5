//! The state folder on the deploy node: what an install did, so a re-run resumes.
//!
//! ```text
//! STATE/                    the plan folder (plan.json, plan.txt, secrets.json, HOST/…)
//! STATE/_state/applied-plan.json   the plan of the last run (shown as a diff when it changes)
//! STATE/_state/records/HOST.jsonl  one line per step carried out or skipped
//! STATE/_state/logs/HOST.log       every command and its whole output (secrets redacted)
//! STATE/_state/pending/HOST.json   files written whose restart step has not run yet
//! STATE/_state/repo/               the bundle's yum repository, extracted after verification
//! STATE/_state/lock                the pid of the `bundle` working here
//! ```
//!
//! `_state` cannot clash with a host folder: `_` is not allowed in host names.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Step};
use crate::Error;

/// Most output kept per step in the records (the log has all of it).
pub const RECORD_OUTPUT_MAX: usize = 16 * 1024;

/// What happened to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// Carried out, successfully.
    Done,
    /// Not needed: its check held, the file was already there, or it finished before.
    Skipped,
    /// Failed but marked `onFailure: warn`.
    Warned,
    /// Failed.
    Failed,
}

/// One line of `records/HOST.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// Digest of the whole plan it belonged to.
    pub plan_hash: String,
    /// Phase.
    pub phase: String,
    /// Step id.
    pub step: String,
    /// Digest of the step (a changed step is carried out again).
    pub step_hash: String,
    /// Outcome.
    pub status: StepStatus,
    /// Why it was skipped or what it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339.
    pub finished: String,
    /// Exit code of the command, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The end of its output, secrets redacted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// The value a `capture` step stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<String>,
}

/// Digest of a step's JSON: a changed command, file or check changes it.
pub fn step_hash(step: &Step) -> String {
    let json = serde_json::to_vec(step).expect("steps serialize");
    bundle_format::Sha256Digest::of(&json).hex()[..16].to_string()
}

/// Digest of the plan's JSON.
pub fn plan_hash(plan: &Plan) -> String {
    bundle_format::Sha256Digest::of(plan.to_json().as_bytes()).hex()[..16].to_string()
}

/// Now, RFC 3339 UTC.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A record kept as JSON in the state folder (`release.json`, `upgrade.json`,
/// `restore.json`): `None` when there is none, an error naming the file when it cannot
/// be read or parsed.
pub fn read_record<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| Error::StateDamaged {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::State {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `record` to `path` as pretty JSON, through a `.tmp` file renamed over it, so
/// that a crash leaves the old record or the new one.
pub fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<(), Error> {
    let mut text = serde_json::to_vec_pretty(record).expect("state records serialize");
    text.push(b'\n');
    let tmp = path.with_extension("json.tmp");
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::State { path, source }
    };
    std::fs::write(&tmp, text).map_err(err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(err(path))
}

/// The plan of the last run, in `_state/`.
const APPLIED_PLAN: &str = "applied-plan.json";

/// The state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn state_err(path: &Path, source: std::io::Error) -> Error {
    Error::State {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Opens (creating) the folder.
    pub fn open(root: &Path) -> Result<Self, Error> {
        let s = StateDir {
            root: root.to_path_buf(),
        };
        for d in ["records", "logs", "pending"] {
            let p = s.internal().join(d);
            std::fs::create_dir_all(&p).map_err(|e| state_err(&p, e))?;
        }
        Ok(s)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `_state/`.
    pub fn internal(&self) -> PathBuf {
        self.root.join("_state")
    }

    /// Where the verified yum repository is extracted.
    pub fn repo_dir(&self) -> PathBuf {
        self.internal().join("repo")
    }

    /// Where the bundle's yum repositories are extracted: its `rpms/` entries, one
    /// folder per target, as they are in the bundle.
    pub fn extracted_rpms(&self) -> PathBuf {
        self.repo_dir()
            .join(bundle_format::layout::RPMS.trim_end_matches('/'))
    }

    /// A host's log.
    pub fn log_path(&self, host: &str) -> PathBuf {
        self.internal().join("logs").join(format!("{host}.log"))
    }

    fn records_path(&self, host: &str) -> PathBuf {
        self.internal()
            .join("records")
            .join(format!("{host}.jsonl"))
    }

    fn pending_path(&self, host: &str) -> PathBuf {
        self.internal().join("pending").join(format!("{host}.json"))
    }

    /// Takes the folder's lock (a stale lock of a process that is gone is taken over).
    pub fn lock(&self) -> Result<Lock, Error> {
        let path = self.internal().join("lock");
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Lock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match pid {
                        // SAFETY: kill with signal 0 only checks the process exists.
                        Some(pid)
                            if pid != std::process::id()
                                && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0 =>
                        {
                            return Err(Error::Locked {
                                path: self.root.clone(),
                                pid,
                            })
                        }
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(state_err(&path, e)),
            }
        }
        // Three processes in a row took the lock between our looks.
        Err(state_err(
            &path,
            std::io::Error::other("the lock keeps being taken"),
        ))
    }

    /// Whether an install was recorded in the folder `root`, looked at without
    /// creating anything there.
    pub fn holds_install(root: &Path) -> bool {
        root.join("_state").join(APPLIED_PLAN).is_file()
    }

    /// The plan of the last run, if any.
    pub fn applied_plan(&self) -> Result<Option<Plan>, Error> {
        let path = self.internal().join(APPLIED_PLAN);
        match std::fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data)
                    .map(Some)
                    .map_err(|source| Error::StateDamaged {
                        path: path.clone(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// Records `plan` as the one being applied.
    pub fn set_applied_plan(&self, plan: &Plan) -> Result<(), Error> {
        let path = self.internal().join(APPLIED_PLAN);
        write_atomic(&path, plan.to_json().as_bytes())
    }

    /// Every record of `host`, oldest first (a torn last line is ignored).
    pub fn records(&self, host: &str) -> Result<Vec<StepRecord>, Error> {
        let path = self.records_path(host);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(state_err(&path, e)),
        }
    }

    /// The latest record of each step of `host`.
    pub fn latest(&self, host: &str) -> Result<BTreeMap<String, StepRecord>, Error> {
        let mut out = BTreeMap::new();
        for r in self.records(host)? {
            out.insert(r.step.clone(), r);
        }
        Ok(out)
    }

    /// Appends a record (flushed to disk: a kill right after keeps it).
    pub fn append(&self, host: &str, record: &StepRecord) -> Result<(), Error> {
        let path = self.records_path(host);
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| state_err(&path, e))?;
        f.write_all(&line).map_err(|e| state_err(&path, e))?;
        f.sync_data().map_err(|e| state_err(&path, e))
    }

    /// Appends text to a host's log.
    pub fn log(&self, host: &str, text: &str) {
        let path = self.log_path(host);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }

    /// Files written on `host` whose restart has not run yet.
    pub fn pending(&self, host: &str) -> BTreeSet<String> {
        std::fs::read(self.pending_path(host))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    /// Replaces the pending files of `host`.
    pub fn set_pending(&self, host: &str, files: &BTreeSet<String>) -> Result<(), Error> {
        let data = serde_json::to_vec(files).expect("a set of strings serializes");
        write_atomic(&self.pending_path(host), &data)
    }

    /// Forgets everything recorded about `host` (after a reset).
    pub fn forget(&self, host: &str) -> Result<(), Error> {
        for p in [self.records_path(host), self.pending_path(host)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(state_err(&p, e)),
            }
        }
        Ok(())
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| state_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| state_err(path, e))
}

/// The state folder's lock; released when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One difference between two plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanChange {
    /// `+` added, `-` removed, `~` changed.
    pub change: char,
    /// Host.
    pub host: String,
    /// Step id.
    pub step: String,
    /// What changed, for a changed step.
    pub detail: String,
}

impl std::fmt::Display for PlanChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.change, self.host, self.step)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The steps added, removed and changed from `old` to `new`, host by host in plan order.
pub fn diff_plans(old: &Plan, new: &Plan) -> Vec<PlanChange> {
    use crate::plan::HostStep;
    let steps = |p: &Plan| {
        let mut m: BTreeMap<(String, String), Step> = BTreeMap::new();
        for h in &p.hosts {
            for (_, s) in p.host_steps(&h.name) {
                m.insert((h.name.clone(), s.id.clone()), s.clone());
            }
        }
        m
    };
    let (a, b) = (steps(old), steps(new));
    let mut out = Vec::new();
    let mut hosts: Vec<String> = new.hosts.iter().map(|h| h.name.clone()).collect();
    for h in &old.hosts {
        if !hosts.contains(&h.name) {
            hosts.push(h.name.clone());
        }
    }
    for host in hosts {
        let order = |p: &Plan| {
            p.host_steps(&host)
                .map(|(_, s)| s.id.clone())
                .collect::<Vec<_>>()
        };
        let mut ids = order(new);
        for id in order(old) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for id in ids {
            let key = (host.clone(), id.clone());
            match (a.get(&key), b.get(&key)) {
                (None, Some(_)) => out.push(PlanChange {
                    change: '+',
                    host: host.clone(),
                    step: id,
                    detail: String::new(),
                }),
                (Some(_), None) => out.push(PlanChange {
                    change: '-',
                    host: host.clone(),
                    step: id,
                    detail: String::new(),
                }),
                (Some(x), Some(y)) if x != y => {
                    let detail = match (&x.action, &y.action) {
                        (
                            HostStep::WriteFile {
                                path, content: c1, ..
                            },
                            HostStep::WriteFile { content: c2, .. },
                        ) if c1 != c2 => format!("{path}: {}", line_diff(c1, c2)),
                        (HostStep::Run { command: c1, .. }, HostStep::Run { command: c2, .. })
                            if c1 != c2 =>
                        {
                            format!("command `{c1}` → `{c2}`")
                        }
                        _ => "changed".into(),
                    };
                    out.push(PlanChange {
                        change: '~',
                        host: host.clone(),
                        step: id,
                        detail,
                    })
                }
                _ => {}
            }
        }
    }
    out
}

/// The lines removed and added between two texts, briefly.
fn line_diff(a: &str, b: &str) -> String {
    let al: BTreeSet<&str> = a.lines().collect();
    let bl: BTreeSet<&str> = b.lines().collect();
    let removed: Vec<&str> = a.lines().filter(|l| !bl.contains(l)).collect();
    let added: Vec<&str> = b.lines().filter(|l| !al.contains(l)).collect();
    let mut parts = Vec::new();
    for l in removed.iter().take(3) {
        parts.push(format!("-`{}`", l.trim()));
    }
    for l in added.iter().take(3) {
        parts.push(format!("+`{}`", l.trim()));
    }
    let more = removed.len().saturating_sub(3) + added.len().saturating_sub(3);
    if more > 0 {
        parts.push(format!("and {more} more lines"));
    }
    if parts.is_empty() {
        "line order changed".into()
    } else {
        parts.join(" ")
    }
}
