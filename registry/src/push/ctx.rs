//! What every step of a push shares: the session, the retry policy walked by every
//! request, the reporter and the retry count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::http::{Attempt, AttemptResult, Session};
use super::report::PushReporter;
use crate::{Error, RetryPolicy};

pub(super) struct Ctx<'a> {
    /// Shared with the upload requests spawned on the runtime.
    pub session: Arc<Session>,
    pub retry: RetryPolicy,
    pub reporter: &'a dyn PushReporter,
    retries: AtomicU64,
}

impl<'a> Ctx<'a> {
    pub fn new(session: Session, retry: RetryPolicy, reporter: &'a dyn PushReporter) -> Self {
        Self {
            session: Arc::new(session),
            retry,
            reporter,
            retries: AtomicU64::new(0),
        }
    }

    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Logs, reports and counts a retry of `what` after `failed`.
    fn note_retry(&self, what: &str, failed: &Attempt, attempt: u32, delay: Duration) {
        tracing::warn!(
            "{what}: {failed}; retrying in {delay:?} (attempt {attempt} of {})",
            self.retry.attempts
        );
        self.reporter.retrying(what, &failed.to_string());
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `op` with the retry policy; returns the final error.
    pub async fn retry<T, F, Fut>(&self, what: &str, op: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = AttemptResult<T>>,
    {
        let mut waits = self.retry.backoff().enumerate();
        loop {
            let failed = match op().await {
                Ok(v) => return Ok(v),
                Err(failed) => failed,
            };
            let delay = self.next_wait(what, &mut waits, failed)?;
            tokio::time::sleep(delay).await;
        }
    }

    /// After `failed`: the wait before the next attempt (the registry's `Retry-After`
    /// when it gave one, up to the policy's cap), reported and counted, or the error
    /// when it is not transient, the attempts are used up or the registry asks for
    /// longer than the cap.
    pub fn next_wait(
        &self,
        what: &str,
        waits: &mut impl Iterator<Item = (usize, Duration)>,
        failed: Attempt,
    ) -> Result<Duration, Error> {
        match self.retry.next_delay(failed.retry(), waits) {
            Some((i, delay)) => {
                self.note_retry(what, &failed, i as u32 + 1, delay);
                Ok(delay)
            }
            None => Err(failed.error),
        }
    }
}
