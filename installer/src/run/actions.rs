//! Carrying out each kind of step on a host, after [`super::decide`] said whether it
//! is needed: write a file, copy the bundle's repository folder, run a command, wait
//! for a condition.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::decide::{self, Decision, Look};
use super::record::StepResult;
use super::tree::TreeTar;
use super::Engine;
use crate::exec::SshHost;
use crate::plan::{HostStep, OnFailure, PhaseName, Step};
use crate::secrets::PULL_PASSWORD_ENV;
use crate::state::{self, StepRecord};
use crate::Error;

/// How often a wait asks again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// One step on one host, from the decision to the outcome.
pub(super) struct StepRun<'s> {
    pub phase: PhaseName,
    pub host: &'s SshHost,
    pub step: &'s Step,
    pub last: Option<&'s StepRecord>,
}

impl Engine<'_> {
    /// Carries out (or skips) one step and records it.
    pub(super) async fn run_step(
        &self,
        run: StepRun<'_>,
        pending: &mut BTreeSet<String>,
    ) -> Result<StepResult, Error> {
        let started = state::now();
        let t0 = Instant::now();
        let mut result = match &run.step.action {
            HostStep::WriteFile {
                path,
                content,
                mode,
                owner,
            } => {
                self.write_file(&run, [path, content, mode, owner], pending)
                    .await?
            }
            HostStep::CopyFromBundle { entries, dest } => {
                self.copy_from_bundle(&run, entries, dest).await?
            }
            HostStep::Run { .. } => self.run_command(&run, pending).await?,
            HostStep::WaitFor {
                condition,
                timeout_secs,
            } => self.wait_for(&run, condition, *timeout_secs).await?,
        };
        let name = &run.host.target().name;
        if let (
            Some(v),
            HostStep::Run {
                capture: Some(n), ..
            },
        ) = (&result.capture, &run.step.action)
        {
            self.keep_capture(name, n, v);
        }
        self.step_log()
            .record(name, run.phase, run.step, started, t0, &mut result)?;
        Ok(result)
    }

    /// Writes a file with its placeholders filled in, unless the host has it already.
    async fn write_file(
        &self,
        run: &StepRun<'_>,
        [path, content, mode, owner]: [&String; 4],
        pending: &mut BTreeSet<String>,
    ) -> Result<StepResult, Error> {
        let content = self.resolve(content);
        let command = format!("write {path} ({mode} {owner})");
        if let Some(p) = unresolved(&content) {
            return Ok(StepResult::failed(command, None, unresolved_why(p)));
        }
        let holds = run
            .host
            .file_matches(path, content.as_bytes(), mode, owner)
            .await?;
        if let Decision::Skip { reason, capture } =
            decide::looked(&Look::Present, holds, run.step, run.last)
        {
            return Ok(StepResult::skipped(command, reason, capture));
        }
        let out = run
            .host
            .write_file(path, content.as_bytes(), mode, owner)
            .await?;
        if out.success() {
            pending.insert(path.clone());
            self.state.set_pending(&run.host.target().name, pending)?;
        }
        Ok(self.stop_on_failure(command, &out))
    }

    /// A command: skipped as the rule says (its check looked at first), else run.
    async fn run_command(
        &self,
        run: &StepRun<'_>,
        pending: &mut BTreeSet<String>,
    ) -> Result<StepResult, Error> {
        let HostStep::Run {
            command,
            after_change_of,
            capture,
            on_failure,
            ..
        } = &run.step.action
        else {
            unreachable!("run_command is called for run steps")
        };
        let mut decision = decide::decide(run.step, run.phase, run.last, pending);
        if let Decision::Look(look @ Look::Check(check)) = &decision {
            let c = run.host.run(check, None).await?;
            self.step_log().looked(
                &run.host.target().name,
                run.phase,
                run.step,
                &format!("check: {check}"),
                &c,
            );
            decision = decide::looked(look, c.success(), run.step, run.last);
        }
        if let Decision::Skip { reason, capture } = decision {
            return Ok(StepResult::skipped(command.clone(), reason, capture));
        }
        let out = run.host.run(command, None).await?;
        let mut r = StepResult::from_output(command.clone(), &out, &self.redactor, *on_failure);
        if out.success() {
            if capture.is_some() {
                r.capture = Some(String::from_utf8_lossy(&out.stdout).trim().to_string());
            }
            if !after_change_of.is_empty() {
                for f in after_change_of {
                    pending.remove(f);
                }
                self.state.set_pending(&run.host.target().name, pending)?;
            }
        }
        Ok(r)
    }

    /// Polls `condition` until it succeeds or `timeout_secs` pass.
    async fn wait_for(
        &self,
        run: &StepRun<'_>,
        condition: &str,
        timeout_secs: u64,
    ) -> Result<StepResult, Error> {
        let none = BTreeSet::new();
        if let Decision::Skip { reason, capture } =
            decide::decide(run.step, run.phase, run.last, &none)
        {
            return Ok(StepResult::skipped(condition.into(), reason, capture));
        }
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            let out = run.host.run(condition, None).await?;
            if out.success() {
                return Ok(StepResult::done(condition.into(), &out, &self.redactor));
            }
            if Instant::now() >= deadline {
                let mut r = self.stop_on_failure(condition.into(), &out);
                r.output = format!(
                    "{}\n(still failing after {timeout_secs}s)",
                    r.output.trim_end()
                );
                return Ok(r);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Copies the extracted repository folder to the host as a tar stream, unless the
    /// host already has this exact tree (a digest file beside it says so).
    async fn copy_from_bundle(
        &self,
        run: &StepRun<'_>,
        entries: &str,
        dest: &str,
    ) -> Result<StepResult, Error> {
        let command = format!("copy bundle entries {entries}* to {dest}");
        let src = self.state.repo_dir().join(entries.trim_end_matches('/'));
        let repo_read = |source| Error::RepoRead {
            path: src.clone(),
            source,
        };
        let (tree, digest) = {
            let src = src.clone();
            tokio::task::spawn_blocking(move || {
                let tree = TreeTar::list(&src)?;
                let digest = tree.digest()?;
                Ok((tree, digest))
            })
            .await
            .expect("listing and hashing do not panic")
            .map_err(repo_read)?
        };
        let marker = format!("{}/.bundle-tree-sha256", dest.trim_end_matches('/'));
        let host = run.host;
        let holds = host
            .file_matches(&marker, digest.as_bytes(), "0644", "root:root")
            .await?;
        if let Decision::Skip { reason, capture } =
            decide::looked(&Look::Present, holds, run.step, run.last)
        {
            return Ok(StepResult::skipped(command, reason, capture));
        }
        let d = crate::exec::shell_quote(dest);
        let (reader, producer) = tree.stream().map_err(repo_read)?;
        let (out, read) = host
            .run_streamed(
                &format!("set -e; rm -rf {d}; mkdir -p {d}; tar -C {d} --no-same-owner -xf -; chmod -R u=rwX,go=rX {d}"),
                Box::new(reader),
            )
            .await?;
        let produced = tokio::task::spawn_blocking(move || producer.join())
            .await
            .expect("joining does not panic")
            .expect("the tar writer does not panic");
        if !out.success() {
            return Ok(self.stop_on_failure(command, &out));
        }
        // The host's tar may have taken a short stream for a whole one.
        read.and(produced).map_err(repo_read)?;
        let out = host
            .write_file(&marker, digest.as_bytes(), "0644", "root:root")
            .await?;
        Ok(self.stop_on_failure(command, &out))
    }
}

impl Engine<'_> {
    /// A step's outcome from its command's: done, or failed (the step stops).
    fn stop_on_failure(&self, command: String, out: &crate::exec::Output) -> StepResult {
        StepResult::from_output(command, out, &self.redactor, OnFailure::Stop)
    }
}

/// A placeholder left in a file about to be written: a runtime value not captured
/// yet, or a secret nobody supplied.
fn unresolved(text: &str) -> Option<&str> {
    let i = text.find("<runtime:").or_else(|| text.find("<secret:"))?;
    let end = text[i..].find('>')? + i + 1;
    Some(&text[i..end])
}

fn unresolved_why(placeholder: &str) -> String {
    if placeholder.starts_with(&format!("<secret:{}", crate::pki::PREFIX)) {
        format!("{placeholder} is not in the state folder's secrets.json: run `bundle install` (which makes the external etcd's certificates) rather than an executor alone")
    } else if placeholder.starts_with("<secret:") {
        format!("{placeholder} was not supplied: `bundle install` reads the pull password from {PULL_PASSWORD_ENV}")
    } else {
        format!(
            "{placeholder} is not known yet: run the phase that captures it first (`--from init`)"
        )
    }
}
